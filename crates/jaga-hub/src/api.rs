//! The hub's HTTP API and dashboard: `/healthz`, the login form and the
//! page's code open, everything else behind the tokens of `[serve.auth]`
//! (the same check as `jaga serve`). The dashboard is `jaga serve`'s page,
//! assets and login (see [`jaga_server::dashboard`]) running `hub.js`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jaga_model::Alert;
use jaga_outputs::nats::subject_token;
use jaga_server::api::ApiError;
use jaga_server::auth::Tokens;
use jaga_server::dashboard;
use serde::Serialize;
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
        .route("/", get(dashboard::hub_index))
        .route("/api/v1/hub", get(about))
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
        // The login form and the page's code (no data in it) need no token.
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/{name}", get(dashboard::asset))
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
        Err(refusal) => jaga_server::auth::login_redirect(refusal, request.uri().path())
            .unwrap_or_else(|| jaga_server::auth::refused(refusal)),
    }
}

async fn login_form(State(state): State<Arc<HubState>>) -> Response {
    dashboard::login_form_for(&state.tokens)
}

async fn login(State(state): State<Arc<HubState>>, request: Request) -> Response {
    dashboard::login_for(&state.tokens, || {}, request).await
}

async fn logout(State(state): State<Arc<HubState>>, request: Request) -> Response {
    dashboard::logout_for(&state.tokens, &request)
}

/// `GET /api/v1/hub`: what the dashboard asks before it asks for more:
/// the hub's version, whether a metrics store is configured (no chart
/// request fails for want of one), and the thresholds of host states.
async fn about(State(state): State<Arc<HubState>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "metrics": state.prometheus.is_some(),
        "quiet_after_s": state.thresholds.quiet_after.as_secs(),
        "down_after_s": state.thresholds.down_after.as_secs(),
    }))
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

/// A host with how many of its alerts (events among them) and findings
/// the hub holds, and the `instance` label of its metrics.
#[derive(Debug, Serialize)]
struct HostView {
    #[serde(flatten)]
    host: Host,
    alerts: i64,
    findings: i64,
    /// The agent's own name, which its remote-written series carry as
    /// `instance`; `agent` is the subject's token of it, where a dot (an
    /// FQDN's) became `_`.
    instance: String,
}

/// `GET /api/v1/hosts`: each host that sent a record or a heartbeat, by
/// name: `state` by the age of its last contact (`up` within `[hub]
/// quiet_after`, 90 s by default; `quiet` within `down_after`, 10 min;
/// then `down`), first and last contact, records stored (`alerts`, events
/// counted among them, and `findings`), and from its last heartbeat
/// `last_heartbeat_unix_ms`, `version` and `uptime_s` (`null` for a host
/// that never sent one).
async fn hosts(State(state): State<Arc<HubState>>) -> Result<Json<Vec<HostView>>, ApiError> {
    let client = state.postgres.lock().await;
    let hosts = store::hosts(&client, state.thresholds)
        .await
        .map_err(internal)?;
    let counts = store::counts(&client).await.map_err(internal)?;
    let names = names(&client).await.map_err(internal)?;
    Ok(Json(with_counts(hosts, &counts, &names)))
}

/// Each host's own name as it said it: in its last heartbeat with one,
/// else in one of its records (agent token, name).
async fn names(
    client: &tokio_postgres::Client,
) -> Result<HashMap<String, String>, crate::HubError> {
    let rows = client
        .query(
            "SELECT h.agent, COALESCE(h.name, (SELECT r.record->'agent'->>'name' \
             FROM fleet_records r WHERE r.agent = h.agent LIMIT 1)) FROM fleet_hosts h",
            &[],
        )
        .await
        .map_err(|e| {
            crate::HubError::Postgres(format!(
                "cannot read the hosts' names: {}",
                store::explain(&e)
            ))
        })?;
    Ok(rows
        .iter()
        .filter_map(|row| Some((row.get(0), row.get::<_, Option<String>>(1)?)))
        .collect())
}

/// The `instance` of a host's metrics: the name it gave, when that name
/// is what its subject's token was made from (a record or heartbeat
/// cannot point the page at another host's series), else the token.
fn instance_of(agent: &str, name: Option<&String>) -> String {
    match name {
        Some(name) if subject_token(name) == agent => name.clone(),
        _ => agent.to_owned(),
    }
}

fn with_counts(
    hosts: Vec<Host>,
    counts: &[(String, String, i64)],
    names: &HashMap<String, String>,
) -> Vec<HostView> {
    hosts
        .into_iter()
        .map(|host| {
            let of = |kinds: &[&str]| -> i64 {
                counts
                    .iter()
                    .filter(|(agent, kind, _)| {
                        *agent == host.agent && kinds.contains(&kind.as_str())
                    })
                    .map(|(_, _, n)| n)
                    .sum()
            };
            HostView {
                alerts: of(ALERT_KINDS),
                findings: of(FINDING_KINDS),
                instance: instance_of(&host.agent, names.get(&host.agent)),
                host,
            }
        })
        .collect()
}

/// The kinds `/api/v1/alerts` serves, and `/api/v1/findings`.
const ALERT_KINDS: &[&str] = &["alerts", "events"];
const FINDING_KINDS: &[&str] = &["findings"];

/// `host`, `level`, `rule_id`, `after`, `limit`: the agent's parameters
/// where they apply, and the host filter.
fn filter(query: &HashMap<String, String>, kinds: &[&str]) -> Result<RecordFilter, ApiError> {
    for key in query.keys() {
        if !["host", "level", "rule_id", "after", "limit"].contains(&key.as_str()) {
            return Err(ApiError {
                status: StatusCode::BAD_REQUEST,
                parameter: None,
                message: format!(
                    "unknown parameter '{}': use host, level, rule_id, after, limit",
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
        rule_id: query.get("rule_id").cloned().filter(|r| !r.is_empty()),
        after_seq: number("after", i64::MAX)?,
        limit: number("limit", MAX_LIMIT)?.unwrap_or(100),
    })
}

/// A record as the hub serves it: the agent's alert, with the hub's
/// sequence number and the host the hub filed it under.
#[derive(Debug, Serialize)]
pub struct FleetRecord {
    pub seq: i64,
    pub host: String,
    #[serde(flatten)]
    pub record: Alert,
}

async fn records(
    state: &HubState,
    filter: RecordFilter,
) -> Result<Json<Vec<FleetRecord>>, ApiError> {
    let client = state.postgres.lock().await;
    let rows = store::records(&client, &filter).await.map_err(internal)?;
    Ok(Json(
        rows.into_iter()
            .map(|stored| FleetRecord {
                seq: stored.seq,
                host: stored.agent,
                record: stored.alert,
            })
            .collect(),
    ))
}

async fn alerts(
    State(state): State<Arc<HubState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<FleetRecord>>, ApiError> {
    let filter = filter(&query, ALERT_KINDS)?;
    records(&state, filter).await
}

async fn findings(
    State(state): State<Arc<HubState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<FleetRecord>>, ApiError> {
    let filter = filter(&query, FINDING_KINDS)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn host(agent: &str) -> Host {
        Host {
            agent: agent.to_owned(),
            state: "up",
            first_contact_unix_ms: 1,
            last_contact_unix_ms: 2,
            records: 0,
            last_heartbeat_unix_ms: None,
            version: None,
            uptime_s: None,
        }
    }

    #[test]
    fn each_host_counts_its_own_alerts_with_events_and_its_findings() {
        let counts = [
            ("edge-a", "alerts", 3),
            ("edge-a", "events", 2),
            ("edge-a", "findings", 7),
            ("edge-b", "alerts", 1),
            ("edge-ab", "findings", 9),
        ]
        .map(|(a, k, n)| (a.to_owned(), k.to_owned(), n));
        let shown: Vec<(String, i64, i64)> = with_counts(
            vec![host("edge-a"), host("edge-b"), host("edge-c")],
            &counts,
            &HashMap::new(),
        )
        .into_iter()
        .map(|v| (v.host.agent, v.alerts, v.findings))
        .collect();
        assert_eq!(
            shown,
            [
                ("edge-a".to_owned(), 5, 7),
                ("edge-b".to_owned(), 1, 0),
                ("edge-c".to_owned(), 0, 0)
            ]
        );
        let json =
            serde_json::to_value(with_counts(vec![host("edge-a")], &counts, &HashMap::new()))
                .unwrap();
        assert_eq!(json[0]["agent"], "edge-a");
        assert_eq!(json[0]["alerts"], 5);
        assert_eq!(json[0]["instance"], "edge-a");
    }

    #[test]
    fn a_host_named_with_dots_is_charted_by_its_own_name_not_the_subject_token() {
        let names: HashMap<String, String> = [
            ("web-1_example_com", "web-1.example.com"),
            ("edge-b", "edge.b"),
        ]
        .map(|(a, n)| (a.to_owned(), n.to_owned()))
        .into_iter()
        .collect();
        let shown: Vec<(String, String)> = with_counts(
            vec![host("web-1_example_com"), host("edge-b"), host("edge-c")],
            &[],
            &names,
        )
        .into_iter()
        .map(|v| (v.host.agent, v.instance))
        .collect();
        assert_eq!(
            shown,
            [
                (
                    "web-1_example_com".to_owned(),
                    "web-1.example.com".to_owned()
                ),
                // A name its token was not made from is not believed.
                ("edge-b".to_owned(), "edge-b".to_owned()),
                ("edge-c".to_owned(), "edge-c".to_owned()),
            ]
        );
    }

    #[test]
    fn the_rule_filter_is_exact_and_unknown_parameters_are_refused() {
        let query = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let chosen = filter(
            &query(&[("host", "edge-a"), ("rule_id", "91011"), ("level", "7")]),
            ALERT_KINDS,
        )
        .unwrap();
        assert_eq!(chosen.agent.as_deref(), Some("edge-a"));
        assert_eq!(chosen.rule_id.as_deref(), Some("91011"));
        assert_eq!(chosen.min_level, Some(7));
        assert_eq!(chosen.limit, 100);
        let empty = filter(&query(&[("rule_id", "")]), ALERT_KINDS).unwrap();
        assert_eq!(empty.rule_id, None);
        let refused = filter(&query(&[("rule\u{1b}", "x")]), ALERT_KINDS).unwrap_err();
        assert!(
            refused.message.starts_with("unknown parameter 'rule\\x1b'"),
            "{}",
            refused.message
        );
    }
}
