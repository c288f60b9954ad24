//! Delivery of stored alerts to the `[[outputs]]`: one [`runner::Runner`]
//! per output, each with its own cursor over the alert sequence (see
//! `jaga_store`'s `delivery` module for why a cursor). Outputs themselves
//! are in `jaga-outputs`; adding one is a module there.

pub mod filter;
pub mod rate;
pub mod remote_write;
pub mod runner;
#[cfg(test)]
mod runner_tests;
pub mod status;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jaga_config::{Config, OutputConfig};
use jaga_model::{Alert, OutputStats};
use jaga_outputs::{Heartbeat, Output};
use jaga_store::{EventStore, Sequenced};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::supervise::{Supervisor, STALL_AFTER};
use runner::{Runner, RunnerSettings};
use status::OutputStatus;

/// An output that cannot be set up from its entry.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up output '{name}' (type {kind}): {source}")]
pub struct OutputSetupError {
    pub name: String,
    pub kind: &'static str,
    #[source]
    pub source: jaga_outputs::BuildError,
}

/// The output one `[[outputs]]` entry describes, its secrets read.
pub fn build_output(
    entry: &OutputConfig,
    base_dir: &Path,
) -> Result<Arc<dyn Output>, OutputSetupError> {
    jaga_outputs::build(&entry.settings, base_dir).map_err(|source| OutputSetupError {
        name: entry.name.clone(),
        kind: entry.settings.kind(),
        source,
    })
}

struct Entry {
    settings: RunnerSettings,
    output: Arc<dyn Output>,
    status: Arc<OutputStatus>,
}

/// Every output in effect and how its delivery goes.
pub struct Outputs {
    entries: Vec<Entry>,
    store: Arc<EventStore>,
    /// Exporters shown beside the outputs (remote write).
    exporters: Vec<Arc<OutputStatus>>,
    /// When the outputs were built: the agent's uptime in heartbeats.
    started: Instant,
}

impl Outputs {
    /// Builds the outputs of `config` (the implied alerts file included);
    /// relative paths are under `base_dir`. Secrets are read now.
    pub fn build(
        config: &Config,
        base_dir: &Path,
        store: Arc<EventStore>,
    ) -> Result<Self, OutputSetupError> {
        let mut entries = Vec::new();
        for entry in config.outputs_in_effect() {
            let output = build_output(&entry, base_dir)?;
            entries.push(Entry {
                settings: RunnerSettings::of(&entry),
                status: Arc::new(OutputStatus::new(&entry.name, entry.settings.kind())),
                output,
            });
        }
        Ok(Self {
            entries,
            store,
            exporters: Vec::new(),
            started: Instant::now(),
        })
    }

    /// Shows an exporter's status beside the outputs'.
    pub fn show_exporter(&mut self, status: Arc<OutputStatus>) {
        self.exporters.push(status);
    }

    /// The names of the outputs, whose cursors hold alerts back from trimming.
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| e.settings.name.clone())
            .collect()
    }

    /// A runner per output, supervised as `output/<name>`, and for the
    /// outputs that take heartbeats a task sending `agent`'s, supervised
    /// as `heartbeat/<name>`.
    pub fn spawn(
        &self,
        supervisor: &Arc<Supervisor>,
        latest: &watch::Receiver<i64>,
        shutdown: &watch::Receiver<bool>,
        agent: &str,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = Vec::new();
        for entry in &self.entries {
            let runner = Runner {
                settings: entry.settings.clone(),
                output: Arc::clone(&entry.output),
                store: Arc::clone(&self.store),
                latest: latest.clone(),
                status: Arc::clone(&entry.status),
            };
            tasks.push(supervisor.spawn(
                format!("output/{}", entry.settings.name),
                STALL_AFTER,
                runner.run(shutdown.clone()),
            ));
            if let Some(every) = entry.output.heartbeat_every() {
                tasks.push(supervisor.spawn(
                    format!("heartbeat/{}", entry.settings.name),
                    STALL_AFTER,
                    heartbeats(
                        Arc::clone(&entry.output),
                        every,
                        agent.to_owned(),
                        self.started,
                        shutdown.clone(),
                    ),
                ));
            }
        }
        tasks
    }

    pub fn stats(&self) -> Vec<OutputStats> {
        self.entries
            .iter()
            .map(|e| &e.status)
            .chain(&self.exporters)
            .map(|status| status.snapshot())
            .collect()
    }

    /// Each alert's delivery state per output: `delivered`, `pending`,
    /// `dead_lettered`, `dropped`, `filtered` (the output does not take
    /// it) or `before_output` (stored before the output first ran).
    /// Blocking (reads the store).
    pub fn delivery(&self, alerts: &[Sequenced<Alert>]) -> Vec<BTreeMap<String, String>> {
        let mut states = vec![BTreeMap::new(); alerts.len()];
        let (Some(low), Some(high)) = (
            alerts.iter().map(|a| a.seq).min(),
            alerts.iter().map(|a| a.seq).max(),
        ) else {
            return states;
        };
        let cursors = self.store.output_cursors().unwrap_or_default();
        for entry in &self.entries {
            let name = &entry.settings.name;
            let cursor = cursors.iter().find(|c| c.name == *name);
            let letters = self
                .store
                .dead_letters(Some(name), low, high, 10_000)
                .unwrap_or_default();
            for (alert, state) in alerts.iter().zip(states.iter_mut()) {
                let shown = match cursor {
                    _ if !entry.settings.filter.takes(&alert.record) => "filtered",
                    None => "pending",
                    Some(c) if alert.seq <= c.start_seq => "before_output",
                    Some(c) => match letters.iter().find(|l| l.holds(alert.seq)) {
                        Some(l) if l.kind == jaga_store::DeadLetterKind::Dropped => "dropped",
                        Some(_) => "dead_lettered",
                        None if alert.seq <= c.seq => "delivered",
                        None => "pending",
                    },
                };
                state.insert(name.clone(), shown.to_owned());
            }
        }
        states
    }
}

/// Sends `output` a heartbeat every `every` (the first at once) until
/// `shutdown`. One that fails is only logged: the next makes it good.
async fn heartbeats(
    output: Arc<dyn Output>,
    every: Duration,
    agent: String,
    started: Instant,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let beat = Heartbeat {
            agent: agent.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_s: started.elapsed().as_secs(),
        };
        match output.heartbeat(&beat).await {
            Ok(receipt) => tracing::trace!(answer = %receipt.answer, "heartbeat sent"),
            Err(error) => tracing::debug!(%error, "heartbeat not sent"),
        }
    }
}

impl jaga_server::OutputsView for Outputs {
    fn outputs(&self) -> Vec<OutputStats> {
        self.stats()
    }

    fn delivery(&self, alerts: &[Sequenced<Alert>]) -> Vec<BTreeMap<String, String>> {
        Outputs::delivery(self, alerts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_store::{Consumed, DeadLetter, DeadLetterKind};

    fn alert(id: &str, level: u8) -> Alert {
        Alert {
            id: id.to_owned(),
            timestamp: "2024-01-01T00:00:00.000Z".to_owned(),
            rule: jaga_model::AlertRule {
                id: "r".to_owned(),
                level,
                description: String::new(),
                groups: Vec::new(),
                mitre: Vec::new(),
            },
            agent: Default::default(),
            container: None,
            data: Default::default(),
            location: String::new(),
            event: None,
            episode: None,
        }
    }

    #[test]
    fn each_alert_shows_its_delivery_state_per_output() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let config = jaga_config::parse(
            "[[outputs]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/x\"\nmin_level = 5\n",
            Path::new("jaga.toml"),
        )
        .unwrap();
        let outputs = Outputs::build(&config, dir.path(), Arc::clone(&store)).unwrap();
        assert_eq!(outputs.names(), ["hook", "alerts_file"]);
        store
            .commit(&[alert("old", 9)], &Consumed::Nothing)
            .unwrap();
        store.open_output_cursor("hook", "webhook").unwrap();
        let raised: Vec<Alert> = ["a", "b", "c", "d"]
            .iter()
            .map(|id| alert(id, if *id == "b" { 3 } else { 9 }))
            .collect();
        store.commit(&raised, &Consumed::Nothing).unwrap();
        let letter = DeadLetter {
            output: "hook".to_owned(),
            kind: DeadLetterKind::Refused,
            first_seq: 4,
            last_seq: 4,
            seqs: vec![4],
            alert_ids: vec!["c".to_owned()],
            count: 1,
            at_ms: 0,
            error: "HTTP 400".to_owned(),
            answer: String::new(),
        };
        store.move_output_cursor("hook", 4, Some(&letter)).unwrap();
        let all = store
            .alerts(&jaga_store::AlertFilter {
                after_seq: Some(0),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let states: Vec<(String, String)> = outputs
            .delivery(&all)
            .into_iter()
            .map(|s| (s["hook"].clone(), s["alerts_file"].clone()))
            .collect();
        let hook: Vec<&str> = states.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            hook,
            [
                "before_output",
                "delivered",
                "filtered",
                "dead_lettered",
                "pending"
            ]
        );
        // The alerts file's runner has not opened its cursor yet.
        assert!(states.iter().all(|s| s.1 == "pending"));
    }
}
