#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard's parts that read the real Engine: a request just sent to
//! nginx shows in `/api/v1/containers/{c}/logs` (json-file and the `local`
//! driver alike), the page is served by `jaga serve` under its policy, and
//! history keeps a container's writable layer for the filesystem chart.

mod common;

use std::time::Duration;

use common::agent::{free_port, get_url, Agent};
use common::*;

fn nginx(prefix: &str, driver: &str) -> (TestContainer, u16) {
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let c = TestContainer::run(prefix, &["--log-driver", driver, "-p", &publish, NGINX]);
    wait_for(Duration::from_secs(10), || {
        (get_url(&format!("http://127.0.0.1:{port}/"), None).0 == 200).then_some(())
    })
    .expect("nginx answers");
    (c, port)
}

#[test]
fn a_request_to_nginx_shows_in_the_log_view_from_any_driver() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "[audit]\ndisabled = true\n");
    for driver in ["json-file", "local"] {
        let (web, port) = nginx("dash-logs", driver);
        // Known to the API once the collector has seen it.
        let path = format!("/api/v1/containers/{}/logs?tail=50", web.name);
        let first: serde_json::Value = wait_for(Duration::from_secs(30), || {
            let (status, body) = agent.get(&path);
            (status == 200).then(|| serde_json::from_str(&body).unwrap())
        })
        .unwrap_or_else(|| panic!("{} known to the API", web.name));
        let cursor = first["cursor"].as_str().unwrap().to_owned();
        let probe = format!("/dashboard-probe-{driver}");
        get_url(&format!("http://127.0.0.1:{port}{probe}"), None);
        let line = wait_for(Duration::from_secs(30), || {
            let next = agent.json(&format!(
                "/api/v1/containers/{}/logs?after={cursor}",
                web.name
            ));
            next["lines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["line"].as_str().unwrap().contains(&probe))
                .cloned()
        })
        .unwrap_or_else(|| {
            panic!(
                "the request to {probe} in the logs of {} ({driver})",
                web.name
            )
        });
        assert_eq!(line["stream"], "stdout", "{line}");
        assert!(line["unix_ms"].as_i64().unwrap() > 0, "{line}");
    }
    let (status, page) = agent.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("/assets/app.js"), "{page}");
}

/// The container page's set-up comes from the Engine: the published port,
/// the restart policy, the limits, a volume and the command as `docker
/// inspect` has them, with a secret in the command redacted.
#[test]
fn the_container_setup_is_what_docker_inspect_says_with_secrets_redacted() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "[audit]\ndisabled = true\n");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let volume = unique_name("jaga-test-setup-vol");
    let mount = format!("{volume}:/data:ro");
    let _cleanup = VolumeCleanup(volume.clone());
    let web = TestContainer::run(
        "dash-setup",
        &[
            "-p",
            &publish,
            "--restart",
            "on-failure:3",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "-v",
            &mount,
            BUSYBOX,
            "sh",
            "-c",
            "PGPASSWORD=hunter2hunter2 exec sleep 600",
        ],
    );
    let path = format!("/api/v1/containers/{}/inspect", web.name);
    let setup: serde_json::Value = wait_for(Duration::from_secs(30), || {
        let (status, body) = agent.get(&path);
        (status == 200).then(|| serde_json::from_str(&body).unwrap())
    })
    .unwrap_or_else(|| panic!("the set-up of {} from the API", web.name));
    assert_eq!(setup["name"], web.name.as_str());
    assert_eq!(setup["restart_policy"], "on-failure:3", "{setup}");
    assert_eq!(setup["limits"]["memory_bytes"], 64 << 20, "{setup}");
    assert_eq!(setup["limits"]["nano_cpus"], 500_000_000, "{setup}");
    let ports = setup["ports"].as_array().unwrap();
    assert!(
        ports.iter().any(|p| p["container_port"] == "80/tcp"
            && p["host_port"] == port.to_string().as_str()
            && p["host_ip"] == "127.0.0.1"),
        "{setup}"
    );
    let mounts = setup["mounts"].as_array().unwrap();
    assert!(
        mounts.iter().any(|m| m["kind"] == "volume"
            && m["source"] == volume.as_str()
            && m["destination"] == "/data"
            && m["read_write"] == false),
        "{setup}"
    );
    let command = setup["command"].as_str().unwrap();
    assert!(command.starts_with("sh -c "), "{command}");
    assert!(command.contains("exec sleep 600"), "{command}");
    assert!(!command.contains("hunter2hunter2"), "{command}");

    // Unknown containers are a clear 404, not an Engine error.
    let (status, body) = agent.get("/api/v1/containers/jaga-test-no-such-container/inspect");
    assert_eq!(status, 404, "{body}");
}

/// The container page's filesystem chart reads history: the real agent
/// stores each walk of a container's writable layer, and leaves the points
/// between walks without it rather than at 0.
#[test]
fn history_keeps_the_writable_layer_a_container_filled() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(
        data.path(),
        "[audit]\ndisabled = true\n[filesystem]\ninterval = \"5s\"\n",
    );
    let filler = TestContainer::run(
        "dash-fs",
        &[
            "--network",
            "none",
            BUSYBOX,
            "sh",
            "-c",
            "dd if=/dev/zero of=/filled bs=1M count=6 && exec sleep 600",
        ],
    );
    // The last hour's raw points.
    let path = format!("/api/v1/containers/{}/history", filler.name);
    // Generous: on a loaded host the first walks and points take a while.
    let points: Vec<serde_json::Value> = wait_for(Duration::from_secs(90), || {
        let (status, body) = agent.get(&path);
        if status != 200 {
            return None;
        }
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        let points = answer["points"].as_array().unwrap().clone();
        let filled = points
            .iter()
            .filter(|p| {
                p["avg"]["writable_layer_bytes"]
                    .as_f64()
                    .is_some_and(|b| b >= 6.0 * 1024.0 * 1024.0)
            })
            .count();
        (filled >= 2).then_some(points)
    })
    .unwrap_or_else(|| {
        panic!(
            "two walks of {}'s 6 MiB writable layer in history",
            filler.name
        )
    });
    // Between the first and the last walk (5 s apart at least, points each
    // second), points without it: not every point repeats the last walk.
    let walked: Vec<usize> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p["avg"].get("writable_layer_bytes").is_some())
        .map(|(i, _)| i)
        .collect();
    let (first, last) = (walked[0], walked[walked.len() - 1]);
    let between = last - first + 1 - walked.len();
    assert!(
        between > 0,
        "all {} points from the first walk to the last carry one: the series is not on the filesystem cadence",
        last - first + 1
    );
    assert!(
        points
            .iter()
            .all(|p| p["avg"]["writable_layer_bytes"].as_f64() != Some(0.0)),
        "a 0 between walks"
    );
    let log = points
        .iter()
        .find_map(|p| p["avg"]["log_file_bytes"].as_f64())
        .unwrap();
    assert!(log >= 0.0);
}

struct VolumeCleanup(String);

impl Drop for VolumeCleanup {
    fn drop(&mut self) {
        docker_clean_up(&["volume", "rm", "-f", &self.0]);
    }
}
