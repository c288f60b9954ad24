//! Disk usage: each container's writable layer, its volumes and its log file,
//! and the filesystem holding Docker's data root. Walks are slow on big
//! trees, so they run on their own cadence, off the collection path, each
//! bounded in entries and time: a huge layer yields a lower bound marked
//! `truncated`, never a stalled collector.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jaga_engine::ContainerDetails;
use jaga_model::{ContainerId, DataRootUsage, FsUsage, VolumeUsage};

/// The walk limits of one pass.
#[derive(Debug, Clone, Copy)]
pub struct WalkBudget {
    pub max_entries: u64,
    pub max_time: Duration,
}

/// What a walk found: bytes on disk (allocated blocks, as `du` counts, hard
/// links once), entries visited, and whether a budget cut it short.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkResult {
    pub bytes: u64,
    pub entries: u64,
    pub truncated: bool,
}

/// Disk usage below `root`, not following symlinks nor crossing into other
/// filesystems. Entries that vanish or cannot be read while walking are
/// skipped and counted in `unreadable`.
pub fn disk_usage(root: &Path, budget: WalkBudget, unreadable: &mut u64) -> io::Result<WalkResult> {
    let started = Instant::now();
    let top = std::fs::symlink_metadata(root)?;
    let device = top.dev();
    let mut seen_links: HashSet<(u64, u64)> = HashSet::new();
    let mut result = WalkResult {
        bytes: top.blocks() * 512,
        entries: 1,
        truncated: false,
    };
    let mut pending: Vec<PathBuf> = if top.is_dir() {
        vec![root.to_path_buf()]
    } else {
        Vec::new()
    };
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(_) => {
                *unreadable += 1;
                continue;
            }
        };
        for entry in entries {
            if result.entries >= budget.max_entries
                || (result.entries.is_multiple_of(1024) && started.elapsed() >= budget.max_time)
            {
                result.truncated = true;
                return Ok(result);
            }
            let Ok(entry) = entry else {
                *unreadable += 1;
                continue;
            };
            let Ok(meta) = entry.metadata() else {
                *unreadable += 1;
                continue;
            };
            result.entries += 1;
            if meta.dev() != device {
                continue;
            }
            if meta.nlink() > 1 && !meta.is_dir() && !seen_links.insert((meta.dev(), meta.ino())) {
                continue;
            }
            result.bytes += meta.blocks() * 512;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(result)
}

/// Results of the latest pass, read by the collector for each snapshot.
#[derive(Debug, Default)]
pub struct FsState {
    pub containers: HashMap<ContainerId, FsUsage>,
    pub data_root: Option<DataRootUsage>,
    /// Paths that could not be measured, since start (for `jaga_errors_total`).
    pub errors_total: u64,
}

pub type SharedFsState = Arc<Mutex<FsState>>;

pub fn lock(state: &SharedFsState) -> std::sync::MutexGuard<'_, FsState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One pass over the given containers. Paths are joined under `host_root`.
pub fn measure_pass(
    host_root: &Path,
    data_root: &Path,
    containers: &[ContainerDetails],
    budget: WalkBudget,
    now_unix_ms: i64,
) -> (HashMap<ContainerId, FsUsage>, Option<DataRootUsage>, u64) {
    let mut errors = 0u64;
    let mut unreadable = 0u64;
    let mut measured = HashMap::with_capacity(containers.len());
    for details in containers {
        let mut usage = FsUsage {
            measured_unix_ms: now_unix_ms,
            ..FsUsage::default()
        };
        if let Some(upper) = &details.upper_dir {
            match disk_usage(&under(host_root, upper), budget, &mut unreadable) {
                Ok(walk) => {
                    usage.writable_layer_bytes = Some(walk.bytes);
                    usage.truncated |= walk.truncated;
                    if walk.truncated {
                        tracing::debug!(container = %details.container.name, entries = walk.entries, "writable layer walk hit its budget");
                    }
                }
                Err(error) => {
                    errors += 1;
                    tracing::debug!(container = %details.container.name, path = %upper.display(), %error, "cannot measure writable layer");
                }
            }
        }
        for mount in details.mounts.iter().filter(|m| m.kind == "volume") {
            match disk_usage(&under(host_root, &mount.source), budget, &mut unreadable) {
                Ok(walk) => {
                    usage.truncated |= walk.truncated;
                    usage.volumes.push(VolumeUsage {
                        name: mount.name.clone(),
                        destination: mount.destination.clone(),
                        bytes: walk.bytes,
                    });
                }
                Err(error) => {
                    errors += 1;
                    tracing::debug!(container = %details.container.name, volume = %mount.name, %error, "cannot measure volume");
                }
            }
        }
        if let Some(log) = &details.log_path {
            match std::fs::metadata(under(host_root, log)) {
                Ok(meta) => usage.log_file_bytes = Some(meta.len()),
                // No log file yet (nothing written) is not an error.
                Err(e) if e.kind() == io::ErrorKind::NotFound => usage.log_file_bytes = Some(0),
                Err(error) => {
                    errors += 1;
                    tracing::debug!(container = %details.container.name, path = %log.display(), %error, "cannot read log file size");
                }
            }
        }
        measured.insert(details.container.id.clone(), usage);
    }
    let root_usage = match data_root_usage(host_root, data_root) {
        Ok(usage) => Some(usage),
        Err(error) => {
            errors += 1;
            tracing::warn!(path = %data_root.display(), %error, "cannot read usage of Docker's data root filesystem");
            None
        }
    };
    (measured, root_usage, errors)
}

/// `statvfs` of the data root, and the device it is mounted from.
pub fn data_root_usage(host_root: &Path, data_root: &Path) -> io::Result<DataRootUsage> {
    let path = under(host_root, data_root);
    let stat = rustix::fs::statvfs(&path).map_err(io::Error::from)?;
    let fragment = stat.f_frsize.max(1);
    let capacity = stat.f_blocks.saturating_mul(fragment);
    let free = stat.f_bfree.saturating_mul(fragment);
    let available = stat.f_bavail.saturating_mul(fragment);
    let mountinfo = jaga_cgroup::host_mountinfo(host_root)
        .map(|(_, text)| text)
        .unwrap_or_default();
    Ok(DataRootUsage {
        path: data_root.display().to_string(),
        device: mount_source(&mountinfo, data_root).unwrap_or_default(),
        capacity_bytes: capacity,
        used_bytes: capacity.saturating_sub(free),
        available_bytes: available,
    })
}

/// The source device of the mount holding `path`: the mount point that is
/// the longest prefix of it, from the host's mountinfo.
pub fn mount_source(mountinfo: &str, path: &Path) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(mount_point) = fields.get(4) else {
            continue;
        };
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let Some(source) = fields.get(dash + 2) else {
            continue;
        };
        if path.starts_with(mount_point) {
            let len = mount_point.len();
            if best.as_ref().is_none_or(|(best_len, _)| len >= *best_len) {
                best = Some((len, (*source).to_owned()));
            }
        }
    }
    best.map(|(_, source)| source)
}

/// `path` (absolute on the host) as seen under `host_root`.
fn under(host_root: &Path, path: &Path) -> PathBuf {
    match path.strip_prefix("/") {
        Ok(relative) => host_root.join(relative),
        Err(_) => host_root.join(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_entries: u64) -> WalkBudget {
        WalkBudget {
            max_entries,
            max_time: Duration::from_secs(60),
        }
    }

    #[test]
    fn counts_allocated_blocks_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 100_000]).unwrap();
        std::fs::hard_link(dir.path().join("sub/a"), dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let mut unreadable = 0;
        let walk = disk_usage(dir.path(), budget(1000), &mut unreadable).unwrap();
        let file_blocks = std::fs::metadata(dir.path().join("b")).unwrap().blocks() * 512;
        let dir_blocks = std::fs::metadata(dir.path()).unwrap().blocks() * 512
            + std::fs::metadata(dir.path().join("sub")).unwrap().blocks() * 512;
        let link_blocks = std::fs::symlink_metadata(dir.path().join("link"))
            .unwrap()
            .blocks()
            * 512;
        assert_eq!(walk.bytes, file_blocks + dir_blocks + link_blocks);
        assert!(file_blocks >= 100_000);
        assert_eq!(walk.entries, 5);
        assert!(!walk.truncated);
        assert_eq!(unreadable, 0);
    }

    #[test]
    fn budget_truncates() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..50 {
            std::fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
        }
        let mut unreadable = 0;
        let walk = disk_usage(dir.path(), budget(10), &mut unreadable).unwrap();
        assert!(walk.truncated);
        assert_eq!(walk.entries, 10);
    }

    #[test]
    fn missing_root_is_an_error() {
        let mut unreadable = 0;
        assert!(disk_usage(Path::new("/nonexistent/jaga"), budget(10), &mut unreadable).is_err());
    }

    #[test]
    fn mount_source_takes_the_longest_prefix() {
        let mountinfo = "22 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n\
                         30 22 0:40 / /var/lib/docker rw - xfs /dev/vdb rw\n\
                         31 22 0:41 / /var/lib/dockerish rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_source(mountinfo, Path::new("/var/lib/docker")).as_deref(),
            Some("/dev/vdb")
        );
        assert_eq!(
            mount_source(mountinfo, Path::new("/srv")).as_deref(),
            Some("/dev/vda1")
        );
    }
}
