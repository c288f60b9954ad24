//! Open handles to the cgroup and `/proc` files read every pass.
//!
//! Opening `/sys/fs/cgroup/memory/docker/<id>/memory.stat` walks six path
//! components and allocates a kernfs open file; profiling `jaga serve` with
//! 100 containers showed open, close and the size probe of
//! `fs::read_to_string` taking over half of its CPU. These files are
//! seq_files: a read at offset 0 makes the kernel produce them afresh, so a
//! handle kept open and read with `pread(…, 0)` gives the same text without
//! the walk.
//!
//! A handle that fails (its cgroup was removed: `ENODEV`; its process
//! exited: `ESRCH`) is dropped and the caller's path is opened anew, so
//! errors are classified exactly as without the cache. When a container
//! goes, its owner calls [`release_under`] with its cgroup directories: an
//! open file of a removed cgroup keeps a descriptor and pins the dying
//! cgroup in the kernel. As a backstop, handles unused for [`IDLE`] are
//! closed on the next read of any file, and at most a quarter of the
//! process's file limit is held, so the cache cannot starve the rest of the
//! agent of descriptors.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Close handles not read for this long (containers that went away
/// without [`release_under`]). Longer than the collector's 30 s between
/// full reads of an idle container, whose files would otherwise be closed
/// and opened again each time.
const IDLE: Duration = Duration::from_secs(120);
/// Look for idle handles at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

struct Handle {
    /// `None`: the file does not exist while its directory does (a controller
    /// file this kernel lacks); cgroup directories do not grow files later.
    file: Option<File>,
    last_used: Instant,
}

struct Handles {
    files: HashMap<PathBuf, Handle>,
    capacity: usize,
    last_sweep: Instant,
}

fn handles() -> &'static Mutex<Handles> {
    static HANDLES: OnceLock<Mutex<Handles>> = OnceLock::new();
    HANDLES.get_or_init(|| {
        Mutex::new(Handles {
            files: HashMap::new(),
            capacity: capacity_for_fd_limit(),
            last_sweep: Instant::now(),
        })
    })
}

fn capacity_for_fd_limit() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let soft = limit.current.unwrap_or(1024);
    usize::try_from(soft / 4).unwrap_or(256).clamp(64, 16_384)
}

/// The whole text of `path`, through a kept handle when there is one.
/// `Ok(None)`: the file does not exist but its directory does.
pub(crate) fn read_optional(path: &Path) -> io::Result<Option<String>> {
    let mut guard = handles().lock().unwrap_or_else(PoisonError::into_inner);
    let now = Instant::now();
    // Before the lookup: when only cached files are read (the host's
    // `/proc/stat` with no container left), this is the only sweep.
    if now.duration_since(guard.last_sweep) >= SWEEP_EVERY {
        guard.last_sweep = now;
        guard
            .files
            .retain(|_, handle| now.duration_since(handle.last_used) < IDLE);
    }
    if let Some(handle) = guard.files.get_mut(path) {
        let Some(file) = &handle.file else {
            handle.last_used = now;
            return Ok(None);
        };
        match read_whole(file) {
            Ok(text) => {
                handle.last_used = now;
                return Ok(Some(text));
            }
            // Stale: fall through and let a fresh open say what is wrong.
            Err(_) => {
                guard.files.remove(path);
            }
        }
    }
    let (file, text) = match File::open(path) {
        Ok(file) => {
            let text = read_whole(&file)?;
            (Some(file), Some(text))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir_exists = path
                .parent()
                .and_then(|dir| std::fs::metadata(dir).ok())
                .is_some_and(|meta| meta.is_dir());
            if !dir_exists {
                return Err(e);
            }
            (None, None)
        }
        Err(e) => return Err(e),
    };
    if guard.files.len() < guard.capacity {
        guard.files.insert(
            path.to_path_buf(),
            Handle {
                file,
                last_used: now,
            },
        );
    }
    Ok(text)
}

/// Closes the kept handles of files under any of `dirs` (a container's
/// cgroup directories, once it is gone). Returns how many were closed.
pub(crate) fn release_under(dirs: &[&Path]) -> usize {
    let mut guard = handles().lock().unwrap_or_else(PoisonError::into_inner);
    let before = guard.files.len();
    guard
        .files
        .retain(|path, _| !dirs.iter().any(|dir| path.starts_with(dir)));
    before - guard.files.len()
}

/// Like [`read_optional`], for files that must exist.
pub(crate) fn read_to_string(path: &Path) -> io::Result<String> {
    read_optional(path)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("'{}' does not exist", path.display()),
        )
    })
}

/// Opens afresh and reads the whole file, without the size probe of
/// `fs::read_to_string` (a `statx` that tells nothing for kernel files).
pub(crate) fn read_fresh(path: &Path) -> io::Result<String> {
    read_whole(&File::open(path)?)
}

/// Reads from offset 0 to the end with `pread`, leaving the file position
/// alone; a short read is the end (cgroup and `/proc` files give all they
/// have at once), so a small file costs one call. Most fit the stack
/// buffer and cost one allocation of their own size: a 4 KiB heap buffer
/// per read was a "large" request to glibc, which then merges every small
/// free chunk it keeps (`malloc_consolidate`, high in the profile).
pub(crate) fn read_whole(file: &File) -> io::Result<String> {
    let mut chunk = [0u8; 4096];
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let read = read_at(file, &mut chunk, buf.len() as u64)?;
        buf.extend_from_slice(&chunk[..read]);
        if read < chunk.len() {
            break;
        }
    }
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// One `pread` at `offset`, made again when a signal interrupted it.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rereads_see_new_content_and_removed_files_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.current");
        std::fs::write(&path, "4096\n").unwrap();
        assert_eq!(read_to_string(&path).unwrap(), "4096\n");
        // Rewritten in place (same inode): the kept handle reads the new text.
        std::fs::write(&path, "8192\n").unwrap();
        assert_eq!(read_to_string(&path).unwrap(), "8192\n");
        std::fs::remove_file(&path).unwrap();
        // A regular file stays readable through its handle once unlinked;
        // what matters is that a missing file that was never cached errors.
        let other = dir.path().join("absent");
        assert_eq!(
            read_to_string(&other).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn released_cgroup_files_are_closed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("docker/gone");
        let kept = dir.path().join("docker/kept");
        for cgroup in [&gone, &kept] {
            std::fs::create_dir_all(cgroup).unwrap();
            for file in ["memory.stat", "cpu.stat"] {
                std::fs::write(cgroup.join(file), "1\n").unwrap();
                read_to_string(&cgroup.join(file)).unwrap();
            }
        }
        // Remembered absent files are forgotten too.
        assert_eq!(read_optional(&gone.join("pids.max")).unwrap(), None);
        assert_eq!(release_under(&[&gone]), 3);
        assert_eq!(release_under(&[&gone]), 0);
        assert_eq!(release_under(&[&kept]), 2);
    }

    #[test]
    fn reads_files_larger_than_one_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.stat");
        let text: String = (0..2000).map(|i| format!("key{i} {i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_to_string(&path).unwrap(), text);
        assert_eq!(read_to_string(&path).unwrap(), text);
    }

    #[test]
    fn proc_files_are_fresh_on_every_read() {
        // /proc/self/stat changes as this thread runs: two reads through the
        // same handle differ in their CPU time or at least parse the same.
        let path = Path::new("/proc/self/stat");
        let first = read_to_string(path).unwrap();
        let second = read_to_string(path).unwrap();
        assert!(first.starts_with(&format!("{} ", std::process::id())));
        assert!(second.starts_with(&format!("{} ", std::process::id())));
    }

    #[test]
    fn absent_file_in_existing_dir_is_none_and_vanished_dir_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cgroup = dir.path().join("docker/abc");
        std::fs::create_dir_all(&cgroup).unwrap();
        let absent = cgroup.join("memory.memsw.usage_in_bytes");
        assert_eq!(read_optional(&absent).unwrap(), None);
        // Remembered: still None without touching the filesystem.
        assert_eq!(read_optional(&absent).unwrap(), None);
        let other = dir.path().join("gone/memory.stat");
        assert_eq!(
            read_optional(&other).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}
