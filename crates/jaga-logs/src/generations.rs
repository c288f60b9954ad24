//! The files of one log on disk: the live `<id>-json.log` and the
//! generations Docker rotated away from it (`.1` newest … `.N` oldest),
//! opened without blocking and without following symlinks.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::Skip;

/// Which file: its inode number, and its birth time where the filesystem
/// keeps one, since a deleted file's inode number is soon given to a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    pub inode: u64,
    /// 0 when unknown.
    pub born_ns: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let born_ns = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            inode: meta.ino(),
            born_ns,
        }
    }

    pub fn same(self, other: Self) -> bool {
        self.inode == other.inode
            && (self.born_ns == 0 || other.born_ns == 0 || self.born_ns == other.born_ns)
    }
}

/// One file of a log as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Generation {
    pub path: PathBuf,
    pub id: FileId,
    pub size: u64,
    /// 0 for the live file, N for `<live>.N`.
    pub number: u32,
}

/// The files of the log at `live`, oldest first (the live file last).
/// Anything under those names that is not a regular file is returned apart,
/// never opened.
///
/// A rotation renames every file one number up while the listing looks,
/// so the names are looked at from the live file up: a file only ever
/// moves to a number not looked at yet, and none is missed unless several
/// rotations deleted files meanwhile (looked at in the directory's order,
/// a file could move from a name not looked at yet to one already looked
/// at, and a whole generation went unheld and unread). A listing during
/// which the live file changed is taken again, a few times at most. A file
/// seen twice (it moved between two looks) is listed once.
pub(crate) fn list(live: &Path) -> (Vec<Generation>, Vec<(PathBuf, Skip)>) {
    const TRIES: usize = 16;
    let mut listing = (Vec::new(), Vec::new());
    for _ in 0..TRIES {
        let Some(numbers) = numbers_to_look_at(live) else {
            break;
        };
        listing = list_upwards(live, &numbers);
        let live_before = listing.0.first().filter(|f| f.number == 0).map(|f| f.id);
        let live_after = std::fs::symlink_metadata(live).ok().map(|m| FileId::of(&m));
        let settled = match (live_before, live_after) {
            (Some(before), Some(after)) => before.same(after),
            // No live file at all (a removed container's log): nothing rotates.
            (None, None) => true,
            _ => false,
        };
        if settled {
            break;
        }
    }
    let (mut files, refused) = listing;
    // Looked at newest first. A file created during the listing and already
    // renamed may come after an older one, which birth times (where the
    // filesystem keeps them) put right.
    files.reverse();
    if files.iter().all(|f| f.id.born_ns != 0) {
        files.sort_by_key(|f| f.id.born_ns);
    }
    (files, refused)
}

/// The generations of `live` under `numbers` (ascending), newest first as
/// looked at.
fn list_upwards(live: &Path, numbers: &[u32]) -> (Vec<Generation>, Vec<(PathBuf, Skip)>) {
    let mut files: Vec<Generation> = Vec::new();
    let mut refused = Vec::new();
    for &number in numbers {
        let path = generation_path(live, number);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        match kind_of(&meta) {
            Some(skip) => refused.push((path, skip)),
            None => {
                let id = FileId::of(&meta);
                if !files.iter().any(|f| f.id.same(id)) {
                    files.push(Generation {
                        path,
                        id,
                        size: meta.len(),
                        number,
                    });
                }
            }
        }
    }
    (files, refused)
}

/// Where generation `number` of the log at `live` is: the live file for 0,
/// else `<live>.<number>`.
pub(crate) fn generation_path(live: &Path, number: u32) -> PathBuf {
    if number == 0 {
        live.to_path_buf()
    } else {
        PathBuf::from(format!("{}.{number}", live.display()))
    }
}

/// The generation numbers to look at for the log at `live`, ascending: the
/// live file (0), each `.N` in its directory, and the number after each (a
/// rotation moves every file one up while the listing looks). Only names
/// that are there, so a stray `.20261201` costs one look, not a count up to
/// it. `None` when the directory cannot be read.
fn numbers_to_look_at(live: &Path) -> Option<Vec<u32>> {
    let (dir, name) = (live.parent()?, live.file_name()?);
    let name = name.to_string_lossy();
    let entries = std::fs::read_dir(dir).ok()?;
    let mut numbers = vec![0, 1];
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        // `.N.gz` (compress=true) and anything else: not ours to read.
        let number = entry_name
            .to_string_lossy()
            .strip_prefix(name.as_ref())
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| *n > 0);
        if let Some(number) = number {
            numbers.push(number);
            numbers.push(number.saturating_add(1));
        }
    }
    numbers.sort_unstable();
    numbers.dedup();
    Some(numbers)
}

/// Why a file is not read, or `None` for a regular file.
fn kind_of(meta: &std::fs::Metadata) -> Option<Skip> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        Some(Skip::Symlink)
    } else if kind.is_file() {
        None
    } else {
        Some(Skip::NotRegularFile)
    }
}

/// Refuses a matched path whose directories below `base` (the part of the
/// pattern before its first wildcard) include a symlink, or which is not a
/// regular file itself.
pub(crate) fn check_path(path: &Path, base: &Path) -> Result<(), Skip> {
    if let Some(parent) = path.parent() {
        check_dir(parent, base)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => kind_of(&meta).map_or(Ok(()), Err),
        Err(_) => Ok(()),
    }
}

/// Whether `dir` (at or below `base`) is reached without a symlink.
pub(crate) fn check_dir(dir: &Path, base: &Path) -> Result<(), Skip> {
    let mut dir = Some(dir);
    while let Some(d) = dir {
        if d == base || !d.starts_with(base) {
            break;
        }
        match std::fs::symlink_metadata(d) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(Skip::Symlink),
            _ => {}
        }
        dir = d.parent();
    }
    Ok(())
}

/// The literal directory a glob pattern starts from.
pub(crate) fn pattern_base(pattern: &str) -> PathBuf {
    let mut base = PathBuf::new();
    for part in Path::new(pattern).components() {
        if part.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        base.push(part);
    }
    if base.as_os_str() == pattern {
        // No wildcard: the pattern is the file itself.
        base.pop();
    }
    base
}

/// Why a file could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Not there (any more), or not readable.
    Gone,
    /// There, but not something to read.
    Refused(Skip),
}

/// Opens `path` for reading only if it is a regular file, never blocking
/// (a FIFO would block `open` until a writer comes) and never following a
/// symlink in its last component.
pub(crate) fn open_regular(path: &Path) -> Result<(File, FileId), OpenError> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| {
        if errno == rustix::io::Errno::LOOP {
            OpenError::Refused(Skip::Symlink)
        } else {
            OpenError::Gone
        }
    })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|_| OpenError::Gone)?;
    if !meta.file_type().is_file() {
        return Err(OpenError::Refused(Skip::NotRegularFile));
    }
    Ok((file, FileId::of(&meta)))
}

/// A cheap fingerprint of a file: a hash of its first line (up to 256
/// bytes), which holds Docker's nanosecond time. It tells a generation from
/// a later file that was given the same inode number. 0: the file is empty.
pub(crate) fn head_hash(file: &mut File) -> u64 {
    let mut head = [0u8; 256];
    let mut len = 0;
    if file.seek(SeekFrom::Start(0)).is_err() {
        return 0;
    }
    while len < head.len() {
        match file.read(&mut head[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => len += n,
        }
    }
    let line = head[..len]
        .split(|b| *b == b'\n')
        .next()
        .unwrap_or_default();
    if line.is_empty() {
        return 0;
    }
    // FNV-1a, 64 bits.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in line {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}

/// How a file's lines are spread in time: Docker's times of its first and
/// last whole lines, and the mean length of a line in its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spread {
    pub first_ns: u64,
    pub last_ns: u64,
    pub mean_line_bytes: u64,
    pub size: u64,
}

/// Reads the head and the tail of `file` (64 KiB each) to see its spread.
pub(crate) fn spread(file: &mut File) -> Option<Spread> {
    const WINDOW: u64 = 64 << 10;
    let size = file.metadata().ok()?.len();
    let head = read_at(file, 0, WINDOW)?;
    let head_lines: Vec<&[u8]> = complete_lines(&head);
    let first_ns = time_of_line(head_lines.first()?)?;
    let head_bytes: usize = head_lines.iter().map(|l| l.len() + 1).sum();
    let mean_line_bytes = (head_bytes / head_lines.len()).max(1) as u64;
    let tail_start = size.saturating_sub(WINDOW);
    let tail = read_at(file, tail_start, WINDOW)?;
    let tail_lines = complete_lines(&tail);
    // The first line of the tail window may be cut at its start.
    let last_ns = tail_lines
        .iter()
        .rev()
        .find_map(|l| time_of_line(l))
        .unwrap_or(first_ns);
    Some(Spread {
        first_ns,
        last_ns,
        mean_line_bytes,
        size,
    })
}

fn read_at(file: &mut File, offset: u64, len: u64) -> Option<Vec<u8>> {
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = Vec::new();
    file.take(len).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// The lines of `buf` that end in a newline (without it).
fn complete_lines(buf: &[u8]) -> Vec<&[u8]> {
    let end = buf.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    buf[..end]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

fn time_of_line(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?;
    let entry = jaga_decode::DockerLine::parse(text).ok()?;
    parse_time_ns(&entry.time)
}

/// Docker's RFC 3339 time in nanoseconds since the epoch.
pub(crate) fn parse_time_ns(time: &str) -> Option<u64> {
    let parsed = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    u64::try_from(parsed.timestamp_nanos_opt()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// Rotates `live` the way Docker's json-file driver does with
    /// `max-file=5` (the oldest goes, each `.N` becomes `.N+1`, the live
    /// file `.1`, a new live file), as fast as it can, until `stop`. The
    /// oldest is moved aside rather than deleted, so that no inode number
    /// is given again while the lister maps inodes to creation order.
    fn rotate_until(live: &Path, stop: &AtomicBool, created: &Mutex<HashMap<u64, u64>>) {
        let dir = live.parent().unwrap();
        let name = |n: u32| PathBuf::from(format!("{}.{n}", live.display()));
        for seq in 1.. {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let _ = std::fs::rename(name(4), dir.join(format!("gone-{seq}")));
            for n in (1..4).rev() {
                let _ = std::fs::rename(name(n), name(n + 1));
            }
            std::fs::rename(live, name(1)).unwrap();
            let fresh = dir.join("fresh");
            std::fs::write(&fresh, "").unwrap();
            let ino = std::fs::metadata(&fresh).unwrap().ino();
            created.lock().unwrap().insert(ino, seq);
            std::fs::rename(&fresh, live).unwrap();
            // Hundreds of rotations a second, still: Docker's flood test
            // makes twenty. (At thousands, on two loaded cores, a listing
            // could meet a rotation at each of its tries.)
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    #[test]
    fn a_generation_numbered_far_beyond_the_others_costs_one_look() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        for (name, born) in [
            ("c-json.log.4294967295", 0),
            ("c-json.log.20261201", 1),
            ("c-json.log.2", 2),
            ("c-json.log.1", 3),
            ("c-json.log", 4),
            ("c-json.log.0", 5),
            ("c-json.log.3.gz", 6),
        ] {
            std::fs::write(dir.path().join(name), format!("{born}\n")).unwrap();
            // Birth times a few milliseconds apart, in the order written.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // Counting every number up to u32::MAX would not end: a generous
        // deadline tells that apart from a slow machine.
        let (sender, receiver) = std::sync::mpsc::channel();
        let looked_at = live.clone();
        std::thread::spawn(move || sender.send(list(&looked_at)));
        let (listing, refused) = receiver
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the listing ends");
        assert!(refused.is_empty());
        let numbers: Vec<u32> = listing.iter().map(|g| g.number).collect();
        assert_eq!(numbers, [u32::MAX, 20_261_201, 2, 1, 0]);
    }

    #[test]
    fn a_listing_taken_while_files_rotate_misses_no_file_between_two_it_lists() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("c-json.log");
        std::fs::write(&live, "").unwrap();
        let created = Arc::new(Mutex::new(HashMap::from([(
            std::fs::metadata(&live).unwrap().ino(),
            0,
        )])));
        let stop = Arc::new(AtomicBool::new(false));
        let rotator = {
            let (live, stop, created) = (live.clone(), Arc::clone(&stop), Arc::clone(&created));
            std::thread::spawn(move || rotate_until(&live, &stop, &created))
        };
        let mut torn = Vec::new();
        let started = std::time::Instant::now();
        let mut listings = 0;
        while started.elapsed() < std::time::Duration::from_secs(3) {
            let (listing, refused) = list(&live);
            assert!(refused.is_empty());
            let known = created.lock().unwrap();
            let seqs: Vec<u64> = listing.iter().map(|g| known[&g.id.inode]).collect();
            drop(known);
            // Oldest first, each the next one created: a file may be missed
            // only at either end (deleted at the top, created after).
            if seqs.windows(2).any(|pair| pair[1] != pair[0] + 1) {
                torn.push(seqs);
            }
            listings += 1;
        }
        stop.store(true, Ordering::Relaxed);
        rotator.join().unwrap();
        assert!(listings > 1000, "only {listings} listings");
        assert!(
            torn.is_empty(),
            "{} of {listings} listings torn, e.g. {:?}",
            torn.len(),
            &torn[..torn.len().min(5)]
        );
    }
}
