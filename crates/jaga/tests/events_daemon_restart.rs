#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Restarting dockerd between steps: the listener reconnects, replays from
//! its cursor, and every alert is there exactly once. Its own test binary:
//! cargo runs test binaries one after another, so no other test sees the
//! daemon go away.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::agent::Agent;
use common::*;

fn dockerd_pids() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "dockerd")
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Stops dockerd (SIGTERM, as a service manager would) and starts it again
/// with the test bed script.
fn restart_dockerd() {
    let pids = dockerd_pids();
    assert!(!pids.is_empty(), "no dockerd process to restart");
    let mut kill = vec!["-TERM".to_owned()];
    kill.extend(pids);
    assert!(Command::new("kill").args(&kill).status().unwrap().success());
    wait_for(Duration::from_secs(60), || {
        dockerd_pids().is_empty().then_some(())
    })
    .expect("dockerd stopped within 60 s");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testbed.sh");
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "testbed.sh failed to start dockerd again: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn alerts(agent: &Agent, rule: &str, name: &str) -> usize {
    agent
        .json(&format!(
            "/api/v1/alerts?rule_id={rule}&container={name}&limit=1000"
        ))
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn daemon_restart_between_steps_loses_nothing_and_repeats_nothing() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "[docker_listener]\ninterval = \"1s\"\n");
    let c = TestContainer::run("restart", &["--network", "none", BUSYBOX, "sleep", "3600"]);
    wait_for(SETTLE, || {
        (alerts(&agent, "91001", &c.name) == 1).then_some(())
    })
    .expect("start alert before the restart");

    restart_dockerd();
    // dockerd stopped the container on its way down; start it again.
    docker(&["start", &c.name]);
    wait_for(Duration::from_secs(15), || {
        (alerts(&agent, "91001", &c.name) == 2).then_some(())
    })
    .expect("second start alert after the daemon came back");

    restart_dockerd();
    docker(&["rm", "-f", &c.name]);
    wait_for(Duration::from_secs(15), || {
        (alerts(&agent, "91010", &c.name) == 1).then_some(())
    })
    .expect("destroy alert after the second restart");

    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(alerts(&agent, "91000", &c.name), 1, "create alert once");
    assert_eq!(
        alerts(&agent, "91001", &c.name),
        2,
        "one start alert per start"
    );
    assert_eq!(alerts(&agent, "91010", &c.name), 1, "destroy alert once");
    let events = agent.json(&format!("/api/v1/events?container={}&limit=1000", c.id));
    let mut identities: Vec<String> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}/{}", e["docker"]["time_nano"], e["docker"]["action"]))
        .collect();
    let total = identities.len();
    identities.sort();
    identities.dedup();
    assert_eq!(identities.len(), total, "an event stored twice");
    let health = agent.json("/healthz");
    assert_eq!(health["docker_listener"]["state"], "connected", "{health}");
    assert!(
        health["docker_listener"]["failures_total"]
            .as_u64()
            .unwrap()
            >= 2,
        "{health}"
    );
}
