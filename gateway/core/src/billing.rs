//! Billing primitives: how many units a send costs, and balance alerts.
//!
//! - [`sms_segments`]: the number of SMS parts a text is billed as, by the
//!   GSM 03.38 / 3GPP TS 23.038 rules. A text is GSM-7 when every character is
//!   in the default alphabet or its extension table (an extension character,
//!   such as `€` or `{`, costs two septets: escape + character); otherwise the
//!   whole text is UCS-2 (UTF-16). One part holds 160 septets or 70 UTF-16
//!   units; a concatenated message holds 153 septets or 67 units per part
//!   (the rest is the user data header). An escape pair and a UTF-16
//!   surrogate pair are never split across parts, so such a character that
//!   does not fit moves whole to the next part.
//! - Voice calls bill per started minute: the plugin reports the minutes from
//!   the provider's call report (contract 1.2 `callback-usage`) and
//!   [`crate::ledger::usage`] bills the difference to the send's debit.
//! - [`crossed_below`]: whether a balance change crosses a low-balance
//!   threshold, so that an alert fires once per crossing.
//!
//! Pure functions; no input panics.

use serde::{Deserialize, Serialize};

/// The GSM 03.38 default alphabet (one septet each). `\u{1b}` (escape) is
/// deliberately absent: it only introduces extension characters.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table (escape + character: two septets each).
/// `\u{0c}` is form feed.
const GSM7_EXTENSION: &str = "\u{0c}^{}\\[~]|€";

/// Septets per single-part GSM-7 message.
const GSM7_SINGLE: u32 = 160;
/// Septets per part of a concatenated GSM-7 message.
const GSM7_MULTI: u32 = 153;
/// UTF-16 code units per single-part UCS-2 message.
const UCS2_SINGLE: u32 = 70;
/// UTF-16 code units per part of a concatenated UCS-2 message.
const UCS2_MULTI: u32 = 67;

/// How an SMS text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmsEncoding {
    /// GSM 03.38 7-bit default alphabet (with its extension table).
    Gsm7,
    /// UCS-2 / UTF-16.
    Ucs2,
}

/// The billing facts of one SMS text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsSegments {
    pub encoding: SmsEncoding,
    /// Parts billed (at least 1, also for an empty text).
    pub units: u32,
    /// Septets for GSM-7, UTF-16 code units for UCS-2.
    pub length: u32,
}

/// Septets `c` costs in GSM-7, or `None` when it has no GSM-7 encoding.
fn gsm7_cost(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Parts needed for characters of the given costs: one part when the total
/// fits `single`, else greedy packing into parts of `multi` where a
/// character never straddles two parts.
fn count_parts(costs: &[u32], single: u32, multi: u32) -> (u32, u32) {
    let total = costs.iter().fold(0u32, |acc, &c| acc.saturating_add(c));
    if total <= single {
        return (1, total);
    }
    let mut parts = 1u32;
    let mut used = 0u32;
    for &c in costs {
        if used.saturating_add(c) > multi {
            parts = parts.saturating_add(1);
            used = 0;
        }
        used = used.saturating_add(c);
    }
    (parts, total)
}

/// Encoding, billed parts and length of an SMS text (see the module docs).
pub fn sms_segments(text: &str) -> SmsSegments {
    let gsm: Option<Vec<u32>> = text.chars().map(gsm7_cost).collect();
    let (encoding, costs, single, multi) = match gsm {
        Some(costs) => (SmsEncoding::Gsm7, costs, GSM7_SINGLE, GSM7_MULTI),
        None => {
            // `len_utf16` is 1 or 2, so the cast cannot truncate.
            let costs = text.chars().map(|c| c.len_utf16() as u32).collect();
            (SmsEncoding::Ucs2, costs, UCS2_SINGLE, UCS2_MULTI)
        }
    };
    let (units, length) = count_parts(&costs, single, multi);
    SmsSegments { encoding, units, length }
}

/// An amount in minor units as people read it: `¥99.84` for CNY (and the
/// other currencies with a sign of their own), `12.50 CHF` for the rest; two
/// decimals, a minus sign first for a negative amount.
pub fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let amount = format!("{}.{:02}", abs / 100, abs % 100);
    match currency.to_ascii_uppercase().as_str() {
        "CNY" | "RMB" => format!("{sign}¥{amount}"),
        "USD" => format!("{sign}${amount}"),
        "EUR" => format!("{sign}€{amount}"),
        "GBP" => format!("{sign}£{amount}"),
        "HKD" => format!("{sign}HK${amount}"),
        other => format!("{sign}{amount} {other}").trim_end().to_string(),
    }
}

/// True exactly when a balance moves from at or above `threshold_minor` to
/// below it, so a low-balance alert fires once per crossing and not again
/// while the balance stays low.
pub fn crossed_below(before_minor: i64, after_minor: i64, threshold_minor: i64) -> bool {
    before_minor >= threshold_minor && after_minor < threshold_minor
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_as_people_write_it() {
        assert_eq!(money(9_984, "CNY"), "¥99.84");
        assert_eq!(money(20_000, "cny"), "¥200.00");
        assert_eq!(money(-5, "CNY"), "-¥0.05");
        assert_eq!(money(1_250, "CHF"), "12.50 CHF");
        assert_eq!(money(i64::MIN, "USD"), "-$92233720368547758.08");
        assert_eq!(money(7, ""), "0.07");
    }

    fn seg(text: &str) -> (SmsEncoding, u32, u32) {
        let s = sms_segments(text);
        (s.encoding, s.units, s.length)
    }

    #[test]
    fn gsm7_part_boundaries() {
        use SmsEncoding::Gsm7;
        assert_eq!(seg(""), (Gsm7, 1, 0));
        assert_eq!(seg("hello"), (Gsm7, 1, 5));
        assert_eq!(seg(&"a".repeat(160)), (Gsm7, 1, 160));
        assert_eq!(seg(&"a".repeat(161)), (Gsm7, 2, 161));
        assert_eq!(seg(&"a".repeat(306)), (Gsm7, 2, 306));
        assert_eq!(seg(&"a".repeat(307)), (Gsm7, 3, 307));
        assert_eq!(seg(&"a".repeat(459)), (Gsm7, 3, 459));
        assert_eq!(seg(&"a".repeat(460)), (Gsm7, 4, 460));
    }

    #[test]
    fn gsm7_extension_chars_cost_two_septets() {
        use SmsEncoding::Gsm7;
        assert_eq!(seg("€"), (Gsm7, 1, 2));
        assert_eq!(seg("^{}\\[~]|€\u{0c}"), (Gsm7, 1, 20));
        // 159 + 2 = 161 septets: no longer one part.
        assert_eq!(seg(&format!("{}€", "a".repeat(158))), (Gsm7, 1, 160));
        assert_eq!(seg(&format!("{}€", "a".repeat(159))), (Gsm7, 2, 161));
        // 128 code points minus the escape; 10 extension characters.
        assert_eq!(GSM7_BASIC.chars().count(), 127);
        assert_eq!(GSM7_EXTENSION.chars().count(), 10);
        // The whole basic alphabet (including Greek capitals, £, ¥, ¤) is GSM-7.
        assert_eq!(seg(GSM7_BASIC), (Gsm7, 1, GSM7_BASIC.chars().count() as u32));
    }

    #[test]
    fn gsm7_escape_pair_is_not_split_across_parts() {
        use SmsEncoding::Gsm7;
        // 152 + € (2) + 152 = 306 septets would fit 2 × 153, but the € cannot
        // straddle: part 1 = 152, part 2 = € + 151, part 3 = 1.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(seg(&text), (Gsm7, 3, 306));
        // With the € fully inside part 1 the same length needs 2 parts.
        let text = format!("{}€{}", "a".repeat(151), "a".repeat(153));
        assert_eq!(seg(&text), (Gsm7, 2, 306));
    }

    #[test]
    fn ucs2_part_boundaries() {
        use SmsEncoding::Ucs2;
        assert_eq!(seg(&"中".repeat(70)), (Ucs2, 1, 70));
        assert_eq!(seg(&"中".repeat(71)), (Ucs2, 2, 71));
        assert_eq!(seg(&"中".repeat(134)), (Ucs2, 2, 134));
        assert_eq!(seg(&"中".repeat(135)), (Ucs2, 3, 135));
    }

    #[test]
    fn emoji_is_two_units_and_moves_whole_to_the_next_part() {
        use SmsEncoding::Ucs2;
        assert_eq!(seg("😀"), (Ucs2, 1, 2));
        assert_eq!(seg(&format!("{}😀", "中".repeat(68))), (Ucs2, 1, 70));
        assert_eq!(seg(&format!("{}😀", "中".repeat(69))), (Ucs2, 2, 71));
        // 66 + 2 + 66 = 134 units would fit 2 × 67, but the surrogate pair
        // cannot straddle: part 1 = 66, part 2 = 😀 + 65, part 3 = 1.
        assert_eq!(seg(&format!("{}😀{}", "中".repeat(66), "中".repeat(66))), (Ucs2, 3, 134));
        assert_eq!(seg(&format!("{}😀{}", "中".repeat(65), "中".repeat(67))), (Ucs2, 2, 134));
    }

    #[test]
    fn one_non_gsm_char_switches_the_whole_text_to_ucs2() {
        use SmsEncoding::{Gsm7, Ucs2};
        let latin = "a".repeat(100);
        assert_eq!(seg(&latin), (Gsm7, 1, 100));
        // 100 Latin letters + 1 Chinese char = 101 UTF-16 units: 2 UCS-2 parts.
        assert_eq!(seg(&format!("{latin}中")), (Ucs2, 2, 101));
        // Extension chars count 1 unit in UCS-2.
        assert_eq!(seg("€中"), (Ucs2, 1, 2));
        // Characters that look Latin but are not in GSM 03.38.
        assert_eq!(seg("ç").0, Ucs2);
        assert_eq!(seg("á").0, Ucs2);
        assert_eq!(seg("`").0, Ucs2);
        assert_eq!(seg("\t").0, Ucs2);
        assert_eq!(seg("\u{1b}").0, Ucs2, "a raw escape is not a character");
    }

    #[test]
    fn crossing_below_fires_once() {
        assert!(crossed_below(100, 99, 100));
        assert!(crossed_below(150, -20, 100));
        assert!(!crossed_below(100, 100, 100), "still at the threshold");
        assert!(!crossed_below(99, 50, 100), "already below");
        assert!(!crossed_below(50, 150, 100), "moving up");
        assert!(!crossed_below(200, 150, 100));
        assert!(crossed_below(i64::MAX, i64::MIN, 0));
    }
}

/// A tenant's billing settings (document `billing/settings`, set in the admin
/// console, read by the gateway).
pub const BILLING: &str = "billing";
pub const BILLING_SETTINGS: &str = "settings";

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BillingSettings {
    /// Prepaid tenants are checked before paid sends; others are billed afterwards.
    #[serde(default)]
    pub prepaid: bool,
    /// Alert the tenant's administrators when the balance falls below this (0 = off).
    #[serde(default)]
    pub low_balance_minor: i64,
    /// When a prepaid balance is too low: "refuse" the paid send, or
    /// "fallback_free" to a free channel (tiered push).
    #[serde(default = "default_policy")]
    pub policy: String,
}

fn default_policy() -> String {
    "refuse".into()
}

impl Default for BillingSettings {
    fn default() -> Self {
        Self { prepaid: false, low_balance_minor: 0, policy: default_policy() }
    }
}
