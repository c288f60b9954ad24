//! Errors of the readers. Every message names the file (and line) it is about.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A pure parser's complaint about its input; the reader adds the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", LineLabel(*line))]
pub struct ParseError {
    /// 1-based line number, `None` when the problem concerns the whole text
    /// (a key that never appears, say).
    pub line: Option<usize>,
    pub reason: String,
}

impl ParseError {
    pub(crate) fn at(line: usize, reason: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            reason: reason.into(),
        }
    }

    pub(crate) fn whole(reason: impl Into<String>) -> Self {
        Self {
            line: None,
            reason: reason.into(),
        }
    }

    /// Attaches the file the text came from.
    pub fn in_file(self, path: impl Into<PathBuf>) -> CgroupError {
        CgroupError::Malformed {
            path: path.into(),
            line: self.line,
            reason: self.reason,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read '{}': {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file the kernel always provides for this controller is absent while
    /// its directory is still there.
    #[error("'{}' does not exist", path.display())]
    Missing { path: PathBuf },

    #[error("malformed '{}'{}: {reason}", path.display(), LineSuffix(*line))]
    Malformed {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },

    /// The container has no process to read from (not running).
    #[error("container has no running process to read cgroups from")]
    NoProcess,

    /// `/proc/<pid>` does not exist (the process exited).
    #[error("process {pid} is gone: '/proc/{pid}' does not exist")]
    ProcessGone { pid: u32 },

    /// The cgroup directory disappeared, normally because the container was
    /// removed while it was being read.
    #[error("cgroup directory '{}' is gone", path.display())]
    CgroupGone { path: PathBuf },

    /// `mountinfo` shows neither a v1 cpu/cpuacct/memory hierarchy nor a cgroup2 mount.
    #[error("no cgroup v1 or v2 mount found in '{}'", path.display())]
    NoCgroupMount { path: PathBuf },

    /// A v1 controller jaga needs is not mounted.
    #[error("cgroup v1 controller '{controller}' is not mounted according to '{}'", path.display())]
    ControllerNotMounted {
        controller: &'static str,
        path: PathBuf,
    },

    /// `/proc/<pid>/cgroup` has no line for a controller jaga needs.
    #[error("'{}' has no line for controller '{controller}'", path.display())]
    ControllerNotListed {
        controller: &'static str,
        path: PathBuf,
    },

    /// The process's cgroup is not reachable under the mount (its path lies
    /// outside the mount's root, or contains `..`).
    #[error("cgroup path '{cgroup_path}' from '{}' is not reachable under mount '{mount_point}' (mount root '{mount_root}')", path.display())]
    OutsideMount {
        path: PathBuf,
        cgroup_path: String,
        mount_point: String,
        mount_root: String,
    },
}

struct LineLabel(Option<usize>);

struct LineSuffix(Option<usize>);

impl fmt::Display for LineSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, " line {line}"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for LineLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(line) => write!(f, "line {line}: "),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_message_names_path_and_line() {
        let err = ParseError::at(3, "expected 'key value', found 'x'").in_file("/a/memory.stat");
        assert_eq!(
            err.to_string(),
            "malformed '/a/memory.stat' line 3: expected 'key value', found 'x'"
        );
        let err = ParseError::whole("no 'cpu' line").in_file("/proc/stat");
        assert_eq!(err.to_string(), "malformed '/proc/stat': no 'cpu' line");
    }
}
