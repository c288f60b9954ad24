//! The long-running agent behind `jaga serve`. Collects every container
//! each interval, keeps history on disk, serves `/metrics`, `/healthz` and
//! `/api/v1`, and stops cleanly on SIGTERM or SIGINT.

pub mod clock;
mod http;
pub mod outputs;
pub mod sampler;
pub mod sources;
pub mod stats_entry;
pub mod supervise;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use jaga_config::Config;
use jaga_engine::Engine;
use jaga_model::{AlertAgent, ListenerStats, MachineInfo, Snapshot};
use jaga_server::{router, LabelOptions, ServerState};
use jaga_store::{EventStore, HistoryStore, Retention};
use tokio::sync::{mpsc, watch, Notify};

use crate::outputs::alert_file::{write_alerts, AlertFile};
use crate::sources::audit::continuous::ContinuousAudit;
use crate::sources::audit::gather::HostPaths;
use crate::sources::docker_events::listener::{Listener, SharedListenerStats};
use crate::sources::logs::watch::{LogWatch, SharedLogStats};
use crate::sources::logs::Analyzer;

use crate::clock::unix_ms;
use crate::sampler::Sampler;
use crate::sources::collector::{follow_events, Collector};
use crate::sources::filesystem::{self as filesystem, FsState, SharedFsState, WalkBudget};
use supervise::{Supervisor, STALL_AFTER};

pub async fn run(
    config: Config,
    engine: Engine,
    sampler: Sampler,
    host_root: PathBuf,
) -> anyhow::Result<()> {
    let serve = config.serve.clone();
    let http = http::prepare(&serve)?;
    // Rule files are checked before anything starts: a bad one must not
    // leave an audit run and alerts written behind it.
    let log_rules = if config.logs.disabled || config.docker_listener.disabled {
        None
    } else {
        Some(crate::sources::logs::load_rules(&config.logs.rules)?)
    };

    let retention = Retention {
        raw: config.history.raw,
        rollup: config.history.rollup,
    };
    let data_dir = serve.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || HistoryStore::open(&data_dir, retention))
        .await
        .context("opening the history store stopped")?
        .with_context(|| format!("cannot open the history in '{}'", serve.data_dir.display()))?;
    let store = Arc::new(store);

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

    let listener = tokio::net::TcpListener::bind(serve.listen)
        .await
        .with_context(|| format!("cannot listen on {}", serve.listen))?;
    tracing::info!(
        listen = %serve.listen,
        interval = ?serve.interval,
        data_dir = %serve.data_dir.display(),
        engine = engine.endpoint(),
        docker = %daemon.server_version,
        tls = http.tls.is_some(),
        tokens = http.tokens.required(),
        "jaga serve started"
    );

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    http::reload_on_sighup(&http, shutdown_rx.clone())?;
    let supervisor = Supervisor::new();
    let (snapshot_tx, snapshot_rx) = watch::channel(Arc::new(Snapshot {
        machine: machine.clone(),
        ..Snapshot::default()
    }));
    let (details_tx, details_rx) = watch::channel(Arc::new(Vec::new()));
    let (notice_tx, notice_rx) = mpsc::unbounded_channel();

    // Docker events: the listener, the alerts file, and their store.
    let events_store = if config.docker_listener.disabled {
        None
    } else {
        let dir = serve.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || EventStore::open(&dir))
            .await
            .context("opening the event store stopped")?
            .with_context(|| {
                format!(
                    "cannot open the event store in '{}'",
                    serve.data_dir.display()
                )
            })?;
        Some(Arc::new(store))
    };
    let listener_stats: Option<SharedListenerStats> = events_store
        .as_ref()
        .map(|_| Arc::new(std::sync::Mutex::new(ListenerStats::default())));
    let mut event_tasks = Vec::new();
    let log_stats: SharedLogStats =
        Arc::new(std::sync::Mutex::new(jaga_model::LogStats::default()));
    let logs_enabled = events_store.is_some() && !config.logs.disabled;
    let (audit_tx, audit_rx) = watch::channel(Arc::new(serde_json::Value::Null));
    let audit_enabled = events_store.is_some() && !config.audit.disabled;
    if let (Some(store), Some(stats)) = (&events_store, &listener_stats) {
        let alerts_written = Arc::new(Notify::new());
        let (lifecycle_tx, lifecycle_rx) = mpsc::unbounded_channel();
        let agent = AlertAgent {
            id: daemon.name.clone(),
            name: crate::sources::docker_events::hostname(),
        };
        if audit_enabled {
            let audit = ContinuousAudit {
                engine: Arc::new(engine.clone()),
                store: Arc::clone(store),
                paths: HostPaths {
                    root: host_root.clone(),
                    daemon_json: config.audit.daemon_json.clone(),
                },
                interval: config.audit.interval,
                agent: agent.clone(),
                lifecycle: lifecycle_rx,
                report: audit_tx,
                alerts_written: Arc::clone(&alerts_written),
            };
            event_tasks.push(supervisor.spawn(
                "audit",
                STALL_AFTER,
                audit.run(shutdown_rx.clone()),
            ));
        }
        let listener = Listener {
            engine: Arc::new(engine.clone()),
            store: Arc::clone(store),
            config: config.docker_listener.clone(),
            min_level: config.alerts.min_level,
            agent: agent.clone(),
            stats: Arc::clone(stats),
            alerts_written: Arc::clone(&alerts_written),
            lifecycle: audit_enabled.then_some(lifecycle_tx),
        };
        event_tasks.push(supervisor.spawn(
            "docker_listener",
            STALL_AFTER,
            listener.run(shutdown_rx.clone()),
        ));
        if !config.alerts.file.as_os_str().is_empty() {
            let file = AlertFile::new(
                serve.data_dir.join(&config.alerts.file),
                config.alerts.max_file_bytes,
                config.alerts.max_files,
            );
            event_tasks.push(supervisor.spawn(
                "alerts_file",
                STALL_AFTER,
                write_alerts(
                    Arc::clone(store),
                    file,
                    Arc::clone(&alerts_written),
                    shutdown_rx.clone(),
                ),
            ));
        }
        if let Some(rules) = log_rules {
            let watch = LogWatch {
                engine: Arc::new(engine.clone()),
                store: Arc::clone(store),
                config: config.logs.clone(),
                analyzer: Analyzer::new(rules).with_redaction(engine.redaction()),
                agent: agent.clone(),
                min_level: config.alerts.min_level,
                stats: Arc::clone(&log_stats),
                alerts_written: Arc::clone(&alerts_written),
            };
            event_tasks.push(supervisor.spawn("logs", STALL_AFTER, watch.run(shutdown_rx.clone())));
        }
        event_tasks.push(supervisor.spawn(
            "trim",
            STALL_AFTER,
            trim_events(
                Arc::clone(store),
                config.alerts.retention,
                shutdown_rx.clone(),
            ),
        ));
    }
    let fs_state: SharedFsState = Arc::new(std::sync::Mutex::new(FsState::default()));
    let engine = Arc::new(engine);

    let collector = Collector {
        engine: Arc::clone(&engine),
        sampler: Arc::new(sampler),
        store: Arc::clone(&store),
        host_root: host_root.clone(),
        machine,
        interval: serve.interval,
        resync: serve.resync,
        fs_state: Arc::clone(&fs_state),
        details_tx,
        snapshot_tx,
        notices: notice_rx,
        listener: listener_stats.clone(),
        logs: logs_enabled.then(|| Arc::clone(&log_stats)),
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

    let state = Arc::new(ServerState {
        snapshot: snapshot_rx,
        store: Arc::clone(&store),
        labels: LabelOptions {
            store_container_labels: config.metrics.store_container_labels,
            whitelisted_container_labels: config.metrics.whitelisted_container_labels.clone(),
        },
        interval: serve.interval,
        events: events_store.clone(),
        audit: audit_enabled.then_some(audit_rx),
        auth: Arc::clone(&http.tokens),
        http: Arc::clone(&http.counters),
        tasks: Some({
            let supervisor = Arc::clone(&supervisor);
            Arc::new(move || supervisor.report())
        }),
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
            jaga_server::listen::serve(listener, router, limits, tls, counters, http_shutdown);
        if let Err(error) = served.await {
            tracing::error!(%error, "HTTP server stopped with an error");
        }
    });

    let signal = wait_for_signal().await?;
    tracing::info!(signal, "stopping: finishing the pass in hand");
    supervisor.stopping();
    let _ = shutdown_tx.send(true);
    collector_task
        .await
        .context("the collector stopped abnormally")?;
    events_task.abort();
    // The listener stores the event in hand; the alerts file gets its last lines.
    for task in event_tasks {
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            tracing::warn!("an event task did not stop within 5 s");
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
    let flush = Arc::clone(&store);
    tokio::task::spawn_blocking(move || flush.checkpoint())
        .await
        .context("flushing the history stopped")?
        .context("cannot flush the history")?;
    if let Some(store) = events_store {
        tokio::task::spawn_blocking(move || store.checkpoint())
            .await
            .context("flushing the event store stopped")?
            .context("cannot flush the event store")?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Drops events and alerts older than the retention, hourly.
async fn trim_events(
    store: Arc<EventStore>,
    retention: Duration,
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
        match tokio::task::spawn_blocking(move || store.trim(cut)).await {
            Ok(Ok((events, alerts))) => {
                tracing::debug!(events, alerts, "old events and alerts trimmed")
            }
            Ok(Err(error)) => tracing::warn!(%error, "cannot trim events and alerts"),
            Err(error) => tracing::warn!(%error, "trimming events stopped"),
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
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
