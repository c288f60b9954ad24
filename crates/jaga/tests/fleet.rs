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
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::agent::{free_port, get_with_token, Agent};
use common::*;

const HUB_TOKEN: &str = "hub-token-5b1f0c";

/// A server process, killed when dropped; its output in `dir/NAME.log`.
struct Server {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn start(name: &'static str, mut command: Command, dir: &Path, port: u16) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut server = Self {
            name,
            child: Some(child),
            log,
        };
        let up = wait_for(Duration::from_secs(60), || {
            if let Some(status) = server
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("{name} exited with {status}:\n{}", server.output());
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        assert!(
            up.is_some(),
            "{name} not listening on {port}:\n{}",
            server.output()
        );
        server
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.name, self.output());
        }
    }
}

fn require(path: &str) -> &str {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: run scripts/receivers.sh (it installs nats-server, prometheus and postgresql)"
    );
    path
}

fn nats(dir: &Path, port: u16) -> Server {
    let config = dir.join("nats.conf");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:{port}\njetstream {{\n  store_dir: \"{}\"\n}}\n\
             authorization {{\n  users = [\n    {{ user: fleet-a, password: pass-a }}\n    \
             {{ user: fleet-b, password: pass-b }}\n    {{ user: hub, password: pass-hub }}\n  ]\n}}\n",
            dir.join("js").display()
        ),
    )
    .unwrap();
    let mut command = Command::new(require("/usr/sbin/nats-server"));
    command.arg("-c").arg(&config);
    Server::start("nats-server", command, dir, port)
}

fn prometheus(dir: &Path, port: u16) -> Server {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "storage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
    )
    .unwrap();
    let mut command = Command::new(require("/usr/bin/prometheus"));
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-remote-write-receiver");
    Server::start("prometheus", command, dir, port)
}

/// PostgreSQL in `dir`, run as the postgres user (it refuses root), trust
/// auth on 127.0.0.1 only.
fn postgres(dir: &Path, port: u16) -> Server {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join("bin"))
                .find(|p| p.join("initdb").exists())
        })
        .ok()
        .flatten()
        .expect("/usr/lib/postgresql/*/bin/initdb is missing: run scripts/receivers.sh");
    let data = dir.join("pg");
    std::fs::create_dir_all(&data).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "postgres:postgres", &dir.display().to_string()])
        .status()
        .unwrap();
    assert!(chown.success());
    let as_postgres = |program: &Path| {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    };
    let initdb = as_postgres(&bin.join("initdb"))
        .args(["-A", "trust", "-U", "postgres", "-D"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        initdb.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    let mut command = as_postgres(&bin.join("postgres"));
    command
        .arg("-D")
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1", "-c"])
        .arg(format!("port={port}"))
        .args(["-c"])
        .arg(format!("unix_socket_directories={}", dir.display()));
    Server::start("postgres", command, dir, port)
}

fn jaga_hub(config: &Path, dir: &Path, port: u16) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jaga"));
    command
        .args(["--config", &config.display().to_string(), "hub"])
        .env("RUST_LOG", "info");
    Server::start("jaga hub", command, dir, port)
}

fn agent_config(name: &str, nats_port: u16, prometheus_port: u16, password: &str) -> String {
    format!(
        "agent_name = \"{name}\"\n\
         [remote_write]\nurl = \"http://127.0.0.1:{prometheus_port}/api/v1/write\"\nevery = \"1s\"\ntimeout = \"5s\"\n\
         [[outputs]]\nname = \"fleet\"\ntype = \"nats\"\nservers = [\"nats://127.0.0.1:{nats_port}\"]\n\
         username = \"{name}\"\npassword = \"{password}\"\ntimeout = \"3s\"\nbackoff_max = \"2s\"\n\
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
    let hub_toml = |password: &str| {
        format!(
            "[serve.auth]\ntokens = [\"{}\"]\n[hub]\nlisten = \"127.0.0.1:{hub_port}\"\n\
             postgres = \"host=127.0.0.1 port={pg_port} user=postgres dbname=postgres\"\n\
             prometheus_url = \"http://127.0.0.1:{prometheus_port}\"\n\
             [hub.nats]\nservers = [\"nats://127.0.0.1:{nats_port}\"]\nusername = \"hub\"\npassword = \"{password}\"\ntimeout = \"5s\"\n",
            jaga_token_hash(HUB_TOKEN)
        )
    };

    // The hub with a wrong password says so and stops.
    std::fs::write(&hub_config, hub_toml("guessed")).unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(["--config", &hub_config.display().to_string(), "hub"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("refused the credentials"), "{said}");

    std::fs::write(&hub_config, hub_toml("pass-hub")).unwrap();
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
