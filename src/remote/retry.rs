//! When to try a request again, and after how long: connection failures,
//! stalls, 5xx and 429 are tried again after 0.5 s, 1 s, 2 s ... (at most
//! 8 s), or after the `Retry-After` a 429 or 503 names (delta-seconds or an
//! HTTP-date, at most [`MAX_RETRY_AFTER`]), as go-containerregistry's retry
//! transport and containers/image do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::remote::client::Reply;

/// The longest `Retry-After` obeyed: a registry asking for more (Docker
/// Hub's rate limit can name hours) gets the retries it allows after this,
/// then the error, which says what it asked.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The pause before retry number `attempt` (0 for the first): what the
/// registry asked, else the backoff.
pub fn pause(attempt: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) => d.min(MAX_RETRY_AFTER),
        None => Duration::from_millis(500u64 << attempt.min(4)),
    }
}

/// The `Retry-After` of a 429 or 503 reply, if it has a readable one.
pub fn retry_after(reply: &Reply) -> Option<Duration> {
    if !matches!(reply.status, 429 | 503) {
        return None;
    }
    parse_retry_after(reply.header("retry-after")?, SystemTime::now())
}

/// `Retry-After: 120` or `Retry-After: Fri, 31 Dec 1999 23:59:59 GMT`
/// (RFC 9110 §10.2.3), as a wait from `now`; a date in the past is no wait.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(v.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an HTTP-date in the IMF-fixdate form every server sends
/// (`Sun, 06 Nov 1994 08:49:37 GMT`); the obsolete forms are not read.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let (_weekday, rest) = s.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts[..] else {
        return None;
    };
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse().ok())
            .flatten()
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let (day, year) = (num(day, 2)?, num(year, 4)?);
    let hms: Vec<&str> = time.split(':').collect();
    let [h, m, sec] = hms[..] else {
        return None;
    };
    let (h, m, sec) = (num(h, 2)?, num(m, 2)?, num(sec, 2)?);
    if !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let secs = crate::gc::time::days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms_of_retry_after() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(now),
            "RFC 9110's example"
        );
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date gone by"
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn pauses_back_off_or_obey_the_registry_up_to_a_cap() {
        let waits: Vec<u64> = (0..7).map(|a| pause(a, None).as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(
            pause(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(pause(2, Some(Duration::from_secs(7200))), MAX_RETRY_AFTER);
    }
}
