#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What jaga shows must neither drive a terminal nor leak a secret: escape
//! sequences from labels, exec commands and log lines reached `jaga events`,
//! `jaga logtest` and `/metrics` raw; a label the audit redacts and a
//! password on an exec command line were stored and served in clear.

mod common;

use std::path::Path;
use std::time::Duration;

use common::agent::Agent;
use common::{
    docker_output, jaga, parse_json_lines, require_engine, wait_for, TestContainer, BUSYBOX,
};

/// An OSC window title, a clear screen and a fake line.
const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J\x1b[H\nFAKE jaga line\r";

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Control characters a terminal acts on (newlines separate lines; tab is harmless).
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
        .collect()
}

/// `docker exec NAME sh -c SCRIPT`; its exit status does not matter.
fn exec_sh(name: &str, script: &str) {
    // 127 (command not found) is expected for clients the image lacks.
    let _ = docker_output(&["exec", name, "sh", "-c", script]).status;
}

/// The exec alert (rule 91011) the agent stored for `name`, once it is there.
fn exec_alert(agent: &Agent, name: &str) -> serde_json::Value {
    wait_for(Duration::from_secs(60), || {
        let alerts = agent.json(&format!("/api/v1/alerts?rule_id=91011&container={name}"));
        alerts.as_array().and_then(|a| a.first().cloned())
    })
    .unwrap_or_else(|| panic!("no exec alert for {name} within 60 s"))
}

/// `/metrics` once it shows the container.
fn metrics_with(agent: &Agent, name: &str) -> String {
    wait_for(Duration::from_secs(60), || {
        let m = agent.metrics();
        m.contains(&format!("name=\"{name}\"")).then_some(m)
    })
    .unwrap_or_else(|| panic!("{name} not in /metrics within 60 s"))
}

/// `jaga [--config FILE] events` over the container's past events.
fn jaga_events(config: Option<&Path>, since: f64, name: &str, json: bool) -> String {
    let mut args: Vec<String> = Vec::new();
    if let Some(config) = config {
        args.extend(["--config".to_owned(), config.display().to_string()]);
    }
    args.extend(
        [
            "events",
            "--since",
            &format!("{since:.3}"),
            "--until",
            "0s",
            "--filter",
            &format!("container={name}"),
            "--format",
            if json { "json" } else { "table" },
        ]
        .map(str::to_owned),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = jaga(&refs);
    assert!(
        out.status.success(),
        "jaga {refs:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn escape_sequences_from_labels_and_exec_commands_reach_no_terminal_and_no_metrics() {
    require_engine();
    let since = now_secs() - 1.0;
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "[audit]\ndisabled = true\n");
    let label = format!("com.example.title={HOSTILE}");
    let c = TestContainer::run(
        "escape",
        &[
            "--network",
            "none",
            "--label",
            &label,
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    exec_sh(&c.name, &format!(": '{HOSTILE}'"));
    let alert = exec_alert(&agent, &c.name);
    // The command is kept as it ran (JSON escapes it) ...
    assert!(
        alert["data"]["command"].as_str().unwrap().contains(HOSTILE),
        "{alert}"
    );

    // ... /metrics shows it as visible text, and still parses as before.
    let metrics = metrics_with(&agent, &c.name);
    assert_eq!(raw_controls(&metrics), Vec::<char>::new());
    assert!(
        metrics.contains(
            "container_label_com_example_title=\"\\\\x1b]0;pwned\\\\x07\\\\x1b[2J\\\\x1b[H\\nFAKE jaga line\\\\r\""
        ),
        "label not escaped as expected"
    );

    // `jaga events`: the table prints the exec's alert with the command escaped.
    let table = jaga_events(None, since, &c.name, false);
    assert_eq!(raw_controls(&table), Vec::<char>::new(), "{table:?}");
    assert!(
        table.contains("\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H\\nFAKE jaga line\\r"),
        "{table}"
    );
    assert!(
        !table.lines().any(|l| l.starts_with("FAKE")),
        "a fake line made it out: {table}"
    );
    let json = jaga_events(None, since, &c.name, true);
    assert_eq!(raw_controls(&json), Vec::<char>::new());
    let lines = parse_json_lines(json.as_bytes());
    assert!(lines.iter().any(|l| l["event"]["exec_command"]
        .as_str()
        .is_some_and(|c| c.contains(HOSTILE))));
}

#[test]
fn jaga_logtest_fed_a_line_with_escape_sequences_prints_none() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("access.log");
    // An SQL injection whose payload carries a title change and a clear
    // screen, and a line that is nothing but escape sequences.
    let hostile_line = HOSTILE.replace('\n', "");
    let line = format!(
        "203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] \"GET /item?id=1'%20UNION%20SELECT%20password%20FROM%20users--{} HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n{hostile_line}\n",
        hostile_line.replace(' ', "")
    );
    std::fs::write(&input, line).unwrap();
    let file = input.display().to_string();
    for args in [
        vec!["logtest", "--file", &file],
        vec!["logtest", "--file", &file, "--format", "json"],
        vec!["logtest", "--file", &file, "--summary"],
    ] {
        let out = jaga(&args);
        assert!(
            out.status.success(),
            "jaga {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            raw_controls(&stdout),
            Vec::<char>::new(),
            "{args:?}: {stdout:?}"
        );
        if args.len() == 3 {
            assert!(stdout.contains("\\x1b]0;pwned\\x07"), "{stdout}");
            assert!(stdout.contains("payload (url)"), "{stdout}");
        }
    }
}

/// A GitHub-token-shaped label value and two passwords on an exec command line.
struct Secrets {
    token: String,
    mysql_password: &'static str,
    pg_password: &'static str,
}

impl Secrets {
    fn new() -> Self {
        Self {
            token: format!("ghp_{:0>36}", std::process::id()).replace('0', "Q"),
            mysql_password: "S3cretPassw0rd",
            pg_password: "Pg5ecretValue77",
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.token, self.mysql_password, self.pg_password]
    }

    /// The secrets found in `text`.
    fn found_in<'a>(&'a self, text: &[u8]) -> Vec<&'a str> {
        self.all()
            .into_iter()
            .filter(|s| text.windows(s.len()).any(|w| w == s.as_bytes()))
            .collect()
    }
}

fn read_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// Waits until the agent's API knows the container: its page comes from the
/// collector's pass, which may come after the exec alert.
fn wait_for_container_page(agent: &Agent, name: &str) {
    wait_for(Duration::from_secs(30), || {
        (agent.get(&format!("/api/v1/containers/{name}")).0 == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("container {name} not in the API within 30 s"));
}

#[test]
fn secret_label_and_exec_passwords_appear_nowhere_unless_keep_raw() {
    require_engine();
    let since = now_secs() - 1.0;
    let secrets = Secrets::new();
    let redacting_dir = tempfile::tempdir().unwrap();
    let raw_dir = tempfile::tempdir().unwrap();
    let redacting = Agent::start(redacting_dir.path(), "");
    let raw = Agent::start(raw_dir.path(), "[redaction]\nkeep_raw = true\n");
    let label = format!("com.example.token={}", secrets.token);
    let c = TestContainer::run(
        "secret",
        &[
            "--network",
            "none",
            "--label",
            &label,
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    exec_sh(
        &c.name,
        &format!(
            "mysql -uroot -p{} -e 'select 1' shop; PGPASSWORD={} psql -h db",
            secrets.mysql_password, secrets.pg_password
        ),
    );

    // Redacted: the exec alert says what ran, without the passwords.
    let alert = exec_alert(&redacting, &c.name);
    let command = alert["data"]["command"].as_str().unwrap().to_owned();
    assert!(
        command.contains("-p<redacted, 14 chars>")
            && command.contains("PGPASSWORD=<redacted, 15 chars>"),
        "{command}"
    );
    let metrics = metrics_with(&redacting, &c.name);
    assert!(
        metrics.contains("container_label_com_example_token=\"<redacted, 40 chars>\""),
        "redacted label not in /metrics"
    );
    let alerts_file = redacting_dir.path().join("alerts.json");
    wait_for(Duration::from_secs(30), || {
        String::from_utf8_lossy(&read_bytes(&alerts_file))
            .contains("\"91011\"")
            .then_some(())
    })
    .expect("exec alert in alerts.json within 30 s");
    wait_for_container_page(&redacting, &c.name);
    let mut shown: Vec<(String, Vec<u8>)> = vec![
        ("/metrics".to_owned(), metrics.into_bytes()),
        ("alerts.json".to_owned(), read_bytes(&alerts_file)),
    ];
    for path in [
        format!("/api/v1/containers/{}", c.name),
        "/api/v1/containers".to_owned(),
        format!("/api/v1/events?container={}&limit=1000", c.name),
        format!("/api/v1/alerts?container={}&limit=1000", c.name),
        "/api/v1/audit".to_owned(),
    ] {
        let (status, body) = redacting.get(&path);
        assert_eq!(status, 200, "GET {path}: {body}");
        shown.push((path, body.into_bytes()));
    }
    let container = redacting.json(&format!("/api/v1/containers/{}", c.name));
    assert_eq!(
        container["labels"]["com.example.token"],
        "<redacted, 40 chars>"
    );
    for file in ["events.sqlite3", "history.sqlite3"] {
        for suffix in ["", "-wal"] {
            let name = format!("{file}{suffix}");
            shown.push((name.clone(), read_bytes(&redacting_dir.path().join(name))));
        }
    }
    shown.push((
        "jaga events".to_owned(),
        jaga_events(None, since, &c.name, false).into_bytes(),
    ));
    let events_json = jaga_events(None, since, &c.name, true);
    assert!(
        events_json.contains("<redacted, 40 chars>"),
        "{events_json}"
    );
    shown.push((
        "jaga events --format json".to_owned(),
        events_json.into_bytes(),
    ));
    for (place, bytes) in &shown {
        assert!(!bytes.is_empty(), "{place} is empty");
        assert_eq!(
            secrets.found_in(bytes),
            Vec::<&str>::new(),
            "secret in clear in {place}"
        );
    }
    // The audit still finds the label, and shows it redacted.
    wait_for(Duration::from_secs(60), || {
        let (_, audit) = redacting.get("/api/v1/audit");
        (audit.contains("com.example.token=<redacted, 40 chars>")
            && secrets.found_in(audit.as_bytes()).is_empty())
        .then_some(())
    })
    .unwrap_or_else(|| panic!("audit did not report the label redacted within 60 s"));

    // keep_raw: the values as they came.
    let alert = exec_alert(&raw, &c.name);
    let command = alert["data"]["command"].as_str().unwrap();
    assert!(command.contains(secrets.mysql_password), "{command}");
    assert!(command.contains(secrets.pg_password), "{command}");
    wait_for_container_page(&raw, &c.name);
    let container = raw.json(&format!("/api/v1/containers/{}", c.name));
    assert_eq!(
        container["labels"]["com.example.token"],
        secrets.token.as_str()
    );
    assert!(metrics_with(&raw, &c.name).contains(&secrets.token));
    let config = raw_dir.path().join("jaga.toml");
    std::fs::write(&config, "[redaction]\nkeep_raw = true\n").unwrap();
    let raw_events = jaga_events(Some(&config), since, &c.name, true);
    assert_eq!(
        secrets.found_in(raw_events.as_bytes()).len(),
        3,
        "{raw_events}"
    );
}
