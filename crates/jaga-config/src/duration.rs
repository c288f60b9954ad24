//! Bounds on every duration jaga takes, from the config file or the command
//! line alike: a zero period panics a timer or spins a loop, and a period of
//! centuries overflows the clock arithmetic of the task that uses it.

use std::time::Duration;

/// What a duration is used for decides its sane range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationKind {
    /// A period between two passes, or a timeout: `serve.interval`,
    /// `logs.poll`, `engine.timeout`, `--interval`.
    Period,
    /// How long data is kept: `history.raw`, `alerts.retention`.
    Retention,
}

impl DurationKind {
    /// The shortest and longest value accepted.
    pub fn bounds(self) -> (Duration, Duration) {
        const DAY: u64 = 24 * 60 * 60;
        match self {
            // Below a millisecond tokio's timers round to zero.
            Self::Period => (Duration::from_millis(1), Duration::from_secs(30 * DAY)),
            Self::Retention => (Duration::from_secs(1), Duration::from_secs(100 * 365 * DAY)),
        }
    }
}

/// Why `value` is out of range for `kind`, quoting it; `None` when it fits.
pub fn check_duration(kind: DurationKind, value: Duration) -> Result<(), String> {
    let (min, max) = kind.bounds();
    let shown = humantime::format_duration(value);
    if value < min {
        return Err(format!(
            "'{shown}' is too short: use at least {}",
            humantime::format_duration(min)
        ));
    }
    if value > max {
        return Err(format!(
            "'{shown}' is too long: use at most {}",
            humantime::format_duration(max)
        ));
    }
    Ok(())
}

/// Parses a duration flag (`10s`, `500ms`) and checks it is a sane period:
/// a `clap` value parser, so a bad `--interval` is refused before anything starts.
pub fn parse_period(text: &str) -> Result<Duration, String> {
    let value = humantime::parse_duration(text).map_err(|e| format!("'{text}': {e}"))?;
    check_duration(DurationKind::Period, value).map_err(|why| {
        if humantime::format_duration(value).to_string() == text {
            why
        } else {
            format!("'{text}' ({why})")
        }
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_period_is_refused_with_its_value() {
        assert_eq!(
            check_duration(DurationKind::Period, Duration::ZERO).unwrap_err(),
            "'0s' is too short: use at least 1ms"
        );
    }

    #[test]
    fn period_of_centuries_is_refused() {
        let err = check_duration(DurationKind::Period, Duration::from_secs(100 * 365 * 86400))
            .unwrap_err();
        assert!(err.contains("is too long: use at most 30days"), "{err}");
    }

    #[test]
    fn bounds_are_accepted() {
        for kind in [DurationKind::Period, DurationKind::Retention] {
            let (min, max) = kind.bounds();
            assert_eq!(check_duration(kind, min), Ok(()));
            assert_eq!(check_duration(kind, max), Ok(()));
        }
    }

    #[test]
    fn period_flag_is_parsed_and_checked() {
        assert_eq!(parse_period("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_period("0s").unwrap_err(),
            "'0s' is too short: use at least 1ms"
        );
        assert_eq!(
            parse_period("0ms").unwrap_err(),
            "'0ms' ('0s' is too short: use at least 1ms)"
        );
        assert!(parse_period("soon").unwrap_err().starts_with("'soon': "));
    }
}
