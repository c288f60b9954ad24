//! `/api/v1`: host, containers (running and recent), one container's
//! metadata, latest sample and history. JSON only; described by
//! `openapi.json`, served at `/api/v1/openapi.json`.

mod error;
pub mod events;
pub mod logs;
mod params;
pub mod setup;
pub mod stream;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use jaga_model::{
    ContainerId, ContainerSnapshot, DataRootUsage, FsUsage, MachineInfo, RollupPoint, Sample,
    HISTORY_SERIES, SERIES_COUNT,
};
use jaga_store::{StoreError, StoredContainer};
use serde::Serialize;

pub use error::ApiError;
pub use params::{parse_duration, parse_time};

use crate::ServerState;

/// The OpenAPI 3 description of this API.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Most buckets one history query may return, as Prometheus' limit.
pub const MAX_POINTS: i64 = 11_000;

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

#[derive(Serialize)]
pub struct HostView {
    pub machine: MachineInfo,
    pub data_root: Option<DataRootUsage>,
    pub agent: AgentView,
    pub history: HistoryView,
}

#[derive(Serialize)]
pub struct AgentView {
    pub version: String,
    pub started_unix: i64,
    pub collection_interval_seconds: f64,
    pub collections_total: u64,
    pub last_collection_unix_ms: i64,
    pub last_collection_seconds: f64,
    pub errors_total: BTreeMap<String, u64>,
    pub containers_seen: BTreeMap<String, u64>,
    /// `disabled`, `pending` (the first audit has not finished) or `ready`:
    /// the page asks this before `/api/v1/audit`, which answers 404 or 503
    /// in the first two states.
    pub audit: &'static str,
}

#[derive(Serialize)]
pub struct HistoryView {
    pub path: String,
    pub disk_bytes: u64,
    pub raw_retention_seconds: u64,
    pub rollup_retention_seconds: u64,
    pub points_written_total: u64,
}

pub async fn host(State(state): State<Arc<ServerState>>) -> Json<HostView> {
    let snapshot = state.snapshot();
    let store = Arc::clone(&state.store);
    let disk_bytes = tokio::task::spawn_blocking(move || store.disk_bytes())
        .await
        .unwrap_or_default();
    let retention = state.store.retention();
    let agent = &snapshot.agent;
    Json(HostView {
        machine: snapshot.machine.clone(),
        data_root: snapshot.data_root.clone(),
        agent: AgentView {
            version: agent.version.clone(),
            started_unix: agent.started_unix,
            collection_interval_seconds: state.interval.as_secs_f64(),
            collections_total: agent.collections_total,
            last_collection_unix_ms: snapshot.taken_unix_ms,
            last_collection_seconds: agent.last_collection_seconds,
            errors_total: agent.errors_total.clone(),
            containers_seen: agent.containers_seen.clone(),
            audit: match &state.audit {
                None => "disabled",
                Some(report) if report.borrow().is_none() => "pending",
                Some(_) => "ready",
            },
        },
        history: HistoryView {
            path: state.store.path().display().to_string(),
            disk_bytes,
            raw_retention_seconds: retention.raw.as_secs(),
            rollup_retention_seconds: retention.rollup.as_secs(),
            points_written_total: agent.history_points_written_total,
        },
    })
}

/// A container in API answers; the running ones carry what only the live
/// view knows.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerView {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    /// Being collected now.
    pub live: bool,
    pub last_seen_unix_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen_unix_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_unix: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_unix: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
}

impl ContainerView {
    fn live(c: &ContainerSnapshot, taken_unix_ms: i64) -> Self {
        let r = &c.container;
        Self {
            id: r.id.to_string(),
            name: r.name.clone(),
            image: r.image.clone(),
            labels: r.labels.clone(),
            state: r.state.as_str().to_owned(),
            live: true,
            last_seen_unix_ms: c.sample.as_ref().map_or(taken_unix_ms, |s| s.unix_ms),
            first_seen_unix_ms: None,
            created_unix: Some(r.created),
            started_unix: r.started_at,
            pid: r.pid,
            network_mode: Some(r.network_mode.clone()),
            cgroup_path: Some(c.cgroup_path.clone()).filter(|p| !p.is_empty()),
            fs: c.fs.clone(),
            restart_policy: r.restart_policy.clone(),
            health: r.health.clone(),
            exit_code: r.exit_code,
        }
    }

    fn stored(c: StoredContainer) -> Self {
        Self {
            id: c.id.to_string(),
            name: c.name,
            image: c.image,
            labels: c.labels,
            state: c.state,
            live: false,
            last_seen_unix_ms: c.last_seen_unix_ms,
            first_seen_unix_ms: Some(c.first_seen_unix_ms),
            created_unix: None,
            started_unix: None,
            pid: None,
            network_mode: None,
            cgroup_path: None,
            fs: None,
            restart_policy: None,
            health: None,
            exit_code: None,
        }
    }
}

pub async fn containers(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<ContainerView>>, ApiError> {
    let snapshot = state.snapshot();
    let recent = match query.get("recent") {
        Some(value) => parse_duration(value).map_err(|m| ApiError::bad_parameter("recent", m))?,
        None => state.store.retention().raw,
    };
    let since_ms = snapshot
        .taken_unix_ms
        .max(now_ms())
        .saturating_sub(params::duration_ms(recent));
    let store = Arc::clone(&state.store);
    let stored = blocking(move || store.containers_since(since_ms)).await?;
    let mut views: Vec<ContainerView> = snapshot
        .containers
        .iter()
        .map(|c| ContainerView::live(c, snapshot.taken_unix_ms))
        .collect();
    let live: std::collections::HashSet<String> = views.iter().map(|v| v.id.clone()).collect();
    let mut first_seen: HashMap<String, i64> = HashMap::new();
    for c in stored {
        if live.contains(c.id.as_str()) {
            first_seen.insert(c.id.to_string(), c.first_seen_unix_ms);
        } else {
            views.push(ContainerView::stored(c));
        }
    }
    for view in &mut views {
        if let Some(first) = first_seen.get(&view.id) {
            view.first_seen_unix_ms = Some(*first);
        }
    }
    views.sort_by(|a, b| {
        b.live
            .cmp(&a.live)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.id.cmp(&b.id))
    });
    Ok(Json(views))
}

pub async fn container(
    State(state): State<Arc<ServerState>>,
    Path(query): Path<String>,
) -> Result<Json<ContainerView>, ApiError> {
    Ok(Json(resolve(&state, &query).await?.view))
}

#[derive(Serialize)]
pub struct LatestView {
    pub id: String,
    pub name: String,
    pub unix_ms: i64,
    /// The figures history keeps: CPU %, memory, rates, PIDs.
    pub figures: Option<BTreeMap<&'static str, f64>>,
    /// Raw cgroup counters of the reading; only while the container runs.
    pub sample: Option<Sample>,
}

pub async fn latest(
    State(state): State<Arc<ServerState>>,
    Path(query): Path<String>,
) -> Result<Json<LatestView>, ApiError> {
    let found = resolve(&state, &query).await?;
    if let Some(live) = found.live {
        if let Some(sample) = live.sample {
            return Ok(Json(LatestView {
                id: found.view.id,
                name: found.view.name,
                unix_ms: sample.unix_ms,
                figures: live.figures.map(|p| named(&p.values)),
                sample: Some(sample),
            }));
        }
    }
    let store = Arc::clone(&state.store);
    let id = ContainerId::new(found.view.id.clone());
    let point = blocking(move || store.latest_point(&id)).await?;
    match point {
        Some(point) => Ok(Json(LatestView {
            id: found.view.id,
            name: found.view.name,
            unix_ms: point.unix_ms,
            figures: Some(named(&point.values)),
            sample: None,
        })),
        None => Err(ApiError::not_found(format!(
            "container '{}' has no sample (not running, and none kept in history)",
            found.view.name
        ))),
    }
}

#[derive(Serialize)]
pub struct HistoryAnswer {
    pub id: String,
    pub name: String,
    pub from_unix_ms: i64,
    pub to_unix_ms: i64,
    /// 0: raw points.
    pub step_ms: i64,
    pub series: [&'static str; SERIES_COUNT],
    pub points: Vec<PointView>,
}

#[derive(Serialize)]
pub struct PointView {
    pub unix_ms: i64,
    /// Raw points folded into this one (1 for a raw point).
    pub count: u32,
    pub min: BTreeMap<&'static str, f64>,
    pub avg: BTreeMap<&'static str, f64>,
    pub max: BTreeMap<&'static str, f64>,
}

pub async fn history(
    State(state): State<Arc<ServerState>>,
    Path(query_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "from" | "to" | "step"))
    {
        return Err(ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            parameter: None,
            message: format!("unknown parameter '{unknown}': use from, to and step"),
        });
    }
    let now = now_ms();
    let to = match query.get("to") {
        Some(v) => parse_time(v, now).map_err(|m| ApiError::bad_parameter("to", m))?,
        None => now,
    };
    let from = match query.get("from") {
        Some(v) => parse_time(v, now).map_err(|m| ApiError::bad_parameter("from", m))?,
        None => to - 3_600_000,
    };
    if from > to {
        return Err(ApiError::bad_parameter(
            "from",
            format!("{from} ms is after to ({to} ms)"),
        ));
    }
    let step = match query.get("step") {
        Some(v) => parse_duration(v)
            .map(params::duration_ms)
            .map_err(|m| ApiError::bad_parameter("step", m))?,
        None => 0,
    };
    if step > 0 && (to - from) / step > MAX_POINTS {
        return Err(ApiError::bad_parameter(
            "step",
            format!(
                "{} buckets exceed the maximum of {MAX_POINTS}: widen the step or narrow the range",
                (to - from) / step
            ),
        ));
    }
    let found = resolve(&state, &query_id).await?;
    let store = Arc::clone(&state.store);
    let id = ContainerId::new(found.view.id.clone());
    let points = blocking(move || store.range(&id, from, to, step)).await?;
    Ok(Json(HistoryAnswer {
        id: found.view.id,
        name: found.view.name,
        from_unix_ms: from,
        to_unix_ms: to,
        step_ms: step,
        series: HISTORY_SERIES,
        points: points.iter().map(point_view).collect(),
    }))
}

fn point_view(p: &RollupPoint) -> PointView {
    PointView {
        unix_ms: p.unix_ms,
        count: p.count,
        min: named(&p.min),
        avg: named(&p.avg),
        max: named(&p.max),
    }
}

/// The values by series name. A missing value (NaN: a disk-usage series
/// between two filesystem walks), like any value JSON cannot carry, is left
/// out rather than sent as `null`, which clients that read numbers reject.
pub(crate) fn named(values: &[f64; SERIES_COUNT]) -> BTreeMap<&'static str, f64> {
    HISTORY_SERIES
        .iter()
        .zip(values.iter())
        .filter(|(_, value)| value.is_finite())
        .map(|(name, value)| (*name, *value))
        .collect()
}

pub(crate) struct Resolved {
    pub(crate) view: ContainerView,
    live: Option<ContainerSnapshot>,
}

#[derive(Serialize)]
pub struct ProcessesResponse {
    pub id: String,
    pub name: String,
    pub image: String,
    pub processes: Vec<jaga_model::ContainerProcess>,
}

/// The processes jaga tracks in a container (what `docker top` shows,
/// without asking the Engine).
pub async fn processes(
    State(state): State<Arc<ServerState>>,
    Path(query): Path<String>,
) -> Result<Json<ProcessesResponse>, ApiError> {
    let Some(view) = state.processes.clone() else {
        return Err(ApiError::not_found(
            "processes are not watched ([process] disabled = true)",
        ));
    };
    let found = resolve(&state, &query).await?;
    if found.live.is_none() {
        return Err(ApiError::not_found(format!(
            "container '{}' is not running",
            found.view.name
        )));
    }
    let id = found.view.id.clone();
    let processes = tokio::task::spawn_blocking(move || view.processes(&id))
        .await
        .map_err(|e| ApiError::internal(format!("reading processes stopped: {e}")))?;
    Ok(Json(ProcessesResponse {
        id: found.view.id,
        name: found.view.name,
        image: found.view.image,
        processes,
    }))
}

/// A container by full id, name, or unique id prefix: the live ones first,
/// then those the history remembers.
pub(crate) async fn resolve(state: &ServerState, query: &str) -> Result<Resolved, ApiError> {
    let snapshot = state.snapshot();
    let by_id = snapshot
        .containers
        .iter()
        .find(|c| c.container.id.as_str() == query);
    let by_name = || {
        snapshot
            .containers
            .iter()
            .find(|c| c.container.name == query.trim_start_matches('/'))
    };
    if let Some(found) = by_id.or_else(by_name) {
        return Ok(live_resolved(found, snapshot.taken_unix_ms));
    }
    let store = Arc::clone(&state.store);
    let owned = query.to_owned();
    let stored = tokio::task::spawn_blocking(move || store.container(&owned))
        .await
        .map_err(|e| ApiError::internal(format!("history lookup stopped: {e}")))?;
    let stored = match stored {
        Ok(found) => found,
        Err(StoreError::AmbiguousContainer { count, .. }) => {
            return Err(ApiError::bad_parameter(
                "container",
                format!("'{query}' matches {count} containers: give more of the id"),
            ))
        }
        Err(e) => return Err(ApiError::internal(e.to_string())),
    };
    match stored {
        Some(c) => {
            // Known to history by a prefix: prefer the live view of it.
            if let Some(found) = snapshot.containers.iter().find(|s| s.container.id == c.id) {
                return Ok(live_resolved(found, snapshot.taken_unix_ms));
            }
            Ok(Resolved {
                view: ContainerView::stored(c),
                live: None,
            })
        }
        None => {
            let prefix: Vec<&ContainerSnapshot> = snapshot
                .containers
                .iter()
                .filter(|c| !query.is_empty() && c.container.id.as_str().starts_with(query))
                .collect();
            match prefix.as_slice() {
                [one] => Ok(live_resolved(one, snapshot.taken_unix_ms)),
                [] => Err(ApiError::not_found(format!("No such container: {query}"))),
                many => Err(ApiError::bad_parameter(
                    "container",
                    format!(
                        "'{query}' matches {} containers: give more of the id",
                        many.len()
                    ),
                )),
            }
        }
    }
}

fn live_resolved(found: &ContainerSnapshot, taken_unix_ms: i64) -> Resolved {
    Resolved {
        view: ContainerView::live(found, taken_unix_ms),
        live: Some(found.clone()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("history query stopped: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
