#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `jaga stats` against the real Docker Engine: known loads read as known
//! figures, and agree with `docker stats`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::agent::free_port;
use common::*;

#[test]
fn busy_loop_capped_at_half_a_cpu_reads_fifty_percent() {
    require_engine();
    let busy = TestContainer::busy_half_cpu("cpu");
    std::thread::sleep(Duration::from_secs(2));
    let rows = jaga_stats_json(&[&busy.name]);
    let cpu = parse_percent(row(&rows, &busy.name)["CPUPerc"].as_str().unwrap());
    assert!(
        (40.0..=60.0).contains(&cpu),
        "CPU % of a --cpus 0.5 busy loop: {cpu}"
    );
}

#[test]
fn memory_filled_to_32_mib_under_a_64_mib_limit() {
    require_engine();
    let filler = TestContainer::run(
        "mem",
        &[
            "--memory",
            "64m",
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/fill bs=1048576 count=32 2>/dev/null; touch /tmp/filled; sleep 3600",
        ],
    );
    wait_for(Duration::from_secs(10), || {
        let filled = docker_output(&["exec", &filler.name, "test", "-e", "/tmp/filled"]);
        filled.status.success().then_some(())
    })
    .expect("container filled its memory");
    let rows = jaga_stats_json(&[&filler.name]);
    let (usage, limit) = parse_pair(row(&rows, &filler.name)["MemUsage"].as_str().unwrap());
    let expected = 32.0 * 1024.0 * 1024.0;
    assert!(
        (usage - expected).abs() <= expected * 0.10,
        "memory usage {usage} not within 10 % of 32 MiB"
    );
    assert_eq!(
        row(&rows, &filler.name)["MemUsage"]
            .as_str()
            .unwrap()
            .split(" / ")
            .nth(1),
        Some("64MiB")
    );
    assert_eq!(limit, 64.0 * 1024.0 * 1024.0);
    let percent = parse_percent(row(&rows, &filler.name)["MemPerc"].as_str().unwrap());
    assert!((45.0..=55.0).contains(&percent), "MEM % {percent}");
}

#[test]
fn network_counters_grow_by_the_bytes_sent() {
    require_engine();
    // busybox nc keeps accepting and discards what it reads.
    let port = free_port();
    let sink = TestContainer::run(
        "net",
        &[
            "-p",
            &format!("127.0.0.1:{port}:9000"),
            BUSYBOX,
            "sh",
            "-c",
            "while :; do nc -l -p 9000 >/dev/null; done",
        ],
    );
    let before = net_rx(&sink.name);
    const SENT: usize = 2 * 1024 * 1024;
    let mut stream = wait_for(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    })
    .expect("connect to the published port");
    stream.write_all(&vec![b'x'; SENT]).expect("send");
    drop(stream);
    std::thread::sleep(Duration::from_millis(500));
    let after = net_rx(&sink.name);
    // Sizes are shown with 3 significant digits: allow that rounding.
    assert!(
        after - before >= SENT as f64 * 0.995,
        "rx grew by {} bytes, sent {SENT}",
        after - before
    );
}

fn net_rx(name: &str) -> f64 {
    let rows = jaga_stats_json(&[name]);
    parse_pair(row(&rows, name)["NetIO"].as_str().unwrap()).0
}

/// jaga and docker, asked in the same moment about the same containers,
/// give the same figures within the stated tolerances.
#[test]
fn figures_agree_with_docker_stats() {
    require_engine();
    let idle = TestContainer::run(
        "agree-idle",
        &["--network", "none", BUSYBOX, "sleep", "3600"],
    );
    let busy = TestContainer::run(
        "agree-busy",
        &[
            "--cpus",
            "0.3",
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    let mem = TestContainer::run(
        "agree-mem",
        &[
            "--memory",
            "128m",
            "--pids-limit",
            "50",
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "dd if=/dev/zero of=/dev/shm/fill bs=1048576 count=20 2>/dev/null; sleep 3600 & sleep 3600",
        ],
    );
    std::thread::sleep(Duration::from_secs(2));
    let names = [idle.name.as_str(), busy.name.as_str(), mem.name.as_str()];

    let mut docker_cmd = Command::new("docker");
    docker_cmd
        .args(["stats", "--no-stream", "--format", "json"])
        .args(names);
    let docker_child = docker_cmd
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker stats");
    let ours = jaga_stats_json(&names);
    let theirs = parse_json_lines(
        &docker_child
            .wait_with_output()
            .expect("docker stats")
            .stdout,
    );

    for name in names {
        let (a, b) = (row(&ours, name), row(&theirs, name));
        assert_eq!(a["ID"], b["ID"], "{name}");
        assert_eq!(a["Container"], b["Container"], "{name}");
        assert_eq!(a["PIDs"], b["PIDs"], "{name}");
        let (our_mem, our_limit) = parse_pair(a["MemUsage"].as_str().unwrap());
        let (their_mem, their_limit) = parse_pair(b["MemUsage"].as_str().unwrap());
        assert_eq!(our_limit, their_limit, "{name} memory limit");
        assert!(
            (our_mem - their_mem).abs() <= (their_mem * 0.05).max(512.0 * 1024.0),
            "{name} memory: jaga {our_mem}, docker {their_mem}"
        );
        let our_cpu = parse_percent(a["CPUPerc"].as_str().unwrap());
        let their_cpu = parse_percent(b["CPUPerc"].as_str().unwrap());
        assert!(
            (our_cpu - their_cpu).abs() <= 10.0,
            "{name} CPU: jaga {our_cpu}, docker {their_cpu}"
        );
        assert_eq!(
            a["NetIO"], b["NetIO"],
            "{name} network (no network: both 0B / 0B)"
        );
        let (our_read, our_write) = parse_pair(a["BlockIO"].as_str().unwrap());
        let (their_read, their_write) = parse_pair(b["BlockIO"].as_str().unwrap());
        assert!(
            (our_read - their_read).abs() <= their_read * 0.01 + 1.0,
            "{name} block read"
        );
        assert!(
            (our_write - their_write).abs() <= their_write * 0.01 + 1.0,
            "{name} block write"
        );
    }
}

#[test]
fn paused_container_shows_with_no_cpu() {
    require_engine();
    let c = TestContainer::run(
        "paused",
        &[
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    docker(&["pause", &c.name]);
    let rows = jaga_stats_json(&[&c.name]);
    docker(&["unpause", &c.name]);
    let r = row(&rows, &c.name);
    assert_eq!(r["CPUPerc"], "0.00%");
    assert_eq!(r["PIDs"], "1");
    assert_ne!(r["MemUsage"], "0B / 0B");
}

#[test]
fn stopped_container_shows_zeros_with_all_and_is_absent_without() {
    require_engine();
    let c = TestContainer::run("stopped", &["--network", "none", BUSYBOX, "sleep", "3600"]);
    docker(&["stop", "-t", "0", &c.name]);
    let all = jaga_stats_json(&["--all"]);
    let r = row(&all, &c.name);
    assert_eq!(r["CPUPerc"], "0.00%");
    assert_eq!(r["MemUsage"], "0B / 0B");
    assert_eq!(r["MemPerc"], "0.00%");
    assert_eq!(r["NetIO"], "0B / 0B");
    assert_eq!(r["BlockIO"], "0B / 0B");
    assert_eq!(r["PIDs"], "0");
    let running = jaga_stats_json(&[]);
    assert!(
        running.iter().all(|r| r["Name"] != c.name.as_str()),
        "stopped container listed without --all"
    );
}

#[test]
fn container_removed_while_shown_leaves_the_live_view() {
    require_engine();
    let keep = TestContainer::run(
        "live-keep",
        &["--network", "none", BUSYBOX, "sleep", "3600"],
    );
    let gone = TestContainer::run(
        "live-gone",
        &["--network", "none", BUSYBOX, "sleep", "3600"],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args([
            "stats",
            "--format",
            "{{.Name}} {{.CPUPerc}}",
            &keep.name,
            &gone.name,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start jaga stats");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut seen_both = false;
    for _ in 0..10 {
        let line = lines.next().expect("a line").expect("utf-8");
        if line.starts_with(&gone.name) {
            seen_both = true;
            break;
        }
    }
    assert!(seen_both, "the second container was shown");
    docker(&["rm", "-f", &gone.name]);
    // After removal, frames keep coming and only name the kept container.
    let mut after_removal = Vec::new();
    for _ in 0..8 {
        after_removal.push(lines.next().expect("the view goes on").expect("utf-8"));
    }
    assert!(
        child.try_wait().expect("poll").is_none(),
        "jaga stats exited"
    );
    let tail = &after_removal[after_removal.len() - 3..];
    assert!(
        tail.iter().all(|l| l.starts_with(&keep.name)),
        "{after_removal:?}"
    );
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn container_stopped_while_shown_stays_as_stopped() {
    require_engine();
    let c = TestContainer::run(
        "live-stop",
        &["--network", "none", BUSYBOX, "sleep", "3600"],
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args([
            "stats",
            "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}",
            &c.name,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start jaga stats");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a line").expect("utf-8");
    assert!(first.ends_with(" 1"), "{first}");
    docker(&["stop", "-t", "0", &c.name]);
    let stopped = (0..8)
        .map(|_| lines.next().expect("the view goes on").expect("utf-8"))
        .last()
        .expect("lines");
    assert_eq!(stopped, format!("{} 0B / 0B 0", c.name));
    child.kill().ok();
    child.wait().ok();
}

#[test]
fn unknown_container_is_an_error_with_exit_code_1() {
    require_engine();
    let out = jaga(&["stats", "--no-stream", "no-such-container-jaga"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error: No such container: no-such-container-jaga"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn unreachable_daemon_is_one_line_and_exit_code_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(["stats", "--no-stream"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run jaga");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim(),
        "Error: cannot connect to the Docker engine at unix:///nonexistent/docker.sock: no such socket file; is dockerd running? start it, or point DOCKER_HOST (or [engine] host) at the right socket"
    );
    assert_eq!(stderr.lines().count(), 1);
}

#[test]
fn table_output_has_docker_header_and_short_ids() {
    require_engine();
    let c = TestContainer::run("table", &["--network", "none", BUSYBOX, "sleep", "3600"]);
    let out = jaga(&["stats", "--no-stream", &c.name]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert!(header.starts_with("CONTAINER ID   NAME"), "{header}");
    assert!(
        header.contains("CPU %") && header.ends_with("PIDS"),
        "{header}"
    );
    let line = lines.next().expect("row");
    assert!(line.starts_with(&c.id[..12]), "{line}");
    let out = jaga(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "{{.ID}}",
        &c.name,
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), c.id);
}

#[test]
fn closed_pipe_ends_the_live_view_quietly() {
    require_engine();
    let _c = TestContainer::run("pipe", &["--network", "none", BUSYBOX, "sleep", "3600"]);
    // `head` exits after the first line; the next frame meets a closed pipe.
    let script = format!(
        "{} stats --format '{{{{.Name}}}}' | head -n 1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        env!("CARGO_BIN_EXE_jaga")
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .output()
        .expect("bash");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `jaga --config <the agent's> stats ARGS` with the Engine out of reach:
/// only the agent can answer it.
fn stats_without_engine(agent: &common::agent::Agent, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jaga"))
        .arg("--config")
        .arg(agent.config_path())
        .arg("stats")
        .args(args)
        .env("RUST_LOG", "warn")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .expect("run jaga stats")
}

/// With `jaga serve` running, `--no-stream` answers from its latest pass
/// (so it needs no Engine and no sampling window), and `--fresh` measures
/// afresh as without an agent.
#[test]
fn no_stream_answers_from_the_running_agent_and_fresh_measures() {
    require_engine();
    let busy = TestContainer::busy_half_cpu("from-agent");
    let data = tempfile::tempdir().expect("temp dir");
    let agent = common::agent::Agent::start(
        data.path(),
        "[audit]\ndisabled = true\n[logs]\ndisabled = true\n[process]\ndisabled = true\n",
    );
    let named = ["--no-stream", "--format", "json", busy.name.as_str()];
    let rows = wait_for(Duration::from_secs(90), || {
        let out = stats_without_engine(&agent, &named);
        if !out.status.success() {
            return None;
        }
        let rows = parse_json_lines(&out.stdout);
        let cpu = parse_percent(row(&rows, &busy.name)["CPUPerc"].as_str()?);
        (cpu > 0.0).then_some(rows)
    })
    .expect("jaga stats --no-stream never answered from the agent with the Engine out of reach");
    let entry = row(&rows, &busy.name);
    let cpu = parse_percent(entry["CPUPerc"].as_str().unwrap());
    assert!(
        (35.0..=65.0).contains(&cpu),
        "busy loop capped at 0.5 CPU read {cpu} %"
    );
    assert!(
        entry["ID"].as_str().unwrap().starts_with(&busy.id[..12]),
        "{entry}"
    );
    assert!(
        parse_size(
            entry["MemUsage"]
                .as_str()
                .unwrap()
                .split('/')
                .next()
                .unwrap()
        ) > 0.0
    );

    // Every running container, docker's way: the busy one among them.
    let out = stats_without_engine(&agent, &["--no-stream", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = parse_json_lines(&out.stdout);
    assert!(
        all.iter().any(|r| r["Name"] == busy.name.as_str()),
        "{all:?}"
    );

    // --fresh measures, so it needs the Engine it cannot reach.
    let out = stats_without_engine(&agent, &["--no-stream", "--fresh", busy.name.as_str()]);
    assert!(!out.status.success(), "--fresh answered without an Engine");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nonexistent"), "{stderr}");
}
