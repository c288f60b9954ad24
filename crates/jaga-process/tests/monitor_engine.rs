#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The monitor against the real Docker engine: executions inside a
//! container are reported with their container, executable, arguments
//! and parent, by the proc connector (with fanotify) and by the poller.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jaga_process::{ExecRecord, Mode, Monitor, MonitorConfig};

const DEADLINE: Duration = Duration::from_secs(30);

struct Container(String);

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn run(script: &str) -> Container {
    run_with(&[], script)
}

/// `docker run` with more options (`-v`) before the image.
fn run_with(options: &[&str], script: &str) -> Container {
    let out = Command::new("docker")
        .args(["run", "-d", "--network", "none"])
        .args(options)
        .args(["jaga-test/busybox", "sh", "-c", script])
        .output()
        .expect("docker run: is the engine up? (bash scripts/testbed.sh)");
    assert!(
        out.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Container(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn start(mode: Mode) -> (Monitor, Arc<Mutex<Vec<ExecRecord>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let monitor = Monitor::start(
        MonitorConfig {
            root: PathBuf::from("/"),
            mode,
            fanotify: true,
            poll_interval: Duration::from_millis(100),
        },
        Box::new(move |record| {
            sink.lock().unwrap().push(record);
            true
        }),
    )
    .expect("the monitor starts (run the tests as root)");
    (monitor, seen)
}

fn wait_for(seen: &Mutex<Vec<ExecRecord>>, what: impl Fn(&ExecRecord) -> bool) -> ExecRecord {
    let started = Instant::now();
    loop {
        if let Some(found) = seen.lock().unwrap().iter().find(|r| what(r)) {
            return found.clone();
        }
        assert!(
            started.elapsed() < DEADLINE,
            "not seen within {DEADLINE:?}: {:#?}",
            seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connector_reports_a_copied_binary_with_container_args_and_parent() {
    let (monitor, seen) = start(Mode::Connector);
    assert_eq!(
        monitor.stats().mode,
        "connector+fanotify",
        "{:?}",
        monitor.stats()
    );
    // cat waits on its stdin a moment: arguments are read from /proc,
    // which a process gone within a millisecond no longer shows.
    let container = run("sleep 1; cp /bin/busybox /tmp/cat; sleep 0.3 | /tmp/cat /etc/hostname -; /bin/true quick; exec sleep 60");
    let record = wait_for(&seen, |r| r.process.exe.as_deref() == Some("/tmp/cat"));
    assert_eq!(record.process.container_id, container.0);
    assert_eq!(record.process.args, vec!["/tmp/cat", "/etc/hostname", "-"]);
    assert!(record.args_known);
    assert_eq!(record.parent_exe.as_deref(), Some("/bin/busybox"));
    assert!(!record.process.tty);
    // A process gone at once still has its container and executable: it
    // is found by both. Its arguments may be lost (argv[0] is then the
    // executable), and so may those of another busybox process: the other
    // test's container runs at the same time, so the container is part of
    // what is waited for, not checked after (CI picked the other one).
    let quick = wait_for(&seen, |r| {
        r.process.container_id == container.0
            && r.process.exe.as_deref() == Some("/bin/busybox")
            && (r.process.args == ["/bin/true", "quick"] || !r.args_known)
    });
    if quick.args_known {
        assert_eq!(quick.process.args, ["/bin/true", "quick"]);
    } else {
        assert_eq!(quick.process.args, ["/bin/busybox"]);
    }
    let sleeping = wait_for(&seen, |r| {
        r.process.args.first().map(String::as_str) == Some("sleep")
            && r.process.args.get(1).map(String::as_str) == Some("60")
    });
    assert_eq!(sleeping.process.container_id, container.0);
    let started = Instant::now();
    while !monitor
        .processes(&container.0)
        .iter()
        .any(|p| p.args == ["sleep", "60"])
    {
        assert!(
            started.elapsed() < DEADLINE,
            "{:?}",
            monitor.processes(&container.0)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Host processes gone before their cgroup is read must not borrow a
/// container from fanotify: the host's filesystem was once marked for the
/// first container (where `/proc/1/root` cannot be read), and every host
/// exec then carried that container, and a gone one was reported as its.
#[test]
fn a_host_process_gone_at_once_is_never_reported_as_a_containers() {
    let (monitor, seen) = start(Mode::Connector);
    let gate = tempfile::tempdir().unwrap();
    let volume = format!("{}:/gate", gate.path().display());
    let container = run_with(
        &["-v", &volume],
        "/bin/true started; while [ ! -e /gate/open ]; do /bin/sleep 0.1; done; exec sleep 61",
    );
    wait_for(&seen, |r| {
        r.process.container_id == container.0
            && r.process.args.first().is_some_and(|a| a == "/bin/sleep")
    });
    // A burst, so that some are gone before their exec is handled.
    let burst: Vec<_> = (0..200)
        .map(|_| Command::new("/bin/true").spawn().unwrap())
        .collect();
    for mut child in burst {
        child.wait().unwrap();
    }
    std::fs::write(gate.path().join("open"), b"").unwrap();
    // Events come in order: once the container's last exec is in, every
    // host exec before it was handled.
    wait_for(&seen, |r| {
        r.process.container_id == container.0 && r.process.args == ["sleep", "61"]
    });
    let host_true: Vec<ExecRecord> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.process.exe.as_deref() == Some("/usr/bin/true"))
        .cloned()
        .collect();
    assert!(
        host_true.is_empty(),
        "host executions reported: {host_true:#?}"
    );
    assert_eq!(monitor.stats().mode, "connector+fanotify");
}

#[test]
fn poller_reports_a_long_enough_process_and_counts_what_it_missed() {
    let (monitor, seen) = start(Mode::Poll);
    let stats = monitor.stats();
    assert_eq!(stats.mode, "poll");
    assert!(stats.unavailable.contains_key("connector"));
    let container = run(
        "sleep 1; /bin/sleep 2; for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; exec sleep 60",
    );
    let record = wait_for(&seen, |r| r.process.args == ["/bin/sleep", "2"]);
    assert_eq!(record.process.container_id, container.0);
    assert_eq!(record.seen_by, "poll");
    wait_for(&seen, |r| r.process.args == ["sleep", "60"]);
    assert!(
        monitor
            .stats()
            .lost_total
            .get("poll_unseen")
            .is_some_and(|n| *n >= 10),
        "{:?}",
        monitor.stats()
    );
}

/// The thread sleeps until an event or its next reconcile (60 s), not in
/// steps of 200 ms: stopping must wake it rather than wait that out.
#[test]
fn stopping_an_idle_monitor_wakes_its_thread_at_once() {
    for mode in [Mode::Connector, Mode::Poll] {
        let (monitor, _seen) = start(mode);
        // Let the thread reach its wait.
        std::thread::sleep(Duration::from_millis(500));
        let started = Instant::now();
        monitor.stop();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{mode:?}: stopping took {:?}",
            started.elapsed()
        );
    }
}
