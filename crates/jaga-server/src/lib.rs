//! HTTP surface of jaga: `/metrics` in cAdvisor's names, `/healthz`, and the
//! REST API under `/api/v1`. It serves what the collector published; it
//! holds no collection logic.

pub mod api;
pub mod auth;
pub mod dashboard;
pub mod listen;
pub mod metrics;
pub mod session;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use jaga_model::{Snapshot, TaskHealth};
use jaga_store::HistoryStore;
use serde::Serialize;
use tokio::sync::watch;

pub use metrics::{render, render_served, ExpositionFormat, LabelOptions};

/// What the handlers read: the collector's latest snapshot and the history.
pub struct ServerState {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub store: Arc<HistoryStore>,
    pub labels: LabelOptions,
    /// The collection interval: `/healthz` fails when collection falls behind it.
    pub interval: Duration,
    /// Docker events and alerts; `None` when the listener is disabled.
    pub events: Option<Arc<jaga_store::EventStore>>,
    /// The latest audit report, serialized once as JSON text (a report of
    /// thousands of findings held as a `serde_json::Value` tree costs
    /// megabytes); `None` when the audit is disabled, `Some(None)` until
    /// the first audit finished.
    pub audit: Option<watch::Receiver<Option<Arc<str>>>>,
    /// The API tokens every route but `/healthz` requires (none: open).
    pub auth: Arc<auth::Tokens>,
    /// Connection and authentication counters, shown in `/metrics`.
    pub http: Arc<listen::HttpCounters>,
    /// The agent's long-running tasks, read at each request; `None`: not supervised.
    pub tasks: Option<TaskHealthSource>,
    /// The delivery of alerts to the `[[outputs]]`; `None`: no outputs run.
    pub outputs: Option<Arc<dyn OutputsView>>,
    /// The processes jaga tracks in each container; `None`: `[process]` is off.
    pub processes: Option<Arc<dyn ProcessesView>>,
    /// Containers' recent log lines for the dashboard; `None`: not available.
    pub logs: Option<Arc<dyn LogsView>>,
    /// Containers' set-up (`docker inspect`) for the dashboard; `None`: not available.
    pub setup: Option<Arc<dyn SetupView>>,
}

/// What `/api/v1/containers/{c}/logs` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogQuery {
    /// At most this many of the newest lines.
    pub tail: u32,
    /// Only lines stamped after this time (nanoseconds since the epoch).
    pub after_ns: Option<i64>,
}

/// One log line as the dashboard shows it (secrets redacted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub unix_ms: i64,
    pub time_nano: i64,
    /// `stdout` or `stderr` (`stdout` for a TTY, whose streams are one).
    pub stream: &'static str,
    pub line: String,
}

/// Reads containers' logs back (the agent asks the Engine).
pub trait LogsView: Send + Sync {
    /// The newest lines of the container with this full id; an error says
    /// what failed, for the API's answer.
    fn recent(
        &self,
        container_id: String,
        query: LogQuery,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<LogLine>, String>> + Send>>;
}

/// Reads a container's set-up (the agent asks the Engine).
pub trait SetupView: Send + Sync {
    /// The set-up of the container with this full id; an error says what
    /// failed, for the API's answer.
    fn setup(
        &self,
        container_id: String,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<jaga_model::ContainerSetup, String>> + Send>,
    >;
}

/// The processes the agent tracks (`/api/v1/containers/{c}/processes`, `jaga top`).
pub trait ProcessesView: Send + Sync {
    /// The processes of the container with this full id, by pid.
    fn processes(&self, container_id: &str) -> Vec<jaga_model::ContainerProcess>;
}

/// What the agent's delivery runners show: `/api/v1/outputs`, the
/// `jaga_output_*` metrics, and each alert's delivery state.
pub trait OutputsView: Send + Sync {
    fn outputs(&self) -> Vec<jaga_model::OutputStats>;
    /// For each alert, its state per output name (`delivered`, `pending`,
    /// `dead_lettered`, ...). Blocking: it may read the store.
    fn delivery(
        &self,
        alerts: &[jaga_store::Sequenced<jaga_model::Alert>],
    ) -> Vec<BTreeMap<String, String>>;
}

/// Reads the health of the agent's tasks (see `jaga serve`'s supervisor).
pub type TaskHealthSource = Arc<dyn Fn() -> Vec<TaskHealth> + Send + Sync>;

impl ServerState {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.borrow())
    }
}

/// Every route jaga serves. All but `/healthz` need a token when tokens
/// are configured, unknown paths included.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/", get(dashboard::index))
        .route("/metrics", get(metrics_handler))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/host", get(api::host))
        .route("/api/v1/containers", get(api::containers))
        .route("/api/v1/containers/{container}", get(api::container))
        .route("/api/v1/containers/{container}/latest", get(api::latest))
        .route("/api/v1/containers/{container}/history", get(api::history))
        .route("/api/v1/containers/{container}/logs", get(api::logs::logs))
        .route(
            "/api/v1/containers/{container}/inspect",
            get(api::setup::inspect),
        )
        .route(
            "/api/v1/containers/{container}/processes",
            get(api::processes),
        )
        .route("/api/v1/events", get(api::events::events))
        .route("/api/v1/alerts", get(api::events::alerts))
        .route("/api/v1/outputs", get(api::events::outputs))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/stream", get(api::stream::stream))
        .fallback(|| async { api::ApiError::not_found("no such path: see /api/v1/openapi.json") })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ))
        // Added after the layer: probes, the login form and the page's
        // code (no data in it) need no token.
        .route("/healthz", get(healthz))
        .route("/login", get(dashboard::login_form).post(dashboard::login))
        .route("/logout", axum::routing::post(dashboard::logout))
        .route("/assets/{name}", get(dashboard::asset))
        .with_state(state)
}

async fn metrics_handler(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = ExpositionFormat::from_accept(accept);
    let snapshot = state.snapshot();
    let tasks = state.tasks.as_ref().map(|read| read()).unwrap_or_default();
    let outputs = state
        .outputs
        .as_ref()
        .map(|view| view.outputs())
        .unwrap_or_default();
    let body = render_served(
        &snapshot,
        Some(&state.http.stats()),
        metrics::Served {
            tasks: &tasks,
            outputs: &outputs,
        },
        format,
        &state.labels,
    );
    ([(header::CONTENT_TYPE, format.content_type())], body)
}

/// The latest audit: findings, scores per threat, counts per severity.
async fn audit(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let Some(report) = &state.audit else {
        return api::ApiError::not_found("the audit is disabled ([audit] disabled = true)")
            .into_response();
    };
    let Some(report) = report.borrow().clone() else {
        return api::ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            parameter: None,
            message: "the first audit has not finished yet".to_owned(),
        }
        .into_response();
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        report.to_string(),
    )
        .into_response()
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    last_collection_unix_ms: i64,
    last_collection_age_seconds: f64,
    collections_total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    docker_listener: Option<jaga_model::ListenerStats>,
    /// How processes are seen: the mode, and each event source not in use and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<ProcessHealth>,
    /// Each supervised task's state: `running`, `stalled: …`, `dead: …`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    tasks: BTreeMap<String, String>,
    /// Each output's spool: alerts waiting, and alerts dropped past its
    /// bounds (`max_backlog`, `max_age`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    spool: BTreeMap<String, SpoolHealth>,
}

#[derive(Serialize)]
struct SpoolHealth {
    state: String,
    backlog: u64,
    dropped_total: u64,
}

#[derive(Serialize)]
struct ProcessHealth {
    mode: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    unavailable: BTreeMap<String, String>,
}

/// 200 while collection keeps up; 503 before the first pass, when the
/// last one is older than three intervals (and at least 10 s), when the
/// Docker event listener gave up, or when a supervised task is dead or
/// stalled (`unhealthy`, the task named in `tasks`).
async fn healthz(State(state): State<Arc<ServerState>>) -> impl IntoResponse {
    let snapshot = state.snapshot();
    let tasks = state.tasks.as_ref().map(|read| read()).unwrap_or_default();
    let age_ms = api::now_ms().saturating_sub(snapshot.taken_unix_ms).max(0);
    let allowed_ms = (state.interval.as_millis() as i64 * 3).max(10_000);
    let (code, status) = if snapshot.agent.collections_total == 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    } else if age_ms > allowed_ms {
        (StatusCode::SERVICE_UNAVAILABLE, "stalled")
    } else if snapshot
        .agent
        .listener
        .as_ref()
        .is_some_and(|l| l.state == "failed")
    {
        (StatusCode::SERVICE_UNAVAILABLE, "docker_listener_failed")
    } else if tasks.iter().any(|t| !t.up) {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    } else {
        (StatusCode::OK, "ok")
    };
    let body = Health {
        status,
        last_collection_unix_ms: snapshot.taken_unix_ms,
        last_collection_age_seconds: age_ms as f64 / 1000.0,
        collections_total: snapshot.agent.collections_total,
        docker_listener: snapshot.agent.listener.clone(),
        process: snapshot.agent.process.as_ref().map(|p| ProcessHealth {
            mode: p.mode.clone(),
            unavailable: p.unavailable.clone(),
        }),
        tasks: tasks.into_iter().map(|t| (t.name, t.state)).collect(),
        spool: state
            .outputs
            .as_ref()
            .map(|view| view.outputs())
            .unwrap_or_default()
            .into_iter()
            .map(|o| {
                let spool = SpoolHealth {
                    state: o.state,
                    backlog: o.backlog,
                    dropped_total: o.dropped_total,
                };
                (o.name, spool)
            })
            .collect(),
    };
    (code, Json(body))
}
