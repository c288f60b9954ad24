#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `jaga serve` against the real Docker Engine: `/metrics` as cAdvisor names
//! it (checked by promtool and scraped by a real Prometheus), history that
//! survives SIGKILL, the REST API and its errors, and a clean stop.

mod common;

use std::process::Command;
use std::time::Duration;

use common::agent::{get_url, series_value, Agent};
use common::prometheus::{percent_encode, Prometheus};
use common::*;

fn busy_container(prefix: &str) -> TestContainer {
    TestContainer::busy_half_cpu(prefix)
}

fn idle_container(prefix: &str, extra: &[&str]) -> TestContainer {
    let mut args = vec!["--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    TestContainer::run(prefix, &args)
}

fn name_label(c: &TestContainer) -> String {
    format!("name=\"{}\"", c.name)
}

#[test]
fn metrics_carry_cadvisor_names_and_labels_and_pass_promtool() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let busy = busy_container("metrics");
    let agent = Agent::start(data.path(), "");
    let label = name_label(&busy);
    let metrics = wait_for(Duration::from_secs(10), || {
        let m = agent.metrics();
        m.contains(&label).then_some(m)
    })
    .expect("busy container in /metrics");

    let id_label = format!("id=\"/docker/{}\"", busy.id);
    for family in [
        "container_cpu_usage_seconds_total",
        "container_cpu_user_seconds_total",
        "container_cpu_system_seconds_total",
        "container_cpu_cfs_periods_total",
        "container_cpu_cfs_throttled_periods_total",
        "container_memory_usage_bytes",
        "container_memory_working_set_bytes",
        "container_memory_rss",
        "container_memory_cache",
        "container_memory_swap",
        "container_memory_failcnt",
        "container_spec_memory_limit_bytes",
        "container_spec_cpu_quota",
        "container_spec_cpu_period",
        "container_processes",
        "container_last_seen",
        "container_start_time_seconds",
    ] {
        assert!(
            series_value(
                &metrics,
                family,
                &[&label, &id_label, "image=\"jaga-test/busybox:latest\""]
            )
            .is_some(),
            "{family} missing for the busy container"
        );
    }
    // --cpus 0.5: quota 50000 µs per 100000 µs period, as cAdvisor exports it.
    assert_eq!(
        series_value(&metrics, "container_spec_cpu_quota", &[&label]),
        Some(50000.0)
    );
    assert_eq!(
        series_value(&metrics, "container_spec_cpu_period", &[&label]),
        Some(100000.0)
    );
    assert_eq!(
        series_value(&metrics, "container_processes", &[&label]),
        Some(1.0)
    );
    assert_eq!(
        series_value(&metrics, "machine_cpu_cores", &[]),
        Some(num_cpus() as f64)
    );
    assert!(series_value(&metrics, "jaga_collections_total", &[]).unwrap() >= 1.0);

    let file = data.path().join("metrics.txt");
    std::fs::write(&file, &metrics).unwrap();
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .expect("run promtool (installed by scripts/testbed.sh)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // cAdvisor's own `container_memory_failcnt` is the one name promtool's
    // lint questions (a counter without _total); jaga keeps it for
    // compatibility, so that one line is the only one allowed.
    let complaints: Vec<&str> = report
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("container_memory_failcnt "))
        .collect();
    assert!(complaints.is_empty(), "promtool: {report}");

    let (status, openmetrics) = get_url(
        &agent.url("/metrics"),
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert_eq!(status, 200);
    assert!(
        openmetrics.ends_with("# EOF\n"),
        "OpenMetrics output must end with # EOF"
    );
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap()
}

#[test]
fn removed_and_stopped_containers_leave_metrics() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "");
    let removed = idle_container("removed", &[]);
    let stopped = idle_container("stopped", &[]);
    for c in [&removed, &stopped] {
        let label = name_label(c);
        wait_for(Duration::from_secs(10), || {
            agent.metrics().contains(&label).then_some(())
        })
        .unwrap_or_else(|| panic!("{} never appeared in /metrics", c.name));
    }
    docker(&["rm", "-f", &removed.name]);
    docker(&["stop", "-t", "0", &stopped.name]);
    // Gone once the event lands and the next pass drops the series: an
    // interval or two, waited for as long as a loaded machine takes.
    for c in [&removed, &stopped] {
        let label = name_label(c);
        let gone = wait_for(SETTLE, || (!agent.metrics().contains(&label)).then_some(()));
        assert!(
            gone.is_some(),
            "{} still in /metrics {SETTLE:?} after it ended",
            c.name
        );
    }
    // Still listed by the API as a recent container.
    let list = agent.json("/api/v1/containers");
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == stopped.name.as_str())
        .expect("stopped container listed as recent");
    assert_eq!(entry["live"], false);
    assert_eq!(entry["state"], "exited");
}

#[test]
fn prometheus_scraping_jaga_sees_the_busy_container_at_half_a_cpu() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let busy = busy_container("prom");
    let agent = Agent::start(data.path(), "");
    let prometheus = Prometheus::start(data.path(), agent.port);
    // 30 s window at a 1 s scrape interval, plus a few scrapes of margin.
    std::thread::sleep(Duration::from_secs(36));
    let query = format!(
        "rate(container_cpu_usage_seconds_total{{name=\"{}\"}}[30s])",
        busy.name
    );
    let value = prometheus.query_scalar(&query);
    assert!(
        (0.4..=0.6).contains(&value),
        "rate of the busy container read {value} cores, expected 0.5 ± 0.1"
    );
    let up = prometheus.query_scalar("up{job=\"jaga\"}");
    assert_eq!(up, 1.0);
}

#[test]
fn prometheus_scrapes_jaga_with_a_bearer_token_file_and_is_refused_without() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let out = jaga(&["token", "new"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap();
    let token_file = data.path().join("jaga.token");
    std::fs::write(&token_file, &token).unwrap();
    let hash = String::from_utf8(out.stderr)
        .unwrap()
        .split('"')
        .find(|part| part.starts_with("sha256:"))
        .expect("hash in the advice of jaga token new")
        .to_owned();
    let agent = Agent::start(
        data.path(),
        &format!("[serve.auth]\ntokens = [\"{hash}\"]\n"),
    );
    let target = format!(
        "static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        agent.port
    );
    let prometheus = Prometheus::start_with_jobs(
        data.path(),
        &format!(
            "  - job_name: with_credentials_file\n    authorization:\n      credentials_file: {}\n    {target}\
             \x20 - job_name: with_bearer_token_file\n    bearer_token_file: {}\n    {target}\
             \x20 - job_name: anonymous\n    {target}",
            token_file.display(),
            token_file.display()
        ),
    );
    let up = |job: &str| {
        let query = format!("up{{job=\"{job}\"}}");
        wait_for(Duration::from_secs(60), || {
            let url = format!(
                "{}?query={}",
                prometheus.url("/api/v1/query"),
                percent_encode(&query)
            );
            let (_, body) = get_url(&url, None);
            let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
            let value = answer["data"]["result"].get(0)?["value"][1]
                .as_str()?
                .to_owned();
            value.parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("no {query} within 60 s"))
    };
    assert_eq!(up("with_credentials_file"), 1.0);
    assert_eq!(up("with_bearer_token_file"), 1.0);
    assert_eq!(up("anonymous"), 0.0);
}

fn raw_times(agent: &Agent, container: &str) -> Vec<i64> {
    let history = agent.json(&format!("/api/v1/containers/{container}/history?to=now"));
    history["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["count"], 1, "raw points have count 1");
            p["unix_ms"].as_i64().unwrap()
        })
        .collect()
}

#[test]
fn history_survives_sigkill_and_range_queries_return_the_points() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let busy = busy_container("history");
    let mut first = Agent::start(data.path(), "");
    let before = wait_for(Duration::from_secs(15), || {
        let (status, body) = first.get(&format!("/api/v1/containers/{}/history", busy.name));
        let points = (status == 200)
            .then(|| serde_json::from_str::<serde_json::Value>(&body).ok())
            .flatten()?;
        (points["points"].as_array()?.len() >= 5).then_some(())
    });
    assert!(before.is_some(), "no 5 history points within 15 s");
    let kept = raw_times(&first, &busy.name);
    first.kill();

    let second = Agent::start(data.path(), "");
    let after = raw_times(&second, &busy.name);
    for t in &kept {
        assert!(after.contains(t), "point at {t} lost across SIGKILL");
    }
    // Raw points come in time order, a second apart.
    assert!(
        after.windows(2).all(|w| w[0] < w[1]),
        "points out of order: {after:?}"
    );

    // The latest figures read the busy loop at its half-core quota. On two
    // cores loaded by other tests it may get less for a while: wait for a
    // second that it got its share.
    let latest = second.json(&format!("/api/v1/containers/{}/latest", busy.id));
    let mut seen = Vec::new();
    let cpu = wait_for(Duration::from_secs(60), || {
        let latest = second.json(&format!("/api/v1/containers/{}/latest", busy.id));
        let cpu = latest["figures"]["cpu_percent"].as_f64()?;
        seen.push(cpu);
        (40.0..=60.0).contains(&cpu).then_some(cpu)
    });
    assert!(
        cpu.is_some(),
        "cpu_percent never within 40-60 % in 60 s: {seen:?}"
    );
    assert_eq!(latest["name"], busy.name.as_str());
    assert!(latest["sample"]["cpu"]["usage_total_ns"].as_u64().unwrap() > 0);

    // Buckets: every raw point falls in exactly one 10 s bucket, aligned to 10 s.
    let from = kept[0] / 1000;
    let to = after[after.len() - 1] / 1000 + 1;
    let bucketed = second.json(&format!(
        "/api/v1/containers/{}/history?from={from}&to={to}&step=10s",
        busy.name
    ));
    assert_eq!(bucketed["step_ms"], 10_000);
    let buckets = bucketed["points"].as_array().unwrap();
    let in_range: Vec<i64> = after
        .iter()
        .copied()
        .filter(|t| *t >= from * 1000 && *t <= to * 1000)
        .collect();
    let counted: u64 = buckets.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted as usize, in_range.len(), "{bucketed:#}");
    for bucket in buckets {
        let start = bucket["unix_ms"].as_i64().unwrap();
        assert_eq!(start % 10_000, 0);
        let max = bucket["max"]["cpu_percent"].as_f64().unwrap();
        let min = bucket["min"]["cpu_percent"].as_f64().unwrap();
        let avg = bucket["avg"]["cpu_percent"].as_f64().unwrap();
        assert!(min <= avg && avg <= max, "{bucket}");
    }
}

#[test]
fn api_answers_bad_parameters_with_400_naming_them_and_unknown_containers_with_404() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let idle = idle_container("api", &["--label", "team=payments"]);
    let agent = Agent::start(data.path(), "");
    wait_for(Duration::from_secs(10), || {
        (agent.get(&format!("/api/v1/containers/{}", idle.name)).0 == 200).then_some(())
    })
    .expect("container known to the API");

    let history = format!("/api/v1/containers/{}/history", idle.name);
    for (query, parameter) in [
        ("?step=fast", "step"),
        ("?step=-1", "step"),
        ("?from=yesterday", "from"),
        ("?to=soon", "to"),
        ("?from=2000&to=1000", "from"),
        ("?from=0&to=now&step=1s", "step"),
    ] {
        let (status, body) = agent.get(&format!("{history}{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"]["parameter"], parameter, "{query}: {body}");
        assert_eq!(error["error"]["status"], 400);
    }
    let (status, body) = agent.get("/api/v1/containers?recent=forever");
    assert_eq!(status, 400);
    assert!(body.contains("\"parameter\":\"recent\""), "{body}");

    for path in [
        "/api/v1/containers/no-such-container".to_owned(),
        "/api/v1/containers/no-such-container/latest".to_owned(),
        "/api/v1/containers/no-such-container/history".to_owned(),
    ] {
        let (status, body) = agent.get(&path);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body.contains("No such container: no-such-container"),
            "{body}"
        );
    }
    let (status, _) = agent.get("/api/v1/nowhere");
    assert_eq!(status, 404);

    // One container by name, by full id and by id prefix.
    for key in [idle.name.as_str(), idle.id.as_str(), &idle.id[..12]] {
        let c = agent.json(&format!("/api/v1/containers/{key}"));
        assert_eq!(c["id"], idle.id.as_str());
        assert_eq!(c["labels"]["team"], "payments");
        assert_eq!(c["live"], true);
        assert_eq!(c["cgroup_path"], format!("/docker/{}", idle.id).as_str());
    }

    let host = agent.json("/api/v1/host");
    assert_eq!(host["machine"]["cpu_cores"], num_cpus() as u64);
    assert_eq!(host["machine"]["cgroup_version"], 1);
    assert_eq!(host["machine"]["docker_root_dir"], "/var/lib/docker");
    assert_eq!(host["history"]["raw_retention_seconds"], 3600);

    // The OpenAPI document describes every route served.
    let openapi = agent.json("/api/v1/openapi.json");
    assert_eq!(openapi["openapi"], "3.0.3");
    for path in [
        "/healthz",
        "/metrics",
        "/api/v1/host",
        "/api/v1/containers",
        "/api/v1/containers/{container}",
        "/api/v1/containers/{container}/latest",
        "/api/v1/containers/{container}/history",
        "/api/v1/openapi.json",
        "/api/v1/events",
        "/api/v1/alerts",
        "/api/v1/audit",
    ] {
        assert!(
            openapi["paths"][path].is_object(),
            "{path} not in openapi.json"
        );
    }
}

#[test]
fn filesystem_usage_of_layer_volume_and_log_is_measured() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let volume = unique_name("vol");
    let mount = format!("{volume}:/data");
    let writer = TestContainer::run(
        "fs",
        &[
            "--network",
            "none",
            "-v",
            &mount,
            BUSYBOX,
            "sh",
            "-c",
            "head -c 8388608 /dev/zero > /layer.bin; head -c 4194304 /dev/zero > /data/vol.bin; \
             echo logged; sleep 3600",
        ],
    );
    let agent = Agent::start(data.path(), "[filesystem]\ninterval = \"1s\"\n");
    let label = name_label(&writer);
    let figures = wait_for(Duration::from_secs(15), || {
        let m = agent.metrics();
        let layer = series_value(&m, "container_fs_usage_bytes", &[&label])?;
        let vol = series_value(&m, "jaga_container_volume_usage_bytes", &[&label])?;
        let log = series_value(&m, "jaga_container_log_usage_bytes", &[&label])?;
        (layer >= 8388608.0 && vol >= 4194304.0 && log > 0.0).then_some((layer, vol, log))
    });
    drop(writer);
    docker_clean_up(&["volume", "rm", &volume]);
    let (layer, vol, log) = figures.expect("layer ≥ 8 MiB, volume ≥ 4 MiB and a log within 15 s");
    // Allocated blocks: the file plus a few directory blocks, not much more.
    assert!(layer < 8388608.0 + 1048576.0, "layer {layer}");
    assert!(vol < 4194304.0 + 1048576.0, "volume {vol}");
    // One json-file line holding "logged\n".
    assert!(log > 40.0 && log < 200.0, "log {log}");
}

#[test]
fn sigterm_and_sigint_stop_cleanly_with_exit_code_0() {
    require_engine();
    for signal in ["TERM", "INT"] {
        let data = tempfile::tempdir().unwrap();
        let mut agent = Agent::start(data.path(), "");
        std::thread::sleep(Duration::from_millis(1500));
        let status = agent.stop_with(signal);
        assert_eq!(status.code(), Some(0), "SIG{signal}: {status}");
        // The WAL was checkpointed into the database at exit.
        let wal = data.path().join("history.sqlite3-wal");
        let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
        assert_eq!(wal_len, 0, "SIG{signal}: WAL not flushed");
    }
}

#[test]
fn busy_port_is_one_clear_error() {
    require_engine();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let data = tempfile::tempdir().unwrap();
    let out = jaga(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        &data.path().display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!("Error: cannot listen on 127.0.0.1:{port}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
