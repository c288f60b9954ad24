//! Query parameters of the REST API, parsed the way Prometheus' HTTP API
//! reads them: times as RFC 3339 or Unix seconds, durations as `30s`, `5m`
//! or plain seconds.

use std::time::Duration;

use chrono::DateTime;

/// A time parameter: `now`, RFC 3339 (`2026-11-23T10:00:00Z`) or Unix
/// seconds with an optional fraction (`1700000000.5`). Milliseconds since
/// the epoch.
pub fn parse_time(value: &str, now_ms: i64) -> Result<i64, String> {
    let value = value.trim();
    if value == "now" {
        return Ok(now_ms);
    }
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds.abs() < 1e12 {
            return Ok((seconds * 1000.0).round() as i64);
        }
        return Err(format!(
            "'{value}' is out of range for a Unix time in seconds"
        ));
    }
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            format!("'{value}' is not a time: use RFC 3339 (2026-11-23T10:00:00Z), Unix seconds or 'now'")
        })
}

/// A duration parameter: `30s`, `5m`, `1h30m`, `250ms`, or seconds (`15`, `0.5`).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if (0.0..1e12).contains(&seconds) {
            return Ok(Duration::from_secs_f64(seconds));
        }
        return Err(format!("'{value}' is not a non-negative number of seconds"));
    }
    humantime::parse_duration(value)
        .map_err(|_| format!("'{value}' is not a duration: use 30s, 5m, 1h or seconds"))
}

pub fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("now", 42), Ok(42));
        assert_eq!(parse_time("1700000000", 0), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.25", 0), Ok(1_700_000_000_250));
        assert_eq!(parse_time("2023-11-14T22:13:20Z", 0), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00", 0),
            Ok(1_700_000_000_000)
        );
        assert!(parse_time("yesterday", 0)
            .unwrap_err()
            .contains("'yesterday'"));
        assert!(parse_time("1e300", 0).is_err());
        assert!(parse_time("NaN", 0).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("fast").unwrap_err().contains("'fast'"));
    }
}
