//! The collection loop of `jaga serve`: keeps the inventory of running
//! containers (a full list on start and every `resync`, Docker events in
//! between), reads every container's cgroups each interval, publishes a
//! [`Snapshot`] for `/metrics` and the API, and writes history points.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use jaga_cgroup::CgroupError;
use jaga_engine::{ContainerDetails, Engine, EngineError};
use jaga_model::{
    AgentStats, ContainerId, ContainerSnapshot, ContainerState, HistoryPoint, MachineInfo, Snapshot,
};
use jaga_store::HistoryStore;
use tokio::sync::{mpsc, watch};

use super::figures::{history_point, window_long_enough};
use super::filesystem::{self, SharedFsState};
use crate::clock::unix_ms;
use crate::sampler::Sampler;
use crate::stats_entry::Reading;

const ENGINE_CONCURRENCY: usize = 8;
/// How often complete minutes are rolled up and old history trimmed.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);
/// How often the store's container rows get their `last_seen` refreshed.
const METADATA_EVERY: Duration = Duration::from_secs(60);
/// How long an idle container's memory, block I/O, PIDs and network figures
/// may be taken from its last full reading: what changes them without the
/// container's own CPU (reclaim, packets nobody reads, `docker update`,
/// which also brings a new full read) is seen within this. cAdvisor's
/// dynamic housekeeping reads an unchanged container as rarely as every
/// 60 s (`--max_housekeeping_interval`), all of it, CPU included; at 10 s
/// these reads were a fifth of the agent's work at 100 idle containers.
const IDLE_FULL_READ_EVERY: Duration = Duration::from_secs(30);

/// What the events follower tells the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryNotice {
    /// This container changed: inspect it again.
    Changed(ContainerId),
    /// Events may have been missed (the stream broke): list everything again.
    Resync,
}

/// Reads the process monitor's figures at each collection.
pub type ProcessStatsSource = std::sync::Arc<dyn Fn() -> jaga_model::ProcessStats + Send + Sync>;

pub struct Collector {
    pub engine: Arc<Engine>,
    pub sampler: Arc<Sampler>,
    pub store: Arc<HistoryStore>,
    pub host_root: PathBuf,
    pub machine: MachineInfo,
    pub interval: Duration,
    pub resync: Duration,
    pub fs_state: SharedFsState,
    pub details_tx: watch::Sender<Arc<Vec<ContainerDetails>>>,
    pub snapshot_tx: watch::Sender<Arc<Snapshot>>,
    pub notices: mpsc::UnboundedReceiver<InventoryNotice>,
    /// The event listener's figures, for `jaga_*` metrics and `/healthz`.
    pub listener: Option<crate::sources::docker_events::listener::SharedListenerStats>,
    pub logs: Option<crate::sources::logs::watch::SharedLogStats>,
    /// Reads the process monitor's figures; `None` when `[process]` is off.
    pub process: Option<ProcessStatsSource>,
}

struct Tracked {
    details: ContainerDetails,
    cgroup_path: String,
    previous: Option<Reading>,
    figures: Option<HistoryPoint>,
    /// `measured_unix_ms` of the filesystem walk last put into a point.
    disk_measured_unix_ms: i64,
    last_seen_unix: i64,
    /// When every file was last read; `None` forces a full read (a new
    /// container, or one inspected again after an event).
    full_read_at: Option<Instant>,
    /// `details.container` as last published, shared by the snapshots
    /// until it changes.
    published: Option<Arc<jaga_model::ContainerRef>>,
}

struct State {
    tracked: BTreeMap<ContainerId, Tracked>,
    agent: AgentStats,
    /// Shared by every container of the snapshot, which would otherwise
    /// copy the map a hundred times a second.
    devices: Arc<BTreeMap<String, String>>,
    devices_read: Option<Instant>,
    last_resync: Option<Instant>,
    resync_requested: bool,
    changed: HashSet<ContainerId>,
    last_maintenance: Instant,
    last_metadata: Instant,
    /// Containers that left since the last metadata write, with their state.
    departed: Vec<jaga_model::ContainerRef>,
    /// Containers the Engine lists that are not running, as last inspected
    /// (metric rules ask whether one that should run is not).
    stopped: BTreeMap<ContainerId, jaga_model::ContainerRef>,
}

impl Collector {
    /// Runs until `shutdown` turns true; the pass in hand is finished first.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut state = State {
            tracked: BTreeMap::new(),
            agent: AgentStats {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started_unix: unix_ms() / 1000,
                ..AgentStats::default()
            },
            devices: Arc::default(),
            devices_read: None,
            last_resync: None,
            resync_requested: true,
            changed: HashSet::new(),
            last_maintenance: Instant::now(),
            last_metadata: Instant::now(),
            departed: Vec::new(),
            stopped: BTreeMap::new(),
        };
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            self.pass(&mut state).await;
        }
        // Metadata of what is tracked, so a restart lists it as recent.
        let containers: Vec<_> = state
            .tracked
            .values()
            .map(|t| t.details.container.clone())
            .collect();
        if let Err(error) = self.store.upsert_containers(&containers, unix_ms()) {
            tracing::warn!(%error, "cannot record container metadata at shutdown");
        }
    }

    async fn pass(&mut self, state: &mut State) {
        let started = Instant::now();
        while let Ok(notice) = self.notices.try_recv() {
            match notice {
                InventoryNotice::Changed(id) => {
                    state.changed.insert(id);
                }
                InventoryNotice::Resync => state.resync_requested = true,
            }
        }
        let resync_due = state
            .last_resync
            .is_none_or(|at| at.elapsed() >= self.resync);
        let inventory_changed = if state.resync_requested || resync_due {
            self.resync(state).await
        } else if !state.changed.is_empty() {
            self.refresh_changed(state).await
        } else {
            false
        };
        if inventory_changed {
            let details: Vec<ContainerDetails> =
                state.tracked.values().map(|t| t.details.clone()).collect();
            self.details_tx.send_replace(Arc::new(details));
        }

        // One hand-over of this worker per pass: each `block_in_place` moves
        // the runtime to another thread and back.
        let written =
            tokio::task::block_in_place(|| self.sample_and_write(state, inventory_changed));
        match written {
            Ok(n) => state.agent.history_points_written_total += n as u64,
            Err(error) => {
                count(&mut state.agent, "history");
                tracing::warn!(%error, "cannot write history");
            }
        }
        let now = unix_ms();

        if state.last_maintenance.elapsed() >= MAINTENANCE_EVERY {
            state.last_maintenance = Instant::now();
            let store = Arc::clone(&self.store);
            // Off the collection path: a trim of a week of rollups may take a while.
            let maintenance = tokio::task::spawn_blocking(move || store.trim(unix_ms()));
            tokio::spawn(async move {
                match maintenance.await {
                    Ok(Ok(report)) => tracing::debug!(?report, "history rolled up and trimmed"),
                    Ok(Err(error)) => tracing::warn!(%error, "cannot roll up or trim history"),
                    Err(error) => tracing::warn!(%error, "history maintenance stopped"),
                }
            });
        }

        state.agent.collections_total += 1;
        let took = started.elapsed().as_secs_f64();
        state.agent.last_collection_seconds = took;
        state.agent.collection_seconds_sum += took;
        self.publish(state, now);
    }

    /// Reads every tracked container and stores the points of this pass,
    /// with the containers' metadata when it is due. Blocks on files and
    /// SQLite. Returns the points written.
    fn sample_and_write(
        &self,
        state: &mut State,
        inventory_changed: bool,
    ) -> Result<usize, jaga_store::StoreError> {
        let sampled = self.sample_all(state);
        self.refresh_devices(state);
        self.attach_disk_usage(state, &sampled);
        let points: Vec<(ContainerId, HistoryPoint)> = state
            .tracked
            .iter()
            .filter_map(|(id, t)| {
                t.figures
                    .filter(|f| sampled.contains(id) && f.unix_ms > 0)
                    .map(|f| (id.clone(), f))
            })
            .collect();
        let write_metadata = inventory_changed
            || !state.departed.is_empty()
            || state.last_metadata.elapsed() >= METADATA_EVERY;
        let mut metadata: Vec<jaga_model::ContainerRef> = std::mem::take(&mut state.departed);
        if write_metadata {
            metadata.extend(state.tracked.values().map(|t| t.details.container.clone()));
            state.last_metadata = Instant::now();
        }
        if !metadata.is_empty() {
            self.store.upsert_containers(&metadata, unix_ms())?;
        }
        self.store.write_points(&points)
    }

    /// Lists all containers and inspects the ones not known yet or whose
    /// state changed. Returns whether the inventory changed.
    async fn resync(&self, state: &mut State) -> bool {
        let listed = match self.engine.list_containers(true).await {
            Ok(listed) => listed,
            Err(error) => {
                count(&mut state.agent, "engine");
                tracing::warn!(%error, "cannot list containers; keeping the last inventory");
                return false;
            }
        };
        state.resync_requested = false;
        state.last_resync = Some(Instant::now());
        let listed_ids: HashSet<&ContainerId> = listed.iter().map(|l| &l.id).collect();
        let gone: Vec<ContainerId> = state
            .tracked
            .keys()
            .filter(|id| !listed_ids.contains(id))
            .cloned()
            .collect();
        let mut changed = !gone.is_empty();
        for id in gone {
            depart(state, &id, ContainerState::Exited);
        }
        state.stopped.retain(|id, _| listed_ids.contains(id));
        let mut to_inspect: Vec<ContainerId> = listed
            .iter()
            .filter(|l| {
                let known = state.tracked.get(&l.id).map(|t| t.details.container.state);
                known.or_else(|| state.stopped.get(&l.id).map(|c| c.state)) != Some(l.state)
            })
            .map(|l| l.id.clone())
            .collect();
        to_inspect.extend(state.changed.drain());
        to_inspect.sort();
        to_inspect.dedup();
        changed |= !to_inspect.is_empty();
        self.inspect_into(state, to_inspect).await;
        changed
    }

    async fn refresh_changed(&self, state: &mut State) -> bool {
        let ids: Vec<ContainerId> = state.changed.drain().collect();
        self.inspect_into(state, ids).await;
        true
    }

    async fn inspect_into(&self, state: &mut State, ids: Vec<ContainerId>) {
        let engine = &self.engine;
        let results: Vec<(ContainerId, Result<ContainerDetails, EngineError>)> = stream::iter(ids)
            .map(|id| async move {
                let result = engine.inspect_details(id.as_str()).await;
                (id, result)
            })
            .buffer_unordered(ENGINE_CONCURRENCY)
            .collect()
            .await;
        for (id, result) in results {
            match result {
                Ok(details) if details.container.state.has_processes() => {
                    let Some(pid) = details.container.pid else {
                        depart(state, &id, details.container.state);
                        state.stopped.insert(id, details.container);
                        continue;
                    };
                    state.stopped.remove(&id);
                    let cgroup_path = match self.sampler.reader().cgroup_name(pid) {
                        Ok(path) => path,
                        Err(error) => {
                            tracing::debug!(container = %details.container.name, %error, "cannot read cgroup name");
                            String::new()
                        }
                    };
                    let previous = state
                        .tracked
                        .remove(&id)
                        .filter(|t| t.details.container.pid == Some(pid));
                    let (previous, figures, disk_measured, last_seen) = previous
                        .map(|t| {
                            (
                                t.previous,
                                t.figures,
                                t.disk_measured_unix_ms,
                                t.last_seen_unix,
                            )
                        })
                        .unwrap_or((None, None, 0, 0));
                    tracing::debug!(container = %details.container.name, pid, "tracking container");
                    state.tracked.insert(
                        id,
                        Tracked {
                            details,
                            cgroup_path,
                            previous,
                            figures,
                            disk_measured_unix_ms: disk_measured,
                            last_seen_unix: last_seen,
                            full_read_at: None,
                            published: None,
                        },
                    );
                }
                Ok(details) => {
                    depart(state, &id, details.container.state);
                    state.stopped.insert(id, details.container);
                }
                Err(e) if e.is_no_such_container() => {
                    depart(state, &id, ContainerState::Exited);
                    state.stopped.remove(&id);
                }
                Err(error) => {
                    count(&mut state.agent, "engine");
                    tracing::warn!(container = %id.short(), %error, "cannot inspect container");
                    // Try again on the next pass.
                    state.changed.insert(id);
                }
            }
        }
    }

    /// Reads every tracked container; returns the ids read this pass.
    fn sample_all(&self, state: &mut State) -> HashSet<ContainerId> {
        // Departed containers' cgroup files are closed here, first, so a
        // failed host read below cannot keep them open.
        let tracked = &state.tracked;
        self.sampler.retain(|id, pid| {
            tracked
                .get(id)
                .is_some_and(|t| t.details.container.pid == Some(pid))
        });
        let mut sampled = HashSet::with_capacity(state.tracked.len());
        let host = match self.sampler.host_counters() {
            Ok(host) => host,
            Err(error) => {
                count(&mut state.agent, "cgroup");
                tracing::warn!(%error, "cannot read host CPU and memory counters");
                return sampled;
            }
        };
        let mut errors: Vec<(&'static str, ContainerId)> = Vec::new();
        let mut idle = 0u64;
        for (id, tracked) in state.tracked.iter_mut() {
            // cAdvisor's dynamic housekeeping: a container whose CPU counter
            // has not moved did nothing that changes its other counters, so
            // only that counter is read, and everything else now and then.
            let unchanged = tracked
                .full_read_at
                .filter(|at| at.elapsed() < IDLE_FULL_READ_EVERY)
                .and(tracked.previous.as_ref())
                .and_then(|previous| {
                    self.sampler
                        .unchanged_since(&tracked.details.container, &previous.sample)
                });
            let result = match unchanged {
                Some(sample) => {
                    idle += 1;
                    Ok(sample)
                }
                None => {
                    let result = self.sampler.sample(&tracked.details.container);
                    tracked.full_read_at = result.is_ok().then(Instant::now);
                    result
                }
            };
            match result {
                Ok(sample) => {
                    let current = Reading { sample, host };
                    let sliver = tracked
                        .previous
                        .as_ref()
                        .is_some_and(|p| !window_long_enough(p, &current, self.interval));
                    if sliver {
                        // The figures wait for the next pass.
                        tracked.last_seen_unix = current.sample.unix_ms / 1000;
                        continue;
                    }
                    tracked.figures = tracked
                        .previous
                        .as_ref()
                        .map(|previous| history_point(previous, &current));
                    tracked.last_seen_unix = current.sample.unix_ms / 1000;
                    tracked.previous = Some(current);
                    sampled.insert(id.clone());
                }
                Err(error) => {
                    tracked.previous = None;
                    tracked.figures = None;
                    let kind = if is_gone(&error) {
                        "container_gone"
                    } else {
                        tracing::debug!(container = %tracked.details.container.name, %error, "cannot read cgroups");
                        "cgroup"
                    };
                    errors.push((kind, id.clone()));
                }
            }
        }
        state.agent.idle_samples_total += idle;
        for (kind, id) in errors {
            count(&mut state.agent, kind);
            // Stopped or restarted between two passes: look again.
            state.changed.insert(id);
        }
        sampled
    }

    /// Block device names for the `device` label; re-read at most once a
    /// minute when a device is not named yet.
    fn refresh_devices(&self, state: &mut State) {
        let stale = state
            .devices_read
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
        if !stale {
            return;
        }
        let unnamed = || {
            state.tracked.values().any(|t| {
                t.previous.as_ref().is_some_and(|r| {
                    r.sample.block_io.iter().any(|d| {
                        !state
                            .devices
                            .contains_key(&format!("{}:{}", d.major, d.minor))
                    })
                })
            })
        };
        if state.devices_read.is_none() || unnamed() {
            state.devices_read = Some(Instant::now());
            if let Ok(text) = std::fs::read_to_string(self.host_root.join("proc/partitions")) {
                state.devices = Arc::new(jaga_cgroup::parse_partitions(&text));
            }
        }
    }

    /// Puts each sampled container's newest filesystem walk into the point
    /// of this pass (history and the live figures), once per walk.
    fn attach_disk_usage(&self, state: &mut State, sampled: &HashSet<ContainerId>) {
        let fs = filesystem::lock(&self.fs_state);
        for (id, tracked) in state.tracked.iter_mut() {
            if !sampled.contains(id) {
                continue;
            }
            attach_walk(
                tracked.figures.as_mut(),
                fs.containers.get(id),
                &mut tracked.disk_measured_unix_ms,
            );
        }
    }

    fn publish(&self, state: &mut State, now: i64) {
        let fs = filesystem::lock(&self.fs_state);
        let mut seen: BTreeMap<&str, u64> = BTreeMap::new();
        let containers: Vec<ContainerSnapshot> = state
            .tracked
            .iter_mut()
            .map(|(id, t)| {
                *seen.entry(t.details.container.state.as_str()).or_default() += 1;
                let sample = t.previous.as_ref().map(|r| r.sample.clone());
                let container = match &t.published {
                    Some(published) if **published == t.details.container => Arc::clone(published),
                    _ => Arc::clone(t.published.insert(Arc::new(t.details.container.clone()))),
                };
                ContainerSnapshot {
                    container,
                    cgroup_path: t.cgroup_path.clone(),
                    sample,
                    figures: t.figures,
                    fs: fs.containers.get(id).cloned(),
                    devices: Arc::clone(&state.devices),
                    last_seen_unix: t.last_seen_unix,
                }
            })
            .collect();
        state.agent.containers_seen = seen
            .into_iter()
            .map(|(state, n)| (state.to_owned(), n))
            .collect();
        state.agent.logs = self.logs.as_ref().map(|shared| {
            shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        });
        state.agent.process = self.process.as_ref().map(|read| read());
        state.agent.listener = self.listener.as_ref().map(|shared| {
            shared
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        });
        if fs.errors_total > 0 {
            state
                .agent
                .errors_total
                .insert("filesystem".to_owned(), fs.errors_total);
        }
        let snapshot = Snapshot {
            taken_unix_ms: now,
            machine: self.machine.clone(),
            data_root: fs.data_root.clone(),
            containers,
            stopped: state.stopped.values().cloned().collect(),
            agent: state.agent.clone(),
        };
        drop(fs);
        self.snapshot_tx.send_replace(Arc::new(snapshot));
    }
}

/// Sets the disk-usage series of `figures` from `walk` when that walk is
/// newer than the one last attached (`attached_ms`, moved on). The points
/// between two walks keep them missing: history stores NULL there, which
/// rollups and charts skip, rather than a 0 or a repeated value.
fn attach_walk(
    figures: Option<&mut HistoryPoint>,
    walk: Option<&jaga_model::FsUsage>,
    attached_ms: &mut i64,
) -> bool {
    let (Some(figures), Some(walk)) = (figures, walk) else {
        return false;
    };
    if walk.measured_unix_ms <= *attached_ms {
        return false;
    }
    figures.set_disk_usage(walk);
    *attached_ms = walk.measured_unix_ms;
    true
}

fn depart(state: &mut State, id: &ContainerId, new_state: ContainerState) {
    if let Some(tracked) = state.tracked.remove(id) {
        tracing::debug!(container = %tracked.details.container.name, state = new_state.as_str(), "container left");
        let mut container = tracked.details.container;
        container.state = new_state;
        container.pid = None;
        state.departed.push(container);
    }
}

fn is_gone(error: &CgroupError) -> bool {
    matches!(
        error,
        CgroupError::NoProcess | CgroupError::ProcessGone { .. } | CgroupError::CgroupGone { .. }
    )
}

fn count(agent: &mut AgentStats, kind: &str) {
    *agent.errors_total.entry(kind.to_owned()).or_default() += 1;
}

/// Follows container events and tells the collector what changed. When the
/// stream breaks (the daemon restarted), asks for a full resync and
/// reconnects with a growing pause, up to 30 s.
pub async fn follow_events(
    engine: Arc<Engine>,
    notices: mpsc::UnboundedSender<InventoryNotice>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        {
            let mut events = std::pin::pin!(engine.container_changes());
            loop {
                let next = tokio::select! {
                    next = events.next() => next,
                    _ = shutdown.changed() => return,
                };
                match next {
                    Some(Ok(change)) => {
                        backoff = Duration::from_secs(1);
                        if matters_for_inventory(&change.action) {
                            let _ = notices.send(InventoryNotice::Changed(change.id));
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "Docker event stream broke; will list containers again");
                        break;
                    }
                    None => {
                        tracing::info!("Docker event stream ended; will list containers again");
                        break;
                    }
                }
            }
        }
        if notices.send(InventoryNotice::Resync).is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Actions after which a container's state, process, name or health may differ.
fn matters_for_inventory(action: &str) -> bool {
    action.starts_with("health_status")
        || matches!(
            action,
            "start"
                | "restart"
                | "die"
                | "stop"
                | "kill"
                | "destroy"
                | "pause"
                | "unpause"
                | "rename"
                | "update"
                | "oom"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{FsUsage, FS_SERIES_START, SERIES_COUNT};

    #[test]
    fn a_walk_goes_into_one_point_and_the_points_after_it_stay_missing() {
        let walk = FsUsage {
            writable_layer_bytes: Some(8192),
            log_file_bytes: Some(10),
            measured_unix_ms: 5_000,
            ..FsUsage::default()
        };
        let fresh = || HistoryPoint {
            unix_ms: 6_000,
            values: [f64::NAN; SERIES_COUNT],
        };
        let mut attached = 0;
        let mut first = fresh();
        assert!(attach_walk(Some(&mut first), Some(&walk), &mut attached));
        assert_eq!(first.values[FS_SERIES_START], 8192.0);
        assert_eq!(attached, 5_000);

        let mut second = fresh();
        assert!(!attach_walk(Some(&mut second), Some(&walk), &mut attached));
        assert!(second.values[FS_SERIES_START].is_nan());

        let newer = FsUsage {
            writable_layer_bytes: Some(16384),
            measured_unix_ms: 65_000,
            ..walk
        };
        let mut third = fresh();
        assert!(!attach_walk(None, Some(&newer), &mut attached));
        assert_eq!(attached, 5_000, "no point: the walk waits for one");
        assert!(attach_walk(Some(&mut third), Some(&newer), &mut attached));
        assert_eq!(third.values[FS_SERIES_START], 16384.0);
    }
}
