//! The log source of `jaga serve`: follows the json-file logs, analyses
//! each message, and stores the alerts with the file's checkpoint.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use jaga_config::LogsConfig;
use jaga_engine::{ContainerDetails, Engine};
use jaga_logs::{Batch, Checkpoint, Loss, StartAt, TailConfig, Tailer};
use jaga_model::{Alert, AlertAgent, EventContainer, LogStats};
use jaga_store::{Consumed, EventStore, LogCheckpoint};
use tokio::sync::watch;

use super::engine_source::{self, EngineLine, EngineSources};
use super::{alerts_for, Analyzer};
use crate::sink::AlertSink;

pub type SharedLogStats = Arc<Mutex<LogStats>>;

pub struct LogWatch {
    pub engine: Arc<Engine>,
    pub sink: Arc<AlertSink>,
    pub config: LogsConfig,
    pub analyzer: Analyzer,
    pub agent: AlertAgent,
    pub stats: SharedLogStats,
    /// The collector's containers: a change is when to look for containers
    /// on other log drivers.
    pub inventory: watch::Receiver<Arc<Vec<ContainerDetails>>>,
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
        // Rotations faster than the analysis: opened by a thread of their
        // own, which also wakes this loop for a new log, so that it is
        // checkpointed (and a crash after it counts what it loses) at once.
        let new_log = Arc::new(tokio::sync::Notify::new());
        let wake = Arc::clone(&new_log);
        tailer.hold_in_background(std::time::Duration::from_millis(50), move || {
            wake.notify_one()
        });
        let mut containers: HashMap<String, EventContainer> = HashMap::new();
        let (engine_tx, mut engine_rx) = tokio::sync::mpsc::channel::<EngineLine>(10_000);
        // Containers on other log drivers, looked for when the inventory
        // changes (and every 30 s), in a task of their own: a slow Engine
        // must not hold up reading the files.
        let (engine_followed_tx, mut engine_followed) = watch::channel(HashSet::new());
        tokio::spawn(discover_engine_sources(
            Arc::clone(&self.engine),
            Arc::clone(self.sink.store()),
            engine_tx,
            engine_followed_tx,
            self.inventory.clone(),
            shutdown.clone(),
        ));
        // Every log quiet and none read through the Engine: wait as long as
        // a quiet log's own poll period; with no log at all, until one comes.
        let mut quiet = false;
        let mut long_quiet = false;
        // The Engine sources' task still runs (and can wake this loop).
        let mut engine_sources_open = true;
        // More to read than one poll's budget: read on without waiting for
        // the tick, so a fast writer does not outrun Docker's rotation.
        let mut backlog = false;
        // Lines through the Engine whose alerts could not be stored yet.
        let mut engine_retry: Vec<EngineLine> = Vec::new();
        let mut store_failing = false;
        let mut last_forget = std::time::Instant::now();
        loop {
            if backlog {
                if !matches!(shutdown.has_changed(), Ok(false)) {
                    return;
                }
                tokio::task::yield_now().await;
            } else {
                let wait = if !quiet || !engine_followed.borrow_and_update().is_empty() {
                    self.config.poll
                } else if tailer.followed_count() == 0 {
                    // No log at all: a new one wakes this loop (the holder
                    // finds it, or the Engine sources change).
                    NOTHING_TO_FOLLOW_WAIT
                } else if long_quiet {
                    jaga_logs::LONG_QUIET_POLL_EVERY.max(self.config.poll)
                } else {
                    jaga_logs::QUIET_POLL_EVERY.max(self.config.poll)
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = new_log.notified() => {}
                    changed = engine_followed.changed(), if engine_sources_open => {
                        engine_sources_open = changed.is_ok();
                    }
                    _ = shutdown.changed() => return,
                }
            }
            let mut engine_lines: Vec<EngineLine> = std::mem::take(&mut engine_retry);
            while let Ok(line) = engine_rx.try_recv() {
                engine_lines.push(line);
                if engine_lines.len() >= 10_000 {
                    break;
                }
            }
            let store = Arc::clone(self.sink.store());
            let poll = tokio::task::block_in_place(|| {
                tailer.poll(&mut |path: &Path| match store.log_checkpoint(&path.display().to_string()) {
                    Ok(checkpoint) => checkpoint.map(|c| Checkpoint {
                        inode: c.inode,
                        offset: c.offset,
                        head_hash: c.head_hash,
                        seen_until_ns: c.seen_until_ns,
                        born_ns: c.born_ns,
                    }),
                    Err(error) => {
                        tracing::warn!(%error, "cannot read log checkpoint; reading the file from its start");
                        None
                    }
                })
            });
            let batches = &poll.batches;
            // Names of containers seen for the first time.
            let ids: Vec<String> = batches
                .iter()
                .map(|b| container_id_of(&b.path))
                .chain(engine_lines.iter().map(|l| l.container_id.clone()))
                .collect();
            for id in ids {
                if !id.is_empty() && !containers.contains_key(&id) {
                    let container = match self.engine.inspect(&id).await {
                        Ok(c) => EventContainer::of(&c),
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
            let mut failed = false;
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
                            0, // `[alerts] min_level` is the sink's to apply
                        ));
                        last = last.max(line.time_nano);
                    }
                    let checkpoint = LogCheckpoint {
                        offset: last.max(0) as u64,
                        ..LogCheckpoint::default()
                    };
                    let stored = self.commit(&location, checkpoint, alerts);
                    let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                    match stored {
                        Ok(n) => {
                            new_alerts += n;
                            stats.messages_total += lines.len() as u64;
                        }
                        Err(error) => {
                            stats.store_failures_total += 1;
                            failed = true;
                            if !store_failing {
                                tracing::warn!(%error, container = %id, "cannot store log alerts; the lines are kept and analysed again at the next poll");
                            }
                            // Bounded: a store down for long drops the oldest, counted.
                            let room = ENGINE_RETRY_MAX.saturating_sub(engine_retry.len());
                            let dropped = lines.len().saturating_sub(room);
                            if dropped > 0 {
                                stats.lines_lost_total += dropped as u64;
                                tracing::warn!(container = %id, lines = dropped, "log lines from the Engine dropped: the store has failed for too long");
                            }
                            engine_retry.extend(lines.iter().skip(dropped).map(|l| (*l).clone()));
                        }
                    }
                }
                // Batches that raised nothing (most of them: idle logs whose
                // checkpoint moved in time only) share one transaction.
                let mut quiet: Vec<(&Batch, String, LogCheckpoint)> = Vec::new();
                for batch in batches {
                    let id = container_id_of(&batch.path);
                    let alerts = self.alerts_of(batch, containers.get(&id));
                    let checkpoint = LogCheckpoint {
                        inode: batch.checkpoint.inode,
                        offset: batch.checkpoint.offset,
                        head_hash: batch.checkpoint.head_hash,
                        seen_until_ns: batch.checkpoint.seen_until_ns,
                        born_ns: batch.checkpoint.born_ns,
                    };
                    let location = batch.path.display().to_string();
                    if alerts.is_empty() {
                        quiet.push((batch, location, checkpoint));
                        continue;
                    }
                    let stored = self
                        .commit(&location, checkpoint, alerts)
                        .map(|n| vec![(batch, n)]);
                    failed |= self.settle(
                        &mut tailer,
                        stored,
                        &[batch],
                        &location,
                        store_failing,
                        &mut new_alerts,
                    );
                }
                if !quiet.is_empty() {
                    let rows: Vec<(&str, LogCheckpoint)> = quiet
                        .iter()
                        .map(|(_, location, c)| (location.as_str(), *c))
                        .collect();
                    let stored = self
                        .sink
                        .store()
                        .record_log_checkpoints(&rows)
                        .map(|()| quiet.iter().map(|(batch, ..)| (*batch, 0)).collect());
                    let batches: Vec<&Batch> = quiet.iter().map(|(batch, ..)| *batch).collect();
                    let what = format!("{} logs", batches.len());
                    failed |= self.settle(
                        &mut tailer,
                        stored,
                        &batches,
                        &what,
                        store_failing,
                        &mut new_alerts,
                    );
                }
                let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                for (path, skip) in &poll.refused {
                    *stats
                        .skipped_total
                        .entry(skip.reason().to_owned())
                        .or_default() += 1;
                    tracing::warn!(path = %path.display(), reason = skip.reason(), "log file refused: not a regular file, or reached through a symlink; it is not read");
                }
            });
            // Forget the names of containers no longer followed (removed):
            // the map would otherwise grow with every container ever seen.
            // Only when it holds more names than logs are followed, or now
            // and then: listing every log at each poll is most of an idle
            // poll's cost.
            let files_followed = tailer.followed_count();
            if containers.len() > files_followed || last_forget.elapsed() >= FORGET_EVERY {
                last_forget = std::time::Instant::now();
                let with_file: HashSet<String> = tailer
                    .followed()
                    .iter()
                    .map(|p| container_id_of(p))
                    .collect();
                let through_engine = engine_followed.borrow();
                containers.retain(|id, _| with_file.contains(id) || through_engine.contains(id));
            }
            {
                let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
                stats.files_followed = files_followed as u64;
                stats.alerts_total += new_alerts as u64;
                stats.rule_dfa_fallbacks_total = self.analyzer.rules.dfa_fallbacks();
            }
            if store_failing && !failed {
                tracing::info!("storing log alerts works again");
            }
            store_failing = failed;
            backlog = poll.backlog && !failed;
            quiet = poll.quiet && !failed && engine_retry.is_empty() && engine_rx.is_empty();
            long_quiet = quiet && poll.long_quiet;
        }
    }

    /// Moves the tailer on for batches stored, or back to their stored
    /// checkpoints when storing failed. `true` when it failed.
    fn settle(
        &self,
        tailer: &mut Tailer,
        stored: Result<Vec<(&Batch, usize)>, jaga_store::StoreError>,
        batches: &[&Batch],
        location: &str,
        store_failing: bool,
        new_alerts: &mut usize,
    ) -> bool {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        match stored {
            Ok(stored) => {
                for (batch, n) in stored {
                    tailer.commit(&batch.path);
                    *new_alerts += n;
                    count_batch(&mut stats, batch, &container_id_of(&batch.path));
                }
                false
            }
            Err(error) => {
                // Read again from the last stored checkpoint, so the lines
                // are analysed once the store works.
                for batch in batches {
                    tailer.rewind(&batch.path);
                }
                stats.store_failures_total += 1;
                if !store_failing {
                    tracing::warn!(%error, path = %location, "cannot store log alerts; the lines will be read again from the last stored checkpoint");
                }
                true
            }
        }
    }

    /// Stores a batch's alerts with its checkpoint: the new alerts.
    fn commit(
        &self,
        location: &str,
        checkpoint: LogCheckpoint,
        alerts: Vec<Alert>,
    ) -> Result<usize, jaga_store::StoreError> {
        let consumed = Consumed::LogBatch {
            location,
            checkpoint,
        };
        Ok(self.sink.commit(alerts, &consumed)?.new_alerts)
    }

    /// The alerts the messages of one file batch raise; their location is
    /// the live file's path whatever generation a line came from, so alert
    /// ids stay the same when a line is read again.
    fn alerts_of(&mut self, batch: &Batch, container: Option<&EventContainer>) -> Vec<Alert> {
        let location = batch.path.display().to_string();
        let mut alerts = Vec::new();
        for message in &batch.messages {
            let log_time_ms = chrono::DateTime::parse_from_rfc3339(&message.time)
                .map(|t| t.timestamp_millis())
                .unwrap_or_else(|_| crate::clock::unix_secs() * 1000);
            let now_secs = (log_time_ms / 1000).max(0) as u64;
            let name = container.map(|c| c.name.as_str());
            let (fields, matches) = self.analyzer.analyze(&message.text, name, now_secs);
            alerts.extend(alerts_for(
                &fields,
                &matches,
                container,
                &location,
                log_time_ms,
                &message.text,
                &self.agent,
                0, // `[alerts] min_level` is the sink's to apply
            ));
        }
        alerts
    }
}

/// Follows containers on other log drivers through the Engine, looking
/// for new ones when the collector's inventory changes (and every 30 s,
/// should a change be missed) until shutdown.
async fn discover_engine_sources(
    engine: Arc<Engine>,
    store: Arc<EventStore>,
    lines: tokio::sync::mpsc::Sender<EngineLine>,
    followed: watch::Sender<HashSet<String>>,
    mut inventory: watch::Receiver<Arc<Vec<ContainerDetails>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut inventory_open = true;
    let mut sources = EngineSources::default();
    let mut first = true;
    loop {
        let mut since = |id: &str| -> Option<i64> {
            store
                .log_checkpoint(&engine_source::location(id))
                .ok()
                .flatten()
                .map(|checkpoint| (checkpoint.offset / 1_000_000_000) as i64)
        };
        // The first look asks the Engine at once: the containers running
        // when the agent starts are followed from now on, one started a
        // moment later from its beginning (the collector's first inventory
        // may come after it). Later looks take the inventory; the Engine
        // again only when the collector is gone.
        let running =
            (!first && inventory_open).then(|| Arc::clone(&inventory.borrow_and_update()));
        sources
            .discover(
                &engine,
                running.as_deref().map(Vec::as_slice),
                &lines,
                &shutdown,
                &mut since,
                first,
            )
            .await;
        let ids = sources.followed_ids();
        // Only a change wakes the log loop.
        followed.send_if_modified(|current| {
            let changed = *current != ids;
            if changed {
                *current = ids;
            }
            changed
        });
        first = false;
        tokio::select! {
            changed = inventory.changed(), if inventory_open => inventory_open = changed.is_ok(),
            _ = tokio::time::sleep(ENGINE_SOURCES_LOOK_EVERY) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The longest wait of the log loop when no log is followed: only a safety
/// net, since a new log or Engine source wakes it.
const NOTHING_TO_FOLLOW_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// A look for containers on other log drivers without an inventory change.
const ENGINE_SOURCES_LOOK_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Most lines from the Engine held for a store that fails.
const ENGINE_RETRY_MAX: usize = 100_000;

/// Counts a stored batch: its messages, skipped lines and losses (each loss
/// logged with the container and the byte range).
fn count_batch(stats: &mut LogStats, batch: &Batch, container_id: &str) {
    stats.messages_total += batch.messages.len() as u64;
    for skip in &batch.skipped {
        let reason = skip.reason();
        let counter = stats.skipped_total.entry(reason.to_owned()).or_default();
        if *counter == 0 {
            tracing::warn!(path = %batch.path.display(), reason, "skipped a log line (logged once per reason)");
        }
        *counter += 1;
    }
    for loss in &batch.lost {
        stats.bytes_lost_total += loss.bytes;
        stats.lines_lost_total += loss.lines;
        log_loss(batch, loss, container_id);
    }
}

fn log_loss(batch: &Batch, loss: &Loss, container_id: &str) {
    let path = batch.path.display();
    let to = loss
        .to
        .map_or_else(|| "its end".to_owned(), |to| to.to_string());
    match loss.inode {
        Some(inode) => tracing::warn!(
            container_id, %path, inode, from = loss.from, %to, bytes = loss.bytes,
            lines = loss.lines, estimated = loss.estimated,
            "log lines lost: a rotated log file was deleted before it could be read"
        ),
        None => tracing::warn!(
            container_id, %path, bytes = loss.bytes, lines = loss.lines,
            "log lines lost: rotated log files came and went unseen (estimated from log times)"
        ),
    }
}

/// `/var/lib/docker/containers/<id>/<id>-json.log` → `<id>`.
/// How often the names of containers no longer followed are looked for
/// when nothing points to one.
const FORGET_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

fn container_id_of(path: &Path) -> String {
    path.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_default()
}
