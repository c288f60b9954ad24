#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP surface of `jaga serve` as an outsider meets it: a flood of idle
//! connections at a 1,024 file limit, an address off loopback with and
//! without a token, and TLS whose certificate is replaced on SIGHUP.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::agent::{get_with_token, series_value, Agent, Launch};
use common::*;

/// Lifts this test process's soft open-file limit to `needed`: it holds
/// more connections than the agent may.
fn raise_own_file_limit(needed: u64) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_none_or(|soft| soft >= needed) {
        return;
    }
    assert!(
        limit.maximum.is_none_or(|hard| hard >= needed),
        "this test needs {needed} open files; the hard limit is {:?}",
        limit.maximum
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(needed),
            maximum: limit.maximum,
        },
    )
    .expect("raise the open-file limit");
}

/// `Max open files` of a process: (soft, hard).
fn file_limit_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

/// Reads until the server closes the connection (EOF or reset).
fn wait_closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn idle_and_half_sent_connections_at_a_1024_file_limit_leave_metrics_healthz_and_the_engine_working(
) {
    require_engine();
    const IDLE: usize = 1100;
    const HALF_SENT: usize = 50;
    raise_own_file_limit((IDLE + HALF_SENT + 200) as u64);
    let container = TestContainer::run(
        "http-flood",
        &["--network", "none", BUSYBOX, "sleep", "3600"],
    );
    let data = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(
        data.path(),
        "[serve.http]\nheader_read_timeout = \"3s\"\n",
        Launch {
            wrapper: &["prlimit", "--nofile=1024:1024"],
            ..Launch::default()
        },
    );
    agent.wait_until("/healthz answers 200", |a| a.get("/healthz").0 == 200);
    assert_eq!(
        file_limit_of(agent.pid()),
        ("1024".to_owned(), "1024".to_owned())
    );

    let address = ("127.0.0.1", agent.port);
    let mut held: Vec<TcpStream> = (0..IDLE)
        .map(|_| TcpStream::connect(address).expect("connect"))
        .collect();
    for _ in 0..HALF_SENT {
        let mut stream = TcpStream::connect(address).expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: jaga\r\n")
            .unwrap();
        held.push(stream);
    }

    // With all of them open, the agent still answers and still reaches the Engine.
    assert_eq!(agent.get("/healthz").0, 200);
    let metrics = agent.metrics();
    assert!(
        metrics.contains(&format!("name=\"{}\"", container.name)),
        "the running container is missing from /metrics"
    );
    let listed = wait_for(Duration::from_secs(60), || {
        let containers = agent.json("/api/v1/containers?recent=1m");
        containers
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == container.id.as_str() && c["live"] == true)
            .then_some(())
    });
    assert!(listed.is_some(), "the container is not listed as live");

    // Each held connection is closed: at once to make room, or at the header timeout.
    let closed = held.iter_mut().map(wait_closed).filter(|c| *c).count();
    assert_eq!(closed, IDLE + HALF_SENT);

    let metrics = agent.metrics();
    let evicted = series_value(&metrics, "jaga_http_connections_evicted_total", &[]).unwrap();
    let timed_out = series_value(
        &metrics,
        "jaga_http_connections_timed_out_total",
        &["reason=\"header_read\""],
    )
    .unwrap();
    assert!(
        evicted >= (IDLE + HALF_SENT - 128) as f64,
        "evicted {evicted}"
    );
    assert!(timed_out >= 1.0, "timed out {timed_out}");
    let engine_errors = series_value(&metrics, "jaga_errors_total", &["kind=\"engine\""]).unwrap();
    assert_eq!(engine_errors, 0.0, "the Engine connection failed meanwhile");
    assert_eq!(agent.get("/healthz").0, 200);
}

#[test]
fn soft_file_limit_is_raised_to_the_hard_one_at_start() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let mut agent = Agent::spawn(
        data.path(),
        "",
        Launch {
            wrapper: &["prlimit", "--nofile=1024:8192"],
            ..Launch::default()
        },
    );
    agent.wait_until("/healthz answers 200", |a| a.get("/healthz").0 == 200);
    assert_eq!(
        file_limit_of(agent.pid()),
        ("8192".to_owned(), "8192".to_owned())
    );
}

/// A token from `jaga token new`, and the hash it tells to configure.
fn new_token() -> (String, String) {
    let out = jaga(&["token", "new"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let advice = String::from_utf8(out.stderr).unwrap();
    let hash = advice
        .split('"')
        .find(|part| part.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no hash in: {advice}"))
        .to_owned();
    assert!(token.starts_with("jaga_"), "{token}");
    (token, hash)
}

#[test]
fn listening_on_0_0_0_0_without_a_token_is_refused_and_with_one_every_api_call_needs_it() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let port = common::agent::free_port();
    let out = jaga(&[
        "serve",
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--data-dir",
        &data.path().display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "Error: refusing to serve on 0.0.0.0:{port} without authentication"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("[serve.auth] tokens"), "{stderr}");
    assert!(
        std::fs::read_dir(data.path()).unwrap().next().is_none(),
        "nothing is opened before the refusal"
    );

    let (token, hash) = new_token();
    assert_eq!(common::jaga_token_hash(&token), hash);

    let mut agent = Agent::spawn(
        data.path(),
        &format!("[serve.auth]\ntokens = [\"{hash}\"]\n"),
        Launch {
            listen_ip: Some("0.0.0.0"),
            ..Launch::default()
        },
    );
    agent.wait_until("/healthz answers 200 without a token", |a| {
        a.get("/healthz").0 == 200
    });
    for path in ["/metrics", "/api/v1/host"] {
        let (status, body) = agent.get(path);
        assert_eq!(status, 401, "{path} without a token: {body}");
        assert!(body.contains("\"status\":401"), "{body}");
        let (status, _) = get_with_token(&agent.url(path), "jaga_wrong");
        assert_eq!(status, 401, "{path} with a wrong token");
        let (status, body) = get_with_token(&agent.url(path), &token);
        assert_eq!(status, 200, "{path} with the token: {body}");
    }
    let (_, metrics) = get_with_token(&agent.url("/metrics"), &token);
    assert_eq!(
        series_value(
            &metrics,
            "jaga_http_auth_failures_total",
            &["reason=\"missing\""]
        ),
        Some(2.0)
    );

    // SIGHUP re-reads the tokens; it does not stop the agent.
    agent.signal("HUP");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(get_with_token(&agent.url("/api/v1/host"), &token).0, 200);
    assert_eq!(agent.get("/api/v1/host").0, 401);
}

/// A self-signed certificate for 127.0.0.1 and its key, by the openssl CLI.
fn self_signed(dir: &Path, name: &str) {
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(dir.join(format!("{name}.crt")))
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(out.status.success(), "openssl: {out:?}");
}

/// HTTPS GET by curl, trusting only `ca`: the status, 0 when the
/// handshake or the certificate check failed.
fn curl(agent: &Agent, ca: &Path, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .arg(format!("https://127.0.0.1:{}{path}", agent.port))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn reloads(agent: &Agent, ca: &Path, result: &str) -> f64 {
    let (_, metrics) = curl(agent, ca, "/metrics");
    series_value(
        &metrics,
        "jaga_http_tls_reloads_total",
        &[&format!("result=\"{result}\"")],
    )
    .unwrap_or(-1.0)
}

#[test]
fn tls_certificate_is_replaced_on_sighup_and_a_broken_pair_keeps_the_one_in_use() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let dir = certs.path();
    self_signed(dir, "first");
    self_signed(dir, "second");
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    std::fs::copy(dir.join("first.crt"), &cert).unwrap();
    std::fs::copy(dir.join("first.key"), &key).unwrap();
    let mut agent = Agent::spawn(
        data.path(),
        &format!(
            "[serve.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        Launch::default(),
    );
    let (first, second) = (dir.join("first.crt"), dir.join("second.crt"));
    agent.wait_until("/healthz answers 200 over TLS", |a| {
        curl(a, &first, "/healthz").0 == 200
    });
    assert_eq!(curl(&agent, &second, "/healthz").0, 0);
    assert_eq!(agent.get("/healthz").0, 0, "plain HTTP must not be served");

    std::fs::copy(dir.join("second.crt"), &cert).unwrap();
    std::fs::copy(dir.join("second.key"), &key).unwrap();
    agent.signal("HUP");
    let swapped = wait_for(Duration::from_secs(30), || {
        (curl(&agent, &second, "/healthz").0 == 200).then_some(())
    });
    assert!(
        swapped.is_some(),
        "the second certificate is not served after SIGHUP"
    );
    assert_eq!(curl(&agent, &first, "/healthz").0, 0);
    assert_eq!(reloads(&agent, &second, "ok"), 1.0);

    // The first certificate with the second key: refused, the second pair stays.
    std::fs::copy(dir.join("first.crt"), &cert).unwrap();
    agent.signal("HUP");
    let refused = wait_for(Duration::from_secs(30), || {
        (reloads(&agent, &second, "failed") == 1.0).then_some(())
    });
    assert!(refused.is_some(), "the broken pair was not refused");
    assert_eq!(curl(&agent, &second, "/healthz").0, 200);
    assert_eq!(curl(&agent, &first, "/healthz").0, 0);
}
