//! A served dashboard on a loopback port, fed like `jaga serve` feeds it:
//! a collector that publishes a snapshot and writes history each second,
//! real stores with alerts and events, an audit report and log lines.

#![allow(dead_code)]

pub mod webdriver;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jaga_model::{
    Alert, AlertAgent, AlertRule, ContainerId, ContainerRef, ContainerSnapshot, ContainerState,
    DataRootUsage, DockerEvent, Event, EventContainer, HistoryPoint, MachineInfo, Snapshot,
    SERIES_COUNT,
};
use jaga_server::auth::Tokens;
use jaga_server::listen::{self, HttpCounters, Limits};
use jaga_server::{router, LabelOptions, LogLine, LogQuery, LogsView, ServerState, SetupView};
use jaga_store::{Consumed, EventStore, HistoryStore, Retention};
use tokio::sync::watch;

pub const BUSY_ID: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0";
pub const WEB_ID: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";
pub const IDLE_ID: &str = "d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2";
/// The busy container's CPU limit, in percent of one core.
pub const BUSY_LIMIT_PERCENT: f64 = 50.0;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub struct Bed {
    pub port: u16,
    pub events: Arc<EventStore>,
    pub history: Arc<HistoryStore>,
    pub logs: Arc<FixtureLogs>,
    pub counters: Arc<HttpCounters>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn container(id: &str, name: &str, image: &str, state: ContainerState) -> ContainerRef {
    ContainerRef {
        id: ContainerId::new(id),
        name: name.to_owned(),
        image: image.to_owned(),
        labels: BTreeMap::from([
            ("com.docker.compose.service".to_owned(), name.to_owned()),
            // Redacted by the engine before it reaches the API.
            ("db.password".to_owned(), "[REDACTED]".to_owned()),
        ]),
        state,
        pid: Some(4242),
        network_mode: "bridge".to_owned(),
        created: 1_699_999_000,
        started_at: Some(1_700_000_000),
        restart_policy: Some("unless-stopped".to_owned()),
        health: None,
        exit_code: None,
    }
}

/// The writable layer of every container grows by this many bytes a second.
pub const LAYER_BYTES_PER_SECOND: f64 = 1_000.0;

/// The writable layer of a container at `t`, as a filesystem walk finds it.
pub fn layer_bytes(t: i64) -> f64 {
    8e6 + LAYER_BYTES_PER_SECOND * (t.rem_euclid(86_400_000) / 1000) as f64
}

/// The figures of a container at `t`: busy runs near its CPU limit. The
/// disk-usage series only when a filesystem walk (`walk`) lands in this
/// point, missing (NaN) otherwise, as the agent writes them; web has no
/// volumes.
pub fn figures(id: &str, t: i64, walk: bool) -> [f64; SERIES_COUNT] {
    let wave = ((t / 1000) as f64 / 30.0).sin();
    let (cpu, mem) = match id {
        BUSY_ID => (BUSY_LIMIT_PERCENT - 2.0 + wave, 180e6),
        WEB_ID => (3.0 + wave, 40e6),
        _ => (0.2, 8e6),
    };
    [
        cpu,
        mem * 1.2,
        mem,
        20_000.0 + 5_000.0 * wave,
        8_000.0,
        1_000.0,
        4_000.0,
        12.0,
        256e6,
        if walk { layer_bytes(t) } else { f64::NAN },
        if walk && id == BUSY_ID { 1e9 } else { f64::NAN },
        if walk { 2e6 } else { f64::NAN },
    ]
}

fn snapshot(t: i64, walk: bool) -> Snapshot {
    let running = [
        container(
            BUSY_ID,
            "busy",
            "jaga-test/busybox:latest",
            ContainerState::Running,
        ),
        container(
            WEB_ID,
            "web",
            "jaga-test/nginx:latest",
            ContainerState::Running,
        ),
    ];
    Snapshot {
        taken_unix_ms: t,
        machine: MachineInfo {
            hostname: "testhost".to_owned(),
            cpu_cores: 2,
            memory_bytes: 4 << 30,
            ..MachineInfo::default()
        },
        data_root: Some(DataRootUsage {
            path: "/var/lib/docker".to_owned(),
            device: "/dev/vda1".to_owned(),
            capacity_bytes: 40 << 30,
            used_bytes: 12 << 30,
            available_bytes: 28 << 30,
        }),
        containers: running
            .into_iter()
            .map(|c| ContainerSnapshot {
                figures: Some(HistoryPoint {
                    unix_ms: t,
                    values: figures(c.id.as_str(), t, walk),
                }),
                cgroup_path: format!("/docker/{}", c.id),
                container: Arc::new(c),
                sample: None,
                fs: None,
                devices: Arc::default(),
                last_seen_unix: t / 1000,
            })
            .collect(),
        stopped: vec![container(
            IDLE_ID,
            "idle",
            "jaga-test/busybox:latest",
            ContainerState::Exited,
        )],
        agent: jaga_model::AgentStats {
            collections_total: 1,
            ..jaga_model::AgentStats::default()
        },
    }
}

pub fn alert(
    n: u64,
    rule: &str,
    level: u8,
    description: &str,
    container_id: &str,
    name: &str,
) -> Alert {
    Alert {
        id: format!("fixture.{n}.{rule}"),
        timestamp: chrono::DateTime::from_timestamp_millis(now_ms())
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        rule: AlertRule {
            id: rule.to_owned(),
            level,
            description: description.to_owned(),
            groups: vec!["docker".to_owned()],
            mitre: vec![],
        },
        agent: AlertAgent::default(),
        container: Some(EventContainer {
            id: container_id.to_owned(),
            name: name.to_owned(),
            image: "jaga-test/busybox:latest".to_owned(),
            labels: BTreeMap::new(),
            compose_project: None,
            compose_service: None,
            runtime: None,
        }),
        data: BTreeMap::new(),
        location: "docker-events".to_owned(),
        event: None,
        episode: None,
    }
}

/// A container event as the Docker listener stores it.
pub fn lifecycle(action: &str, container_id: &str, name: &str) -> Event {
    Event {
        docker: DockerEvent {
            time_nano: now_ms() * 1_000_000,
            kind: "container".to_owned(),
            action: action.to_owned(),
            action_detail: None,
            actor_id: container_id.to_owned(),
            attributes: BTreeMap::from([("name".to_owned(), name.to_owned())]),
            scope: "local".to_owned(),
        },
        container: None,
        exec_command: None,
    }
}

fn audit_report() -> serde_json::Value {
    serde_json::json!({
        "findings": [{
            "check_id": "5.4",
            "title": "Container runs privileged",
            "severity": "high",
            "threat": "container_escape",
            "practice": "runtime",
            "object": {"kind": "container", "id": BUSY_ID, "name": "busy"},
            "evidence": "HostConfig.Privileged = true",
            "remediation": "Run it without --privileged."
        }],
        "scores": {"container_escape": 80, "data_exposure": 100},
        "counts": {"high": 1}
    })
}

/// Log lines the test writes, read back as the Engine would.
#[derive(Default)]
pub struct FixtureLogs {
    pub lines: Mutex<Vec<LogLine>>,
}

impl FixtureLogs {
    pub fn push(&self, stream: &'static str, line: &str) {
        let ms = now_ms();
        self.lines.lock().unwrap().push(LogLine {
            unix_ms: ms,
            time_nano: ms * 1_000_000,
            stream,
            line: line.to_owned(),
        });
    }
}

/// The set-up of every container in the bed: nginx published on loopback.
pub struct FixtureSetup;

impl SetupView for FixtureSetup {
    fn setup(
        &self,
        _container_id: String,
    ) -> Pin<Box<dyn Future<Output = Result<jaga_model::ContainerSetup, String>> + Send>> {
        let setup = jaga_model::ContainerSetup {
            command: "nginx -g 'daemon off;'".to_owned(),
            working_dir: "/".to_owned(),
            ports: vec![jaga_model::PortBinding {
                container_port: "80/tcp".to_owned(),
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: Some("8080".to_owned()),
            }],
            mounts: vec![jaga_model::MountView {
                kind: "volume".to_owned(),
                source: "web-data".to_owned(),
                destination: "/usr/share/nginx/html".to_owned(),
                read_write: false,
            }],
            networks: vec![jaga_model::NetworkView {
                name: "bridge".to_owned(),
                ip_address: "172.17.0.2".to_owned(),
                gateway: "172.17.0.1".to_owned(),
            }],
            restart_policy: "on-failure:3".to_owned(),
            restart_count: 1,
            limits: jaga_model::Limits {
                memory_bytes: Some(256 << 20),
                nano_cpus: Some(500_000_000),
                ..Default::default()
            },
            ..Default::default()
        };
        Box::pin(async move { Ok(setup) })
    }
}

impl LogsView for FixtureLogs {
    fn recent(
        &self,
        _container_id: String,
        query: LogQuery,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<LogLine>, String>> + Send>> {
        let lines: Vec<LogLine> = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| query.after_ns.is_none_or(|after| l.time_nano > after))
            .cloned()
            .collect();
        let skip = lines.len().saturating_sub(query.tail as usize);
        Box::pin(async move { Ok(lines.into_iter().skip(skip).collect()) })
    }
}

/// Starts the bed: history for the last `history_days` days (minute
/// rollups, raw points for the last hour), a collector each second.
pub async fn start(tokens: Tokens, history_days: i64) -> Bed {
    start_with_audit(tokens, history_days, true).await
}

/// The bed with the audit on (a report ready) or off (`[audit] disabled`).
pub async fn start_with_audit(tokens: Tokens, history_days: i64, audit_on: bool) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let history = Arc::new(HistoryStore::open(dir.path(), Retention::default()).unwrap());
    let events = Arc::new(EventStore::open(dir.path()).unwrap());
    let now = now_ms();
    let ids = [BUSY_ID, WEB_ID];
    let mut points = Vec::new();
    let mut t = now - history_days * 86_400_000;
    while t < now {
        let step = if now - t > 3_600_000 { 60_000 } else { 5_000 };
        // A walk each minute: every older point, every sixth recent one.
        let walk = step == 60_000 || (t / 5_000) % 6 == 0;
        for id in ids {
            points.push((
                ContainerId::new(id),
                HistoryPoint {
                    unix_ms: t,
                    values: figures(id, t, walk),
                },
            ));
        }
        t += step;
    }
    history.write_points(&points).unwrap();
    history.roll_up(now).unwrap();
    let first = snapshot(now, false);
    let mut known: Vec<ContainerRef> = first
        .containers
        .iter()
        .map(|c| ContainerRef::clone(&c.container))
        .collect();
    known.extend(first.stopped.clone());
    history.upsert_containers(&known, now).unwrap();
    events
        .commit(
            &[alert(
                1,
                "80001",
                8,
                "container started privileged",
                BUSY_ID,
                "busy",
            )],
            &Consumed::Nothing,
        )
        .unwrap();

    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(first));
    let (_audit_tx, audit_rx) = watch::channel(Some(Arc::<str>::from(audit_report().to_string())));
    let logs = Arc::new(FixtureLogs::default());
    logs.push("stdout", "nginx started");
    let counters = Arc::new(HttpCounters::default());
    let state = Arc::new(ServerState {
        snapshot: snapshot_rx,
        store: Arc::clone(&history),
        labels: LabelOptions::default(),
        interval: Duration::from_secs(1),
        events: Some(Arc::clone(&events)),
        audit: audit_on.then_some(audit_rx),
        auth: Arc::new(tokens),
        http: Arc::clone(&counters),
        tasks: None,
        outputs: None,
        processes: None,
        logs: Some(Arc::clone(&logs) as Arc<dyn LogsView>),
        setup: Some(Arc::new(FixtureSetup)),
    });
    // The audit sender must outlive the bed: the receiver keeps its value.
    std::mem::forget(_audit_tx);
    let collector_history = Arc::clone(&history);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // A filesystem walk every tenth pass.
        let mut passes = 0u64;
        loop {
            tick.tick().await;
            let t = now_ms();
            let next = snapshot(t, passes.is_multiple_of(10));
            passes += 1;
            let points: Vec<_> = next
                .containers
                .iter()
                .filter_map(|c| c.figures.map(|f| (c.container.id.clone(), f)))
                .collect();
            let _ = collector_history.write_points(&points);
            if snapshot_tx.send(Arc::new(next)).is_err() {
                return;
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(listen::serve(
        listener,
        router(state),
        Limits {
            max_connections: 64,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        },
        None,
        Arc::clone(&counters),
        stopped,
    ));
    Bed {
        port,
        events,
        history,
        logs,
        counters,
        _stop: stop,
        _dir: dir,
    }
}
