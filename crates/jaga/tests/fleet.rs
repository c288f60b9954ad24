#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The fleet on loopback with real servers (`scripts/receivers.sh`
//! installs them): Debian's nats-server with JetStream, Prometheus with
//! its remote-write receiver, PostgreSQL in a temp dir; two `jaga serve`
//! agents with their own names and NATS users, and one `jaga hub`.
//!
//! NATS and Prometheus are stopped while Docker events raise alerts, one
//! agent is SIGKILLed and restarted in the middle, the servers come back:
//! every alert of both agents is in the hub's database once, and
//! Prometheus answers a range query over the outage with back-filled
//! points. Wrong credentials are refused on both sides with a clear error.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;
use std::time::Duration;

use common::agent::{free_port, get_with_token, Agent};
use common::fleet::*;
use common::*;

fn agent_config(name: &str, nats_port: u16, prometheus_port: u16, password: &str) -> String {
    format!(
        "agent_name = \"{name}\"\n\
         [remote_write]\nurl = \"http://127.0.0.1:{prometheus_port}/api/v1/write\"\nevery = \"1s\"\ntimeout = \"5s\"\n\
         [[outputs]]\nname = \"fleet\"\ntype = \"nats\"\nservers = [\"nats://127.0.0.1:{nats_port}\"]\n\
         username = \"{name}\"\npassword = \"{password}\"\ntimeout = \"3s\"\nbackoff_max = \"2s\"\nheartbeat = \"2s\"\n\
         containers = [\"jaga-test-fleet-*\"]\n"
    )
}

/// The ids of every alert an agent's nats output takes (about this test's
/// containers: the engine is shared with other tests), but those stored
/// before the output first ran (which it never sends).
fn agent_alert_ids(agent: &Agent) -> BTreeSet<String> {
    agent
        .json("/api/v1/alerts?limit=10000")
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            !matches!(
                a["delivery"]["fleet"].as_str(),
                Some("before_output" | "filtered")
            )
        })
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

/// What the hub serves for `host`: alerts and findings, by id, with how
/// often each comes.
fn hub_ids(hub_port: u16, host: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for path in ["alerts", "findings"] {
        let (status, body) = get_with_token(
            &format!("http://127.0.0.1:{hub_port}/api/v1/{path}?host={host}&limit=10000"),
            HUB_TOKEN,
        );
        if status != 200 {
            return Vec::new();
        }
        let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
        ids.extend(
            rows.as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
    }
    ids
}

/// What the hub lacks of an agent's alerts, and what the hub says of itself.
fn missing(agent: &Agent, host: &str, hub_port: u16) -> String {
    let got: BTreeSet<String> = hub_ids(hub_port, host).into_iter().collect();
    let lacking: Vec<String> = agent_alert_ids(agent).difference(&got).cloned().collect();
    let health = get_with_token(&format!("http://127.0.0.1:{hub_port}/healthz"), HUB_TOKEN).1;
    format!(
        "{host}: the hub lacks {} of them ({:?}); hub health {health}",
        lacking.len(),
        &lacking[..lacking.len().min(5)]
    )
}

/// `docker exec`: an alert on every agent (rule "command run in container").
fn raise_alert(container: &TestContainer) {
    docker(&["exec", &container.name, "true"]);
}

#[test]
fn the_fleet_loses_nothing_across_an_outage_and_a_killed_agent() {
    require_engine();
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL runs as its own user, which must reach its directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (nats_port, prometheus_port, pg_port, hub_port) =
        (free_port(), free_port(), free_port(), free_port());
    let nats_dir = dir.path().join("nats");
    let prometheus_dir = dir.path().join("prometheus");
    let pg_dir = dir.path().join("postgres");
    for d in [&nats_dir, &prometheus_dir, &pg_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut nats_server = nats(&nats_dir, nats_port);
    let mut prometheus_server = prometheus(&prometheus_dir, prometheus_port);
    let _postgres = postgres(&pg_dir, pg_port);

    let hub_config = dir.path().join("hub.toml");
    let hub_text = |password: &str| {
        hub_toml(hub_port, pg_port, nats_port, password)
            + &format!("prometheus_url = \"http://127.0.0.1:{prometheus_port}\"\n")
    };

    // The hub with a wrong password says so and stops.
    std::fs::write(&hub_config, hub_text("guessed")).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(["--config", &hub_config.display().to_string(), "hub"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("refused the credentials"), "{said}");

    std::fs::write(&hub_config, hub_text("pass-hub")).unwrap();
    let _hub = jaga_hub(&hub_config, dir.path(), hub_port);
    // Its API wants the token.
    let (status, body) = get_with_token(
        &format!("http://127.0.0.1:{hub_port}/api/v1/hosts"),
        "wrong",
    );
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("the token is not valid"), "{body}");

    // An agent with a wrong password: its output says why.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        agent_config("fleet-a", nats_port, prometheus_port, "guessed")
            .replace("agent_name = \"fleet-a\"\n", ""),
    )
    .unwrap();
    let tested = jaga(&[
        "--config",
        &bad.path().display().to_string(),
        "outputs",
        "test",
        "fleet",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(!tested.status.success(), "{said}");
    assert!(said.contains("refused the credentials"), "{said}");

    let data_a = dir.path().join("agent-a");
    let data_b = dir.path().join("agent-b");
    let config_a = agent_config("fleet-a", nats_port, prometheus_port, "pass-a");
    let config_b = agent_config("fleet-b", nats_port, prometheus_port, "pass-b");
    let mut agent_a = Agent::start(&data_a, &config_a);
    let agent_b = Agent::start(&data_b, &config_b);
    // A container that runs throughout: its points are what back-fills.
    let steady = TestContainer::run(
        "fleet-steady",
        &["--network", "none", BUSYBOX, "sleep", "600"],
    );
    raise_alert(&steady);
    let delivered = |agent: &Agent, host: &str| {
        let wanted = agent_alert_ids(agent);
        let got: BTreeSet<String> = hub_ids(hub_port, host).into_iter().collect();
        !wanted.is_empty() && wanted.is_subset(&got)
    };
    let before = wait_for(Duration::from_secs(90), || {
        (delivered(&agent_a, "fleet-a") && delivered(&agent_b, "fleet-b")).then_some(())
    });
    assert!(
        before.is_some(),
        "the alerts did not reach the hub before the outage: {}",
        missing(&agent_a, "fleet-a", hub_port)
    );

    // The outage: NATS and Prometheus gone while alerts are raised.
    nats_server.kill();
    prometheus_server.kill();
    let outage_start = chrono::Utc::now().timestamp();
    raise_alert(&steady);
    std::thread::sleep(Duration::from_secs(3));
    agent_a.kill();
    raise_alert(&steady);
    let agent_a = Agent::start(&data_a, &config_a);
    raise_alert(&steady);
    std::thread::sleep(Duration::from_secs(10));
    let outage_end = chrono::Utc::now().timestamp();
    let nats_server = nats(&nats_dir, nats_port);
    let prometheus_server = prometheus(&prometheus_dir, prometheus_port);

    let after = wait_for(Duration::from_secs(120), || {
        (delivered(&agent_a, "fleet-a") && delivered(&agent_b, "fleet-b")).then_some(())
    });
    assert!(
        after.is_some(),
        "alerts raised during the outage did not reach the hub: {} / {}",
        missing(&agent_a, "fleet-a", hub_port),
        missing(&agent_b, "fleet-b", hub_port)
    );
    for host in ["fleet-a", "fleet-b"] {
        let ids = hub_ids(hub_port, host);
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "{host}: a record twice: {ids:?}");
    }
    // Both hosts listed, with their last contact.
    let (status, body) = get_with_token(
        &format!("http://127.0.0.1:{hub_port}/api/v1/hosts"),
        HUB_TOKEN,
    );
    assert_eq!(status, 200, "{body}");
    let hosts: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["agent"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fleet-a", "fleet-b"], "{body}");
    assert!(
        hosts[0]["last_contact_unix_ms"].as_i64().unwrap() > 0,
        "{body}"
    );
    // Both agents' heartbeats reached the hub (their version and uptime
    // shown, both up), and none of them went into the stream, where the
    // consumer would have skipped them as not a record.
    let beating = wait_for(Duration::from_secs(60), || {
        let (status, body) = get_with_token(
            &format!("http://127.0.0.1:{hub_port}/api/v1/hosts"),
            HUB_TOKEN,
        );
        let hosts: serde_json::Value = serde_json::from_str(&body).ok()?;
        let all = hosts.as_array()?.iter().all(|h| {
            h["state"] == "up"
                && h["version"] == env!("CARGO_PKG_VERSION")
                && h["uptime_s"].as_i64().is_some()
                && h["last_heartbeat_unix_ms"].as_i64().is_some()
        });
        (status == 200 && all).then_some(())
    });
    let (_, hosts) = get_with_token(
        &format!("http://127.0.0.1:{hub_port}/api/v1/hosts"),
        HUB_TOKEN,
    );
    assert!(beating.is_some(), "no heartbeats: {hosts}");
    let (_, health) = get_with_token(&format!("http://127.0.0.1:{hub_port}/healthz"), HUB_TOKEN);
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert!(health["heartbeats_total"].as_u64().unwrap() > 0, "{health}");
    assert_eq!(health["skipped_total"], 0, "{health}");

    // Prometheus, through the hub, answers for the outage with points the
    // agents sent afterwards from their history.
    let query = format!(
        "http://127.0.0.1:{hub_port}/api/v1/metrics/query_range?query=count(container_processes{{instance%3D%22fleet-b%22}})&start={}&end={}&step=1",
        outage_start + 1,
        outage_end - 1
    );
    let back_filled = wait_for(Duration::from_secs(90), || {
        let (status, body) = get_with_token(&query, HUB_TOKEN);
        if status != 200 {
            return None;
        }
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        let points = answer["data"]["result"][0]["values"].as_array()?.len();
        // One point a second at most (step 1 s); most of the outage covered.
        (points as i64 >= (outage_end - outage_start) / 2).then_some(points)
    });
    assert!(
        back_filled.is_some(),
        "no back-filled points over the outage: {query}"
    );
    drop((nats_server, prometheus_server));
}

/// A record as the hub receives it.
fn incoming(agent: &str, kind: &str, id: &str, description: &str) -> jaga_hub::store::Incoming {
    let location = match kind {
        "events" => "docker-events",
        "findings" => "audit",
        _ => "/var/lib/docker/containers/c/c-json.log",
    };
    jaga_hub::store::Incoming {
        agent: agent.to_owned(),
        kind: kind.to_owned(),
        alert: serde_json::from_value(serde_json::json!({
            "id": id, "timestamp": "2026-01-01T00:00:00.000Z",
            "rule": {"id": "91011", "level": 6, "description": description, "groups": [], "mitre": []},
            "agent": {"id": "", "name": agent}, "data": {}, "location": location
        }))
        .unwrap(),
    }
}

/// PostgreSQL in a temp dir, and a runtime to drive the hub's store with.
struct HubDatabase {
    conninfo: String,
    runtime: tokio::runtime::Runtime,
    _postgres: Server,
    _dir: tempfile::TempDir,
}

impl HubDatabase {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        Self {
            _postgres: postgres(dir.path(), port),
            conninfo: format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            _dir: dir,
        }
    }

    /// The hub's writer, the tables created.
    async fn writer(&self) -> jaga_hub::store::Writer {
        let client = jaga_hub::store::connect(&self.conninfo).await.unwrap();
        jaga_hub::store::Writer::new(client).await.unwrap()
    }
}

#[test]
fn a_record_holding_a_nul_character_is_stored_not_refused_with_its_batch() {
    let db = HubDatabase::start();
    db.runtime.block_on(async {
        use jaga_hub::store::{self, RecordFilter};
        let writer = db.writer().await;
        // A log line's NUL in the description, in a data key and value,
        // in the id; and a backslash-u text that is not a NUL.
        let mut nul = incoming("edge-a", "alerts", "n\u{0}1", "line \u{0} end");
        nul.alert.data =
            serde_json::from_value(serde_json::json!({"k\u{0}": "v\u{0}", "text": "\\u0000"}))
                .unwrap();
        let batch = [incoming("edge-a", "alerts", "ok", "next to it"), nul];
        assert_eq!(writer.insert(&batch).await.unwrap(), 2);
        // Again: the same record, not a second one.
        assert_eq!(writer.insert(&batch).await.unwrap(), 0);
        let reader = store::connect(&db.conninfo).await.unwrap();
        let filter = RecordFilter {
            kinds: vec!["alerts".to_owned()],
            limit: 10,
            ..RecordFilter::default()
        };
        let stored = store::records(&reader, &filter).await.unwrap();
        let shown: Vec<String> = stored
            .iter()
            .map(|stored| serde_json::to_string(&stored.alert).unwrap())
            .collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        let nul = shown
            .iter()
            .find(|a| a.contains("n\u{FFFD}1"))
            .expect("the NUL record");
        assert!(nul.contains("line \u{FFFD} end"), "{nul}");
        assert!(nul.contains("\"k\u{FFFD}\":\"v\u{FFFD}\""), "{nul}");
        assert!(nul.contains(r#""text":"\\u0000""#), "{nul}");
    });
}

#[test]
fn a_batch_with_duplicates_and_every_kind_stores_each_record_once() {
    use jaga_hub::store::{self, Beat, HostThresholds, RecordFilter};
    let db = HubDatabase::start();
    db.runtime.block_on(async {
        let writer = db.writer().await;
        let reader = store::connect(&db.conninfo).await.unwrap();
        // One batch: each kind, a record twice, and one id on two hosts
        // (ids are unique per host only).
        let first = [
            incoming("edge-a", "alerts", "a1", "first"),
            incoming("edge-a", "events", "e1", "event"),
            incoming("edge-b", "findings", "f1", "finding"),
            incoming("edge-a", "alerts", "a1", "first, again"),
            incoming("edge-b", "alerts", "a1", "same id, other host"),
        ];
        assert_eq!(writer.insert(&first).await.unwrap(), 4);
        // Delivered again (a hub died before its acks) with a new one.
        let second = [
            incoming("edge-b", "findings", "f1", "finding, again"),
            incoming("edge-a", "alerts", "a1", "first, third time"),
            incoming("edge-a", "alerts", "a2", "second"),
        ];
        assert_eq!(writer.insert(&second).await.unwrap(), 1);
        // A batch PostgreSQL refuses stores nothing of itself, not even
        // its good records.
        reader
            .batch_execute("ALTER TABLE fleet_records ADD CONSTRAINT not_a4 CHECK (id <> 'a4')")
            .await
            .unwrap();
        let refused = [
            incoming("edge-a", "alerts", "a3", "good"),
            incoming("edge-a", "alerts", "a4", "refused"),
        ];
        assert!(writer.insert(&refused).await.is_err());
        reader
            .batch_execute("ALTER TABLE fleet_records DROP CONSTRAINT not_a4")
            .await
            .unwrap();
        assert_eq!(writer.insert(&[]).await.unwrap(), 0);

        let read = |kinds: &[&str], agent: Option<&str>| {
            let filter = RecordFilter {
                kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
                agent: agent.map(str::to_owned),
                limit: 100,
                ..RecordFilter::default()
            };
            let reader = &reader;
            async move {
                let mut got: Vec<String> = store::records(reader, &filter)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|stored| format!("{}:{}", stored.alert.id, stored.alert.rule.description))
                    .collect();
                got.sort();
                got
            }
        };
        assert_eq!(
            read(&["alerts", "events"], Some("edge-a")).await,
            ["a1:first", "a2:second", "e1:event"]
        );
        assert_eq!(
            read(&["alerts", "events"], Some("edge-b")).await,
            ["a1:same id, other host"]
        );
        assert_eq!(read(&["findings"], None).await, ["f1:finding"]);
        // Each record names the host it came from; the rule filter is exact.
        let by_rule = |rule: &str| RecordFilter {
            kinds: vec!["alerts".to_owned()],
            rule_id: Some(rule.to_owned()),
            limit: 100,
            ..RecordFilter::default()
        };
        let mut hosts: Vec<String> = store::records(&reader, &by_rule("91011"))
            .await
            .unwrap()
            .into_iter()
            .map(|stored| format!("{}:{}", stored.agent, stored.alert.id))
            .collect();
        hosts.sort();
        assert_eq!(hosts, ["edge-a:a1", "edge-a:a2", "edge-b:a1"]);
        assert!(store::records(&reader, &by_rule("9101"))
            .await
            .unwrap()
            .is_empty());
        let mut counts = store::counts(&reader).await.unwrap();
        counts.sort();
        let counts: Vec<(&str, &str, i64)> = counts
            .iter()
            .map(|(agent, kind, n)| (agent.as_str(), kind.as_str(), *n))
            .collect();
        assert_eq!(
            counts,
            [
                ("edge-a", "alerts", 2),
                ("edge-a", "events", 1),
                ("edge-b", "alerts", 1),
                ("edge-b", "findings", 1)
            ]
        );

        // Each host counts what it stored; both were just heard from.
        let thresholds = HostThresholds {
            quiet_after: Duration::from_secs(90),
            down_after: Duration::from_secs(600),
        };
        let hosts = store::hosts(&reader, thresholds).await.unwrap();
        let shown: Vec<(&str, i64, &str)> = hosts
            .iter()
            .map(|h| (h.agent.as_str(), h.records, h.state))
            .collect();
        assert_eq!(shown, [("edge-a", 3, "up"), ("edge-b", 2, "up")]);
        assert!(hosts.iter().all(|h| h.last_heartbeat_unix_ms.is_none()));

        // A heartbeat alone makes a host known, and `up`; the latest of a
        // host's heartbeats wins. Silence makes hosts quiet, then down.
        writer
            .heartbeats(&[
                Beat {
                    agent: "edge-c".to_owned(),
                    version: "0.0.1".to_owned(),
                    uptime_s: 5,
                    name: None,
                },
                Beat {
                    agent: "edge-c".to_owned(),
                    version: "0.0.1".to_owned(),
                    uptime_s: 35,
                    name: Some("edge-c".to_owned()),
                },
            ])
            .await
            .unwrap();
        reader
            .batch_execute(
                "UPDATE fleet_hosts SET last_contact = now() - interval '5 minutes' WHERE agent = 'edge-a';\
                 UPDATE fleet_hosts SET last_contact = now() - interval '20 minutes' WHERE agent = 'edge-b';",
            )
            .await
            .unwrap();
        let hosts = store::hosts(&reader, thresholds).await.unwrap();
        let shown: Vec<(&str, &str, Option<i64>, Option<&str>)> = hosts
            .iter()
            .map(|h| (h.agent.as_str(), h.state, h.uptime_s, h.version.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [
                ("edge-a", "quiet", None, None),
                ("edge-b", "down", None, None),
                ("edge-c", "up", Some(35), Some("0.0.1")),
            ]
        );
        assert!(hosts[2].last_heartbeat_unix_ms.is_some());
        assert_eq!(hosts[2].records, 0);
    });
}

#[test]
fn an_idle_agents_heartbeat_keeps_its_host_up_without_entering_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (nats_port, pg_port, hub_port) = (free_port(), free_port(), free_port());
    let nats_dir = dir.path().join("nats");
    let pg_dir = dir.path().join("postgres");
    for d in [&nats_dir, &pg_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let _nats = nats(&nats_dir, nats_port);
    let _postgres = postgres(&pg_dir, pg_port);
    let hub_config = dir.path().join("hub.toml");
    std::fs::write(
        &hub_config,
        hub_toml(hub_port, pg_port, nats_port, "pass-hub"),
    )
    .unwrap();
    let _hub = jaga_hub(&hub_config, dir.path(), hub_port);

    // The agent's nats output, as `jaga serve` runs it: heartbeats and,
    // for contrast, one record.
    let settings: jaga_outputs::NatsSettings = serde_json::from_value(serde_json::json!({
        "servers": [format!("nats://127.0.0.1:{nats_port}")],
        "username": "fleet-a", "password": "pass-a", "timeout": "5s",
    }))
    .unwrap();
    let output = jaga_outputs::NatsOutput::new(&settings).unwrap();
    // The client's connection runs on its own thread between the calls.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let beat = |uptime_s| jaga_outputs::Heartbeat {
        agent: "fleet-a".to_owned(),
        version: "9.8.7".to_owned(),
        uptime_s,
    };
    let hosts = || {
        let (status, body) = get_with_token(
            &format!("http://127.0.0.1:{hub_port}/api/v1/hosts"),
            HUB_TOKEN,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let mut uptime = 0;
    let seen = wait_for(Duration::from_secs(60), || {
        uptime += 1;
        runtime
            .block_on(jaga_outputs::Output::heartbeat(&output, &beat(uptime)))
            .ok()?;
        std::thread::sleep(Duration::from_millis(500));
        let hosts = hosts();
        (hosts[0]["uptime_s"].as_u64()? > 0).then_some(hosts)
    })
    .unwrap_or_else(|| panic!("no heartbeat in the hub: {}", hosts()));
    let host = &seen[0];
    assert_eq!(host["agent"], "fleet-a", "{seen}");
    assert_eq!(host["state"], "up", "{seen}");
    assert_eq!(host["version"], "9.8.7", "{seen}");
    assert_eq!(host["records"], 0, "{seen}");
    assert!(
        host["last_heartbeat_unix_ms"].as_i64().unwrap() > 0,
        "{seen}"
    );

    let record = jaga_outputs::StoredAlert {
        seq: 1,
        alert: incoming("fleet-a", "alerts", "r1", "a record").alert,
    };
    runtime
        .block_on(jaga_outputs::Output::deliver(
            &output,
            &jaga_outputs::Message::single(record),
        ))
        .unwrap();
    let stored = wait_for(Duration::from_secs(60), || {
        (hosts()[0]["records"] == 1).then_some(())
    });
    let (_, health) = get_with_token(&format!("http://127.0.0.1:{hub_port}/healthz"), HUB_TOKEN);
    assert!(stored.is_some(), "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    // The heartbeats came apart from the stream: the consumer saw the
    // record alone.
    assert_eq!(health["received_total"], 1, "{health}");
    assert_eq!(health["skipped_total"], 0, "{health}");
    assert!(
        health["heartbeats_total"].as_u64().unwrap() >= 1,
        "{health}"
    );
}
