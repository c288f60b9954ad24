//! The JSON-lines alerts file, rotated by size like a log: `alerts.json`
//! becomes `alerts.json.1`, which becomes `.2`, up to `max_files`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jaga_store::EventStore;
use tokio::sync::{watch, Notify};

pub struct AlertFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: u32,
    file: Option<File>,
    size: u64,
}

impl AlertFile {
    pub fn new(path: PathBuf, max_bytes: u64, max_files: u32) -> Self {
        Self {
            path,
            max_bytes,
            max_files,
            file: None,
            size: 0,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line per alert, rotating first when the file would grow
    /// past `max_bytes`; flushed before returning.
    pub fn append(&mut self, lines: &[String]) -> io::Result<()> {
        for line in lines {
            let len = line.len() as u64 + 1;
            if self.size > 0 && self.size + len > self.max_bytes {
                self.rotate()?;
            }
            let file = self.open()?;
            file.write_all(line.as_bytes())?;
            file.write_all(b"\n")?;
            self.size += len;
        }
        if let Some(file) = self.file.as_mut() {
            file.flush()?;
        }
        Ok(())
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
            self.size = file.metadata()?.len();
            self.file = Some(file);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("alerts file not open"))
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.max_files).rev() {
                let from = numbered(n);
                if from.exists() {
                    std::fs::rename(&from, numbered(n + 1))?;
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Copies stored alerts not yet in the file into it, whenever the listener
/// says there are new ones (and every few seconds after a failure). An
/// alert is marked written only after the line is flushed: a crash between
/// the two repeats a line, never loses one.
pub async fn write_alerts(
    store: Arc<EventStore>,
    mut file: AlertFile,
    wakeup: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    const BATCH: usize = 500;
    loop {
        let drained = tokio::task::block_in_place(|| -> Result<usize, String> {
            let pending = store.alerts_for_file(BATCH).map_err(|e| e.to_string())?;
            let Some(last) = pending.last().map(|(seq, _)| *seq) else {
                return Ok(0);
            };
            let lines: Vec<String> = pending.into_iter().map(|(_, json)| json).collect();
            file.append(&lines)
                .map_err(|e| format!("cannot write '{}': {e}", file.path().display()))?;
            store.mark_in_file(last).map_err(|e| e.to_string())?;
            Ok(lines.len())
        });
        let wait = match drained {
            Ok(n) if n == BATCH => continue,
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "cannot copy alerts to the alerts file; retrying");
                Some(Duration::from_secs(5))
            }
        };
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = wakeup.notified(), if wait.is_none() => {}
            _ = tokio::time::sleep(wait.unwrap_or(Duration::from_secs(3600))) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        let mut file = AlertFile::new(path.clone(), 100, 2);
        let line = "x".repeat(39); // 40 bytes with the newline
        for _ in 0..7 {
            file.append(std::slice::from_ref(&line)).unwrap();
        }
        // 7 lines of 40 bytes, 2 per file: current holds 1, .1 and .2 hold 2, the oldest 2 dropped.
        let read = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(read(&path), 1);
        assert_eq!(read(&dir.path().join("alerts.json.1")), 2);
        assert_eq!(read(&dir.path().join("alerts.json.2")), 2);
        assert!(!dir.path().join("alerts.json.3").exists());
    }

    #[test]
    fn appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.json");
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let mut file = AlertFile::new(path.clone(), 1 << 20, 5);
        file.append(&["{\"new\":2}".to_owned()]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"old\":1}\n{\"new\":2}\n"
        );
    }
}
