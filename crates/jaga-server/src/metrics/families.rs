//! Which families a snapshot turns into: cAdvisor's container and machine
//! metrics, and jaga's own `jaga_*` extras.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use jaga_model::cadvisor_label_name as sanitize_label_name;
use jaga_model::{
    BackfillStats, ContainerSnapshot, ContainerState, OutputStats, Sample, Snapshot, TaskHealth,
};

use super::text::{Family, Kind, Label, Series, Value};
use super::LabelOptions;
use crate::listen::{HttpStats, TimedOut};

/// Prefix cAdvisor puts before a Docker label's sanitised key.
const CONTAINER_LABEL_PREFIX: &str = "container_label_";

/// Error kinds always exported, `0` until one happens, so that alert rules
/// can tell "no errors" from "no data".
const ERROR_KINDS: [&str; 5] = [
    "cgroup",
    "container_gone",
    "engine",
    "filesystem",
    "history",
];

/// Container states always exported by `jaga_containers`.
const CONTAINER_STATES: [ContainerState; 8] = [
    ContainerState::Created,
    ContainerState::Running,
    ContainerState::Paused,
    ContainerState::Restarting,
    ContainerState::Removing,
    ContainerState::Exited,
    ContainerState::Dead,
    ContainerState::Unknown,
];

/// A container with a sample, and the labels every one of its series carries.
struct Running<'a> {
    snapshot: &'a ContainerSnapshot,
    sample: &'a Sample,
    labels: Vec<Label<'a>>,
}

/// Every family of the snapshot, sorted by name; families may be empty.
pub(crate) fn collect<'a>(
    snapshot: &'a Snapshot,
    http: Option<&HttpStats>,
    options: &LabelOptions,
) -> Vec<Family<'a>> {
    let mut running: Vec<Running<'a>> = snapshot
        .containers
        .iter()
        .filter_map(|c| {
            c.sample.as_ref().map(|sample| Running {
                snapshot: c,
                sample,
                labels: container_labels(c, options),
            })
        })
        .collect();
    running.sort_by(|a, b| {
        let key = |r: &Running<'a>| {
            (
                r.snapshot.container.name.as_str(),
                r.snapshot.cgroup_path.as_str(),
            )
        };
        key(a).cmp(&key(b))
    });

    let mut families = Vec::with_capacity(64);
    container_cpu(&running, &mut families);
    container_memory(&running, &mut families);
    container_spec_and_processes(&running, &mut families);
    container_network(&running, &mut families);
    container_disk(snapshot, &running, &mut families);
    machine(snapshot, &mut families);
    agent(snapshot, &mut families);
    if let Some(http) = http {
        http_server(http, &mut families);
    }
    families.sort_by_key(|f| f.name);
    families
}

fn family<'a>(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    series: Vec<Series<'a>>,
) -> Family<'a> {
    Family {
        name,
        help,
        kind,
        series,
    }
}

/// `id`, `image`, `name` and the allowed `container_label_*`, sorted by name.
fn container_labels<'a>(c: &'a ContainerSnapshot, options: &LabelOptions) -> Vec<Label<'a>> {
    let mut labels: Vec<Label<'a>> = vec![
        (Cow::Borrowed("id"), Cow::Borrowed(c.cgroup_path.as_str())),
        (
            Cow::Borrowed("name"),
            Cow::Borrowed(c.container.name.as_str()),
        ),
    ];
    if !c.container.image.is_empty() {
        labels.push((
            Cow::Borrowed("image"),
            Cow::Borrowed(c.container.image.as_str()),
        ));
    }
    let mut names = BTreeSet::new();
    for (key, value) in &c.container.labels {
        if !options.allows(key) {
            continue;
        }
        let name = format!("{CONTAINER_LABEL_PREFIX}{}", sanitize_label_name(key));
        // Two keys may sanitise alike (`a.b`, `a_b`); the first in byte order wins.
        if names.insert(name.clone()) {
            labels.push((Cow::Owned(name), Cow::Borrowed(value.as_str())));
        }
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels
}

/// The container's labels plus the series' own, sorted by name.
fn with_extra<'a>(base: &[Label<'a>], extra: Vec<Label<'a>>) -> Vec<Label<'a>> {
    let mut labels = Vec::with_capacity(base.len() + extra.len());
    labels.extend(base.iter().cloned());
    labels.extend(extra);
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels
}

/// One series per container, for the containers `value` returns a value for.
fn per_container<'a>(
    running: &[Running<'a>],
    value: impl Fn(&Running<'a>) -> Option<Value>,
) -> Vec<Series<'a>> {
    running
        .iter()
        .filter_map(|r| {
            value(r).map(|value| Series {
                labels: r.labels.clone(),
                value,
            })
        })
        .collect()
}

/// Several series per container, each with its own extra labels, in the
/// order `entries` gives them.
fn per_entry<'a>(
    running: &[Running<'a>],
    entries: impl Fn(&Running<'a>) -> Vec<(Vec<Label<'a>>, Value)>,
) -> Vec<Series<'a>> {
    running
        .iter()
        .flat_map(|r| {
            entries(r).into_iter().map(|(extra, value)| Series {
                labels: with_extra(&r.labels, extra),
                value,
            })
        })
        .collect()
}

fn label<'a>(name: &'static str, value: impl Into<Cow<'a, str>>) -> Label<'a> {
    (Cow::Borrowed(name), value.into())
}

fn container_cpu<'a>(running: &[Running<'a>], out: &mut Vec<Family<'a>>) {
    let cpu = |r: &Running<'a>| &r.sample.cpu;
    // cAdvisor exports CFS statistics only for containers with a quota.
    let with_quota = |r: &Running<'a>, v: u64| cpu(r).quota_us.map(|_| v);
    out.push(family(
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        Kind::Counter,
        per_container(running, |r| {
            with_quota(r, cpu(r).periods).map(Value::Unsigned)
        }),
    ));
    out.push(family(
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        Kind::Counter,
        per_container(running, |r| {
            with_quota(r, cpu(r).throttled_periods).map(Value::Unsigned)
        }),
    ));
    out.push(family(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        Kind::Counter,
        per_container(running, |r| {
            with_quota(r, cpu(r).throttled_time_ns).map(Value::NanosAsSeconds)
        }),
    ));
    out.push(family(
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        Kind::Counter,
        per_container(running, |r| {
            Some(Value::NanosAsSeconds(cpu(r).usage_system_ns))
        }),
    ));
    out.push(family(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        Kind::Counter,
        per_entry(running, |r| {
            vec![(
                vec![label("cpu", "total")],
                Value::NanosAsSeconds(cpu(r).usage_total_ns),
            )]
        }),
    ));
    out.push(family(
        "container_cpu_user_seconds_total",
        "Cumulative user cpu time consumed in seconds.",
        Kind::Counter,
        per_container(running, |r| {
            Some(Value::NanosAsSeconds(cpu(r).usage_user_ns))
        }),
    ));
}

fn container_memory<'a>(running: &[Running<'a>], out: &mut Vec<Family<'a>>) {
    let mem = |r: &Running<'a>| &r.sample.memory;
    type Get = fn(&jaga_model::MemoryStats) -> u64;
    let gauges: [(&'static str, &'static str, Get); 5] = [
        (
            "container_memory_usage_bytes",
            "Current memory usage in bytes, including all memory regardless of when it was accessed",
            |m| m.usage_bytes,
        ),
        ("container_memory_working_set_bytes", "Current working set in bytes.", |m| {
            m.working_set_bytes
        }),
        ("container_memory_rss", "Size of RSS in bytes.", |m| m.rss_bytes),
        ("container_memory_cache", "Number of bytes of page cache memory.", |m| m.cache_bytes),
        ("container_memory_swap", "Container swap usage in bytes.", |m| {
            m.swap_bytes.unwrap_or(0)
        }),
    ];
    for (name, help, get) in gauges {
        out.push(family(
            name,
            help,
            Kind::Gauge,
            per_container(running, |r| Some(Value::Unsigned(get(mem(r))))),
        ));
    }
    out.push(family(
        "container_memory_failcnt",
        "Number of memory usage hits limits",
        Kind::LegacyCounter,
        per_container(running, |r| Some(Value::Unsigned(mem(r).failcnt))),
    ));
    out.push(family(
        "container_oom_events_total",
        "Count of out of memory events observed for the container",
        Kind::Counter,
        per_container(running, |r| Some(Value::Unsigned(mem(r).oom_kills))),
    ));
}

fn container_spec_and_processes<'a>(running: &[Running<'a>], out: &mut Vec<Family<'a>>) {
    out.push(family(
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        Kind::Gauge,
        per_container(running, |r| {
            Some(Value::Unsigned(r.sample.memory.limit_bytes.unwrap_or(0)))
        }),
    ));
    out.push(family(
        "container_spec_cpu_quota",
        "CPU quota of the container.",
        Kind::Gauge,
        per_container(running, |r| r.sample.cpu.quota_us.map(Value::Unsigned)),
    ));
    out.push(family(
        "container_spec_cpu_period",
        "CPU period of the container.",
        Kind::Gauge,
        per_container(running, |r| {
            r.sample
                .cpu
                .period_us
                .filter(|p| *p != 0)
                .map(Value::Unsigned)
        }),
    ));
    out.push(family(
        "container_processes",
        "Number of processes running inside the container.",
        Kind::Gauge,
        per_container(running, |r| Some(Value::Unsigned(r.sample.pids.current))),
    ));
    out.push(family(
        "container_threads",
        "Number of threads running inside the container",
        Kind::Gauge,
        per_container(running, |r| r.sample.pids.threads.map(Value::Unsigned)),
    ));
    out.push(family(
        "container_threads_max",
        "Maximum number of threads allowed inside the container, infinity if value is zero",
        Kind::Gauge,
        per_container(running, |r| {
            Some(Value::Unsigned(r.sample.pids.limit.unwrap_or(0)))
        }),
    ));
    out.push(family(
        "container_last_seen",
        "Last time a container was seen by the exporter",
        Kind::Gauge,
        per_container(running, |r| Some(Value::Signed(r.snapshot.last_seen_unix))),
    ));
    out.push(family(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        Kind::Gauge,
        per_container(running, |r| {
            r.snapshot.container.started_at.map(Value::Signed)
        }),
    ));
}

fn container_network<'a>(running: &[Running<'a>], out: &mut Vec<Family<'a>>) {
    type Get = fn(&jaga_model::InterfaceStats) -> u64;
    let counters: [(&'static str, &'static str, Get); 8] = [
        (
            "container_network_receive_bytes_total",
            "Cumulative count of bytes received",
            |i| i.rx_bytes,
        ),
        (
            "container_network_receive_errors_total",
            "Cumulative count of errors encountered while receiving",
            |i| i.rx_errors,
        ),
        (
            "container_network_receive_packets_dropped_total",
            "Cumulative count of packets dropped while receiving",
            |i| i.rx_dropped,
        ),
        (
            "container_network_receive_packets_total",
            "Cumulative count of packets received",
            |i| i.rx_packets,
        ),
        (
            "container_network_transmit_bytes_total",
            "Cumulative count of bytes transmitted",
            |i| i.tx_bytes,
        ),
        (
            "container_network_transmit_errors_total",
            "Cumulative count of errors encountered while transmitting",
            |i| i.tx_errors,
        ),
        (
            "container_network_transmit_packets_dropped_total",
            "Cumulative count of packets dropped while transmitting",
            |i| i.tx_dropped,
        ),
        (
            "container_network_transmit_packets_total",
            "Cumulative count of packets transmitted",
            |i| i.tx_packets,
        ),
    ];
    for (name, help, get) in counters {
        let series = per_entry(running, |r| {
            // Host-network and unreadable namespaces have no interfaces here.
            let by_name: BTreeMap<&str, _> = r
                .sample
                .network
                .interfaces()
                .iter()
                .rev()
                .map(|i| (i.name.as_str(), i))
                .collect();
            by_name
                .into_iter()
                .map(|(iface, stats)| {
                    (vec![label("interface", iface)], Value::Unsigned(get(stats)))
                })
                .collect()
        });
        out.push(family(name, help, Kind::Counter, series));
    }
}

fn container_disk<'a>(snapshot: &'a Snapshot, running: &[Running<'a>], out: &mut Vec<Family<'a>>) {
    type Get = fn(&jaga_model::BlockDeviceIo) -> u64;
    let counters: [(&'static str, &'static str, Get); 4] = [
        (
            "container_fs_reads_bytes_total",
            "Cumulative count of bytes read",
            |d| d.read_bytes,
        ),
        (
            "container_fs_reads_total",
            "Cumulative count of reads completed",
            |d| d.read_ops,
        ),
        (
            "container_fs_writes_bytes_total",
            "Cumulative count of bytes written",
            |d| d.write_bytes,
        ),
        (
            "container_fs_writes_total",
            "Cumulative count of writes completed",
            |d| d.write_ops,
        ),
    ];
    for (name, help, get) in counters {
        let series = per_entry(running, |r| {
            // Keyed by the device label: sorted, and one series per device.
            let mut by_device: BTreeMap<Cow<'a, str>, _> = BTreeMap::new();
            for io in &r.sample.block_io {
                let key = format!("{}:{}", io.major, io.minor);
                let device = match r.snapshot.devices.get(&key) {
                    Some(name) => Cow::Borrowed(name.as_str()),
                    None => Cow::Owned(key),
                };
                by_device.entry(device).or_insert(io);
            }
            by_device
                .into_iter()
                .map(|(device, io)| (vec![label("device", device)], Value::Unsigned(get(io))))
                .collect()
        });
        out.push(family(name, help, Kind::Counter, series));
    }

    let data_root_device = snapshot
        .data_root
        .as_ref()
        .map(|d| d.device.as_str())
        .unwrap_or("");
    out.push(family(
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        Kind::Gauge,
        per_entry(running, |r| {
            r.snapshot
                .fs
                .as_ref()
                .and_then(|fs| fs.writable_layer_bytes)
                .map(|bytes| {
                    (
                        vec![label("device", data_root_device)],
                        Value::Unsigned(bytes),
                    )
                })
                .into_iter()
                .collect()
        }),
    ));
    out.push(family(
        "jaga_container_volume_usage_bytes",
        "Number of bytes used by a volume or bind mount of the container.",
        Kind::Gauge,
        per_entry(running, |r| {
            let Some(fs) = r.snapshot.fs.as_ref() else {
                return Vec::new();
            };
            let by_volume: BTreeMap<(&str, &str), u64> = fs
                .volumes
                .iter()
                .rev()
                .map(|v| ((v.name.as_str(), v.destination.as_str()), v.bytes))
                .collect();
            by_volume
                .into_iter()
                .map(|((volume, destination), bytes)| {
                    (
                        vec![label("destination", destination), label("volume", volume)],
                        Value::Unsigned(bytes),
                    )
                })
                .collect()
        }),
    ));
    out.push(family(
        "jaga_container_log_usage_bytes",
        "Number of bytes used by the container's json-file log.",
        Kind::Gauge,
        per_container(running, |r| {
            r.snapshot
                .fs
                .as_ref()
                .and_then(|fs| fs.log_file_bytes)
                .map(Value::Unsigned)
        }),
    ));
}

fn machine<'a>(snapshot: &'a Snapshot, out: &mut Vec<Family<'a>>) {
    let machine = &snapshot.machine;
    out.push(family(
        "machine_cpu_cores",
        "Number of logical CPU cores.",
        Kind::Gauge,
        vec![unlabelled(Value::Unsigned(u64::from(machine.cpu_cores)))],
    ));
    out.push(family(
        "machine_memory_bytes",
        "Amount of memory installed on the machine.",
        Kind::Gauge,
        vec![unlabelled(Value::Unsigned(machine.memory_bytes))],
    ));

    let Some(root) = snapshot.data_root.as_ref() else {
        return;
    };
    let root_labels = || {
        vec![
            label("device", root.device.as_str()),
            label("path", root.path.as_str()),
        ]
    };
    let gauges = [
        (
            "jaga_docker_data_root_capacity_bytes",
            "Size in bytes of the filesystem holding Docker's data root.",
            root.capacity_bytes,
        ),
        (
            "jaga_docker_data_root_used_bytes",
            "Bytes used on the filesystem holding Docker's data root.",
            root.used_bytes,
        ),
        (
            "jaga_docker_data_root_available_bytes",
            "Bytes available to unprivileged users on the filesystem holding Docker's data root.",
            root.available_bytes,
        ),
    ];
    for (name, help, bytes) in gauges {
        out.push(family(
            name,
            help,
            Kind::Gauge,
            vec![Series {
                labels: root_labels(),
                value: Value::Unsigned(bytes),
            }],
        ));
    }
}

fn agent<'a>(snapshot: &'a Snapshot, out: &mut Vec<Family<'a>>) {
    let agent = &snapshot.agent;
    out.push(family(
        "jaga_build_info",
        "A metric with a constant '1' value labeled by the jaga version.",
        Kind::Info,
        vec![Series {
            labels: vec![label("version", agent.version.as_str())],
            value: Value::Unsigned(1),
        }],
    ));
    out.push(family(
        "jaga_start_time_seconds",
        "Start time of the jaga process since unix epoch in seconds.",
        Kind::Gauge,
        vec![unlabelled(Value::Signed(agent.started_unix))],
    ));
    out.push(family(
        "jaga_collections_total",
        "Number of completed collection passes.",
        Kind::Counter,
        vec![unlabelled(Value::Unsigned(agent.collections_total))],
    ));
    out.push(family(
        "jaga_collection_idle_reads_total",
        "Container readings taken from the CPU counter alone, the container having used no CPU since its last full reading.",
        Kind::Counter,
        vec![unlabelled(Value::Unsigned(agent.idle_samples_total))],
    ));
    out.push(family(
        "jaga_collection_duration_seconds_last",
        "Duration of the last collection pass in seconds.",
        Kind::Gauge,
        vec![unlabelled(Value::Float(agent.last_collection_seconds))],
    ));
    out.push(family(
        "jaga_collection_duration_seconds_total",
        "Cumulative time spent in collection passes in seconds.",
        Kind::Counter,
        vec![unlabelled(Value::Float(agent.collection_seconds_sum))],
    ));
    out.push(family(
        "jaga_history_points_written_total",
        "Number of history points written to the store.",
        Kind::Counter,
        vec![unlabelled(Value::Unsigned(
            agent.history_points_written_total,
        ))],
    ));

    if let Some(listener) = &agent.listener {
        out.push(family(
            "jaga_docker_listener_up",
            "Whether the Docker event listener is connected (1) or not (0).",
            Kind::Gauge,
            vec![unlabelled(Value::Unsigned(u64::from(listener.connected)))],
        ));
        out.push(family(
            "jaga_docker_listener_failures_total",
            "Number of failed connections to the Docker event stream.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(listener.failures_total))],
        ));
        out.push(family(
            "jaga_docker_listener_store_failures_total",
            "Number of Docker events the store refused (a full disk), each read again later.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(listener.store_failures_total))],
        ));
        out.push(family(
            "jaga_docker_listener_gave_up",
            "1 when the listener stopped retrying after too many failures.",
            Kind::Gauge,
            vec![unlabelled(Value::Unsigned(u64::from(
                listener.state == "failed",
            )))],
        ));
        out.push(family(
            "jaga_events_total",
            "Number of Docker events stored.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(listener.events_total))],
        ));
        out.push(family(
            "jaga_events_duplicate_total",
            "Number of Docker events delivered again and dropped as already stored.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(listener.duplicates_total))],
        ));
        out.push(family(
            "jaga_alerts_total",
            "Number of alerts raised from Docker events.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(listener.alerts_total))],
        ));
    }

    if let Some(logs) = &agent.logs {
        out.push(family(
            "jaga_log_files_followed",
            "Number of container log files followed.",
            Kind::Gauge,
            vec![unlabelled(Value::Unsigned(logs.files_followed))],
        ));
        out.push(family(
            "jaga_log_messages_total",
            "Number of container log messages analysed.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(logs.messages_total))],
        ));
        let mut skipped: BTreeMap<&str, u64> = [
            "invalid_utf8",
            "not_json",
            "not_regular_file",
            "symlink",
            "too_long",
            "truncated",
        ]
        .iter()
        .map(|k| (*k, 0))
        .collect();
        skipped.extend(logs.skipped_total.iter().map(|(k, v)| (k.as_str(), *v)));
        out.push(family(
            "jaga_log_lines_skipped_total",
            "Number of container log lines skipped, by reason (not_regular_file and symlink count files refused).",
            Kind::Counter,
            skipped
                .into_iter()
                .map(|(reason, n)| Series {
                    labels: vec![label("reason", reason)],
                    value: Value::Unsigned(n),
                })
                .collect(),
        ));
        out.push(family(
            "jaga_log_alerts_total",
            "Number of alerts raised from container logs.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(logs.alerts_total))],
        ));
        out.push(family(
            "jaga_log_lines_lost_total",
            "Number of container log lines deleted by rotation before they could be read (bytes lost over the mean line length).",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(logs.lines_lost_total))],
        ));
        out.push(family(
            "jaga_log_bytes_lost_total",
            "Number of container log bytes deleted by rotation before they could be read (estimated from log times when files came and went unseen).",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(logs.bytes_lost_total))],
        ));
        out.push(family(
            "jaga_log_store_failures_total",
            "Number of times log alerts and checkpoints could not be stored; their lines are read again.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(logs.store_failures_total))],
        ));
        out.push(family(
            "jaga_log_rule_dfa_fallbacks_total",
            "Number of log fields on which the rules' lazy DFA gave up (its cache thrashed, or a Unicode word boundary met non-ASCII text), matched pattern by pattern instead: the same alerts, more CPU.",
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(logs.rule_dfa_fallbacks_total))],
        ));
    }

    if let Some(process) = &agent.process {
        process_families(process, out);
    }

    let mut errors: BTreeMap<&str, u64> = ERROR_KINDS.iter().map(|k| (*k, 0)).collect();
    errors.extend(agent.errors_total.iter().map(|(k, v)| (k.as_str(), *v)));
    out.push(family(
        "jaga_errors_total",
        "Number of errors met while collecting, by kind.",
        Kind::Counter,
        errors
            .into_iter()
            .map(|(kind, n)| Series {
                labels: vec![label("kind", kind)],
                value: Value::Unsigned(n),
            })
            .collect(),
    ));

    let mut states: BTreeMap<&str, u64> =
        CONTAINER_STATES.iter().map(|s| (s.as_str(), 0)).collect();
    states.extend(agent.containers_seen.iter().map(|(k, v)| (k.as_str(), *v)));
    out.push(family(
        "jaga_containers",
        "Number of containers seen in the last collection pass, by state.",
        Kind::Gauge,
        states
            .into_iter()
            .map(|(state, n)| Series {
                labels: vec![label("state", state)],
                value: Value::Unsigned(n),
            })
            .collect(),
    ));
}

fn http_server(http: &HttpStats, out: &mut Vec<Family<'_>>) {
    let counter = |name, help, n| {
        family(
            name,
            help,
            Kind::Counter,
            vec![unlabelled(Value::Unsigned(n))],
        )
    };
    out.push(family(
        "jaga_http_connections_open",
        "Number of HTTP connections open now.",
        Kind::Gauge,
        vec![unlabelled(Value::Unsigned(http.connections_open))],
    ));
    out.push(counter(
        "jaga_http_connections_accepted_total",
        "Number of HTTP connections accepted and served.",
        http.connections_accepted_total,
    ));
    out.push(counter(
        "jaga_http_connections_rejected_total",
        "Number of new HTTP connections closed at once because serve.http.max_connections were open and busy.",
        http.connections_rejected_total,
    ));
    out.push(counter(
        "jaga_http_connections_evicted_total",
        "Number of idle HTTP connections closed to make room for a new one at serve.http.max_connections.",
        http.connections_evicted_total,
    ));
    out.push(family(
        "jaga_http_connections_timed_out_total",
        "Number of HTTP connections closed by a timeout, by reason.",
        Kind::Counter,
        TimedOut::ALL
            .iter()
            .zip(http.connections_timed_out_total)
            .map(|(reason, n)| Series {
                labels: vec![label("reason", reason.as_str())],
                value: Value::Unsigned(n),
            })
            .collect(),
    ));
    out.push(counter(
        "jaga_http_requests_timed_out_total",
        "Number of HTTP requests answered 503 after serve.http.request_timeout.",
        http.requests_timed_out_total,
    ));
    out.push(counter(
        "jaga_http_tls_handshake_failures_total",
        "Number of TLS handshakes that failed.",
        http.tls_handshake_failures_total,
    ));
    out.push(family(
        "jaga_http_tls_reloads_total",
        "Number of TLS certificate reloads (SIGHUP), by result; a failed one keeps the certificate in use.",
        Kind::Counter,
        [
            ("failed", http.tls_reloads_failed_total),
            ("ok", http.tls_reloads_ok_total),
        ]
        .into_iter()
        .map(|(result, n)| Series {
            labels: vec![label("result", result)],
            value: Value::Unsigned(n),
        })
        .collect(),
    ));
    out.push(family(
        "jaga_http_auth_failures_total",
        "Number of HTTP requests refused for a missing or invalid token, by reason.",
        Kind::Counter,
        [
            ("invalid", http.auth_failures_invalid_total),
            ("missing", http.auth_failures_missing_total),
        ]
        .into_iter()
        .map(|(reason, n)| Series {
            labels: vec![label("reason", reason)],
            value: Value::Unsigned(n),
        })
        .collect(),
    ));
}

/// `jaga_task_up` and `jaga_task_last_progress_seconds`, one series per
/// supervised task of `jaga serve`.
pub(crate) fn tasks<'a>(tasks: &'a [TaskHealth], out: &mut Vec<Family<'a>>) {
    if tasks.is_empty() {
        return;
    }
    out.push(family(
        "jaga_task_up",
        "Whether a task of the agent runs and makes progress (1) or is dead or stalled (0).",
        Kind::Gauge,
        tasks
            .iter()
            .map(|t| Series {
                labels: vec![label("task", t.name.as_str())],
                value: Value::Unsigned(u64::from(t.up)),
            })
            .collect(),
    ));
    out.push(family(
        "jaga_task_last_progress_seconds",
        "Seconds a task of the agent has held its worker thread in its current poll (0 while it waits).",
        Kind::Gauge,
        tasks
            .iter()
            .map(|t| Series {
                labels: vec![label("task", t.name.as_str())],
                value: Value::Float(t.last_progress_age_seconds),
            })
            .collect(),
    ));
}

/// How one figure of an output is read.
type OutputFigure = fn(&OutputStats) -> Value;

/// How one figure of an exporter's back-fill is read.
type BackfillFigure = fn(&BackfillStats) -> u64;

/// `jaga_output_*`, one series per output (label `output`).
pub(crate) fn outputs<'a>(outputs: &'a [OutputStats], out: &mut Vec<Family<'a>>) {
    if outputs.is_empty() {
        return;
    }
    let per_output = |value: OutputFigure| -> Vec<Series<'a>> {
        outputs
            .iter()
            .map(|o| Series {
                labels: vec![
                    label("output", o.name.as_str()),
                    label("type", o.kind.as_str()),
                ],
                value: value(o),
            })
            .collect()
    };
    let counters: [(&'static str, &'static str, OutputFigure); 6] = [
        (
            "jaga_output_delivered_total",
            "Messages an output's receiver took (a grouped message counts once).",
            |o| Value::Unsigned(o.delivered_total),
        ),
        (
            "jaga_output_delivered_alerts_total",
            "Alerts in the messages an output's receiver took.",
            |o| Value::Unsigned(o.delivered_alerts_total),
        ),
        (
            "jaga_output_retried_total",
            "Deliveries that failed for a reason that may pass (timeout, 5xx, 429) and were tried again.",
            |o| Value::Unsigned(o.retried_total),
        ),
        (
            "jaga_output_dead_lettered_total",
            "Alerts in messages a receiver refused for good, kept as dead letters.",
            |o| Value::Unsigned(o.dead_lettered_total),
        ),
        (
            "jaga_output_dropped_total",
            "Alerts skipped undelivered because an output's backlog passed its max_backlog.",
            |o| Value::Unsigned(o.dropped_total),
        ),
        (
            "jaga_output_filtered_total",
            "Alerts an output's filters left out.",
            |o| Value::Unsigned(o.filtered_total),
        ),
    ];
    for (name, help, value) in counters {
        out.push(family(name, help, Kind::Counter, per_output(value)));
    }
    let exporters: Vec<(&'a OutputStats, BackfillStats)> = outputs
        .iter()
        .filter_map(|o| o.backfill.map(|b| (o, b)))
        .collect();
    if !exporters.is_empty() {
        let backfill: [(&'static str, &'static str, BackfillFigure); 2] = [
            (
                "jaga_remote_write_rollup_samples_total",
                "Samples a remote-write back-fill sent from minute rollups (one per minute and series) because the raw points of that time were trimmed.",
                |b| b.rollup_samples_total,
            ),
            (
                "jaga_remote_write_lost_seconds_total",
                "Seconds of a remote-write back-fill gap skipped unsent: the history held neither raw points nor minute rollups of them any more.",
                |b| b.lost_seconds_total,
            ),
        ];
        for (name, help, figure) in backfill {
            let series = exporters
                .iter()
                .map(|(o, b)| Series {
                    labels: vec![
                        label("output", o.name.as_str()),
                        label("type", o.kind.as_str()),
                    ],
                    value: Value::Unsigned(figure(b)),
                })
                .collect();
            out.push(family(name, help, Kind::Counter, series));
        }
    }
    out.push(family(
        "jaga_output_queued",
        "Alerts stored and not yet done for an output (its backlog).",
        Kind::Gauge,
        per_output(|o| Value::Unsigned(o.backlog)),
    ));
    out.push(family(
        "jaga_output_up",
        "1 while an output's last delivery attempt did not fail (it is not retrying).",
        Kind::Gauge,
        per_output(|o| Value::Unsigned(u64::from(o.state != "retrying" && o.state != "stopped"))),
    ));
    out.push(family(
        "jaga_output_delivery_latency_seconds",
        "Seconds from an alert stored to its receiver's answer, over the latest deliveries, by percentile (100: the slowest).",
        Kind::Gauge,
        outputs
            .iter()
            .flat_map(|o| {
                o.latency_seconds.iter().map(|(quantile, seconds)| Series {
                    labels: vec![
                        label("output", o.name.as_str()),
                        // `quantile` is reserved for summaries (promtool).
                        label("percentile", format!("{:.0}", quantile * 100.0)),
                        label("type", o.kind.as_str()),
                    ],
                    value: Value::Float(*seconds),
                })
            })
            .collect(),
    ));
}

fn unlabelled<'a>(value: Value) -> Series<'a> {
    Series {
        labels: Vec::new(),
        value,
    }
}

/// `jaga_process_*`: how processes inside containers are seen.
fn process_families<'a>(process: &'a jaga_model::ProcessStats, out: &mut Vec<Family<'a>>) {
    let sources = ["connector", "fanotify", "poll"];
    out.push(family(
        "jaga_process_source_available",
        "Whether each source of process events is in use (1) or not (0): connector (netlink, CAP_NET_ADMIN), fanotify (CAP_SYS_ADMIN), poll (/proc polling, the fallback).",
        Kind::Gauge,
        sources
            .iter()
            .map(|source| {
                let used = match *source {
                    "connector" => process.mode.starts_with("connector"),
                    "fanotify" => process.mode.contains("fanotify"),
                    _ => process.mode == "poll",
                };
                Series {
                    labels: vec![label("source", *source)],
                    value: Value::Unsigned(u64::from(used)),
                }
            })
            .collect(),
    ));
    out.push(family(
        "jaga_process_execs_total",
        "Number of executions seen inside containers.",
        Kind::Counter,
        vec![unlabelled(Value::Unsigned(process.execs_total))],
    ));
    out.push(family(
        "jaga_process_unknown_total",
        "Number of executions inside containers whose executable (what=exe) or arguments (what=args) could not be known: the process was gone first.",
        Kind::Counter,
        vec![
            Series {
                labels: vec![label("what", "args")],
                value: Value::Unsigned(process.args_unknown_total),
            },
            Series {
                labels: vec![label("what", "exe")],
                value: Value::Unsigned(process.exe_unknown_total),
            },
        ],
    ));
    let mut lost: BTreeMap<&str, u64> = [
        "connector_overrun",
        "fanotify_overflow",
        "malformed",
        "poll_unseen",
        "queue_full",
    ]
    .iter()
    .map(|k| (*k, 0))
    .collect();
    lost.extend(process.lost_total.iter().map(|(k, v)| (k.as_str(), *v)));
    out.push(family(
        "jaga_process_events_lost_total",
        "Process events lost, by reason: connector_overrun (times the kernel's buffer overflowed), fanotify_overflow, malformed, queue_full (the rules fell behind), poll_unseen (pids handed out between two polls and never seen, processes or threads: an upper bound).",
        Kind::Counter,
        lost.into_iter()
            .map(|(reason, n)| Series {
                labels: vec![label("reason", reason)],
                value: Value::Unsigned(n),
            })
            .collect(),
    ));
    out.push(family(
        "jaga_process_tracked",
        "Number of processes inside containers tracked now.",
        Kind::Gauge,
        vec![unlabelled(Value::Unsigned(process.processes_tracked))],
    ));
    out.push(family(
        "jaga_process_fanotify_marks",
        "Number of container filesystems watched by fanotify.",
        Kind::Gauge,
        vec![unlabelled(Value::Unsigned(process.fanotify_marks))],
    ));
    out.push(family(
        "jaga_process_alerts_total",
        "Number of alerts raised by process rules.",
        Kind::Counter,
        vec![unlabelled(Value::Unsigned(process.alerts_total))],
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitised_as_cadvisor_does() {
        assert_eq!(
            sanitize_label_name("com.docker.compose.service"),
            "com_docker_compose_service"
        );
        assert_eq!(sanitize_label_name("maintainer.email"), "maintainer_email");
        assert_eq!(sanitize_label_name("a-b/c:d é"), "a_b_c_d__");
        assert_eq!(sanitize_label_name("Already_OK_9"), "Already_OK_9");
    }

    /// `families` as Prometheus text.
    fn exposition(families: &[Family<'_>]) -> String {
        let mut writer =
            super::super::text::Writer::new(crate::metrics::ExpositionFormat::Prometheus);
        for family in families {
            writer.family(family);
        }
        writer.finish()
    }

    #[test]
    fn log_rule_dfa_fallbacks_are_counted() {
        let mut snapshot = Snapshot::default();
        snapshot.agent.logs = Some(jaga_model::LogStats {
            rule_dfa_fallbacks_total: 3,
            ..Default::default()
        });
        let mut out = Vec::new();
        agent(&snapshot, &mut out);
        let text = exposition(&out);
        assert!(
            text.contains("# TYPE jaga_log_rule_dfa_fallbacks_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("\njaga_log_rule_dfa_fallbacks_total 3\n"),
            "{text}"
        );
    }

    #[test]
    fn back_fill_counters_are_shown_for_the_exporter_only() {
        let stats = [
            OutputStats {
                name: "ops".to_owned(),
                kind: "webhook".to_owned(),
                ..OutputStats::default()
            },
            OutputStats {
                name: "remote_write".to_owned(),
                kind: "prometheus_remote_write".to_owned(),
                backfill: Some(BackfillStats {
                    rollup_samples_total: 36,
                    lost_seconds_total: 1_800,
                }),
                ..OutputStats::default()
            },
        ];
        let mut out = Vec::new();
        outputs(&stats, &mut out);
        let text = exposition(&out);
        assert!(text.contains("jaga_remote_write_rollup_samples_total{output=\"remote_write\",type=\"prometheus_remote_write\"} 36\n"), "{text}");
        assert!(text.contains("jaga_remote_write_lost_seconds_total{output=\"remote_write\",type=\"prometheus_remote_write\"} 1800\n"), "{text}");
        assert!(
            !text.contains("jaga_remote_write_rollup_samples_total{output=\"ops\""),
            "{text}"
        );
    }
}
