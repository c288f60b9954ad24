//! The monitor thread: follows process events (the proc connector with
//! fanotify, or the `/proc` poller when neither is allowed), keeps the
//! process table, and hands each execution inside a container to `emit`.
//!
//! Order matters for fanotify: the kernel queues an exec's fanotify event
//! before it sends the connector's exec message. So each round reads the
//! connector, then fanotify, then handles the connector's events: every
//! exec handled has its fanotify event (if any) already in hand.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jaga_model::ProcessStats;

use crate::connector::{parse_datagram, Connector, ProcEvent};
use crate::fanotify::{ExecOpen, ExecWatch, HostFilesystems, Marked};
use crate::procfs::{self, ProcRead, CLOCK_TICKS};
use crate::table::{ProcessEntry, ProcessTable};
use crate::ProcessError;

/// Which event source to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The connector (and fanotify) when allowed, else the poller.
    Auto,
    /// The connector or nothing: an error when it is not allowed.
    Connector,
    /// Only the `/proc` poller.
    Poll,
}

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// The host's root (`/`, or `/host` when jaga runs in a container).
    pub root: PathBuf,
    pub mode: Mode,
    /// Use fanotify for executable paths when allowed.
    pub fanotify: bool,
    /// The poller's interval.
    pub poll_interval: Duration,
}

/// One execution inside a container, with what rules look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    pub time_unix_ms: i64,
    pub process: ProcessEntry,
    /// The arguments were read (else `process.args` holds only what is known).
    pub args_known: bool,
    /// Where the executable's path came from: `fanotify`, `proc`, or `unknown`.
    pub exe_from: &'static str,
    pub parent_exe: Option<String>,
    pub grandparent_exe: Option<String>,
    /// `connector` or `poll`.
    pub seen_by: &'static str,
}

/// Takes each record; `false` when it could not (a full queue), counted.
pub type Emit = Box<dyn FnMut(ExecRecord) -> bool + Send>;

struct Shared {
    table: Mutex<ProcessTable>,
    stats: Mutex<ProcessStats>,
}

/// The running monitor. Dropping it stops the thread.
pub struct Monitor {
    shared: Arc<Shared>,
    stop: Arc<StopSignal>,
    thread: Option<JoinHandle<()>>,
}

/// Tells the thread to stop. Its waits include the eventfd, so it can
/// sleep until an event or its next reconcile instead of waking every few
/// hundred milliseconds to look at a flag (an idle host's only wake-ups
/// would be those).
struct StopSignal {
    raised: AtomicBool,
    wake: OwnedFd,
}

impl StopSignal {
    fn new() -> Result<Self, ProcessError> {
        use rustix::event::{eventfd, EventfdFlags};
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(|errno| {
            ProcessError::Thread {
                error: std::io::Error::from(errno),
            }
        })?;
        Ok(Self {
            raised: AtomicBool::new(false),
            wake,
        })
    }

    fn raise(&self) {
        self.raised.store(true, Ordering::Relaxed);
        // A full counter (never, at one write) still leaves it readable.
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    fn is_raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// Sleeps `total`, or less when the signal is raised.
    fn sleep(&self, total: Duration) {
        if !self.is_raised() {
            crate::wait_readable(&[self.fd()], total);
        }
    }
}

/// The pause after a busy round, for events to gather.
const GATHER: Duration = Duration::from_millis(4);
/// How often tracked processes are checked against `/proc` after the
/// connector lost messages (an overrun): their exits may be among them, and
/// the pids may be reused.
const RECONCILE_AFTER_LOSS: Duration = Duration::from_secs(10);
/// How often they are checked while nothing was lost: a backstop only, since
/// every exit then came as an event. Each check reads `/proc/<pid>/stat` of
/// every tracked process, which at 10 s was most of this thread's work on
/// an idle host.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// Fanotify paths kept per pid waiting for its exec message.
const MAX_PENDING_PER_PID: usize = 8;
const MAX_PENDING_PIDS: usize = 65_536;

impl Monitor {
    /// Starts the thread. With [`Mode::Connector`] it fails when the
    /// connector is not allowed; otherwise it falls back to polling and says
    /// why in [`Monitor::stats`].
    pub fn start(config: MonitorConfig, emit: Emit) -> Result<Self, ProcessError> {
        let mut stats = ProcessStats::default();
        let source = match config.mode {
            Mode::Poll => {
                stats.unavailable.insert(
                    "connector".to_owned(),
                    "[process] mode = \"poll\"".to_owned(),
                );
                Source::Poll
            }
            Mode::Auto | Mode::Connector => match Connector::open() {
                Ok(connector) => Source::Connector(connector),
                Err(error) if config.mode == Mode::Auto => {
                    stats
                        .unavailable
                        .insert("connector".to_owned(), error.to_string());
                    Source::Poll
                }
                Err(error) => return Err(error),
            },
        };
        let proc = procfs::proc_dir(&config.root);
        let host = HostFilesystems::of(&config.root, &proc);
        let watch = match (&source, config.fanotify) {
            (Source::Connector(_), true) if !host.is_known() => {
                stats.unavailable.insert(
                    "fanotify".to_owned(),
                    format!(
                        "cannot stat the host's root {}: its filesystem must never be watched",
                        config.root.display()
                    ),
                );
                None
            }
            (Source::Connector(_), true) => match ExecWatch::open() {
                Ok(watch) => Some(watch),
                Err(error) => {
                    stats
                        .unavailable
                        .insert("fanotify".to_owned(), error.to_string());
                    None
                }
            },
            (Source::Connector(_), false) => {
                stats.unavailable.insert(
                    "fanotify".to_owned(),
                    "[process] fanotify = false".to_owned(),
                );
                None
            }
            (Source::Poll, _) => {
                stats.unavailable.insert(
                    "fanotify".to_owned(),
                    "only used with the proc connector".to_owned(),
                );
                None
            }
        };
        stats.mode = match (&source, &watch) {
            (Source::Connector(_), Some(_)) => "connector+fanotify",
            (Source::Connector(_), None) => "connector",
            (Source::Poll, _) => "poll",
        }
        .to_owned();
        let shared = Arc::new(Shared {
            table: Mutex::new(ProcessTable::default()),
            stats: Mutex::new(stats),
        });
        let stop = Arc::new(StopSignal::new()?);
        let mut tracker = Tracker {
            boot_ms: procfs::boot_time_ms(&proc).unwrap_or(0),
            proc,
            host,
            shared: Arc::clone(&shared),
            watch,
            pending: HashMap::new(),
            emit,
        };
        let thread_stop = Arc::clone(&stop);
        let poll_interval = config.poll_interval;
        let thread = std::thread::Builder::new()
            .name("jaga-process".to_owned())
            .spawn(move || {
                tracker.scan_existing();
                match source {
                    Source::Connector(connector) => tracker.follow(&connector, &thread_stop),
                    Source::Poll => tracker.poll(poll_interval, &thread_stop),
                }
            })
            .map_err(|error| ProcessError::Thread { error })?;
        Ok(Self {
            shared,
            stop,
            thread: Some(thread),
        })
    }

    /// The processes of a container, as tracked now.
    pub fn processes(&self, container_id: &str) -> Vec<ProcessEntry> {
        lock(&self.shared.table).of_container(container_id)
    }

    pub fn stats(&self) -> ProcessStats {
        let mut stats = lock(&self.shared.stats).clone();
        stats.processes_tracked = lock(&self.shared.table).len() as u64;
        stats
    }

    /// Stops the thread and waits for it (its wait ends at the signal).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.raise();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.halt();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Source {
    Connector(Connector),
    Poll,
}

struct Tracker {
    proc: PathBuf,
    /// Filesystems fanotify must never mark (see [`HostFilesystems`]).
    host: HostFilesystems,
    boot_ms: i64,
    shared: Arc<Shared>,
    watch: Option<ExecWatch>,
    /// Fanotify executions per pid, waiting for the connector's exec.
    pending: HashMap<u32, VecDeque<ExecOpen>>,
    emit: Emit,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn add_lost(stats: &mut ProcessStats, reason: &str, count: u64) {
    if count > 0 {
        *stats.lost_total.entry(reason.to_owned()).or_default() += count;
    }
}

impl Tracker {
    fn stats(&self) -> std::sync::MutexGuard<'_, ProcessStats> {
        lock(&self.shared.stats)
    }

    /// Processes already in containers when jaga starts: tracked, not reported.
    fn scan_existing(&mut self) {
        let Ok(pids) = procfs::list_pids(&self.proc) else {
            return;
        };
        for pid in pids {
            let read = procfs::read_process(&self.proc, pid);
            if let Some(container_id) = read.container_id.clone() {
                self.mark_root(pid, &container_id, false);
                let entry = self.entry_of(&read, container_id, None);
                lock(&self.shared.table).insert(entry);
            }
        }
    }

    fn follow(&mut self, connector: &Connector, stop: &StopSignal) {
        let mut buf = vec![0u8; 256 * 1024];
        let mut events = Vec::new();
        let mut opens = Vec::new();
        let mut last_reconcile = Instant::now();
        let mut lost_since_reconcile = false;
        while !stop.is_raised() {
            let mut fds = vec![connector.fd(), stop.fd()];
            if let Some(watch) = &self.watch {
                fds.push(watch.fd());
            }
            let reconcile_every = match lost_since_reconcile {
                true => RECONCILE_AFTER_LOSS,
                false => RECONCILE_EVERY,
            };
            crate::wait_readable(
                &fds,
                reconcile_every.saturating_sub(last_reconcile.elapsed()),
            );
            let (mut overruns, mut malformed) = (0, 0);
            // Bounded rounds keep fanotify's queue drained during a flood.
            for _ in 0..256 {
                match connector.receive(&mut buf) {
                    Ok(Some(len)) => {
                        let parsed = parse_datagram(&buf[..len]);
                        overruns += parsed.overruns;
                        malformed += parsed.malformed;
                        events.extend(parsed.events);
                    }
                    Ok(None) => break,
                    Err(rustix::io::Errno::NOBUFS) => overruns += 1,
                    Err(errno) => {
                        tracing::warn!(error = %std::io::Error::from(errno), "cannot read the proc connector");
                        malformed += 1;
                        break;
                    }
                }
            }
            if let Some(watch) = &self.watch {
                let lost = watch.drain(&mut opens);
                add_lost(&mut self.stats(), "fanotify_overflow", lost);
            }
            lost_since_reconcile |= overruns > 0 || malformed > 0;
            {
                let mut stats = self.stats();
                add_lost(&mut stats, "connector_overrun", overruns);
                add_lost(&mut stats, "malformed", malformed);
            }
            for open in opens.drain(..) {
                self.hold(open);
            }
            let busy = !events.is_empty();
            for event in events.drain(..) {
                self.handle(event);
            }
            if busy {
                // Let events gather: one wake-up per few milliseconds rather
                // than per event halves the cost at hundreds of execs a
                // second; a process living 10 ms is still there to be read.
                std::thread::sleep(GATHER);
            }
            if last_reconcile.elapsed() >= reconcile_every {
                last_reconcile = Instant::now();
                lost_since_reconcile = false;
                self.reconcile();
            }
        }
    }

    fn hold(&mut self, open: ExecOpen) {
        if self.pending.len() >= MAX_PENDING_PIDS && !self.pending.contains_key(&open.pid) {
            // Executions whose exec message never came (lost to an overrun).
            self.pending.clear();
        }
        let queue = self.pending.entry(open.pid).or_default();
        if queue.len() >= MAX_PENDING_PER_PID {
            queue.pop_front();
        }
        queue.push_back(open);
    }

    fn handle(&mut self, event: ProcEvent) {
        match event {
            ProcEvent::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
            } => {
                lock(&self.shared.table).fork(parent_tgid, child_pid, child_tgid, now_ms());
            }
            ProcEvent::Exec { pid, tgid } if pid == tgid => self.exec(tgid),
            ProcEvent::Exec { .. } => {}
            ProcEvent::Exit { pid, tgid } if pid == tgid => {
                lock(&self.shared.table).remove(tgid);
                self.pending.remove(&tgid);
            }
            ProcEvent::Exit { .. } | ProcEvent::Ack { .. } | ProcEvent::Other => {}
        }
    }

    /// An exec: read `/proc` at once, complete it with fanotify and the
    /// table, and report it when it is inside a container.
    fn exec(&mut self, pid: u32) {
        let cgroup = procfs::read_cgroup(&self.proc, pid);
        let opens: Vec<ExecOpen> = self.pending.remove(&pid).map(Vec::from).unwrap_or_default();
        let tracked = lock(&self.shared.table).get(pid).cloned();
        if matches!(cgroup, Some(None)) {
            // On the host: nothing more to read.
            if tracked.is_some() {
                lock(&self.shared.table).remove(pid);
            }
            return;
        }
        let read = procfs::read_details(&self.proc, pid, cgroup);
        // The cgroup, when it could be read, is the truth (a host process
        // is on the host whatever else says); else fanotify's mark, else
        // the parent's container copied at fork.
        let container_id = if read.cgroup_read {
            read.container_id.clone()
        } else {
            opens
                .iter()
                .find_map(|o| o.container_id.clone())
                .or_else(|| tracked.as_ref().map(|t| t.container_id.clone()))
        };
        let Some(container_id) = container_id else {
            // A host process (or one gone before anything could tell).
            lock(&self.shared.table).remove(pid);
            return;
        };
        // A process new to its container (its first, a `docker exec`, or
        // the first after a restart, on a new filesystem) checks the mark.
        let new_to_container = tracked
            .as_ref()
            .is_none_or(|t| t.container_id != container_id);
        self.mark_root(pid, &container_id, new_to_container);
        // The executable: fanotify's path, the one /proc shows when it is
        // among them (a script: the interpreter), else /proc's.
        let (exe, exe_from) = match (&read.exe, opens.first()) {
            (Some(exe), Some(_)) if opens.iter().any(|o| &o.path == exe) => {
                (Some(exe.clone()), "fanotify")
            }
            (_, Some(first)) => (Some(first.path.clone()), "fanotify"),
            (Some(exe), None) => (Some(exe.clone()), "proc"),
            (None, None) => (None, "unknown"),
        };
        let mut entry = self.entry_of(&read, container_id, tracked.as_ref());
        if read.stat.is_none() {
            // Gone already: its name is its executable's, not the parent's
            // copied at fork.
            if let Some(name) = exe.as_deref().and_then(|e| e.rsplit('/').next()) {
                entry.comm = name.to_owned();
            }
        }
        entry.exe = exe;
        self.report(entry, read.args.is_some(), exe_from, "connector");
    }

    /// A table entry from a `/proc` read; what it lacks comes from the
    /// tracked entry (the fork copy of the parent).
    fn entry_of(
        &self,
        read: &ProcRead,
        container_id: String,
        tracked: Option<&ProcessEntry>,
    ) -> ProcessEntry {
        let stat = read.stat.as_ref();
        let started_unix_ms = stat
            .filter(|_| self.boot_ms > 0)
            .map(|s| self.boot_ms + (s.start_ticks * 1000 / CLOCK_TICKS) as i64)
            .or_else(|| tracked.map(|t| t.started_unix_ms))
            .unwrap_or_else(now_ms);
        ProcessEntry {
            pid: read.pid,
            ppid: stat
                .map(|s| s.ppid)
                .or_else(|| tracked.map(|t| t.ppid))
                .unwrap_or(0),
            container_id,
            exe: read.exe.clone(),
            args: read.args.clone().unwrap_or_default(),
            cwd: read
                .cwd
                .clone()
                .or_else(|| tracked.and_then(|t| t.cwd.clone())),
            uid: read.uid.or_else(|| tracked.and_then(|t| t.uid)),
            tty: stat.map_or_else(|| tracked.is_some_and(|t| t.tty), |s| s.tty_nr != 0),
            comm: stat
                .map(|s| s.comm.clone())
                .or_else(|| tracked.map(|t| t.comm.clone()))
                .unwrap_or_default(),
            start_ticks: stat.map_or(0, |s| s.start_ticks),
            started_unix_ms,
        }
    }

    fn report(
        &mut self,
        mut entry: ProcessEntry,
        args_known: bool,
        exe_from: &'static str,
        seen_by: &'static str,
    ) {
        if !args_known {
            // The arguments are lost; the executable stands for argv[0].
            if let Some(exe) = &entry.exe {
                entry.args = vec![exe.clone()];
            }
        }
        let (parent_exe, grandparent_exe) = self.ancestor_exes(entry.ppid);
        {
            let mut stats = self.stats();
            stats.execs_total += 1;
            stats.exe_unknown_total += u64::from(entry.exe.is_none());
            stats.args_unknown_total += u64::from(!args_known);
            stats.fanotify_marks = self.watch.as_ref().map_or(0, |w| w.marks() as u64);
        }
        lock(&self.shared.table).insert(entry.clone());
        let record = ExecRecord {
            time_unix_ms: now_ms(),
            process: entry,
            args_known,
            exe_from,
            parent_exe,
            grandparent_exe,
            seen_by,
        };
        if !(self.emit)(record) {
            add_lost(&mut self.stats(), "queue_full", 1);
        }
    }

    /// Parent and grandparent executables: tracked, else read from `/proc`
    /// (the parent of a container's first process is on the host).
    fn ancestor_exes(&self, ppid: u32) -> (Option<String>, Option<String>) {
        let table = lock(&self.shared.table);
        let (parent, grandparent) = table.ancestors(ppid);
        let parent_exe = parent
            .and_then(|p| p.exe.clone())
            .or_else(|| read_exe(&self.proc, ppid));
        let gppid = parent
            .map(|p| p.ppid)
            .or_else(|| procfs::read_stat(&self.proc, ppid).map(|s| s.ppid));
        let grandparent_exe = grandparent.and_then(|g| g.exe.clone()).or_else(|| {
            gppid
                .filter(|p| *p > 0)
                .and_then(|p| read_exe(&self.proc, p))
        });
        (parent_exe, grandparent_exe)
    }

    /// Makes fanotify watch the container's filesystem. Until it does, each
    /// exec in the container tries (`runc init` is not yet in its own root);
    /// once it does, only when `check` asks.
    fn mark_root(&mut self, pid: u32, container_id: &str, check: bool) {
        let Some(watch) = self
            .watch
            .as_mut()
            .filter(|w| check || !w.watches(container_id))
        else {
            return;
        };
        let root = self.proc.join(pid.to_string()).join("root");
        match watch.mark_root(&root, container_id, &self.host) {
            Ok(Marked::New) => {
                tracing::debug!(container = %container_id, "container filesystem watched")
            }
            Ok(Marked::Already | Marked::HostFilesystem) => {}
            Err(error) => {
                tracing::debug!(container = %container_id, %error, "cannot watch a container's filesystem")
            }
        }
    }

    /// Drops tracked processes that are gone (their exit lost to an overrun)
    /// or whose pid now names another process.
    fn reconcile(&mut self) {
        let proc = self.proc.clone();
        let dropped = lock(&self.shared.table).retain(|entry| {
            procfs::read_stat(&proc, entry.pid)
                .is_some_and(|s| entry.start_ticks == 0 || s.start_ticks == entry.start_ticks)
        });
        if dropped > 0 {
            tracing::debug!(dropped, "processes gone without an exit event");
        }
    }

    /// The fallback: every `interval`, list `/proc`; a new (pid, start
    /// time), or a known one whose name changed (an exec), is read and
    /// reported. Pids handed out between two looks and never seen are counted.
    fn poll(&mut self, interval: Duration, stop: &StopSignal) {
        let pid_max = procfs::pid_max(&self.proc);
        let mut known: HashMap<u32, (u64, String)> = HashMap::new();
        let mut last_pid = procfs::last_pid(&self.proc);
        let mut first = true;
        while !stop.is_raised() {
            let started = Instant::now();
            let Ok(pids) = procfs::list_pids(&self.proc) else {
                tracing::warn!(proc = %self.proc.display(), "cannot list processes");
                stop.sleep(interval);
                continue;
            };
            let mut seen: HashMap<u32, (u64, String)> = HashMap::with_capacity(pids.len());
            let mut new_pids = 0u64;
            for pid in pids {
                let Some(stat) = procfs::read_stat(&self.proc, pid) else {
                    continue;
                };
                let identity = (stat.start_ticks, stat.comm.clone());
                let changed = match known.get(&pid) {
                    None => {
                        new_pids += 1;
                        true
                    }
                    Some((ticks, comm)) => *ticks != stat.start_ticks || *comm != stat.comm,
                };
                seen.insert(pid, identity);
                if changed && !first {
                    self.polled(pid);
                }
            }
            if first {
                first = false;
            } else {
                let now_last = procfs::last_pid(&self.proc);
                if let (Some(before), Some(now)) = (last_pid, now_last) {
                    let handed_out = if now >= before {
                        u64::from(now - before)
                    } else {
                        u64::from(pid_max - before + now)
                    };
                    add_lost(
                        &mut self.stats(),
                        "poll_unseen",
                        handed_out.saturating_sub(new_pids),
                    );
                }
                last_pid = now_last;
            }
            let gone: Vec<u32> = known
                .keys()
                .filter(|p| !seen.contains_key(p))
                .copied()
                .collect();
            {
                let mut table = lock(&self.shared.table);
                for pid in gone {
                    table.remove(pid);
                }
            }
            known = seen;
            stop.sleep(interval.saturating_sub(started.elapsed()));
        }
    }

    fn polled(&mut self, pid: u32) {
        let read = procfs::read_process(&self.proc, pid);
        let Some(container_id) = read.container_id.clone() else {
            return;
        };
        let entry = self.entry_of(&read, container_id, None);
        let exe_from = if entry.exe.is_some() {
            "proc"
        } else {
            "unknown"
        };
        self.report(entry, read.args.is_some(), exe_from, "poll");
    }
}

fn read_exe(proc: &Path, pid: u32) -> Option<String> {
    std::fs::read_link(proc.join(pid.to_string()).join("exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}
