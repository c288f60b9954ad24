//! The metric rules task of `jaga serve`: evaluates each collection's
//! snapshot (at most every `[metric_rules] interval`) and stores what
//! changed — pending times started or ended, episodes fired or resolved —
//! with the alerts, in one transaction. The state is read back from the
//! store at start, so a restart neither fires an episode twice nor loses
//! its resolution; a failed commit reloads it, so the next evaluation makes
//! the same transitions (with the same alert ids) again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jaga_config::Config;
use jaga_model::{AlertAgent, Snapshot};
use jaga_rules::metric::{split, FiringState, MetricRules, Observation, RestartCounts};
use jaga_store::Consumed;
use tokio::sync::watch;

use crate::sink::AlertSink;

/// Wait before reading the stored state again after the store failed.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The rules `serve` evaluates: the defaults and the user's files, those
/// below `[alerts] min_level` left out; `None` when metric rules are off.
/// (Without the Docker event listener, `restarts` rules count nothing.)
pub fn load(config: &Config) -> anyhow::Result<Option<MetricRules>> {
    let section = &config.metric_rules;
    if section.disabled {
        return Ok(None);
    }
    let rules = crate::sources::logs::load_metric_rules(&section.rules, !section.no_defaults)?;
    Ok(Some(rules.at_least_level(config.alerts.min_level)))
}

pub struct MetricRulesTask {
    pub rules: MetricRules,
    pub sink: Arc<AlertSink>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub agent: AlertAgent,
    pub interval: Duration,
}

impl MetricRulesTask {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(rules = self.rules.len(), "metric rules started");
        let Some(mut state) = self.restore(&mut shutdown).await else {
            return;
        };
        let mut last_evaluation: Option<Instant> = None;
        loop {
            tokio::select! {
                changed = self.snapshots.changed() => if changed.is_err() { return },
                _ = shutdown.changed() => return,
            }
            let snapshot = Arc::clone(&self.snapshots.borrow_and_update());
            // The placeholder published before the first collection.
            if snapshot.taken_unix_ms == 0 {
                continue;
            }
            if last_evaluation.is_some_and(|at| at.elapsed() < self.interval) {
                continue;
            }
            last_evaluation = Some(Instant::now());
            if !self.evaluate(&snapshot, &mut state).await {
                match self.restore(&mut shutdown).await {
                    Some(stored) => state = stored,
                    None => return,
                }
            }
        }
    }

    /// One evaluation and its commit; `false` when the store refused it.
    async fn evaluate(&self, snapshot: &Snapshot, state: &mut FiringState) -> bool {
        let restarts = match self.count_restarts(snapshot.taken_unix_ms).await {
            Ok(restarts) => restarts,
            Err(error) => {
                tracing::warn!(%error, "cannot count container exits for metric rules; evaluating the others");
                RestartCounts::default()
            }
        };
        let observed = Observation {
            snapshot,
            restarts: &restarts,
            agent: &self.agent,
        };
        let transitions = self
            .rules
            .evaluate(&observed, snapshot.taken_unix_ms, state);
        if transitions.is_empty() {
            return true;
        }
        let (changes, alerts) = split(transitions);
        for alert in &alerts {
            if let Some(episode) = &alert.episode {
                tracing::debug!(rule = %alert.rule.id, key = %episode.key, status = ?episode.status, "metric rule episode");
            }
        }
        let sink = Arc::clone(&self.sink);
        let stored = tokio::task::spawn_blocking(move || {
            sink.commit(alerts, &Consumed::MetricTransitions(&changes))
        })
        .await;
        match stored {
            Ok(Ok(_)) => true,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot store metric rule transitions; evaluating again from the stored state");
                false
            }
            Err(error) => {
                tracing::warn!(%error, "storing metric rule transitions stopped");
                false
            }
        }
    }

    /// Exits per container in each window the rules use, from stored events.
    async fn count_restarts(&self, now_ms: i64) -> Result<RestartCounts, jaga_store::StoreError> {
        let windows = self.rules.restart_windows();
        let store = Arc::clone(self.sink.store());
        let now_nano = now_ms.saturating_mul(1_000_000);
        let counted = tokio::task::spawn_blocking(move || {
            let mut counts = RestartCounts::default();
            for window in windows {
                let span = i64::try_from(window.as_nanos()).unwrap_or(i64::MAX);
                let by_container = store.count_actions_by_container(
                    "die",
                    now_nano.saturating_sub(span),
                    now_nano,
                )?;
                counts.insert(window, by_container);
            }
            Ok(counts)
        })
        .await;
        counted.unwrap_or_else(|error| {
            tracing::warn!(%error, "counting container exits stopped");
            Ok(RestartCounts::default())
        })
    }

    /// The stored state, read again every few seconds until the store
    /// answers; `None` when shutdown came first.
    async fn restore(&self, shutdown: &mut watch::Receiver<bool>) -> Option<FiringState> {
        loop {
            let store = Arc::clone(self.sink.store());
            match tokio::task::spawn_blocking(move || store.metric_rule_states()).await {
                Ok(Ok(states)) => {
                    let state = FiringState::restore(states);
                    tracing::debug!(
                        states = state.len(),
                        firing = state.firing(),
                        "metric rule state restored"
                    );
                    return Some(state);
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "cannot read the metric rule state; trying again")
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the metric rule state stopped; trying again")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY_AFTER) => {}
                _ = shutdown.changed() => return None,
            }
        }
    }
}
