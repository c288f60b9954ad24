//! The readers on the machine running the tests: every real file of this
//! kernel must parse. Needs Linux with cgroups mounted; no Docker engine.

use jaga_cgroup::{CgroupReader, ContainerCgroups};
use jaga_model::NetworkStats;

#[test]
fn reads_own_process_and_host_counters() {
    let reader = CgroupReader::discover("/")
        .unwrap_or_else(|err| panic!("cannot discover cgroups on this host: {err}"));
    let pid = std::process::id();
    let cgroups = reader
        .container_cgroups(pid)
        .unwrap_or_else(|err| panic!("cannot resolve cgroups of pid {pid}: {err}"));
    assert_eq!(cgroups.version(), reader.version());
    if let ContainerCgroups::V1 { cpu, memory, .. } = &cgroups {
        assert!(cpu.is_dir() && memory.is_dir(), "{cgroups:?}");
    }

    let sample = reader
        .read_sample(&cgroups, pid, false)
        .unwrap_or_else(|err| panic!("cannot read a sample of pid {pid}: {err}"));
    assert!(sample.cpu.usage_total_ns > 0, "{sample:?}");
    assert!(sample.memory.usage_bytes > 0, "{sample:?}");
    assert!(sample.pids.threads.unwrap_or(1) >= 1, "{sample:?}");
    assert!(
        matches!(sample.network, NetworkStats::Interfaces(_)),
        "{sample:?}"
    );

    let later = reader.read_sample(&cgroups, pid, true).unwrap();
    assert!(later.monotonic_ns >= sample.monotonic_ns);
    assert!(later.cpu.usage_total_ns >= sample.cpu.usage_total_ns);
    assert_eq!(later.network, NetworkStats::HostNetwork);

    let host = reader.read_host().unwrap();
    assert!(host.online_cpus >= 1, "{host:?}");
    assert!(host.system_cpu_ns > 0, "{host:?}");
    assert!(host.mem_total_bytes > 0, "{host:?}");
}
