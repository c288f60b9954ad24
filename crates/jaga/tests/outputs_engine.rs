#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Delivery to outputs through the real agent and engine: the webhook
//! receiver is this test's own HTTP server on 127.0.0.1, which checks each
//! signature.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::agent::{free_port, get_url, Agent};
use common::*;

const SECRET: &str = "hook-signing-key-0f9e";

/// What the receiver got: each alert id with how many times, and every
/// signature it could not verify.
#[derive(Default)]
struct Received {
    ids: BTreeMap<String, u32>,
    bad_signatures: Vec<String>,
    requests: u32,
}

/// A webhook receiver on `port` that verifies `X-Jaga-Signature` and
/// answers 200; serves until the test ends.
fn start_receiver(port: u16) -> Arc<Mutex<Received>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("receiver port still free");
    let received = Arc::new(Mutex::new(Received::default()));
    let shared = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || serve_connection(stream, &shared));
        }
    });
    received
}

/// Keep-alive: requests one after another until the client closes.
fn serve_connection(stream: TcpStream, received: &Mutex<Received>) {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = BTreeMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers["content-length"].parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let alert: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let id = alert["id"].as_str().unwrap().to_owned();
        {
            let mut received = received.lock().unwrap();
            received.requests += 1;
            let signature = headers.get("x-jaga-signature").cloned().unwrap_or_default();
            if !verify(&key, &body, &signature)
                || headers.get("idempotency-key") != Some(&id)
                || headers.get("x-jaga-alert-id") != Some(&id)
            {
                received.bad_signatures.push(format!("{id}: {signature}"));
            }
            *received.ids.entry(id).or_default() += 1;
        }
        writer
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nreceived")
            .unwrap();
    }
}

fn verify(key: &ring::hmac::Key, body: &[u8], signature: &str) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(tag) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    ring::hmac::verify(key, body, &tag).is_ok()
}

fn exec_alerts(agent: &Agent, container: &str) -> Vec<serde_json::Value> {
    agent
        .json(&format!(
            "/api/v1/alerts?rule_id=91011&container={container}&limit=1000"
        ))
        .as_array()
        .unwrap()
        .clone()
}

fn wait_for_exec_alerts(agent: &Agent, container: &str, count: usize) -> Vec<serde_json::Value> {
    wait_for(Duration::from_secs(60), || {
        let alerts = exec_alerts(agent, container);
        (alerts.len() >= count).then_some(alerts)
    })
    .unwrap_or_else(|| {
        panic!(
            "{count} exec alerts stored; have {}",
            exec_alerts(agent, container).len()
        )
    })
}

#[test]
fn webhook_down_and_agent_killed_midway_still_gets_all_50_alerts_once_signed() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let secret_file = data.path().join("hook.key");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let target = TestContainer::run("hook", &["--network", "none", BUSYBOX, "sleep", "600"]);
    let port = free_port();
    let config = format!(
        "[audit]\ndisabled = true\n[logs]\ndisabled = true\n\
         [[outputs]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/jaga\"\n\
         secret = {{ file = \"{}\" }}\nrules = [\"91011\"]\ncontainers = [\"{}\"]\n\
         backoff_min = \"100ms\"\nbackoff_max = \"1s\"\n",
        secret_file.display(),
        target.name
    );
    let mut agent = Agent::start(data.path(), &config);
    for _ in 0..25 {
        docker(&["exec", &target.name, "true"]);
    }
    // Stored (and the receiver still down) before the kill.
    wait_for_exec_alerts(&agent, &target.name, 25);
    let outputs = agent.json("/api/v1/outputs");
    assert_eq!(outputs[0]["name"], "hook");
    assert_eq!(outputs[0]["type"], "webhook");
    agent.kill();
    // Raised while jaga is down: the listener replays them on restart.
    for _ in 0..25 {
        docker(&["exec", &target.name, "true"]);
    }
    let agent = Agent::start(data.path(), &config);
    let stored = wait_for_exec_alerts(&agent, &target.name, 50);
    assert_eq!(stored.len(), 50);
    let mut stats = serde_json::Value::Null;
    wait_for(Duration::from_secs(30), || {
        stats = agent.json("/api/v1/outputs")[0].clone();
        (stats["retried_total"].as_u64().unwrap_or(0) > 0 && stats["backlog"].as_u64() >= Some(1))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("the hook output retries with a backlog: {stats}"));
    assert!(
        stats["last_error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{stats}"
    );

    let received = start_receiver(port);
    wait_for(Duration::from_secs(60), || {
        (received.lock().unwrap().ids.len() >= 50).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "50 alerts delivered; got {}",
            received.lock().unwrap().ids.len()
        )
    });
    // Whatever would come twice has had time to.
    wait_for(Duration::from_secs(30), || {
        let stats = agent.json("/api/v1/outputs")[0].clone();
        (stats["backlog"] == 0 && stats["state"] == "idle").then_some(())
    })
    .expect("the hook output drains its backlog");
    std::thread::sleep(Duration::from_secs(2));
    let received = received.lock().unwrap();
    assert!(
        received.bad_signatures.is_empty(),
        "{:?}",
        received.bad_signatures
    );
    let twice: Vec<_> = received.ids.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(received.requests, 50);
    let stored_ids: std::collections::BTreeSet<String> = stored
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let received_ids: std::collections::BTreeSet<String> = received.ids.keys().cloned().collect();
    assert_eq!(received_ids, stored_ids);
    // Each alert says it reached the hook; the file has them too.
    for alert in exec_alerts(&agent, &target.name) {
        assert_eq!(alert["delivery"]["hook"], "delivered", "{alert}");
        assert_eq!(alert["delivery"]["alerts_file"], "delivered", "{alert}");
    }
    let metrics = agent.metrics();
    assert!(
        metrics.contains("jaga_output_delivered_alerts_total{output=\"hook\",type=\"webhook\"} 50"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.starts_with("jaga_output"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let in_file = std::fs::read_to_string(data.path().join("alerts.json")).unwrap();
    let file_ids: std::collections::BTreeSet<String> = parse_json_lines(in_file.as_bytes())
        .iter()
        .filter(|a| a["rule"]["id"] == "91011")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(file_ids.is_superset(&stored_ids));
}

#[test]
fn with_the_docker_listener_disabled_logs_the_audit_the_alerts_file_and_the_api_still_work() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "[docker_listener]\ndisabled = true\n");
    let port = free_port();
    let web = TestContainer::run(
        "nolistener",
        &["-p", &format!("127.0.0.1:{port}:80"), NGINX],
    );
    wait_for(Duration::from_secs(10), || {
        (get_url(&format!("http://127.0.0.1:{port}/"), None).0 == 200).then_some(())
    })
    .expect("nginx answers");
    get_url(
        &format!("http://127.0.0.1:{port}/users/?id=SELECT+*+FROM+users"),
        None,
    );
    let alert = wait_for(Duration::from_secs(30), || {
        let found = agent.json(&format!(
            "/api/v1/alerts?rule_id=93100&container={}&limit=10",
            web.name
        ));
        found.as_array().unwrap().first().cloned()
    })
    .expect("the log alert is raised and served");
    let id = alert["id"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(30), || {
        let file = std::fs::read_to_string(data.path().join("alerts.json")).unwrap_or_default();
        file.contains(&id).then_some(())
    })
    .expect("the log alert is in alerts.json");
    let (status, _) = agent.get("/api/v1/events?limit=1");
    assert_eq!(status, 200);
    wait_for(Duration::from_secs(60), || {
        (agent.get("/api/v1/audit").0 == 200).then_some(())
    })
    .expect("the audit runs");
    let health = agent.json("/healthz");
    assert!(health["tasks"].get("docker_listener").is_none(), "{health}");
    assert_eq!(health["tasks"]["logs"], "running", "{health}");
    assert_eq!(health["tasks"]["output/alerts_file"], "running", "{health}");
}
