//! The figures kept in history, per container and instant.

use serde::{Deserialize, Serialize};

/// Names of the series kept in history, in storage order.
pub const HISTORY_SERIES: [&str; 9] = [
    "cpu_percent",
    "memory_usage_bytes",
    "memory_working_set_bytes",
    "network_rx_bytes_per_second",
    "network_tx_bytes_per_second",
    "block_read_bytes_per_second",
    "block_write_bytes_per_second",
    "pids",
    "memory_limit_bytes",
];

/// One raw point: rates are over the interval since the previous reading;
/// CPU % is docker's (100 % = one core busy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub unix_ms: i64,
    /// Values in the order of [`HISTORY_SERIES`].
    pub values: [f64; 9],
}

/// A time bucket summarised: min, average and max of each series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupPoint {
    /// Start of the bucket, unix milliseconds.
    pub unix_ms: i64,
    /// Raw points that went into the bucket.
    pub count: u32,
    pub min: [f64; 9],
    pub avg: [f64; 9],
    pub max: [f64; 9],
}
