//! The Docker event listener of `jaga serve`: follows the Engine's event
//! stream, turns each event into alerts, and stores both.
//!
//! Nothing lost: on (re)connection it asks for events since the newest one
//! stored (the cursor), so what happened while the agent was stopped, or
//! while the daemon restarted, is replayed; the store drops what it already
//! has by identity. Nothing twice: the event, its alerts and the cursor go
//! into the store in one transaction.
//!
//! A failed commit (a full disk) stops reading: the listener reconnects
//! from the stored cursor, which did not move, after its `interval`, so the
//! event is asked for again until the store takes it. Reading on would let
//! the next stored event move the cursor past it, losing it for good.
//! These failures are counted apart and do not count towards `attempts`,
//! which is about the Docker event stream: a full disk must not make the
//! listener give up for good.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use jaga_config::DockerListenerConfig;
use jaga_engine::{engine_time, Engine, EventQuery};
use jaga_model::{escape_control, AlertAgent, DockerEvent, ListenerStats};
use jaga_rules::events::{evaluate, RESTART_LOOP};
use jaga_store::Consumed;
use tokio::sync::watch;

use super::{alerts_for, enrich};
use crate::clock::unix_ms;
use crate::sink::AlertSink;
use crate::sources::audit::continuous::ContainerLifecycle;

/// Inspecting a started container must not hold the stream up for long.
const INSPECT_TIMEOUT: Duration = Duration::from_secs(3);

pub type SharedListenerStats = Arc<Mutex<ListenerStats>>;

pub struct Listener {
    pub engine: Arc<Engine>,
    pub sink: Arc<AlertSink>,
    pub config: DockerListenerConfig,
    pub agent: AlertAgent,
    pub stats: SharedListenerStats,
    /// Told of each container that starts (the audit checks it) or is
    /// destroyed (the audit forgets it).
    pub lifecycle: Option<tokio::sync::mpsc::UnboundedSender<ContainerLifecycle>>,
}

impl Listener {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        self.update(|s| s.state = "starting".to_owned());
        // With nothing stored yet, events are asked for from the agent's
        // start, not from whenever the stream connects: a container created
        // while the first connection is made, or before a reconnection, is
        // not missed.
        let started_ns = unix_ms().saturating_mul(1_000_000);
        if !self.config.run_on_start && self.pause(&mut shutdown).await {
            return;
        }
        loop {
            match self.follow(&mut shutdown, started_ns).await {
                Ok(Followed::Shutdown) => return,
                Ok(Followed::Ended) => self.failed("the event stream ended (daemon stopped?)"),
                Ok(Followed::NotStored(error)) => self.not_stored(&error),
                Err(error) => self.failed(&error),
            }
            let gave_up = {
                let stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                self.config.attempts > 0 && stats.failures_in_row >= self.config.attempts
            };
            if gave_up {
                self.update(|s| s.state = "failed".to_owned());
                tracing::error!(
                    attempts = self.config.attempts,
                    "GIVING UP on the Docker event stream after {} failed attempts in a row: no \
                     more events or alerts until jaga is restarted ([docker_listener] attempts)",
                    self.config.attempts
                );
                return;
            }
            if self.pause(&mut shutdown).await {
                return;
            }
        }
    }

    /// Waits one `interval`; true when shutdown came first.
    async fn pause(&self, shutdown: &mut watch::Receiver<bool>) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(self.config.interval) => false,
            _ = shutdown.changed() => true,
        }
    }

    async fn follow(
        &self,
        shutdown: &mut watch::Receiver<bool>,
        started_ns: i64,
    ) -> Result<Followed, String> {
        // The stream is lazy: ask the daemon something first, so a daemon
        // that is down counts as a failed attempt at once.
        self.engine
            .server_version()
            .await
            .map_err(|e| e.to_string())?;
        let store = Arc::clone(self.sink.store());
        let cursor = tokio::task::block_in_place(|| store.cursor()).map_err(|e| e.to_string())?;
        let query = EventQuery {
            since: Some(engine_time(cursor.unwrap_or(started_ns))),
            ..EventQuery::default()
        };
        tracing::info!(since = ?query.since, "following Docker events");
        self.update(|s| {
            s.state = "connected".to_owned();
            s.connected = true;
            s.failures_in_row = 0;
            s.last_error = None;
            s.cursor_nano = cursor;
        });
        let mut events = std::pin::pin!(self.engine.events(&query));
        loop {
            let next = tokio::select! {
                next = events.next() => next,
                _ = shutdown.changed() => return Ok(Followed::Shutdown),
            };
            match next {
                Some(Ok(event)) => {
                    if let Err(error) = self.handle(event).await {
                        return Ok(Followed::NotStored(error));
                    }
                }
                Some(Err(error)) => return Err(error.to_string()),
                None => return Ok(Followed::Ended),
            }
        }
    }

    /// Stores one event and its alerts; `Err` when the store refused them.
    async fn handle(&self, docker: DockerEvent) -> Result<(), String> {
        let mut event = enrich(docker);
        if event.docker.kind == "container" && event.docker.action == "start" {
            let inspected = tokio::time::timeout(
                INSPECT_TIMEOUT,
                self.engine.runtime_config(&event.docker.actor_id),
            )
            .await;
            match inspected {
                Ok(Ok(runtime)) => {
                    if let Some(container) = event.container.as_mut() {
                        container.runtime = Some(runtime);
                    }
                }
                Ok(Err(error)) => {
                    tracing::debug!(container = %event.docker.actor_id, %error, "cannot inspect started container")
                }
                Err(_) => {
                    tracing::debug!(container = %event.docker.actor_id, "inspecting started container timed out")
                }
            }
        }
        let store = Arc::clone(self.sink.store());
        let outcome = tokio::task::block_in_place(|| {
            let time = event.docker.time_nano;
            let container_id = event.docker.actor_id.clone();
            let mut count_error = None;
            let matches = evaluate(&event, || {
                // This die, plus the ones stored in the window before it.
                let from = time.saturating_sub(RESTART_LOOP.window_seconds * 1_000_000_000);
                match store.count_container_actions(&container_id, "die", from, time) {
                    Ok(stored) => stored + 1,
                    Err(error) => {
                        count_error = Some(error);
                        1
                    }
                }
            });
            if let Some(error) = count_error {
                tracing::warn!(%error, "cannot count recent exits; restart-loop rule skipped");
            }
            // `[alerts] min_level` is the sink's to apply.
            let alerts = alerts_for(&event, matches, &self.agent, 0);
            self.sink
                .commit(alerts.clone(), &Consumed::Event(&event))
                .map(|committed| (committed.consumed_new, committed.new_alerts, alerts))
        });
        match outcome {
            Ok((true, new_alerts, alerts)) => {
                if let Some(lifecycle) = &self.lifecycle {
                    if let Some(change) = ContainerLifecycle::of(&event.docker) {
                        let _ = lifecycle.send(change);
                    }
                }
                for alert in &alerts {
                    if alert.rule.level >= 7 && new_alerts > 0 {
                        tracing::warn!(rule = %alert.rule.id, level = alert.rule.level, "{}", escape_control(&alert.rule.description));
                    } else {
                        tracing::debug!(rule = %alert.rule.id, level = alert.rule.level, "{}", escape_control(&alert.rule.description));
                    }
                }
                self.update(|s| {
                    s.events_total += 1;
                    s.alerts_total += new_alerts as u64;
                    s.cursor_nano = Some(s.cursor_nano.unwrap_or(0).max(event.docker.time_nano));
                });
            }
            Ok((false, _, _)) => self.update(|s| s.duplicates_total += 1),
            Err(error) => {
                return Err(format!(
                    "cannot store event {}: {error}",
                    event.docker.identity()
                ))
            }
        }
        Ok(())
    }

    /// The store refused an event: reading on would let a later event move
    /// the cursor past it, so the stream is dropped and asked again from
    /// the stored cursor after `interval`.
    fn not_stored(&self, error: &str) {
        tracing::warn!(error = %escape_control(error), retry_in = ?self.config.interval, "event not stored; reading it again from the stored cursor");
        self.update(|s| {
            s.state = "retrying".to_owned();
            s.connected = false;
            s.store_failures_total += 1;
            s.last_error = Some(error.to_owned());
        });
    }

    fn failed(&self, error: &str) {
        tracing::warn!(%error, retry_in = ?self.config.interval, "Docker event stream failed");
        self.update(|s| {
            s.state = "retrying".to_owned();
            s.connected = false;
            s.failures_in_row += 1;
            s.failures_total += 1;
            s.last_error = Some(error.to_owned());
        });
    }

    fn update(&self, change: impl FnOnce(&mut ListenerStats)) {
        change(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner));
    }
}

enum Followed {
    Shutdown,
    Ended,
    /// The store refused an event (a full disk): read again from the cursor.
    NotStored(String),
}
