use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use bollard::models::{
    ContainerConfig, ContainerInspectResponse, HostConfig, MountPoint, PluginsInfo, PortBinding,
    RestartPolicy, SystemInfo, SystemVersion, SystemVersionComponents,
};

use super::*;
use crate::facts::SocketFacts;

fn daemon_json(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/daemon")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn info(userns: bool, live_restore: bool) -> SystemInfo {
    SystemInfo {
        name: Some("host1".to_owned()),
        security_options: Some(if userns {
            vec![
                "name=seccomp,profile=default".to_owned(),
                "name=userns".to_owned(),
            ]
        } else {
            vec!["name=seccomp,profile=default".to_owned()]
        }),
        live_restore_enabled: Some(live_restore),
        logging_driver: Some("json-file".to_owned()),
        plugins: Some(PluginsInfo {
            authorization: Some(vec!["opa-docker-authz".to_owned()]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn daemon_ids(daemon: DaemonFacts) -> BTreeSet<String> {
    let input = AuditInput {
        daemon,
        ..Default::default()
    };
    run(&input, &Selection::default())
        .into_iter()
        .map(|f| f.check_id)
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn hardened_daemon_json_raises_nothing() {
    let daemon = DaemonFacts {
        info: Some(info(true, true)),
        daemon_json: Some(daemon_json("hardened.json")),
        daemon_json_path: "/etc/docker/daemon.json".to_owned(),
        socket: Some(SocketFacts {
            path: "/var/run/docker.sock".to_owned(),
            mode: 0o660,
            owner: "root".to_owned(),
            group: "docker".to_owned(),
        }),
        ..Default::default()
    };
    assert_eq!(daemon_ids(daemon), BTreeSet::new());
}

#[test]
fn exposed_daemon_json_raises_the_classic_hijack() {
    let daemon = DaemonFacts {
        info: Some(info(false, false)),
        daemon_json: Some(daemon_json("exposed.json")),
        daemon_json_path: "/etc/docker/daemon.json".to_owned(),
        socket: Some(SocketFacts {
            path: "/var/run/docker.sock".to_owned(),
            mode: 0o666,
            owner: "root".to_owned(),
            group: "root".to_owned(),
        }),
        docker_group_members: vec!["alice".to_owned()],
        ..Default::default()
    };
    let input = AuditInput {
        daemon,
        ..Default::default()
    };
    let findings = run(&input, &Selection::default());
    let found: BTreeSet<String> = findings.iter().map(|f| f.check_id.clone()).collect();
    assert_eq!(
        found,
        ids(&[
            "1.2.2",
            "2.1",
            "2.13",
            "2.14",
            "2.17",
            "2.2",
            "2.3",
            "2.4",
            "2.6",
            "2.7",
            "2.8",
            "3.15",
            "3.16",
            "jaga-daemon-log-rotation"
        ])
    );
    let tcp = findings.iter().find(|f| f.check_id == "2.6").unwrap();
    assert_eq!(tcp.severity, Severity::Critical);
    assert_eq!(tcp.threat, Threat::ContainerHijacking);
    assert_eq!(
        tcp.evidence,
        "listens on tcp://0.0.0.0:2375 without tlsverify"
    );
    // Worst first.
    assert_eq!(findings[0].check_id, "2.6");
}

#[test]
fn tcp_with_tls_verify_is_not_a_finding() {
    let daemon = DaemonFacts {
        info: Some(info(true, true)),
        daemon_json: Some(daemon_json("tls.json")),
        ..Default::default()
    };
    assert!(!daemon_ids(daemon).contains("2.6"));
}

#[test]
fn command_line_flags_count_like_daemon_json() {
    let daemon = DaemonFacts {
        info: Some(info(true, true)),
        dockerd_args: [
            "dockerd",
            "-H",
            "tcp://0.0.0.0:2375",
            "--icc=false",
            "--userland-proxy=false",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
        ..Default::default()
    };
    let found = daemon_ids(daemon);
    assert!(found.contains("2.6"));
    assert!(!found.contains("2.1"));
    assert!(!found.contains("2.14"));
}

#[test]
fn installed_versions_are_checked_against_the_cve_data() {
    let version = SystemVersion {
        version: Some("20.10.24+dfsg1".to_owned()),
        components: Some(vec![
            SystemVersionComponents {
                name: "Engine".to_owned(),
                version: "20.10.24+dfsg1".to_owned(),
                details: None,
            },
            SystemVersionComponents {
                name: "runc".to_owned(),
                version: "1.1.11".to_owned(),
                details: None,
            },
        ]),
        ..Default::default()
    };
    let input = AuditInput {
        daemon: DaemonFacts {
            version: Some(version),
            ..Default::default()
        },
        ..Default::default()
    };
    let findings = run(&input, &Selection::default());
    let cves: Vec<(&str, Severity)> = findings
        .iter()
        .map(|f| (f.object.id.as_str(), f.severity))
        .collect();
    assert!(
        cves.contains(&("runc/CVE-2024-21626", Severity::Critical)),
        "{cves:?}"
    );
    // A distribution build: one severity lower, and said so.
    assert!(
        cves.contains(&("engine/CVE-2024-41110", Severity::High)),
        "{cves:?}"
    );
    let engine = findings
        .iter()
        .find(|f| f.object.id == "engine/CVE-2024-41110")
        .unwrap();
    assert!(engine.evidence.contains("backported"));
    assert!(engine.evidence.contains("GHSA-v23v-6jw2-98fq"));
}

fn container(name: &str, host: HostConfig, config: ContainerConfig) -> ContainerInspectResponse {
    ContainerInspectResponse {
        id: Some(format!("{name}-id")),
        name: Some(format!("/{name}")),
        host_config: Some(host),
        config: Some(config),
        ..Default::default()
    }
}

fn hardened_host() -> HostConfig {
    HostConfig {
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        readonly_rootfs: Some(true),
        memory: Some(64 << 20),
        nano_cpus: Some(500_000_000),
        pids_limit: Some(64),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(5),
        }),
        port_bindings: Some(HashMap::from([(
            "80/tcp".to_owned(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                host_port: Some("8080".to_owned()),
            }]),
        )])),
        ..Default::default()
    }
}

fn hardened_config() -> ContainerConfig {
    ContainerConfig {
        user: Some("1000:1000".to_owned()),
        healthcheck: Some(bollard::models::HealthConfig {
            test: Some(vec!["CMD".to_owned(), "true".to_owned()]),
            ..Default::default()
        }),
        env: Some(vec!["PATH=/usr/bin".to_owned()]),
        ..Default::default()
    }
}

fn container_ids(c: ContainerInspectResponse) -> BTreeSet<String> {
    let input = AuditInput {
        containers: vec![c],
        ..Default::default()
    };
    run(
        &input,
        &Selection {
            containers: vec![],
            checks: vec![],
            skip: vec![],
        },
    )
    .into_iter()
    .filter(|f| f.object.kind == "container")
    .map(|f| f.check_id)
    .collect()
}

#[test]
fn hardened_container_passes_every_container_check() {
    assert_eq!(
        container_ids(container("good", hardened_host(), hardened_config())),
        BTreeSet::new()
    );
}

#[test]
fn each_weakness_adds_its_check() {
    let mut host = hardened_host();
    host.privileged = Some(true);
    assert_eq!(
        container_ids(container("a", host, hardened_config())),
        ids(&["5.4"])
    );

    let mut c = container("b", hardened_host(), hardened_config());
    c.mounts = Some(vec![
        MountPoint {
            typ: Some("bind".into()),
            source: Some("/var/run/docker.sock".to_owned()),
            destination: Some("/var/run/docker.sock".to_owned()),
            rw: Some(false),
            ..Default::default()
        },
        MountPoint {
            typ: Some("bind".into()),
            source: Some("/etc".to_owned()),
            destination: Some("/host-etc".to_owned()),
            rw: Some(false),
            ..Default::default()
        },
    ]);
    assert_eq!(container_ids(c), ids(&["5.31", "5.5"]));

    let mut host = hardened_host();
    host.cap_add = Some(vec!["SYS_ADMIN".to_owned(), "CHOWN".to_owned()]);
    host.pid_mode = Some("host".to_owned());
    host.network_mode = Some("host".to_owned());
    assert_eq!(
        container_ids(container("c", host, hardened_config())),
        ids(&["5.3", "5.15", "5.9"])
    );

    let mut host = hardened_host();
    host.port_bindings = Some(HashMap::from([(
        "80/tcp".to_owned(),
        Some(vec![PortBinding {
            host_ip: Some(String::new()),
            host_port: Some("80".to_owned()),
        }]),
    )]));
    assert_eq!(
        container_ids(container("d", host, hardened_config())),
        ids(&["5.13", "5.7"])
    );
}

#[test]
fn secrets_are_found_and_never_shown() {
    let mut config = hardened_config();
    config.env = Some(vec![
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned(),
        "MODE=production".to_owned(),
    ]);
    config.labels = Some(HashMap::from([(
        "deploy.token".to_owned(),
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789".to_owned(),
    )]));
    let input = AuditInput {
        containers: vec![container("e", hardened_host(), config)],
        ..Default::default()
    };
    let findings = run(&input, &Selection::default());
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(f.check_id, "jaga-secret");
    assert_eq!(
        f.evidence,
        "env AWS_SECRET_ACCESS_KEY=<redacted, 40 chars> (the name says it holds a secret); \
         label deploy.token=<redacted, 40 chars> (the value has the shape of a credential)"
    );
    let everything = format!(
        "{}{}{}",
        crate::Report::new(&findings).json(),
        crate::Report::new(&findings).sarif(),
        crate::Report::new(&findings).table(false)
    );
    assert!(!everything.contains("wJalrXUtnFEMI"));
    assert!(!everything.contains("ghp_aBcDeFgHi"));
}

#[test]
fn selection_by_check_and_skip() {
    let mut host = hardened_host();
    host.privileged = Some(true);
    host.memory = Some(0);
    let c = container("f", host, hardened_config());
    let input = AuditInput {
        containers: vec![c],
        ..Default::default()
    };
    let only = |selection: Selection| -> BTreeSet<String> {
        run(&input, &selection)
            .into_iter()
            .map(|f| f.check_id)
            .collect()
    };
    assert_eq!(
        only(Selection {
            checks: vec!["5.4".into()],
            ..Default::default()
        }),
        ids(&["5.4"])
    );
    assert_eq!(
        only(Selection {
            skip: vec!["5.4".into()],
            ..Default::default()
        }),
        ids(&["5.10"])
    );
    assert_eq!(
        only(Selection {
            checks: vec!["5.".into()],
            skip: vec!["5.10".into()],
            ..Default::default()
        }),
        ids(&["5.4"])
    );
    assert_eq!(
        only(Selection {
            containers: vec!["other".into()],
            ..Default::default()
        }),
        BTreeSet::new()
    );
}

#[test]
fn scores_fall_with_findings() {
    let input = AuditInput {
        containers: vec![container(
            "g",
            {
                let mut h = hardened_host();
                h.privileged = Some(true);
                h
            },
            hardened_config(),
        )],
        ..Default::default()
    };
    let findings = run(&input, &Selection::default());
    let scores = crate::scores(&findings);
    assert_eq!(scores["container_escape"], 60);
    assert_eq!(scores["container_hijacking"], 100);
}

#[test]
fn sshd_among_a_containers_processes_is_cis_5_6() {
    let mut c = container("ssh", hardened_host(), hardened_config());
    c.id = Some("abc".to_owned());
    let audit = |processes: Option<Vec<crate::facts::ProcessFacts>>| {
        let input = AuditInput {
            containers: vec![c.clone()],
            processes: processes.map(|p| BTreeMap::from([("abc".to_owned(), p)])),
            ..Default::default()
        };
        run(&input, &Selection::default())
            .into_iter()
            .filter(|f| f.check_id == "5.6")
            .map(|f| f.evidence)
            .collect::<Vec<_>>()
    };
    let sshd = crate::facts::ProcessFacts {
        pid: 31,
        name: "sshd".to_owned(),
        exe: Some("/usr/sbin/sshd".to_owned()),
    };
    let nginx = crate::facts::ProcessFacts {
        pid: 7,
        name: "nginx".to_owned(),
        exe: Some("/usr/sbin/nginx".to_owned()),
    };
    assert_eq!(
        audit(Some(vec![nginx.clone(), sshd])),
        vec!["process 31 (/usr/sbin/sshd) is an SSH daemon"]
    );
    assert!(audit(Some(vec![nginx])).is_empty());
    // Processes not read: the check does not run.
    assert!(audit(None).is_empty());
}
