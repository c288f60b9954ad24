//! One reading of a container's resource counters, straight from its cgroups.
//!
//! Counters are cumulative as the kernel keeps them; rates are computed by
//! whoever holds two samples.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// Everything read for one container at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub cgroup_version: CgroupVersion,
    /// Monotonic nanoseconds (CLOCK_MONOTONIC-like) when the reading was taken,
    /// for rate computations.
    pub monotonic_ns: u64,
    /// Unix milliseconds when the reading was taken.
    pub unix_ms: i64,
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub block_io: Vec<BlockDeviceIo>,
    pub pids: PidsStats,
    pub network: NetworkStats,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time consumed, nanoseconds.
    pub usage_total_ns: u64,
    pub usage_user_ns: u64,
    pub usage_system_ns: u64,
    /// CFS periods elapsed while the group had runnable tasks.
    pub periods: u64,
    /// Periods in which the group was throttled.
    pub throttled_periods: u64,
    pub throttled_time_ns: u64,
    /// CFS quota in microseconds per period; `None` when unlimited.
    pub quota_us: Option<u64>,
    /// CFS period in microseconds.
    pub period_us: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// `memory.usage_in_bytes` (v1) or `memory.current` (v2).
    pub usage_bytes: u64,
    /// Usage minus inactive file pages, as cAdvisor and kubelet compute it.
    pub working_set_bytes: u64,
    /// `total_inactive_file` (v1) or `inactive_file` (v2).
    pub inactive_file_bytes: u64,
    /// Page cache: `total_cache` (v1) or `file` (v2).
    pub cache_bytes: u64,
    /// Anonymous memory: `total_rss` (v1) or `anon` (v2).
    pub rss_bytes: u64,
    /// Swap in use, when swap accounting is enabled.
    pub swap_bytes: Option<u64>,
    /// Limit in bytes; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// Times usage hit the limit: `memory.failcnt` (v1), `max` in `memory.events` (v2).
    pub failcnt: u64,
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kills: u64,
}

/// Bytes and operations for one block device, as the cgroup accounts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDeviceIo {
    pub major: u32,
    pub minor: u32,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    pub current: u64,
    /// `None` when unlimited (`max`).
    pub limit: Option<u64>,
    /// Threads across the container's processes, when counted.
    pub threads: Option<u64>,
}

/// Network counters of a container's own network namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkStats {
    /// Interfaces of the container's namespace, loopback excluded.
    Interfaces(Vec<InterfaceStats>),
    /// The container shares the host's namespace: its traffic is the host's
    /// and is not counted again per container.
    HostNetwork,
    /// No namespace could be read (no process, or `/proc` refused).
    Unavailable,
}

impl NetworkStats {
    pub fn interfaces(&self) -> &[InterfaceStats] {
        match self {
            Self::Interfaces(list) => list,
            Self::HostNetwork | Self::Unavailable => &[],
        }
    }

    /// Received and transmitted bytes summed over interfaces.
    pub fn total_rx_tx_bytes(&self) -> (u64, u64) {
        self.interfaces()
            .iter()
            .fold((0, 0), |(rx, tx), i| (rx + i.rx_bytes, tx + i.tx_bytes))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Host-wide counters needed to turn container counters into `docker stats` figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCounters {
    /// Sum of all CPU time on the host from `/proc/stat`, nanoseconds (docker's `system_cpu_usage`).
    pub system_cpu_ns: u64,
    /// CPUs online.
    pub online_cpus: u32,
    /// `MemTotal` from `/proc/meminfo`, bytes.
    pub mem_total_bytes: u64,
}

impl MemoryStats {
    /// Memory use as `docker stats` shows it: usage minus inactive file pages
    /// when that is smaller than usage.
    pub fn usage_without_cache(&self) -> u64 {
        if self.inactive_file_bytes < self.usage_bytes {
            self.usage_bytes - self.inactive_file_bytes
        } else {
            self.usage_bytes
        }
    }
}

impl Sample {
    /// Bytes read and written summed over devices.
    pub fn block_io_totals(&self) -> (u64, u64) {
        self.block_io
            .iter()
            .fold((0, 0), |(r, w), d| (r + d.read_bytes, w + d.write_bytes))
    }
}
