//! SMS length rules: how many billable segments a text takes.
//!
//! [`segments`] follows GSM 03.38 / 3GPP TS 23.038 and 23.040, the rules
//! international carriers (and Twilio, Aliyun and Tencent for non-mainland
//! numbers) bill by:
//!
//! - A text made only of characters of the **GSM 7-bit default alphabet** is
//!   sent as GSM-7. Characters of the basic table take one septet; characters
//!   of the extension table (`^ { } \ [ ~ ] | €` and form feed) take two (an
//!   escape plus the character). One segment holds 160 septets; a longer text
//!   is concatenated, and each part holds 153 septets (7 octets go to the
//!   user-data header). An escape pair is never split across two parts, so a
//!   part may hold only 152.
//! - Any other character makes the **whole** text UCS-2: one segment holds 70
//!   UTF-16 code units, each concatenated part 67. A surrogate pair (a
//!   character outside the Basic Multilingual Plane, e.g. most emoji) counts
//!   two and is never split, so a part may hold only 66.
//! - An empty text is one segment.
//!
//! [`segments_china`] is the rule Chinese mainland SMS is billed by (as
//! Aliyun's "短信发送规则" documents it for domestic numbers): every character,
//! Chinese or Latin, full- or half-width, counts one; up to 70 is one segment,
//! longer texts are billed per 67 characters. The signature, with the `【】`
//! the provider adds, is part of the text.

/// How a text is encoded on the air interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 7-bit default alphabet (with the extension table).
    Gsm7,
    /// UCS-2 (UTF-16 code units).
    Ucs2,
}

/// Septets a character takes in GSM-7: 1 (basic table), 2 (extension table,
/// escaped), or `None` if it is not in the GSM 7-bit default alphabet.
pub fn gsm7_septets(c: char) -> Option<u32> {
    match c {
        // Basic table: ASCII letters, digits and punctuation...
        'A'..='Z' | 'a'..='z' | '0'..='9' | ' ' | '\n' | '\r' => Some(1),
        '!' | '"' | '#' | '$' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' => Some(1),
        ',' | '-' | '.' | '/' | ':' | ';' | '<' | '=' | '>' | '?' | '@' | '_' => Some(1),
        // ...and the national and Greek letters of the table.
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' => Some(1),
        'Å' | 'å' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | '§' | '¿' => Some(1),
        'Ä' | 'Ö' | 'Ñ' | 'Ü' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => Some(1),
        'Δ' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' => Some(1),
        // Extension table (ESC + character).
        '\u{000C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€' => Some(2),
        _ => None,
    }
}

/// The encoding `text` is sent in: GSM-7 if every character is in the GSM
/// 7-bit default alphabet (basic or extension table), UCS-2 otherwise.
pub fn encoding(text: &str) -> Encoding {
    if text.chars().all(|c| gsm7_septets(c).is_some()) { Encoding::Gsm7 } else { Encoding::Ucs2 }
}

/// Length of `text` in its encoding's units: septets for GSM-7, UTF-16 code
/// units for UCS-2.
pub fn length(text: &str) -> u32 {
    match encoding(text) {
        Encoding::Gsm7 => text.chars().map(|c| gsm7_septets(c).unwrap_or(1)).sum(),
        Encoding::Ucs2 => text.chars().map(|c| c.len_utf16() as u32).sum(),
    }
}

/// Number of SMS segments `text` is sent (and billed) as, by the GSM 03.38
/// rules described in the [module docs](self). Never 0.
pub fn segments(text: &str) -> u32 {
    let enc = encoding(text);
    let (single, part) = match enc {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    };
    let cost = |c: char| match enc {
        Encoding::Gsm7 => gsm7_septets(c).unwrap_or(1),
        Encoding::Ucs2 => c.len_utf16() as u32,
    };
    let total: u32 = text.chars().map(cost).sum();
    if total <= single {
        return 1;
    }
    // Concatenated: fill parts greedily, never splitting an escape pair or a
    // surrogate pair across two parts.
    let mut parts = 1;
    let mut used = 0;
    for c in text.chars() {
        let n = cost(c);
        if used + n > part {
            parts += 1;
            used = 0;
        }
        used += n;
    }
    parts
}

/// Number of segments a Chinese mainland carrier bills `text` as: every
/// character counts one, up to 70 characters is one segment, longer texts are
/// billed per 67 characters. Include the signature (`【签名】`) in `text`.
/// Never 0.
pub fn segments_china(text: &str) -> u32 {
    let n = text.chars().count() as u32;
    if n <= 70 { 1 } else { n.div_ceil(67) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_one_segment() {
        assert_eq!(segments(""), 1);
        assert_eq!(segments_china(""), 1);
        assert_eq!(encoding(""), Encoding::Gsm7);
        assert_eq!(length(""), 0);
    }

    #[test]
    fn gsm7_single_and_concatenated() {
        assert_eq!(segments("a"), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        assert_eq!(segments(&"a".repeat(459)), 3);
        assert_eq!(segments(&"a".repeat(460)), 4);
        assert_eq!(segments(&"a".repeat(1530)), 10);
    }

    #[test]
    fn gsm7_basic_table_characters_count_one() {
        let basic =
            "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
        assert_eq!(basic.chars().count(), 127, "the 128-entry table minus ESC");
        assert_eq!(encoding(basic), Encoding::Gsm7);
        assert_eq!(length(basic), 127);
        assert_eq!(segments(basic), 1);
        for c in basic.chars() {
            assert_eq!(gsm7_septets(c), Some(1), "{c:?}");
        }
    }

    #[test]
    fn gsm7_extension_characters_count_two() {
        let ext = "\u{000C}^{}\\[~]|€";
        for c in ext.chars() {
            assert_eq!(gsm7_septets(c), Some(2), "{c:?}");
        }
        assert_eq!(encoding(ext), Encoding::Gsm7);
        assert_eq!(length(ext), 20);
        // 80 braces are 160 septets: still one segment; 81 are two.
        assert_eq!(segments(&"{".repeat(80)), 1);
        assert_eq!(segments(&"{".repeat(81)), 2);
        // 159 letters and a euro sign are 161 septets.
        assert_eq!(segments(&format!("{}€", "a".repeat(158))), 1);
        assert_eq!(segments(&format!("{}€", "a".repeat(159))), 2);
    }

    #[test]
    fn gsm7_escape_pair_is_not_split_across_parts() {
        // 306 septets, but the euro sign cannot straddle parts 1 and 2:
        // [152 a] [€ + 151 a] [1 a] = 3 parts, not ceil(306 / 153) = 2.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(length(&text), 306);
        assert_eq!(segments(&text), 3);
        // Without the straddle it fits two parts.
        let text = format!("€{}", "a".repeat(304));
        assert_eq!(length(&text), 306);
        assert_eq!(segments(&text), 2);
    }

    #[test]
    fn characters_outside_gsm7_switch_the_whole_text_to_ucs2() {
        for c in ['中', 'ç', 'ê', 'á', '`', '’', '“', 'Ж', '😀', '\t', '\u{00A0}'] {
            assert_eq!(gsm7_septets(c), None, "{c:?}");
        }
        // 159 GSM letters would be one segment; one 'ç' makes it UCS-2 (160 units).
        let text = format!("{}ç", "a".repeat(159));
        assert_eq!(encoding(&text), Encoding::Ucs2);
        assert_eq!(length(&text), 160);
        assert_eq!(segments(&text), 3);
        assert_eq!(segments("Hello 世界"), 1);
    }

    #[test]
    fn ucs2_single_and_concatenated() {
        assert_eq!(segments(&"中".repeat(70)), 1);
        assert_eq!(segments(&"中".repeat(71)), 2);
        assert_eq!(segments(&"中".repeat(134)), 2);
        assert_eq!(segments(&"中".repeat(135)), 3);
        assert_eq!(segments(&"中".repeat(201)), 3);
        assert_eq!(segments(&"中".repeat(202)), 4);
    }

    #[test]
    fn ucs2_counts_utf16_units_and_never_splits_surrogates() {
        // 35 emoji = 70 UTF-16 units: one segment; 36 = 72: two parts of at most 33 emoji.
        assert_eq!(length(&"😀".repeat(35)), 70);
        assert_eq!(segments(&"😀".repeat(35)), 1);
        assert_eq!(segments(&"😀".repeat(36)), 2);
        assert_eq!(segments(&"😀".repeat(66)), 2);
        assert_eq!(segments(&"😀".repeat(67)), 3);
        // 134 units, but the emoji cannot straddle parts 1 and 2:
        // [66 中] [😀 + 65 中] [1 中] = 3 parts, not ceil(134 / 67) = 2.
        let text = format!("{}😀{}", "中".repeat(66), "中".repeat(66));
        assert_eq!(length(&text), 134);
        assert_eq!(segments(&text), 3);
    }

    #[test]
    fn china_mainland_rule_counts_characters() {
        assert_eq!(segments_china(&"中".repeat(70)), 1);
        assert_eq!(segments_china(&"中".repeat(71)), 2);
        // Latin letters count one too: 160 ASCII letters are 3 mainland segments
        // (67 + 67 + 26, the documented example), but one GSM-7 segment abroad.
        assert_eq!(segments_china(&"a".repeat(160)), 3);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments_china(&"a".repeat(134)), 2);
        assert_eq!(segments_china(&"a".repeat(135)), 3);
        assert_eq!(segments_china("【阿里云】您的验证码为123456"), 1);
    }
}
