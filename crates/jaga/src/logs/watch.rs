//! The log source of `jaga serve`: follows the json-file logs, analyses
//! each message, and stores the alerts with the file's checkpoint.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use jaga_config::LogsConfig;
use jaga_engine::Engine;
use jaga_logs::{Skip, StartAt, TailConfig, Tailer};
use jaga_model::{AlertAgent, EventContainer, LogStats};
use jaga_store::EventStore;
use tokio::sync::{watch, Notify};

use super::engine_source::{self, EngineLine, EngineSources};
use super::{alerts_for, Analyzer};

pub type SharedLogStats = Arc<Mutex<LogStats>>;

pub struct LogWatch {
    pub engine: Arc<Engine>,
    pub store: Arc<EventStore>,
    pub config: LogsConfig,
    pub analyzer: Analyzer,
    pub agent: AlertAgent,
    pub min_level: u8,
    pub stats: SharedLogStats,
    pub alerts_written: Arc<Notify>,
}

impl LogWatch {
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let start_at = if self.config.read_from == "beginning" {
            StartAt::Beginning
        } else {
            StartAt::End
        };
        let mut tailer = Tailer::new(
            self.config.paths.clone(),
            start_at,
            TailConfig {
                max_message_bytes: self.config.max_message_bytes,
                ..TailConfig::default()
            },
        );
        let mut containers: HashMap<String, EventContainer> = HashMap::new();
        let (engine_tx, mut engine_rx) = tokio::sync::mpsc::channel::<EngineLine>(10_000);
        let mut sources = EngineSources::default();
        let mut last_discovery: Option<std::time::Instant> = None;
        let mut ticker = tokio::time::interval(self.config.poll);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            // Containers on other log drivers, every 2 s.
            if last_discovery.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(2)) {
                let first = last_discovery.is_none();
                last_discovery = Some(std::time::Instant::now());
                let store = Arc::clone(&self.store);
                let mut since = |id: &str| -> Option<i64> {
                    store
                        .log_checkpoint(&engine_source::location(id))
                        .ok()
                        .flatten()
                        .map(|(_, nanos)| (nanos / 1_000_000_000) as i64)
                };
                sources
                    .discover(&self.engine, &engine_tx, &shutdown, &mut since, first)
                    .await;
            }
            let mut engine_lines: Vec<EngineLine> = Vec::new();
            while let Ok(line) = engine_rx.try_recv() {
                engine_lines.push(line);
                if engine_lines.len() >= 10_000 {
                    break;
                }
            }
            let store = Arc::clone(&self.store);
            let batches = tokio::task::block_in_place(|| {
                tailer.poll(&mut |path: &Path| match store.log_checkpoint(&path.display().to_string()) {
                    Ok(checkpoint) => checkpoint,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read log checkpoint; reading the file from its start");
                        None
                    }
                })
            });
            // Names of containers seen for the first time.
            let ids: Vec<String> = batches
                .iter()
                .map(|b| container_id_of(&b.path))
                .chain(engine_lines.iter().map(|l| l.container_id.clone()))
                .collect();
            for id in ids {
                if !id.is_empty() && !containers.contains_key(&id) {
                    let container = match self.engine.inspect(&id).await {
                        Ok(c) => EventContainer {
                            id: c.id.to_string(),
                            name: c.name.clone(),
                            image: c.image.clone(),
                            compose_project: c.labels.get("com.docker.compose.project").cloned(),
                            compose_service: c.labels.get("com.docker.compose.service").cloned(),
                            labels: c.labels.clone(),
                            runtime: None,
                        },
                        Err(_) => EventContainer {
                            id: id.clone(),
                            name: id.chars().take(12).collect(),
                            ..EventContainer::default()
                        },
                    };
                    containers.insert(id, container);
                }
            }
            let mut new_alerts = 0usize;
            tokio::task::block_in_place(|| {
                // Lines through the Engine, grouped by container, in order.
                let mut by_container: Vec<(String, Vec<&EngineLine>)> = Vec::new();
                for line in &engine_lines {
                    match by_container
                        .iter_mut()
                        .find(|(id, _)| *id == line.container_id)
                    {
                        Some((_, list)) => list.push(line),
                        None => by_container.push((line.container_id.clone(), vec![line])),
                    }
                }
                for (id, lines) in by_container {
                    let container = containers.get(&id);
                    let location = engine_source::location(&id);
                    let mut alerts = Vec::new();
                    let mut last = 0i64;
                    for line in &lines {
                        let log_time_ms = line.time_nano / 1_000_000;
                        let name = container.map(|c| c.name.as_str());
                        let (fields, matches) = self.analyzer.analyze(
                            &line.text,
                            name,
                            (log_time_ms / 1000).max(0) as u64,
                        );
                        alerts.extend(alerts_for(
                            &fields,
                            &matches,
                            container,
                            &location,
                            log_time_ms,
                            &line.text,
                            &self.agent,
                            self.min_level,
                        ));
                        last = last.max(line.time_nano);
                    }
                    match self
                        .store
                        .record_log_batch(&location, 0, last.max(0) as u64, &alerts)
                    {
                        Ok(n) => new_alerts += n,
                        Err(error) => {
                            tracing::warn!(%error, container = %id, "cannot store log alerts")
                        }
                    }
                    let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                    stats.messages_total += lines.len() as u64;
                }
                for batch in &batches {
                    let id = container_id_of(&batch.path);
                    let container = containers.get(&id);
                    let location = batch.path.display().to_string();
                    let mut alerts = Vec::new();
                    for message in &batch.messages {
                        let log_time_ms = chrono::DateTime::parse_from_rfc3339(&message.time)
                            .map(|t| t.timestamp_millis())
                            .unwrap_or_else(|_| crate::clock::unix_secs() * 1000);
                        let now_secs = (log_time_ms / 1000).max(0) as u64;
                        let name = container.map(|c| c.name.as_str());
                        let (fields, matches) =
                            self.analyzer.analyze(&message.text, name, now_secs);
                        alerts.extend(alerts_for(
                            &fields,
                            &matches,
                            container,
                            &location,
                            log_time_ms,
                            &message.text,
                            &self.agent,
                            self.min_level,
                        ));
                    }
                    match self.store.record_log_batch(
                        &location,
                        batch.inode,
                        batch.checkpoint,
                        &alerts,
                    ) {
                        Ok(n) => new_alerts += n,
                        Err(error) => {
                            tracing::warn!(%error, path = %location, "cannot store log alerts; the lines will be read again")
                        }
                    }
                    let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                    stats.messages_total += batch.messages.len() as u64;
                    for skip in &batch.skipped {
                        let reason = match skip {
                            Skip::NotJson => "not_json",
                            Skip::InvalidUtf8 => "invalid_utf8",
                            Skip::TooLong => "too_long",
                            Skip::Truncated => "truncated",
                        };
                        let counter = stats.skipped_total.entry(reason.to_owned()).or_default();
                        if *counter == 0 {
                            tracing::warn!(path = %location, reason, "skipped a log line (logged once per reason)");
                        }
                        *counter += 1;
                    }
                }
            });
            // Forget the names of containers no longer followed (removed):
            // the map would otherwise grow with every container ever seen.
            let followed = tailer.followed();
            let with_file: HashSet<String> = followed.iter().map(|p| container_id_of(p)).collect();
            containers.retain(|id, _| with_file.contains(id) || sources.follows(id));
            {
                let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                stats.files_followed = followed.len() as u64;
                stats.alerts_total += new_alerts as u64;
            }
            if new_alerts > 0 {
                self.alerts_written.notify_one();
            }
        }
    }
}

/// `/var/lib/docker/containers/<id>/<id>-json.log` → `<id>`.
fn container_id_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_default()
}
