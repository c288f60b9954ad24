//! The readers against the fixture trees in `tests/fixtures/cgroup/`
//! (see the README there for where each file came from).

// Helpers outside #[test] functions set up fixtures; a failure there is a test failure.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use jaga_cgroup::{CgroupError, CgroupReader, CgroupVersion, ContainerCgroups};
use jaga_model::{
    BlockDeviceIo, CpuStats, HostCounters, InterfaceStats, MemoryStats, NetworkStats, PidsStats,
    Sample,
};

const V1_ID: &str = "6fb87a39062c77e9812dd6c2f5a4b3d8e0b5dd63e011d7d4057973db098aafad";
const V1_PID: u32 = 13761;
const V1_SYSTEMD_ID: &str = "c7dbe4ccffd8b57cc36a640f00ee23240134d01ea6f70a121a3c2d18bb130043";
const V1_SYSTEMD_PID: u32 = 5385;
const V2_SYSTEMD_ID: &str = "3d1f8a9c2b7e4f60a5d9c8b1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5";
const V2_SYSTEMD_PID: u32 = 2417;
const V2_CGROUPFS_ID: &str = "9f2c7d41e8a35b06c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4";
const V2_CGROUPFS_PID: u32 = 31337;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/cgroup")
        .join(name)
}

/// A writable copy of a fixture tree, for tests that break it.
fn copy_of(name: &str) -> tempfile::TempDir {
    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), dir.path());
    dir
}

/// `actual` with the expected counters and its own timestamps, which are
/// checked for plausibility separately.
fn expected(
    actual: &Sample,
    cgroup_version: CgroupVersion,
    cpu: CpuStats,
    memory: MemoryStats,
    block_io: Vec<BlockDeviceIo>,
    pids: PidsStats,
    network: NetworkStats,
) -> Sample {
    assert!(
        actual.unix_ms > 1_600_000_000_000,
        "unix_ms {}",
        actual.unix_ms
    );
    Sample {
        cgroup_version,
        monotonic_ns: actual.monotonic_ns,
        unix_ms: actual.unix_ms,
        cpu,
        memory,
        block_io,
        pids,
        network,
    }
}

fn v1_cgroupfs_cpu() -> CpuStats {
    CpuStats {
        usage_total_ns: 4_235_198_765,
        usage_user_ns: 3_010_000_000,
        usage_system_ns: 1_120_000_000,
        periods: 5400,
        throttled_periods: 112,
        throttled_time_ns: 8_412_345_678,
        quota_us: Some(50_000),
        period_us: Some(100_000),
    }
}

fn v1_cgroupfs_memory() -> MemoryStats {
    MemoryStats {
        usage_bytes: 52_428_800,
        working_set_bytes: 39_845_888,
        inactive_file_bytes: 12_582_912,
        cache_bytes: 20_971_520,
        rss_bytes: 29_360_128,
        swap_bytes: Some(2_097_152),
        limit_bytes: Some(268_435_456),
        failcnt: 17,
        oom_kills: 2,
    }
}

fn v1_cgroupfs_block_io() -> Vec<BlockDeviceIo> {
    vec![
        BlockDeviceIo {
            major: 7,
            minor: 1,
            read_bytes: 1_048_576,
            write_bytes: 0,
            read_ops: 64,
            write_ops: 0,
        },
        BlockDeviceIo {
            major: 254,
            minor: 0,
            read_bytes: 8_388_608,
            write_bytes: 4_194_304,
            read_ops: 512,
            write_ops: 256,
        },
    ]
}

fn v1_cgroupfs_pids() -> PidsStats {
    PidsStats {
        current: 3,
        limit: Some(100),
        threads: Some(3),
    }
}

fn v1_cgroupfs_network() -> NetworkStats {
    NetworkStats::Interfaces(vec![InterfaceStats {
        name: "eth0".into(),
        rx_bytes: 123_456_789,
        rx_packets: 98_765,
        rx_errors: 1,
        rx_dropped: 2,
        tx_bytes: 87_654_321,
        tx_packets: 54_321,
        tx_errors: 0,
        tx_dropped: 3,
    }])
}

#[test]
fn v1_cgroupfs_hybrid_host_with_separate_cpu_and_cpuacct() {
    let root = fixture("v1-cgroupfs");
    let reader = CgroupReader::discover(&root).unwrap();
    assert_eq!(
        reader.version(),
        CgroupVersion::V1,
        "cgroup2 at unified is ignored"
    );
    assert_eq!(
        reader.v2_mount().map(|m| m.mount_point.as_str()),
        Some("/sys/fs/cgroup/unified")
    );

    let cgroups = reader.container_cgroups(V1_PID).unwrap();
    let base = root.join("sys/fs/cgroup");
    let rel = format!("docker/{V1_ID}");
    assert_eq!(
        cgroups,
        ContainerCgroups::V1 {
            cpu: base.join("cpu").join(&rel),
            cpuacct: base.join("cpuacct").join(&rel),
            memory: base.join("memory").join(&rel),
            blkio: Some(base.join("blkio").join(&rel)),
            pids: Some(base.join("pids").join(&rel)),
        }
    );

    let sample = reader.read_sample(&cgroups, V1_PID, false).unwrap();
    assert_eq!(
        sample,
        expected(
            &sample,
            CgroupVersion::V1,
            v1_cgroupfs_cpu(),
            v1_cgroupfs_memory(),
            v1_cgroupfs_block_io(),
            v1_cgroupfs_pids(),
            v1_cgroupfs_network(),
        )
    );

    assert_eq!(
        reader.read_host().unwrap(),
        HostCounters {
            system_cpu_ns: 1_014_028 * 10_000_000,
            online_cpus: 2,
            mem_total_bytes: 24_684_084 * 1024,
        }
    );
}

#[test]
fn v1_systemd_co_mounted_cpu_cpuacct_and_scope_path() {
    let root = fixture("v1-systemd");
    let reader = CgroupReader::discover(&root).unwrap();
    assert_eq!(reader.version(), CgroupVersion::V1);

    let cgroups = reader.container_cgroups(V1_SYSTEMD_PID).unwrap();
    let base = root.join("sys/fs/cgroup");
    let rel = format!("system.slice/docker-{V1_SYSTEMD_ID}.scope");
    assert_eq!(
        cgroups,
        ContainerCgroups::V1 {
            cpu: base.join("cpu,cpuacct").join(&rel),
            cpuacct: base.join("cpu,cpuacct").join(&rel),
            memory: base.join("memory").join(&rel),
            blkio: Some(base.join("blkio").join(&rel)),
            pids: Some(base.join("pids").join(&rel)),
        }
    );

    let sample = reader.read_sample(&cgroups, V1_SYSTEMD_PID, false).unwrap();
    assert_eq!(
        sample,
        expected(
            &sample,
            CgroupVersion::V1,
            CpuStats {
                usage_total_ns: 987_654_321,
                usage_user_ns: 550_000_000,
                usage_system_ns: 310_000_000,
                periods: 0,
                throttled_periods: 0,
                throttled_time_ns: 0,
                quota_us: None,
                period_us: Some(100_000),
            },
            MemoryStats {
                usage_bytes: 8_388_608,
                working_set_bytes: 5_242_880,
                inactive_file_bytes: 3_145_728,
                cache_bytes: 5_242_880,
                rss_bytes: 2_097_152,
                swap_bytes: None,
                limit_bytes: None,
                failcnt: 0,
                oom_kills: 0,
            },
            // BFQ files come first; the throttle files count 60/6 bios.
            vec![BlockDeviceIo {
                major: 8,
                minor: 0,
                read_bytes: 2_211_840,
                write_bytes: 65_536,
                read_ops: 54,
                write_ops: 4,
            }],
            PidsStats {
                current: 1,
                limit: None,
                threads: Some(1),
            },
            // --network none: only loopback, which is excluded.
            NetworkStats::Interfaces(vec![]),
        )
    );

    assert_eq!(
        reader.read_host().unwrap(),
        HostCounters {
            system_cpu_ns: 1_014_171 * 10_000_000,
            online_cpus: 2,
            mem_total_bytes: 24_684_084 * 1024,
        }
    );
}

#[test]
fn v2_systemd_scope_with_limits() {
    let root = fixture("v2-systemd");
    let reader = CgroupReader::discover(&root).unwrap();
    assert_eq!(reader.version(), CgroupVersion::V2);

    let cgroups = reader.container_cgroups(V2_SYSTEMD_PID).unwrap();
    assert_eq!(
        cgroups,
        ContainerCgroups::V2 {
            dir: root.join(format!(
                "sys/fs/cgroup/system.slice/docker-{V2_SYSTEMD_ID}.scope"
            )),
        }
    );

    let sample = reader.read_sample(&cgroups, V2_SYSTEMD_PID, false).unwrap();
    assert_eq!(
        sample,
        expected(
            &sample,
            CgroupVersion::V2,
            CpuStats {
                usage_total_ns: 7_340_512_000,
                usage_user_ns: 5_120_340_000,
                usage_system_ns: 2_220_172_000,
                periods: 9321,
                throttled_periods: 88,
                throttled_time_ns: 4_567_890_000,
                quota_us: Some(150_000),
                period_us: Some(100_000),
            },
            MemoryStats {
                usage_bytes: 104_857_600,
                working_set_bytes: 83_886_080,
                inactive_file_bytes: 20_971_520,
                cache_bytes: 33_554_432,
                rss_bytes: 62_914_560,
                swap_bytes: Some(4_194_304),
                limit_bytes: Some(536_870_912),
                failcnt: 5,
                oom_kills: 1,
            },
            vec![
                BlockDeviceIo {
                    major: 8,
                    minor: 0,
                    read_bytes: 10_485_760,
                    write_bytes: 2_097_152,
                    read_ops: 300,
                    write_ops: 40,
                },
                BlockDeviceIo {
                    major: 259,
                    minor: 0,
                    read_bytes: 4096,
                    write_bytes: 8192,
                    read_ops: 1,
                    write_ops: 2,
                },
            ],
            PidsStats {
                current: 4,
                limit: Some(200),
                threads: Some(4),
            },
            NetworkStats::Interfaces(vec![
                InterfaceStats {
                    name: "eth0".into(),
                    rx_bytes: 7_340_032,
                    rx_packets: 5120,
                    rx_errors: 0,
                    rx_dropped: 0,
                    tx_bytes: 1_048_576,
                    tx_packets: 2048,
                    tx_errors: 0,
                    tx_dropped: 0,
                },
                InterfaceStats {
                    name: "eth1".into(),
                    rx_bytes: 20_480,
                    rx_packets: 200,
                    rx_errors: 0,
                    rx_dropped: 7,
                    tx_bytes: 4096,
                    tx_packets: 40,
                    tx_errors: 1,
                    tx_dropped: 0,
                },
            ]),
        )
    );

    assert_eq!(
        reader.read_host().unwrap(),
        HostCounters {
            system_cpu_ns: 49_800_256 * 10_000_000,
            online_cpus: 4,
            mem_total_bytes: 16_262_884 * 1024,
        }
    );
}

#[test]
fn v2_cgroupfs_unlimited_without_swap_accounting() {
    let root = fixture("v2-cgroupfs");
    let reader = CgroupReader::discover(&root).unwrap();
    assert_eq!(reader.version(), CgroupVersion::V2);

    let cgroups = reader.container_cgroups(V2_CGROUPFS_PID).unwrap();
    assert_eq!(
        cgroups,
        ContainerCgroups::V2 {
            dir: root.join(format!("sys/fs/cgroup/docker/{V2_CGROUPFS_ID}")),
        }
    );

    let sample = reader
        .read_sample(&cgroups, V2_CGROUPFS_PID, false)
        .unwrap();
    assert_eq!(
        sample,
        expected(
            &sample,
            CgroupVersion::V2,
            CpuStats {
                usage_total_ns: 1_204_553_000,
                usage_user_ns: 803_102_000,
                usage_system_ns: 401_451_000,
                periods: 0,
                throttled_periods: 0,
                throttled_time_ns: 0,
                quota_us: None,
                period_us: Some(100_000),
            },
            MemoryStats {
                usage_bytes: 3_457_024,
                working_set_bytes: 2_420_736,
                inactive_file_bytes: 1_036_288,
                cache_bytes: 1_527_808,
                rss_bytes: 1_212_416,
                swap_bytes: None,
                limit_bytes: None,
                failcnt: 0,
                oom_kills: 0,
            },
            vec![],
            PidsStats {
                current: 1,
                limit: None,
                threads: Some(1),
            },
            NetworkStats::Interfaces(vec![InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 1502,
                rx_packets: 17,
                tx_bytes: 656,
                tx_packets: 8,
                ..InterfaceStats::default()
            }]),
        )
    );

    assert_eq!(
        reader.read_host().unwrap(),
        HostCounters {
            system_cpu_ns: 3_424_395 * 10_000_000,
            online_cpus: 2,
            mem_total_bytes: 4_032_884 * 1024,
        }
    );
}

/// mountinfo as seen inside a container (no cgroup namespace): each
/// hierarchy's `/docker/<id>` is mounted at `/sys/fs/cgroup/<controller>`,
/// and `/proc/1/cgroup` still says `/docker/<id>`.
#[test]
fn mount_root_is_stripped_from_the_cgroup_path() {
    let root = fixture("v1-in-container");
    let reader = CgroupReader::discover(&root).unwrap();
    assert_eq!(reader.version(), CgroupVersion::V1);
    assert!(reader.v2_mount().is_none());

    let cgroups = reader.container_cgroups(1).unwrap();
    let base = root.join("sys/fs/cgroup");
    assert_eq!(
        cgroups,
        ContainerCgroups::V1 {
            cpu: base.join("cpu"),
            cpuacct: base.join("cpuacct"),
            memory: base.join("memory"),
            blkio: Some(base.join("blkio")),
            pids: Some(base.join("pids")),
        }
    );

    let sample = reader.read_sample(&cgroups, 1, false).unwrap();
    assert_eq!(
        sample,
        expected(
            &sample,
            CgroupVersion::V1,
            v1_cgroupfs_cpu(),
            v1_cgroupfs_memory(),
            v1_cgroupfs_block_io(),
            v1_cgroupfs_pids(),
            v1_cgroupfs_network(),
        )
    );
}

#[test]
fn host_network_does_not_read_net_dev() {
    let tree = copy_of("v2-systemd");
    // A net/dev that would fail to parse proves it is not read.
    fs::write(
        tree.path().join(format!("proc/{V2_SYSTEMD_PID}/net/dev")),
        "garbage\n",
    )
    .unwrap();
    let reader = CgroupReader::discover(tree.path()).unwrap();
    let cgroups = reader.container_cgroups(V2_SYSTEMD_PID).unwrap();
    let sample = reader.read_sample(&cgroups, V2_SYSTEMD_PID, true).unwrap();
    assert_eq!(sample.network, NetworkStats::HostNetwork);

    let err = reader
        .read_sample(&cgroups, V2_SYSTEMD_PID, false)
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("net/dev"), "{message}");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn missing_process_is_process_gone() {
    for name in ["v1-cgroupfs", "v2-cgroupfs"] {
        let reader = CgroupReader::discover(fixture(name)).unwrap();
        let err = reader.container_cgroups(999_999).unwrap_err();
        assert!(
            matches!(err, CgroupError::ProcessGone { pid: 999_999 }),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn process_gone_after_resolution_leaves_network_unavailable() {
    let tree = copy_of("v1-cgroupfs");
    let reader = CgroupReader::discover(tree.path()).unwrap();
    let cgroups = reader.container_cgroups(V1_PID).unwrap();
    fs::remove_dir_all(tree.path().join(format!("proc/{V1_PID}"))).unwrap();
    let sample = reader.read_sample(&cgroups, V1_PID, false).unwrap();
    assert_eq!(sample.network, NetworkStats::Unavailable);
    assert_eq!(sample.memory, v1_cgroupfs_memory());
}

#[test]
fn vanished_cgroup_dir_is_cgroup_gone() {
    let tree = copy_of("v1-cgroupfs");
    let reader = CgroupReader::discover(tree.path()).unwrap();
    let cgroups = reader.container_cgroups(V1_PID).unwrap();
    let ContainerCgroups::V1 { memory, .. } = &cgroups else {
        panic!("expected v1 cgroups, got {cgroups:?}");
    };
    fs::remove_dir_all(memory).unwrap();
    match reader.read_sample(&cgroups, V1_PID, false) {
        Err(CgroupError::CgroupGone { path }) => assert_eq!(&path, memory),
        other => panic!("expected CgroupGone, got {other:?}"),
    }
    // Resolving afresh notices the same.
    match reader.container_cgroups(V1_PID) {
        Err(CgroupError::CgroupGone { path }) => assert_eq!(&path, memory),
        other => panic!("expected CgroupGone, got {other:?}"),
    }

    let tree = copy_of("v2-systemd");
    let reader = CgroupReader::discover(tree.path()).unwrap();
    let cgroups = reader.container_cgroups(V2_SYSTEMD_PID).unwrap();
    let ContainerCgroups::V2 { dir } = &cgroups else {
        panic!("expected v2 cgroups, got {cgroups:?}");
    };
    fs::remove_dir_all(dir).unwrap();
    match reader.read_sample(&cgroups, V2_SYSTEMD_PID, false) {
        Err(CgroupError::CgroupGone { path }) => assert_eq!(&path, dir),
        other => panic!("expected CgroupGone, got {other:?}"),
    }
}

#[test]
fn malformed_line_names_path_and_line() {
    let tree = copy_of("v1-cgroupfs");
    let stat = tree
        .path()
        .join(format!("sys/fs/cgroup/memory/docker/{V1_ID}/memory.stat"));
    fs::write(&stat, "cache 20971520\nrss 29360128\nrss_huge zero\n").unwrap();
    let reader = CgroupReader::discover(tree.path()).unwrap();
    let cgroups = reader.container_cgroups(V1_PID).unwrap();
    let err = reader.read_sample(&cgroups, V1_PID, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "malformed '{}' line 3: expected an unsigned integer, found 'zero'",
            stat.display()
        )
    );
    match err {
        CgroupError::Malformed { path, line, .. } => {
            assert_eq!(path, stat);
            assert_eq!(line, Some(3));
        }
        other => panic!("expected Malformed, got {other:?}"),
    }

    let tree = copy_of("v2-cgroupfs");
    let io = tree
        .path()
        .join(format!("sys/fs/cgroup/docker/{V2_CGROUPFS_ID}/io.stat"));
    fs::write(
        &io,
        "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n8:0 rbytes\n",
    )
    .unwrap();
    let reader = CgroupReader::discover(tree.path()).unwrap();
    let cgroups = reader.container_cgroups(V2_CGROUPFS_PID).unwrap();
    let err = reader
        .read_sample(&cgroups, V2_CGROUPFS_PID, false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "malformed '{}' line 2: expected 'key=value', found 'rbytes'",
            io.display()
        )
    );
}

#[test]
fn malformed_proc_files_name_path_and_line() {
    let tree = copy_of("v2-cgroupfs");
    let cgroup = tree.path().join(format!("proc/{V2_CGROUPFS_PID}/cgroup"));
    fs::write(&cgroup, "0::/docker/x\nnonsense\n").unwrap();
    let mountinfo = tree.path().join("proc/self/mountinfo");
    let reader = CgroupReader::discover(tree.path()).unwrap();
    let err = reader.container_cgroups(V2_CGROUPFS_PID).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "malformed '{}' line 2: expected 'id:controllers:path', found 'nonsense'",
            cgroup.display()
        )
    );

    let stat = tree.path().join("proc/stat");
    fs::write(&stat, "cpu  1 2 3\ncpu0 1 2 3\n").unwrap();
    let err = reader.read_host().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "malformed '{}' line 1: expected at least 7 counters on the 'cpu' line, found 3",
            stat.display()
        )
    );

    let mut text = fs::read_to_string(&mountinfo).unwrap();
    text.push_str("99 1 0:99 / /broken rw\n");
    fs::write(&mountinfo, text).unwrap();
    let err = CgroupReader::discover(tree.path()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("malformed '{}' line 14:", mountinfo.display())),
        "{err}"
    );
}

#[test]
fn fixture_files_end_with_newline() {
    fn walk(dir: &Path, bad: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, bad);
            } else {
                let bytes = fs::read(&path).unwrap();
                if !bytes.is_empty() && bytes.last() != Some(&b'\n') {
                    bad.push(path);
                }
            }
        }
    }
    let mut bad = Vec::new();
    walk(&fixture(""), &mut bad);
    bad.retain(|p| !matches!(p.extension(), Some(ext) if ext == "md"));
    assert!(bad.is_empty(), "files without trailing newline: {bad:?}");
}

#[test]
fn cgroup_names_are_cadvisor_ids() {
    let cases = [
        (
            "v1-cgroupfs",
            13761,
            "/docker/6fb87a39062c77e9812dd6c2f5a4b3d8e0b5dd63e011d7d4057973db098aafad",
        ),
        (
            "v1-systemd",
            5385,
            "/system.slice/docker-c7dbe4ccffd8b57cc36a640f00ee23240134d01ea6f70a121a3c2d18bb130043.scope",
        ),
        (
            "v2-cgroupfs",
            31337,
            "/docker/9f2c7d41e8a35b06c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4",
        ),
        (
            "v2-systemd",
            2417,
            "/system.slice/docker-3d1f8a9c2b7e4f60a5d9c8b1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5.scope",
        ),
    ];
    for (name, pid, expected) in cases {
        let reader = CgroupReader::discover(fixture(name)).unwrap();
        assert_eq!(reader.cgroup_name(pid).unwrap(), expected, "{name}");
    }
}

/// The CPU counter kept open for the per-pass idle check gives what the
/// full reading gives, on every kind of tree, follows rewrites of the file
/// (the kernel's counter moving), and tells a removed cgroup.
#[test]
fn kept_cpu_usage_file_reads_what_the_full_sample_reads() {
    for (name, pid) in [
        ("v1-cgroupfs", V1_PID),
        ("v2-systemd", V2_SYSTEMD_PID),
        ("v2-cgroupfs", V2_CGROUPFS_PID),
    ] {
        let tree = copy_of(name);
        let reader = CgroupReader::discover(tree.path()).unwrap();
        let cgroups = reader.container_cgroups(pid).unwrap();
        let kept = reader.open_cpu_usage(&cgroups).unwrap();
        let sample = reader.read_sample(&cgroups, pid, false).unwrap();
        assert_eq!(kept.read_ns().unwrap(), sample.cpu.usage_total_ns, "{name}");
        assert!(sample.cpu.usage_total_ns > 0, "{name}");

        let (file, text) = match &cgroups {
            ContainerCgroups::V1 { cpuacct, .. } => {
                (cpuacct.join("cpuacct.usage"), "987654321\n".to_owned())
            }
            ContainerCgroups::V2 { dir } => {
                let path = dir.join("cpu.stat");
                let before = fs::read_to_string(&path).unwrap();
                let moved: Vec<String> = before
                    .lines()
                    .map(|line| match line.starts_with("usage_usec ") {
                        true => "usage_usec 987654".to_owned(),
                        false => line.to_owned(),
                    })
                    .collect();
                (path, moved.join("\n") + "\n")
            }
        };
        // Rewritten in place, as the kernel's counter moves under an open file.
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .unwrap();
        let expected = match cgroups.version() {
            CgroupVersion::V1 => 987_654_321,
            CgroupVersion::V2 => 987_654_000,
        };
        assert_eq!(kept.read_ns().unwrap(), expected, "{name}");

        let dir = file.parent().unwrap().to_path_buf();
        drop(kept);
        fs::remove_dir_all(&dir).unwrap();
        match reader.open_cpu_usage(&cgroups) {
            Err(CgroupError::CgroupGone { path }) => assert_eq!(path, dir, "{name}"),
            other => panic!("{name}: expected CgroupGone, got {other:?}"),
        }
    }
}
