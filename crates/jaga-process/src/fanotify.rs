//! fanotify `FAN_OPEN_EXEC` on each container's root filesystem: the
//! kernel hands over an open descriptor of every file executed there, so
//! the executable's path is known even when the process is gone before
//! `/proc` is read. Needs CAP_SYS_ADMIN; a mark is per filesystem (each
//! container's overlay), so the host's own executions cost nothing.

use std::collections::HashMap;
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

pub struct ExecWatch {
    group: Fanotify,
    /// Device of a marked filesystem → the container it is the root of.
    marks: HashMap<u64, String>,
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
        })
    }

    /// Marks the filesystem `root` is on (a container's root, reached as
    /// `/proc/<pid>/root`) for `container_id`; `Ok(false)` when it already was.
    pub fn mark_root(&mut self, root: &Path, container_id: &str) -> Result<bool, ProcessError> {
        let stat = rustix::fs::stat(root).map_err(|errno| ProcessError::Fanotify {
            step: "stat a container's root",
            error: errno.into(),
        })?;
        let dev = stat.st_dev;
        if self
            .marks
            .get(&dev)
            .is_some_and(|known| known == container_id)
        {
            return Ok(false);
        }
        self.group
            .mark(
                MarkFlags::FAN_MARK_ADD | MarkFlags::FAN_MARK_FILESYSTEM,
                MaskFlags::FAN_OPEN_EXEC,
                rustix::fs::CWD,
                Some(root),
            )
            .map_err(|errno| ProcessError::Fanotify {
                step: "mark a container's filesystem",
                error: errno.into(),
            })?;
        if self.marks.len() >= MAX_MARKS {
            self.marks.clear();
        }
        self.marks.insert(dev, container_id.to_owned());
        Ok(true)
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
