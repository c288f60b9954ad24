//! What a runner shows of itself: counters, state, last error and answer,
//! and delivery latencies, shared with the HTTP side. One struct per thing
//! that happens to a delivery, logging and counting it in one place.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use jaga_model::{escape_control, OutputStats};

use crate::clock::unix_ms;

/// Latencies kept for the quantiles: the latest deliveries.
const LATENCY_WINDOW: usize = 2048;

#[derive(Debug, Default)]
pub struct OutputStatus {
    stats: Mutex<OutputStats>,
    latencies: Mutex<VecDeque<f64>>,
}

impl OutputStatus {
    pub fn new(name: &str, kind: &str) -> Self {
        Self {
            stats: Mutex::new(OutputStats {
                name: name.to_owned(),
                kind: kind.to_owned(),
                state: "starting".to_owned(),
                ..OutputStats::default()
            }),
            latencies: Mutex::default(),
        }
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    /// The stats with latency quantiles over the latest deliveries.
    pub fn snapshot(&self) -> OutputStats {
        let mut stats = self.lock().clone();
        let mut sorted: Vec<f64> = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        if !sorted.is_empty() {
            sorted.sort_by(f64::total_cmp);
            stats.latency_seconds = [0.5, 0.9, 0.99, 1.0]
                .into_iter()
                .map(|q| {
                    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
                    (q, sorted[index.min(sorted.len() - 1)])
                })
                .collect();
        }
        stats
    }

    pub fn update(&self, change: impl FnOnce(&mut OutputStats)) {
        change(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutputStats> {
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn latencies(&self, seconds: impl IntoIterator<Item = f64>) {
        let mut kept = self
            .latencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for value in seconds {
            if kept.len() == LATENCY_WINDOW {
                kept.pop_front();
            }
            kept.push_back(value);
        }
    }
}

/// A message the receiver took.
pub struct Delivered<'a> {
    pub alerts: usize,
    pub answer: &'a str,
    /// When each alert of it was stored (ms since the epoch).
    pub stored_ms: &'a [i64],
}

impl Delivered<'_> {
    pub fn emit(self, status: &OutputStatus) {
        let now = unix_ms();
        status.latencies(
            self.stored_ms
                .iter()
                .filter(|ms| **ms > 0)
                .map(|ms| now.saturating_sub(*ms).max(0) as f64 / 1000.0),
        );
        status.update(|s| {
            tracing::debug!(output = %s.name, alerts = self.alerts, answer = %escape_control(self.answer), "alerts delivered");
            s.state = "delivering".to_owned();
            s.delivered_total += 1;
            s.delivered_alerts_total += self.alerts as u64;
            s.last_delivery_unix_ms = Some(now);
            s.last_answer = Some(self.answer.to_owned());
        });
    }
}

/// A delivery failed and will be tried again after `wait`.
pub struct Retrying<'a> {
    pub error: &'a str,
    pub attempt: u32,
    pub wait: std::time::Duration,
}

impl Retrying<'_> {
    pub fn emit(self, status: &OutputStatus) {
        status.update(|s| {
            // The first failure in a row is worth a warning; the rest are
            // counted and visible in /api/v1/outputs.
            if self.attempt == 1 {
                tracing::warn!(output = %s.name, error = %escape_control(self.error), retry_in = ?self.wait, "delivery failed; trying again");
            } else {
                tracing::debug!(output = %s.name, attempt = self.attempt, error = %escape_control(self.error), retry_in = ?self.wait, "delivery failed again");
            }
            s.state = "retrying".to_owned();
            s.retried_total += 1;
            s.last_error = Some(self.error.to_owned());
            s.last_error_unix_ms = Some(unix_ms());
        });
    }
}

/// The receiver refused a message for good: kept as a dead letter.
pub struct DeadLettered<'a> {
    pub alerts: usize,
    pub error: &'a str,
    pub answer: &'a str,
}

impl DeadLettered<'_> {
    pub fn emit(self, status: &OutputStatus) {
        status.update(|s| {
            tracing::warn!(output = %s.name, alerts = self.alerts, error = %escape_control(self.error), answer = %escape_control(self.answer), "receiver refused the message; kept as a dead letter");
            s.dead_lettered_total += self.alerts as u64;
            s.last_error = Some(format!("{}: {}", self.error, self.answer));
            s.last_error_unix_ms = Some(unix_ms());
        });
    }
}

/// The backlog passed `max_backlog`: the oldest undelivered were skipped.
pub struct Dropped<'a> {
    pub alerts: u64,
    /// The bound passed, e.g. `max_age = 1h`.
    pub bound: &'a str,
}

impl Dropped<'_> {
    pub fn emit(self, status: &OutputStatus) {
        status.update(|s| {
            tracing::warn!(output = %s.name, dropped = self.alerts, bound = self.bound, "ALERTS DROPPED for this output: past its spool bound the oldest undelivered were skipped (see jaga_output_dropped_total and its dead letters)");
            s.dropped_total += self.alerts;
        });
    }
}
