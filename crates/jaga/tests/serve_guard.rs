#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Guards of `jaga serve` and the rule tools against bad input: zero
//! durations, bad or huge rule files are refused before anything starts.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::tmpfs::{fill, Tmpfs};
use common::{require_engine, wait_for};

/// Runs `jaga ARGS` with `config` as its config file, waiting at most 60 s.
fn jaga_with_config(config: &str, args: &[&str]) -> Output {
    let mut file = tempfile::NamedTempFile::new().expect("config file");
    file.write_all(config.as_bytes()).expect("write config");
    let config_path = file.path().display().to_string();
    let mut full = vec!["--config", config_path.as_str()];
    full.extend_from_slice(args);
    run_bounded(Command::new(env!("CARGO_BIN_EXE_jaga")).args(&full))
}

/// Runs a command with output captured; fails the test if it is still
/// running after 60 s (an agent that started instead of refusing).
fn run_bounded(command: &mut Command) -> Output {
    let child = command
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jaga");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.expect("wait for jaga"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("jaga was still running after 60 s instead of refusing to start");
        }
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn serve_config(data_dir: &Path, extra: &str) -> String {
    let port = common::agent::free_port();
    format!(
        "[serve]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{extra}",
        data_dir.display()
    )
}

#[test]
fn logs_poll_of_zero_is_refused_instead_of_panicking_the_task() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let out = jaga_with_config(
        &serve_config(&data_dir, "[logs]\npoll = \"0s\"\n"),
        &["serve"],
    );
    assert!(!out.status.success(), "jaga serve accepted poll = 0s");
    let err = stderr(&out);
    assert!(
        err.contains("key 'logs.poll': '0s' is too short"),
        "stderr: {err}"
    );
    assert!(!data_dir.exists(), "serve started before refusing");
}

#[test]
fn audit_interval_of_zero_is_refused_instead_of_panicking_the_task() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let out = jaga_with_config(
        &serve_config(&data_dir, "[audit]\ninterval = \"0s\"\n"),
        &["serve"],
    );
    assert!(!out.status.success(), "jaga serve accepted interval = 0s");
    let err = stderr(&out);
    assert!(
        err.contains("key 'audit.interval': '0s' is too short"),
        "stderr: {err}"
    );
}

#[test]
fn interval_flag_of_zero_is_refused_instead_of_becoming_one_second() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let out = jaga_with_config(&serve_config(&data_dir, ""), &["serve", "--interval", "0s"]);
    assert!(!out.status.success(), "jaga serve accepted --interval 0s");
    let err = stderr(&out);
    assert!(
        err.contains("'0s'") && err.contains("--interval") && err.contains("too short"),
        "stderr: {err}"
    );
    assert!(!data_dir.exists(), "serve started before refusing");
}

/// Two bad rules, one with an escape sequence in its id.
const TWO_BAD_RULES: &str = "rules:\n  - id: \"100001\\e[2J\"\n    level: 99\n    description: mine\n    match:\n      url: { literal: x }\n  - id: \"100002\"\n    level: 3\n    description: mine\n    match:\n      url: { regex: \"(\" }\n";

#[test]
fn rule_errors_print_one_per_line_instead_of_as_literal_backslash_n() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mine.yml");
    std::fs::write(&file, TWO_BAD_RULES).expect("write rules");
    let out = common::jaga(&["rules", "check", &file.display().to_string()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains("2 errors:")),
        "stderr: {err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  ") && l.contains("rule 100001")),
        "stderr: {err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  ") && l.contains("rule 100002")),
        "stderr: {err}"
    );
    assert!(!err.contains("errors:\\n"), "stderr: {err}");
    assert!(
        !err.contains('\x1b'),
        "an escape sequence reached stderr: {err}"
    );
}

/// A rule file whose only error is on line 2 (a level out of range).
const BAD_LEVEL_ON_LINE_2: &str = "rules:\n  - id: \"100001\"\n    level: 99\n    description: mine\n    match:\n      url: { literal: x }\n";

#[test]
fn rules_check_gives_the_line_in_the_users_file_not_after_the_builtin_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("mine.yml");
    std::fs::write(&file, BAD_LEVEL_ON_LINE_2).expect("write rules");
    let out = common::jaga(&["rules", "check", &file.display().to_string()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "'{}', line 2: rule 100001: level 99 is out of range",
            file.display()
        )),
        "stderr: {err}"
    );
}

#[test]
fn bad_rule_file_stops_serve_before_any_audit_or_alert() {
    require_engine();
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let rules = dir.path().join("mine.yml");
    std::fs::write(&rules, BAD_LEVEL_ON_LINE_2).expect("write rules");
    let out = jaga_with_config(
        &serve_config(
            &data_dir,
            &format!("[logs]\nrules = [\"{}\"]\n", rules.display()),
        ),
        &["serve"],
    );
    assert!(
        !out.status.success(),
        "jaga serve started with a bad rule file"
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!("'{}', line 2: rule 100001", rules.display())),
        "stderr: {err}"
    );
    // Nothing was stored: no event store, hence no audit finding and no alert.
    assert!(
        !data_dir.join("events.sqlite3").exists(),
        "the event store was opened before the rules were checked"
    );
    assert!(!data_dir.join("alerts.json").exists());
}

/// Runs `jaga rules check FILE` under a 1 GiB address-space limit: a
/// compile that tried to take gigabytes dies instead of passing.
fn rules_check_in_bounded_memory(file: &Path) -> (Output, Duration) {
    let started = Instant::now();
    let out = run_bounded(Command::new("sh").args([
        "-c",
        "ulimit -v 1048576 && exec \"$0\" rules check \"$1\"",
        env!("CARGO_BIN_EXE_jaga"),
        &file.display().to_string(),
    ]));
    (out, started.elapsed())
}

fn rule_with_pattern(pattern_len: usize) -> String {
    format!(
        "rules:\n  - id: \"100666\"\n    level: 5\n    description: huge\n    match:\n      url: {{ regex: '{}' }}\n",
        "a".repeat(pattern_len)
    )
}

#[test]
fn hundred_megabyte_pattern_is_refused_instead_of_exhausting_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("huge.yml");
    std::fs::write(&file, rule_with_pattern(100 << 20)).expect("write rules");
    let (out, took) = rules_check_in_bounded_memory(&file);
    let err = stderr(&out);
    assert!(!out.status.success(), "a 100 MB pattern was accepted");
    assert!(
        err.contains(&format!("rule file '{}' is ", file.display()))
            && err.contains("more than the limit of 1048576"),
        "stderr: {err}"
    );
    assert!(took < Duration::from_secs(60));
}

#[test]
fn pattern_over_the_length_limit_is_refused_naming_rule_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("long.yml");
    // Under the file limit, far over the pattern limit.
    std::fs::write(&file, rule_with_pattern(900 << 10)).expect("write rules");
    let (out, _) = rules_check_in_bounded_memory(&file);
    let err = stderr(&out);
    assert!(!out.status.success(), "a 900 KiB pattern was accepted");
    assert!(
        err.contains(&format!(
            "'{}', line 2: rule 100666: field 'url': regex refused: the pattern is 921600 bytes \
             long, more than the limit of 16384",
            file.display()
        )),
        "stderr: {err}"
    );
}

#[test]
fn pattern_that_compiles_huge_is_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("blowup.yml");
    // Unicode word characters: rule classes are ASCII unless asked (`(?u:…)`),
    // and an ASCII \w repeated 10,000 times stays under the limit.
    let text = "rules:\n  - id: \"100667\"\n    level: 5\n    description: blowup\n    match:\n      url: { regex: '(?u:\\w{100}){100}' }\n";
    std::fs::write(&file, text).expect("write rules");
    let (out, _) = rules_check_in_bounded_memory(&file);
    let err = stderr(&out);
    assert!(!out.status.success(), "the pattern was accepted");
    assert!(
        err.contains("line 2: rule 100667: field 'url': invalid regex")
            && err.contains("exceeds size limit"),
        "stderr: {err}"
    );
}

#[test]
fn alerts_file_on_a_fifo_without_reader_turns_healthz_to_503_naming_it() {
    require_engine();
    let dir = tempfile::tempdir().expect("temp dir");
    // The alerts file is a named pipe whose reader (a log shipper) is not
    // running: opening it for writing never returns.
    let fifo = dir.path().join("alerts.fifo");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    let agent = common::agent::Agent::start(
        &dir.path().join("data"),
        &format!("[alerts]\nfile = \"{}\"\n", fifo.display()),
    );
    // An alert to write, whatever else the host raises: a container created.
    let _created = common::TestContainer::run(
        "guard-alert",
        &["--network", "none", common::BUSYBOX, "sleep", "120"],
    );
    let mut last = (0, String::new());
    let health = wait_for(Duration::from_secs(120), || {
        last = agent.get("/healthz");
        let health: serde_json::Value = serde_json::from_str(&last.1).ok()?;
        let task = health["tasks"]["output/alerts_file"].as_str()?.to_owned();
        (last.0 == 503 && task.starts_with("stalled: ")).then_some(health)
    })
    .unwrap_or_else(|| panic!("healthz never named the stalled alerts file; last: {last:?}"));
    assert_eq!(health["status"], "unhealthy", "{health}");
    // The other tasks go on: only the stuck one is named.
    for task in ["collector", "docker_listener", "logs", "audit", "http"] {
        assert_eq!(health["tasks"][task], "running", "{health}");
    }
    let metrics = agent.metrics();
    let series = |family: &str, task: &str| {
        common::agent::series_value(&metrics, family, &[&format!("task=\"{task}\"")])
    };
    assert_eq!(
        series("jaga_task_up", "output/alerts_file"),
        Some(0.0),
        "{metrics}"
    );
    assert_eq!(series("jaga_task_up", "collector"), Some(1.0), "{metrics}");
    let age =
        series("jaga_task_last_progress_seconds", "output/alerts_file").expect("progress series");
    assert!(age > 30.0, "alerts_file progress age {age}");
}

fn listener_stat(agent: &common::agent::Agent, key: &str) -> u64 {
    let (_, body) = agent.get("/healthz");
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|h| h["docker_listener"][key].as_u64())
        .unwrap_or(0)
}

#[test]
fn create_event_refused_by_a_full_disk_is_stored_once_there_is_room() {
    require_engine();
    let tmpfs = Tmpfs::mount("64m");
    let agent = common::agent::Agent::start(
        &tmpfs.path().join("data"),
        "[docker_listener]\ninterval = \"1s\"\n[logs]\ndisabled = true\n[filesystem]\ndisabled = true\n",
    );
    let filler = tmpfs.path().join("filler");
    fill(&filler);
    // Containers created while the disk is full, until the store refused one.
    let mut created = Vec::new();
    let refused = wait_for(Duration::from_secs(60), || {
        created.push(common::TestContainer::run(
            "guard-full",
            &["--network", "none", common::BUSYBOX, "true"],
        ));
        (listener_stat(&agent, "store_failures_total") > 0).then_some(())
    });
    assert!(
        refused.is_some(),
        "the store never refused an event on a full disk"
    );
    std::fs::remove_file(&filler).expect("free space");
    for container in &created {
        let path = format!("/api/v1/events?container={}&action=create", container.name);
        let stored = wait_for(Duration::from_secs(90), || {
            let (status, body) = agent.get(&path);
            let events: Vec<serde_json::Value> = serde_json::from_str(&body).ok()?;
            (status == 200 && !events.is_empty()).then_some(events)
        });
        assert!(
            stored.is_some(),
            "the create event of {} was lost ({} containers created while full); by id: {:?}; health: {:?}",
            container.name,
            created.len(),
            agent.get(&format!("/api/v1/events?container={}", container.id)),
            agent.get("/healthz"),
        );
    }
    let metrics = agent.metrics();
    let failures =
        common::agent::series_value(&metrics, "jaga_docker_listener_store_failures_total", &[]);
    assert!(failures.is_some_and(|n| n > 0.0), "{metrics}");
}
