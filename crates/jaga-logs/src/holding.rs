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
/// lost), so a reader that cannot keep up does not pin unbounded disk. The
/// bytes bind first at Docker's usual sizes (a 200,000-line flood at
/// `max-size=1m` rotates through 43 files faster than they are analysed);
/// the file count bounds descriptors when files are tiny.
pub(crate) const MAX_HELD_FILES: usize = 256;
const MAX_HELD_BYTES: u64 = 256 << 20;

/// How many files read to their end are remembered, so that a listing
/// taken while files are renamed never queues one of them again.
const FINISHED_REMEMBERED: usize = 64;

#[derive(Default)]
pub(crate) struct Holding {
    /// The newest generation opened (held, or being read), with a
    /// descriptor of its own: the files listed after it are newer.
    newest: Option<(FileId, File)>,
    /// The generation being read.
    reading: Option<FileId>,
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
    /// The reader has taken this log on; before, its files were opened
    /// ahead of the reader's first look (a new container flooding at once).
    pub adopted: bool,
    /// How many times the holder looked at the live file because its
    /// directory changed (or at a full look): while this stands still, no
    /// name came or went there, so the reader's open file is still the live
    /// one and a `fstat` of it tells its size without a path lookup.
    pub looks: u64,
}

impl Holding {
    /// Opens every generation of a log the reader has not looked at yet,
    /// oldest first.
    pub fn prehold(&mut self, live: &Path) {
        let (listing, _) = generations::list(live);
        for generation in listing {
            if let Ok(open) = open_generation(live, &generation) {
                self.newest = open.file.try_clone().ok().map(|file| (open.id, file));
                self.held.push_back(open);
            }
        }
    }

    /// On the reader's first look: the file held ahead of it to begin with,
    /// if any — the first for which `is_checkpoint_file(file, is_oldest)`
    /// holds (dropping the older ones), else the oldest; `true` when it is
    /// the checkpoint's file.
    pub fn adopt(
        &mut self,
        mut is_checkpoint_file: impl FnMut(&mut OpenFile, bool) -> bool,
    ) -> Option<(OpenFile, bool)> {
        if std::mem::replace(&mut self.adopted, true) {
            return None;
        }
        let at = self
            .held
            .iter_mut()
            .enumerate()
            .position(|(index, held)| is_checkpoint_file(held, index == 0));
        if let Some(at) = at {
            self.held.drain(..at);
        }
        let first = self.held.pop_front()?;
        self.reading = Some(first.id);
        Some((first, at.is_some()))
    }

    /// The reader (re)started with `open`.
    pub fn opened(&mut self, open: &OpenFile) {
        self.reading = Some(open.id);
        let newer_than_held = self.held.is_empty();
        if newer_than_held {
            self.newest = open.file.try_clone().ok().map(|file| (open.id, file));
        }
    }

    /// The next generation to read, if one is held.
    pub fn next(&mut self) -> Option<OpenFile> {
        let next = self.held.pop_front()?;
        self.reading = Some(next.id);
        Some(next)
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
        self.reading = None;
        self.newest = None;
        self.held.clear();
        self.looked = None;
    }

    /// Looks for new generations if the live file changed since last time
    /// (one stat when it did not).
    pub fn hold_if_moved(&mut self, live: &Path) {
        self.looks = self.looks.wrapping_add(1);
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
        let newer: Vec<Generation> = match listing.iter().position(|g| g.id.same(newest)) {
            Some(p) => listing[p + 1..].to_vec(),
            None if self.newest_still_linked() => {
                // Renamed while the directory was read (a rotation in
                // progress): look again next time.
                self.looked = None;
                return;
            }
            None => {
                // Deleted (or compressed away) while held: everything
                // listed is newer, and files may have come and gone unseen
                // in between.
                let newer: Vec<Generation> = listing
                    .iter()
                    .filter(|g| !self.known(g.id))
                    .cloned()
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

    /// The newest file opened still has a name on disk.
    fn newest_still_linked(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.newest
            .as_ref()
            .and_then(|(_, file)| file.metadata().ok())
            .is_some_and(|meta| meta.nlink() > 0)
    }

    /// `id` is being read, held, or was read to its end lately.
    fn known(&self, id: FileId) -> bool {
        self.reading.is_some_and(|r| r.same(id))
            || self.held.iter().any(|h| h.id.same(id))
            || self.finished.iter().any(|f| f.same(id))
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
        let loss = estimate_gap(since, &mut next_file.file, live, self.mean_line_bytes);
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
