//! The generations of a log opened ahead of reading: once open, Docker
//! deleting them at its next rotations cannot take their lines. Shared
//! between the reader and the holder thread, which looks every few tens of
//! milliseconds, so a writer faster than the analysis cannot rotate a file
//! away before it is opened.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;

use crate::generations::{self, FileId, Generation};
use crate::{estimate_gap, open_generation, Loss, OpenFile};

/// Most generations of one log held open ahead of the one being read, and
/// most bytes in them: past either, the oldest held is let go (counted as
/// lost), so a reader that cannot keep up does not pin unbounded disk.
const MAX_HELD_FILES: usize = 32;
const MAX_HELD_BYTES: u64 = 256 << 20;

/// How many files read to their end are remembered, so that a listing
/// taken while files are renamed never queues one of them again.
const FINISHED_REMEMBERED: usize = 64;

#[derive(Default)]
pub(crate) struct Holding {
    /// The newest generation opened (held, or being read), with a
    /// descriptor of its own: the files listed after it are newer.
    newest: Option<(FileId, File)>,
    /// Newer generations than the one being read, oldest first.
    pub held: VecDeque<OpenFile>,
    finished: VecDeque<FileId>,
    /// What was gone before it could be opened, not handed out yet.
    pub lost: Vec<Loss>,
    /// The live file (identity and size) when last looked at.
    looked: Option<(FileId, u64)>,
    /// From the reader, for the loss estimates.
    pub mean_line_bytes: Option<u64>,
    pub seen_until_ns: u64,
}

impl Holding {
    /// The reader (re)started with `open`.
    pub fn opened(&mut self, open: &OpenFile) {
        let newer_than_held = self.held.is_empty();
        if newer_than_held {
            self.newest = open.file.try_clone().ok().map(|file| (open.id, file));
        }
    }

    /// The next generation to read, if one is held.
    pub fn next(&mut self) -> Option<OpenFile> {
        self.held.pop_front()
    }

    /// The reader read `id` to its end.
    pub fn finished(&mut self, id: FileId) {
        self.finished.push_back(id);
        if self.finished.len() > FINISHED_REMEMBERED {
            self.finished.pop_front();
        }
    }

    /// The reader starts over from a stored checkpoint: nothing is held.
    pub fn forget(&mut self) {
        self.newest = None;
        self.held.clear();
        self.looked = None;
    }

    /// Looks for new generations if the live file changed since last time
    /// (one stat when it did not).
    pub fn hold_if_moved(&mut self, live: &Path) {
        if self.newest.is_none() {
            return;
        }
        let now = std::fs::symlink_metadata(live)
            .ok()
            .map(|m| (FileId::of(&m), m.len()));
        if now.is_some() && now == self.looked {
            return;
        }
        self.looked = now;
        let (listing, _) = generations::list(live);
        self.hold_new(live, &listing);
    }

    /// Opens the generations listed after the newest one opened.
    pub fn hold_new(&mut self, live: &Path, listing: &[Generation]) {
        let Some(newest) = self.newest.as_ref().map(|(id, _)| *id) else {
            return;
        };
        let mut listing = listing.to_vec();
        let mut position = listing.iter().position(|g| g.id.same(newest));
        // A listing taken in the middle of a rotation can miss a file
        // being renamed: look again before deciding it is gone.
        for _ in 0..2 {
            if position.is_some() {
                break;
            }
            listing = generations::list(live).0;
            position = listing.iter().position(|g| g.id.same(newest));
        }
        let newer: Vec<Generation> = match position {
            Some(p) => listing[p + 1..].to_vec(),
            None => {
                // Gone from the names (deleted or compressed) while held:
                // everything listed is newer, and files may have come and
                // gone unseen in between.
                let newer: Vec<Generation> = listing
                    .into_iter()
                    .filter(|g| !self.finished.iter().any(|f| f.same(g.id)))
                    .collect();
                if let Some(first) = newer.first() {
                    self.count_unseen(live, first);
                }
                newer
            }
        };
        for generation in newer {
            match open_generation(live, &generation) {
                Ok(open) => {
                    self.newest = open.file.try_clone().ok().map(|file| (open.id, file));
                    self.held.push_back(open);
                }
                Err(_) => {
                    let loss = self.exact_loss(generation.id, generation.size);
                    self.lost.push(loss);
                }
            }
        }
        self.let_go_of_excess();
    }

    /// Estimates what was written between the last line of the newest file
    /// opened and the first line of `next`.
    fn count_unseen(&mut self, live: &Path, next: &Generation) {
        let since = self
            .newest
            .as_mut()
            .and_then(|(_, file)| generations::spread(file))
            .map_or(self.seen_until_ns, |spread| spread.last_ns);
        let Ok(mut next_file) = open_generation(live, next) else {
            return;
        };
        let loss = estimate_gap(since, &mut next_file.file, self.mean_line_bytes);
        if loss.bytes > 0 {
            self.lost.push(loss);
        }
    }

    /// Lets go of the oldest held generations past the bounds, counted.
    fn let_go_of_excess(&mut self) {
        loop {
            let bytes: u64 = self.held.iter().map(OpenFile::size).sum();
            if self.held.len() <= MAX_HELD_FILES && bytes <= MAX_HELD_BYTES {
                return;
            }
            let Some(oldest) = self.held.pop_front() else {
                return;
            };
            let loss = self.exact_loss(oldest.id, oldest.size());
            self.lost.push(loss);
        }
    }

    fn exact_loss(&self, id: FileId, size: u64) -> Loss {
        Loss {
            inode: Some(id.inode),
            from: 0,
            to: Some(size),
            bytes: size,
            lines: size / self.mean_line_bytes.unwrap_or(1),
            estimated: false,
        }
    }
}
