//! `/api/v1/events` and `/api/v1/alerts`: what the Docker event listener
//! stored, newest first, with filters; or, with `after=<seq>`, everything
//! stored after a sequence number, oldest first, so a client reads it all
//! by asking again with the last `seq` it got.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use jaga_model::{Alert, Event};
use jaga_store::{AlertFilter, EventFilter, Sequenced};
use serde::Serialize;

use super::params::parse_time;
use super::{now_ms, ApiError};
use crate::ServerState;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

/// A record as served: its sequence number, then its own fields.
#[derive(Serialize)]
pub struct WithSeq<T> {
    pub seq: i64,
    /// For alerts: the delivery state per output name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub record: T,
}

fn with_seq<T>(rows: Vec<Sequenced<T>>) -> Vec<WithSeq<T>> {
    rows.into_iter()
        .map(|row| WithSeq {
            seq: row.seq,
            delivery: None,
            record: row.record,
        })
        .collect()
}

/// `/api/v1/outputs`: each output's state, cursor, backlog, counters, last
/// error and last delivery.
pub async fn outputs(State(state): State<Arc<ServerState>>) -> Json<Vec<jaga_model::OutputStats>> {
    Json(
        state
            .outputs
            .as_ref()
            .map(|view| view.outputs())
            .unwrap_or_default(),
    )
}

pub async fn events(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<WithSeq<Event>>>, ApiError> {
    only(
        &query,
        &[
            "from",
            "to",
            "type",
            "action",
            "container",
            "limit",
            "after",
        ],
    )?;
    let store = store(&state)?;
    let (from_ms, to_ms) = window(&query)?;
    let filter = EventFilter {
        after_seq: after(&query)?,
        from_ms,
        to_ms,
        kind: query.get("type").cloned(),
        action: query.get("action").cloned(),
        container: query.get("container").cloned(),
        limit: limit(&query)?,
    };
    let events = tokio::task::spawn_blocking(move || store.events(&filter))
        .await
        .map_err(|e| ApiError::internal(format!("event query stopped: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(with_seq(events)))
}

pub async fn alerts(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<WithSeq<Alert>>>, ApiError> {
    only(
        &query,
        &[
            "from",
            "to",
            "level",
            "rule_id",
            "container",
            "q",
            "limit",
            "after",
        ],
    )?;
    let store = store(&state)?;
    let (from_ms, to_ms) = window(&query)?;
    let min_level = match query.get("level") {
        Some(v) => Some(v.parse::<u8>().ok().filter(|l| *l <= 15).ok_or_else(|| {
            ApiError::bad_parameter("level", format!("'{v}' is not a level from 0 to 15"))
        })?),
        None => None,
    };
    let filter = AlertFilter {
        after_seq: after(&query)?,
        from_ms,
        to_ms,
        min_level,
        rule_id: query.get("rule_id").cloned(),
        container: query.get("container").cloned(),
        text: query.get("q").cloned().filter(|q| !q.is_empty()),
        limit: limit(&query)?,
    };
    let outputs = state.outputs.clone();
    let served = tokio::task::spawn_blocking(move || {
        let alerts = store.alerts(&filter)?;
        let delivery = outputs.map(|view| view.delivery(&alerts));
        Ok::<_, jaga_store::StoreError>((alerts, delivery))
    })
    .await
    .map_err(|e| ApiError::internal(format!("alert query stopped: {e}")))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let (alerts, delivery) = served;
    let mut rows = with_seq(alerts);
    if let Some(delivery) = delivery {
        for (row, states) in rows.iter_mut().zip(delivery) {
            row.delivery = Some(states);
        }
    }
    Ok(Json(rows))
}

fn store(state: &ServerState) -> Result<Arc<jaga_store::EventStore>, ApiError> {
    state.events.clone().ok_or_else(|| {
        ApiError::not_found(
            "the Docker event listener is disabled ([docker_listener] disabled = true)",
        )
    })
}

fn only(query: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match query.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            parameter: None,
            message: format!("unknown parameter '{unknown}': use {}", known.join(", ")),
        }),
        None => Ok(()),
    }
}

fn window(query: &HashMap<String, String>) -> Result<(Option<i64>, Option<i64>), ApiError> {
    let now = now_ms();
    let from = query
        .get("from")
        .map(|v| parse_time(v, now).map_err(|m| ApiError::bad_parameter("from", m)))
        .transpose()?;
    let to = query
        .get("to")
        .map(|v| parse_time(v, now).map_err(|m| ApiError::bad_parameter("to", m)))
        .transpose()?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::bad_parameter(
                "from",
                format!("{from} ms is after to ({to} ms)"),
            ));
        }
    }
    Ok((from, to))
}

/// `after`: a sequence number from an earlier answer (0 for the start).
fn after(query: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    query
        .get("after")
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_parameter(
                    "after",
                    format!("'{v}' is not a sequence number (0 or more)"),
                )
            })
        })
        .transpose()
}

fn limit(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    match query.get("limit") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "limit",
                    format!("'{v}' is not a number from 1 to {MAX_LIMIT}"),
                )
            }),
        None => Ok(DEFAULT_LIMIT),
    }
}
