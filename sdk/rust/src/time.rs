//! Date formatting without a clock: plugins get the time as
//! [`CallContext::now_ms`](crate::types::CallContext::now_ms) (milliseconds
//! since the Unix epoch, UTC) and format it with these functions.
//!
//! The calendar conversions are Howard Hinnant's `days_from_civil` /
//! `civil_from_days` algorithms (proleptic Gregorian calendar).

const DAY_NAMES: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTH_NAMES: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Civil date `(year, month 1..=12, day 1..=31)` of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day count since 1970-01-01 of a civil date (month 1..=12, day 1..=31).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = month as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 }; // [0, 11]
    let doy = (153 * mp + 2) / 5 + day as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Broken-down UTC time of `now_ms`.
struct Parts {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u64,
    weekday: usize,
}

fn parts(now_ms: u64) -> Parts {
    let secs = now_ms / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    Parts { year, month, day, hour: sod / 3600, minute: sod % 3600 / 60, second: sod % 60, millis: now_ms % 1000, weekday: (days % 7) as usize }
}

/// Started minutes of a duration in seconds, as voice providers bill calls:
/// 0 s is 0, 1–60 s is 1, 61 s is 2.
pub fn started_minutes(duration_secs: u32) -> u32 {
    duration_secs.div_ceil(60)
}

/// RFC 3339 / ISO 8601 UTC timestamp with milliseconds, e.g.
/// `2023-11-14T22:13:20.123Z`.
pub fn rfc3339(now_ms: u64) -> String {
    let p = parts(now_ms);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", p.year, p.month, p.day, p.hour, p.minute, p.second, p.millis)
}

/// RFC 2822 / RFC 5322 date (e-mail `Date:` header), UTC, e.g.
/// `Tue, 14 Nov 2023 22:13:20 +0000`.
pub fn rfc2822(now_ms: u64) -> String {
    let p = parts(now_ms);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        DAY_NAMES[p.weekday],
        p.day,
        MONTH_NAMES[p.month as usize - 1],
        p.year,
        p.hour,
        p.minute,
        p.second
    )
}

/// HTTP date (IMF-fixdate, RFC 9110), e.g. `Tue, 14 Nov 2023 22:13:20 GMT`.
pub fn http_date(now_ms: u64) -> String {
    let p = parts(now_ms);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAY_NAMES[p.weekday],
        p.day,
        MONTH_NAMES[p.month as usize - 1],
        p.year,
        p.hour,
        p.minute,
        p.second
    )
}

/// Parse an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into milliseconds
/// since the epoch. The obsolete RFC 850 and asctime forms are not accepted
/// (returns `None`), nor are dates before 1970.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let s = s.trim();
    let (_, rest) = s.split_once(", ")?;
    let mut it = rest.split(' ');
    let day: u32 = it.next().filter(|d| d.len() == 2)?.parse().ok()?;
    let month_name = it.next()?;
    let month = MONTH_NAMES.iter().position(|m| *m == month_name)? as u32 + 1;
    let year: i64 = it.next().filter(|y| y.len() == 4)?.parse().ok()?;
    let time = it.next()?;
    if it.next()? != "GMT" || it.next().is_some() {
        return None;
    }
    let mut t = time.split(':');
    let mut field = |max: u64| -> Option<u64> {
        let v: u64 = t.next().filter(|f| f.len() == 2)?.parse().ok()?;
        (v <= max).then_some(v)
    };
    let (h, m, sec) = (field(23)?, field(59)?, field(60)?);
    if t.next().is_some() || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if days < 0 {
        return None;
    }
    Some(((days as u64 * 86_400) + h * 3600 + m * 60 + sec) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn started_minutes_round_up() {
        let got: Vec<u32> = [0, 1, 59, 60, 61, 125, 3600].into_iter().map(started_minutes).collect();
        assert_eq!(got, [0, 1, 1, 1, 2, 3, 60]);
    }

    #[test]
    fn civil_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28), 1); // 2100 not leap
        for d in -800_000..800_000i64 {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d, "day {d}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        assert_eq!(rfc2822(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc2822(1_700_000_000_123), "Tue, 14 Nov 2023 22:13:20 +0000");
        assert_eq!(rfc2822(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(http_date(784_111_777_000), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn http_date_parse() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(parse_http_date(&http_date(1_700_000_000_000)), Some(1_700_000_000_000));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 24:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date(""), None);
    }
}
