//! What the agent knows at one instant: the machine, every container's latest
//! reading and disk use, and the agent's own counters. `/metrics` and the
//! REST API render it; they never read the host themselves.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{ContainerRef, HistoryPoint, Sample};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub hostname: String,
    /// Logical CPUs online.
    pub cpu_cores: u32,
    /// `MemTotal`, bytes.
    pub memory_bytes: u64,
    pub kernel_version: String,
    pub os: String,
    pub docker_version: String,
    /// `1` or `2`.
    pub cgroup_version: u8,
    /// Docker's data root, e.g. `/var/lib/docker`.
    pub docker_root_dir: String,
}

/// Disk used by one container, measured on the slow filesystem cadence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsUsage {
    /// Bytes in the container's writable layer (overlay2 `upperdir`).
    pub writable_layer_bytes: Option<u64>,
    pub volumes: Vec<VolumeUsage>,
    /// Size of the json-file log, when the container logs to one.
    pub log_file_bytes: Option<u64>,
    /// The measurement stopped at the per-pass budget: figures are lower bounds.
    pub truncated: bool,
    pub measured_unix_ms: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeUsage {
    /// Volume name, or the host path for a bind mount.
    pub name: String,
    /// Where it is mounted inside the container.
    pub destination: String,
    pub bytes: u64,
}

/// Usage of the filesystem holding Docker's data root (statvfs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRootUsage {
    pub path: String,
    /// Device as `/proc/self/mountinfo` names it, e.g. `/dev/vda1`.
    pub device: String,
    pub capacity_bytes: u64,
    pub used_bytes: u64,
    pub available_bytes: u64,
}

/// One container as the agent last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSnapshot {
    /// Shared with the collector, which publishes the same container every
    /// pass: a copy would be a hundred label maps a second.
    pub container: Arc<ContainerRef>,
    /// The container's cgroup path as cAdvisor names it in the `id` label:
    /// `/docker/<id>` (cgroupfs) or `/system.slice/docker-<id>.scope` (systemd).
    pub cgroup_path: String,
    /// Latest reading; `None` when the container has no processes.
    pub sample: Option<Sample>,
    /// Figures derived from the latest two readings (CPU %, rates), as the
    /// history stores them; `None` until a second reading.
    #[serde(default)]
    pub figures: Option<HistoryPoint>,
    pub fs: Option<FsUsage>,
    /// Block devices by `major:minor`, named as in `/dev` (`/dev/vda`).
    pub devices: Arc<BTreeMap<String, String>>,
    /// Unix seconds of the last successful reading.
    pub last_seen_unix: i64,
}

/// Counters about jaga itself, exported as `jaga_*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentStats {
    pub version: String,
    pub started_unix: i64,
    /// Completed collection passes.
    pub collections_total: u64,
    /// Duration of the last pass, seconds.
    pub last_collection_seconds: f64,
    /// Sum of all pass durations, seconds (with `collections_total`, an average).
    pub collection_seconds_sum: f64,
    /// Errors by kind: `engine`, `cgroup`, `container_gone`, `filesystem`, `history`.
    pub errors_total: BTreeMap<String, u64>,
    /// Containers seen in the last pass, by state.
    pub containers_seen: BTreeMap<String, u64>,
    pub history_points_written_total: u64,
    /// Container readings taken from the CPU counter alone: the container
    /// had done nothing since its last full reading.
    #[serde(default)]
    pub idle_samples_total: u64,
    /// The Docker event listener; `None` when it is disabled.
    #[serde(default)]
    pub listener: Option<ListenerStats>,
    /// Container log analysis; `None` when it is disabled.
    #[serde(default)]
    pub logs: Option<LogStats>,
    /// What runs inside containers; `None` when `[process]` is disabled.
    #[serde(default)]
    pub process: Option<ProcessStats>,
}

/// Everything `/metrics` and the API show, taken at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub taken_unix_ms: i64,
    pub machine: MachineInfo,
    pub data_root: Option<DataRootUsage>,
    pub containers: Vec<ContainerSnapshot>,
    /// Containers the Engine knows that are not running (exited, dead,
    /// created, restarting between two runs), as last inspected.
    #[serde(default)]
    pub stopped: Vec<ContainerRef>,
    pub agent: AgentStats,
}

/// How the Docker event listener fares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStats {
    /// `starting`, `connected`, `retrying` or `failed` (gave up).
    pub state: String,
    pub connected: bool,
    /// Failed connections since the last one that delivered events.
    pub failures_in_row: u32,
    pub failures_total: u64,
    pub events_total: u64,
    /// Events delivered again (replays) and dropped as already stored.
    pub duplicates_total: u64,
    pub alerts_total: u64,
    /// Events the store refused (a full disk); each is read again from the cursor.
    #[serde(default)]
    pub store_failures_total: u64,
    pub last_error: Option<String>,
    /// Time of the newest stored event, Unix nanoseconds.
    pub cursor_nano: Option<i64>,
}

/// How container log analysis fares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogStats {
    pub files_followed: u64,
    pub messages_total: u64,
    /// Lines skipped, by reason: not_json, invalid_utf8, too_long,
    /// truncated; and files refused, by reason: not_regular_file, symlink.
    pub skipped_total: BTreeMap<String, u64>,
    pub alerts_total: u64,
    /// Log content deleted (rotated away) before it could be read: bytes
    /// (exact for files seen, estimated from Docker's times for files that
    /// may have come and gone unseen) and lines (bytes over the mean line
    /// length).
    #[serde(default)]
    pub bytes_lost_total: u64,
    #[serde(default)]
    pub lines_lost_total: u64,
    /// Batches whose alerts and checkpoint could not be stored (their lines
    /// are read again).
    #[serde(default)]
    pub store_failures_total: u64,
    /// Field texts on which the rules' lazy DFA gave up (its cache
    /// thrashed, or a Unicode `\b` met non-ASCII text), matched pattern
    /// by pattern instead: same result, slower.
    #[serde(default)]
    pub rule_dfa_fallbacks_total: u64,
}

/// A process inside a container, as `jaga top` and the API show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerProcess {
    pub pid: u32,
    pub ppid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The user's name in the container's /etc/passwd, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<String>,
    /// The arguments joined by spaces, else `[name]`.
    pub command: String,
    pub tty: bool,
    pub started_unix_ms: i64,
}

/// How jaga sees processes inside containers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// `connector+fanotify`, `connector`, or `poll` (the `/proc` poller).
    pub mode: String,
    /// Each event source that is not in use, and why (`connector`,
    /// `fanotify`): no privilege, a kernel without it.
    pub unavailable: BTreeMap<String, String>,
    /// Executions inside containers seen.
    pub execs_total: u64,
    /// Executions whose executable could not be known / whose arguments
    /// could not be read (the process was gone first).
    pub exe_unknown_total: u64,
    pub args_unknown_total: u64,
    /// Events lost, by reason: `connector_overrun` (kernel buffer full,
    /// count of overruns), `fanotify_overflow`, `malformed`, `queue_full`
    /// (the rules fell behind), `poll_unseen` (pids handed out between two
    /// polls that were never seen: processes or threads that lived less
    /// than the interval, an upper bound).
    pub lost_total: BTreeMap<String, u64>,
    /// Processes inside containers tracked now.
    pub processes_tracked: u64,
    /// Container filesystems watched by fanotify.
    pub fanotify_marks: u64,
    /// Alerts raised by process rules.
    pub alerts_total: u64,
}

/// One long-running task of `jaga serve`, as its supervisor sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskHealth {
    /// `collector`, `docker_listener`, `logs`, `audit`, `http`, ...
    pub name: String,
    /// Running and making progress.
    pub up: bool,
    /// `running`, `stalled: …`, `dead: panicked: …`, `dead: ended before shutdown`.
    pub state: String,
    /// Seconds the task has held its worker thread in its current poll; 0 while it waits.
    pub last_progress_age_seconds: f64,
}

/// One `[[outputs]]` entry as its delivery runner sees it, for
/// `/api/v1/outputs` and the `jaga_output_*` metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputStats {
    pub name: String,
    /// `file`, `webhook`, `slack`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// `starting`, `idle`, `delivering`, `retrying` (the receiver failed;
    /// waiting before the next attempt), `stopped`.
    pub state: String,
    /// Every alert up to this sequence number is done for this output.
    pub cursor: i64,
    /// Alerts stored after the cursor, not yet done.
    pub backlog: u64,
    pub delivered_total: u64,
    /// Alerts in the messages delivered.
    pub delivered_alerts_total: u64,
    /// Attempts that failed and were tried again.
    pub retried_total: u64,
    /// Alerts in messages the receiver refused for good.
    pub dead_lettered_total: u64,
    /// Alerts skipped undelivered because the backlog passed `max_backlog`.
    pub dropped_total: u64,
    /// Alerts left out by the output's filters.
    pub filtered_total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_unix_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_delivery_unix_ms: Option<i64>,
    /// What the receiver answered to the last delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_answer: Option<String>,
    /// Seconds from an alert stored to the receiver's answer, over the
    /// latest deliveries: (quantile, seconds) for 0.5, 0.9, 0.99 and 1.
    pub latency_seconds: Vec<(f64, f64)>,
    /// The metrics exporter's back-fill (`remote_write` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<BackfillStats>,
}

/// What a metrics exporter sent of a gap older than the raw history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillStats {
    /// Samples sent from minute rollups (one per minute and series)
    /// because the raw points of that time were trimmed.
    pub rollup_samples_total: u64,
    /// Seconds of a gap skipped unsent: the history held neither raw
    /// points nor rollups of them any more.
    pub lost_seconds_total: u64,
}
