//! `/api/v1/stream`: Server-Sent Events for the dashboard.
//!
//! - `sample`: each collection's figures, per running container (no id:
//!   samples are live, a reconnecting chart reloads history instead);
//! - `alert`: each alert stored, oldest first;
//! - `container`: each container lifecycle event the Docker listener stored
//!   (`start`, `stop`, `die`, ...).
//!
//! Alerts and container events carry the id `<alert seq>.<event seq>`: the
//! cursor over both sequences after that message. A client that reconnects
//! with `Last-Event-ID` (or `?after=`) gets every alert and event stored
//! since, so nothing falls in the gap; without one it starts at the newest.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::Stream;
use jaga_model::{Event, Snapshot};
use jaga_store::{AlertFilter, EventFilter, EventStore};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::events::WithSeq;
use super::ApiError;
use crate::ServerState;

/// How often the stores are asked for new alerts and events.
const POLL: Duration = Duration::from_millis(500);
/// Rows read per query while catching up.
const PAGE: usize = 500;
/// Messages queued for a slow client before the producer waits.
const QUEUE: usize = 256;
/// Container actions the stream forwards.
const LIFECYCLE: &[&str] = &[
    "create", "start", "restart", "stop", "die", "kill", "pause", "unpause", "destroy", "oom",
];

/// Where a stream stands in both sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    pub alert_seq: i64,
    pub event_seq: i64,
}

impl Cursor {
    /// Reads `<alert seq>.<event seq>`; a bare number is an alert sequence
    /// alone (container events then start at the newest).
    pub fn parse(text: &str) -> Result<(i64, Option<i64>), String> {
        let text = text.trim();
        let number = |part: &str| {
            part.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("'{text}' is not a stream cursor: use <alert seq>.<event seq> as an event id carries it"))
        };
        match text.split_once('.') {
            Some((alerts, events)) => Ok((number(alerts)?, Some(number(events)?))),
            None => Ok((number(text)?, None)),
        }
    }

    fn id(self) -> String {
        format!("{}.{}", self.alert_seq, self.event_seq)
    }
}

#[derive(Serialize)]
struct SampleMessage<'a> {
    unix_ms: i64,
    cpu_cores: u32,
    memory_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_root: Option<&'a jaga_model::DataRootUsage>,
    containers: Vec<ContainerFigures<'a>>,
    stopped: usize,
}

#[derive(Serialize)]
struct ContainerFigures<'a> {
    id: &'a str,
    name: &'a str,
    state: &'a str,
    unix_ms: i64,
    /// By [`jaga_model::HISTORY_SERIES`] name; absent until a second reading.
    #[serde(skip_serializing_if = "Option::is_none")]
    values: Option<std::collections::BTreeMap<&'static str, f64>>,
}

#[derive(Serialize)]
struct LifecycleMessage<'a> {
    seq: i64,
    unix_ms: i64,
    action: &'a str,
    container_id: &'a str,
    name: &'a str,
    image: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<&'a str>,
}

/// The stream; see the module comment. `?container=` keeps the samples of
/// that container (id, id prefix or name) only.
pub async fn stream(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    if let Some(unknown) = query
        .keys()
        .find(|k| !matches!(k.as_str(), "after" | "container"))
    {
        return Err(ApiError {
            status: axum::http::StatusCode::BAD_REQUEST,
            parameter: None,
            message: format!("unknown parameter '{unknown}': use after and container"),
        });
    }
    let resume = match headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
    {
        Some(id) => {
            Some(Cursor::parse(id).map_err(|m| ApiError::bad_parameter("Last-Event-ID", m))?)
        }
        None => query
            .get("after")
            .map(|v| Cursor::parse(v).map_err(|m| ApiError::bad_parameter("after", m)))
            .transpose()?,
    };
    let events = state.events.clone();
    let start = match &events {
        Some(store) => {
            let store = Arc::clone(store);
            tokio::task::spawn_blocking(move || start_cursor(&store, resume))
                .await
                .map_err(|e| ApiError::internal(format!("reading the stream cursor stopped: {e}")))?
                .map_err(|e| ApiError::internal(e.to_string()))?
        }
        None => Cursor::default(),
    };
    let container = query.get("container").cloned().filter(|c| !c.is_empty());
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(produce(
        state.snapshot.clone(),
        events,
        start,
        container,
        tx,
    ));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Where a new stream starts: after the client's cursor, or at the newest.
fn start_cursor(
    store: &EventStore,
    resume: Option<(i64, Option<i64>)>,
) -> Result<Cursor, jaga_store::StoreError> {
    let newest_event = || {
        store
            .events(&EventFilter {
                limit: 1,
                ..EventFilter::default()
            })
            .map(|rows| rows.first().map_or(0, |row| row.seq))
    };
    Ok(match resume {
        Some((alert_seq, Some(event_seq))) => Cursor {
            alert_seq,
            event_seq,
        },
        Some((alert_seq, None)) => Cursor {
            alert_seq,
            event_seq: newest_event()?,
        },
        None => Cursor {
            alert_seq: store.latest_alert_seq()?,
            event_seq: newest_event()?,
        },
    })
}

/// Sends until the client goes away: a first `hello` with the cursor, the
/// latest sample, then samples as they come and alerts and events as they
/// are stored.
async fn produce(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    events: Option<Arc<EventStore>>,
    mut cursor: Cursor,
    container: Option<String>,
    tx: mpsc::Sender<SseEvent>,
) {
    let hello = SseEvent::default()
        .event("hello")
        .id(cursor.id())
        .data(format!(
            "{{\"alert_seq\":{},\"event_seq\":{}}}",
            cursor.alert_seq, cursor.event_seq
        ));
    if tx.send(hello).await.is_err() {
        return;
    }
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut send_sample = true;
    loop {
        if send_sample {
            let snapshot = Arc::clone(&snapshots.borrow_and_update());
            if snapshot.taken_unix_ms > 0 {
                let event = sample_event(&snapshot, container.as_deref());
                if tx.send(event).await.is_err() {
                    return;
                }
            }
            send_sample = false;
        }
        if let Some(store) = &events {
            match caught_up(store, cursor).await {
                Ok((messages, next)) => {
                    cursor = next;
                    for message in messages {
                        if tx.send(message).await.is_err() {
                            return;
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "stream: reading new alerts and events failed; retrying");
                }
            }
        }
        tokio::select! {
            changed = snapshots.changed() => {
                if changed.is_err() {
                    // The collector stopped: keep serving alerts.
                    snapshots = watch::channel(Arc::new(Snapshot::default())).1;
                }
                send_sample = true;
            }
            _ = poll.tick() => {}
            () = tx.closed() => return,
        }
    }
}

fn sample_event(snapshot: &Snapshot, container: Option<&str>) -> SseEvent {
    let wanted = |c: &jaga_model::ContainerSnapshot| match container {
        None => true,
        Some(query) => {
            let id = c.container.id.as_str();
            id.starts_with(query) || c.container.name == query.trim_start_matches('/')
        }
    };
    let message = SampleMessage {
        unix_ms: snapshot.taken_unix_ms,
        cpu_cores: snapshot.machine.cpu_cores,
        memory_bytes: snapshot.machine.memory_bytes,
        data_root: snapshot.data_root.as_ref(),
        containers: snapshot
            .containers
            .iter()
            .filter(|c| wanted(c))
            .map(|c| ContainerFigures {
                id: c.container.id.as_str(),
                name: &c.container.name,
                state: c.container.state.as_str(),
                unix_ms: c
                    .figures
                    .as_ref()
                    .map_or(snapshot.taken_unix_ms, |p| p.unix_ms),
                values: c.figures.as_ref().map(|p| super::named(&p.values)),
            })
            .collect(),
        stopped: snapshot.stopped.len(),
    };
    json_event("sample", &message)
}

fn json_event<T: Serialize>(name: &str, value: &T) -> SseEvent {
    match serde_json::to_string(value) {
        Ok(data) => SseEvent::default().event(name).data(data),
        // Plain structs of strings and numbers: cannot fail; say so if it does.
        Err(e) => SseEvent::default().event("error").data(format!(
            "{{\"message\":\"cannot encode a {name} message\",\"detail\":{:?}}}",
            e.to_string()
        )),
    }
}

/// Everything stored after `cursor`, alerts then container events, each
/// message carrying the cursor after it.
async fn caught_up(
    store: &Arc<EventStore>,
    cursor: Cursor,
) -> Result<(Vec<SseEvent>, Cursor), jaga_store::StoreError> {
    let store = Arc::clone(store);
    let read = tokio::task::spawn_blocking(move || {
        let mut cursor = cursor;
        let mut messages = Vec::new();
        loop {
            let alerts = store.alerts(&AlertFilter {
                after_seq: Some(cursor.alert_seq),
                limit: PAGE,
                ..AlertFilter::default()
            })?;
            let full = alerts.len() == PAGE;
            for row in alerts {
                cursor.alert_seq = row.seq;
                let message = WithSeq {
                    seq: row.seq,
                    delivery: None,
                    record: row.record,
                };
                messages.push(json_event("alert", &message).id(cursor.id()));
            }
            if !full {
                break;
            }
        }
        loop {
            let events = store.events(&EventFilter {
                after_seq: Some(cursor.event_seq),
                kind: Some("container".to_owned()),
                limit: PAGE,
                ..EventFilter::default()
            })?;
            let full = events.len() == PAGE;
            for row in events {
                cursor.event_seq = row.seq;
                if let Some(message) = lifecycle(row.seq, &row.record) {
                    messages.push(json_event("container", &message).id(cursor.id()));
                }
            }
            if !full {
                break;
            }
        }
        Ok::<_, jaga_store::StoreError>((messages, cursor))
    });
    match read.await {
        Ok(result) => result,
        Err(e) => {
            tracing::warn!(error = %e, "stream: the store query stopped");
            Ok((Vec::new(), cursor))
        }
    }
}

fn lifecycle(seq: i64, event: &Event) -> Option<LifecycleMessage<'_>> {
    let docker = &event.docker;
    if !LIFECYCLE.contains(&docker.action.as_str()) {
        return None;
    }
    let attribute = |key: &str| docker.attributes.get(key).map(String::as_str);
    Some(LifecycleMessage {
        seq,
        unix_ms: docker.time_nano / 1_000_000,
        action: &docker.action,
        container_id: &docker.actor_id,
        name: event
            .container
            .as_ref()
            .map(|c| c.name.as_str())
            .or_else(|| attribute("name"))
            .unwrap_or_default(),
        image: event
            .container
            .as_ref()
            .map(|c| c.image.as_str())
            .or_else(|| attribute("image"))
            .unwrap_or_default(),
        exit_code: attribute("exitCode"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_as_ids_carry_them() {
        assert_eq!(Cursor::parse("12.7"), Ok((12, Some(7))));
        assert_eq!(Cursor::parse(" 3 "), Ok((3, None)));
        let cursor = Cursor {
            alert_seq: 4,
            event_seq: 9,
        };
        assert_eq!(Cursor::parse(&cursor.id()), Ok((4, Some(9))));
        for bad in ["", "x", "1.", "-1.2", "1.2.3"] {
            let error = Cursor::parse(bad).unwrap_err();
            assert!(error.contains(&format!("'{}'", bad.trim())), "{error}");
        }
    }
}
