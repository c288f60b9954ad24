//! `/api/v1/containers/{c}/logs`: a container's recent log lines, from any
//! log driver the Engine can read back (json-file, local, journald). The
//! dashboard polls it with the `cursor` of the previous answer to follow
//! the logs live.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Serialize;

use super::ApiError;
use crate::{LogLine, LogQuery, ServerState};

/// Most lines one answer holds.
pub const MAX_TAIL: u32 = 5000;
const DEFAULT_TAIL: u32 = 300;

#[derive(Serialize)]
pub struct LogsAnswer {
    pub id: String,
    pub name: String,
    /// Where the lines came from (`engine`).
    pub source: &'static str,
    pub lines: Vec<LogLine>,
    /// Pass as `after` to get only newer lines: the last line's time in
    /// nanoseconds (the request's `after` when no line came).
    pub cursor: String,
}

pub async fn logs(
    State(state): State<Arc<ServerState>>,
    Path(query_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<LogsAnswer>, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "tail" | "after"))
    {
        return Err(ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            parameter: None,
            message: format!("unknown parameter '{unknown}': use tail and after"),
        });
    }
    let tail = match query.get("tail") {
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_TAIL).contains(n))
            .ok_or_else(|| {
                ApiError::bad_parameter(
                    "tail",
                    format!("'{v}' is not a number from 1 to {MAX_TAIL}"),
                )
            })?,
        None => DEFAULT_TAIL,
    };
    let after_ns = query
        .get("after")
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                ApiError::bad_parameter(
                    "after",
                    format!("'{v}' is not a cursor from an earlier answer"),
                )
            })
        })
        .transpose()?;
    let Some(view) = state.logs.clone() else {
        return Err(ApiError::not_found("container logs are not available here"));
    };
    let found = super::resolve(&state, &query_id).await?;
    let lines = view
        .recent(found.view.id.clone(), LogQuery { tail, after_ns })
        .await
        .map_err(ApiError::bad_gateway)?;
    let cursor = lines
        .last()
        .map(|l| l.time_nano)
        .or(after_ns)
        .unwrap_or_default()
        .to_string();
    Ok(Json(LogsAnswer {
        id: found.view.id,
        name: found.view.name,
        source: "engine",
        lines,
        cursor,
    }))
}
