//! Shared set-up for tests against the real Docker Engine that
//! `scripts/testbed.sh` starts: containers that clean up after themselves and
//! a runner for the `jaga` binary.

#![allow(dead_code)]

pub mod agent;
pub mod fleet;
pub mod prometheus;
pub mod tmpfs;

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BUSYBOX: &str = "jaga-test/busybox:latest";
pub const NGINX: &str = "jaga-test/nginx:latest";

/// Fails the test with one clear line when no engine answers: these tests
/// never skip in silence.
pub fn require_engine() {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "no Docker engine answers (`docker version` failed: {}); run scripts/testbed.sh first",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("the docker CLI cannot be run ({e}); run scripts/testbed.sh first"),
    }
}

/// Longest a `docker` command of a test may take: a stuck engine (a
/// `docker rm -f` that waits on a shim gone away) then fails the test that
/// met it, saying which call, instead of holding CI to its time limit.
const DOCKER_CALL_LIMIT: Duration = Duration::from_secs(300);

/// Runs `docker ARGS`, panicking with its stderr on failure, and when it
/// has not finished within DOCKER_CALL_LIMIT.
pub fn docker(args: &[&str]) -> String {
    let out = docker_output(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `docker ARGS` to its end, whatever its exit status; panics when it
/// has not finished within DOCKER_CALL_LIMIT.
pub fn docker_output(args: &[&str]) -> Output {
    run_within("docker", args, DOCKER_CALL_LIMIT)
        .unwrap_or_else(|e| panic!("{e} (the engine's log: /var/log/jaga-testbed-dockerd.log)"))
}

/// Runs `docker ARGS` for a clean-up, within DOCKER_CALL_LIMIT, and never
/// panics: a panic in `drop` while a failed test unwinds would abort the
/// run and hide that test's message.
pub fn docker_clean_up(args: &[&str]) {
    let _ = run_within("docker", args, DOCKER_CALL_LIMIT);
}

/// Runs `program ARGS` to its end, or kills it when it runs past `limit`.
pub fn run_within(program: &str, args: &[&str], limit: Duration) -> Result<Output, String> {
    let call = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{call} could not be run: {e}"))?;
    // Read both pipes as the command runs: one it fills would stop it.
    let readers = [
        child.stdout.take().map(read_in_background),
        child.stderr.take().map(read_in_background),
    ];
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{call} did not finish within {} s and was killed",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{call}: waiting for it failed: {e}")),
        }
    };
    let [stdout, stderr] =
        readers.map(|reader| reader.map_or_else(Vec::new, |r| r.join().unwrap_or_default()));
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// All of `pipe`, read on a thread of its own.
fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A name no other test or run uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "jaga-test-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A container removed (forcefully) when the test ends, pass or fail.
pub struct TestContainer {
    pub name: String,
    pub id: String,
}

impl TestContainer {
    /// `docker run -d --name <unique> ARGS`.
    pub fn run(prefix: &str, args: &[&str]) -> Self {
        let name = unique_name(prefix);
        let mut full = vec!["run", "-d", "--name", &name];
        full.extend_from_slice(args);
        let id = docker(&full);
        Self { name, id }
    }

    /// A busy loop capped at half a CPU (`--cpus 0.5`), with no network.
    pub fn busy_half_cpu(prefix: &str) -> Self {
        Self::run(
            prefix,
            &[
                "--cpus",
                "0.5",
                "--network",
                "none",
                BUSYBOX,
                "sh",
                "-c",
                "while :; do :; done",
            ],
        )
    }

    pub fn pid(&self) -> u32 {
        docker(&["inspect", "-f", "{{.State.Pid}}", &self.name])
            .parse()
            .expect("pid")
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        docker_clean_up(&["rm", "-f", &self.name]);
    }
}

/// Runs the `jaga` binary built for these tests.
pub fn jaga(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run jaga")
}

/// `jaga token hash` of `token`, given on stdin as README.md shows.
pub fn jaga_token_hash(token: &str) -> String {
    use std::io::Write as _;
    let out = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(["token", "hash"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(format!("{token}\n").as_bytes())?;
            }
            child.wait_with_output()
        })
        .expect("run jaga token hash");
    assert!(out.status.success(), "jaga token hash: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// `jaga stats --no-stream --format json ARGS`, one JSON object per row.
pub fn jaga_stats_json(args: &[&str]) -> Vec<serde_json::Value> {
    let mut full = vec!["stats", "--no-stream", "--format", "json"];
    full.extend_from_slice(args);
    let out = jaga(&full);
    assert!(
        out.status.success(),
        "jaga {full:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_json_lines(&out.stdout)
}

pub fn parse_json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// How long a test waits for a state the agent is to reach (an alert
/// stored, a series gone): generous, as two loaded cores can delay it by
/// seconds; a passing run waits only as long as it takes. Speed goals are
/// the benchmarks' (bench/).
pub const SETTLE: Duration = Duration::from_secs(30);

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Parses docker's size strings: `324KiB`, `23.54GiB`, `1.2kB`, `648B`, `1e+03kB`.
pub fn parse_size(text: &str) -> f64 {
    let text = text.trim();
    let split = text
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .unwrap_or_else(|_| panic!("bad size {text:?}"));
    let factor = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0_f64.powi(4),
        other => panic!("unknown unit {other:?} in {text:?}"),
    };
    number * factor
}

/// `"1.2kB / 648B"` → (1200, 648).
pub fn parse_pair(text: &str) -> (f64, f64) {
    let (a, b) = text
        .split_once(" / ")
        .unwrap_or_else(|| panic!("not a pair: {text:?}"));
    (parse_size(a), parse_size(b))
}

pub fn parse_percent(text: &str) -> f64 {
    text.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("bad percent {text:?}"))
}

/// The row for `name` in `rows`.
pub fn row<'a>(rows: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["Name"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {rows:#?}"))
}
