#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `jaga audit` on the real engine: deliberately weak containers raise
//! exactly their findings, a hardened one none of the container checks,
//! secrets never show, and `jaga serve` audits continuously.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::agent::Agent;
use common::*;

/// A planted secret: no output may contain it.
const PLANTED: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYjagaPLANTED";

/// Findings every plain `docker run` of the busybox test image has.
const BASELINE: &[&str] = &[
    "4.1",
    "5.10",
    "5.11",
    "5.12",
    "5.14",
    "5.25",
    "5.26",
    "5.28",
    "jaga-5.3-drop",
];

fn audit_json(args: &[&str]) -> serde_json::Value {
    let mut full = vec!["audit", "--format", "json"];
    full.extend_from_slice(args);
    let out = jaga(&full);
    assert!(
        out.status.success(),
        "jaga {full:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn container_checks(report: &serde_json::Value, id: &str) -> BTreeSet<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["object"]["kind"] == "container" && f["object"]["id"] == id)
        .map(|f| f["check_id"].as_str().unwrap().to_owned())
        .collect()
}

fn expected(extra: &[&str], without: &[&str]) -> BTreeSet<String> {
    BASELINE
        .iter()
        .chain(extra)
        .filter(|c| !without.contains(c))
        .map(|c| (*c).to_owned())
        .collect()
}

struct Case {
    prefix: &'static str,
    args: Vec<&'static str>,
    /// `docker create` only: privileged containers cannot start on this host.
    create_only: bool,
    extra: Vec<&'static str>,
    without: Vec<&'static str>,
}

fn weak_cases() -> Vec<Case> {
    let secret_env: &'static str =
        Box::leak(format!("AWS_SECRET_ACCESS_KEY={PLANTED}").into_boxed_str());
    vec![
        Case {
            prefix: "priv",
            args: vec!["--privileged", "--network", "none"],
            create_only: true,
            extra: vec!["5.4"],
            without: vec!["jaga-5.3-drop"],
        },
        Case {
            prefix: "sock",
            args: vec![
                "--network",
                "none",
                "-v",
                "/var/run/docker.sock:/var/run/docker.sock",
            ],
            create_only: false,
            extra: vec!["5.31"],
            without: vec![],
        },
        Case {
            prefix: "pid",
            args: vec!["--network", "none", "--pid", "host"],
            create_only: false,
            extra: vec!["5.15"],
            without: vec![],
        },
        Case {
            prefix: "net",
            args: vec!["--network", "host"],
            create_only: false,
            extra: vec!["5.9"],
            without: vec![],
        },
        Case {
            prefix: "cap",
            args: vec!["--network", "none", "--cap-add", "SYS_ADMIN"],
            create_only: false,
            extra: vec!["5.3"],
            without: vec![],
        },
        Case {
            prefix: "secret",
            args: vec!["--network", "none", "-e", secret_env],
            create_only: false,
            extra: vec!["jaga-secret"],
            without: vec![],
        },
        Case {
            prefix: "port",
            args: vec!["-p", "80"],
            create_only: false,
            extra: vec!["5.13"],
            without: vec![],
        },
        Case {
            prefix: "nolimit",
            args: vec!["--network", "none"],
            create_only: false,
            extra: vec![],
            without: vec![],
        },
    ]
}

fn hardened() -> TestContainer {
    TestContainer::run(
        "hardened",
        &[
            "--read-only",
            "--user",
            "1000:1000",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "64",
            "--health-cmd",
            "cat /etc/hostname",
            "--restart",
            "on-failure:5",
            "-p",
            "127.0.0.1::80",
            BUSYBOX,
            "sleep",
            "3600",
        ],
    )
}

fn start(case: &Case) -> TestContainer {
    let mut args = case.args.clone();
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    if case.create_only {
        let name = unique_name(case.prefix);
        let mut full = vec!["create", "--name", name.as_str()];
        full.extend_from_slice(&args);
        let id = docker(&full);
        TestContainer { name, id }
    } else {
        TestContainer::run(case.prefix, &args)
    }
}

#[test]
fn weak_containers_raise_exactly_their_findings_and_the_hardened_one_none() {
    require_engine();
    let cases = weak_cases();
    let containers: Vec<TestContainer> = cases.iter().map(start).collect();
    let good = hardened();
    let report = audit_json(&[]);
    for (case, c) in cases.iter().zip(&containers) {
        assert_eq!(
            container_checks(&report, &c.id),
            expected(&case.extra, &case.without),
            "container {} ({:?})",
            case.prefix,
            case.args
        );
    }
    assert_eq!(
        container_checks(&report, &good.id),
        BTreeSet::new(),
        "hardened container"
    );

    // The image they run as :latest is an image finding, not a container one.
    let image_checks: BTreeSet<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["object"]["kind"] == "image" && f["object"]["name"] == BUSYBOX)
        .map(|f| f["check_id"].as_str().unwrap().to_owned())
        .collect();
    for check in ["jaga-image-latest", "jaga-image-digest", "4.1", "4.6"] {
        assert!(
            image_checks.contains(check),
            "{check} missing for {BUSYBOX}: {image_checks:?}"
        );
    }

    // Threat and practice of a few, and the per-threat scores.
    let finding = |id: &str, check: &str| -> serde_json::Value {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["object"]["id"] == id && f["check_id"] == check)
            .cloned()
            .unwrap()
    };
    let privileged = finding(&containers[0].id, "5.4");
    assert_eq!(privileged["severity"], "critical");
    assert_eq!(privileged["threat"], "container_escape");
    assert_eq!(privileged["practice"], "access_control");
    let socket = finding(&containers[1].id, "5.31");
    assert_eq!(
        socket["evidence"],
        "/var/run/docker.sock is mounted at /var/run/docker.sock (read-write)"
    );
    for threat in [
        "container_escape",
        "container_breakout",
        "image_poisoning",
        "container_sprawl",
        "container_hijacking",
    ] {
        assert!(report["scores"][threat].as_u64().unwrap() <= 100);
    }
    assert_eq!(report["scores"]["container_escape"], 0);
}

#[test]
fn selection_and_fail_on_set_what_runs_and_the_exit_code() {
    require_engine();
    let weak = TestContainer::run(
        "failon",
        &[
            "--network",
            "none",
            "--cap-add",
            "SYS_ADMIN",
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    let good = hardened();

    let only = audit_json(&["--container", &weak.name, "--check", "5.3"]);
    let checks: Vec<&str> = only["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check_id"].as_str().unwrap())
        .collect();
    assert_eq!(checks, vec!["5.3"]);

    let skipped = audit_json(&["--container", &weak.name, "--skip", "5.", "--skip", "jaga-"]);
    let checks: BTreeSet<&str> = skipped["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check_id"].as_str().unwrap())
        .collect();
    assert_eq!(checks, BTreeSet::from(["4.1"]));

    let failing = jaga(&["audit", "--container", &weak.name, "--fail-on", "high"]);
    assert_eq!(failing.status.code(), Some(3));
    let passing = jaga(&["audit", "--container", &good.name, "--fail-on", "low"]);
    assert_eq!(
        passing.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&passing.stdout)
    );

    let unknown = jaga(&["audit", "--container", "no-such-container-anywhere"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&unknown.stderr).trim(),
        "Error: No such container: no-such-container-anywhere"
    );
    // Usage errors, caught by clap before any Engine call: exit 2.
    let bad = jaga(&["audit", "--fail-on", "severe"]);
    assert_eq!(bad.status.code(), Some(2));
    let bad = jaga(&["audit", "--format", "yaml"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("[possible values: table, json, sarif]"),
        "{stderr}"
    );
}

#[test]
fn secrets_never_appear_in_any_output() {
    require_engine();
    let env = format!("AWS_SECRET_ACCESS_KEY={PLANTED}");
    let label = format!("deploy.password={PLANTED}");
    let c = TestContainer::run(
        "planted",
        &[
            "--network",
            "none",
            "-e",
            &env,
            "--label",
            &label,
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    let mut outputs = Vec::new();
    for format in ["table", "json", "sarif"] {
        let out = jaga(&["audit", "--format", format, "--container", &c.name]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            text.contains("AWS_SECRET_ACCESS_KEY=<redacted, 41 chars>"),
            "{format}: {text}"
        );
        outputs.push((format, text));
    }
    // Through the agent: the API, the alerts and the alerts file.
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "");
    let report = wait_for(Duration::from_secs(30), || {
        let (status, body) = agent.get("/api/v1/audit");
        (status == 200).then_some(body)
    })
    .expect("audit report within 30 s");
    outputs.push(("api audit", report));
    outputs.push(("api alerts", agent.get("/api/v1/alerts?limit=10000").1));
    std::thread::sleep(Duration::from_secs(1));
    outputs.push((
        "alerts.json",
        std::fs::read_to_string(data.path().join("alerts.json")).unwrap_or_default(),
    ));
    for (what, text) in &outputs {
        assert!(!text.contains(PLANTED), "{what} shows the planted secret");
        assert!(
            !text.contains("wJalrXUtnFEMI"),
            "{what} shows part of the planted secret"
        );
    }
    assert!(
        outputs[3].1.contains("jaga-secret"),
        "the secret finding is in the API report"
    );
}

#[test]
fn sarif_is_valid_for_code_scanning() {
    require_engine();
    let c = TestContainer::run(
        "sarif",
        &[
            "--network",
            "none",
            "--pid",
            "host",
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    let out = jaga(&["audit", "--format", "sarif", "--container", &c.name]);
    let sarif: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "jaga");
    let rules: BTreeSet<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let results = run["results"].as_array().unwrap();
    assert!(results
        .iter()
        .any(|r| r["ruleId"] == "5.15" && r["level"] == "error"));
    for r in results {
        assert!(rules.contains(r["ruleId"].as_str().unwrap()));
        assert_eq!(
            r["locations"][0]["logicalLocations"][0]["name"],
            c.name.as_str()
        );
    }
}

#[test]
fn daemon_checks_on_the_real_daemon_and_on_a_daemon_json_fixture() {
    require_engine();
    let real = audit_json(&["--check", "2.", "--check", "3."]);
    let checks: BTreeSet<&str> = real["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check_id"].as_str().unwrap())
        .collect();
    // The test bed's dockerd: no daemon.json, unix socket only, root:docker 660.
    assert!(checks.contains("2.1"), "{checks:?}");
    assert!(checks.contains("2.8"), "{checks:?}");
    assert!(!checks.contains("2.6"), "{checks:?}");
    assert!(
        !checks.contains("3.15") && !checks.contains("3.16"),
        "{checks:?}"
    );

    let fixture =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/daemon/exposed.json");
    let exposed = audit_json(&[
        "--check",
        "2.",
        "--daemon-json",
        &fixture.canonicalize().unwrap().display().to_string(),
    ]);
    let tcp = exposed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check_id"] == "2.6")
        .expect("2.6 from the fixture");
    assert_eq!(tcp["severity"], "critical");
    assert_eq!(
        tcp["evidence"],
        "listens on tcp://0.0.0.0:2375 without tlsverify"
    );
    let checks: BTreeSet<&str> = exposed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["check_id"].as_str().unwrap())
        .collect();
    for check in ["2.2", "2.3", "2.4"] {
        assert!(checks.contains(check), "{check} missing: {checks:?}");
    }
}

#[test]
fn serve_audits_each_container_start_and_alerts_once_per_finding() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "");
    wait_for(Duration::from_secs(30), || {
        (agent.get("/api/v1/audit").0 == 200).then_some(())
    })
    .expect("first audit within 30 s");
    let weak = TestContainer::run(
        "cont",
        &[
            "--network",
            "none",
            "--cap-add",
            "SYS_PTRACE",
            BUSYBOX,
            "sleep",
            "3600",
        ],
    );
    let alerts_for = |agent: &Agent| -> Vec<serde_json::Value> {
        agent
            .json(&format!(
                "/api/v1/alerts?rule_id=5.3&container={}",
                weak.name
            ))
            .as_array()
            .unwrap()
            .clone()
    };
    let alerts = wait_for(SETTLE, || {
        let a = alerts_for(&agent);
        (!a.is_empty()).then_some(a)
    })
    .expect("an audit alert for the started container");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["location"], "audit");
    assert_eq!(alerts[0]["rule"]["level"], 10);
    assert_eq!(alerts[0]["data"]["evidence"], "added: SYS_PTRACE");
    let in_report = wait_for(SETTLE, || {
        let report = agent.json("/api/v1/audit");
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["object"]["id"] == weak.id.as_str() && f["check_id"] == "5.3")
            .then_some(())
    });
    assert!(in_report.is_some(), "finding not in /api/v1/audit");
    // A restart audits again and finds it again: still one alert.
    drop(agent);
    let agent = Agent::start(data.path(), "");
    wait_for(Duration::from_secs(30), || {
        (agent.get("/api/v1/audit").0 == 200).then_some(())
    })
    .expect("audit after restart");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(alerts_for(&agent).len(), 1);
}

/// The CVE findings of `jaga audit` (check 1.1.2 and its info line), by
/// object id: (check id, severity, evidence).
fn cve_findings(extra: &[&str]) -> BTreeMap<String, (String, String, String)> {
    let mut args = vec!["--check", "1.1.2", "--check", "jaga-1.1.2"];
    args.extend_from_slice(extra);
    let report = audit_json(&args);
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let text = |k: &str| f[k].as_str().unwrap().to_owned();
            (
                f["object"]["id"].as_str().unwrap().to_owned(),
                (text("check_id"), text("severity"), text("evidence")),
            )
        })
        .collect()
}

/// Whether runc's Debian changelog names `cve`: read with zcat, apart
/// from jaga's own reader.
fn debian_changelog_names(cve: &str) -> bool {
    let out = std::process::Command::new("zcat")
        .arg("/usr/share/doc/runc/changelog.Debian.gz")
        .output()
        .expect("run zcat");
    String::from_utf8_lossy(&out.stdout).contains(cve)
}

#[test]
fn debian_runc_backport_is_fixed_by_the_distribution_and_the_2025_escapes_stay() {
    require_engine();
    let installed = std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "runc"])
        .output()
        .expect("run dpkg-query");
    let installed = String::from_utf8_lossy(&installed.stdout).into_owned();
    assert!(
        installed.starts_with("1.1.5+ds1-1+deb12u"),
        "this test needs Debian 12's runc package (1.1.5+ds1-1+deb12uN), found '{installed}'"
    );
    let found = cve_findings(&[]);

    let (check, severity, evidence) = found.get("runc/CVE-2024-21626").expect("CVE-2024-21626");
    assert_eq!(
        (check.as_str(), severity.as_str()),
        ("jaga-1.1.2-backported", "info")
    );
    assert!(
        evidence.contains(&format!("/usr/sbin/runc is dpkg package runc {installed}"))
            && evidence.contains("runc (1.1.5+ds1-1+deb12u1) bookworm-security: CVE-2024-21626: "),
        "{evidence}"
    );
    for cve in ["CVE-2025-31133", "CVE-2025-52565", "CVE-2025-52881"] {
        let (check, severity, evidence) = found.get(&format!("runc/{cve}")).expect(cve);
        if debian_changelog_names(cve) {
            // A later security upload fixed it: then it is no finding either.
            assert_eq!(check, "jaga-1.1.2-backported", "{evidence}");
        } else {
            assert_eq!(
                (check.as_str(), severity.as_str()),
                ("1.1.2", "high"),
                "{evidence}"
            );
            assert!(
                evidence.ends_with(&format!(
                    "{cve} is not named in /usr/share/doc/runc/changelog.Debian.gz, which was checked"
                )),
                "{evidence}"
            );
        }
    }

    let out = jaga(&["audit", "--explain", "CVE-2024-21626"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("  binary: /usr/sbin/runc, dpkg package runc {installed}; record of fixes: /usr/share/doc/runc/changelog.Debian.gz")),
        "{text}"
    );
    assert!(
        text.contains("  verdict: fixed by the distribution (info)"),
        "{text}"
    );
    let out = jaga(&["audit", "--explain", "CVE-2000-0001"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("jaga knows no 'CVE-2000-0001'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cve_data_of_the_config_replaces_or_extends_jagas() {
    require_engine();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cves.toml");
    std::fs::write(
        &data,
        r#"[[cve]]
id = "CVE-2099-0001"
component = "runc"
title = "a local advisory"
severity = "medium"
introduced = "1.0.0"
fixed = ["1.1.99"]
source = "https://example.org/local"
"#,
    )
    .unwrap();
    let config = |replaces: bool| {
        let path = dir.path().join(format!("jaga-{replaces}.toml"));
        std::fs::write(
            &path,
            format!(
                "[audit]\ncve_data = '{}'\ncve_data_replaces = {replaces}\n",
                data.display()
            ),
        )
        .unwrap();
        path.display().to_string()
    };
    let extended = cve_findings(&["--config", &config(false)]);
    let (check, severity, evidence) = extended.get("runc/CVE-2099-0001").expect("local CVE");
    assert_eq!((check.as_str(), severity.as_str()), ("1.1.2", "medium"));
    assert!(evidence.contains("is not named in"), "{evidence}");
    assert!(extended.contains_key("runc/CVE-2024-21626"), "{extended:?}");

    let replaced = cve_findings(&["--config", &config(true)]);
    assert_eq!(
        replaced.keys().collect::<Vec<_>>(),
        vec!["runc/CVE-2099-0001"]
    );

    std::fs::write(&data, "[[cve]]\nid = \"CVE-2099-0002\"\n").unwrap();
    let out = jaga(&["--config", &config(false), "audit"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "[audit] cve_data '{}' is not usable",
            data.display()
        )),
        "{stderr}"
    );
}
