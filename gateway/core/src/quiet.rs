//! Quiet hours: a daily window, in a time zone, during which non-urgent sends
//! wait.
//!
//! The window runs from `start` (inclusive) to `end` (exclusive), wall-clock
//! "HH:MM" in an IANA zone. It may cross midnight (22:00-08:00) or not
//! (12:00-14:00); `start == end` means no quiet hours. [`release_at`] tells
//! whether a send may go now and, if not, the instant the window ends, in the
//! recipient's zone when known and valid, else the tenant's.
//!
//! Daylight-saving time is handled on the wall clock with `chrono-tz`: the
//! window ends when the local clock first reads `end`. When `end` does not
//! exist that day (it falls in a spring-forward gap), the window ends at the
//! first instant after the gap; when it occurs twice (fall-back), at the first
//! occurrence still in the future.
//!
//! Configuration is checked by [`QuietHours::validate`]; [`release_at`] never
//! panics and, on a configuration that does not validate, lets the send go
//! (quiet hours are a courtesy, holding messages forever is worse).

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Millis;

/// A tenant's quiet hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    /// Start of the window, "HH:MM" (24-hour, local), inclusive.
    pub start: String,
    /// End of the window, "HH:MM" (24-hour, local), exclusive.
    pub end: String,
    /// IANA time zone of the tenant, e.g. "Asia/Shanghai".
    pub time_zone: String,
    /// Levels that ignore quiet hours (compared ignoring ASCII case).
    #[serde(default = "default_levels_exempt")]
    pub levels_exempt: Vec<String>,
}

/// `["urgent"]`.
pub fn default_levels_exempt() -> Vec<String> {
    vec!["urgent".to_string()]
}

impl QuietHours {
    /// `Ok` when both times are "HH:MM" and the zone is a known IANA name;
    /// otherwise an error naming the field.
    /// The field at fault and why.
    pub fn validate(&self) -> Result<(), (&'static str, crate::i18n::Msg)> {
        let hhmm = |field: &'static str, v: &str| (field, crate::msg!("quiet.hhmm", field = field, value = format!("{v:?}")));
        parse_hhmm(&self.start).ok_or_else(|| hhmm("start", &self.start))?;
        parse_hhmm(&self.end).ok_or_else(|| hhmm("end", &self.end))?;
        parse_zone(&self.time_zone)
            .ok_or_else(|| ("time_zone", crate::msg!("quiet.time_zone", field = "time_zone", tz = format!("{:?}", self.time_zone))))?;
        Ok(())
    }
}

/// Strict "HH:MM" (two digits each, 00:00-23:59).
fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return None;
    }
    let digit = |i: usize| b[i].is_ascii_digit().then(|| u32::from(b[i] - b'0'));
    let hour = digit(0)? * 10 + digit(1)?;
    let minute = digit(3)? * 10 + digit(4)?;
    NaiveTime::from_hms_opt(hour, minute, 0)
}

fn parse_zone(s: &str) -> Option<Tz> {
    s.parse::<Tz>().ok()
}

/// Longest stretch searched past a non-existent local end time. Gaps are
/// usually an hour; the largest on record skipped a whole day.
const GAP_SEARCH_MINUTES: i64 = 48 * 60;

/// `None` when a send at `now_ms` at `level` may go now (the level is exempt,
/// there are no quiet hours, or `now` is outside the window); otherwise the
/// epoch ms at which the window ends, judged in `recipient_tz` when it is a
/// valid IANA name, else in the tenant's zone. Always later than `now_ms`
/// when `Some`.
pub fn release_at(q: &QuietHours, now_ms: Millis, level: &str, recipient_tz: Option<&str>) -> Option<Millis> {
    if q.levels_exempt.iter().any(|l| l.eq_ignore_ascii_case(level)) {
        return None;
    }
    let start = parse_hhmm(&q.start)?;
    let end = parse_hhmm(&q.end)?;
    if start == end {
        return None;
    }
    let tz = recipient_tz.and_then(parse_zone).or_else(|| parse_zone(&q.time_zone))?;
    // Local wall time, checked: at the ends of the calendar it may not exist.
    let utc = DateTime::from_timestamp_millis(now_ms)?.naive_utc();
    let local = utc.checked_add_offset(tz.offset_from_utc_datetime(&utc).fix())?;
    // Minute precision is all "HH:MM" has; compare without sub-minute parts.
    let t = NaiveTime::from_hms_opt(local.hour(), local.minute(), 0)?;
    let end_date = if start < end {
        if t < start || t >= end {
            return None;
        }
        local.date()
    } else if t >= start {
        // Crossing midnight, evening part: ends tomorrow.
        local.date().succ_opt()?
    } else if t < end {
        // Crossing midnight, morning part: ends today.
        local.date()
    } else {
        return None;
    };
    first_instant_at_or_after(&tz, end_date.and_time(end), now_ms)
}

/// The first instant later than `after_ms` at which the clock in `tz` reads
/// `wall` (or, if `wall` is skipped by a transition, the first instant after
/// the gap).
fn first_instant_at_or_after(tz: &Tz, wall: NaiveDateTime, after_ms: Millis) -> Option<Millis> {
    let later = |ms: Millis| (ms > after_ms).then_some(ms);
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => later(t.timestamp_millis()),
        LocalResult::Ambiguous(first, second) => later(first.timestamp_millis()).or_else(|| later(second.timestamp_millis())),
        LocalResult::None => {
            // In a gap: step forward a minute at a time to the first local
            // time that exists (transitions fall on whole minutes).
            (1..=GAP_SEARCH_MINUTES).find_map(|m| {
                let w = wall.checked_add_signed(Duration::minutes(m))?;
                tz.from_local_datetime(&w).earliest().and_then(|t| later(t.timestamp_millis()))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> Millis {
        DateTime::parse_from_rfc3339(rfc3339).expect("test time").timestamp_millis()
    }

    fn quiet(start: &str, end: &str, zone: &str) -> QuietHours {
        QuietHours { start: start.into(), end: end.into(), time_zone: zone.into(), levels_exempt: default_levels_exempt() }
    }

    const SHANGHAI: &str = "Asia/Shanghai";

    #[test]
    fn validate_names_the_bad_field() {
        assert_eq!(quiet("22:00", "08:00", SHANGHAI).validate(), Ok(()));
        assert_eq!(quiet("00:00", "23:59", "UTC").validate(), Ok(()));
        for bad in ["24:00", "7:00", "07:60", "0700", "07:00:00", "", "ab:cd", "０7:00", "07;00", "-1:00"] {
            let (field, why) = quiet(bad, "08:00", SHANGHAI).validate().unwrap_err();
            assert_eq!(field, "start", "{bad:?}: {why}");
            let (field, why) = quiet("22:00", bad, SHANGHAI).validate().unwrap_err();
            assert_eq!(field, "end", "{bad:?}: {why}");
        }
        for bad in ["Mars/Olympus", "", "asia/shanghai", "+08:00"] {
            let (field, why) = quiet("22:00", "08:00", bad).validate().unwrap_err();
            assert_eq!(field, "time_zone", "{bad:?}: {why}");
        }
    }

    #[test]
    fn serde_defaults_exempt_levels_to_urgent() {
        let q: QuietHours = serde_json::from_str(r#"{"start":"22:00","end":"08:00","time_zone":"Asia/Shanghai"}"#).unwrap();
        assert_eq!(q, quiet("22:00", "08:00", SHANGHAI));
        let back: QuietHours = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
        assert_eq!(back, q);
    }

    #[test]
    fn same_day_window() {
        let q = quiet("12:00", "14:00", SHANGHAI);
        // Shanghai is UTC+8 all year.
        assert_eq!(release_at(&q, ms("2026-05-01T03:59:59Z"), "normal", None), None, "11:59:59");
        assert_eq!(release_at(&q, ms("2026-05-01T04:00:00Z"), "normal", None), Some(ms("2026-05-01T06:00:00Z")));
        assert_eq!(release_at(&q, ms("2026-05-01T05:59:59Z"), "normal", None), Some(ms("2026-05-01T06:00:00Z")));
        assert_eq!(release_at(&q, ms("2026-05-01T06:00:00Z"), "normal", None), None, "end is exclusive");
        assert_eq!(release_at(&q, ms("2026-05-01T10:00:00Z"), "normal", None), None);
    }

    #[test]
    fn window_crossing_midnight() {
        let q = quiet("22:00", "08:00", SHANGHAI);
        let release = Some(ms("2026-05-02T00:00:00Z")); // 08:00 on 2 May, Shanghai
        assert_eq!(release_at(&q, ms("2026-05-01T13:59:00Z"), "normal", None), None, "21:59");
        assert_eq!(release_at(&q, ms("2026-05-01T14:00:00Z"), "normal", None), release, "22:00");
        assert_eq!(release_at(&q, ms("2026-05-01T15:59:00Z"), "normal", None), release, "23:59");
        assert_eq!(release_at(&q, ms("2026-05-01T16:00:00Z"), "normal", None), release, "00:00");
        assert_eq!(release_at(&q, ms("2026-05-01T23:30:00Z"), "normal", None), release, "07:30");
        assert_eq!(release_at(&q, ms("2026-05-02T00:00:00Z"), "normal", None), None, "08:00");
        // Across a month and year end.
        assert_eq!(release_at(&q, ms("2026-12-31T15:00:00Z"), "normal", None), Some(ms("2027-01-01T00:00:00Z")), "23:00 on 31 Dec");
    }

    #[test]
    fn exempt_levels_and_empty_window_send_now() {
        let inside = ms("2026-05-01T15:00:00Z"); // 23:00 Shanghai
        let q = quiet("22:00", "08:00", SHANGHAI);
        assert_eq!(release_at(&q, inside, "urgent", None), None);
        assert_eq!(release_at(&q, inside, "URGENT", None), None);
        assert!(release_at(&q, inside, "normal", None).is_some());
        let q = QuietHours { levels_exempt: vec![], ..q };
        assert!(release_at(&q, inside, "urgent", None).is_some(), "nothing exempt");
        assert_eq!(release_at(&quiet("22:00", "22:00", SHANGHAI), inside, "normal", None), None);
    }

    #[test]
    fn recipient_zone_wins_when_valid() {
        let q = quiet("22:00", "08:00", SHANGHAI);
        // 14:00Z: 22:00 in Shanghai (quiet), 15:00 in London in summer (not quiet).
        let now = ms("2026-07-01T14:00:00Z");
        assert!(release_at(&q, now, "normal", None).is_some());
        assert_eq!(release_at(&q, now, "normal", Some("Europe/London")), None);
        // 23:00Z: 07:00 in Shanghai (quiet until 00:00Z), 00:00 BST in London (quiet until 07:00Z).
        let now = ms("2026-07-01T23:00:00Z");
        assert_eq!(release_at(&q, now, "normal", None), Some(ms("2026-07-02T00:00:00Z")));
        assert_eq!(release_at(&q, now, "normal", Some("Europe/London")), Some(ms("2026-07-02T07:00:00Z")));
        // An unknown recipient zone falls back to the tenant's.
        assert_eq!(release_at(&q, now, "normal", Some("Nowhere/Land")), Some(ms("2026-07-02T00:00:00Z")));
    }

    #[test]
    fn dst_spring_forward_in_new_york() {
        // 2026-03-08: clocks jump 02:00 EST -> 03:00 EDT (07:00Z).
        let q = quiet("22:00", "08:00", "America/New_York");
        // 01:00 EST. 08:00 that day is EDT (12:00Z): 7 wall hours but only 6 real ones.
        assert_eq!(release_at(&q, ms("2026-03-08T06:00:00Z"), "normal", None), Some(ms("2026-03-08T12:00:00Z")));
        // 23:00 EST the evening before: same release.
        assert_eq!(release_at(&q, ms("2026-03-08T04:00:00Z"), "normal", None), Some(ms("2026-03-08T12:00:00Z")));
        // An end time inside the gap: the window ends when the gap does (03:00 EDT).
        let q = quiet("01:00", "02:30", "America/New_York");
        assert_eq!(release_at(&q, ms("2026-03-08T06:30:00Z"), "normal", None), Some(ms("2026-03-08T07:00:00Z")));
    }

    #[test]
    fn dst_fall_back_in_new_york() {
        // 2026-11-01: clocks go 02:00 EDT -> 01:00 EST (06:00Z); 01:00-01:59 happens twice.
        let q = quiet("22:00", "08:00", "America/New_York");
        // 23:00 EDT the evening before; 08:00 EST is 13:00Z.
        assert_eq!(release_at(&q, ms("2026-11-01T03:00:00Z"), "normal", None), Some(ms("2026-11-01T13:00:00Z")));
        // End at an ambiguous time: the first 01:30 (EDT, 05:30Z)...
        let q = quiet("00:00", "01:30", "America/New_York");
        assert_eq!(release_at(&q, ms("2026-11-01T04:30:00Z"), "normal", None), Some(ms("2026-11-01T05:30:00Z")));
        // ...but once that has passed and the clock reads 01:15 again (EST), the second one.
        assert_eq!(release_at(&q, ms("2026-11-01T06:15:00Z"), "normal", None), Some(ms("2026-11-01T06:30:00Z")));
    }

    #[test]
    fn bad_configuration_or_time_lets_the_send_go() {
        let now = ms("2026-05-01T15:00:00Z");
        assert_eq!(release_at(&quiet("25:00", "08:00", SHANGHAI), now, "normal", None), None);
        assert_eq!(release_at(&quiet("22:00", "08:00", "Mars/Olympus"), now, "normal", None), None);
        // A valid recipient zone still works when the tenant's is bad.
        assert!(release_at(&quiet("00:00", "23:59", "Mars/Olympus"), now, "normal", Some("UTC")).is_some());
        let max = DateTime::<chrono::Utc>::MAX_UTC.timestamp_millis();
        let min = DateTime::<chrono::Utc>::MIN_UTC.timestamp_millis();
        for t in [i64::MIN, i64::MAX, 0, -1, max, max - 3_600_000, min, min + 1] {
            let _ = release_at(&quiet("00:00", "23:59", "Pacific/Apia"), t, "normal", None);
            let _ = release_at(&quiet("23:59", "00:00", "UTC"), t, "normal", None);
            let _ = release_at(&quiet("00:00", "23:59", "Pacific/Kiritimati"), t, "normal", None);
            let _ = release_at(&quiet("00:00", "23:59", "Etc/GMT+12"), t, "normal", None);
        }
    }

    #[test]
    fn samoa_skipped_a_whole_day() {
        // Pacific/Apia skipped 30 Dec 2011: 29 Dec 23:59:59 (UTC-10) -> 31 Dec 00:00 (UTC+14).
        let q = quiet("22:00", "12:00", "Pacific/Apia");
        // 22:00 on 29 Dec (08:00Z on the 30th); 12:00 on the 30th does not exist.
        let release = release_at(&q, ms("2011-12-30T08:00:00Z"), "normal", None);
        assert_eq!(release, Some(ms("2011-12-30T10:00:00Z")), "first instant of the 31st");
    }
}
