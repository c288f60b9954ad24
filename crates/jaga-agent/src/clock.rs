//! Wall-clock time as the agent stamps things with it.

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Whole seconds since the Unix epoch.
pub fn unix_secs() -> i64 {
    unix_ms() / 1000
}
