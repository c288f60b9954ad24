//! The init PID of a running container as its runtime (containerd's shim)
//! records it, so that sampling a host full of containers needs one list
//! call rather than one inspect per container.

use std::path::{Path, PathBuf};

use jaga_model::ContainerId;

/// Where containerd's v2 shims keep per-task state for Docker's `moby`
/// namespace: dockerd's own containerd first, then a system containerd.
const TASK_STATE_DIRS: &[&str] = &[
    "run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby",
    "run/containerd/io.containerd.runtime.v2.task/moby",
];

/// Reads `<state dir>/<id>/init.pid` under `root` ("/" on a real host) and
/// checks that the process still exists. `None`: ask the Engine instead.
pub fn runtime_init_pid(root: &Path, id: &ContainerId) -> Option<u32> {
    TASK_STATE_DIRS.iter().find_map(|dir| {
        let file: PathBuf = root.join(dir).join(id.as_str()).join("init.pid");
        let text = std::fs::read_to_string(&file).ok()?;
        let pid: u32 = text.trim().parse().ok().filter(|pid| *pid > 0)?;
        root.join("proc")
            .join(pid.to_string())
            .exists()
            .then_some(pid)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dockerd_managed_containerd_state() {
        let root = tempfile::tempdir().unwrap();
        let id = ContainerId::new("ab".repeat(32));
        let dir = root.path().join(TASK_STATE_DIRS[0]).join(id.as_str());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("init.pid"), "4242").unwrap();
        assert_eq!(
            runtime_init_pid(root.path(), &id),
            None,
            "no such process yet"
        );
        std::fs::create_dir_all(root.path().join("proc/4242")).unwrap();
        assert_eq!(runtime_init_pid(root.path(), &id), Some(4242));
    }

    #[test]
    fn garbage_or_missing_file_means_ask_the_engine() {
        let root = tempfile::tempdir().unwrap();
        let id = ContainerId::new("cd".repeat(32));
        assert_eq!(runtime_init_pid(root.path(), &id), None);
        let dir = root.path().join(TASK_STATE_DIRS[1]).join(id.as_str());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("init.pid"), "not a pid\n").unwrap();
        assert_eq!(runtime_init_pid(root.path(), &id), None);
    }
}
