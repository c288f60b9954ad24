//! The delivery runner of one output: its own cursor over the alert
//! sequence, woken when an alert is committed (a watch on the latest
//! sequence number) and on a timer.
//!
//! It reads the alerts after what it has taken in, in batches, keeps those
//! its filter takes, groups them when the output groups (the same rule on
//! the same container stored within `group_window` become one message),
//! spends a token of its rate limit per message, and delivers messages in
//! order. A transient failure is tried again after a jittered exponential
//! backoff (or the receiver's `Retry-After`), for as long as it takes; a
//! permanent one is kept as a dead letter with the receiver's answer. The
//! cursor moves after the messages the receiver took, to just before the
//! oldest alert still held (stored after each message when they come one
//! by one, every 256 messages or second in a burst): delivery is at least
//! once, and a restart sends again at most what came since. Each runner is its own task, so a slow
//! or dead receiver holds back nothing but its own cursor.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jaga_config::OutputConfig;
use jaga_outputs::{DeliveryError, Message, Output, Receipt, StoredAlert};
use jaga_store::{DeadLetter, DeadLetterKind, EventStore, QueuedAlert, StoreError};
use tokio::sync::watch;

use super::filter::Filter;
use super::rate::TokenBucket;
use super::status::{DeadLettered, Delivered, Dropped, OutputStatus, Retrying};
use crate::clock::unix_ms;

/// Alerts read from the store at once.
const READ_BATCH: usize = 500;
/// Most alerts held in memory (read, not yet delivered).
const READ_AHEAD: u64 = 2_000;
/// Most alerts in one grouped message.
const MAX_GROUP: usize = 500;
/// Wait before using the store again after it failed.
const STORE_RETRY: Duration = Duration::from_secs(5);
/// A look at the store even when no commit was announced.
const IDLE_TICK: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// In a burst the cursor is stored every this many messages or this long,
/// whichever comes first, and whenever the runner runs out of work: a
/// transaction per alert would cost the sources their share of the store.
/// A crash re-sends at most what came since (delivery is at least once).
const PERSIST_EVERY_MESSAGES: u32 = 256;
const PERSIST_EVERY: Duration = Duration::from_secs(1);
/// A delivery the output did not end by itself (outputs time out on their
/// own; this is the net under them).
const DELIVERY_GUARD: Duration = Duration::from_secs(600);

/// How a runner treats its output's alerts, from its `[[outputs]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RunnerSettings {
    pub name: String,
    pub filter: Filter,
    pub group_window: Option<Duration>,
    pub rate_limit: Option<u32>,
    pub max_backlog: u64,
    pub max_age: Option<Duration>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl RunnerSettings {
    pub fn of(config: &OutputConfig) -> Self {
        Self {
            name: config.name.clone(),
            filter: Filter::of(config),
            group_window: config.group_window_in_effect(),
            rate_limit: config.rate_limit_in_effect(),
            max_backlog: config.max_backlog.max(1),
            max_age: config.max_age,
            backoff_min: config.backoff_min,
            backoff_max: config.backoff_max.max(config.backoff_min),
        }
    }
}

pub struct Runner {
    pub settings: RunnerSettings,
    pub output: Arc<dyn Output>,
    pub store: Arc<EventStore>,
    /// The sequence number of the latest alert committed.
    pub latest: watch::Receiver<i64>,
    pub status: Arc<OutputStatus>,
}

/// A message being built or waiting to go.
struct Pending {
    /// (rule id, container id): what a group holds one of.
    key: (String, String),
    message: Message,
    stored_ms: Vec<i64>,
    /// Wall-clock time (ms) at which it may go: its first alert's storing
    /// plus the grouping window.
    ready_at_ms: i64,
}

impl Pending {
    fn first_seq(&self) -> i64 {
        self.message.first().map_or(0, |a| a.seq)
    }
}

struct State {
    /// Every alert up to here is taken in (held, filtered or skipped).
    read_seq: i64,
    /// Persisted: every alert up to here is done.
    cursor: i64,
    pending: VecDeque<Pending>,
    held: u64,
    /// Alerts of the message being delivered, and its first sequence number.
    in_flight: u64,
    in_flight_first: Option<i64>,
    bucket: Option<TokenBucket>,
    next_resend: Option<Instant>,
    /// Dead letters the store did not take yet.
    unsaved: Vec<DeadLetter>,
    /// Messages done since the cursor was last stored, and when that was.
    unpersisted: u32,
    persisted_at: Instant,
}

enum Outcome {
    Delivered(Receipt),
    Refused { reason: String, answer: String },
    Shutdown,
}

impl Runner {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let Some(cursor) = self.open_cursor(&mut shutdown).await else {
            return;
        };
        let resend = self.output.resend_firing_every();
        let mut st = State {
            read_seq: cursor,
            cursor,
            pending: VecDeque::new(),
            held: 0,
            in_flight: 0,
            in_flight_first: None,
            bucket: self
                .settings
                .rate_limit
                .map(|r| TokenBucket::per_minute(r, Instant::now())),
            next_resend: resend.map(|every| Instant::now() + every),
            unsaved: Vec::new(),
            unpersisted: 0,
            persisted_at: Instant::now(),
        };
        self.show(&st, "idle");
        loop {
            if stopping(&shutdown) {
                break;
            }
            if let Err(error) = self.take_in(&mut st).await {
                self.store_failed(&error);
                if pause(STORE_RETRY, &mut shutdown).await {
                    break;
                }
                continue;
            }
            if let (Some(every), Some(due)) = (resend, st.next_resend) {
                if Instant::now() >= due {
                    self.resend_firing().await;
                    st.next_resend = Some(Instant::now() + every);
                }
            }
            // Committed while reading: read it before anything waits.
            if st.held < self.read_ahead() && st.read_seq < *self.latest.borrow() {
                tokio::task::yield_now().await;
                continue;
            }
            let room = st.held < self.read_ahead();
            let Some(head) = st.pending.front() else {
                self.persist(&mut st).await;
                self.show(&st, "idle");
                let until_resend = st.next_resend.map_or(IDLE_TICK, |due| {
                    due.saturating_duration_since(Instant::now())
                });
                if self
                    .wait(true, IDLE_TICK.min(until_resend), &mut shutdown)
                    .await
                {
                    break;
                }
                continue;
            };
            let wait_ms = head.ready_at_ms.saturating_sub(unix_ms());
            if wait_ms > 0 {
                // New alerts may join the groups meanwhile.
                let wait = Duration::from_millis(wait_ms as u64);
                self.persist_done(&mut st).await;
                if self.wait(room, wait, &mut shutdown).await {
                    break;
                }
                continue;
            }
            if let Some(bucket) = st.bucket.as_mut() {
                if let Err(wait) = bucket.take(Instant::now()) {
                    self.persist_done(&mut st).await;
                    self.show(&st, "rate_limited");
                    if self.wait(room, wait, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            }
            let Some(head) = st.pending.pop_front() else {
                continue;
            };
            let count = head.message.alerts.len() as u64;
            st.held -= count;
            st.in_flight = count;
            st.in_flight_first = Some(head.first_seq());
            let outcome = self.deliver(&mut st, &head.message, &mut shutdown).await;
            st.in_flight = 0;
            st.in_flight_first = None;
            match outcome {
                Outcome::Shutdown => break,
                Outcome::Delivered(receipt) => Delivered {
                    alerts: head.message.alerts.len(),
                    answer: &receipt.answer,
                    stored_ms: &head.stored_ms,
                }
                .emit(&self.status),
                Outcome::Refused { reason, answer } => {
                    DeadLettered {
                        alerts: head.message.alerts.len(),
                        error: &reason,
                        answer: &answer,
                    }
                    .emit(&self.status);
                    st.unsaved
                        .push(refused(&self.settings.name, &head.message, reason, answer));
                }
            }
            st.unpersisted += 1;
            if !st.unsaved.is_empty()
                || st.unpersisted >= PERSIST_EVERY_MESSAGES
                || st.persisted_at.elapsed() >= PERSIST_EVERY
            {
                self.persist(&mut st).await;
            }
        }
        self.persist(&mut st).await;
        self.show(&st, "stopped");
    }

    fn read_ahead(&self) -> u64 {
        READ_AHEAD.min(self.settings.max_backlog)
    }

    /// The stored cursor; waits out a failing store. `None`: shutdown.
    async fn open_cursor(&self, shutdown: &mut watch::Receiver<bool>) -> Option<i64> {
        loop {
            let store = Arc::clone(&self.store);
            let (name, kind) = (self.settings.name.clone(), self.output.kind());
            match blocking(move || store.open_output_cursor(&name, kind)).await {
                Ok(cursor) => return Some(cursor.seq),
                Err(error) => self.store_failed(&error),
            }
            if pause(STORE_RETRY, shutdown).await {
                return None;
            }
        }
    }

    /// Bounds the backlog, then reads what fits into the read-ahead.
    async fn take_in(&mut self, st: &mut State) -> Result<(), StoreError> {
        self.bound_backlog(st).await?;
        while st.held < self.read_ahead() {
            // Everything up to `latest` is committed when it is announced.
            let latest = *self.latest.borrow_and_update();
            if latest <= st.read_seq {
                return Ok(());
            }
            let store = Arc::clone(&self.store);
            let after = st.read_seq;
            let room = (self.read_ahead() - st.held).min(READ_BATCH as u64) as usize;
            let batch = blocking(move || store.alerts_after(after, room)).await?;
            let full = batch.len() == room;
            let mut filtered = 0u64;
            for queued in batch {
                st.read_seq = st.read_seq.max(queued.seq);
                if self.settings.filter.takes(&queued.alert) {
                    self.hold(st, queued);
                } else {
                    filtered += 1;
                }
            }
            if filtered > 0 {
                self.status.update(|s| s.filtered_total += filtered);
            }
            if !full {
                // Gaps (trimmed or skipped alerts) up to `latest` are passed.
                st.read_seq = st.read_seq.max(latest);
                return Ok(());
            }
        }
        Ok(())
    }

    /// Adds an alert to its open group, or makes it a message of its own.
    fn hold(&self, st: &mut State, queued: QueuedAlert) {
        st.held += 1;
        let key = (
            queued.alert.rule.id.clone(),
            queued
                .alert
                .container
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
        );
        let stored = StoredAlert {
            seq: queued.seq,
            alert: queued.alert,
        };
        if let Some(window) = self.settings.group_window {
            let window_ms = window.as_millis() as i64;
            let open = st.pending.iter_mut().rev().find(|p| {
                p.key == key
                    && p.message.alerts.len() < MAX_GROUP
                    && queued.stored_ms <= p.stored_ms.first().copied().unwrap_or(0) + window_ms
            });
            if let Some(group) = open {
                group.message.alerts.push(stored);
                group.stored_ms.push(queued.stored_ms);
                return;
            }
            st.pending.push_back(Pending {
                key,
                message: Message::single(stored),
                stored_ms: vec![queued.stored_ms],
                ready_at_ms: queued.stored_ms.saturating_add(window_ms),
            });
        } else {
            st.pending.push_back(Pending {
                key,
                message: Message::single(stored),
                stored_ms: vec![queued.stored_ms],
                ready_at_ms: 0,
            });
        }
    }

    /// Past `max_backlog` undelivered alerts, or older than `max_age`, the
    /// oldest not yet read are skipped: recorded as a dead letter and
    /// counted, never silently.
    async fn bound_backlog(&self, st: &mut State) -> Result<(), StoreError> {
        if let Some(max_age) = self.settings.max_age {
            let store = Arc::clone(&self.store);
            let after = st.read_seq;
            let before_ms = unix_ms().saturating_sub(max_age.as_millis() as i64);
            if let Some((skip_to, dropped)) =
                blocking(move || store.stored_before(after, before_ms)).await?
            {
                let bound = format!("max_age = {}", humantime::format_duration(max_age));
                self.skip(st, skip_to, dropped, &bound).await;
            }
        }
        let latest = *self.latest.borrow();
        let max = self.settings.max_backlog;
        let held = st.held + st.in_flight;
        // Cheap first: the sequence numbers bound the count from above.
        if (latest.saturating_sub(st.read_seq).max(0) as u64).saturating_add(held) <= max {
            return Ok(());
        }
        let store = Arc::clone(&self.store);
        let after = st.read_seq;
        let allowed = max.saturating_sub(held);
        let (unread, skip_to) = blocking(move || {
            let unread = store.alerts_count_after(after)?;
            let skip_to = if unread > allowed {
                store.seq_keeping_newest(after, allowed)?
            } else {
                None
            };
            Ok::<_, StoreError>((unread, skip_to))
        })
        .await?;
        if let Some(skip_to) = skip_to {
            let bound = format!("more than max_backlog = {max} alerts waited");
            self.skip(st, skip_to, unread - allowed, &bound).await;
        }
        Ok(())
    }

    /// Skips the unread alerts up to `skip_to` (`dropped` of them), for
    /// the reason `bound` gives.
    async fn skip(&self, st: &mut State, skip_to: i64, dropped: u64, bound: &str) {
        Dropped {
            alerts: dropped,
            bound,
        }
        .emit(&self.status);
        st.unsaved.push(DeadLetter {
            output: self.settings.name.clone(),
            kind: DeadLetterKind::Dropped,
            first_seq: st.read_seq + 1,
            last_seq: skip_to,
            seqs: Vec::new(),
            alert_ids: Vec::new(),
            count: dropped,
            at_ms: unix_ms(),
            error: format!("skipped undelivered: {bound}"),
            answer: String::new(),
        });
        st.read_seq = skip_to;
        self.persist(st).await;
    }

    /// Hands `message` to the output until it takes or refuses it.
    async fn deliver(
        &self,
        st: &mut State,
        message: &Message,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let result = tokio::select! {
                result = tokio::time::timeout(DELIVERY_GUARD, self.output.deliver(message)) => {
                    result.unwrap_or_else(|_| Err(DeliveryError::Transient {
                        reason: format!("the {} output did not answer within {}s", self.output.kind(), DELIVERY_GUARD.as_secs()),
                        retry_after: None,
                    }))
                }
                _ = shutdown.changed() => return Outcome::Shutdown,
            };
            let (reason, retry_after) = match result {
                Ok(receipt) => return Outcome::Delivered(receipt),
                Err(DeliveryError::Permanent { reason, answer }) => {
                    return Outcome::Refused { reason, answer }
                }
                Err(error) => {
                    let retry_after = match &error {
                        DeliveryError::Transient { retry_after, .. } => *retry_after,
                        DeliveryError::Permanent { .. } => None,
                    };
                    (error.to_string(), retry_after)
                }
            };
            let wait = retry_after.map_or_else(
                || {
                    backoff(
                        attempt,
                        self.settings.backoff_min,
                        self.settings.backoff_max,
                    )
                },
                |after| after.min(MAX_RETRY_AFTER),
            );
            Retrying {
                error: &reason,
                attempt,
                wait,
            }
            .emit(&self.status);
            // An outage must not let the backlog grow without bound.
            if let Err(error) = self.bound_backlog(st).await {
                self.store_failed(&error);
            }
            self.show_counts(st);
            if pause(wait, shutdown).await {
                return Outcome::Shutdown;
            }
        }
    }

    /// Re-delivers the latest alert of every episode still firing, once
    /// each (the next round sends them again anyway).
    async fn resend_firing(&self) {
        let store = Arc::clone(&self.store);
        let firing = match blocking(move || store.firing_episodes()).await {
            Ok(firing) => firing,
            Err(error) => return self.store_failed(&error),
        };
        for queued in firing {
            if !self.settings.filter.takes(&queued.alert) {
                continue;
            }
            let message = Message::single(StoredAlert {
                seq: queued.seq,
                alert: queued.alert,
            });
            let sent = tokio::time::timeout(DELIVERY_GUARD, self.output.deliver(&message)).await;
            if let Ok(Err(error)) | Err(error) = sent.map_err(|_| DeliveryError::Transient {
                reason: "timed out".to_owned(),
                retry_after: None,
            }) {
                tracing::debug!(output = %self.settings.name, %error, "re-sending a firing alert failed; it is sent again next round");
            }
        }
    }

    /// Stores the cursor when messages were done since it was last stored
    /// (before the runner waits).
    async fn persist_done(&self, st: &mut State) {
        if st.unpersisted > 0 || !st.unsaved.is_empty() {
            self.persist(st).await;
        }
    }

    /// Moves the stored cursor to just before the oldest alert still held,
    /// with the dead letters not stored yet.
    async fn persist(&self, st: &mut State) {
        // Never past a message in flight or held.
        let held = st.pending.front().map(Pending::first_seq);
        let target = st
            .in_flight_first
            .into_iter()
            .chain(held)
            .map(|first| first - 1)
            .min()
            .unwrap_or(st.read_seq)
            .max(st.cursor);
        if target == st.cursor && st.unsaved.is_empty() {
            return;
        }
        let store = Arc::clone(&self.store);
        let name = self.settings.name.clone();
        let letters = std::mem::take(&mut st.unsaved);
        let (result, unsaved) = blocking_with(move || {
            // Each letter with the cursor it belongs before, oldest first.
            let mut left = letters.into_iter();
            while let Some(letter) = left.next() {
                if let Err(error) =
                    store.move_output_cursor(&name, st_cursor(target, &letter), Some(&letter))
                {
                    let mut unsaved = vec![letter];
                    unsaved.extend(left);
                    return (Err(error), unsaved);
                }
            }
            (store.move_output_cursor(&name, target, None), Vec::new())
        })
        .await;
        st.unsaved.extend(unsaved);
        match result {
            Ok(()) => {
                st.cursor = target;
                st.unpersisted = 0;
                st.persisted_at = Instant::now();
            }
            Err(error) => {
                // Delivered stays delivered; the cursor catches up at the
                // next move, and letters not stored are stored then.
                self.store_failed(&error);
            }
        }
        self.show_counts(st);
    }

    fn show(&self, st: &State, state: &str) {
        self.status.update(|s| s.state = state.to_owned());
        self.show_counts(st);
    }

    fn show_counts(&self, st: &State) {
        let latest = *self.latest.borrow();
        self.status.update(|s| {
            s.cursor = st.cursor;
            s.backlog = latest.saturating_sub(st.cursor).max(0) as u64;
        });
    }

    fn store_failed(&self, error: &StoreError) {
        tracing::warn!(output = %self.settings.name, %error, "delivery runner cannot use the store; trying again");
        self.status.update(|s| {
            s.last_error = Some(error.to_string());
            s.last_error_unix_ms = Some(unix_ms());
        });
    }

    /// Waits `timeout`, or less when an alert is committed (`new_alerts`);
    /// true when shutdown came first.
    async fn wait(
        &mut self,
        new_alerts: bool,
        timeout: Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        tokio::select! {
            changed = self.latest.changed(), if new_alerts => {
                if changed.is_err() {
                    // No sink any more: only the timer wakes.
                    return pause(timeout, shutdown).await;
                }
                false
            }
            _ = tokio::time::sleep(timeout) => false,
            _ = shutdown.changed() => true,
        }
    }
}

/// The dead letter of a refused message.
fn refused(output: &str, message: &Message, error: String, answer: String) -> DeadLetter {
    let seqs: Vec<i64> = message.alerts.iter().map(|a| a.seq).collect();
    DeadLetter {
        output: output.to_owned(),
        kind: DeadLetterKind::Refused,
        first_seq: seqs.iter().copied().min().unwrap_or(0),
        last_seq: seqs.iter().copied().max().unwrap_or(0),
        count: seqs.len() as u64,
        seqs,
        alert_ids: message.alerts.iter().map(|a| a.alert.id.clone()).collect(),
        at_ms: unix_ms(),
        error,
        answer,
    }
}

/// The wait before attempt `attempt + 1`: `min` doubled per failed
/// attempt up to `max`, then a random point in its upper half ("equal
/// jitter"), so runners that failed together do not retry together.
pub fn backoff(attempt: u32, min: Duration, max: Duration) -> Duration {
    let doubled = min.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let base = doubled.min(max);
    base / 2 + base.mul_f64(fastrand::f64() / 2.0)
}

fn stopping(shutdown: &watch::Receiver<bool>) -> bool {
    *shutdown.borrow() || shutdown.has_changed().is_err()
}

/// Sleeps `wait`; true when shutdown came first.
pub(crate) async fn pause(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = shutdown.changed() => true,
    }
}

/// The cursor stored with a dead letter: not past what the letter holds
/// nor past the runner's target.
fn st_cursor(target: i64, letter: &DeadLetter) -> i64 {
    target.min(letter.last_seq)
}

/// Store work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::Stopped(e.to_string())))
}

/// Store work off the async workers, with what it hands back on failure.
async fn blocking_with(
    work: impl FnOnce() -> (Result<(), StoreError>, Vec<DeadLetter>) + Send + 'static,
) -> (Result<(), StoreError>, Vec<DeadLetter>) {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| (Err(StoreError::Stopped(e.to_string())), Vec::new()))
}
