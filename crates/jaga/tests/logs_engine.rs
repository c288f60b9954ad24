#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Container log analysis on the real engine: the nginx SQL injection use
//! case, checkpoints across SIGKILL, bad input, and the rule tools.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::agent::{free_port, get_url, Agent};
use common::*;

fn nginx(prefix: &str) -> (TestContainer, u16) {
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let c = TestContainer::run(prefix, &["-p", &publish, NGINX]);
    wait_for(Duration::from_secs(10), || {
        (get_url(&format!("http://127.0.0.1:{port}/"), None).0 == 200).then_some(())
    })
    .expect("nginx answers");
    (c, port)
}

fn alerts(agent: &Agent, rule: &str, container: &str) -> Vec<serde_json::Value> {
    agent.alerts(rule, container)
}

#[test]
fn sql_injection_through_nginx_raises_an_alert() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "[audit]\ndisabled = true\n");
    let (web, port) = nginx("sqli");
    let (status, _) = get_url(
        &format!("http://127.0.0.1:{port}/users/?id=SELECT+*+FROM+users"),
        None,
    );
    assert_eq!(status, 200);
    let found = wait_for(SETTLE, || {
        let a = alerts(&agent, "93100", &web.name);
        (!a.is_empty()).then_some(a)
    })
    .expect("SQL injection alert");
    assert_eq!(found.len(), 1);
    let alert = &found[0];
    assert_eq!(alert["rule"]["level"], 7);
    assert_eq!(alert["rule"]["description"], "SQL injection attempt");
    assert_eq!(alert["rule"]["mitre"][0], "T1190");
    assert_eq!(alert["data"]["url"], "/users/?id=SELECT+*+FROM+users");
    assert_eq!(alert["data"]["payload"], "=select * from");
    assert_eq!(alert["data"]["method"], "GET");
    assert_eq!(alert["data"]["status"], "200");
    let srcip = alert["data"]["srcip"].as_str().unwrap();
    assert!(srcip.parse::<std::net::IpAddr>().is_ok(), "srcip {srcip}");
    assert!(
        alert["data"]["timestamp"].as_str().unwrap().contains("/20"),
        "{alert}"
    );
    assert!(alert["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(alert["container"]["id"], web.id.as_str());
    assert!(alert["location"].as_str().unwrap().ends_with("-json.log"));

    // An ordinary request raises nothing.
    get_url(&format!("http://127.0.0.1:{port}/index.html?q=shoes"), None);
    std::thread::sleep(Duration::from_millis(800));
    let all = agent.json(&format!("/api/v1/alerts?container={}&limit=1000", web.name));
    let log_alerts = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["location"].as_str().unwrap_or_default().ends_with(".log"))
        .count();
    assert_eq!(log_alerts, 1);
}

#[test]
fn sigkill_neither_loses_nor_repeats_a_line() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let config = "[audit]\ndisabled = true\n";
    let mut agent = Agent::start(data.path(), config);
    let (web, port) = nginx("ckpt");
    get_url(
        &format!("http://127.0.0.1:{port}/a?file=../../etc/passwd"),
        None,
    );
    wait_for(SETTLE, || {
        (alerts(&agent, "93120", &web.name).len() == 1).then_some(())
    })
    .expect("first traversal alert");
    agent.kill();
    // While the agent is down.
    get_url(
        &format!("http://127.0.0.1:{port}/b?file=../../etc/shadow"),
        None,
    );
    agent = Agent::start(data.path(), config);
    let both = wait_for(SETTLE, || {
        let a = alerts(&agent, "93120", &web.name);
        (a.len() >= 2).then_some(a)
    })
    .expect("the line written while down is read after restart");
    std::thread::sleep(Duration::from_millis(800));
    let again = alerts(&agent, "93120", &web.name);
    assert_eq!(again.len(), 2, "each line's alert exactly once: {both:#?}");
    let urls: Vec<&str> = again
        .iter()
        .map(|a| a["data"]["url"].as_str().unwrap())
        .collect();
    assert!(
        urls.contains(&"/a?file=../../etc/passwd") && urls.contains(&"/b?file=../../etc/shadow"),
        "{urls:?}"
    );
}

#[test]
fn bad_input_is_counted_and_skipped_never_fatal() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let id = "f".repeat(64);
    std::fs::create_dir(logs.path().join(&id)).unwrap();
    let file = logs.path().join(&id).join(format!("{id}-json.log"));
    let config = format!(
        "[audit]\ndisabled = true\n[logs]\npaths = [\"{}/*/*-json.log\"]\nread_from = \"beginning\"\npoll = \"100ms\"\n",
        logs.path().display()
    );
    let agent = Agent::start(data.path(), &config);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
        .unwrap();
    f.write_all(b"{\"log\":\"broken json\n").unwrap();
    f.write_all(&[0xff, 0xfe, 0x00, 0x01, b'\n']).unwrap();
    f.write_all(b"\x00\x01\x02binary garbage\x7f\n").unwrap();
    let huge = "A".repeat(1 << 20);
    f.write_all(
        format!(
            "{{\"log\":\"{huge}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-23T03:00:00Z\"}}\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let attack = r#"203.0.113.9 - - [23/Nov/2026:03:24:25 +0000] \"GET /?q=<script>alert(1)</script> HTTP/1.1\" 200 1 \"-\" \"x\""#;
    f.write_all(
        format!(
            "{{\"log\":\"{attack}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-23T03:00:01Z\"}}\n"
        )
        .as_bytes(),
    )
    .unwrap();
    drop(f);
    // This agent also reads other tests' local-driver containers through
    // the Engine, so the alert is found by this line's source address.
    let xss = wait_for(SETTLE, || {
        let a = agent.json("/api/v1/alerts?rule_id=93110&limit=100");
        a.as_array()
            .unwrap()
            .iter()
            .find(|alert| alert["data"]["srcip"] == "203.0.113.9")
            .cloned()
    })
    .expect("the good line after the bad ones still raises its alert");
    assert_eq!(xss["rule"]["id"], "93110");
    let metrics = wait_for(SETTLE, || {
        let m = agent.metrics();
        m.contains("jaga_log_lines_skipped_total{reason=\"not_json\"} 3")
            .then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "skips not counted: {}",
            agent
                .metrics()
                .lines()
                .filter(|l| l.starts_with("jaga_log"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(
        metrics.contains("jaga_log_lines_skipped_total{reason=\"invalid_utf8\"} 1"),
        "{metrics}"
    );
    // Deleted while followed: the agent carries on.
    std::fs::remove_file(&file).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(agent.get("/healthz").0, 200);
}

#[test]
fn logtest_and_rules_check() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(["logtest", "--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"10.0.0.5 - - [23/Nov/2026:03:24:25 +0000] \"GET /fetch?u=http://169.254.169.254/latest/meta-data/ HTTP/1.1\" 200 5 \"-\" \"curl\"\nplain text line\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines = parse_json_lines(&out.stdout);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["decoder"], "access-combined");
    assert_eq!(lines[0]["fields"]["srcip"], "10.0.0.5");
    assert_eq!(lines[0]["rules"][0]["id"], "93140");
    assert_eq!(lines[0]["rules"][0]["level"], 10);
    assert_eq!(lines[1]["decoder"], "plain");
    assert_eq!(lines[1]["rules"].as_array().unwrap().len(), 0);

    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yml");
    std::fs::write(&good, "decoders:\n  - name: app\n    prematch: '^app:'\n    regex: 'user=(?P<user>\\S+)'\nrules:\n  - id: \"100001\"\n    level: 5\n    description: root login\n    decoder: app\n    match:\n      user: { equals: root }\n").unwrap();
    let ok = jaga(&["rules", "check", &good.display().to_string()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("1 rule(s) OK"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args([
            "logtest",
            "--format",
            "json",
            "--rules",
            &good.display().to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"app: login user=root\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = parse_json_lines(&out.stdout);
    assert_eq!(lines[0]["decoder"], "app");
    assert_eq!(lines[0]["rules"][0]["id"], "100001");

    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, "rules:\n  - id: ok\n    level: 3\n    description: d\n    match:\n      url: { literal: x }\n  - id: \"broken\"\n    level: 99\n    description: d\n    match:\n      status: { gt: 1, regex: x }\n").unwrap();
    let failed = jaga(&["rules", "check", &bad.display().to_string()]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("line 7: rule broken: level 99 is out of range 0..=15"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 7: rule broken: field 'status': give exactly one of"),
        "{stderr}"
    );
}

#[test]
fn containers_on_other_log_drivers_are_read_through_the_engine_api() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "[audit]\ndisabled = true\n");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let web = TestContainer::run("local", &["--log-driver", "local", "-p", &publish, NGINX]);
    wait_for(Duration::from_secs(10), || {
        (get_url(&format!("http://127.0.0.1:{port}/"), None).0 == 200).then_some(())
    })
    .expect("nginx answers");
    get_url(
        &format!("http://127.0.0.1:{port}/q?x=%3Cscript%3Ealert(1)%3C/script%3E"),
        None,
    );
    let found = wait_for(SETTLE, || {
        let a = alerts(&agent, "93110", &web.name);
        (!a.is_empty()).then_some(a)
    })
    .expect("XSS alert from a local-driver container");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["location"], format!("engine:{}", web.id).as_str());
    assert_eq!(found[0]["data"]["payload"], "<script");
}
