//! The durable JetStream consumer: fetches batches, stores each batch in
//! one PostgreSQL transaction (insert-if-absent), and acknowledges the
//! messages only after the commit. A hub that dies between the commit and
//! the acks has them delivered again, to itself or another hub, and the
//! inserts make that harmless. Hubs sharing the consumer's name share the
//! work: JetStream hands each message to one of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt as _;
use tokio::sync::{watch, Mutex};

use crate::store::{self, Incoming};
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
}

const BATCH: usize = 256;
/// How long a fetched message may wait for its ack before JetStream hands
/// it out again (to this hub or another).
const ACK_WAIT: Duration = Duration::from_secs(30);

/// The stream over `<prefix>.>`, created when missing.
pub async fn stream(
    context: &jetstream::Context,
    name: &str,
    prefix: &str,
    max_age: Duration,
) -> Result<stream::Stream, HubError> {
    context
        .get_or_create_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![format!("{prefix}.>")],
            max_age,
            // Re-sends after an agent's restart come within minutes.
            duplicate_window: Duration::from_secs(600),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| HubError::Nats(format!("cannot create or open stream '{name}': {e}")))
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

/// A message read as a record: `<prefix>.<agent>.<kind>` and an alert.
pub fn parse(prefix: &str, subject: &str, payload: &[u8]) -> Option<Incoming> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    let (agent, kind) = rest.rsplit_once('.')?;
    if agent.is_empty() || agent.contains('.') {
        return None;
    }
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

pub struct Consume {
    pub consumer: consumer::PullConsumer,
    pub postgres: Arc<Mutex<tokio_postgres::Client>>,
    pub prefix: String,
    pub stats: Arc<ConsumeStats>,
}

impl Consume {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let wait = match self.batch().await {
                Ok(_) => {
                    failures = 0;
                    Duration::ZERO
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, "hub cannot take a batch; trying again");
                    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Fetches up to a batch, stores it, acknowledges it.
    async fn batch(&self) -> Result<usize, HubError> {
        let mut messages = self
            .consumer
            .fetch()
            .max_messages(BATCH)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .map_err(|e| HubError::Nats(format!("cannot fetch: {e}")))?;
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
        if fetched.is_empty() {
            return Ok(0);
        }
        let stats = &self.stats;
        stats
            .received_total
            .fetch_add(fetched.len() as u64, Ordering::Relaxed);
        let mut records = Vec::with_capacity(fetched.len());
        for message in &fetched {
            match parse(&self.prefix, message.subject.as_str(), &message.payload) {
                Some(record) => records.push(record),
                None => {
                    stats.skipped_total.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(subject = %jaga_model::escape_control(message.subject.as_str()), "a message on the stream is not a jaga record; acknowledged and skipped");
                }
            }
        }
        let new = {
            let mut client = self.postgres.lock().await;
            match store::insert(&mut client, &records).await {
                Ok(new) => new,
                Err(error) => {
                    // Not acknowledged: JetStream hands them out again.
                    stats.store_failures_total.fetch_add(1, Ordering::Relaxed);
                    return Err(error);
                }
            }
        };
        stats.stored_total.fetch_add(new, Ordering::Relaxed);
        stats
            .duplicates_total
            .fetch_add(records.len() as u64 - new, Ordering::Relaxed);
        for message in &fetched {
            if let Err(error) = message.ack().await {
                // Stored already: a second delivery is a no-op insert.
                tracing::debug!(%error, "ack failed; the record will come again");
            }
        }
        stats.last_batch_unix_ms.store(
            u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0),
            Ordering::Relaxed,
        );
        Ok(fetched.len())
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
    }
}
