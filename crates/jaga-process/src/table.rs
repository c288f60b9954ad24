//! The processes of every container, as jaga tracks them: a fork copies
//! the parent (so a child that execs and exits before `/proc` is read is
//! still known to be in its container), an exec replaces what it runs, an
//! exit removes it. Host processes are not kept.

use std::collections::HashMap;

use serde::Serialize;

/// One process in a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProcessEntry {
    pub pid: u32,
    pub ppid: u32,
    pub container_id: String,
    /// The executable's path inside the container; `None` when unknown.
    pub exe: Option<String>,
    /// Arguments with `argv[0]`; empty when they could not be read.
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub uid: Option<u32>,
    /// Has a controlling terminal.
    pub tty: bool,
    /// The kernel's name for it (`comm`).
    pub comm: String,
    /// Start time after boot, in clock ticks (with the pid, its identity).
    #[serde(skip)]
    pub start_ticks: u64,
    pub started_unix_ms: i64,
}

impl ProcessEntry {
    /// The command line as `ps` shows it: the arguments, else `[comm]`.
    pub fn command(&self) -> String {
        if self.args.is_empty() {
            format!("[{}]", self.comm)
        } else {
            self.args.join(" ")
        }
    }
}

/// Most processes tracked; past it a fork is not copied (counted).
pub const MAX_PROCESSES: usize = 200_000;

#[derive(Debug, Default)]
pub struct ProcessTable {
    entries: HashMap<u32, ProcessEntry>,
    /// Forks not tracked because the table was full.
    pub refused_total: u64,
}

impl ProcessTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessEntry> {
        self.entries.get(&pid)
    }

    /// A child of a tracked process: it runs what its parent ran, in the
    /// same container, until it execs. Threads are not processes: only a
    /// child that leads its own thread group is kept.
    pub fn fork(&mut self, parent: u32, child_pid: u32, child_tgid: u32, now_ms: i64) -> bool {
        if child_pid != child_tgid {
            return false;
        }
        let Some(parent_entry) = self.entries.get(&parent) else {
            return false;
        };
        if self.entries.len() >= MAX_PROCESSES {
            self.refused_total += 1;
            return false;
        }
        let child = ProcessEntry {
            pid: child_tgid,
            ppid: parent,
            start_ticks: 0,
            started_unix_ms: now_ms,
            ..parent_entry.clone()
        };
        self.entries.insert(child_tgid, child);
        true
    }

    pub fn insert(&mut self, entry: ProcessEntry) {
        if self.entries.len() >= MAX_PROCESSES && !self.entries.contains_key(&entry.pid) {
            self.refused_total += 1;
            return;
        }
        self.entries.insert(entry.pid, entry);
    }

    pub fn remove(&mut self, pid: u32) -> Option<ProcessEntry> {
        self.entries.remove(&pid)
    }

    /// The executables of the parent and grandparent of `pid`, as tracked.
    pub fn ancestors(&self, ppid: u32) -> (Option<&ProcessEntry>, Option<&ProcessEntry>) {
        let parent = self.entries.get(&ppid);
        let grandparent = parent.and_then(|p| self.entries.get(&p.ppid));
        (parent, grandparent)
    }

    /// The processes of one container, by pid.
    pub fn of_container(&self, container_id: &str) -> Vec<ProcessEntry> {
        let mut found: Vec<ProcessEntry> = self
            .entries
            .values()
            .filter(|e| e.container_id == container_id)
            .cloned()
            .collect();
        found.sort_by_key(|e| e.pid);
        found
    }

    /// Keeps only what `keep` approves (processes still alive).
    pub fn retain(&mut self, mut keep: impl FnMut(&ProcessEntry) -> bool) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, entry| keep(entry));
        before - self.entries.len()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.entries.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: u32, ppid: u32, exe: &str) -> ProcessEntry {
        ProcessEntry {
            pid,
            ppid,
            container_id: "c1".to_owned(),
            exe: Some(exe.to_owned()),
            args: vec![exe.to_owned()],
            comm: exe.rsplit('/').next().unwrap_or_default().to_owned(),
            ..ProcessEntry::default()
        }
    }

    #[test]
    fn a_forked_child_inherits_its_container_and_ancestors_are_found() {
        let mut table = ProcessTable::default();
        table.insert(entry(10, 1, "/usr/sbin/nginx"));
        table.insert(entry(11, 10, "/bin/sh"));
        assert!(table.fork(11, 12, 12, 5));
        assert!(!table.fork(11, 13, 12, 5), "a thread is not a process");
        assert!(!table.fork(99, 14, 14, 5), "the host's forks are not kept");
        let child = table.get(12).unwrap();
        assert_eq!(child.container_id, "c1");
        assert_eq!(child.ppid, 11);
        let (parent, grandparent) = table.ancestors(child.ppid);
        assert_eq!(parent.unwrap().exe.as_deref(), Some("/bin/sh"));
        assert_eq!(grandparent.unwrap().exe.as_deref(), Some("/usr/sbin/nginx"));
        assert_eq!(table.of_container("c1").len(), 3);
        table.remove(12);
        assert_eq!(table.of_container("c1").len(), 2);
        assert!(table.of_container("c2").is_empty());
    }

    #[test]
    fn command_falls_back_to_comm() {
        let mut e = entry(1, 0, "/bin/sh");
        assert_eq!(e.command(), "/bin/sh");
        e.args.clear();
        assert_eq!(e.command(), "[sh]");
    }
}
