#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Metric rules against the real engine and a real Prometheus: a busy
//! container held above its CPU limit fires once (also across a SIGKILL and
//! restart of the agent) and resolves once when the load stops; the same
//! rules exported for Prometheus pass `promtool check rules` and fire in a
//! Prometheus that scrapes `jaga serve`.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::agent::{free_port, get_url, Agent};
use common::{docker, require_engine, wait_for, TestContainer, BUSYBOX};

/// Generous: the machine is shared by several builds.
const DEADLINE: Duration = Duration::from_secs(120);

/// A container with a `yes` loop under `--cpus 0.2` (about 100 % of its
/// limit), that stays up when the loop is killed.
fn busy_container(prefix: &str) -> TestContainer {
    TestContainer::run(
        prefix,
        &[
            "--cpus",
            "0.2",
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "yes > /dev/null & exec sleep 3600",
        ],
    )
}

/// One CPU rule on `name` only, so other tests' containers do not count.
fn cpu_rule_file(dir: &Path, id: u32, name: &str, hold_for: &str) -> std::path::PathBuf {
    let path = dir.join(format!("metric-{id}.yml"));
    std::fs::write(
        &path,
        format!(
            "rules:
  - id: {id}
    level: 10
    description: CPU above half of the container's limit
    groups: [metrics, test]
    metric: cpu_limit_percent
    above: 50
    for: {hold_for}
    containers: {{ name: \"{name}\" }}
"
        ),
    )
    .unwrap();
    path
}

/// The metric alerts of `rule` as (status, episode key, id), oldest first.
fn episodes(agent: &Agent, rule: u32) -> Vec<(String, String, String)> {
    let alerts = agent.json(&format!("/api/v1/alerts?rule_id={rule}&limit=1000"));
    let mut out: Vec<(String, String, String)> = alerts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["location"], "metrics", "{a}");
            (
                a["episode"]["status"].as_str().unwrap().to_owned(),
                a["episode"]["key"].as_str().unwrap().to_owned(),
                a["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.reverse();
    out
}

fn statuses(agent: &Agent, rule: u32) -> Vec<String> {
    episodes(agent, rule).into_iter().map(|e| e.0).collect()
}

fn collections(agent: &Agent) -> f64 {
    common::agent::series_value(&agent.metrics(), "jaga_collections_total", &[]).unwrap_or(0.0)
}

fn config_for(rules: &Path) -> String {
    format!(
        "[metric_rules]\nrules = [\"{}\"]\nno_defaults = true\n[audit]\ndisabled = true\n[logs]\ndisabled = true\n",
        rules.display()
    )
}

#[test]
fn busy_container_fires_once_across_a_restart_and_resolves_once() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let busy = busy_container("metric-busy");
    let rules = cpu_rule_file(data.path(), 300201, &busy.name, "3s");
    let config = config_for(&rules);
    let mut agent = Agent::start(data.path(), &config);

    let fired = wait_for(DEADLINE, || {
        let seen = episodes(&agent, 300201);
        (!seen.is_empty()).then_some(seen)
    })
    .expect("no firing alert for the busy container");
    assert_eq!(fired.len(), 1, "{fired:?}");
    let (status, key, firing_id) = fired[0].clone();
    assert_eq!(status, "firing");
    assert_eq!(key, format!("300201/container/{}", busy.id));
    let alert = &agent.json("/api/v1/alerts?rule_id=300201")[0];
    assert_eq!(alert["container"]["name"], busy.name.as_str());
    assert_eq!(alert["data"]["metric"], "cpu_limit_percent");
    assert_eq!(alert["data"]["threshold"], "50");
    let value: f64 = alert["data"]["value"]
        .as_str()
        .unwrap()
        .trim_end_matches(" %")
        .parse()
        .unwrap();
    assert!(value > 50.0, "{alert}");

    // SIGKILL while firing; the restarted agent keeps the episode.
    agent.kill();
    let agent = Agent::start(data.path(), &config);
    wait_for(DEADLINE, || (collections(&agent) >= 8.0).then_some(()))
        .expect("the restarted agent did not collect");
    assert_eq!(statuses(&agent, 300201), vec!["firing"]);

    docker(&["exec", &busy.name, "killall", "yes"]);
    let ended = wait_for(DEADLINE, || {
        let seen = episodes(&agent, 300201);
        (seen.len() >= 2).then_some(seen)
    })
    .expect("no resolved alert after the load stopped");
    assert_eq!(ended.len(), 2, "{ended:?}");
    assert_eq!(ended[0], (status, key.clone(), firing_id.clone()));
    assert_eq!(ended[1].0, "resolved");
    assert_eq!(ended[1].1, key);
    assert_ne!(ended[1].2, firing_id);
    let resolved = &agent.json("/api/v1/alerts?rule_id=300201")[0];
    assert_eq!(
        resolved["data"]["reason"],
        "cpu_limit_percent no longer above 50"
    );
    assert!(resolved["episode"]["ended_at"].is_string(), "{resolved}");

    // Quiet afterwards: nothing more for the episode.
    let seen = collections(&agent);
    wait_for(DEADLINE, || {
        (collections(&agent) >= seen + 5.0).then_some(())
    })
    .expect("the agent stopped collecting");
    assert_eq!(statuses(&agent, 300201), vec!["firing", "resolved"]);
}

/// A process killed when the test ends, pass or fail.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn jaga_export(rules: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(["rules", "export", "--prometheus", "--rules"])
        .arg(rules)
        .output()
        .expect("run jaga rules export");
    assert!(
        out.status.success(),
        "jaga rules export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn exported_rules_pass_promtool_and_fire_in_prometheus_scraping_jaga() {
    require_engine();
    let dir = tempfile::tempdir().unwrap();
    let busy = busy_container("metric-prom");
    let rules = cpu_rule_file(dir.path(), 300301, &busy.name, "2s");
    let exported = dir.path().join("jaga-rules.yml");
    std::fs::write(&exported, jaga_export(&rules)).unwrap();

    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&exported)
        .output()
        .expect("run promtool (Debian package prometheus)");
    let report = String::from_utf8_lossy(&checked.stdout).into_owned()
        + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "promtool check rules: {report}");
    // The six built-in defaults with a PromQL form, and the test's rule.
    assert!(report.contains("SUCCESS: 7 rules found"), "{report}");

    let data = dir.path().join("jaga");
    let agent = Agent::start(&data, &config_for(&rules));
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    let mut file = std::fs::File::create(&config).unwrap();
    write!(
        file,
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files: ['{}']\n\
         scrape_configs:\n  - job_name: jaga\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        exported.display(),
        agent.port
    )
    .unwrap();
    let _prometheus = Reaped(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus (Debian package prometheus)"),
    );
    let api = |path: &str| -> Option<serde_json::Value> {
        let (status, body) = get_url(&format!("http://127.0.0.1:{port}{path}"), None);
        (status == 200).then(|| serde_json::from_str(&body).unwrap())
    };

    let firing = wait_for(DEADLINE, || {
        let alerts = api("/api/v1/alerts")?;
        alerts["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == "JagaCpuLimitPercent300301" && a["state"] == "firing"
            })
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "Prometheus never fired the exported rule: alerts {:?}, rules {:?}",
            api("/api/v1/alerts"),
            api("/api/v1/rules")
        )
    });
    assert_eq!(firing["labels"]["name"], busy.name.as_str(), "{firing}");
    assert_eq!(firing["labels"]["jaga_rule_id"], "300301", "{firing}");

    // Every exported rule evaluates over jaga's real /metrics without error.
    let rules = api("/api/v1/rules").expect("Prometheus rules API");
    let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(loaded.len(), 7, "{rules}");
    wait_for(DEADLINE, || {
        let rules = api("/api/v1/rules")?;
        let all = rules["data"]["groups"][0]["rules"].as_array()?.clone();
        all.iter()
            .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("a rule does not evaluate: {:?}", api("/api/v1/rules")));
}

#[test]
fn rules_check_validates_metric_rule_files_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let good = cpu_rule_file(dir.path(), 300401, "web-*", "5m");
    let ok = common::jaga(&["rules", "check", &good.display().to_string()]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        format!("{}: 1 metric rule(s) OK", good.display())
    );

    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "rules:
  - id: 300402
    level: 5
    description: fine
    metric: memory_limit_percent
    at_least: 90
  - id: 300403
    level: 5
    description: no window
    metric: restarts
    at_least: 3
  - id: \"92000\"
    level: 3
    description: reuses a built-in id
    metric: health
    is: sick
",
    )
    .unwrap();
    let failed = common::jaga(&["rules", "check", &bad.display().to_string()]);
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    let file = bad.display().to_string();
    for expected in [
        format!("'{file}', line 7: rule 300403: metric 'restarts' needs a window"),
        format!("'{file}', line 12: rule 92000: duplicate rule id"),
        format!("'{file}', line 12: rule 92000: is: 'sick' is not a health status"),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in {stderr}"
        );
    }

    // `jaga serve` refuses to start on it, before anything runs.
    let data = dir.path().join("data");
    let config = dir.path().join("jaga.toml");
    std::fs::write(
        &config,
        format!(
            "[serve]\nlisten = \"127.0.0.1:{}\"\ndata_dir = \"{}\"\n[metric_rules]\nrules = [\"{file}\"]\n",
            free_port(),
            data.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jaga"))
        .args(["--config", &config.display().to_string(), "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid metric rules") && stderr.contains("line 7: rule 300403"),
        "{stderr}"
    );
    assert!(!data.join("events.sqlite3").exists());
}

/// The exits a `restarts` rule counts come from the stored Docker events,
/// kept in memory between passes and read again when an event is stored:
/// exits that arrive after the agent started must still reach the count.
#[test]
fn a_restart_loop_fires_the_restarts_rule_from_exits_stored_while_running() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let name = common::unique_name("metric-restarts");
    let rules = data.path().join("metric-restarts.yml");
    std::fs::write(
        &rules,
        format!(
            "rules:
  - id: 300301
    level: 8
    description: Restart loop
    groups: [metrics, test]
    metric: restarts
    at_least: 3
    window: 10m
    containers: {{ name: \"{name}\" }}
"
        ),
    )
    .unwrap();
    let agent = Agent::start(data.path(), &config_for(&rules));
    // Evaluated (and its exits read) before the container exits at all.
    wait_for(DEADLINE, || (collections(&agent) >= 3.0).then_some(())).expect("the agent collects");
    assert!(statuses(&agent, 300301).is_empty());
    let looping = TestContainer {
        id: docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--restart",
            "on-failure:6",
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "sleep 1; exit 3",
        ]),
        name,
    };
    let fired = wait_for(DEADLINE, || {
        let seen = episodes(&agent, 300301);
        (!seen.is_empty()).then_some(seen)
    })
    .expect("no restart-loop alert for a container exiting again and again");
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert_eq!(fired[0].0, "firing");
    assert_eq!(fired[0].1, format!("300301/container/{}", looping.id));
    let alert = &agent.json("/api/v1/alerts?rule_id=300301")[0];
    // At least the rule's 3; on a loaded machine the pass that sees the
    // third exit can come after a fourth (7 exits at most: on-failure:6).
    let exits: u32 = alert["data"]["value"]
        .as_str()
        .and_then(|value| value.strip_suffix(" exits"))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no exit count in {alert}"));
    assert!((3..=7).contains(&exits), "{alert}");
}
