#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Docker events as security events, on the real engine: the nginx use case
//! step by step, SIGKILL of the agent between steps, a burst of containers,
//! and `jaga events`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::agent::Agent;
use common::*;

/// A new image (its own id) made from the nginx test image, so that
/// removing it deletes an image without touching the test bed's.
fn unique_nginx_image(prefix: &str) -> String {
    let tag = format!("jaga-test/nginx-{}:evt", unique_name(prefix));
    let scratch = unique_name("commit");
    docker(&["create", "--name", &scratch, "--network", "none", NGINX]);
    docker(&["commit", &scratch, &tag]);
    docker(&["rm", &scratch]);
    tag
}

fn image_id(tag: &str) -> String {
    docker(&["image", "inspect", "-f", "{{.Id}}", tag])
}

/// Alerts with `rule` whose container (or, for images, actor) is `subject`.
fn alerts_of(agent: &Agent, rule: &str, subject: &str) -> Vec<serde_json::Value> {
    let all = agent.json(&format!("/api/v1/alerts?rule_id={rule}&limit=10000"));
    all.as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["container"]["name"] == subject
                || a["container"]["id"] == subject
                || a["event"]["actor_id"] == subject
        })
        .cloned()
        .collect()
}

/// Waits up to `within` for the alert; returns how long it took.
fn expect_alert(
    agent: &Agent,
    rule: &str,
    level: u64,
    subject: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    let found = wait_for(within, || {
        let alerts = alerts_of(agent, rule, subject);
        (!alerts.is_empty()).then_some(alerts)
    });
    let alerts = found.unwrap_or_else(|| panic!("no alert {rule} for {subject} within {within:?}"));
    assert_eq!(alerts[0]["rule"]["level"], level, "{rule}: {}", alerts[0]);
    started.elapsed()
}

struct Step {
    rule: &'static str,
    level: u64,
    /// The image id instead of the container.
    image: bool,
}

const STEPS: [(&str, Step); 7] = [
    (
        "run",
        Step {
            rule: "91001",
            level: 3,
            image: false,
        },
    ),
    (
        "pause",
        Step {
            rule: "91003",
            level: 3,
            image: false,
        },
    ),
    (
        "unpause",
        Step {
            rule: "91004",
            level: 3,
            image: false,
        },
    ),
    (
        "stop",
        Step {
            rule: "91002",
            level: 3,
            image: false,
        },
    ),
    (
        "rm",
        Step {
            rule: "91010",
            level: 3,
            image: false,
        },
    ),
    (
        "rmi",
        Step {
            rule: "91057",
            level: 3,
            image: true,
        },
    ),
    (
        "rmi",
        Step {
            rule: "91052",
            level: 3,
            image: true,
        },
    ),
];

fn perform(step: &str, name: &str, image: &str) {
    match step {
        "run" => {
            docker(&["run", "-d", "--name", name, "-p", "127.0.0.1::80", image]);
        }
        "pause" | "unpause" | "rm" => {
            docker(&[step, name]);
        }
        "stop" => {
            docker(&["stop", "-t", "2", name]);
        }
        "rmi" => {
            docker(&["rmi", image]);
        }
        other => panic!("unknown step {other}"),
    }
}

fn assert_each_once(agent: &Agent, name: &str, id: &str, image_id: &str) {
    for (_, step) in &STEPS {
        let subject = if step.image { image_id } else { name };
        let alerts = alerts_of(agent, step.rule, subject);
        assert_eq!(
            alerts.len(),
            1,
            "rule {} for {subject}: {alerts:#?}",
            step.rule
        );
    }
    // Every event of the container is stored, once. (dockerd keeps only its
    // last 256 events, so under parallel tests `docker events --since` cannot
    // serve as the reference; the steps make exactly these.)
    let events = agent.json(&format!("/api/v1/events?container={id}&limit=10000"));
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for e in events.as_array().unwrap() {
        *stored
            .entry(e["docker"]["action"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        "create", "start", "pause", "unpause", "kill", "die", "stop", "destroy",
    ]
    .iter()
    .map(|a| ((*a).to_owned(), 1))
    .collect();
    assert_eq!(stored, expected, "stored events differ from the engine's");
}

#[test]
fn nginx_lifecycle_raises_each_alert_once() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let image = unique_nginx_image("life");
    let image_id = image_id(&image);
    let name = unique_name("nginx-life");
    let agent = Agent::start(data.path(), "");
    let mut slowest = Duration::ZERO;
    let mut id = String::new();
    for (step, expected) in &STEPS {
        if expected.rule != "91052" {
            perform(step, &name, &image);
        }
        if *step == "run" {
            id = docker(&["inspect", "-f", "{{.Id}}", &name]);
        }
        let subject = if expected.image {
            image_id.as_str()
        } else {
            name.as_str()
        };
        let took = expect_alert(&agent, expected.rule, expected.level, subject, SETTLE);
        slowest = slowest.max(took);
    }
    eprintln!("slowest alert after its docker command: {slowest:?}");
    assert_each_once(&agent, &name, &id, &image_id);

    // The alerts file holds the same alerts, one JSON object per line.
    let file = std::fs::read_to_string(data.path().join("alerts.json")).unwrap();
    let in_file = file
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|a| a["container"]["name"] == name.as_str())
        .count();
    let in_store = agent
        .json("/api/v1/alerts?limit=10000")
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["container"]["name"] == name.as_str())
        .count();
    assert_eq!(in_file, in_store);
    assert!(in_store >= 5);
}

#[test]
fn sigkill_between_steps_loses_nothing_and_repeats_nothing() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let image = unique_nginx_image("kill");
    let image_id = image_id(&image);
    let name = unique_name("nginx-kill");
    let mut id = String::new();
    let mut agent = Agent::start(data.path(), "");
    for (index, (step, expected)) in STEPS.iter().enumerate() {
        if expected.rule != "91052" {
            // Every other step happens while the agent is down.
            let while_down = index % 2 == 1;
            if while_down {
                agent.kill();
            }
            perform(step, &name, &image);
            if *step == "run" {
                id = docker(&["inspect", "-f", "{{.Id}}", &name]);
            }
            if while_down {
                agent = Agent::start(data.path(), "");
            }
        }
        let subject = if expected.image {
            image_id.as_str()
        } else {
            name.as_str()
        };
        expect_alert(&agent, expected.rule, expected.level, subject, SETTLE);
        // Killed right after the alert is stored: the restart replays from
        // the cursor, and must not add it again.
        agent.kill();
        agent = Agent::start(data.path(), "");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_each_once(&agent, &name, &id, &image_id);
}

#[test]
fn risky_container_starts_and_exec_rate_high() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    // The audit would add its own alerts (location "audit") for the same container.
    let agent = Agent::start(data.path(), "[audit]\ndisabled = true\n");
    let risky = TestContainer::run(
        "risky",
        &[
            "--network",
            "host",
            "--pid",
            "host",
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock:ro",
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    for (rule, level) in [("91031", 12), ("91033", 10), ("91034", 8), ("91036", 10)] {
        expect_alert(&agent, rule, level, &risky.name, SETTLE);
    }
    docker(&["exec", &risky.name, "cat", "/etc/hostname"]);
    expect_alert(&agent, "91011", 6, &risky.name, SETTLE);
    let exec = &alerts_of(&agent, "91011", &risky.name)[0];
    assert_eq!(exec["data"]["command"], "cat /etc/hostname");
    assert_eq!(
        exec["rule"]["description"],
        format!("Command run in container {}: cat /etc/hostname", risky.name)
    );
    assert_eq!(exec["rule"]["mitre"][0], "T1609");
    assert_eq!(exec["location"], "docker-events");
    assert_eq!(exec["event"]["action"], "exec_start");

    // A failing container: non-zero exit.
    let failing = TestContainer::run(
        "fails",
        &["--network", "none", BUSYBOX, "sh", "-c", "exit 3"],
    );
    expect_alert(&agent, "91006", 7, &failing.name, SETTLE);
    let die = &alerts_of(&agent, "91006", &failing.name)[0];
    assert_eq!(die["data"]["exit_code"], "3");

    // Alert filters of the API.
    let high = agent.json(&format!("/api/v1/alerts?level=10&container={}", risky.name));
    let rules: Vec<&str> = high
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 3, "{rules:?}");
    for rule in ["91031", "91033", "91036"] {
        assert!(rules.contains(&rule), "{rule} missing in {rules:?}");
    }
    let text = agent.json("/api/v1/alerts?q=CAT%20/ETC/HOSTNAME");
    assert_eq!(text.as_array().unwrap().len(), 1);
    let (status, body) = agent.get("/api/v1/alerts?level=16");
    assert_eq!(status, 400);
    assert!(body.contains("\"parameter\":\"level\""), "{body}");

    // The listener's own metrics, refreshed each collection interval.
    let metrics = wait_for(SETTLE, || {
        let m = agent.metrics();
        m.contains("jaga_docker_listener_up 1").then_some(m)
    })
    .unwrap_or_else(|| panic!("listener not up: {}", agent.get("/healthz").1));
    assert!(metrics.contains("jaga_alerts_total "));
}

#[test]
fn burst_of_containers_records_every_event_once() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "");
    let prefix = unique_name("burst");
    let since = docker(&["version", "-f", "{{.Server.Version}}"]); // engine is up
    assert!(!since.is_empty());
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let count = 60;
    let handles: Vec<_> = (0..4)
        .map(|worker| {
            let prefix = prefix.clone();
            std::thread::spawn(move || {
                for i in (worker..count).step_by(4) {
                    let name = format!("{prefix}-{i}");
                    docker(&[
                        "create",
                        "--name",
                        &name,
                        "--network",
                        "none",
                        BUSYBOX,
                        "true",
                    ]);
                    docker(&["rm", &name]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let named = |value: &serde_json::Value| {
        value["container"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with(&format!("{prefix}-")))
    };
    let stored = wait_for(Duration::from_secs(10), || {
        let events = agent.json(&format!(
            "/api/v1/events?from={t0}&type=container&limit=10000"
        ));
        let ours: Vec<serde_json::Value> = events
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| named(e))
            .cloned()
            .collect();
        (ours.len() >= 2 * count).then_some(ours)
    })
    .expect("every create and destroy stored within 10 s");
    assert_eq!(stored.len(), 2 * count, "each event exactly once");
    let mut per_action: BTreeMap<String, usize> = BTreeMap::new();
    for e in &stored {
        *per_action
            .entry(e["docker"]["action"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert_eq!(per_action["create"], count);
    assert_eq!(per_action["destroy"], count);
}

#[test]
fn jaga_events_shows_past_events_with_their_alerts() {
    require_engine();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1.0;
    let c = TestContainer::run("cli", &["--network", "none", BUSYBOX, "sleep", "3600"]);
    docker(&["pause", &c.name]);
    docker(&["unpause", &c.name]);
    let out = jaga(&[
        "events",
        "--since",
        &format!("{t0:.3}"),
        "--until",
        "0s",
        "--filter",
        &format!("container={}", c.name),
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = parse_json_lines(&out.stdout);
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["event"]["docker"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["create", "start", "pause", "unpause"]);
    let rules: Vec<&str> = lines
        .iter()
        .map(|l| l["alerts"][0]["rule"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules, vec!["91000", "91001", "91003", "91004"]);

    let table = jaga(&[
        "events",
        "--since",
        &format!("{t0:.3}"),
        "--until",
        "0s",
        "--filter",
        &format!("container={}", c.name),
        "--filter",
        "event=pause",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("  container  pause"), "{text}");
    assert!(
        text.contains(&format!("[91003 level 3] Container {} paused", c.name)),
        "{text}"
    );
    assert!(!text.contains("unpause"), "{text}");

    let bad = jaga(&["events", "--since", "yesterday"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("Error: invalid --since 'yesterday'"));
}
