//! The durable JetStream consumer: fetches batches, stores each batch in
//! one PostgreSQL transaction (insert-if-absent), and acknowledges the
//! messages only after the commit. A hub that dies between the commit and
//! the acks has them delivered again, to itself or another hub, and the
//! inserts make that harmless. Hubs sharing the consumer's name share the
//! work: JetStream hands each message to one of them. Fetching the next
//! batch overlaps storing the last one.
//!
//! Heartbeats come apart from the stream: core NATS on
//! `<prefix>.*.heartbeat`, taken by one hub of the queue group named after
//! the consumer, written as the hosts' last contact once a second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt as _;
use jaga_outputs::nats::{subject_token, Heartbeat, HEARTBEAT_KIND};
use tokio::sync::{mpsc, watch, Mutex};

use crate::store::{Beat, Incoming, Writer};
use crate::HubError;

/// Counters `/metrics` and `/healthz` show.
#[derive(Debug, Default)]
pub struct ConsumeStats {
    pub received_total: AtomicU64,
    pub stored_total: AtomicU64,
    pub duplicates_total: AtomicU64,
    /// Messages that are not a jaga record: acknowledged and counted.
    pub skipped_total: AtomicU64,
    pub store_failures_total: AtomicU64,
    pub last_batch_unix_ms: AtomicU64,
    /// Heartbeats received (core NATS, not the stream).
    pub heartbeats_total: AtomicU64,
    /// Heartbeat messages that do not read as one.
    pub heartbeats_skipped_total: AtomicU64,
    /// The hub's PostgreSQL connections (the consumer's, the API's) lost,
    /// made again, and attempts that failed meanwhile.
    pub postgres_disconnects_total: AtomicU64,
    pub postgres_reconnects_total: AtomicU64,
    pub postgres_connect_failures_total: AtomicU64,
    /// How many of those connections are down now.
    pub postgres_links_down: AtomicU64,
}

/// Most messages per fetch, and so per transaction.
const BATCH: usize = 1000;
/// How long a fetched message may wait for its ack before JetStream hands
/// it out again (to this hub or another).
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long an idle hub's fetch waits at the server for a first message.
const IDLE_WAIT: Duration = Duration::from_secs(5);
/// How often received heartbeats are written.
const HEARTBEAT_FLUSH: Duration = Duration::from_secs(1);
/// A heartbeat is a few dozen bytes; anything much longer is not one.
const MAX_HEARTBEAT_BYTES: usize = 4096;

/// The subjects of the stream: the records' kinds, not the heartbeats.
pub fn subjects(prefix: &str) -> Vec<String> {
    ["alerts", "events", "findings"]
        .iter()
        .map(|kind| format!("{prefix}.*.{kind}"))
        .collect()
}

/// The stream over the records' subjects, created when missing. A stream
/// made by an earlier hub over `<prefix>.>` would also keep every
/// heartbeat: it is narrowed to the records' subjects.
pub async fn stream(
    context: &jetstream::Context,
    name: &str,
    prefix: &str,
    max_age: Duration,
) -> Result<stream::Stream, HubError> {
    let mut stream = context
        .get_or_create_stream(stream::Config {
            name: name.to_owned(),
            subjects: subjects(prefix),
            max_age,
            // Re-sends after an agent's restart come within minutes.
            duplicate_window: Duration::from_secs(600),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| HubError::Nats(format!("cannot create or open stream '{name}': {e}")))?;
    let config = stream.cached_info().config.clone();
    if config.subjects == [format!("{prefix}.>")] {
        tracing::info!(
            stream = name,
            "narrowing the stream's subjects to the records' kinds"
        );
        context
            .update_stream(stream::Config {
                subjects: subjects(prefix),
                ..config
            })
            .await
            .map_err(|e| {
                HubError::Nats(format!(
                    "cannot narrow the subjects of stream '{name}': {e}"
                ))
            })?;
        stream = context
            .get_stream(name)
            .await
            .map_err(|e| HubError::Nats(format!("cannot open stream '{name}': {e}")))?;
    }
    Ok(stream)
}

pub async fn consumer(
    stream: &stream::Stream,
    name: &str,
) -> Result<consumer::PullConsumer, HubError> {
    stream
        .get_or_create_consumer(
            name,
            consumer::pull::Config {
                durable_name: Some(name.to_owned()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| HubError::Nats(format!("cannot create or open consumer '{name}': {e}")))
}

/// The agent token of `<prefix>.<agent>.<kind>`, and the kind.
fn agent_and_kind<'a>(prefix: &str, subject: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (agent, kind) = rest.rsplit_once('.')?;
    if agent.is_empty() || agent.contains('.') {
        return None;
    }
    Some((agent, kind))
}

/// A message read as a record: `<prefix>.<agent>.<kind>` and an alert.
pub fn parse(prefix: &str, subject: &str, payload: &[u8]) -> Option<Incoming> {
    let (agent, kind) = agent_and_kind(prefix, subject)?;
    if !matches!(kind, "alerts" | "events" | "findings") {
        return None;
    }
    let alert = serde_json::from_slice(payload).ok()?;
    Some(Incoming {
        agent: agent.to_owned(),
        kind: kind.to_owned(),
        alert,
    })
}

/// A message read as a heartbeat: `<prefix>.<agent>.heartbeat`; the
/// subject names the host, as it does for records.
pub fn parse_heartbeat(prefix: &str, subject: &str, payload: &[u8]) -> Option<Beat> {
    let (agent, kind) = agent_and_kind(prefix, subject)?;
    if kind != HEARTBEAT_KIND
        || payload.len() > MAX_HEARTBEAT_BYTES
        || agent.chars().any(char::is_control)
    {
        return None;
    }
    let beat: Heartbeat = serde_json::from_slice(payload).ok()?;
    Some(Beat {
        agent: agent.to_owned(),
        // Shown as it is; PostgreSQL's text takes no NUL.
        version: beat
            .version
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect(),
        uptime_s: i64::try_from(beat.uptime_s).unwrap_or(i64::MAX),
        name: (subject_token(&beat.agent) == agent && !beat.agent.chars().any(char::is_control))
            .then_some(beat.agent),
    })
}

pub struct Consume {
    pub consumer: consumer::PullConsumer,
    pub writer: Arc<Mutex<Writer>>,
    /// Whether the writer's connection is up (see [`crate::store::Link`]).
    pub writer_up: watch::Receiver<bool>,
    pub prefix: String,
    pub stats: Arc<ConsumeStats>,
}

impl Consume {
    /// Fetches in one task and stores in another, one batch apart, until
    /// `shutdown`; what was fetched and not stored comes again after
    /// `ACK_WAIT`.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let (batches, mut fetched) = mpsc::channel::<Vec<jetstream::Message>>(1);
        let consumer = self.consumer.clone();
        let mut stop = shutdown.clone();
        let fetching = tokio::spawn(async move {
            let mut failures = 0u32;
            let mut idle = false;
            loop {
                let fetched = tokio::select! {
                    fetched = fetch(&consumer, idle) => fetched,
                    _ = stopped(&mut stop) => return,
                };
                let wait = match fetched {
                    Ok(batch) => {
                        failures = 0;
                        idle = batch.is_empty();
                        if !idle && batches.send(batch).await.is_err() {
                            return;
                        }
                        Duration::ZERO
                    }
                    Err(error) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(%error, "hub cannot fetch; trying again");
                        backoff(failures)
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => return,
                }
            }
        });
        let mut stop = shutdown;
        let mut failures = 0u32;
        let mut writer_up = self.writer_up.clone();
        loop {
            let batch = tokio::select! {
                batch = fetched.recv() => batch,
                _ = stopped(&mut stop) => None,
            };
            let Some(batch) = batch else { break };
            match self.store(&batch).await {
                Ok(()) => failures = 0,
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if matches!(error, HubError::PostgresDown(_)) {
                        // The writer's link logs the outage once; the
                        // batch comes again as soon as it is mended.
                        tracing::debug!(%error, "hub cannot store a batch; it comes again");
                        nak(&batch).await;
                    } else {
                        tracing::warn!(%error, "hub cannot store a batch; it comes again");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(failures)) => {}
                        _ = mended(&mut writer_up) => {}
                        _ = stopped(&mut stop) => break,
                    }
                }
            }
        }
        drop(fetched);
        let _ = fetching.await;
    }

    /// Stores a batch and acknowledges it.
    async fn store(&self, fetched: &[jetstream::Message]) -> Result<(), HubError> {
        let stats = &self.stats;
        stats
            .received_total
            .fetch_add(fetched.len() as u64, Ordering::Relaxed);
        let mut records = Vec::with_capacity(fetched.len());
        for message in fetched {
            match parse(&self.prefix, message.subject.as_str(), &message.payload) {
                Some(record) => records.push(record),
                None => {
                    stats.skipped_total.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(subject = %jaga_model::escape_control(message.subject.as_str()), "a message on the stream is not a jaga record; acknowledged and skipped");
                }
            }
        }
        let new = match self.writer.lock().await.insert(&records).await {
            Ok(new) => new,
            Err(error) => {
                // Not acknowledged: JetStream hands them out again.
                stats.store_failures_total.fetch_add(1, Ordering::Relaxed);
                return Err(error);
            }
        };
        stats.stored_total.fetch_add(new, Ordering::Relaxed);
        stats
            .duplicates_total
            .fetch_add(records.len() as u64 - new, Ordering::Relaxed);
        for message in fetched {
            if let Err(error) = message.ack().await {
                // Stored already: a second delivery is a no-op insert.
                tracing::debug!(%error, "ack failed; the record will come again");
            }
        }
        stats.last_batch_unix_ms.store(
            u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0),
            Ordering::Relaxed,
        );
        Ok(())
    }
}

/// Hands a batch that was not stored back to JetStream for delivery at
/// once (to this hub once its database is back, or to another hub).
async fn nak(batch: &[jetstream::Message]) {
    for message in batch {
        if let Err(error) = message.ack_with(jetstream::AckKind::Nak(None)).await {
            // It comes again after ACK_WAIT all the same.
            tracing::debug!(%error, "nak failed");
        }
    }
}

/// Completes when the writer's connection comes back after it went down;
/// never when its link is gone.
async fn mended(up: &mut watch::Receiver<bool>) {
    let went_down = up.wait_for(|up| !*up).await.is_ok();
    if went_down && up.wait_for(|up| *up).await.is_ok() {
        return;
    }
    std::future::pending::<()>().await
}

/// Completes when `shutdown` turns true (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)))
}

/// Up to a batch of what is there. After an empty fetch (`idle`) the
/// request waits at the server until a first message comes (or
/// `IDLE_WAIT`), so an idle hub does not ask again and again.
async fn fetch(
    consumer: &consumer::PullConsumer,
    idle: bool,
) -> Result<Vec<jetstream::Message>, HubError> {
    let failed = |e: &dyn std::fmt::Display| HubError::Nats(format!("cannot fetch: {e}"));
    let mut messages = if idle {
        consumer
            .batch()
            .max_messages(1)
            .expires(IDLE_WAIT)
            .messages()
            .await
            .map_err(|e| failed(&e))?
    } else {
        consumer
            .fetch()
            .max_messages(BATCH)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| failed(&e))?
    };
    let mut fetched = Vec::new();
    while let Some(message) = messages.next().await {
        match message {
            Ok(message) => fetched.push(message),
            Err(error) => {
                tracing::debug!(%error, "fetch ended early");
                break;
            }
        }
    }
    Ok(fetched)
}

/// Takes the heartbeats of the queue group and writes them once a
/// second until `shutdown`. A heartbeat the database does not take is
/// dropped: the next one comes within the agent's interval.
pub async fn heartbeats(
    mut subscriber: async_nats::Subscriber,
    writer: Arc<Mutex<Writer>>,
    prefix: String,
    stats: Arc<ConsumeStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pending: Vec<Beat> = Vec::new();
    let mut flush = tokio::time::interval(HEARTBEAT_FLUSH);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = subscriber.next() => {
                let Some(message) = message else { return };
                match parse_heartbeat(&prefix, message.subject.as_str(), &message.payload) {
                    Some(beat) => {
                        stats.heartbeats_total.fetch_add(1, Ordering::Relaxed);
                        pending.push(beat);
                    }
                    None => {
                        stats.heartbeats_skipped_total.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(subject = %jaga_model::escape_control(message.subject.as_str()), "not a heartbeat; skipped");
                    }
                }
            }
            _ = flush.tick() => {
                if pending.is_empty() {
                    continue;
                }
                match writer.lock().await.heartbeats(&pending).await {
                    Ok(()) => {}
                    // The writer's link logs the outage once.
                    Err(error @ HubError::PostgresDown(_)) => {
                        tracing::debug!(%error, beats = pending.len(), "heartbeats not recorded")
                    }
                    Err(error) => {
                        tracing::warn!(%error, beats = pending.len(), "heartbeats not recorded")
                    }
                }
                pending.clear();
            }
            _ = stopped(&mut shutdown) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_from_subject_and_payload_and_others_refused() {
        let alert = r#"{"id":"a1","timestamp":"2024-01-01T00:00:00.000Z","rule":{"id":"91001","level":3,"description":"x","groups":[],"mitre":[]},"agent":{"id":"","name":"edge-1"},"data":{},"location":"docker-events"}"#;
        let record = parse("jaga", "jaga.edge-1.events", alert.as_bytes()).unwrap();
        assert_eq!(
            (record.agent.as_str(), record.kind.as_str()),
            ("edge-1", "events")
        );
        assert_eq!(record.alert.id, "a1");
        assert!(parse("jaga", "jaga.edge-1.other", alert.as_bytes()).is_none());
        assert!(parse("jaga", "other.edge-1.alerts", alert.as_bytes()).is_none());
        assert!(parse("jaga", "jaga.a.b.alerts", alert.as_bytes()).is_none());
        assert!(parse("jaga", "jaga.edge-1.alerts", b"not json").is_none());
        assert!(parse("jaga", "jaga.edge-1.heartbeat", alert.as_bytes()).is_none());
    }

    #[test]
    fn heartbeats_name_their_host_by_the_subject() {
        let beat = br#"{"agent":"edge 1","version":"0.1.0","uptime_s":42}"#;
        let read = parse_heartbeat("jaga", "jaga.edge_1.heartbeat", beat).unwrap();
        assert_eq!(
            read,
            Beat {
                agent: "edge_1".to_owned(),
                version: "0.1.0".to_owned(),
                uptime_s: 42,
                name: Some("edge 1".to_owned()),
            }
        );
        // A name that is not the subject's is not taken.
        let other = br#"{"agent":"edge.2","version":"0.1.0","uptime_s":42}"#;
        let read = parse_heartbeat("jaga", "jaga.edge_1.heartbeat", other).unwrap();
        assert_eq!(read.name, None);
        assert!(parse_heartbeat("jaga", "jaga.edge_1.alerts", beat).is_none());
        assert!(parse_heartbeat("jaga", "jaga.edge_1.heartbeat", b"{}").is_none());
        let nul = br#"{"agent":"a","version":"1\u0000.0","uptime_s":1}"#;
        assert_eq!(
            parse_heartbeat("jaga", "jaga.a.heartbeat", nul)
                .unwrap()
                .version,
            "1.0"
        );
        let long = format!(
            r#"{{"agent":"a","version":"{}","uptime_s":1}}"#,
            "x".repeat(MAX_HEARTBEAT_BYTES)
        );
        assert!(parse_heartbeat("jaga", "jaga.a.heartbeat", long.as_bytes()).is_none());
    }

    #[test]
    fn the_stream_takes_records_but_not_heartbeats() {
        let subjects = subjects("fleet.eu");
        assert_eq!(
            subjects,
            [
                "fleet.eu.*.alerts",
                "fleet.eu.*.events",
                "fleet.eu.*.findings"
            ]
        );
        assert!(!subjects.iter().any(|s| s.ends_with(HEARTBEAT_KIND)));
    }
}
