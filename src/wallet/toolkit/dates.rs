//! Dates as hosted wallet APIs write them, read to unix seconds: RFC 3339 timestamps (Strike's
//! and ln.bot's `expires`, `created`) and `Retry-After` (seconds, or an HTTP date).

use std::time::Duration;

/// Now, in unix seconds, by this machine's clock (for comparing a backend's dates with).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian), or `None` for a date that is
/// not one or comes before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => return None,
    };
    if !(1970..=9999).contains(&year) || day == 0 || day > days_in_month {
        return None;
    }
    // Howard Hinnant's days_from_civil, for years from 1970 (no negative eras).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

fn number(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn seconds_of(days: u64, h: u64, m: u64, s: u64) -> Option<u64> {
    (h < 24 && m < 60 && s < 61).then_some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// An RFC 3339 timestamp (`2026-12-06T10:15:30.123Z`, `...+01:00`) in unix seconds, fractions
/// dropped; `None` when it is not one.
pub fn rfc3339(text: &str) -> Option<u64> {
    let t = text.trim();
    let (date, rest) = t.split_once(['T', 't', ' '])?;
    let mut ymd = date.splitn(3, '-');
    let (y, mo, d) = (ymd.next()?, ymd.next()?, ymd.next()?);
    if y.len() != 4 || mo.len() != 2 || d.len() != 2 {
        return None;
    }
    let days = days_from_civil(number(y)?, number(mo)?, number(d)?)?;
    // The time, then the offset: Z, or +hh:mm / -hh:mm.
    let (time, offset) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0i64)
    } else {
        let at = rest.rfind(['+', '-'])?;
        let (time, off) = rest.split_at(at);
        let (sign, hm) = off.split_at(1);
        let (oh, om) = hm.split_once(':')?;
        let minutes = i64::try_from(number(oh)? * 60 + number(om)?).ok()?;
        (time, if sign == "-" { -minutes } else { minutes })
    };
    let time = time.split_once('.').map_or(time, |(whole, fraction)| {
        if number(fraction).is_some() {
            whole
        } else {
            "invalid"
        }
    });
    let mut hms = time.splitn(3, ':');
    let (h, m, s) = (hms.next()?, hms.next()?, hms.next()?);
    if h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let local = seconds_of(days, number(h)?, number(m)?, number(s)?)?;
    u64::try_from(i64::try_from(local).ok()? - offset * 60).ok()
}

/// An HTTP date in its preferred form (`Sun, 06 Nov 1994 08:49:37 GMT`) in unix seconds.
pub fn http_date(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let (_weekday, d, mon, y, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == mon)? as u64 + 1;
    let days = days_from_civil(number(y)?, month, number(d)?)?;
    let mut hms = time.splitn(3, ':');
    seconds_of(
        days,
        number(hms.next()?)?,
        number(hms.next()?)?,
        number(hms.next()?)?,
    )
}

/// How long a `Retry-After` value asks to wait, at unix time `now`: seconds, or until an HTTP
/// date (a date past is no wait); `None` when it is neither.
pub fn retry_after(value: &str, now: u64) -> Option<Duration> {
    let v = value.trim();
    number(v)
        .or_else(|| http_date(v).map(|at| at.saturating_sub(now)))
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2026-12-06T10:25:30.123Z"), Some(1_796_552_730));
        assert_eq!(rfc3339("2026-12-06T11:25:30+01:00"), Some(1_796_552_730));
        assert_eq!(rfc3339("2026-12-06T05:25:30.5-05:00"), Some(1_796_552_730));
        assert_eq!(rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800));
        for bad in [
            "",
            "2026-12-06",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-12-06T25:00:00Z",
            "2026-12-06T10:25:30",
            "2026-12-06T10:25:30.x1Z",
            "1969-12-31T23:59:59Z",
            "+2026-12-06T10:25:30Z",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(retry_after(" 3 ", 0), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_800),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("-1", 0), None);
        assert_eq!(retry_after("soon", 0), None);
        assert_eq!(http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
    }
}
