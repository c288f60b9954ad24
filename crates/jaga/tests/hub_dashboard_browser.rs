#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard of the real `jaga hub` in a real browser (Debian's
//! headless Chromium through chromedriver), over real servers
//! (`scripts/receivers.sh` installs them): nats-server with JetStream,
//! PostgreSQL, Prometheus with its remote-write receiver. Two agents'
//! outputs, as `jaga serve` runs them, publish alerts, findings and
//! heartbeats to NATS and remote-write their containers' series.
//!
//! Login is required (a token is configured); the hosts page lists both
//! hosts up with their version; the alerts page filters by host and rule
//! and shows an alert's markup as text; the host page shows its alerts,
//! findings and CPU and memory charts from Prometheus; the findings page
//! groups them. A second hub without a token or Prometheus opens on
//! loopback without login, and its host page says there is no metrics
//! store without a failed request. No console error, no request to another
//! origin. Screenshots of each page, desktop and 390 px, light and dark, go
//! to `target/dashboard-screenshots/hub-*.png`.
//!
//! Skipped with one line when Chromium is missing, except under CI.

mod common;
#[allow(dead_code)]
#[path = "../../jaga-server/tests/dashboard_support/webdriver.rs"]
mod webdriver;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use common::agent::{free_port, get_url, get_with_token};
use common::fleet::*;
use common::*;
use webdriver::{Browser, Shot};

/// An alert as an agent raises it; `location` `audit` makes it a finding.
fn alert(agent: &str, id: &str, rule: (&str, u8, &str), container: &str) -> jaga_model::Alert {
    let (rule_id, level, description) = rule;
    serde_json::from_value(serde_json::json!({
        "id": id, "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "rule": {"id": rule_id, "level": level, "description": description, "groups": ["docker"], "mitre": []},
        "agent": {"id": "", "name": agent},
        "container": {"id": format!("{container}-0123456789abcdef"), "name": container, "image": "jaga-test/busybox:latest", "labels": {}},
        "data": {}, "location": "docker-events"
    }))
    .unwrap()
}

/// An audit finding as the agent sends it (see jaga-agent's `alert_for`).
fn finding(agent: &str, id: &str, check: &str, title: &str, container: &str) -> jaga_model::Alert {
    let mut finding = alert(
        agent,
        id,
        (check, 10, &format!("{title}: container {container}")),
        container,
    );
    finding.location = "audit".to_owned();
    finding.rule.groups = vec![
        "audit".to_owned(),
        "runtime_escape".to_owned(),
        "least_privilege".to_owned(),
    ];
    finding.data = [
        ("check_id", check),
        ("severity", "high"),
        ("object", &format!("container {container}-0123456789abcdef")),
        ("evidence", "HostConfig.Privileged=true"),
        ("remediation", "run it without --privileged"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    finding
}

/// One agent's outputs: its records and a heartbeat to NATS (as the NATS
/// user `user`), and ten minutes of its containers' CPU and memory to
/// Prometheus.
async fn publish(
    agent: &str,
    (user, password): (&str, &str),
    nats_port: u16,
    prometheus_port: u16,
    records: Vec<jaga_model::Alert>,
    containers: &[(&str, f64)],
) {
    let settings: jaga_outputs::NatsSettings = serde_json::from_value(serde_json::json!({
        "servers": [format!("nats://127.0.0.1:{nats_port}")],
        "username": user, "password": password, "timeout": "5s",
    }))
    .unwrap();
    let output = jaga_outputs::NatsOutput::new(&settings).unwrap();
    for (seq, alert) in (1..).zip(records) {
        let message = jaga_outputs::Message::single(jaga_outputs::StoredAlert { seq, alert });
        jaga_outputs::Output::deliver(&output, &message)
            .await
            .unwrap_or_else(|e| panic!("{agent}: a record not published: {e:?}"));
    }
    let beat = jaga_outputs::Heartbeat {
        agent: agent.to_owned(),
        version: "9.8.7".to_owned(),
        uptime_s: 3 * 3600 + 25 * 60,
    };
    jaga_outputs::Output::heartbeat(&output, &beat)
        .await
        .unwrap_or_else(|e| panic!("{agent}: no heartbeat: {e:?}"));

    let writer = jaga_outputs::RemoteWriter::new(
        &serde_json::from_value(serde_json::json!({
            "url": format!("http://127.0.0.1:{prometheus_port}/api/v1/write"),
        }))
        .unwrap(),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let points: Vec<(String, jaga_model::HistoryPoint)> = containers
        .iter()
        .flat_map(|(name, cpu)| {
            (0..60).map(move |i| {
                let mut values = [f64::NAN; jaga_model::SERIES_COUNT];
                values[0] = cpu + (i % 7) as f64;
                values[2] = (64 + i) as f64 * 1024.0 * 1024.0;
                let point = jaga_model::HistoryPoint {
                    unix_ms: now - (60 - i) * 10_000,
                    values,
                };
                (name.to_string(), point)
            })
        })
        .collect();
    let sent: Vec<jaga_outputs::remote_write::ContainerPoint> = points
        .iter()
        .map(|(name, point)| jaga_outputs::remote_write::ContainerPoint {
            id: name,
            name,
            image: "jaga-test/busybox:latest",
            point,
        })
        .collect();
    let series = jaga_outputs::remote_write::series_of(&sent, agent);
    // Prometheus listens before its storage is ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Err(error) = writer.send(&series).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{agent}: Prometheus refused the series: {error:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The legends of the CPU and memory charts of `host`'s page, once both
/// have points.
async fn legends(browser: &Browser, host: &str) -> Vec<String> {
    let mut legends = Vec::new();
    for chart in ["CPU", "Memory"] {
        let legend = browser
            .wait_for(
                &format!("points on {host}'s {chart} chart"),
                &format!(
                    "(() => {{ const c = document.querySelector('canvas[data-chart={chart}]'); \
                     return document.querySelector('#main h1').textContent.startsWith('{host}') \
                     && c && Number(c.dataset.points) > 10 && c.closest('.chart').querySelector('.legend').textContent; }})()"
                ),
            )
            .await;
        legends.push(legend.as_str().unwrap_or_default().to_owned());
    }
    legends
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hubs_dashboard_in_headless_chromium() {
    let Some((chromium, driver)) = webdriver::required() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // PostgreSQL runs as its own user, which must reach its directory.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (nats_port, prometheus_port, pg_port, hub_port, open_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    for d in ["nats", "prometheus", "postgres"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let _nats = nats(&dir.path().join("nats"), nats_port);
    let _prometheus = prometheus(&dir.path().join("prometheus"), prometheus_port);
    let _postgres = postgres(&dir.path().join("postgres"), pg_port);
    let config = dir.path().join("hub.toml");
    let toml = hub_toml(hub_port, pg_port, nats_port, "pass-hub");
    std::fs::write(
        &config,
        format!("{toml}prometheus_url = \"http://127.0.0.1:{prometheus_port}\"\n"),
    )
    .unwrap();
    let _hub = jaga_hub(&config, dir.path(), hub_port);
    // A second hub of the same fleet: no token (loopback), no Prometheus.
    let open_config = dir.path().join("open-hub.toml");
    let (_, nats_and_hub) = toml.split_once("[hub.nats]").unwrap();
    std::fs::write(
        &open_config,
        format!("[hub.nats]{nats_and_hub}").replace(
            &format!("127.0.0.1:{hub_port}"),
            &format!("127.0.0.1:{open_port}"),
        ),
    )
    .unwrap();
    let _open_hub = jaga_hub(&open_config, dir.path(), open_port);

    publish(
        "fleet-a",
        ("fleet-a", "pass-a"),
        nats_port,
        prometheus_port,
        vec![
            alert(
                "fleet-a",
                "a1",
                ("91011", 8, "command run in container: <b>sh</b>"),
                "web-a",
            ),
            alert("fleet-a", "a2", ("100002", 3, "a quiet one"), "web-a"),
            finding(
                "fleet-a",
                "audit.a",
                "container.privileged",
                "Container runs privileged",
                "web-a",
            ),
        ],
        &[("web-a", 40.0), ("cache-a", 5.0)],
    )
    .await;
    // An agent named with dots (an FQDN): the hub files it under its
    // subject token, `fleet-b_example_com`, its series carry the name.
    publish(
        "fleet-b.example.com",
        ("fleet-b", "pass-b"),
        nats_port,
        prometheus_port,
        vec![
            alert(
                "fleet-b.example.com",
                "b1",
                ("91011", 8, "command run in container: id"),
                "db-b",
            ),
            finding(
                "fleet-b.example.com",
                "audit.b",
                "container.privileged",
                "Container runs privileged",
                "db-b",
            ),
        ],
        &[("db-b", 20.0)],
    )
    .await;
    // Stored (the page is checked against what the API holds).
    let stored = wait_for(Duration::from_secs(60), || {
        let (status, body) = get_with_token(
            &format!("http://127.0.0.1:{hub_port}/api/v1/hosts"),
            HUB_TOKEN,
        );
        let hosts: serde_json::Value = serde_json::from_str(&body).ok()?;
        let records: i64 = hosts
            .as_array()?
            .iter()
            .filter_map(|h| h["records"].as_i64())
            .sum();
        let beat = hosts.as_array()?.iter().all(|h| h["version"] == "9.8.7");
        (status == 200 && records == 5 && beat).then_some(hosts)
    });
    let (_, health) = get_with_token(&format!("http://127.0.0.1:{hub_port}/healthz"), HUB_TOKEN);
    let hosts = stored.unwrap_or_else(|| panic!("the records did not reach the hub: {health}"));
    assert_eq!(hosts[0]["alerts"], 2, "{hosts}");
    assert_eq!(hosts[0]["findings"], 1, "{hosts}");
    assert_eq!(
        (&hosts[1]["agent"], &hosts[1]["instance"]),
        (
            &serde_json::json!("fleet-b_example_com"),
            &serde_json::json!("fleet-b.example.com")
        ),
        "{hosts}"
    );

    let base = format!("http://127.0.0.1:{hub_port}");
    let browser = Browser::start(chromium, driver, 1280, 900).await;

    // Login is required: the page sends the browser to the form.
    browser.log_in(&base, HUB_TOKEN).await;

    // Hosts: both, up (their heartbeats), with the version they sent.
    let rows = browser
        .wait_for(
            "both hosts up",
            "(() => { const rows = [...document.querySelectorAll('#hosts tbody tr[data-host]')]; \
             return rows.length === 2 && rows.every(r => r.querySelector('.tag').textContent === 'up') \
             && rows.map(r => r.dataset.host + ' ' + r.children[3].textContent + ' ' + r.children[5].textContent); })()",
        )
        .await;
    assert_eq!(
        rows,
        serde_json::json!(["fleet-a 9.8.7 2", "fleet-b_example_com 9.8.7 1"]),
        "host, version, alerts"
    );
    assert_eq!(
        browser
            .run("return document.querySelector('.top nav').textContent")
            .await,
        "HostsAlertsFindings"
    );

    // Alerts: fleet-wide, then one host chosen in the form.
    browser.goto(&format!("{base}/#/alerts")).await;
    browser
        .wait_for(
            "every host's alerts",
            "document.querySelectorAll('#alerts li[data-host]').length === 3",
        )
        .await;
    browser
        .run("document.querySelector('#alert-filters select[name=host]').value = 'fleet-a'; return true")
        .await;
    browser.click("#alert-filters button[type=submit]").await;
    let shown = browser
        .wait_for(
            "fleet-a's alerts alone",
            "location.hash.includes('host=fleet-a') && (() => { const items = [...document.querySelectorAll('#alerts li[data-host]')]; \
             return items.length === 2 && items.every(li => li.dataset.host === 'fleet-a' && li.querySelector('a.host').textContent === 'fleet-a') \
             && items.map(li => li.querySelector('code').textContent).sort(); })()",
        )
        .await;
    // As a set: the page lists newest stored first, and a batch the hub
    // stores late (redelivered) may come after one published later.
    assert_eq!(shown, serde_json::json!(["100002", "91011"]));
    // The alert's markup is text.
    assert_eq!(
        browser
            .run("return [document.querySelectorAll('#alerts b').length, document.querySelector('#alerts').textContent.includes('<b>sh</b>')]")
            .await,
        serde_json::json!([0, true])
    );
    browser
        .goto(&format!("{base}/#/alerts?rule_id=91011"))
        .await;
    browser
        .wait_for(
            "rule 91011 on both hosts",
            "(() => { const items = [...document.querySelectorAll('#alerts li[data-host]')]; \
             return items.length === 2 && items.map(li => li.dataset.host).sort().join() === 'fleet-a,fleet-b_example_com'; })()",
        )
        .await;

    // A host's page: its alerts, its findings, its containers' charts.
    browser.goto(&format!("{base}/#/h/fleet-a")).await;
    browser
        .wait_for(
            "fleet-a's alerts and findings",
            "document.querySelectorAll('#host-alerts li[data-host=fleet-a]').length === 2 \
             && document.querySelectorAll('#host-findings details.finding').length === 1",
        )
        .await;
    for (chart, legend) in ["CPU", "Memory"]
        .into_iter()
        .zip(legends(&browser, "fleet-a").await)
    {
        assert!(
            legend.contains("web-a") && legend.contains("cache-a") && !legend.contains("db-b"),
            "{chart}: {legend}"
        );
    }

    // Regression: the page of a host named with dots queried its metrics
    // by the subject token, which no series carries, and its charts were
    // empty.
    browser
        .goto(&format!("{base}/#/h/fleet-b_example_com"))
        .await;
    assert_eq!(
        legends(&browser, "fleet-b_example_com").await,
        ["db-b", "db-b"]
    );

    // Findings: grouped by threat and practice, each naming its host.
    browser.goto(&format!("{base}/#/findings")).await;
    let groups = browser
        .wait_for(
            "the findings grouped",
            "document.querySelectorAll('#findings details.finding').length === 2 \
             && [...document.querySelectorAll('#findings h2, #findings h3')].map(e => e.textContent)",
        )
        .await;
    assert_eq!(
        groups,
        serde_json::json!(["runtime escape", "least privilege"])
    );

    // Screenshots: each page, desktop and phone width, light and dark.
    let pages = [
        Shot::new("hub-hosts", "#/", "#hosts tbody tr[data-host]"),
        Shot::new("hub-alerts", "#/alerts", "#alerts li[data-host]"),
        Shot::new("hub-findings", "#/findings", "#findings details"),
        Shot::new(
            "hub-host",
            "#/h/fleet-a",
            "canvas[data-chart=Memory][data-points]",
        ),
        Shot::new(
            "hub-host-charts",
            "#/h/fleet-a",
            "canvas[data-chart=Memory][data-points]",
        )
        .scrolled_to("#host-charts"),
    ];
    browser
        .screenshot_pages(&base, &pages, &screenshots())
        .await;
    let urls = browser.assert_clean(&base).await;
    assert!(
        urls.iter()
            .any(|u| u.contains("/api/v1/metrics/query_range?")),
        "the charts ask the hub for the metrics: {urls:?}"
    );

    // The second hub: open on loopback (no token), no metrics store. Its
    // host page says so, and asks nothing that fails.
    let open = format!("http://127.0.0.1:{open_port}");
    assert_eq!(get_url(&format!("{open}/api/v1/hosts"), None).0, 200);
    browser.resize(1280, 900).await;
    browser
        .goto(&format!("{open}/#/h/fleet-b_example_com"))
        .await;
    let said = browser
        .wait_for(
            "the host page without a metrics store",
            "document.querySelectorAll('#host-alerts li[data-host=fleet-b_example_com]').length === 1 \
             && document.querySelector('#no-metrics')?.textContent",
        )
        .await;
    assert!(said.as_str().unwrap().contains("prometheus_url"), "{said}");
    assert_eq!(
        browser
            .run("return document.querySelectorAll('canvas[data-chart]').length")
            .await,
        0
    );
    let urls = browser.assert_clean(&open).await;
    assert!(
        !urls.iter().any(|u| u.contains("/metrics/")),
        "a metrics request without a metrics store: {urls:?}"
    );
    browser.quit().await;
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
}
