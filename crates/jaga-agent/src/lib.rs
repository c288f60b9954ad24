//! The long-running agent behind `jaga serve`. Collects every container
//! each interval, keeps history on disk, serves `/metrics`, `/healthz` and
//! `/api/v1`, and stops cleanly on SIGTERM or SIGINT.

pub mod clock;
pub mod http;
pub mod logs_view;
pub mod outputs;
pub mod own_container;
pub mod preflight;
pub mod sampler;
pub mod sink;
pub mod sources;
pub mod stats_entry;
pub mod supervise;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jaga_config::Config;
use jaga_engine::Engine;
use jaga_model::{AlertAgent, ListenerStats, MachineInfo, Snapshot};
use jaga_rules::logs::RuleSet;
use jaga_server::{router, LabelOptions, ServerState};
use jaga_store::{EventStore, HistoryStore, Retention};
use tokio::sync::{mpsc, watch};

use crate::outputs::Outputs;
use crate::sink::AlertSink;
use crate::sources::audit::continuous::ContinuousAudit;
use crate::sources::audit::gather::HostPaths;
use crate::sources::docker_events::listener::{Listener, SharedListenerStats};
use crate::sources::logs::watch::{LogWatch, SharedLogStats};
use crate::sources::logs::Analyzer;
use crate::sources::process::{ProcessTask, ProcessWatch, ProcessesOf};

use crate::clock::unix_ms;
use crate::sampler::Sampler;
use crate::sources::collector::{follow_events, Collector};
use crate::sources::filesystem::{self as filesystem, FsState, SharedFsState, WalkBudget};
use supervise::{Supervisor, STALL_AFTER};

/// The containers the collector last inspected.
type SharedDetails = Arc<Vec<jaga_engine::ContainerDetails>>;

/// The agent, built and ready to run: stores open, outputs set up, the
/// HTTP address bound. Nothing runs until [`Agent::run`].
pub struct Agent {
    config: Config,
    engine: Arc<Engine>,
    sampler: Arc<Sampler>,
    host_root: PathBuf,
    daemon: jaga_engine::DaemonInfo,
    machine: MachineInfo,
    http: http::HttpSetup,
    tcp: tokio::net::TcpListener,
    history: Arc<HistoryStore>,
    events: Arc<EventStore>,
    sink: Arc<AlertSink>,
    outputs: Arc<Outputs>,
    remote_write: Option<outputs::remote_write::RemoteWrite>,
    log_rules: Option<RuleSet>,
    metric_rules: Option<jaga_rules::metric::MetricRules>,
    supervisor: Arc<Supervisor>,
    state: Arc<ServerState>,
    snapshot_tx: watch::Sender<Arc<Snapshot>>,
    details: (watch::Sender<SharedDetails>, watch::Receiver<SharedDetails>),
    audit_tx: watch::Sender<Option<Arc<str>>>,
    cves: Arc<jaga_audit::CveTable>,
    listener_stats: Option<SharedListenerStats>,
    log_stats: Option<SharedLogStats>,
    process: Option<(ProcessWatch, jaga_rules::process::ProcessRules)>,
    process_alerts: Arc<std::sync::atomic::AtomicU64>,
}

impl Agent {
    /// Checks rule files and outputs, opens the stores and binds the HTTP
    /// address; fails before anything starts when one of them cannot work.
    pub async fn build(
        config: Config,
        engine: Engine,
        sampler: Sampler,
        host_root: PathBuf,
    ) -> anyhow::Result<Self> {
        let serve = config.serve.clone();
        let preflight::Preflight {
            http,
            log_rules,
            metric_rules,
            process_rules,
            cves,
            remote_writer,
        } = preflight::preflight(&config)?;
        let cves = Arc::new(cves);
        let process = match process_rules {
            Some(rules) => Some((ProcessWatch::start(&config.process, &host_root)?, rules)),
            None => None,
        };
        let process_alerts = Arc::new(std::sync::atomic::AtomicU64::new(0));

        let retention = Retention {
            raw: config.history.raw,
            rollup: config.history.rollup,
        };
        let data_dir = serve.data_dir.clone();
        let history = tokio::task::spawn_blocking(move || HistoryStore::open(&data_dir, retention))
            .await
            .context("opening the history store stopped")?
            .with_context(|| {
                format!("cannot open the history in '{}'", serve.data_dir.display())
            })?;
        let history = Arc::new(history);
        // Events and alerts are kept whatever sources run: logs and the
        // audit raise alerts without the Docker event listener.
        let dir = serve.data_dir.clone();
        let events = tokio::task::spawn_blocking(move || EventStore::open(&dir))
            .await
            .context("opening the event store stopped")?
            .with_context(|| {
                format!(
                    "cannot open the event store in '{}'",
                    serve.data_dir.display()
                )
            })?;
        let events = Arc::new(events);
        let sink = Arc::new(
            AlertSink::new(Arc::clone(&events), config.alerts.min_level)
                .context("cannot read the alert sequence")?,
        );
        let mut outputs = Outputs::build(&config, &serve.data_dir, Arc::clone(&events))?;
        let remote_write = match (&config.remote_write, remote_writer) {
            (Some(settings), Some(writer)) => {
                let status = Arc::new(outputs::status::OutputStatus::new(
                    outputs::remote_write::NAME,
                    outputs::remote_write::KIND,
                ));
                outputs.show_exporter(Arc::clone(&status));
                Some(outputs::remote_write::RemoteWrite {
                    writer,
                    settings: settings.clone(),
                    store: Arc::clone(&history),
                    instance: config
                        .serve
                        .agent_name_or(crate::sources::docker_events::hostname),
                    status,
                })
            }
            _ => None,
        };
        let outputs = Arc::new(outputs);

        let daemon = engine
            .daemon_info()
            .await
            .context("cannot read the Docker daemon's info")?;
        let host = sampler
            .host_counters()
            .context("cannot read host CPU and memory counters")?;
        let machine = MachineInfo {
            hostname: daemon.name.clone(),
            cpu_cores: host.online_cpus,
            memory_bytes: host.mem_total_bytes,
            kernel_version: daemon.kernel_version.clone(),
            os: daemon.operating_system.clone(),
            docker_version: daemon.server_version.clone(),
            cgroup_version: match sampler.reader().version() {
                jaga_model::CgroupVersion::V1 => 1,
                jaga_model::CgroupVersion::V2 => 2,
            },
            docker_root_dir: daemon.docker_root_dir.display().to_string(),
        };

        let tcp = tokio::net::TcpListener::bind(serve.listen)
            .await
            .with_context(|| format!("cannot listen on {}", serve.listen))?;

        let supervisor = Supervisor::new();
        let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot {
            machine: machine.clone(),
            ..Snapshot::default()
        }));
        let details = watch::channel(Arc::new(Vec::new()));
        let (audit_tx, audit_rx) = watch::channel(None);
        let listener_stats: Option<SharedListenerStats> = (!config.docker_listener.disabled)
            .then(|| Arc::new(std::sync::Mutex::new(ListenerStats::default())));
        let log_stats: Option<SharedLogStats> = log_rules
            .is_some()
            .then(|| Arc::new(std::sync::Mutex::new(jaga_model::LogStats::default())));
        let engine = Arc::new(engine);
        let state = Arc::new(ServerState {
            snapshot: snapshot_rx,
            store: Arc::clone(&history),
            labels: LabelOptions {
                store_container_labels: config.metrics.store_container_labels,
                whitelisted_container_labels: config.metrics.whitelisted_container_labels.clone(),
            },
            interval: serve.interval,
            events: Some(Arc::clone(&events)),
            audit: (!config.audit.disabled).then_some(audit_rx),
            auth: Arc::clone(&http.tokens),
            http: Arc::clone(&http.counters),
            tasks: Some({
                let supervisor = Arc::clone(&supervisor);
                Arc::new(move || supervisor.report())
            }),
            outputs: Some(Arc::clone(&outputs) as Arc<dyn jaga_server::OutputsView>),
            processes: process.as_ref().map(|(watch, _)| {
                Arc::new(ProcessesOf {
                    monitor: Arc::clone(&watch.monitor),
                    host_root: host_root.clone(),
                }) as Arc<dyn jaga_server::ProcessesView>
            }),
            logs: Some(Arc::new(logs_view::EngineLogs {
                engine: Arc::clone(&engine),
            }) as Arc<dyn jaga_server::LogsView>),
            setup: Some(Arc::new(logs_view::EngineSetup {
                engine: Arc::clone(&engine),
            }) as Arc<dyn jaga_server::SetupView>),
        });
        Ok(Self {
            config,
            engine,
            sampler: Arc::new(sampler),
            host_root,
            daemon,
            machine,
            http,
            tcp,
            history,
            events,
            sink,
            outputs,
            remote_write,
            log_rules,
            metric_rules,
            supervisor,
            state,
            snapshot_tx,
            details,
            audit_tx,
            cves,
            listener_stats,
            log_stats,
            process,
            process_alerts,
        })
    }

    /// What the HTTP server reads.
    pub fn server_state(&self) -> Arc<ServerState> {
        Arc::clone(&self.state)
    }

    /// The one door into the store, for sources added from outside.
    pub fn sink(&self) -> Arc<AlertSink> {
        Arc::clone(&self.sink)
    }

    /// Runs every source, output and the HTTP server until `shutdown`
    /// completes, then stops them in order and flushes the stores.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Agent {
            config,
            engine,
            sampler,
            host_root,
            daemon,
            machine,
            http,
            tcp,
            history,
            events,
            sink,
            outputs,
            remote_write,
            log_rules,
            metric_rules,
            supervisor,
            state,
            snapshot_tx,
            details: (details_tx, details_rx),
            audit_tx,
            cves,
            listener_stats,
            log_stats,
            process,
            process_alerts,
        } = self;
        let serve = config.serve.clone();
        tracing::info!(
            listen = %serve.listen,
            interval = ?serve.interval,
            data_dir = %serve.data_dir.display(),
            engine = engine.endpoint(),
            docker = %daemon.server_version,
            tls = http.tls.is_some(),
            tokens = http.tokens.required(),
            outputs = ?outputs.names(),
            "jaga serve started"
        );
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        http::reload_on_sighup(&http, shutdown_rx.clone())?;
        let (notice_tx, notice_rx) = mpsc::unbounded_channel();
        let agent = AlertAgent {
            id: daemon.name.clone(),
            name: config
                .serve
                .agent_name_or(crate::sources::docker_events::hostname),
        };

        // Sources: each one line, each committing through the sink.
        let mut source_tasks = Vec::new();
        let (lifecycle_tx, lifecycle_rx) = mpsc::unbounded_channel();
        if !config.audit.disabled {
            let audit = ContinuousAudit {
                engine: Arc::clone(&engine),
                sink: Arc::clone(&sink),
                paths: HostPaths {
                    root: host_root.clone(),
                    daemon_json: config.audit.daemon_json.clone(),
                    alpine_secfixes: config.audit.alpine_secfixes.clone(),
                },
                cves,
                interval: config.audit.interval,
                agent: agent.clone(),
                lifecycle: lifecycle_rx,
                report: audit_tx,
            };
            source_tasks.push(supervisor.spawn(
                "audit",
                STALL_AFTER,
                audit.run(shutdown_rx.clone()),
            ));
        }
        if let Some(stats) = &listener_stats {
            let listener = Listener {
                engine: Arc::clone(&engine),
                sink: Arc::clone(&sink),
                config: config.docker_listener.clone(),
                agent: agent.clone(),
                stats: Arc::clone(stats),
                lifecycle: (!config.audit.disabled).then_some(lifecycle_tx),
            };
            source_tasks.push(supervisor.spawn(
                "docker_listener",
                STALL_AFTER,
                listener.run(shutdown_rx.clone()),
            ));
        }
        if let (Some(rules), Some(stats)) = (log_rules, &log_stats) {
            let watch = LogWatch {
                engine: Arc::clone(&engine),
                sink: Arc::clone(&sink),
                config: config.logs.clone(),
                analyzer: Analyzer::new(rules).with_redaction(engine.redaction()),
                agent: agent.clone(),
                stats: Arc::clone(stats),
                inventory: details_rx.clone(),
            };
            source_tasks.push(supervisor.spawn(
                "logs",
                STALL_AFTER,
                watch.run(shutdown_rx.clone()),
            ));
        }
        if let Some(rules) = metric_rules {
            let task = crate::sources::metric_rules::MetricRulesTask {
                rules,
                exits: Default::default(),
                sink: Arc::clone(&sink),
                snapshots: snapshot_tx.subscribe(),
                agent: agent.clone(),
                interval: config.metric_rules.interval,
                collection_interval: serve.interval,
            };
            source_tasks.push(supervisor.spawn(
                "metric_rules",
                STALL_AFTER,
                task.run(shutdown_rx.clone()),
            ));
        }
        let process_stats = process.as_ref().map(|(watch, _)| {
            let monitor = Arc::clone(&watch.monitor);
            let alerts = Arc::clone(&process_alerts);
            Arc::new(move || {
                let mut stats = monitor.stats();
                stats.alerts_total = alerts.load(std::sync::atomic::Ordering::Relaxed);
                stats
            }) as crate::sources::collector::ProcessStatsSource
        });
        if let Some((watch, rules)) = process {
            let task = ProcessTask {
                watch,
                rules,
                engine: Arc::clone(&engine),
                sink: Arc::clone(&sink),
                agent: agent.clone(),
                host_root: host_root.clone(),
                details: details_rx.clone(),
                alerts_total: Arc::clone(&process_alerts),
            };
            source_tasks.push(supervisor.spawn(
                "process",
                STALL_AFTER,
                task.run(shutdown_rx.clone()),
            ));
        }
        // Outputs: a runner each, woken by every commit.
        let mut output_tasks =
            outputs.spawn(&supervisor, &sink.subscribe(), &shutdown_rx, &agent.name);
        if let Some(exporter) = remote_write {
            output_tasks.push(supervisor.spawn(
                "output/remote_write",
                STALL_AFTER,
                exporter.run(shutdown_rx.clone()),
            ));
        }
        let trim_task = supervisor.spawn(
            "trim",
            STALL_AFTER,
            trim_events(
                Arc::clone(&events),
                config.alerts.retention,
                outputs.names(),
                shutdown_rx.clone(),
            ),
        );
        let fs_state: SharedFsState = Arc::new(std::sync::Mutex::new(FsState::default()));

        let collector = Collector {
            engine: Arc::clone(&engine),
            sampler,
            store: Arc::clone(&history),
            host_root: host_root.clone(),
            machine,
            interval: serve.interval,
            resync: serve.resync,
            fs_state: Arc::clone(&fs_state),
            details_tx,
            snapshot_tx,
            notices: notice_rx,
            listener: listener_stats.clone(),
            logs: log_stats.clone(),
            process: process_stats,
        };
        let collector_task =
            supervisor.spawn("collector", STALL_AFTER, collector.run(shutdown_rx.clone()));
        let events_task = supervisor.spawn(
            "inventory_events",
            STALL_AFTER,
            follow_events(Arc::clone(&engine), notice_tx, shutdown_rx.clone()),
        );
        let fs_task = (!config.filesystem.disabled).then(|| {
            supervisor.spawn(
                "filesystem",
                STALL_AFTER,
                measure_files(
                    host_root,
                    daemon.docker_root_dir.clone(),
                    config.filesystem.clone(),
                    details_rx,
                    fs_state,
                    shutdown_rx.clone(),
                ),
            )
        });

        let (router, limits, tls, counters) = (
            router(state),
            http.limits,
            http.tls.clone(),
            Arc::clone(&http.counters),
        );
        let http_shutdown = shutdown_rx.clone();
        let server_task = supervisor.spawn("http", STALL_AFTER, async move {
            let served =
                jaga_server::listen::serve(tcp, router, limits, tls, counters, http_shutdown);
            if let Err(error) = served.await {
                tracing::error!(%error, "HTTP server stopped with an error");
            }
        });

        shutdown.await;
        supervisor.stopping();
        let _ = shutdown_tx.send(true);
        collector_task
            .await
            .context("the collector stopped abnormally")?;
        events_task.abort();
        // Sources store what they hold; outputs keep their cursors.
        for task in source_tasks
            .into_iter()
            .chain(output_tasks)
            .chain([trim_task])
        {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                tracing::warn!("a source or output task did not stop within 5 s");
            }
        }
        if let Some(task) = fs_task {
            task.abort();
        }
        // Open HTTP connections get a moment to finish, not forever.
        if tokio::time::timeout(Duration::from_secs(5), server_task)
            .await
            .is_err()
        {
            tracing::warn!("HTTP connections still open after 5 s; closing");
        }
        let flush = Arc::clone(&history);
        tokio::task::spawn_blocking(move || flush.checkpoint())
            .await
            .context("flushing the history stopped")?
            .context("cannot flush the history")?;
        tokio::task::spawn_blocking(move || events.checkpoint())
            .await
            .context("flushing the event store stopped")?
            .context("cannot flush the event store")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Drops events and alerts older than the retention, hourly; alerts only
/// once every output's cursor has passed them.
async fn trim_events(
    store: Arc<EventStore>,
    retention: Duration,
    outputs: Vec<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let cut =
            unix_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
        let store = Arc::clone(&store);
        let outputs = outputs.clone();
        match tokio::task::spawn_blocking(move || store.trim(cut, &outputs)).await {
            Ok(Ok((events, alerts))) => {
                tracing::debug!(events, alerts, "old events and alerts trimmed")
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot trim events and alerts"),
            Err(error) => tracing::warn!(%error, "trimming events stopped"),
        }
    }
}

/// The filesystem pass, every `interval`, on a blocking thread.
async fn measure_files(
    host_root: PathBuf,
    data_root: PathBuf,
    config: jaga_config::FilesystemConfig,
    mut details: watch::Receiver<Arc<Vec<jaga_engine::ContainerDetails>>>,
    state: SharedFsState,
    mut shutdown: watch::Receiver<bool>,
) {
    let budget = WalkBudget {
        max_entries: config.max_entries,
        max_time: config.max_walk_time,
    };
    // Give the collector a moment to list containers before the first pass.
    let _ = tokio::time::timeout(Duration::from_secs(5), details.changed()).await;
    let mut ticker = tokio::time::interval(config.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let containers = Arc::clone(&details.borrow_and_update());
        let host_root = host_root.clone();
        let data_root = data_root.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            filesystem::measure_pass(&host_root, &data_root, &containers, budget, unix_ms())
        })
        .await;
        match result {
            Ok((containers, data_root, errors)) => {
                tracing::debug!(
                    containers = containers.len(),
                    errors,
                    seconds = started.elapsed().as_secs_f64(),
                    "filesystem pass done"
                );
                let mut state = filesystem::lock(&state);
                state.containers = containers;
                state.data_root = data_root;
                state.errors_total += errors;
            }
            Err(error) => tracing::warn!(%error, "filesystem pass stopped"),
        }
    }
}
