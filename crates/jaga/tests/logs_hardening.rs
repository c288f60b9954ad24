#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The log source loses nothing: floods that rotate faster than a poll,
//! SIGKILL with rotations while down, a full disk, and FIFOs and symlinks
//! in log directories — on the real engine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::agent::{series_value, Agent};
use common::tmpfs::{fill, Tmpfs};
use common::*;

/// An nginx-combined line the built-in rule 93100 (SQL injection) matches;
/// `n=` makes each one distinct.
const SQLI_RULE: &str = "93100";

/// A busybox script printing lines `from..to` as fast as awk can.
fn attack_lines(from: usize, to: usize) -> String {
    format!(
        "awk 'BEGIN{{for(i={from};i<{to};i++) printf \"203.0.113.7 - - [30/Nov/2026:17:00:00 +0000] \\\"GET /item?id=1+UNION+SELECT+password+FROM+users--&n=%d HTTP/1.1\\\" 200 5 \\\"-\\\" \\\"curl/8.0\\\"\\n\", i}}'"
    )
}

/// A container created (not started) with json-file rotation at 1 MiB and
/// `max_file` files, running `script`; `mount` is bound at /trigger.
fn create_flooder(
    prefix: &str,
    script: &str,
    mount: Option<&Path>,
    max_file: u32,
) -> TestContainer {
    let name = unique_name(prefix);
    let volume = mount.map(|m| format!("{}:/trigger", m.display()));
    let max_file = format!("max-file={max_file}");
    let mut args = vec![
        "create",
        "--name",
        &name,
        "--network",
        "none",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        &max_file,
    ];
    if let Some(volume) = &volume {
        args.extend(["-v", volume.as_str()]);
    }
    args.extend([BUSYBOX, "sh", "-c", script]);
    let id = docker(&args);
    TestContainer { name, id }
}

fn log_path(container: &TestContainer) -> PathBuf {
    PathBuf::from(docker(&["inspect", "-f", "{{.LogPath}}", &container.id]))
}

/// Config for an agent that follows only `containers`' logs from their
/// beginning.
fn config_for(containers: &[&TestContainer]) -> String {
    let paths: Vec<String> = containers
        .iter()
        .map(|c| format!("\"/var/lib/docker/containers/{}/*-json.log\"", c.id))
        .collect();
    format!(
        "[audit]\ndisabled = true\n[logs]\nread_from = \"beginning\"\npoll = \"100ms\"\npaths = [{}]\n",
        paths.join(", ")
    )
}

/// (alerts of the SQL injection rule for `container`, distinct URLs among
/// them), read from the agent's database.
fn stored(data_dir: &Path, container_id: &str) -> (u64, u64) {
    let path = data_dir.join("events.sqlite3");
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return (0, 0);
    };
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    conn.query_row(
        "SELECT count(*), count(DISTINCT json_extract(json, '$.data.url')) FROM alerts \
         WHERE rule_id = ?1 AND container_id = ?2",
        rusqlite::params![SQLI_RULE, container_id],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
    .unwrap_or((0, 0))
}

/// The line numbers `0..lines` with no alert, as ranges, for failure messages.
fn missing(data_dir: &Path, container_id: &str, lines: usize) -> Vec<(usize, usize)> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("events.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut seen = vec![false; lines];
    let mut statement = conn
        .prepare(
            "SELECT json_extract(json, '$.data.url') FROM alerts WHERE rule_id = ?1 AND container_id = ?2",
        )
        .unwrap();
    let urls = statement
        .query_map(rusqlite::params![SQLI_RULE, container_id], |r| {
            r.get::<_, String>(0)
        })
        .unwrap();
    for url in urls.flatten() {
        if let Some(n) = url
            .rsplit("n=")
            .next()
            .and_then(|n| n.parse::<usize>().ok())
        {
            if n < lines {
                seen[n] = true;
            }
        }
    }
    let mut ranges = Vec::new();
    let mut start = None;
    for (n, present) in seen.iter().chain([&true]).enumerate() {
        match (present, start) {
            (false, None) => start = Some(n),
            (true, Some(from)) => {
                ranges.push((from, n));
                start = None;
            }
            _ => {}
        }
    }
    ranges
}

/// Waits (up to `deadline`) until `expected` alerts are stored, or the count
/// has not changed for 20 s (the agent may pause while the Engine is busy).
fn settled(
    data_dir: &Path,
    container_id: &str,
    expected: Option<u64>,
    deadline: Duration,
) -> (u64, u64) {
    let end = Instant::now() + deadline;
    let mut last = stored(data_dir, container_id);
    let mut since = Instant::now();
    while Instant::now() < end && expected != Some(last.0) {
        std::thread::sleep(Duration::from_millis(500));
        let now = stored(data_dir, container_id);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= Duration::from_secs(20) {
            break;
        }
    }
    if expected == Some(last.0) {
        // Anything more (duplicates) would show within a few polls.
        std::thread::sleep(Duration::from_secs(1));
        last = stored(data_dir, container_id);
    }
    last
}

fn wait_exit(container: &TestContainer) {
    let out = Command::new("timeout")
        .args(["120", "docker", "wait", &container.id])
        .output()
        .unwrap();
    assert!(out.status.success(), "container did not finish its flood");
}

fn metric(agent: &Agent, family: &str) -> f64 {
    series_value(&agent.metrics(), family, &[]).unwrap_or_else(|| panic!("no {family}"))
}

fn files_size(live: &Path) -> u64 {
    let dir = live.parent().unwrap();
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

/// These tests flood at full speed: run side by side on two cores they
/// starve each other's agent and the engine, which is another test than
/// the one each means to be. They take turns.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn flood_rotating_faster_than_a_poll_loses_no_line() {
    require_engine();
    let _alone = one_at_a_time();
    const LINES: usize = 100_000;
    let data = tempfile::tempdir().unwrap();
    // awk floods at ~20 MiB/s: 20 rotations a second, two to each 100 ms
    // poll. With max-file=5 the holder thread has 250 ms to open a file
    // before Docker deletes it, and on two cores kept busy by the flood,
    // Docker and the analysis it has been seen descheduled 130-160 ms (a
    // loss then is counted, not silent); 10 files leave it 500 ms.
    let flooder = create_flooder("flood", &attack_lines(0, LINES), None, 10);
    let agent = Agent::start(data.path(), &config_for(&[&flooder]));
    docker(&["start", &flooder.id]);
    wait_exit(&flooder);
    // ~20 MiB of json written, at most 10 MiB kept: rotation deleted files.
    let kept = files_size(&log_path(&flooder));
    assert!(
        kept < (LINES as u64) * 150,
        "no rotation happened: {kept} bytes kept"
    );
    let (alerts, distinct) = settled(
        data.path(),
        &flooder.id,
        Some(LINES as u64),
        Duration::from_secs(120),
    );
    assert_eq!(distinct, alerts, "duplicate alerts for one line");
    assert_eq!(
        alerts,
        LINES as u64,
        "every line gives its alert; missing: {:?}",
        missing(data.path(), &flooder.id, LINES)
    );
    assert_eq!(metric(&agent, "jaga_log_lines_lost_total"), 0.0);
}

#[test]
fn sigkill_with_several_rotations_while_down_loses_nothing() {
    require_engine();
    let _alone = one_at_a_time();
    const BEFORE: usize = 1_000;
    // ~3 MiB: three rotations, fewer than max-file=5 keeps.
    const WHILE_DOWN: usize = 15_000;
    let data = tempfile::tempdir().unwrap();
    let trigger = tempfile::tempdir().unwrap();
    let script = format!(
        "{}; while [ ! -e /trigger/go ]; do sleep 0.05; done; {}",
        attack_lines(0, BEFORE),
        attack_lines(BEFORE, BEFORE + WHILE_DOWN)
    );
    let flooder = create_flooder("down", &script, Some(trigger.path()), 5);
    let config = config_for(&[&flooder]);
    let mut agent = Agent::start(data.path(), &config);
    docker(&["start", &flooder.id]);
    wait_for(Duration::from_secs(60), || {
        (stored(data.path(), &flooder.id).0 == BEFORE as u64).then_some(())
    })
    .expect("the first lines are stored");
    agent.kill();
    std::fs::write(trigger.path().join("go"), "").unwrap();
    wait_exit(&flooder);
    let agent = Agent::start(data.path(), &config);
    let (alerts, distinct) = settled(
        data.path(),
        &flooder.id,
        Some((BEFORE + WHILE_DOWN) as u64),
        Duration::from_secs(120),
    );
    assert_eq!(distinct, alerts, "duplicate alerts for one line");
    assert_eq!(
        alerts,
        (BEFORE + WHILE_DOWN) as u64,
        "lines lost across the restart: {:?}",
        missing(data.path(), &flooder.id, BEFORE + WHILE_DOWN)
    );
    assert_eq!(metric(&agent, "jaga_log_lines_lost_total"), 0.0);
}

#[test]
fn sigkill_with_more_rotations_than_max_file_counts_what_was_lost() {
    require_engine();
    let _alone = one_at_a_time();
    // ~30 MiB: far more than the 5 MiB that max-file=5 keeps.
    const LINES: usize = 150_000;
    let data = tempfile::tempdir().unwrap();
    let flooder = create_flooder("lost", &attack_lines(0, LINES), None, 5);
    let config = config_for(&[&flooder]);
    let mut agent = Agent::start(data.path(), &config);
    docker(&["start", &flooder.id]);
    // Killed in the middle of the flood.
    wait_for(Duration::from_secs(60), || {
        (stored(data.path(), &flooder.id).0 >= 3_000).then_some(())
    })
    .expect("the first lines are stored");
    agent.kill();
    wait_exit(&flooder);
    let agent = Agent::start(data.path(), &config);
    let (alerts, distinct) = settled(data.path(), &flooder.id, None, Duration::from_secs(120));
    assert_eq!(distinct, alerts, "duplicate alerts for one line");
    let lost = metric(&agent, "jaga_log_lines_lost_total");
    let bytes_lost = metric(&agent, "jaga_log_bytes_lost_total");
    let missing = (LINES as u64 - alerts) as f64;
    eprintln!("written {LINES}, stored {alerts}, counted lost {lost} ({bytes_lost} bytes)");
    assert!(missing > 0.0, "nothing was lost: the flood was too small");
    // What was deleted while the agent was down is reported. Its size is an
    // estimate from Docker's times (the write rate over the files left times
    // the span nobody read); the writer's rate changes with the load: it
    // speeds up once the killed agent no longer competes for the two cores,
    // and the files left then show a faster rate than the span had (0.6x to
    // 3.5x of the truth measured here, 5.7x once in a clean-clone CI run
    // where the writer was slow through the unread span, 0.26x once in
    // another where it was slow through the files left: 26.7 MB lost read
    // as 7.0 MB; run alone the same test reads 1.0x).
    assert!(lost > 0.0 && bytes_lost > 0.0, "the loss is not counted");
    assert!(
        lost >= missing * 0.2 && lost <= missing * 8.0,
        "written {LINES}, stored {alerts}: {missing} missing but {lost} counted lost"
    );
}

/// Appends Docker json-file lines `from..to` of the SQL injection flood.
fn append_attacks(file: &Path, from: usize, to: usize) {
    use std::io::Write;
    let mut text = String::new();
    for n in from..to {
        text.push_str(&format!(
            "{{\"log\":\"203.0.113.7 - - [30/Nov/2026:17:00:00 +0000] \\\"GET /item?id=1+UNION+SELECT+password+FROM+users--&n={n} HTTP/1.1\\\" 200 5 \\\"-\\\" \\\"curl/8.0\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-30T17:00:00.{n:09}Z\"}}\n"
        ));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
}

/// A log directory the agent follows: `<dir>/<id>/<id>-json.log`.
fn synthetic_log(dir: &Path, id: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join(id)).unwrap();
    dir.join(id).join(format!("{id}-json.log"))
}

fn synthetic_config(logs: &Path, extra_paths: &[String]) -> String {
    let mut paths = vec![format!("\"{}/*/*-json.log\"", logs.display())];
    paths.extend(extra_paths.iter().map(|p| format!("\"{p}\"")));
    format!(
        "[audit]\ndisabled = true\n[logs]\nread_from = \"beginning\"\npoll = \"100ms\"\npaths = [{}]\n",
        paths.join(", ")
    )
}

#[test]
fn full_disk_rewinds_and_the_lines_are_analysed_once_space_is_back() {
    require_engine();
    let _alone = one_at_a_time();
    const LINES: usize = 20_000;
    // Room for the 20,000 alerts (database and WAL) once the filler is gone.
    let data = Tmpfs::mount("256m");
    let logs = tempfile::tempdir().unwrap();
    let id = "e".repeat(64);
    let log = synthetic_log(logs.path(), &id);
    append_attacks(&log, 0, 10);
    let agent = Agent::start(data.path(), &synthetic_config(logs.path(), &[]));
    wait_for(Duration::from_secs(30), || {
        (stored(data.path(), &id).0 == 10).then_some(())
    })
    .expect("the first lines are stored");
    // Fill the filesystem to its last byte.
    let filler = data.path().join("filler");
    fill(&filler);
    append_attacks(&log, 10, LINES);
    wait_for(Duration::from_secs(60), || {
        (metric(&agent, "jaga_log_store_failures_total") >= 3.0).then_some(())
    })
    .expect("storing fails on the full filesystem");
    assert_eq!(stored(data.path(), &id).0, 10, "nothing stored while full");
    std::fs::remove_file(&filler).unwrap();
    let (alerts, distinct) = settled(
        data.path(),
        &id,
        Some(LINES as u64),
        Duration::from_secs(120),
    );
    assert_eq!(distinct, alerts, "duplicate alerts for one line");
    assert_eq!(
        alerts,
        LINES as u64,
        "lines lost to the full disk: {:?}",
        missing(data.path(), &id, LINES)
    );
    assert_eq!(metric(&agent, "jaga_log_lines_lost_total"), 0.0);
}

#[test]
fn fifo_in_log_directory_does_not_block_other_containers_and_symlinks_are_not_followed() {
    require_engine();
    let _alone = one_at_a_time();
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    // A file that must never be read, with a line that would raise an alert.
    let secret = outside.path().join("shadow");
    append_attacks(&secret, 900_000, 900_001);
    let fifo = synthetic_log(logs.path(), &"a".repeat(64));
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let link = synthetic_log(logs.path(), &"b".repeat(64));
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    // A symlinked directory with a log file in it.
    let c = "c".repeat(64);
    std::fs::create_dir(outside.path().join(&c)).unwrap();
    append_attacks(
        &outside.path().join(&c).join(format!("{c}-json.log")),
        900_001,
        900_002,
    );
    std::os::unix::fs::symlink(outside.path().join(&c), logs.path().join(&c)).unwrap();
    // A real container whose attack line must still be analysed.
    let container = create_flooder("fifo", &attack_lines(0, 1), None, 5);
    let container_logs = format!("/var/lib/docker/containers/{}/*-json.log", container.id);
    let agent = Agent::start(
        data.path(),
        &synthetic_config(logs.path(), &[container_logs]),
    );
    docker(&["start", &container.id]);
    wait_for(Duration::from_secs(30), || {
        (stored(data.path(), &container.id).0 == 1).then_some(())
    })
    .expect("the container's alert arrives despite the FIFO");
    let metrics = wait_for(Duration::from_secs(10), || {
        let m = agent.metrics();
        let symlinks = series_value(&m, "jaga_log_lines_skipped_total", &["reason=\"symlink\""]);
        (symlinks == Some(2.0)).then_some(m)
    })
    .expect("both symlinks counted");
    assert_eq!(
        series_value(
            &metrics,
            "jaga_log_lines_skipped_total",
            &["reason=\"not_regular_file\""]
        ),
        Some(1.0),
        "the FIFO counted once"
    );
    // Counted once, not at every poll.
    std::thread::sleep(Duration::from_secs(1));
    let later = agent.metrics();
    assert_eq!(
        series_value(
            &later,
            "jaga_log_lines_skipped_total",
            &["reason=\"symlink\""]
        ),
        Some(2.0)
    );
    let conn = rusqlite::Connection::open_with_flags(
        data.path().join("events.sqlite3"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let leaked: i64 = conn
        .query_row(
            "SELECT count(*) FROM alerts WHERE json LIKE '%n=90000%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leaked, 0, "a file behind a symlink was read");
    assert_eq!(agent.get("/healthz").0, 200);
}
