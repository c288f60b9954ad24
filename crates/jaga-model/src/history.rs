//! The figures kept in history, per container and instant.

use serde::{Deserialize, Serialize};

use crate::FsUsage;

/// Names of the series kept in history, in storage order.
///
/// The last three are disk usage, measured on the slow filesystem cadence
/// (`[filesystem] interval`): a point carries them only when a walk
/// finished since the container's previous point, NaN (missing) otherwise.
/// `volume_bytes` is the sum over the container's volumes, missing when it
/// has none.
pub const HISTORY_SERIES: [&str; SERIES_COUNT] = [
    "cpu_percent",
    "memory_usage_bytes",
    "memory_working_set_bytes",
    "network_rx_bytes_per_second",
    "network_tx_bytes_per_second",
    "block_read_bytes_per_second",
    "block_write_bytes_per_second",
    "pids",
    "memory_limit_bytes",
    "writable_layer_bytes",
    "volume_bytes",
    "log_file_bytes",
];

/// How many series history keeps: the length of every values array.
pub const SERIES_COUNT: usize = 12;

/// Index of the first disk-usage series in [`HISTORY_SERIES`].
pub const FS_SERIES_START: usize = 9;

/// One raw point: rates are over the interval since the previous reading;
/// CPU % is docker's (100 % = one core busy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    pub unix_ms: i64,
    /// Values in the order of [`HISTORY_SERIES`].
    pub values: [f64; SERIES_COUNT],
}

impl HistoryPoint {
    /// Sets the disk-usage series from a filesystem measurement: the
    /// writable layer, the sum of the volumes (missing when there are none)
    /// and the log file; a figure the walk could not take stays missing.
    pub fn set_disk_usage(&mut self, fs: &FsUsage) {
        let bytes = |b: Option<u64>| b.map_or(f64::NAN, |b| b as f64);
        let volumes = (!fs.volumes.is_empty()).then(|| fs.volumes.iter().map(|v| v.bytes).sum());
        self.values[FS_SERIES_START] = bytes(fs.writable_layer_bytes);
        self.values[FS_SERIES_START + 1] = bytes(volumes);
        self.values[FS_SERIES_START + 2] = bytes(fs.log_file_bytes);
    }
}

/// A time bucket summarised: min, average and max of each series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RollupPoint {
    /// Start of the bucket, unix milliseconds.
    pub unix_ms: i64,
    /// Raw points that went into the bucket.
    pub count: u32,
    pub min: [f64; SERIES_COUNT],
    pub avg: [f64; SERIES_COUNT],
    pub max: [f64; SERIES_COUNT],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VolumeUsage;

    fn index(name: &str) -> usize {
        HISTORY_SERIES.iter().position(|s| *s == name).unwrap()
    }

    #[test]
    fn disk_usage_fills_the_fs_series_and_leaves_missing_figures_nan() {
        let mut point = HistoryPoint {
            unix_ms: 1,
            values: [f64::NAN; SERIES_COUNT],
        };
        point.set_disk_usage(&FsUsage {
            writable_layer_bytes: Some(4096),
            volumes: vec![
                VolumeUsage {
                    name: "a".to_owned(),
                    destination: "/a".to_owned(),
                    bytes: 100,
                },
                VolumeUsage {
                    name: "b".to_owned(),
                    destination: "/b".to_owned(),
                    bytes: 23,
                },
            ],
            log_file_bytes: None,
            truncated: false,
            measured_unix_ms: 1,
        });
        assert_eq!(point.values[index("writable_layer_bytes")], 4096.0);
        assert_eq!(point.values[index("volume_bytes")], 123.0);
        assert!(point.values[index("log_file_bytes")].is_nan());
        assert!(point.values[0].is_nan(), "other series untouched");

        point.set_disk_usage(&FsUsage {
            log_file_bytes: Some(0),
            ..FsUsage::default()
        });
        assert!(point.values[index("writable_layer_bytes")].is_nan());
        assert!(
            point.values[index("volume_bytes")].is_nan(),
            "no volumes: missing, not 0"
        );
        assert_eq!(point.values[index("log_file_bytes")], 0.0);
    }
}
