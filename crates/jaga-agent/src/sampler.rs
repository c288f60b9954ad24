//! Readings of one container: its cgroups found from its init PID, cached
//! per container, and read in one pass.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jaga_cgroup::{CgroupError, CgroupReader, ContainerCgroups, CpuUsageFile};
use jaga_model::{ContainerId, ContainerRef, HostCounters, Sample};

/// Reads containers' cgroups and /proc under a host root ("/" normally).
pub struct Sampler {
    root: PathBuf,
    reader: CgroupReader,
    /// Resolved cgroup directories by container.
    cgroups: Mutex<HashMap<ContainerId, Cached>>,
}

/// What is kept of one container between readings.
struct Cached {
    /// The pid its cgroups were found from: a restart brings a new pid.
    pid: u32,
    /// Shared, not copied, with the reading in hand.
    cgroups: Arc<ContainerCgroups>,
    /// Its CPU counter, read every pass; opened at the first look.
    cpu_usage: Option<CpuUsageFile>,
}

impl Sampler {
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, CgroupError> {
        let root = root.into();
        let reader = CgroupReader::discover(&root)?;
        Ok(Self {
            root,
            reader,
            cgroups: Mutex::new(HashMap::new()),
        })
    }

    pub fn reader(&self) -> &CgroupReader {
        &self.reader
    }

    pub fn host_counters(&self) -> Result<HostCounters, CgroupError> {
        self.reader.read_host()
    }

    pub fn runtime_pid(&self, id: &ContainerId) -> Option<u32> {
        jaga_engine::runtime_init_pid(&self.root, id)
    }

    /// One reading of the container. It must have an init PID.
    pub fn sample(&self, container: &ContainerRef) -> Result<Sample, CgroupError> {
        let pid = container.pid.ok_or(CgroupError::NoProcess)?;
        let cgroups = match self.cached(container, pid) {
            Some(cgroups) => cgroups,
            None => {
                let cgroups = Arc::new(self.reader.container_cgroups(pid)?);
                let replaced = self.lock().insert(
                    container.id.clone(),
                    Cached {
                        pid,
                        cgroups: Arc::clone(&cgroups),
                        cpu_usage: None,
                    },
                );
                if let Some(Cached {
                    cgroups: before, ..
                }) = replaced
                {
                    // The same container under its previous pid.
                    before.release_handles();
                }
                cgroups
            }
        };
        let result = self
            .reader
            .read_sample(&cgroups, pid, container.uses_host_network());
        if result.is_err() {
            // The container went away or restarted: find its cgroups afresh
            // next time, and close what was kept open for the old ones.
            self.lock().remove(&container.id);
            cgroups.release_handles();
        }
        result
    }

    fn cached(&self, container: &ContainerRef, pid: u32) -> Option<Arc<ContainerCgroups>> {
        self.lock()
            .get(&container.id)
            .filter(|cached| cached.pid == pid)
            .map(|cached| Arc::clone(&cached.cgroups))
    }

    /// The previous reading again, stamped now, when the container's CPU
    /// counter has not moved since it: one small read instead of a dozen.
    /// `None` when it moved, or on any doubt (the full read tells why).
    pub fn unchanged_since(&self, container: &ContainerRef, previous: &Sample) -> Option<Sample> {
        let pid = container.pid?;
        let mut cache = self.lock();
        let cached = cache.get_mut(&container.id).filter(|c| c.pid == pid)?;
        if cached.cpu_usage.is_none() {
            cached.cpu_usage = self.reader.open_cpu_usage(&cached.cgroups).ok();
        }
        let usage = match cached.cpu_usage.as_ref()?.read_ns() {
            Ok(usage) => usage,
            Err(_) => {
                // Opened afresh next time, if the full read finds it alive.
                cached.cpu_usage = None;
                return None;
            }
        };
        drop(cache);
        (usage == previous.cpu.usage_total_ns).then(|| Sample {
            monotonic_ns: jaga_cgroup::monotonic_now_ns(),
            unix_ms: jaga_cgroup::unix_now_ms(),
            ..previous.clone()
        })
    }

    /// Forgets the (container, pid) pairs for which `current` is false (a
    /// container gone, or the pid before a restart) and closes their cgroup
    /// files, so neither the cache nor the open descriptors grow with churn.
    pub fn retain(&self, current: impl Fn(&ContainerId, u32) -> bool) {
        let mut gone = Vec::new();
        self.lock().retain(|id, cached| {
            let keep = current(id, cached.pid);
            if !keep {
                gone.push(Arc::clone(&cached.cgroups));
            }
            keep
        });
        for cgroups in gone {
            cgroups.release_handles();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContainerId, Cached>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.cgroups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
