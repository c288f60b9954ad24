//! File access with the error classification the readers need: a vanished
//! cgroup directory is told apart from a file the kernel simply does not
//! provide, and a vanished process from a broken `/proc`.

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{CgroupError, ParseError};

/// `ENODEV`: reading a file of a cgroup that was removed while open.
const ENODEV: i32 = 19;
/// `ESRCH`: reading `/proc/<pid>/...` of a process that exited while open.
const ESRCH: i32 = 3;

/// Reads a file inside a cgroup directory. `Ok(None)` when the file does not
/// exist but the directory does (a controller file this kernel or
/// configuration lacks); `CgroupGone` when the directory itself is gone.
pub(crate) fn read_cgroup_file(path: &Path) -> Result<Option<String>, CgroupError> {
    // `read_optional` only reports NotFound when the directory is gone too.
    crate::handles::read_optional(path).map_err(|err| classify(path, err))
}

/// The error of reading `path`, a file that every cgroup directory has:
/// its cgroup removed (`ENODEV` through an open file, or not found) is
/// `CgroupGone`.
pub(crate) fn classify(path: &Path, err: io::Error) -> CgroupError {
    if err.raw_os_error() == Some(ENODEV) || err.kind() == io::ErrorKind::NotFound {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return CgroupError::CgroupGone { path: dir };
    }
    CgroupError::Io {
        path: path.to_path_buf(),
        source: err,
    }
}

/// Like [`read_cgroup_file`], but the file must exist.
pub(crate) fn read_cgroup_required(path: &Path) -> Result<String, CgroupError> {
    read_cgroup_file(path)?.ok_or_else(|| CgroupError::Missing {
        path: path.to_path_buf(),
    })
}

/// Reads a file under `/proc/<pid>/`. A missing process is `ProcessGone`.
///
/// Opened afresh each time, never through a kept handle: a handle to
/// `/proc/<pid>/net/dev` would keep the network namespace of an exited
/// process alive and go on reading it.
pub(crate) fn read_pid_file(path: &Path, pid: u32) -> Result<String, CgroupError> {
    match crate::handles::read_fresh(path) {
        Ok(text) => Ok(text),
        Err(err) if err.kind() == io::ErrorKind::NotFound || err.raw_os_error() == Some(ESRCH) => {
            Err(CgroupError::ProcessGone { pid })
        }
        Err(err) => Err(CgroupError::Io {
            path: path.to_path_buf(),
            source: err,
        }),
    }
}

/// Outcome of reading a file under `/proc/<pid>/` that may legitimately be
/// unreadable (process gone, access refused).
pub(crate) enum PidFile {
    Text(String),
    Unavailable,
}

pub(crate) fn read_pid_file_lenient(path: &Path) -> Result<PidFile, CgroupError> {
    match crate::handles::read_fresh(path) {
        Ok(text) => Ok(PidFile::Text(text)),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) || err.raw_os_error() == Some(ESRCH) =>
        {
            Ok(PidFile::Unavailable)
        }
        Err(err) => Err(CgroupError::Io {
            path: path.to_path_buf(),
            source: err,
        }),
    }
}

/// Reads a host file such as `/proc/stat`; it must exist.
pub(crate) fn read_host_file(path: &Path) -> Result<String, CgroupError> {
    crate::handles::read_to_string(path).map_err(|err| {
        if err.kind() == io::ErrorKind::NotFound {
            CgroupError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            CgroupError::Io {
                path: path.to_path_buf(),
                source: err,
            }
        }
    })
}

/// Reads and parses a required cgroup file.
pub(crate) fn parse_required<T>(
    dir: &Path,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<T, CgroupError> {
    let path = dir.join(name);
    let text = read_cgroup_required(&path)?;
    parse(&text).map_err(|err| err.in_file(&path))
}

/// Reads and parses an optional cgroup file; `None` when it does not exist.
pub(crate) fn parse_optional<T>(
    dir: &Path,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, CgroupError> {
    let path = dir.join(name);
    match read_cgroup_file(&path)? {
        Some(text) => parse(&text).map(Some).map_err(|err| err.in_file(&path)),
        None => Ok(None),
    }
}

/// `root` joined with an absolute path from the kernel (`/sys/fs/cgroup`).
/// `Path::join` would replace `root` with an absolute argument.
pub(crate) fn under_root(root: &Path, absolute: &str) -> PathBuf {
    let relative = absolute.trim_start_matches('/');
    if relative.is_empty() {
        root.to_path_buf()
    } else {
        root.join(relative)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_in_existing_dir_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_cgroup_file(&dir.path().join("memory.swap.current"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn missing_dir_is_cgroup_gone() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("docker/abc");
        let err = read_cgroup_file(&gone.join("memory.stat")).unwrap_err();
        match err {
            CgroupError::CgroupGone { path } => assert_eq!(path, gone),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn required_missing_names_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_cgroup_required(&dir.path().join("memory.stat")).unwrap_err();
        assert!(matches!(err, CgroupError::Missing { .. }));
        assert!(err.to_string().contains("memory.stat"), "{err}");
    }

    #[test]
    fn under_root_keeps_root() {
        assert_eq!(
            under_root(Path::new("/fx"), "/sys/fs/cgroup"),
            PathBuf::from("/fx/sys/fs/cgroup")
        );
        assert_eq!(under_root(Path::new("/fx"), "/"), PathBuf::from("/fx"));
    }
}
