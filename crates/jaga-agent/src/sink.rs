//! The one door into the store for alerts: every source commits the alerts
//! it raised together with what it consumed to raise them (a Docker event
//! and the listener's cursor, a log batch and its checkpoint, an audit
//! finding's identity, a metric rule's firing state), in one transaction.
//!
//! The sink is the one place that applies `[alerts] min_level` to every
//! source, checks alert times and ids, and tells the delivery runners that
//! alerts were committed (a watch on the latest sequence number).
//!
//! Time semantics: an alert's `timestamp` is the time it shows, which is
//! the time of what raised it: the Docker event's time, the log line's
//! time, the time the audit found the finding. Ids are stable for the same
//! input, so a replay after a restart adds nothing: sources build them
//! with [`alert_id`] or their own stable scheme (kept across releases).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use jaga_model::Alert;
use jaga_store::{Committed, Consumed, EventStore, StoreError};
use tokio::sync::watch;

pub struct AlertSink {
    store: Arc<EventStore>,
    min_level: u8,
    latest_seq: watch::Sender<i64>,
    below_min_level: AtomicU64,
    unreadable_time: AtomicU64,
}

impl AlertSink {
    /// A sink over `store` that keeps alerts at `min_level` or above.
    pub fn new(store: Arc<EventStore>, min_level: u8) -> Result<Self, StoreError> {
        let latest = store.latest_alert_seq()?;
        Ok(Self {
            store,
            min_level,
            latest_seq: watch::channel(latest).0,
            below_min_level: AtomicU64::new(0),
            unreadable_time: AtomicU64::new(0),
        })
    }

    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    /// Changes with every commit that stored an alert: its sequence number.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.latest_seq.subscribe()
    }

    /// Alerts dropped for being below `[alerts] min_level`.
    pub fn below_min_level_total(&self) -> u64 {
        self.below_min_level.load(Ordering::Relaxed)
    }

    /// Stores `alerts` (those that pass `min_level`) with what the source
    /// `consumed`, in one transaction. Blocking: call it off the async
    /// workers (`block_in_place`, `spawn_blocking`).
    pub fn commit(&self, alerts: Vec<Alert>, consumed: &Consumed) -> Result<Committed, StoreError> {
        let alerts = self.admit(alerts);
        let committed = self.store.commit(&alerts, consumed)?;
        if let Some(seq) = committed.last_seq {
            self.latest_seq.send_if_modified(|latest| {
                let newer = seq > *latest;
                *latest = (*latest).max(seq);
                newer
            });
        }
        Ok(committed)
    }

    /// What may be stored: at `min_level` or above, once per id, with a
    /// time that reads (else the time of storing, counted).
    fn admit(&self, alerts: Vec<Alert>) -> Vec<Alert> {
        let mut ids = HashSet::new();
        let mut kept = Vec::with_capacity(alerts.len());
        for mut alert in alerts {
            if alert.rule.level < self.min_level {
                self.below_min_level.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if chrono::DateTime::parse_from_rfc3339(&alert.timestamp).is_err() {
                let count = self.unreadable_time.fetch_add(1, Ordering::Relaxed);
                if count == 0 {
                    tracing::warn!(alert = %alert.id, timestamp = %jaga_model::escape_control(&alert.timestamp), "an alert's time cannot be read; it is stored at the time of storing (logged once)");
                }
                alert.timestamp = rfc3339_ms(crate::clock::unix_ms());
            }
            if alert.id.is_empty() {
                alert.id = alert_id(&alert.timestamp, &alert.location, &alert.rule.id);
            }
            if ids.insert(alert.id.clone()) {
                kept.push(alert);
            }
        }
        kept
    }
}

/// An id for an alert of rule `rule_id` raised by `identity` (what makes
/// the input itself) in `scope`: stable across restarts and releases.
pub fn alert_id(scope: &str, identity: &str, rule_id: &str) -> String {
    format!("{scope}.{:016x}.{rule_id}", fnv1a(identity))
}

/// `2026-11-23T10:00:00.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// A stable 64-bit hash (FNV-1a): alert ids must not change between
/// releases, which `std`'s hasher does not promise.
pub fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{AlertAgent, AlertRule};

    pub(crate) fn alert(id: &str, level: u8, location: &str) -> Alert {
        Alert {
            id: id.to_owned(),
            timestamp: "2024-01-01T00:00:00.000Z".to_owned(),
            rule: AlertRule {
                id: "r1".to_owned(),
                level,
                description: "d".to_owned(),
                groups: vec!["audit".to_owned()],
                mitre: Vec::new(),
            },
            agent: AlertAgent::default(),
            container: None,
            data: Default::default(),
            location: location.to_owned(),
            event: None,
            episode: None,
        }
    }

    #[test]
    fn audit_alerts_below_min_level_are_not_stored_but_the_finding_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let sink = AlertSink::new(Arc::clone(&store), 5).unwrap();
        let latest = sink.subscribe();
        let low = sink
            .commit(
                vec![alert("audit.1", 3, "audit")],
                &Consumed::Finding { identity: "f1" },
            )
            .unwrap();
        assert!(low.consumed_new);
        assert_eq!(low.new_alerts, 0);
        assert_eq!(sink.below_min_level_total(), 1);
        // The finding is remembered: it does not alert later either.
        let again = sink
            .commit(
                vec![alert("audit.1", 3, "audit")],
                &Consumed::Finding { identity: "f1" },
            )
            .unwrap();
        assert!(!again.consumed_new);
        assert!(!latest.has_changed().unwrap());
        let high = sink
            .commit(
                vec![alert("audit.2", 9, "audit")],
                &Consumed::Finding { identity: "f2" },
            )
            .unwrap();
        assert_eq!(high.new_alerts, 1);
        assert_eq!(*latest.borrow(), high.last_seq.unwrap());
        assert!(latest.has_changed().unwrap());
    }

    #[test]
    fn an_alert_whose_time_does_not_read_gets_the_storing_time_and_twins_are_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let sink = AlertSink::new(Arc::clone(&store), 0).unwrap();
        let mut bad = alert("x", 3, "/logs/a");
        bad.timestamp = "yesterday".to_owned();
        let committed = sink
            .commit(vec![bad, alert("x", 3, "/logs/a")], &Consumed::Nothing)
            .unwrap();
        assert_eq!(committed.new_alerts, 1);
        let stored = store.alerts_after(0, 10).unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(&stored[0].alert.timestamp).is_ok());
    }

    #[test]
    fn ids_are_stable() {
        assert_eq!(
            alert_id("audit", "check/x", "CIS-5.4"),
            alert_id("audit", "check/x", "CIS-5.4")
        );
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
    }
}
