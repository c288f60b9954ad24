//! The figures history keeps, derived from two readings of a container.

use std::time::Duration;

use jaga_model::HistoryPoint;

use crate::stats_entry::{cpu_percent, memory_limit, Reading};

/// One history point from the reading before and this one: CPU % as docker
/// computes it, memory as `docker stats` shows it, per-second rates of the
/// network and block I/O counters (0 across a counter reset), PIDs and the
/// memory limit. Order: [`jaga_model::HISTORY_SERIES`]. The disk-usage
/// series are missing (NaN): the collector adds them from the filesystem
/// walks, on their own cadence.
pub fn history_point(previous: &Reading, current: &Reading) -> HistoryPoint {
    let sample = &current.sample;
    let before = &previous.sample;
    let elapsed_s = sample.monotonic_ns.saturating_sub(before.monotonic_ns) as f64 / 1e9;
    let rate = |now: u64, then: u64| {
        if elapsed_s > 0.0 && now >= then {
            (now - then) as f64 / elapsed_s
        } else {
            0.0
        }
    };
    let (rx, tx) = sample.network.total_rx_tx_bytes();
    let (rx_before, tx_before) = before.network.total_rx_tx_bytes();
    let (read, write) = sample.block_io_totals();
    let (read_before, write_before) = before.block_io_totals();
    HistoryPoint {
        unix_ms: sample.unix_ms,
        values: [
            cpu_percent(previous, current),
            sample.memory.usage_without_cache() as f64,
            sample.memory.working_set_bytes as f64,
            rate(rx, rx_before),
            rate(tx, tx_before),
            rate(read, read_before),
            rate(write, write_before),
            sample.pids.current as f64,
            memory_limit(sample, &current.host) as f64,
            f64::NAN,
            f64::NAN,
            f64::NAN,
        ],
    }
}

/// Whether `current` lies far enough after `previous` for rates between
/// them to mean something: half an interval. A slow pass (the inventory at
/// start, a loaded host) can leave a reading a sliver after the last, and a
/// CPU quota granted per 100 ms makes a 50 % container read 0 or 100 % over
/// such a sliver.
pub fn window_long_enough(previous: &Reading, current: &Reading, interval: Duration) -> bool {
    let window_ns = current
        .sample
        .monotonic_ns
        .saturating_sub(previous.sample.monotonic_ns);
    u128::from(window_ns) >= interval.as_nanos() / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{
        CgroupVersion, CpuStats, HostCounters, InterfaceStats, MemoryStats, NetworkStats,
        PidsStats, Sample,
    };

    fn reading(at_s: u64, cpu_ns: u64, host_ns: u64, rx: u64) -> Reading {
        Reading {
            sample: Sample {
                cgroup_version: CgroupVersion::V1,
                monotonic_ns: at_s * 1_000_000_000,
                unix_ms: (at_s * 1000) as i64,
                cpu: CpuStats {
                    usage_total_ns: cpu_ns,
                    ..Default::default()
                },
                memory: MemoryStats {
                    usage_bytes: 100 << 20,
                    working_set_bytes: 80 << 20,
                    inactive_file_bytes: 20 << 20,
                    limit_bytes: Some(256 << 20),
                    ..Default::default()
                },
                block_io: Vec::new(),
                pids: PidsStats {
                    current: 7,
                    ..Default::default()
                },
                network: NetworkStats::Interfaces(vec![InterfaceStats {
                    name: "eth0".into(),
                    rx_bytes: rx,
                    ..Default::default()
                }]),
            },
            host: HostCounters {
                system_cpu_ns: host_ns,
                online_cpus: 2,
                mem_total_bytes: 1 << 30,
            },
        }
    }

    #[test]
    fn rates_and_percentages() {
        // Half a core over 2 s on a 2-CPU host: 4 s of host CPU time.
        let before = reading(10, 0, 0, 1_000);
        let after = reading(12, 1_000_000_000, 4_000_000_000, 5_000);
        let point = history_point(&before, &after);
        assert_eq!(point.unix_ms, 12_000);
        assert_eq!(
            point.values[..jaga_model::FS_SERIES_START],
            [
                50.0,
                (80 << 20) as f64,
                (80 << 20) as f64,
                2_000.0,
                0.0,
                0.0,
                0.0,
                7.0,
                (256 << 20) as f64
            ]
        );
        assert!(
            point.values[jaga_model::FS_SERIES_START..]
                .iter()
                .all(|v| v.is_nan()),
            "disk usage is not measured here: missing, not 0"
        );
    }

    #[test]
    fn counter_reset_reads_as_zero_rate() {
        let before = reading(10, 0, 0, 9_000);
        let after = reading(11, 0, 2_000_000_000, 100);
        assert_eq!(history_point(&before, &after).values[3], 0.0);
    }

    #[test]
    fn a_reading_a_sliver_after_the_last_gives_no_figures() {
        let interval = Duration::from_secs(1);
        let first = reading(10, 0, 0, 0);
        let mut sliver = reading(10, 0, 0, 0);
        sliver.sample.monotonic_ns += 100_000_000;
        assert!(!window_long_enough(&first, &sliver, interval));
        let next = reading(11, 0, 0, 0);
        assert!(window_long_enough(&first, &next, interval));
        // A clock that went backwards is no window either.
        assert!(!window_long_enough(&next, &first, interval));
    }
}
