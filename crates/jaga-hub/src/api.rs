//! The hub's HTTP API: `/healthz` open, everything else behind the tokens
//! of `[serve.auth]` (the same check as `jaga serve`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use jaga_model::Alert;
use jaga_server::api::events::WithSeq;
use jaga_server::api::ApiError;
use jaga_server::auth::Tokens;
use tokio::sync::Mutex;

use crate::store::{self, Host, RecordFilter};
use crate::ConsumeStats;

pub struct HubState {
    /// The API's own connection (the consumer has another), made again
    /// when it is lost (see [`store::Link`]).
    pub postgres: Arc<Mutex<tokio_postgres::Client>>,
    pub tokens: Arc<Tokens>,
    pub stats: Arc<ConsumeStats>,
    pub thresholds: store::HostThresholds,
    pub prometheus: Option<reqwest::Url>,
    pub http: reqwest::Client,
}

const MAX_LIMIT: i64 = 10_000;

pub fn router(state: Arc<HubState>) -> Router {
    let api = Router::new()
        .route("/api/v1/hosts", get(hosts))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/findings", get(findings))
        .route("/api/v1/metrics/query", get(metrics_query))
        .route("/api/v1/metrics/query_range", get(metrics_query_range))
        .route("/metrics", get(own_metrics))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api)
        .with_state(state)
}

async fn require_token(
    State(state): State<Arc<HubState>>,
    request: Request,
    next: Next,
) -> Response {
    match state.tokens.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => jaga_server::auth::refused(refusal),
    }
}

fn internal(error: crate::HubError) -> ApiError {
    tracing::warn!(%error, "hub request failed");
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        parameter: None,
        message: "the hub's database cannot be read right now".to_owned(),
    }
}

async fn healthz(State(state): State<Arc<HubState>>) -> Response {
    let stats = &state.stats;
    // Down while either connection is (the consumer's cannot store), or
    // the API's does not answer in time.
    let answered = async { state.postgres.lock().await.simple_query("SELECT 1").await };
    let database = stats.postgres_links_down.load(Ordering::Relaxed) == 0
        && matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), answered).await,
            Ok(Ok(_))
        );
    let body = serde_json::json!({
        "status": if database { "ok" } else { "degraded" },
        "postgres": database,
        "received_total": stats.received_total.load(Ordering::Relaxed),
        "stored_total": stats.stored_total.load(Ordering::Relaxed),
        "duplicates_total": stats.duplicates_total.load(Ordering::Relaxed),
        "skipped_total": stats.skipped_total.load(Ordering::Relaxed),
        "store_failures_total": stats.store_failures_total.load(Ordering::Relaxed),
        "heartbeats_total": stats.heartbeats_total.load(Ordering::Relaxed),
        "postgres_reconnects_total": stats.postgres_reconnects_total.load(Ordering::Relaxed),
    });
    let status = if database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn own_metrics(State(state): State<Arc<HubState>>) -> Response {
    let stats = &state.stats;
    let mut text = String::new();
    for (name, help, value) in [
        (
            "jaga_hub_received_total",
            "Messages fetched from the stream.",
            &stats.received_total,
        ),
        (
            "jaga_hub_stored_total",
            "Records stored (new).",
            &stats.stored_total,
        ),
        (
            "jaga_hub_duplicates_total",
            "Records already stored, received again.",
            &stats.duplicates_total,
        ),
        (
            "jaga_hub_skipped_total",
            "Messages that are not a jaga record (acknowledged).",
            &stats.skipped_total,
        ),
        (
            "jaga_hub_store_failures_total",
            "Batches the database did not take (not acknowledged; delivered again).",
            &stats.store_failures_total,
        ),
        (
            "jaga_hub_heartbeats_total",
            "Agent heartbeats received (core NATS, outside the stream).",
            &stats.heartbeats_total,
        ),
        (
            "jaga_hub_heartbeats_skipped_total",
            "Messages on the heartbeat subjects that are not a heartbeat.",
            &stats.heartbeats_skipped_total,
        ),
        (
            "jaga_hub_postgres_disconnects_total",
            "PostgreSQL connections of the hub lost (each is made again).",
            &stats.postgres_disconnects_total,
        ),
        (
            "jaga_hub_postgres_reconnects_total",
            "PostgreSQL connections of the hub made again after one was lost.",
            &stats.postgres_reconnects_total,
        ),
        (
            "jaga_hub_postgres_connect_failures_total",
            "Attempts to connect to PostgreSQL again that failed.",
            &stats.postgres_connect_failures_total,
        ),
    ] {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            value.load(Ordering::Relaxed)
        ));
    }
    let up = u8::from(stats.postgres_links_down.load(Ordering::Relaxed) == 0);
    text.push_str(&format!(
        "# HELP jaga_hub_postgres_up Whether the hub's PostgreSQL connections are all up.\n\
         # TYPE jaga_hub_postgres_up gauge\njaga_hub_postgres_up {up}\n"
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /api/v1/hosts`: each host that sent a record or a heartbeat, by
/// name: `state` by the age of its last contact (`up` within `[hub]
/// quiet_after`, 90 s by default; `quiet` within `down_after`, 10 min;
/// then `down`), first and last contact, records stored, and from its
/// last heartbeat `last_heartbeat_unix_ms`, `version` and `uptime_s`
/// (`null` for a host that never sent one).
async fn hosts(State(state): State<Arc<HubState>>) -> Result<Json<Vec<Host>>, ApiError> {
    let client = state.postgres.lock().await;
    store::hosts(&client, state.thresholds)
        .await
        .map(Json)
        .map_err(internal)
}

/// `host`, `level`, `after`, `limit`: the agent's parameters where they
/// apply, and the host filter.
fn filter(query: &HashMap<String, String>, kinds: &[&str]) -> Result<RecordFilter, ApiError> {
    for key in query.keys() {
        if !["host", "level", "after", "limit"].contains(&key.as_str()) {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                parameter: None,
                message: format!(
                    "unknown parameter '{}': use host, level, after, limit",
                    jaga_model::escape_control(key)
                ),
            });
        }
    }
    let number = |key: &'static str, max: i64| -> Result<Option<i64>, ApiError> {
        query
            .get(key)
            .map(|v| {
                v.parse::<i64>()
                    .ok()
                    .filter(|n| (0..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_parameter(
                            key,
                            format!(
                                "'{}' is not a number from 0 to {max}",
                                jaga_model::escape_control(v)
                            ),
                        )
                    })
            })
            .transpose()
    };
    Ok(RecordFilter {
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        agent: query.get("host").cloned().filter(|h| !h.is_empty()),
        min_level: number("level", 15)?.map(|l| l as u8),
        after_seq: number("after", i64::MAX)?,
        limit: number("limit", MAX_LIMIT)?.unwrap_or(100),
    })
}

async fn records(
    state: &HubState,
    filter: RecordFilter,
) -> Result<Json<Vec<WithSeq<Alert>>>, ApiError> {
    let client = state.postgres.lock().await;
    let rows = store::records(&client, &filter).await.map_err(internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|(seq, record)| WithSeq {
                seq,
                delivery: None,
                record,
            })
            .collect(),
    ))
}

async fn alerts(
    State(state): State<Arc<HubState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<WithSeq<Alert>>>, ApiError> {
    let filter = filter(&query, &["alerts", "events"])?;
    records(&state, filter).await
}

async fn findings(
    State(state): State<Arc<HubState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<WithSeq<Alert>>>, ApiError> {
    let filter = filter(&query, &["findings"])?;
    records(&state, filter).await
}

async fn metrics_query(state: State<Arc<HubState>>, request: Request) -> Response {
    forward(&state, "api/v1/query", request).await
}

async fn metrics_query_range(state: State<Arc<HubState>>, request: Request) -> Response {
    forward(&state, "api/v1/query_range", request).await
}

/// Hands a PromQL query to the store the agents write to, as it came.
async fn forward(state: &HubState, path: &str, request: Request) -> Response {
    let Some(base) = &state.prometheus else {
        return ApiError {
            status: StatusCode::NOT_FOUND,
            parameter: None,
            message: "no [hub] prometheus_url is configured".to_owned(),
        }
        .into_response();
    };
    let mut url = base.clone();
    let joined = format!("{}/{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(request.uri().query());
    match state.http.get(url).send().await {
        Ok(response) => {
            let status =
                StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            match response.bytes().await {
                Ok(body) => {
                    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
                }
                Err(error) => bad_gateway(&error),
            }
        }
        Err(error) => bad_gateway(&error),
    }
}

fn bad_gateway(error: &reqwest::Error) -> Response {
    tracing::warn!(%error, "the metrics store did not answer");
    ApiError {
        status: StatusCode::BAD_GATEWAY,
        parameter: None,
        message: "the metrics store did not answer".to_owned(),
    }
    .into_response()
}
