//! Following Docker's json-file logs: files found by a glob, new ones picked
//! up on each poll, rotation by rename (the old file is read to its end
//! first) and truncation handled, Docker's 16 KiB partial lines put back
//! together, and a checkpoint (inode + offset) that only ever points after
//! lines that were handed out whole. The caller stores the checkpoint once
//! it has processed those lines. No rule is known here.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use jaga_decode::docker::{Message, Reassembler};
use jaga_decode::DockerLine;

/// Where to start in a file seen for the first time with no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Debug, Clone, Copy)]
pub struct TailConfig {
    /// A message (after reassembly) longer than this is cut; a raw line
    /// longer than twice this with no newline is skipped.
    pub max_message_bytes: usize,
    /// Most bytes read from one file in one poll, so one busy file cannot
    /// starve the others.
    pub max_read_per_poll: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_read_per_poll: 8 << 20,
        }
    }
}

/// Lines of one file from one poll, and the checkpoint after them.
#[derive(Debug)]
pub struct Batch {
    pub path: PathBuf,
    pub inode: u64,
    /// Resume here: after every line handed out whole (and before a message
    /// whose start was read but not its end).
    pub checkpoint: u64,
    pub messages: Vec<Message>,
    /// Lines skipped: not Docker JSON, too long, ...
    pub skipped: Vec<Skip>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    NotJson,
    TooLong,
    InvalidUtf8,
    Truncated,
}

struct Tracked {
    file: File,
    inode: u64,
    /// Where the next read starts.
    offset: u64,
    /// Bytes read but not yet ending in a newline.
    carry: Vec<u8>,
    /// Discarding a too-long line until its newline.
    skipping: bool,
    reassembler: Reassembler,
    /// Offset where the message held by the reassembler started.
    pending_start: Option<u64>,
}

pub struct Tailer {
    patterns: Vec<String>,
    config: TailConfig,
    files: HashMap<PathBuf, Tracked>,
    first_scan: bool,
    start_at: StartAt,
}

impl Tailer {
    pub fn new(patterns: Vec<String>, start_at: StartAt, config: TailConfig) -> Self {
        Self {
            patterns,
            config,
            files: HashMap::new(),
            first_scan: true,
            start_at,
        }
    }

    /// Files currently followed.
    pub fn followed(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Finds files, reads what is new, returns it per file. `checkpoint`
    /// tells where a file seen for the first time was left.
    pub fn poll(&mut self, checkpoint: &mut dyn FnMut(&Path) -> Option<(u64, u64)>) -> Vec<Batch> {
        let mut found: Vec<PathBuf> = Vec::new();
        for pattern in &self.patterns {
            match glob::glob(pattern) {
                Ok(paths) => found.extend(paths.flatten()),
                Err(error) => tracing::warn!(%pattern, %error, "invalid log path pattern"),
            }
        }
        found.sort();
        found.dedup();
        let first_scan = std::mem::replace(&mut self.first_scan, false);
        for path in &found {
            if !self.files.contains_key(path) {
                if let Some(tracked) = self.open(path, checkpoint(path), first_scan) {
                    self.files.insert(path.clone(), tracked);
                }
            }
        }
        let mut batches = Vec::new();
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        for path in paths {
            let Some(batch) = self.read_file(&path) else {
                // Gone for good: forget it.
                self.files.remove(&path);
                continue;
            };
            if !batch.messages.is_empty() || !batch.skipped.is_empty() || batch.checkpoint > 0 {
                batches.push(batch);
            }
        }
        batches
    }

    fn open(
        &self,
        path: &Path,
        checkpoint: Option<(u64, u64)>,
        first_scan: bool,
    ) -> Option<Tracked> {
        let file = File::open(path).ok()?;
        let meta = file.metadata().ok()?;
        let inode = meta.ino();
        let offset = match checkpoint {
            // Same file, not shrunk: resume.
            Some((ino, offset)) if ino == inode && offset <= meta.len() => offset,
            // A different file under the name (rotated while we were away), or truncated.
            Some(_) => 0,
            None if first_scan && self.start_at == StartAt::End => meta.len(),
            None => 0,
        };
        Some(Tracked {
            file,
            inode,
            offset,
            carry: Vec::new(),
            skipping: false,
            reassembler: Reassembler::new(self.config.max_message_bytes),
            pending_start: None,
        })
    }

    fn read_file(&mut self, path: &Path) -> Option<Batch> {
        let config = self.config;
        let current = std::fs::metadata(path).ok().map(|m| (m.ino(), m.len()));
        let tracked = self.files.get_mut(path)?;
        let mut batch = Batch {
            path: path.to_path_buf(),
            inode: tracked.inode,
            checkpoint: tracked.offset,
            messages: Vec::new(),
            skipped: Vec::new(),
        };
        // Truncated in place: start over.
        if let Ok(meta) = tracked.file.metadata() {
            if meta.len() < tracked.offset {
                tracked.offset = 0;
                tracked.carry.clear();
                tracked.pending_start = None;
                tracked.reassembler = Reassembler::new(config.max_message_bytes);
                batch.skipped.push(Skip::Truncated);
            }
        }
        read_new(tracked, &config, &mut batch);
        match current {
            // Rotated: the old file is read to its end (above); follow the new one.
            Some((inode, _)) if inode != tracked.inode => {
                let file = File::open(path).ok()?;
                *tracked = Tracked {
                    file,
                    inode,
                    offset: 0,
                    carry: Vec::new(),
                    skipping: false,
                    reassembler: Reassembler::new(config.max_message_bytes),
                    pending_start: None,
                };
                let mut next = Batch {
                    path: path.to_path_buf(),
                    inode,
                    checkpoint: 0,
                    messages: Vec::new(),
                    skipped: Vec::new(),
                };
                read_new(tracked, &config, &mut next);
                batch.messages.extend(next.messages);
                batch.skipped.extend(next.skipped);
                batch.inode = inode;
                batch.checkpoint = next.checkpoint;
                Some(batch)
            }
            Some(_) => Some(batch),
            // Deleted: whatever was read is handed out, then the file is dropped.
            None => {
                if batch.messages.is_empty() {
                    None
                } else {
                    Some(batch)
                }
            }
        }
    }
}

fn read_new(tracked: &mut Tracked, config: &TailConfig, batch: &mut Batch) {
    if tracked
        .file
        .seek(SeekFrom::Start(tracked.offset + tracked.carry.len() as u64))
        .is_err()
    {
        return;
    }
    let mut buf = Vec::new();
    let limit = config.max_read_per_poll as u64;
    if (&mut tracked.file)
        .take(limit)
        .read_to_end(&mut buf)
        .is_err()
    {
        return;
    }
    let mut data = std::mem::take(&mut tracked.carry);
    data.extend_from_slice(&buf);
    let mut consumed = 0usize;
    while let Some(newline) = data[consumed..].iter().position(|b| *b == b'\n') {
        let line_start = tracked.offset + consumed as u64;
        let line = &data[consumed..consumed + newline];
        consumed += newline + 1;
        if tracked.skipping {
            tracked.skipping = false;
            continue;
        }
        let text = match std::str::from_utf8(line) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => {
                batch.skipped.push(Skip::InvalidUtf8);
                String::from_utf8_lossy(line)
            }
        };
        match DockerLine::parse(&text) {
            Ok(entry) => {
                if tracked.pending_start.is_none() {
                    tracked.pending_start = Some(line_start);
                }
                if let Some(message) = tracked.reassembler.push(entry) {
                    tracked.pending_start = None;
                    if message.truncated {
                        batch.skipped.push(Skip::TooLong);
                    }
                    batch.messages.push(message);
                }
            }
            Err(_) => batch.skipped.push(Skip::NotJson),
        }
    }
    tracked.offset += consumed as u64;
    let mut rest = data.split_off(consumed);
    if rest.len() > config.max_message_bytes * 2 {
        // A line with no end in sight: drop what we hold and skip to its newline.
        tracked.offset += rest.len() as u64;
        rest.clear();
        tracked.skipping = true;
        batch.skipped.push(Skip::TooLong);
    }
    tracked.carry = rest;
    batch.inode = tracked.inode;
    batch.checkpoint = tracked.pending_start.unwrap_or(tracked.offset);
}

#[cfg(test)]
mod tests;
