//! One row of `jaga stats`: the figures docker computes from two readings,
//! computed by pure functions so they can be checked on hand-made samples.

use jaga_model::{HostCounters, Sample};

/// A reading together with the host counters taken in the same pass.
#[derive(Debug, Clone)]
pub struct Reading {
    pub sample: Sample,
    pub host: HostCounters,
}

/// What one row shows, before formatting (docker's `StatsEntry`).
#[derive(Debug, Clone, PartialEq)]
pub struct StatsEntry {
    /// The name or id the user asked for, else the short id.
    pub container: String,
    /// Full container id.
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub memory_bytes: f64,
    pub memory_limit_bytes: f64,
    pub memory_percent: f64,
    pub network_rx_bytes: f64,
    pub network_tx_bytes: f64,
    pub block_read_bytes: f64,
    pub block_write_bytes: f64,
    pub pids: u64,
    /// Figures could not be read (container vanished or its cgroups were
    /// refused): every figure shows as `--`, as docker does.
    pub invalid: bool,
}

impl StatsEntry {
    /// A container with no processes: docker shows zeros for it.
    pub fn empty(container: String, id: String, name: String) -> Self {
        Self {
            container,
            id,
            name,
            cpu_percent: 0.0,
            memory_bytes: 0.0,
            memory_limit_bytes: 0.0,
            memory_percent: 0.0,
            network_rx_bytes: 0.0,
            network_tx_bytes: 0.0,
            block_read_bytes: 0.0,
            block_write_bytes: 0.0,
            pids: 0,
            invalid: false,
        }
    }

    pub fn invalid(container: String, id: String, name: String) -> Self {
        Self {
            invalid: true,
            ..Self::empty(container, id, name)
        }
    }

    /// Fills the figures from the current reading and, for CPU %, the previous one.
    pub fn with_figures(self, previous: Option<&Reading>, current: &Reading) -> Self {
        let cpu = previous.map_or(0.0, |prev| cpu_percent(prev, current));
        self.with_sample(cpu, &current.sample, &current.host)
    }

    /// Fills the figures from one reading, CPU % given (worked out elsewhere,
    /// e.g. by the running agent from its own previous reading).
    pub fn with_sample(mut self, cpu_percent: f64, sample: &Sample, host: &HostCounters) -> Self {
        self.cpu_percent = cpu_percent;
        self.memory_bytes = sample.memory.usage_without_cache() as f64;
        self.memory_limit_bytes = memory_limit(sample, host) as f64;
        self.memory_percent = if self.memory_limit_bytes > 0.0 {
            self.memory_bytes / self.memory_limit_bytes * 100.0
        } else {
            0.0
        };
        let (rx, tx) = sample.network.total_rx_tx_bytes();
        self.network_rx_bytes = rx as f64;
        self.network_tx_bytes = tx as f64;
        let (read, write) = sample.block_io_totals();
        self.block_read_bytes = read as f64;
        self.block_write_bytes = write as f64;
        self.pids = sample.pids.current;
        self.invalid = false;
        self
    }
}

/// docker's `calculateCPUPercentUnix`: the container's share of all host CPU
/// time in the interval, times the CPUs online, so one busy core reads 100 %.
pub fn cpu_percent(previous: &Reading, current: &Reading) -> f64 {
    let cpu_delta =
        current.sample.cpu.usage_total_ns as f64 - previous.sample.cpu.usage_total_ns as f64;
    let system_delta = current.host.system_cpu_ns as f64 - previous.host.system_cpu_ns as f64;
    let online_cpus = f64::from(current.host.online_cpus);
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online_cpus * 100.0
    } else {
        0.0
    }
}

/// The daemon reports no limit as the host's memory.
pub fn memory_limit(sample: &Sample, host: &HostCounters) -> u64 {
    match sample.memory.limit_bytes {
        Some(limit) if host.mem_total_bytes == 0 || limit < host.mem_total_bytes => limit,
        _ => host.mem_total_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{
        BlockDeviceIo, CgroupVersion, CpuStats, InterfaceStats, MemoryStats, NetworkStats,
        PidsStats,
    };

    fn reading(cpu_ns: u64, system_ns: u64) -> Reading {
        Reading {
            sample: Sample {
                cgroup_version: CgroupVersion::V1,
                monotonic_ns: 0,
                unix_ms: 0,
                cpu: CpuStats {
                    usage_total_ns: cpu_ns,
                    ..CpuStats::default()
                },
                memory: MemoryStats {
                    usage_bytes: 40 * 1024 * 1024,
                    inactive_file_bytes: 8 * 1024 * 1024,
                    limit_bytes: Some(64 * 1024 * 1024),
                    ..MemoryStats::default()
                },
                block_io: vec![
                    BlockDeviceIo {
                        major: 8,
                        minor: 0,
                        read_bytes: 4096,
                        write_bytes: 1_000_000,
                        ..Default::default()
                    },
                    BlockDeviceIo {
                        major: 8,
                        minor: 16,
                        read_bytes: 4096,
                        write_bytes: 0,
                        ..Default::default()
                    },
                ],
                pids: PidsStats {
                    current: 3,
                    limit: None,
                    threads: None,
                },
                network: NetworkStats::Interfaces(vec![InterfaceStats {
                    name: "eth0".into(),
                    rx_bytes: 1500,
                    tx_bytes: 648,
                    ..Default::default()
                }]),
            },
            host: HostCounters {
                system_cpu_ns: system_ns,
                online_cpus: 2,
                mem_total_bytes: 24 * 1024 * 1024 * 1024,
            },
        }
    }

    #[test]
    fn half_a_core_on_two_cpus_is_fifty_percent() {
        // 1 s of wall time on 2 CPUs is 2e9 ns of system time; 0.5e9 ns used.
        let prev = reading(1_000_000_000, 10_000_000_000);
        let cur = reading(1_500_000_000, 12_000_000_000);
        assert_eq!(cpu_percent(&prev, &cur), 50.0);
    }

    #[test]
    fn no_progress_is_zero_not_nan() {
        let r = reading(5, 5);
        assert_eq!(cpu_percent(&r, &r), 0.0);
    }

    #[test]
    fn figures_follow_docker() {
        let prev = reading(0, 0);
        let cur = reading(2_000_000_000, 2_000_000_000);
        let e =
            StatsEntry::empty("c".into(), "id".into(), "n".into()).with_figures(Some(&prev), &cur);
        assert_eq!(e.cpu_percent, 200.0);
        assert_eq!(e.memory_bytes, (32 * 1024 * 1024) as f64);
        assert_eq!(e.memory_limit_bytes, (64 * 1024 * 1024) as f64);
        assert_eq!(e.memory_percent, 50.0);
        assert_eq!((e.network_rx_bytes, e.network_tx_bytes), (1500.0, 648.0));
        assert_eq!(
            (e.block_read_bytes, e.block_write_bytes),
            (8192.0, 1_000_000.0)
        );
        assert_eq!(e.pids, 3);
    }

    #[test]
    fn unlimited_memory_shows_host_memory() {
        let mut cur = reading(0, 0);
        cur.sample.memory.limit_bytes = None;
        assert_eq!(
            memory_limit(&cur.sample, &cur.host),
            24 * 1024 * 1024 * 1024
        );
        cur.sample.memory.limit_bytes = Some(u64::MAX / 2);
        assert_eq!(
            memory_limit(&cur.sample, &cur.host),
            24 * 1024 * 1024 * 1024
        );
    }

    #[test]
    fn inactive_file_larger_than_usage_is_not_subtracted() {
        let mut cur = reading(0, 0);
        cur.sample.memory.inactive_file_bytes = cur.sample.memory.usage_bytes + 1;
        let e = StatsEntry::empty("c".into(), "id".into(), "n".into()).with_figures(None, &cur);
        assert_eq!(e.memory_bytes, (40 * 1024 * 1024) as f64);
    }
}
