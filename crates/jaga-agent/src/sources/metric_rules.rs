//! The metric rules task of `jaga serve`: evaluates each collection's
//! snapshot (at most every `[metric_rules] interval`) and stores what
//! changed — pending times started or ended, episodes fired or resolved —
//! with the alerts, in one transaction. The state is read back from the
//! store at start, so a restart neither fires an episode twice nor loses
//! its resolution; a failed commit reloads it, so the next evaluation makes
//! the same transitions (with the same alert ids) again.

use std::collections::HashMap;
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
    /// Container exits of the longest `restarts` window, as last read.
    pub(crate) exits: ExitTimes,
    pub sink: Arc<AlertSink>,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub agent: AlertAgent,
    pub interval: Duration,
    /// How often the collector publishes a snapshot (`serve.interval`).
    pub collection_interval: Duration,
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
            if last_evaluation.is_some_and(|at| {
                !evaluation_due(at.elapsed(), self.interval, self.collection_interval)
            }) {
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
    async fn evaluate(&mut self, snapshot: &Snapshot, state: &mut FiringState) -> bool {
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

    /// Exits per container in each window the rules use, from stored
    /// events. The exits of the longest window are kept and read again
    /// only when the stored events changed: an idle host asked SQLite at
    /// every pass for counts that had not moved.
    async fn count_restarts(
        &mut self,
        now_ms: i64,
    ) -> Result<RestartCounts, jaga_store::StoreError> {
        let windows = self.rules.restart_windows();
        let Some(longest) = windows.last().copied() else {
            return Ok(RestartCounts::default());
        };
        let now_nano = now_ms.saturating_mul(1_000_000);
        let from_nano = now_nano.saturating_sub(nanos(longest));
        let store = Arc::clone(self.sink.store());
        // Read before the events: a commit after this moves it again.
        let generation = store.events_generation();
        if !self.exits.covers(generation, from_nano) {
            let read =
                tokio::task::spawn_blocking(move || store.action_times("die", from_nano)).await;
            let times = match read {
                Ok(times) => times?,
                Err(error) => {
                    tracing::warn!(%error, "counting container exits stopped");
                    return Ok(RestartCounts::default());
                }
            };
            self.exits = ExitTimes {
                generation: Some(generation),
                from_nano,
                times,
            };
        }
        Ok(self.exits.counts(&windows, now_nano))
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

/// Container exits (`die` events) from a time on, as read from the store
/// at one events generation.
#[derive(Debug, Default)]
pub(crate) struct ExitTimes {
    generation: Option<u64>,
    from_nano: i64,
    /// (container id, time), oldest first.
    times: Vec<(String, i64)>,
}

impl ExitTimes {
    /// Whether what was read still answers for exits from `from_nano` on.
    fn covers(&self, generation: u64, from_nano: i64) -> bool {
        self.generation == Some(generation) && self.from_nano <= from_nano
    }

    /// Exits per container in each window ending at `now_nano`.
    fn counts(&self, windows: &[Duration], now_nano: i64) -> RestartCounts {
        let mut counts = RestartCounts::default();
        for window in windows {
            let from_nano = now_nano.saturating_sub(nanos(*window));
            let mut by_container: HashMap<String, u32> = HashMap::new();
            for (container, _) in self
                .times
                .iter()
                .filter(|(_, time)| (from_nano..=now_nano).contains(time))
            {
                *by_container.entry(container.clone()).or_default() += 1;
            }
            counts.insert(*window, by_container);
        }
        counts
    }
}

/// Whether a snapshot arriving `elapsed` after the last evaluation is
/// evaluated: when waiting for the next one would overshoot `interval` by
/// more than taking this one undershoots it. Comparing `elapsed` with
/// `interval` alone skipped every snapshot that came a millisecond early,
/// so with both intervals at 1 s rules were evaluated every 2 s.
fn evaluation_due(elapsed: Duration, interval: Duration, collection_interval: Duration) -> bool {
    elapsed + collection_interval / 2 >= interval
}

fn nanos(window: Duration) -> i64 {
    i64::try_from(window.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exits(generation: u64, from_nano: i64, times: &[(&str, i64)]) -> ExitTimes {
        ExitTimes {
            generation: Some(generation),
            from_nano,
            times: times.iter().map(|(c, t)| ((*c).to_owned(), *t)).collect(),
        }
    }

    #[test]
    fn a_snapshot_arriving_a_little_early_is_evaluated_when_both_intervals_are_equal() {
        let second = Duration::from_secs(1);
        let early = Duration::from_millis(990);
        assert!(evaluation_due(early, second, second));
        assert!(evaluation_due(Duration::from_millis(1_300), second, second));
    }

    #[test]
    fn a_longer_rule_interval_skips_the_collections_in_between() {
        let (second, five) = (Duration::from_secs(1), Duration::from_secs(5));
        let due: Vec<u64> = (1..=5)
            .filter(|n| evaluation_due(Duration::from_millis(n * 1_000 - 10), five, second))
            .collect();
        assert_eq!(due, vec![5], "only the snapshot about 5 s on");
        // A rule interval shorter than the collection's: every snapshot.
        assert!(evaluation_due(
            Duration::from_millis(700),
            Duration::from_millis(500),
            second
        ));
    }

    #[test]
    fn exits_are_counted_per_window_from_what_was_read() {
        let read = exits(
            1,
            0,
            &[
                ("web", 1_000),
                ("web", 2_000),
                ("db", 3_000),
                ("web", 9_000),
            ],
        );
        let (short, long) = (Duration::from_nanos(1_000), Duration::from_nanos(7_500));
        let counts = read.counts(&[short, long], 9_000);
        assert_eq!(counts.get(short, "web"), Some(1));
        assert_eq!(counts.get(short, "db"), Some(0));
        assert_eq!(
            counts.get(long, "web"),
            Some(2),
            "1_000 is out of the window"
        );
        assert_eq!(counts.get(long, "db"), Some(1));
    }

    #[test]
    fn exits_are_read_again_when_the_events_moved_or_the_window_reaches_back() {
        let read = exits(4, 1_000, &[]);
        assert!(read.covers(4, 1_000));
        assert!(
            read.covers(4, 5_000),
            "a later window start is in what was read"
        );
        assert!(!read.covers(5, 5_000), "an event stored or trimmed since");
        assert!(
            !read.covers(4, 500),
            "the window reaches before what was read"
        );
        assert!(!ExitTimes::default().covers(0, 0), "never read");
    }
}
