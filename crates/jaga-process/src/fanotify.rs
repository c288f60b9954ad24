//! fanotify `FAN_OPEN_EXEC` on each container's root filesystem: the
//! kernel hands over an open descriptor of every file executed there, so
//! the executable's path is known even when the process is gone before
//! `/proc` is read. Needs CAP_SYS_ADMIN; a mark is per filesystem (each
//! container's overlay), so the host's own executions cost nothing.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};

use crate::ProcessError;

/// One execution fanotify saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOpen {
    pub pid: u32,
    /// As the container sees it (`/tmp/x`): the descriptor's path.
    pub path: String,
    /// The container whose filesystem it is, when that filesystem was marked for it.
    pub container_id: Option<String>,
}

/// Most containers' filesystems remembered; beyond it the map starts over
/// (marks stay in the kernel; only the mapping is rebuilt as execs come).
const MAX_MARKS: usize = 65_536;

/// What [`ExecWatch::mark_root`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marked {
    New,
    Already,
    /// The root is on one of the host's filesystems: not marked.
    HostFilesystem,
}

/// The devices of the host's own root filesystem, never to be marked for a
/// container. Known from jaga's view of the host root (`/`, or `/host` in
/// a container) and, where readable, `/proc/1/root`: the latter alone is
/// not enough, since pid 1 may refuse it (a sandbox's init, a hardened
/// kernel), and without any of them nothing can be marked safely.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilesystems {
    devices: Vec<u64>,
}

impl HostFilesystems {
    pub fn of(root: &Path, proc: &Path) -> Self {
        let mut devices = Vec::new();
        for path in [root.to_path_buf(), proc.join("1/root")] {
            if let Ok(stat) = rustix::fs::stat(&path) {
                if !devices.contains(&stat.st_dev) {
                    devices.push(stat.st_dev);
                }
            }
        }
        Self { devices }
    }

    pub fn is_known(&self) -> bool {
        !self.devices.is_empty()
    }

    /// Unknown host filesystems hold everything: nothing is marked.
    pub fn contains(&self, dev: u64) -> bool {
        self.devices.is_empty() || self.devices.contains(&dev)
    }
}

pub struct ExecWatch {
    group: Fanotify,
    /// Device of a marked filesystem → the container it is the root of.
    marks: HashMap<u64, String>,
    /// Containers whose filesystem is marked.
    watched: HashSet<String>,
}

impl ExecWatch {
    pub fn open() -> Result<Self, ProcessError> {
        let group = Fanotify::init(
            InitFlags::FAN_CLASS_NOTIF | InitFlags::FAN_CLOEXEC | InitFlags::FAN_NONBLOCK,
            EventFFlags::O_RDONLY | EventFFlags::O_LARGEFILE | EventFFlags::O_CLOEXEC,
        )
        .map_err(|errno| ProcessError::Fanotify {
            step: "start a fanotify group",
            error: errno.into(),
        })?;
        Ok(Self {
            group,
            marks: HashMap::new(),
            watched: HashSet::new(),
        })
    }

    /// Marks the filesystem `root` is on (a container's root, reached as
    /// `/proc/<pid>/root`) for `container_id`. The root is opened once and
    /// both checked and marked through that descriptor: a process changes
    /// root while it starts (runc init pivots into the container's), and a
    /// second lookup of the path could land elsewhere.
    pub fn mark_root(
        &mut self,
        root: &Path,
        container_id: &str,
        host: &HostFilesystems,
    ) -> Result<Marked, ProcessError> {
        use rustix::fs::{Mode, OFlags};
        let dir = rustix::fs::open(
            root,
            // Not O_PATH: fanotify_mark refuses such a descriptor.
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| ProcessError::Fanotify {
            step: "open a container's root",
            error: errno.into(),
        })?;
        let dev = rustix::fs::fstat(&dir)
            .map_err(|errno| ProcessError::Fanotify {
                step: "stat a container's root",
                error: errno.into(),
            })?
            .st_dev;
        if host.contains(dev) {
            // Not yet in its own root (or a storage driver that keeps
            // containers in a host directory): marking would report every
            // execution on the host, and as this container's. A container
            // seen starting again is on a new filesystem, to be marked.
            self.watched.remove(container_id);
            return Ok(Marked::HostFilesystem);
        }
        if self
            .marks
            .get(&dev)
            .is_some_and(|known| known == container_id)
        {
            // Watched again: a runc init seen in the host's root took the
            // container for one restarting, and its filesystem stayed.
            self.watched.insert(container_id.to_owned());
            return Ok(Marked::Already);
        }
        self.group
            .mark(
                MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
                MaskFlags::FAN_OPEN_EXEC,
                &dir,
                None::<&Path>,
            )
            .map_err(|errno| ProcessError::Fanotify {
                step: "mark a container's filesystem",
                error: errno.into(),
            })?;
        if self.marks.len() >= MAX_MARKS {
            self.marks.clear();
            self.watched.clear();
        }
        self.marks.insert(dev, container_id.to_owned());
        self.watched.insert(container_id.to_owned());
        Ok(Marked::New)
    }

    /// The container's filesystem is marked (else its executions are not
    /// seen: the next one should try again).
    pub fn watches(&self, container_id: &str) -> bool {
        self.watched.contains(container_id)
    }

    pub fn marks(&self) -> usize {
        self.marks.len()
    }

    /// Reads every queued event into `out`; returns how many the kernel
    /// dropped (`FAN_Q_OVERFLOW`) or could not be read.
    pub fn drain(&self, out: &mut Vec<ExecOpen>) -> u64 {
        let mut lost = 0;
        loop {
            let events = match self.group.read_events() {
                Ok(events) if events.is_empty() => return lost,
                Ok(events) => events,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => return lost,
                Err(error) => {
                    tracing::debug!(%error, "cannot read fanotify events");
                    return lost + 1;
                }
            };
            for event in events {
                if event.mask().contains(MaskFlags::FAN_Q_OVERFLOW) || !event.check_version() {
                    lost += 1;
                    continue;
                }
                let Some(fd) = event.fd() else {
                    lost += 1;
                    continue;
                };
                let Ok(pid) = u32::try_from(event.pid()) else {
                    continue;
                };
                match self.describe(fd) {
                    Some((path, container_id)) => out.push(ExecOpen {
                        pid,
                        path,
                        container_id,
                    }),
                    None => lost += 1,
                }
                // The event's descriptor is closed when it drops.
            }
        }
    }

    fn describe(&self, fd: BorrowedFd<'_>) -> Option<(String, Option<String>)> {
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let dev = rustix::fs::fstat(fd).ok()?.st_dev;
        Some((
            path.to_string_lossy().into_owned(),
            self.marks.get(&dev).cloned(),
        ))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_of(path: &str) -> u64 {
        rustix::fs::stat(path).unwrap().st_dev
    }

    /// The sandbox this was found in refuses `/proc/1/root` even to root:
    /// the host's filesystem was then unknown, and marked for the first
    /// container whose `runc init` was seen before it changed root.
    #[test]
    fn the_host_filesystem_is_known_though_pid_1_refuses_its_root() {
        let empty_proc = tempfile::tempdir().unwrap();
        let host = HostFilesystems::of(Path::new("/"), empty_proc.path());
        assert!(host.is_known());
        assert!(host.contains(dev_of("/")));
        assert!(!host.contains(u64::MAX));
    }

    #[test]
    fn unknown_host_filesystems_hold_every_device() {
        let host = HostFilesystems::of(Path::new("/no/such/root"), Path::new("/no/such/proc"));
        assert!(!host.is_known());
        assert!(host.contains(dev_of("/")));
        assert!(host.contains(12345));
    }

    /// Needs CAP_SYS_ADMIN (the tests run as root).
    #[test]
    fn a_root_on_the_host_filesystem_is_never_marked() {
        let mut watch = ExecWatch::open().expect("fanotify (run the tests as root)");
        let host = HostFilesystems::of(Path::new("/"), Path::new("/proc"));
        let marked = watch.mark_root(Path::new("/"), "c1", &host).unwrap();
        assert_eq!(marked, Marked::HostFilesystem);
        assert_eq!(watch.marks(), 0);
        let marked = watch
            .mark_root(Path::new("/"), "c1", &HostFilesystems::default())
            .unwrap();
        assert_eq!(
            marked,
            Marked::HostFilesystem,
            "unknown host: nothing marked"
        );
        // Another filesystem (tmpfs) is marked once per container.
        assert_ne!(dev_of("/dev/shm"), dev_of("/"));
        let shm = Path::new("/dev/shm");
        assert!(!watch.watches("c1"));
        assert_eq!(watch.mark_root(shm, "c1", &host).unwrap(), Marked::New);
        assert!(watch.watches("c1"));
        assert_eq!(watch.mark_root(shm, "c1", &host).unwrap(), Marked::Already);
        assert_eq!(watch.mark_root(shm, "c2", &host).unwrap(), Marked::New);
        assert_eq!(watch.marks(), 1);
        // Seen in the host's root again (restarting): no longer watched.
        let marked = watch.mark_root(Path::new("/"), "c2", &host).unwrap();
        assert_eq!(marked, Marked::HostFilesystem);
        assert!(!watch.watches("c2"));
        // Its filesystem was still the same: watched again.
        assert_eq!(watch.mark_root(shm, "c2", &host).unwrap(), Marked::Already);
        assert!(watch.watches("c2"));
    }
}
