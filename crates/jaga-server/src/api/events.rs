//! `/api/v1/events` and `/api/v1/alerts`: what the Docker event listener
//! stored, newest first, with filters.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::Json;
use jaga_model::{Alert, Event};
use jaga_store::{AlertFilter, EventFilter};

use super::params::parse_time;
use super::{now_ms, ApiError};
use crate::ServerState;

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

pub async fn events(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Event>>, ApiError> {
    only(
        &query,
        &["from", "to", "type", "action", "container", "limit"],
    )?;
    let store = store(&state)?;
    let (from_ms, to_ms) = window(&query)?;
    let filter = EventFilter {
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
    Ok(Json(events))
}

pub async fn alerts(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    only(
        &query,
        &["from", "to", "level", "rule_id", "container", "q", "limit"],
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
        from_ms,
        to_ms,
        min_level,
        rule_id: query.get("rule_id").cloned(),
        container: query.get("container").cloned(),
        text: query.get("q").cloned().filter(|q| !q.is_empty()),
        limit: limit(&query)?,
    };
    let alerts = tokio::task::spawn_blocking(move || store.alerts(&filter))
        .await
        .map_err(|e| ApiError::internal(format!("alert query stopped: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(alerts))
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
