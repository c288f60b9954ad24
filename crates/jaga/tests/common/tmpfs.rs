//! A small filesystem for full-disk tests: a tmpfs mounted on a temporary
//! directory (the tests run as root), unmounted when dropped.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;

pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`64m`, `256m`).
    pub fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs (the tests run as root)"
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros to a new file at `path` until its filesystem is full to the
/// last byte.
pub fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create filler");
    for size in [1 << 16, 1] {
        let chunk = vec![0u8; size];
        loop {
            if let Err(error) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
                assert_eq!(
                    error.raw_os_error(),
                    Some(28),
                    "filling {}: {error}",
                    path.display()
                );
                break;
            }
        }
    }
}
