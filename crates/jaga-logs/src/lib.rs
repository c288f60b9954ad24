//! Following Docker's json-file logs. Files are found by a glob; each is
//! followed with the generations Docker rotated away from it (`.1` … `.N`),
//! read oldest first, so a rotation faster than a poll loses nothing while
//! the rotated files are still on disk. A file being read stays open, so a
//! generation deleted meanwhile is still read to its end. Truncation is
//! handled, Docker's 16 KiB partial lines are put back together (across
//! generations too), and a checkpoint (inode + offset, and a fingerprint of
//! that file) only ever points after lines that were handed out whole.
//!
//! What could not be read (deleted before it was opened, for example while
//! the agent was down) is reported as a [`Loss`]: the bytes of a file seen
//! and then gone are known exactly; when files may have come and gone
//! unseen, the bytes are estimated from Docker's times — the write rate of
//! the oldest file still present times the span between the last line read
//! and that file's first line (an overestimate if the container was idle in
//! that span). Lines are bytes divided by the mean line length.
//!
//! The caller stores each batch's checkpoint with what its lines raised and
//! then calls [`Tailer::commit`], or [`Tailer::rewind`] when storing failed
//! so the lines are read again. Non-regular files (FIFOs, devices) and
//! symlinks are never opened nor followed. No rule is known here.

mod generations;
mod holding;
mod watcher;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jaga_decode::docker::{Message, Reassembler};
use jaga_decode::DockerLine;

use generations::{FileId, Generation, OpenError};
use holding::Holding;

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
    /// Most bytes read from one log in one poll, so one busy log cannot
    /// starve the others and one batch is stored quickly; what is left is
    /// reported as a backlog for the caller to poll again at once.
    pub max_read_per_poll: usize,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 1 << 20,
            max_read_per_poll: 1 << 20,
        }
    }
}

/// Where reading a log resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The generation (live or rotated) to resume in.
    pub inode: u64,
    pub offset: u64,
    /// Hash of that file's first line, so a later file given the same inode
    /// number is not taken for it; 0 when the file was empty.
    pub head_hash: u64,
    /// Lines Docker stamped before this time (nanoseconds since the epoch)
    /// were read; 0 when unknown. Bounds the span of a loss.
    pub seen_until_ns: u64,
    /// The file's birth time, where the filesystem keeps one (0 if not):
    /// tells a file checkpointed while empty from a later one reusing its
    /// inode number.
    pub born_ns: u64,
}

/// Lines of one log from one poll, and the checkpoint after them.
#[derive(Debug)]
pub struct Batch {
    /// The live file's path, whatever generation the lines came from: the
    /// location of their alerts and the key of the checkpoint.
    pub path: PathBuf,
    pub checkpoint: Checkpoint,
    pub messages: Vec<Message>,
    /// Lines skipped: not Docker JSON, too long, ...
    pub skipped: Vec<Skip>,
    /// What was gone before it could be read.
    pub lost: Vec<Loss>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    NotJson,
    TooLong,
    InvalidUtf8,
    Truncated,
    /// A FIFO, socket, device or directory where a log file was expected.
    NotRegularFile,
    /// A symlink (or a path through a symlinked directory): never followed.
    Symlink,
}

impl Skip {
    /// The `reason` label of the skip counter.
    pub fn reason(self) -> &'static str {
        match self {
            Skip::NotJson => "not_json",
            Skip::TooLong => "too_long",
            Skip::InvalidUtf8 => "invalid_utf8",
            Skip::Truncated => "truncated",
            Skip::NotRegularFile => "not_regular_file",
            Skip::Symlink => "symlink",
        }
    }
}

/// Log content that was gone before it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// The file it was in, when known (files rotated away unseen have none).
    pub inode: Option<u64>,
    /// First byte lost in that file.
    pub from: u64,
    /// End of the file when last seen, when known.
    pub to: Option<u64>,
    pub bytes: u64,
    /// `bytes` divided by the mean line length.
    pub lines: u64,
    /// `bytes` is an estimate from Docker's times, not a known file size.
    pub estimated: bool,
}

/// What one poll found.
#[derive(Debug, Default)]
pub struct Poll {
    pub batches: Vec<Batch>,
    /// Paths refused (not regular files, symlinks), each reported once.
    pub refused: Vec<(PathBuf, Skip)>,
    /// Some log has more to read than one poll's budget: poll again soon.
    pub backlog: bool,
    /// Every log has been quiet for a while (or there is none) and new logs
    /// are found by inotify: the next poll can wait [`QUIET_POLL_EVERY`],
    /// since quiet logs are read no more often than that anyway.
    pub quiet: bool,
    /// Every log has been quiet for [`LONG_QUIET_AFTER`]: the next poll can
    /// wait [`LONG_QUIET_POLL_EVERY`].
    pub long_quiet: bool,
}

/// How a log is begun when no file of it is open.
#[derive(Debug, Clone, Copy)]
enum Start {
    /// A stored checkpoint (after a restart or a rewind).
    Stored(Checkpoint),
    /// The end of the live file: only new lines.
    End,
    /// The oldest generation still on disk, from its first byte.
    Oldest,
}

/// An open generation.
pub(crate) struct OpenFile {
    pub file: File,
    pub id: FileId,
    head_hash: u64,
    /// Where the next line starts (the carry begins here).
    offset: u64,
    /// Bytes read but not yet ending in a newline.
    carry: Vec<u8>,
    /// Discarding a too-long line until its newline.
    skipping: bool,
}

impl OpenFile {
    pub fn size(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

/// One log: its live file and rotated generations.
struct Log {
    start: Start,
    /// Read to their end since the last commit, kept for a rewind.
    done: VecDeque<OpenFile>,
    /// The generation being read.
    open: Option<OpenFile>,
    /// The newer generations, held open; shared with the holder thread.
    holding: Arc<Mutex<Holding>>,
    reassembler: Reassembler,
    /// Where the message held by the reassembler starts.
    pending: Option<Checkpoint>,
    /// The checkpoint the caller stored last; a rewind returns here.
    committed: Option<Checkpoint>,
    /// The checkpoint of the last batch handed out.
    handed: Option<Checkpoint>,
    handed_at: Option<Instant>,
    /// The losses of the last batch, handed out again after a rewind.
    handed_lost: Vec<Loss>,
    seen_until_ns: u64,
    /// The last position computed, kept when no file is open any more.
    last: Option<Checkpoint>,
    /// For the mean line length.
    bytes_read: u64,
    lines_read: u64,
    /// What the last directory listing refused, reported again while the
    /// directory is not read.
    refused: Vec<(PathBuf, Skip)>,
    /// Since when polls found nothing to read.
    quiet_since: Option<Instant>,
    last_polled: Option<Instant>,
    /// The holder's looks at this log and the time, at the last `stat` of
    /// the live path.
    path_checked: Option<(u64, Instant)>,
}

impl Log {
    fn new(start: Start, max_message_bytes: usize) -> Self {
        Self {
            start,
            done: VecDeque::new(),
            open: None,
            holding: Arc::new(Mutex::new(Holding::default())),
            reassembler: Reassembler::new(max_message_bytes),
            pending: None,
            committed: None,
            handed: None,
            handed_at: None,
            handed_lost: Vec::new(),
            seen_until_ns: match start {
                Start::Stored(checkpoint) => checkpoint.seen_until_ns,
                Start::End | Start::Oldest => 0,
            },
            last: None,
            bytes_read: 0,
            lines_read: 0,
            refused: Vec::new(),
            quiet_since: None,
            last_polled: None,
            path_checked: None,
        }
    }

    /// A log quiet for a while is polled once a second, not at every poll,
    /// and once every two seconds after a minute: most logs on a host are
    /// idle, and a poll costs a stat and a lock. The holder thread keeps its
    /// rotated files open meanwhile, so nothing is lost; only the alert
    /// comes up to one or two seconds later.
    fn resting(&self) -> bool {
        let every = match self.long_quiet() {
            true => LONG_QUIET_POLL_EVERY,
            false => QUIET_POLL_EVERY,
        };
        self.quiet()
            && self.last_polled.is_some_and(|at| at.elapsed() < every)
            && self.open.is_some()
            && self.pending.is_none()
            && self.holding().held.is_empty()
    }

    /// Nothing read from it for [`QUIET_AFTER`].
    fn quiet(&self) -> bool {
        self.quiet_since
            .is_some_and(|at| at.elapsed() >= QUIET_AFTER)
    }

    /// Nothing read from it for [`LONG_QUIET_AFTER`].
    fn long_quiet(&self) -> bool {
        self.quiet_since
            .is_some_and(|at| at.elapsed() >= LONG_QUIET_AFTER)
    }

    fn mean_line_bytes(&self) -> Option<u64> {
        (self.lines_read > 0).then(|| (self.bytes_read / self.lines_read).max(1))
    }

    fn checkpoint(&mut self) -> Option<Checkpoint> {
        if let Some(pending) = self.pending {
            return Some(pending);
        }
        let Some(open) = self.open.as_mut() else {
            return self.last;
        };
        // Also at offset 0: the file is told from a later one given its
        // inode number as soon as it has a first line. Nothing read from
        // it yet: it was empty when read, so its head hash is 0 without a
        // seek and a read (an idle container's log, at every poll).
        if open.head_hash == 0 && (open.offset > 0 || !open.carry.is_empty()) {
            open.head_hash = generations::head_hash(&mut open.file);
        }
        self.last = Some(Checkpoint {
            inode: open.id.inode,
            offset: open.offset,
            head_hash: open.head_hash,
            seen_until_ns: self.seen_until_ns,
            born_ns: open.id.born_ns,
        });
        self.last
    }

    fn holding(&self) -> MutexGuard<'_, Holding> {
        self.holding.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts reading `open`.
    fn set_open(&mut self, open: OpenFile) {
        self.holding().opened(&open);
        self.open = Some(open);
    }

    /// The first file is open: where a rewind returns, and (when nothing
    /// was read before) the time from which a loss would be counted — just
    /// before this file's first line, since what came earlier was never ours.
    fn began(&mut self) {
        if self.seen_until_ns == 0 {
            if let Some(open) = self.open.as_mut() {
                if let Some(spread) = generations::spread(&mut open.file) {
                    self.seen_until_ns = spread.first_ns.saturating_sub(1);
                }
            }
        }
        if self.committed.is_none() {
            self.committed = self.checkpoint();
        }
    }

    /// Moves on from the generation read to its end to the next one held.
    fn advance(&mut self) {
        let Some(next) = self.holding().next() else {
            return;
        };
        if let Some(finished) = self.open.replace(next) {
            self.holding().finished(finished.id);
            self.done.push_back(finished);
        }
    }
}

#[derive(Clone)]
struct Pattern {
    glob: String,
    /// The directory before the first wildcard: nothing below it may be a symlink.
    base: PathBuf,
    /// `glob`, compiled to match the names the directory watcher reports.
    matcher: Option<glob::Pattern>,
}

impl Pattern {
    /// The directories logs are in: the glob of the pattern's parent.
    fn dirs(&self) -> Option<String> {
        Path::new(&self.glob)
            .parent()
            .map(|parent| parent.display().to_string())
    }

    fn matches(&self, path: &Path) -> bool {
        self.matcher
            .as_ref()
            .is_some_and(|matcher| matcher.matches_path(path))
    }
}

/// The holdings of every log, for the holder thread.
type Holdings = HashMap<PathBuf, Arc<Mutex<Holding>>>;

pub struct Tailer {
    patterns: Vec<Pattern>,
    config: TailConfig,
    logs: HashMap<PathBuf, Log>,
    holdings: Arc<Mutex<Holdings>>,
    /// Paths refused and reported, until they disappear.
    refused: HashSet<PathBuf>,
    first_scan: bool,
    start_at: StartAt,
    /// A holder thread finds new logs: a poll need not list directories.
    holder_runs: bool,
    last_glob: Option<Instant>,
}

impl Tailer {
    pub fn new(patterns: Vec<String>, start_at: StartAt, config: TailConfig) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(|glob| Pattern {
                    base: generations::pattern_base(&glob),
                    matcher: glob::Pattern::new(&glob).ok(),
                    glob,
                })
                .collect(),
            config,
            logs: HashMap::new(),
            holdings: Arc::new(Mutex::new(HashMap::new())),
            refused: HashSet::new(),
            first_scan: true,
            start_at,
            holder_runs: false,
            last_glob: None,
        }
    }

    /// Every path the patterns match now, with its pattern's index.
    fn glob(&self) -> Vec<(PathBuf, usize)> {
        let mut found: Vec<(PathBuf, usize)> = Vec::new();
        for (index, pattern) in self.patterns.iter().enumerate() {
            match glob::glob(&pattern.glob) {
                Ok(paths) => found.extend(paths.flatten().map(|p| (p, index))),
                Err(error) => {
                    tracing::warn!(pattern = %pattern.glob, %error, "invalid log path pattern")
                }
            }
        }
        found.sort();
        found.dedup_by(|a, b| a.0 == b.0);
        found
    }

    /// The logs the holder thread found that are not followed yet.
    fn held_not_followed(&self) -> Vec<(PathBuf, usize)> {
        let holdings = self.holdings();
        let mut found: Vec<(PathBuf, usize)> = holdings
            .keys()
            .filter(|path| !self.logs.contains_key(*path))
            .filter_map(|path| {
                let index = self.patterns.iter().position(|p| p.matches(path))?;
                Some((path.clone(), index))
            })
            .collect();
        found.sort();
        found
    }

    /// Logs currently followed (their live paths).
    /// How many logs are followed.
    pub fn followed_count(&self) -> usize {
        self.logs.len()
    }

    pub fn followed(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.logs.keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Finds logs, reads what is new in each, returns it per log.
    /// `checkpoint` tells where a log seen for the first time was left.
    pub fn poll(&mut self, checkpoint: &mut dyn FnMut(&Path) -> Option<Checkpoint>) -> Poll {
        let mut poll = Poll::default();
        let glob_due = !self.holder_runs
            || self
                .last_glob
                .is_none_or(|at| at.elapsed() >= FULL_LOOK_WATCHED);
        let mut still_refused = HashSet::new();
        let found = if glob_due {
            self.last_glob = Some(Instant::now());
            self.glob()
        } else {
            // The holder thread finds new logs (woken by the directories
            // changing) and holds them: take them from it rather than
            // listing every container's directory at each poll.
            still_refused.clone_from(&self.refused);
            self.held_not_followed()
        };
        let first_scan = std::mem::replace(&mut self.first_scan, false);
        for (path, index) in &found {
            if self.logs.contains_key(path) {
                continue;
            }
            let base = &self.patterns[*index].base;
            if let Err(skip) = generations::check_path(path, base) {
                if !self.refused.contains(path) {
                    poll.refused.push((path.clone(), skip));
                }
                still_refused.insert(path.clone());
                continue;
            }
            let start = match checkpoint(path) {
                Some(stored) => Start::Stored(stored),
                None if first_scan && self.start_at == StartAt::End => Start::End,
                None => Start::Oldest,
            };
            let mut log = Log::new(start, self.config.max_message_bytes);
            log.holding = Arc::clone(
                self.holdings()
                    .entry(path.clone())
                    .or_insert_with(|| Arc::clone(&log.holding)),
            );
            self.logs.insert(path.clone(), log);
        }
        let mut finished = Vec::new();
        for (path, log) in &mut self.logs {
            if log.resting() {
                still_refused.extend(log.refused.iter().map(|(p, _)| p.clone()));
                continue;
            }
            let bytes_before = log.bytes_read;
            let outcome = poll_log(path, log, &self.config, self.holder_runs);
            log.last_polled = Some(Instant::now());
            let active = log.bytes_read != bytes_before
                || outcome.backlog
                || outcome
                    .batch
                    .as_ref()
                    .is_some_and(|b| !b.skipped.is_empty() || !b.lost.is_empty());
            if active {
                log.quiet_since = None;
            } else if log.quiet_since.is_none() {
                log.quiet_since = Some(Instant::now());
            }
            for (refused, skip) in outcome.refused {
                if !self.refused.contains(&refused) {
                    poll.refused.push((refused.clone(), skip));
                }
                still_refused.insert(refused);
            }
            poll.backlog |= outcome.backlog;
            if let Some(batch) = outcome.batch {
                poll.batches.push(batch);
            }
            if outcome.finished {
                finished.push(path.clone());
            }
        }
        for path in finished {
            // Gone for good, with everything that could be read.
            self.logs.remove(&path);
            self.holdings().remove(&path);
        }
        self.refused = still_refused;
        poll.batches.sort_by(|a, b| a.path.cmp(&b.path));
        poll.quiet = self.holder_runs && !poll.backlog && self.logs.values().all(Log::quiet);
        poll.long_quiet = poll.quiet && self.logs.values().all(Log::long_quiet);
        poll
    }

    /// The caller stored the last batch of `path` (its alerts and
    /// checkpoint): a later rewind returns no further back than this.
    pub fn commit(&mut self, path: &Path) {
        let Some(log) = self.logs.get_mut(path) else {
            return;
        };
        log.committed = log.handed.or(log.committed);
        log.handed_lost.clear();
        // Files before the committed one are not needed for a rewind.
        if let Some(committed) = log.committed {
            match log.done.iter().position(|f| f.id.inode == committed.inode) {
                Some(k) => {
                    log.done.drain(..k);
                }
                None => log.done.clear(),
            }
        }
    }

    /// Storing the last batch of `path` failed: forget everything read since
    /// the last commit, so the next poll reads those lines again.
    pub fn rewind(&mut self, path: &Path) {
        let max_message_bytes = self.config.max_message_bytes;
        let Some(log) = self.logs.get_mut(path) else {
            return;
        };
        log.quiet_since = None;
        let mut files: VecDeque<OpenFile> = log.done.drain(..).collect();
        files.extend(log.open.take());
        let shared = Arc::clone(&log.holding);
        let mut holding = shared.lock().unwrap_or_else(PoisonError::into_inner);
        files.extend(holding.held.drain(..));
        let start = match log.committed {
            Some(committed) => Start::Stored(committed),
            None => log.start,
        };
        // Still holding the committed file: resume in it, hold what follows.
        let committed_at = log.committed.and_then(|c| {
            files
                .iter()
                .position(|f| f.id.inode == c.inode)
                .map(|k| (c, k))
        });
        let mut resumed = None;
        if let Some((committed, k)) = committed_at {
            files.drain(..k);
            if let Some(mut first) = files.pop_front() {
                first.offset = committed.offset;
                first.carry.clear();
                first.skipping = false;
                // Read again from their start.
                for later in &mut files {
                    later.offset = 0;
                    later.carry.clear();
                    later.skipping = false;
                }
                holding.held = files;
                holding.opened(&first);
                holding.lost.append(&mut log.handed_lost);
                resumed = Some(first);
            }
        } else {
            holding.forget();
        }
        drop(holding);
        let mut fresh = Log::new(start, max_message_bytes);
        fresh.holding = shared;
        fresh.committed = log.committed;
        fresh.bytes_read = log.bytes_read;
        fresh.lines_read = log.lines_read;
        fresh.open = resumed;
        *log = fresh;
    }

    /// Opens the generations rotated since the last poll, so that a
    /// rotation cannot delete them before they are read.
    pub fn hold_new_generations(&mut self) {
        hold_moved(&self.holdings());
    }

    /// Starts a thread that opens the generations of every log as soon as
    /// they appear (woken by inotify on the log directories; every `every`
    /// where it cannot watch), so a writer faster than the caller's analysis
    /// cannot rotate files away unread, and a new log is held from its
    /// first file. `on_new_log` is called when it finds a log the reader
    /// has not seen, so the reader can take it on (and checkpoint it) at
    /// once. It stops when the tailer is dropped.
    pub fn hold_in_background(&mut self, every: Duration, on_new_log: impl Fn() + Send + 'static) {
        let holdings = Arc::downgrade(&self.holdings);
        let patterns = self.patterns.clone();
        let spawned = std::thread::Builder::new()
            .name("jaga-log-holder".to_owned())
            .spawn(move || Holder::new(patterns, every).run(&holdings, &on_new_log));
        match spawned {
            Ok(_) => self.holder_runs = true,
            Err(error) => {
                tracing::warn!(%error, "cannot start the log holder thread; rotated log files are opened at each poll only")
            }
        }
    }

    fn holdings(&self) -> MutexGuard<'_, Holdings> {
        self.holdings.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The holder thread's state.
struct Holder {
    patterns: Vec<Pattern>,
    /// How often to look when changes cannot be watched.
    every: Duration,
    watcher: Option<watcher::DirWatcher>,
    last_full_look: Option<Instant>,
}

/// How long a log must have been quiet to be polled less often.
const QUIET_AFTER: Duration = Duration::from_secs(5);
/// How often a quiet log is polled.
pub const QUIET_POLL_EVERY: Duration = Duration::from_secs(1);
/// How long a log must have been quiet to be polled least often.
const LONG_QUIET_AFTER: Duration = Duration::from_secs(60);
/// How often a log quiet that long is polled; Wazuh's logcollector reads
/// its files every 2 s (`logcollector.loop_timeout`). At 100 idle
/// containers, the stat of each log every second was about a tenth of
/// the agent's work.
pub const LONG_QUIET_POLL_EVERY: Duration = Duration::from_secs(2);
/// With every directory watched, a full look (a glob, a stat of each log)
/// is only a safety net: inotify loses events only by overflowing its
/// queue, which the watcher reports and answers with a full look at once.
/// (Every 10 s, the two looks were about a tenth of an idle agent's work
/// at 100 containers, by `perf`.)
const FULL_LOOK_WATCHED: Duration = Duration::from_secs(60);
/// Without inotify, how often to look for new logs: a glob costs a
/// directory listing per container.
const FULL_LOOK_UNWATCHED: Duration = Duration::from_millis(250);

impl Holder {
    fn new(patterns: Vec<Pattern>, every: Duration) -> Self {
        Self {
            patterns,
            every,
            watcher: watcher::DirWatcher::new(),
            last_full_look: None,
        }
    }

    fn run(mut self, holdings: &std::sync::Weak<Mutex<Holdings>>, on_new_log: &dyn Fn()) {
        // The first look is a full one (watches set up), before any wait.
        let mut changes = watcher::Changes::default();
        loop {
            let Some(holdings) = holdings.upgrade() else {
                return;
            };
            if self.look(&holdings, &changes) {
                on_new_log();
            }
            drop(holdings);
            changes = match self.watcher.as_mut() {
                Some(watcher) if watcher.complete() => watcher.wait(FULL_LOOK_WATCHED),
                Some(watcher) => watcher.wait(self.every),
                None => {
                    std::thread::sleep(self.every);
                    watcher::Changes::default()
                }
            };
        }
    }

    /// Holds what changed: everything when a full look is due. `true` when
    /// a new log was found.
    fn look(&mut self, holdings: &Mutex<Holdings>, changes: &watcher::Changes) -> bool {
        let full_look_every = match &self.watcher {
            Some(watcher) if watcher.complete() => FULL_LOOK_WATCHED,
            _ => FULL_LOOK_UNWATCHED,
        };
        let due = self
            .last_full_look
            .is_none_or(|at| at.elapsed() >= full_look_every);
        if due || changes.rescan {
            self.last_full_look = Some(Instant::now());
            self.watch_log_dirs();
            let found = discover(&self.patterns, holdings);
            hold_moved(&self.logs(holdings));
            return found;
        }
        if changes.names.is_empty() {
            if self.watcher.as_ref().is_none_or(|w| !w.complete()) {
                hold_moved(&self.logs(holdings));
            }
            return false;
        }
        // Only the logs whose directories changed: a rotation, a new log, a
        // log deleted (its container removed: the reader looks it up again).
        let lives: HashSet<PathBuf> = changes
            .names
            .iter()
            .map(|name| watcher::live_of(name))
            .collect();
        let (moved, unknown): (Holdings, _) = {
            let known = holdings.lock().unwrap_or_else(PoisonError::into_inner);
            let moved = known
                .iter()
                .filter(|(path, _)| lives.contains(*path))
                .map(|(path, holding)| (path.clone(), Arc::clone(holding)))
                .collect();
            let unknown = lives.iter().any(|live| {
                !known.contains_key(live) && self.patterns.iter().any(|p| p.matches(live))
            });
            (moved, unknown)
        };
        // A log found now was listed and opened whole by `discover`.
        let found = unknown && discover(&self.patterns, holdings);
        hold_moved(&moved);
        found
    }

    /// Each log's holding, taken out of the shared map so that a log being
    /// read does not hold up the others.
    fn logs(&self, holdings: &Mutex<Holdings>) -> Holdings {
        holdings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(path, holding)| (path.clone(), Arc::clone(holding)))
            .collect()
    }

    /// Watches each pattern's base and the directories its logs are in.
    fn watch_log_dirs(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for pattern in &self.patterns {
            watcher.watch(&pattern.base);
            let Some(dirs) = pattern.dirs() else {
                continue;
            };
            let Ok(found) = glob::glob(&dirs) else {
                continue;
            };
            for dir in found.flatten() {
                if generations::check_dir(&dir, &pattern.base).is_ok() {
                    watcher.watch(&dir);
                }
            }
        }
    }
}

/// Opens the files of logs the reader has not looked at yet, so a new
/// container flooding before the next poll loses nothing; forgets those
/// that went away unread. `true` when a log was new.
fn discover(patterns: &[Pattern], holdings: &Mutex<Holdings>) -> bool {
    let mut found = HashSet::new();
    for pattern in patterns {
        let Ok(paths) = glob::glob(&pattern.glob) else {
            continue;
        };
        for path in paths.flatten() {
            if generations::check_path(&path, &pattern.base).is_ok() {
                found.insert(path);
            }
        }
    }
    let mut holdings = holdings.lock().unwrap_or_else(PoisonError::into_inner);
    holdings.retain(|path, holding| {
        found.contains(path)
            || holding
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .adopted
    });
    let mut new = false;
    for path in found {
        holdings.entry(path).or_insert_with_key(|path| {
            new = true;
            let mut holding = Holding::default();
            holding.prehold(path);
            Arc::new(Mutex::new(holding))
        });
    }
    new
}

/// Holds the new generations of every log whose live file moved.
fn hold_moved(holdings: &Holdings) {
    for (path, holding) in holdings {
        holding
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hold_if_moved(path);
    }
}

struct LogOutcome {
    batch: Option<Batch>,
    refused: Vec<(PathBuf, Skip)>,
    backlog: bool,
    finished: bool,
}

/// How often a log's live path is looked up while the holder reports no
/// change in its directory (a removed container's log is let go this late).
const PATH_CHECK_EVERY: Duration = Duration::from_secs(10);

/// How often a checkpoint that only moved in time is handed out again, so
/// a loss after a restart is bounded by a recent time. Only idle logs move
/// in time alone, and every hand-out is a store write: a restart after a
/// crash may count up to this much of an idle log's silence as written.
const REFRESH: Duration = Duration::from_secs(5);

fn poll_log(path: &Path, log: &mut Log, config: &TailConfig, holder_runs: bool) -> LogOutcome {
    let (listing, refused) = match unrotated_listing(path, log, holder_runs) {
        Some(listing) => (listing, log.refused.clone()),
        None => {
            let (listing, refused) = generations::list(path);
            log.refused.clone_from(&refused);
            (listing, refused)
        }
    };
    let mut batch = Batch {
        path: path.to_path_buf(),
        checkpoint: Checkpoint::default(),
        messages: Vec::new(),
        skipped: Vec::new(),
        lost: Vec::new(),
    };
    if log.open.is_none() {
        begin(path, log, &listing, &mut batch);
    }
    log.holding().hold_new(path, &listing);
    let mut budget = config.max_read_per_poll as u64;
    let mut backlog = false;
    let live = listing.iter().find(|g| g.number == 0);
    while let Some(open) = log.open.as_mut() {
        let is_live = live.is_some_and(|live| live.id.same(open.id));
        if is_live {
            // Truncated in place: start over.
            if let Some(live) = live {
                if live.size < open.offset + open.carry.len() as u64 {
                    open.offset = 0;
                    open.carry.clear();
                    open.head_hash = 0;
                    log.pending = None;
                    log.reassembler = Reassembler::new(config.max_message_bytes);
                    batch.skipped.push(Skip::Truncated);
                }
            }
        }
        // The live file no longer than what was read: nothing to seek to
        // or read (the common case, a quiet log polled each second).
        let nothing_new =
            is_live && live.is_some_and(|live| live.size == open.offset + open.carry.len() as u64);
        let read = if nothing_new {
            ReadOutcome {
                bytes: 0,
                more: false,
            }
        } else {
            read_new(log, config, budget, &mut batch)
        };
        budget = budget.saturating_sub(read.bytes);
        if read.more {
            backlog = true;
            break;
        }
        let Some(open) = log.open.as_mut() else {
            break;
        };
        if is_live {
            if open.carry.is_empty() && log.pending.is_none() {
                log.seen_until_ns = log.seen_until_ns.max(now_ns());
            }
            break;
        }
        // Not the live file when listed, and read to its end since: Docker
        // writes no more to it.
        let torn = !open.carry.is_empty();
        if log.holding().held.is_empty() {
            if listing.is_empty() {
                // The log is gone (container removed): nothing follows.
                log.checkpoint();
                log.open = None;
            }
            break;
        }
        if torn {
            batch.skipped.push(Skip::NotJson);
        }
        log.advance();
    }
    {
        let mean_line_bytes = log.mean_line_bytes();
        let mut holding = log.holding();
        batch.lost.append(&mut holding.lost);
        holding.mean_line_bytes = mean_line_bytes;
        holding.seen_until_ns = log.seen_until_ns;
    }
    let finished = log.open.is_none() && listing.is_empty();
    let checkpoint = log.checkpoint();
    if let Some(checkpoint) = checkpoint {
        batch.checkpoint = checkpoint;
    }
    let moved = checkpoint.is_some_and(|c| {
        let position_moved = log
            .handed
            .is_none_or(|h| (h.inode, h.offset) != (c.inode, c.offset));
        let time_moved = log
            .handed
            .is_some_and(|h| h.seen_until_ns != c.seen_until_ns)
            && log.handed_at.is_none_or(|t| t.elapsed() >= REFRESH);
        position_moved || time_moved
    });
    let has_news =
        !batch.messages.is_empty() || !batch.skipped.is_empty() || !batch.lost.is_empty();
    let batch = if (has_news || moved) && checkpoint.is_some() {
        log.handed = checkpoint;
        log.handed_at = Some(Instant::now());
        log.handed_lost = batch.lost.clone();
        Some(batch)
    } else {
        log.holding().lost = batch.lost;
        None
    };
    LogOutcome {
        batch,
        refused,
        backlog,
        finished,
    }
}

/// The listing of a log still on the live file it has open, with nothing
/// rotated since: one stat instead of reading its directory, which is most
/// of an idle poll's cost (a container directory holds a dozen files).
/// `None` when the directory must be read.
fn unrotated_listing(path: &Path, log: &mut Log, holder_runs: bool) -> Option<Vec<Generation>> {
    let open = log.open.as_ref()?;
    let looks = {
        let holding = log.holding();
        if !holding.held.is_empty() {
            return None;
        }
        holding.looks
    };
    // The holder watches the directory and saw no name come or go since
    // the path was last looked up: the open file is still the live one, and
    // its size comes from the descriptor. The path is looked up again now
    // and then all the same (a holder that stopped, a directory removed).
    let unmoved = holder_runs
        && log
            .path_checked
            .is_some_and(|(seen, at)| seen == looks && at.elapsed() < PATH_CHECK_EVERY);
    let (id, size) = if unmoved {
        (open.id, open.file.metadata().ok()?.len())
    } else {
        let meta = std::fs::symlink_metadata(path).ok()?;
        if !meta.file_type().is_file() {
            return None;
        }
        log.path_checked = Some((looks, Instant::now()));
        (FileId::of(&meta), meta.len())
    };
    if !id.same(open.id) {
        return None;
    }
    Some(vec![Generation {
        path: path.to_path_buf(),
        id,
        size,
        number: 0,
    }])
}

/// Opens the first file of a log that has none open, per its start.
fn begin(path: &Path, log: &mut Log, listing: &[Generation], batch: &mut Batch) {
    let Some(oldest) = listing.first() else {
        return;
    };
    // Files opened ahead of this first look (the holder thread found the
    // log first): begin with them.
    let ahead = match log.start {
        Start::End => {
            let mut holding = log.holding();
            holding.adopted = true;
            holding.forget();
            None
        }
        Start::Oldest => log.holding().adopt(|_, _| false).map(|(open, _)| open),
        Start::Stored(stored) => {
            let adopted = log
                .holding()
                .adopt(|open, oldest| is_checkpoint_file(stored, open, oldest));
            match adopted {
                Some((mut open, found)) => {
                    if found {
                        open.offset = stored.offset;
                    } else {
                        // The checkpoint's file is gone; the files held begin later.
                        batch
                            .lost
                            .push(lost_after(log, stored, &mut open.file, path));
                    }
                    Some(open)
                }
                None => None,
            }
        }
    };
    if let Some(open) = ahead {
        tracing::debug!(path = %path.display(), start = ?log.start, inode = open.id.inode, offset = open.offset, lost = ?batch.lost, "reading a log from a file held ahead");
        log.open = Some(open);
        log.began();
        return;
    }
    let opened = match log.start {
        Start::End => listing
            .iter()
            .find(|g| g.number == 0)
            .and_then(|live| open_generation(path, live).ok())
            .map(|mut open| {
                open.offset = open.size();
                log.seen_until_ns = now_ns();
                open
            }),
        Start::Oldest => open_generation(path, oldest).ok(),
        Start::Stored(stored) => resume(path, log, listing, stored, batch),
    };
    tracing::debug!(path = %path.display(), start = ?log.start, generations = listing.len(), inode = opened.as_ref().map(|o| o.id.inode), offset = opened.as_ref().map(|o| o.offset), lost = ?batch.lost, "reading a log");
    if let Some(open) = opened {
        log.set_open(open);
        log.began();
    }
}

/// Reopens the generation a stored checkpoint points into; if it is gone,
/// counts what was lost and begins with the oldest generation left.
fn resume(
    path: &Path,
    log: &mut Log,
    listing: &[Generation],
    stored: Checkpoint,
    batch: &mut Batch,
) -> Option<OpenFile> {
    if let Some(at) = listing.iter().position(|g| g.id.inode == stored.inode) {
        if let Ok(mut open) = open_generation(path, &listing[at]) {
            if is_checkpoint_file(stored, &mut open, at == 0) {
                let generation = &listing[at];
                if stored.offset <= generation.size {
                    open.offset = stored.offset;
                } else {
                    batch.skipped.push(Skip::Truncated);
                }
                return Some(open);
            }
        }
    }
    // The checkpoint's file is gone: rotated away and deleted while nobody read it.
    let mut open = listing
        .iter()
        .find_map(|generation| open_generation(path, generation).ok())?;
    batch
        .lost
        .push(lost_after(log, stored, &mut open.file, path));
    Some(open)
}

/// Whether `open` is the checkpoint's file. Inode numbers are soon reused
/// by later files (a flood rotating while jaga is down), so the inode alone
/// does not say it: the birth time does, where the filesystem keeps one,
/// and so does the first line. A file checkpointed while still empty has no
/// first line; without a birth time it is taken for the checkpoint's file
/// only when it is the oldest generation (`oldest`), so no older file is
/// skipped unread on the word of an inode number.
fn is_checkpoint_file(stored: Checkpoint, open: &mut OpenFile, oldest: bool) -> bool {
    if open.id.inode != stored.inode {
        return false;
    }
    let born_known = stored.born_ns != 0 && open.id.born_ns != 0;
    if born_known && stored.born_ns != open.id.born_ns {
        return false;
    }
    if stored.head_hash != 0 {
        return generations::head_hash(&mut open.file) == stored.head_hash;
    }
    born_known || oldest
}

/// What was lost after `stored`, whose file is gone, up to `next`: the
/// oldest file left.
fn lost_after(log: &Log, stored: Checkpoint, next: &mut File, live: &Path) -> Loss {
    let mut loss = estimate_gap(log.seen_until_ns, next, live, log.mean_line_bytes());
    loss.inode = Some(stored.inode);
    loss.from = stored.offset;
    loss
}

/// What was written between `seen_until_ns` and the first line of `next`
/// (the oldest file left), estimated from the write rate over the files of
/// the log still on disk (all of them: the rate over one file of a flood
/// swings with how Docker stamped its lines).
pub(crate) fn estimate_gap(
    seen_until_ns: u64,
    next: &mut File,
    live: &Path,
    mean_line: Option<u64>,
) -> Loss {
    let mut loss = Loss {
        inode: None,
        from: 0,
        to: None,
        bytes: 0,
        lines: 0,
        estimated: true,
    };
    let Some(next_spread) = generations::spread(next) else {
        return loss;
    };
    let (listing, _) = generations::list(live);
    let spread_of = |g: Option<&Generation>| {
        g.and_then(|g| open_generation(live, g).ok())
            .and_then(|mut open| generations::spread(&mut open.file))
    };
    let oldest = spread_of(listing.first()).unwrap_or(next_spread);
    let newest = spread_of(listing.last()).unwrap_or(next_spread);
    let first_ns = oldest.first_ns.min(next_spread.first_ns);
    let last_ns = newest.last_ns.max(next_spread.last_ns);
    let size: u64 = listing
        .iter()
        .map(|g| g.size)
        .sum::<u64>()
        .max(next_spread.size);
    let span = last_ns.saturating_sub(first_ns);
    let gap = next_spread.first_ns.saturating_sub(seen_until_ns);
    if seen_until_ns == 0 || span == 0 || gap == 0 {
        return loss;
    }
    let bytes = (u128::from(size) * u128::from(gap) / u128::from(span)) as u64;
    let lines = bytes / mean_line.unwrap_or(next_spread.mean_line_bytes).max(1);
    // A gap of a line or so is the time between two lines, not a loss (a
    // file compressed away right after it was read leaves such a gap).
    if lines >= 2 {
        loss.bytes = bytes;
        loss.lines = lines;
    }
    loss
}

/// Opens a listed generation, following it if rotations renamed it since
/// the listing (`.N` becomes `.N+1`); an error when it is gone. Names are
/// tried directly: a directory listing taken during a rotation can miss a
/// file being renamed.
pub(crate) fn open_generation(live: &Path, wanted: &Generation) -> Result<OpenFile, OpenError> {
    const SHIFTS: u32 = 8;
    for round in 0..3 {
        if round > 0 {
            // Let a rotation in progress finish its renames.
            std::thread::sleep(Duration::from_millis(1));
        }
        for number in wanted.number..=wanted.number + SHIFTS {
            let path = generations::generation_path(live, number);
            match generations::open_regular(&path) {
                Ok((file, id)) if id.same(wanted.id) => {
                    return Ok(OpenFile {
                        file,
                        id,
                        head_hash: 0,
                        offset: 0,
                        carry: Vec::new(),
                        skipping: false,
                    });
                }
                Err(OpenError::Refused(skip)) if number == wanted.number && round == 0 => {
                    return Err(OpenError::Refused(skip));
                }
                _ => {}
            }
        }
    }
    Err(OpenError::Gone)
}

struct ReadOutcome {
    bytes: u64,
    /// Stopped at the budget, not at the end of the file.
    more: bool,
}

fn read_new(log: &mut Log, config: &TailConfig, budget: u64, batch: &mut Batch) -> ReadOutcome {
    let nothing = ReadOutcome {
        bytes: 0,
        more: false,
    };
    let Some(open) = log.open.as_mut() else {
        return nothing;
    };
    if budget == 0 {
        return ReadOutcome {
            bytes: 0,
            more: true,
        };
    }
    if open
        .file
        .seek(SeekFrom::Start(open.offset + open.carry.len() as u64))
        .is_err()
    {
        return nothing;
    }
    let mut buf = Vec::new();
    if (&mut open.file).take(budget).read_to_end(&mut buf).is_err() {
        return nothing;
    }
    let read = ReadOutcome {
        bytes: buf.len() as u64,
        more: buf.len() as u64 == budget,
    };
    let mut data = std::mem::take(&mut open.carry);
    data.extend_from_slice(&buf);
    let mut consumed = 0usize;
    let mut last_time = None;
    while let Some(newline) = memchr::memchr(b'\n', &data[consumed..]) {
        let line_start = open.offset + consumed as u64;
        let line = &data[consumed..consumed + newline];
        consumed += newline + 1;
        log.bytes_read += newline as u64 + 1;
        log.lines_read += 1;
        if open.skipping {
            open.skipping = false;
            continue;
        }
        let text = match simdutf8::basic::from_utf8(line) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => {
                batch.skipped.push(Skip::InvalidUtf8);
                String::from_utf8_lossy(line)
            }
        };
        match DockerLine::parse(&text) {
            Ok(entry) => {
                if log.pending.is_none() {
                    if open.head_hash == 0 {
                        open.head_hash = generations::head_hash(&mut open.file);
                    }
                    log.pending = Some(Checkpoint {
                        inode: open.id.inode,
                        offset: line_start,
                        head_hash: open.head_hash,
                        seen_until_ns: log.seen_until_ns,
                        born_ns: open.id.born_ns,
                    });
                }
                if let Some(message) = log.reassembler.push(entry) {
                    log.pending = None;
                    if message.truncated {
                        batch.skipped.push(Skip::TooLong);
                    }
                    last_time = Some(message.time.clone());
                    batch.messages.push(message);
                }
            }
            Err(_) => batch.skipped.push(Skip::NotJson),
        }
    }
    open.offset += consumed as u64;
    let mut rest = data.split_off(consumed);
    if rest.len() > config.max_message_bytes * 2 {
        // A line with no end in sight: drop what we hold and skip to its newline.
        open.offset += rest.len() as u64;
        rest.clear();
        open.skipping = true;
        batch.skipped.push(Skip::TooLong);
    }
    open.carry = rest;
    if let Some(time) = last_time.as_deref().and_then(generations::parse_time_ns) {
        log.seen_until_ns = log.seen_until_ns.max(time);
    }
    read
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
