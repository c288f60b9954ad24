//! `type = "file"`: the JSON-lines alerts file (one alert per line, as
//! Wazuh's `alerts.json`), rotated by size like a log: `alerts.json`
//! becomes `alerts.json.1`, which becomes `.2`, up to `max_files`.
//!
//! When no `[[outputs]]` entry is a file and `[alerts] file` is set, the
//! agent runs this output as `alerts_file` with the `[alerts]` settings,
//! so the file is written as it always was.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::{DeliveryError, DeliveryFuture, Message, Output, Receipt};

/// `[[outputs]]` keys of `type = "file"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileSettings {
    /// The file; a relative path is under `serve.data_dir`.
    pub path: PathBuf,
    /// Size at which the file is rotated to `<path>.1`.
    pub max_file_bytes: u64,
    /// Rotated files kept (`<path>.1` … `<path>.N`).
    pub max_files: u32,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("alerts.json"),
            max_file_bytes: 100 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Appends each alert of a message as one line, flushed before the
/// delivery counts as done.
pub struct FileOutput {
    file: Arc<Mutex<AlertFile>>,
}

impl FileOutput {
    /// `base_dir` is where a relative `path` lives.
    pub fn new(settings: &FileSettings, base_dir: &Path) -> Self {
        Self {
            file: Arc::new(Mutex::new(AlertFile::new(
                base_dir.join(&settings.path),
                settings.max_file_bytes,
                settings.max_files,
            ))),
        }
    }
}

impl Output for FileOutput {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        let lines: Result<Vec<String>, _> = message
            .alerts
            .iter()
            .map(|a| serde_json::to_string(&a.alert))
            .collect();
        let file = Arc::clone(&self.file);
        Box::pin(async move {
            let lines = lines.map_err(|e| DeliveryError::Permanent {
                reason: format!("cannot encode alert {}: {e}", message.idempotency_key()),
                answer: String::new(),
            })?;
            let write = move || {
                let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
                file.append(&lines)
                    .map(|()| file.path().display().to_string())
                    .map_err(|e| format!("cannot write '{}': {e}", file.path().display()))
            };
            // Disk writes block. In the agent they block in place: a write
            // that never returns (a FIFO without reader) holds this output's
            // task, which its supervisor then reports stalled; on a
            // single-threaded runtime (`jaga outputs test`) they go to the
            // blocking pool.
            let written = if tokio::runtime::Handle::current().runtime_flavor()
                == tokio::runtime::RuntimeFlavor::MultiThread
            {
                tokio::task::block_in_place(write)
            } else {
                tokio::task::spawn_blocking(write)
                    .await
                    .map_err(|e| DeliveryError::Transient {
                        reason: format!("writing the alerts file stopped: {e}"),
                        retry_after: None,
                    })?
            };
            // A full disk or a removed directory may heal: tried again.
            let path = written.map_err(|reason| DeliveryError::Transient {
                reason,
                retry_after: None,
            })?;
            Ok(Receipt {
                answer: format!("{} line(s) appended to '{path}'", message.alerts.len()),
            })
        })
    }
}

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

    #[tokio::test]
    async fn each_alert_of_a_message_is_one_line_under_the_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        let output = FileOutput::new(&FileSettings::default(), dir.path());
        let message = Message {
            alerts: vec![
                crate::tests::stored(1, "a.1"),
                crate::tests::stored(2, "a.2"),
            ],
        };
        let receipt = output.deliver(&message).await.unwrap();
        assert!(
            receipt.answer.starts_with("2 line(s) appended"),
            "{receipt:?}"
        );
        let text = std::fs::read_to_string(dir.path().join("alerts.json")).unwrap();
        let ids: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<jaga_model::Alert>(l).unwrap().id)
            .collect();
        assert_eq!(ids, ["a.1", "a.2"]);
    }

    #[tokio::test]
    async fn a_file_that_cannot_be_written_is_a_transient_failure() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blocker"), "").unwrap();
        let settings = FileSettings {
            path: PathBuf::from("blocker/alerts.json"),
            ..FileSettings::default()
        };
        let output = FileOutput::new(&settings, dir.path());
        let error = output
            .deliver(&Message::single(crate::tests::stored(1, "a.1")))
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("blocker/alerts.json"), "{error}");
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
