//! Wakes the holder thread when a log directory changes, with inotify: a
//! new container directory, a new log file, a rotation (Docker renames the
//! live file to `.1` and creates a new one), a log deleted (its container
//! removed: the reader lets it go at once). A container flooding from its
//! first line is then held from its first file, and a rotation is seen as
//! it happens rather than at the next look. Writes do not wake it (no
//! `IN_MODIFY`): only names coming and going.
//!
//! Watched: each pattern's base (the directory before its first wildcard)
//! and every directory matching the pattern's parent (for the default
//! pattern, each container's directory). If inotify is unavailable or out of
//! watches, the holder falls back to looking at a fixed period.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;

/// What woke the holder.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Paths created, moved in or deleted in watched directories.
    pub names: Vec<PathBuf>,
    /// A directory appeared, or events were dropped: look everywhere again.
    pub rescan: bool,
}

pub(crate) struct DirWatcher {
    fd: OwnedFd,
    dirs: HashMap<i32, PathBuf>,
    by_path: HashMap<PathBuf, i32>,
    buffer: Vec<std::mem::MaybeUninit<u8>>,
    /// `add_watch` failed (usually `max_user_watches`): said once.
    warned: bool,
}

impl DirWatcher {
    pub fn new() -> Option<Self> {
        match inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK) {
            Ok(fd) => Some(Self {
                fd,
                dirs: HashMap::new(),
                by_path: HashMap::new(),
                buffer: vec![std::mem::MaybeUninit::uninit(); 64 * 1024],
                warned: false,
            }),
            Err(error) => {
                tracing::warn!(%error, "cannot use inotify; new and rotated log files are looked for at a fixed period");
                None
            }
        }
    }

    /// Watches `dir` for names created, moved in or deleted, if not yet.
    pub fn watch(&mut self, dir: &Path) {
        if self.by_path.contains_key(dir) {
            return;
        }
        let flags = WatchFlags::CREATE
            | WatchFlags::MOVED_TO
            | WatchFlags::DELETE
            | WatchFlags::ONLYDIR
            | WatchFlags::DONT_FOLLOW;
        match inotify::add_watch(&self.fd, dir, flags) {
            Ok(wd) => {
                self.dirs.insert(wd, dir.to_path_buf());
                self.by_path.insert(dir.to_path_buf(), wd);
            }
            // Gone meanwhile, or not a directory: nothing to watch.
            Err(Errno::NOENT | Errno::NOTDIR) => {}
            Err(error) => {
                if !std::mem::replace(&mut self.warned, true) {
                    tracing::warn!(dir = %dir.display(), %error, "cannot watch a log directory (raise fs.inotify.max_user_watches?); its new files are found at a fixed period");
                }
            }
        }
    }

    /// Waits up to `timeout` for changes; an empty result when none came.
    pub fn wait(&mut self, timeout: Duration) -> Changes {
        let mut changes = Changes::default();
        let timespec = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match poll(&mut fds, Some(&timespec)) {
            Ok(0) => return changes,
            Ok(_) => {}
            Err(Errno::INTR) => return changes,
            Err(_) => {
                // Should not happen on an inotify descriptor; do not spin.
                std::thread::sleep(timeout);
                changes.rescan = true;
                return changes;
            }
        }
        let mut reader = inotify::Reader::new(&self.fd, &mut self.buffer);
        let mut ignored = Vec::new();
        loop {
            let event = match reader.next() {
                Ok(event) => event,
                Err(Errno::AGAIN | Errno::INTR) => break,
                Err(_) => {
                    changes.rescan = true;
                    break;
                }
            };
            let flags = event.events();
            if flags.contains(ReadFlags::QUEUE_OVERFLOW) {
                changes.rescan = true;
            }
            if flags.contains(ReadFlags::IGNORED) {
                // The directory is gone (its container removed).
                ignored.push(event.wd());
                continue;
            }
            // A new directory may hold logs; one deleted (a container
            // removed) leaves only its logs to let go, named by their own
            // events.
            if flags.contains(ReadFlags::ISDIR) && !flags.contains(ReadFlags::DELETE) {
                changes.rescan = true;
            }
            if let (Some(dir), Some(name)) = (self.dirs.get(&event.wd()), event.file_name()) {
                changes
                    .names
                    .push(dir.join(OsStr::from_bytes(name.to_bytes())));
            }
        }
        for wd in ignored {
            if let Some(dir) = self.dirs.remove(&wd) {
                self.by_path.remove(&dir);
            }
        }
        changes
    }

    /// Every directory asked for is watched: events alone tell what changed.
    pub fn complete(&self) -> bool {
        !self.warned
    }

    /// Directories watched, for the tests.
    #[cfg(test)]
    pub fn watched(&self) -> usize {
        self.dirs.len()
    }
}

/// The live log a name in a log directory belongs to: the name itself, or
/// the live file of a rotated generation (`x-json.log.3`, `x-json.log.2.gz`).
pub(crate) fn live_of(name: &Path) -> PathBuf {
    let text = name.as_os_str().as_bytes();
    let text = text.strip_suffix(b".gz").unwrap_or(text);
    if let Some(dot) = text.iter().rposition(|&b| b == b'.') {
        let suffix = &text[dot + 1..];
        if !suffix.is_empty() && suffix.iter().all(u8::is_ascii_digit) {
            return PathBuf::from(OsStr::from_bytes(&text[..dot]));
        }
    }
    PathBuf::from(OsStr::from_bytes(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_names_belong_to_their_live_file() {
        for (name, live) in [
            ("/d/a-json.log", "/d/a-json.log"),
            ("/d/a-json.log.1", "/d/a-json.log"),
            ("/d/a-json.log.12", "/d/a-json.log"),
            ("/d/a-json.log.2.gz", "/d/a-json.log"),
            ("/d/a-json.log.tmp", "/d/a-json.log.tmp"),
        ] {
            assert_eq!(live_of(Path::new(name)), PathBuf::from(live), "{name}");
        }
    }

    #[test]
    fn a_new_file_and_a_new_directory_wake_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let mut watcher = DirWatcher::new().unwrap();
        watcher.watch(dir.path());
        assert_eq!(watcher.watched(), 1);
        assert!(watcher.wait(Duration::from_millis(1)).names.is_empty());
        std::fs::write(dir.path().join("a-json.log"), "").unwrap();
        let changes = watcher.wait(Duration::from_secs(5));
        assert_eq!(changes.names, vec![dir.path().join("a-json.log")]);
        assert!(!changes.rescan);
        std::fs::create_dir(dir.path().join("c")).unwrap();
        assert!(watcher.wait(Duration::from_secs(5)).rescan);
        // A removed directory's watch is dropped.
        let sub = dir.path().join("c");
        watcher.watch(&sub);
        assert_eq!(watcher.watched(), 2);
        std::fs::remove_dir(&sub).unwrap();
        let _ = watcher.wait(Duration::from_secs(5));
        assert_eq!(watcher.watched(), 1);
    }
}
