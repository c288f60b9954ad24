//! A hand-built snapshot shared by the `metrics_*` tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use jaga_model::{
    AgentStats, BlockDeviceIo, CgroupVersion, ContainerId, ContainerRef, ContainerSnapshot,
    ContainerState, CpuStats, DataRootUsage, FsUsage, InterfaceStats, MachineInfo, MemoryStats,
    NetworkStats, PidsStats, Sample, Snapshot, VolumeUsage,
};

pub const WEB_ID: &str = "4f9d3c1e2b7a68d5c0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7";
pub const HOST_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
pub const STOPPED_ID: &str = "0000000000000000000000000000000000000000000000000000000000000bad";

/// `tests/fixtures/metrics/<name>` at the workspace root.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/metrics")
        .join(name)
}

pub fn container_ref(id: &str, name: &str, image: &str, network_mode: &str) -> ContainerRef {
    ContainerRef {
        id: ContainerId::new(id),
        name: name.to_owned(),
        image: image.to_owned(),
        labels: BTreeMap::new(),
        state: ContainerState::Running,
        pid: Some(4242),
        network_mode: network_mode.to_owned(),
        created: 1_699_999_000,
        started_at: Some(1_700_000_000),
        restart_policy: None,
        health: None,
        exit_code: None,
    }
}

/// `web`: on the bridge with `eth0`, two block devices (one unnamed), a CPU
/// quota, a memory limit, labels, a volume and a log file.
pub fn web() -> ContainerSnapshot {
    let mut container = container_ref(WEB_ID, "web", "nginx:1.25", "bridge");
    container.labels = BTreeMap::from([
        ("com.docker.compose.service".to_owned(), "web".to_owned()),
        ("maintainer.email".to_owned(), "ops@example.com".to_owned()),
    ]);
    ContainerSnapshot {
        container: Arc::new(container),
        cgroup_path: format!("/docker/{WEB_ID}"),
        sample: Some(Sample {
            cgroup_version: CgroupVersion::V2,
            monotonic_ns: 5_000_000_000,
            unix_ms: 1_700_000_100_000,
            cpu: CpuStats {
                usage_total_ns: 1_500_000_000,
                usage_user_ns: 1_000_000_000,
                usage_system_ns: 250_000_000,
                periods: 100,
                throttled_periods: 3,
                throttled_time_ns: 12_345_678,
                quota_us: Some(50_000),
                period_us: Some(100_000),
            },
            memory: MemoryStats {
                usage_bytes: 52_428_800,
                working_set_bytes: 41_943_040,
                inactive_file_bytes: 10_485_760,
                cache_bytes: 12_582_912,
                rss_bytes: 31_457_280,
                swap_bytes: None,
                limit_bytes: Some(268_435_456),
                failcnt: 2,
                oom_kills: 1,
            },
            block_io: vec![
                BlockDeviceIo {
                    major: 253,
                    minor: 1,
                    read_bytes: 512,
                    write_bytes: 0,
                    read_ops: 1,
                    write_ops: 0,
                },
                BlockDeviceIo {
                    major: 8,
                    minor: 0,
                    read_bytes: 4_096,
                    write_bytes: 1_048_576,
                    read_ops: 2,
                    write_ops: 256,
                },
            ],
            pids: PidsStats {
                current: 5,
                limit: None,
                threads: Some(9),
            },
            network: NetworkStats::Interfaces(vec![InterfaceStats {
                name: "eth0".to_owned(),
                rx_bytes: 123_456,
                rx_packets: 789,
                rx_errors: 0,
                rx_dropped: 1,
                tx_bytes: 654_321,
                tx_packets: 987,
                tx_errors: 2,
                tx_dropped: 0,
            }]),
        }),
        figures: None,
        fs: Some(FsUsage {
            writable_layer_bytes: Some(8_192),
            volumes: vec![VolumeUsage {
                name: "webdata".to_owned(),
                destination: "/usr/share/nginx/html".to_owned(),
                bytes: 1_000_000,
            }],
            log_file_bytes: Some(2_048),
            truncated: false,
            measured_unix_ms: 1_700_000_090_000,
        }),
        devices: Arc::new(BTreeMap::from([("8:0".to_owned(), "/dev/sda".to_owned())])),
        last_seen_unix: 1_700_000_100,
    }
}

/// `agent-host`: on the host's network, no quota, no memory limit, a pids
/// limit, threads not counted, no disk figures.
pub fn host() -> ContainerSnapshot {
    let mut container = container_ref(HOST_ID, "agent-host", "busybox:latest", "host");
    container.labels = BTreeMap::from([("com.example.tier".to_owned(), "infra".to_owned())]);
    container.started_at = Some(1_700_000_050);
    ContainerSnapshot {
        container: Arc::new(container),
        cgroup_path: format!("/system.slice/docker-{HOST_ID}.scope"),
        sample: Some(Sample {
            cgroup_version: CgroupVersion::V2,
            monotonic_ns: 5_000_000_000,
            unix_ms: 1_700_000_100_000,
            cpu: CpuStats {
                usage_total_ns: 2_000_000_000,
                usage_user_ns: 1_250_000_000,
                usage_system_ns: 750_000_000,
                periods: 0,
                throttled_periods: 0,
                throttled_time_ns: 0,
                quota_us: None,
                period_us: Some(100_000),
            },
            memory: MemoryStats {
                usage_bytes: 1_048_576,
                working_set_bytes: 1_048_576,
                inactive_file_bytes: 0,
                cache_bytes: 0,
                rss_bytes: 983_040,
                swap_bytes: Some(4_096),
                limit_bytes: None,
                failcnt: 0,
                oom_kills: 0,
            },
            block_io: Vec::new(),
            pids: PidsStats {
                current: 1,
                limit: Some(100),
                threads: None,
            },
            network: NetworkStats::HostNetwork,
        }),
        figures: None,
        fs: None,
        devices: Arc::default(),
        last_seen_unix: 1_700_000_100,
    }
}

/// `old`: exited, so no sample.
pub fn stopped() -> ContainerSnapshot {
    let mut container = container_ref(STOPPED_ID, "old", "alpine:3.19", "bridge");
    container.state = ContainerState::Exited;
    container.pid = None;
    container.labels =
        BTreeMap::from([("com.docker.compose.service".to_owned(), "old".to_owned())]);
    ContainerSnapshot {
        container: Arc::new(container),
        cgroup_path: format!("/docker/{STOPPED_ID}"),
        sample: None,
        figures: None,
        fs: Some(FsUsage {
            writable_layer_bytes: Some(4_096),
            volumes: Vec::new(),
            log_file_bytes: Some(100),
            truncated: false,
            measured_unix_ms: 1_700_000_000_000,
        }),
        devices: Arc::default(),
        last_seen_unix: 1_699_999_500,
    }
}

/// The machine, data root and agent around the containers.
pub fn snapshot(containers: Vec<ContainerSnapshot>) -> Snapshot {
    Snapshot {
        taken_unix_ms: 1_700_000_100_000,
        machine: MachineInfo {
            hostname: "docker-host".to_owned(),
            cpu_cores: 4,
            memory_bytes: 8_341_037_056,
            kernel_version: "6.1.0-18-amd64".to_owned(),
            os: "Debian GNU/Linux 12 (bookworm)".to_owned(),
            docker_version: "20.10.24".to_owned(),
            cgroup_version: 2,
            docker_root_dir: "/var/lib/docker".to_owned(),
        },
        data_root: Some(DataRootUsage {
            path: "/var/lib/docker".to_owned(),
            device: "/dev/vda1".to_owned(),
            capacity_bytes: 52_710_469_632,
            used_bytes: 20_000_000_000,
            available_bytes: 30_000_000_000,
        }),
        containers,
        stopped: Vec::new(),
        agent: AgentStats {
            version: "0.1.0".to_owned(),
            started_unix: 1_699_990_000,
            collections_total: 42,
            last_collection_seconds: 0.0125,
            idle_samples_total: 30,
            collection_seconds_sum: 0.5,
            errors_total: BTreeMap::from([("cgroup".to_owned(), 1)]),
            containers_seen: BTreeMap::from([("running".to_owned(), 2), ("exited".to_owned(), 1)]),
            history_points_written_total: 84,
            listener: None,
            logs: None,
            process: Some(jaga_model::ProcessStats {
                mode: "poll".to_owned(),
                unavailable: BTreeMap::from([(
                    "connector".to_owned(),
                    "proc connector unavailable: cannot join the proc connector group: Operation not permitted".to_owned(),
                )]),
                execs_total: 12,
                args_unknown_total: 1,
                lost_total: BTreeMap::from([("poll_unseen".to_owned(), 3)]),
                processes_tracked: 4,
                ..Default::default()
            }),
        },
    }
}

/// The golden snapshot: `web` and `agent-host`, listed out of name order.
pub fn two_containers() -> Snapshot {
    snapshot(vec![web(), host()])
}

/// The first line where `actual` and `expected` differ, for readable failures.
pub fn first_difference(actual: &str, expected: &str) -> Option<String> {
    let mut a = actual.lines();
    let mut e = expected.lines();
    let mut n = 1;
    loop {
        match (a.next(), e.next()) {
            (None, None) => {
                return (actual != expected).then(|| "trailing newline differs".to_owned());
            }
            (x, y) if x == y => n += 1,
            (x, y) => return Some(format!("line {n}:\n  actual:   {x:?}\n  expected: {y:?}")),
        }
    }
}
