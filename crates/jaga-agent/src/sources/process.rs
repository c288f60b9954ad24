//! What runs inside containers: each execution the process monitor
//! reports is completed with its container (name, image, labels), its user
//! and whether its executable lives in the writable layer, checked by the
//! process rules, and its alerts committed through the sink.
//!
//! Alerts are not replayed after a restart: an execution is seen once, as
//! it happens. Their ids are stable for the same execution (container,
//! pid, start time, executable), so a record handled twice adds nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jaga_engine::{ContainerDetails, Engine};
use jaga_model::{
    escape_control, Alert, AlertAgent, ContainerProcess, EventContainer, ProcessStats,
};
use jaga_process::{ExecRecord, Mode, Monitor, MonitorConfig, ProcessEntry};
use jaga_rules::logs::{FrequencyState, RuleMatch, RuleSource};
use jaga_rules::process::{Execution, ProcessRules, PROCESS_RULES, PROCESS_RULES_NAME};
use jaga_store::Consumed;
use tokio::sync::{mpsc, watch};

use crate::sink::{alert_id, rfc3339_ms, AlertSink};
use crate::sources::logs::RuleFiles;

/// Records waiting for the rules; past it they are counted as lost
/// (`queue_full`) rather than held without bound.
const QUEUE: usize = 16_384;
/// Most records checked and committed in one transaction.
const BATCH: usize = 512;
/// Inspecting a container the collector has not listed yet must not hold
/// the rules up for long.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Containers whose name, image and users are remembered.
const MAX_CACHED_CONTAINERS: usize = 4096;

/// The built-in process rules and the user's files, compiled; an error
/// names the file and the line.
pub fn load_rules(files: &[PathBuf]) -> anyhow::Result<ProcessRules> {
    let files = RuleFiles::read(files)?;
    let mut sources = vec![RuleSource {
        name: Some(PROCESS_RULES_NAME),
        text: PROCESS_RULES,
    }];
    sources.extend(files.named().map(|(name, text)| RuleSource {
        name: Some(name),
        text,
    }));
    ProcessRules::parse_sources(&sources)
        .map_err(|e| anyhow::Error::new(e).context("invalid process rules"))
}

/// The monitor and its queue, started when the agent is built (so
/// `mode = "connector"` without the privilege fails before anything runs).
pub struct ProcessWatch {
    pub monitor: Arc<Monitor>,
    records: mpsc::Receiver<ExecRecord>,
}

impl ProcessWatch {
    pub fn start(config: &jaga_config::ProcessConfig, host_root: &Path) -> anyhow::Result<Self> {
        let mode = match config.mode.as_str() {
            "connector" => Mode::Connector,
            "poll" => Mode::Poll,
            _ => Mode::Auto,
        };
        let (tx, records) = mpsc::channel(QUEUE);
        let monitor = Monitor::start(
            MonitorConfig {
                root: host_root.to_path_buf(),
                mode,
                fanotify: config.fanotify,
                poll_interval: config.poll_interval,
            },
            Box::new(move |record| tx.try_send(record).is_ok()),
        )
        .context("cannot watch processes ([process] mode = \"connector\")")?;
        let stats = monitor.stats();
        if stats.mode == "connector+fanotify" {
            tracing::info!(mode = %stats.mode, "watching processes in containers");
        } else {
            // Said once, here; /healthz and jaga_process_source_available say it after.
            tracing::warn!(
                mode = %stats.mode,
                unavailable = ?stats.unavailable,
                "process events degraded: {}",
                describe_unavailable(&stats)
            );
        }
        Ok(Self {
            monitor: Arc::new(monitor),
            records,
        })
    }
}

/// `connector: …; fanotify: …`
pub fn describe_unavailable(stats: &ProcessStats) -> String {
    stats
        .unavailable
        .iter()
        .map(|(source, why)| format!("{source}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The process source of `jaga serve`.
pub struct ProcessTask {
    pub watch: ProcessWatch,
    pub rules: ProcessRules,
    pub engine: Arc<Engine>,
    pub sink: Arc<AlertSink>,
    pub agent: AlertAgent,
    pub host_root: PathBuf,
    pub details: watch::Receiver<Arc<Vec<ContainerDetails>>>,
    pub alerts_total: Arc<AtomicU64>,
}

/// What is known of a container for its processes' alerts.
#[derive(Clone)]
struct ContainerFacts {
    container: EventContainer,
    upper_dir: Option<PathBuf>,
    init_pid: Option<u32>,
    /// uid → name from the container's /etc/passwd, read once.
    users: Option<HashMap<u32, String>>,
}

impl ProcessTask {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut state = FrequencyState::default();
        let mut containers: HashMap<String, ContainerFacts> = HashMap::new();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                n = self.watch.records.recv_many(&mut batch, BATCH) => n,
                _ = shutdown.changed() => break,
            };
            if received == 0 {
                break;
            }
            let mut alerts = Vec::new();
            for record in batch.drain(..) {
                let id = record.process.container_id.clone();
                let mut unlisted = None;
                if !containers.contains_key(&id) {
                    if containers.len() >= MAX_CACHED_CONTAINERS {
                        containers.clear();
                    }
                    let facts = self.container_facts(&id).await;
                    // Remembered once known; a container not found yet is asked again.
                    if facts.container.name.is_empty() {
                        unlisted = Some(facts);
                    } else {
                        containers.insert(id.clone(), facts);
                    }
                }
                let Some(facts) = unlisted.as_mut().or_else(|| containers.get_mut(&id)) else {
                    continue;
                };
                let execution = execution_of(&record, facts, &self.host_root);
                let now = u64::try_from(record.time_unix_ms / 1000).unwrap_or(0);
                let matches =
                    self.rules
                        .evaluate(&execution.fields(), &execution.image, now, &mut state);
                alerts.extend(alerts_for(
                    &record,
                    &execution,
                    &matches,
                    &self.rules,
                    &facts.container,
                    &self.agent,
                ));
            }
            if alerts.is_empty() {
                continue;
            }
            let sink = Arc::clone(&self.sink);
            let count = alerts.len();
            let logged: Vec<(String, u8, String)> = alerts
                .iter()
                .map(|a| (a.rule.id.clone(), a.rule.level, a.rule.description.clone()))
                .collect();
            match tokio::task::block_in_place(|| sink.commit(alerts, &Consumed::Nothing)) {
                Ok(committed) => {
                    self.alerts_total
                        .fetch_add(committed.new_alerts as u64, Ordering::Relaxed);
                    for (rule, level, description) in logged {
                        if level >= 7 {
                            tracing::warn!(rule = %rule, level, "{}", escape_control(&description));
                        }
                    }
                }
                // Executions are not seen again: what could not be stored is lost, and said.
                Err(error) => {
                    tracing::warn!(%error, alerts = count, "process alerts not stored (permanent: executions are not replayed)")
                }
            }
        }
        // The monitor thread stops when the last handle drops.
    }

    /// Name, image and labels from the collector's list, else an inspect.
    async fn container_facts(&self, id: &str) -> ContainerFacts {
        let listed = self
            .details
            .borrow()
            .iter()
            .find(|d| d.container.id.0 == id)
            .cloned();
        let details = match listed {
            Some(details) => Some(details),
            None => {
                match tokio::time::timeout(INSPECT_TIMEOUT, self.engine.inspect_details(id)).await {
                    Ok(Ok(details)) => Some(details),
                    Ok(Err(error)) => {
                        tracing::debug!(container = %id, %error, "cannot inspect a container with new processes");
                        None
                    }
                    Err(_) => None,
                }
            }
        };
        match details {
            Some(details) => ContainerFacts {
                container: EventContainer::of(&details.container),
                upper_dir: details.upper_dir.clone(),
                init_pid: details.container.pid,
                users: None,
            },
            None => ContainerFacts {
                container: EventContainer {
                    id: id.to_owned(),
                    ..EventContainer::default()
                },
                upper_dir: None,
                init_pid: None,
                users: None,
            },
        }
    }
}

/// The execution as rules see it: the record, the container, the user's
/// name and whether the executable is in the writable layer.
fn execution_of(record: &ExecRecord, facts: &mut ContainerFacts, host_root: &Path) -> Execution {
    let process = &record.process;
    let user = process.uid.and_then(|uid| {
        let users = facts
            .users
            .get_or_insert_with(|| read_users(host_root, [Some(process.pid), facts.init_pid]));
        users.get(&uid).cloned()
    });
    let exe_writable_layer = match (&facts.upper_dir, &process.exe) {
        (Some(upper), Some(exe)) if exe.starts_with('/') => {
            Some(in_writable_layer(host_root, upper, exe))
        }
        _ => None,
    };
    Execution {
        exe: process.exe.clone(),
        name: process.comm.clone(),
        args: process.args.clone(),
        cwd: process.cwd.clone(),
        user,
        uid: process.uid,
        tty: process.tty,
        parent_exe: record.parent_exe.clone(),
        grandparent_exe: record.grandparent_exe.clone(),
        exe_writable_layer,
        container_id: process.container_id.clone(),
        container_name: facts.container.name.clone(),
        image: facts.container.image.clone(),
        pid: process.pid,
        ppid: process.ppid,
    }
}

/// A file at `exe` in the container's writable layer: added or changed
/// after the container started (overlay2 copies a changed file up).
fn in_writable_layer(host_root: &Path, upper_dir: &Path, exe: &str) -> bool {
    let relative = upper_dir.strip_prefix("/").unwrap_or(upper_dir);
    let path = host_root.join(relative).join(exe.trim_start_matches('/'));
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
}

/// uid → name from the container's /etc/passwd, seen through the first of
/// `pids` still alive.
fn read_users(host_root: &Path, pids: [Option<u32>; 2]) -> HashMap<u32, String> {
    for pid in pids.into_iter().flatten() {
        let path = host_root.join(format!("proc/{pid}/root/etc/passwd"));
        if let Ok(text) = std::fs::read_to_string(path) {
            return text
                .lines()
                .filter_map(|line| {
                    let mut parts = line.split(':');
                    let name = parts.next()?;
                    let uid = parts.nth(1)?.parse().ok()?;
                    Some((uid, name.to_owned()))
                })
                .collect();
        }
    }
    HashMap::new()
}

/// One alert per matched rule, carrying the process's fields.
fn alerts_for(
    record: &ExecRecord,
    execution: &Execution,
    matches: &[RuleMatch],
    rules: &ProcessRules,
    container: &EventContainer,
    agent: &AlertAgent,
) -> Vec<Alert> {
    if matches.is_empty() {
        return Vec::new();
    }
    let process = &record.process;
    let identity = format!(
        "{}\n{}\n{}\n{}",
        process.container_id,
        process.pid,
        process.start_ticks,
        process.exe.as_deref().unwrap_or_default()
    );
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut put = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            data.insert(key.to_owned(), value);
        }
    };
    put("exe", execution.exe.clone());
    put("name", Some(execution.name.clone()));
    put("cmdline", Some(execution.args.join(" ")));
    put("args_known", Some(record.args_known.to_string()));
    put("cwd", execution.cwd.clone());
    put("user", execution.user.clone());
    put("uid", execution.uid.map(|u| u.to_string()));
    put("pid", Some(process.pid.to_string()));
    put("ppid", Some(process.ppid.to_string()));
    put("parent_exe", execution.parent_exe.clone());
    put("gparent_exe", execution.grandparent_exe.clone());
    put("tty", Some(execution.tty.to_string()));
    put(
        "exe_writable_layer",
        execution.exe_writable_layer.map(|w| w.to_string()),
    );
    put("exe_from", Some(record.exe_from.to_owned()));
    put("seen_by", Some(record.seen_by.to_owned()));
    matches
        .iter()
        .filter(|m| m.level > 0)
        .map(|m| {
            let mut data = data.clone();
            if let Some(falco) = rules.falco_name(&m.id) {
                data.insert("falco_rule".to_owned(), falco.to_owned());
            }
            if let Some(payload) = &m.payload {
                data.insert("payload".to_owned(), payload.clone());
            }
            Alert {
                id: alert_id("process", &identity, &m.id),
                timestamp: rfc3339_ms(record.time_unix_ms),
                rule: m.alert_rule(),
                agent: agent.clone(),
                container: Some(container.clone()),
                data,
                location: "process".to_owned(),
                event: None,
                episode: None,
            }
        })
        .collect()
}

/// The processes of a container for the API and `jaga top`.
pub struct ProcessesOf {
    pub monitor: Arc<Monitor>,
    pub host_root: PathBuf,
}

impl jaga_server::ProcessesView for ProcessesOf {
    fn processes(&self, container_id: &str) -> Vec<ContainerProcess> {
        let entries = self.monitor.processes(container_id);
        let users = read_users(
            &self.host_root,
            [
                entries.first().map(|e| e.pid),
                entries.last().map(|e| e.pid),
            ],
        );
        entries
            .into_iter()
            .map(|entry| container_process(entry, &users))
            .collect()
    }
}

fn container_process(entry: ProcessEntry, users: &HashMap<u32, String>) -> ContainerProcess {
    ContainerProcess {
        pid: entry.pid,
        ppid: entry.ppid,
        uid: entry.uid,
        user: entry.uid.and_then(|uid| users.get(&uid).cloned()),
        command: entry.command(),
        exe: entry.exe,
        tty: entry.tty,
        started_unix_ms: entry.started_unix_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(exe: &str, args: &[&str]) -> ExecRecord {
        ExecRecord {
            time_unix_ms: 1_700_000_000_000,
            process: ProcessEntry {
                pid: 42,
                ppid: 7,
                container_id: "c".repeat(64),
                exe: Some(exe.to_owned()),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                comm: exe.rsplit('/').next().unwrap_or_default().to_owned(),
                uid: Some(0),
                ..ProcessEntry::default()
            },
            args_known: true,
            exe_from: "fanotify",
            parent_exe: Some("/bin/busybox".to_owned()),
            grandparent_exe: None,
            seen_by: "connector",
        }
    }

    #[test]
    fn alerts_carry_the_process_container_falco_name_and_a_stable_id() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        std::fs::create_dir_all(upper.join("tmp")).unwrap();
        std::fs::write(upper.join("tmp/cat"), b"x").unwrap();
        let mut facts = ContainerFacts {
            container: EventContainer {
                id: "c".repeat(64),
                name: "web".to_owned(),
                image: "jaga-test/busybox".to_owned(),
                ..EventContainer::default()
            },
            upper_dir: Some(upper.clone()),
            init_pid: None,
            users: Some(HashMap::from([(0, "root".to_owned())])),
        };
        let rules = load_rules(&[]).unwrap();
        let record = record("/tmp/cat", &["/tmp/cat", "/etc/shadow"]);
        let execution = execution_of(&record, &mut facts, Path::new("/"));
        assert_eq!(execution.exe_writable_layer, Some(true));
        assert_eq!(execution.user.as_deref(), Some("root"));
        let matches = rules.evaluate(&execution.fields(), "x", 0, &mut FrequencyState::default());
        let raise = || {
            alerts_for(
                &record,
                &execution,
                &matches,
                &rules,
                &facts.container,
                &AlertAgent::default(),
            )
        };
        let alerts = raise();
        let ids: Vec<&str> = alerts.iter().map(|a| a.rule.id.as_str()).collect();
        assert_eq!(ids, ["96007", "96016", "96019"]);
        let shadow = &alerts[0];
        assert_eq!(shadow.data["cmdline"], "/tmp/cat /etc/shadow");
        assert_eq!(shadow.data["parent_exe"], "/bin/busybox");
        assert_eq!(shadow.data["falco_rule"], "Read sensitive file untrusted");
        assert_eq!(shadow.container.as_ref().unwrap().name, "web");
        assert_eq!(shadow.location, "process");
        assert_eq!(shadow.timestamp, "2023-11-14T22:13:20.000Z");
        assert_eq!(raise()[0].id, shadow.id);
        facts.upper_dir = Some(dir.path().join("elsewhere"));
        assert_eq!(
            execution_of(&record, &mut facts, Path::new("/")).exe_writable_layer,
            Some(false)
        );
    }
}
