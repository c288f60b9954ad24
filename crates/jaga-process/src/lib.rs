//! What runs inside containers, from what Linux already offers: the
//! process connector (fork, exec, exit over netlink), fanotify exec events
//! on each container's filesystem (the executable's path even for a
//! process gone before `/proc` is read), and a `/proc` poller where
//! neither is allowed. Each execution is attributed to its container from
//! `/proc/<pid>/cgroup` (or its parent's, for one already gone), and the
//! processes of every container are kept in a table (`jaga top`, CIS 5.6).
//!
//! No kernel module, no eBPF, no `unsafe`.

pub mod attribution;
pub mod connector;
pub mod fanotify;
pub mod monitor;
pub mod procfs;
pub mod table;

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::time::Duration;

pub use monitor::{Emit, ExecRecord, Mode, Monitor, MonitorConfig};
pub use table::{ProcessEntry, ProcessTable};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("proc connector unavailable: cannot {step}: {error}")]
    Connector {
        step: &'static str,
        error: std::io::Error,
    },
    #[error("fanotify unavailable: cannot {step}: {error}")]
    Fanotify {
        step: &'static str,
        error: std::io::Error,
    },
    #[error("cannot start the process monitor thread: {error}")]
    Thread { error: std::io::Error },
}

/// Waits until one of `fds` is readable or `timeout` passes.
pub(crate) fn wait_readable(fds: &[BorrowedFd<'_>], timeout: Duration) {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut polled: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .collect();
    let timeout = Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    // EINTR or an error: the caller reads (non-blocking) and comes back.
    let _ = rustix::event::poll(&mut polled, Some(&timeout));
}

/// One look at `/proc` under `root`: the processes of every container,
/// by container id (what `jaga audit` checks for CIS 5.6 without a
/// running agent).
pub fn scan_containers(root: &Path) -> std::io::Result<BTreeMap<String, Vec<ProcessEntry>>> {
    let proc = procfs::proc_dir(root);
    let mut found: BTreeMap<String, Vec<ProcessEntry>> = BTreeMap::new();
    for pid in procfs::list_pids(&proc)? {
        let read = procfs::read_process(&proc, pid);
        let Some(container_id) = read.container_id else {
            continue;
        };
        let stat = read.stat.as_ref();
        found
            .entry(container_id.clone())
            .or_default()
            .push(ProcessEntry {
                pid,
                ppid: stat.map_or(0, |s| s.ppid),
                container_id,
                exe: read.exe,
                args: read.args.unwrap_or_default(),
                cwd: read.cwd,
                uid: read.uid,
                tty: stat.is_some_and(|s| s.tty_nr != 0),
                comm: stat.map(|s| s.comm.clone()).unwrap_or_default(),
                start_ticks: stat.map_or(0, |s| s.start_ticks),
                started_unix_ms: 0,
            });
    }
    for processes in found.values_mut() {
        processes.sort_by_key(|p| p.pid);
    }
    Ok(found)
}
