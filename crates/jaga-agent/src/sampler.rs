//! Readings of one container: its cgroups found from its init PID, cached
//! per container, and read in one pass.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use jaga_cgroup::{CgroupError, CgroupReader, ContainerCgroups};
use jaga_model::{ContainerId, ContainerRef, HostCounters, Sample};

/// Reads containers' cgroups and /proc under a host root ("/" normally).
pub struct Sampler {
    root: PathBuf,
    reader: CgroupReader,
    /// Resolved cgroup directories by container, with the pid they were
    /// found from: a restart brings a new pid. Shared, not copied: the
    /// CPU counter of every container is looked up each second.
    cgroups: Mutex<HashMap<ContainerId, (u32, Arc<ContainerCgroups>)>>,
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
                let replaced = self
                    .lock()
                    .insert(container.id.clone(), (pid, Arc::clone(&cgroups)));
                if let Some((_, before)) = replaced {
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
            .filter(|(cached_pid, _)| *cached_pid == pid)
            .map(|(_, cgroups)| Arc::clone(cgroups))
    }

    /// The previous reading again, stamped now, when the container's CPU
    /// counter has not moved since it: one small read instead of a dozen.
    /// `None` when it moved, or on any doubt (the full read tells why).
    pub fn unchanged_since(&self, container: &ContainerRef, previous: &Sample) -> Option<Sample> {
        let pid = container.pid?;
        let cgroups = self.cached(container, pid)?;
        let usage = self.reader.read_cpu_usage_ns(&cgroups).ok()?;
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
        self.lock().retain(|id, (pid, cgroups)| {
            let keep = current(id, *pid);
            if !keep {
                gone.push(Arc::clone(cgroups));
            }
            keep
        });
        for cgroups in gone {
            cgroups.release_handles();
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ContainerId, (u32, Arc<ContainerCgroups>)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.cgroups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
