#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard of the real `jaga serve` in a real browser (Debian's
//! headless Chromium through chromedriver), fed by real containers: the
//! overview lists them, the busy container's CPU chart holds points near
//! its `--cpus 0.5` limit and gains new ones while the page is open, a
//! `docker exec` appears on the alerts page without a reload, the log view
//! of nginx shows a request just sent to it, no console error, no request
//! to another origin. A screenshot of the busy container's page goes to
//! `target/dashboard-screenshots/engine-container.png`.
//!
//! crates/jaga-server/tests/dashboard_browser.rs drives the same page fed
//! by a fake collector; both use one WebDriver client. Skipped with one line
//! when Chromium is missing, except under CI (`CI=true`), where that fails.

mod common;
#[allow(dead_code)]
#[path = "../../jaga-server/tests/dashboard_support/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::agent::{free_port, get_url, Agent};
use common::*;
use webdriver::Browser;

/// `--cpus 0.5`: half of one core, as the dashboard's CPU % counts it.
const BUSY_LIMIT_PERCENT: f64 = 50.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_agents_dashboard_in_headless_chromium() {
    require_engine();
    let Some((chromium, driver)) = webdriver::required() else {
        return;
    };
    let busy = TestContainer::busy_half_cpu("dash-browser-busy");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let web = TestContainer::run(
        "dash-browser-web",
        &["--log-driver", "json-file", "-p", &publish, NGINX],
    );
    wait_for(Duration::from_secs(30), || {
        (get_url(&format!("http://127.0.0.1:{port}/"), None).0 == 200).then_some(())
    })
    .expect("nginx answers");
    let data = tempfile::tempdir().unwrap();
    // The default config: the audit on too (the page asks for its findings).
    let agent = Agent::start(data.path(), "");
    // Collected once, so the overview has them when it loads.
    for c in [&busy, &web] {
        let path = format!("/api/v1/containers/{}", c.id);
        wait_for(Duration::from_secs(30), || {
            (agent.get(&path).0 == 200).then_some(())
        })
        .unwrap_or_else(|| panic!("{} known to the agent", c.name));
    }
    let base = agent.url("");
    let browser = Browser::start(chromium, driver, 1280, 900).await;

    // Overview: the test containers among whatever else runs on the host.
    browser.goto(&format!("{base}/")).await;
    let names_js = "[...document.querySelectorAll('#containers tbody tr td:first-child')].map(td => td.textContent)";
    browser
        .wait_for(
            "the test containers in the overview",
            &format!(
                "(() => {{ const n = {names_js}; return n.includes('{}') && n.includes('{}'); }})()",
                busy.name, web.name
            ),
        )
        .await;

    // The busy container: its CPU chart from history, then new points live.
    browser.goto(&format!("{base}/#/c/{}", busy.id)).await;
    let chart = CPU_CHART;
    browser
        .wait_for(
            "CPU points of the busy container",
            &format!("{chart} && Number({chart}.dataset.points) >= 3"),
        )
        .await;
    let (mut last_x, first_y) = cpu_last(&browser).await;
    let mut ys = vec![first_y];
    let opened = Instant::now();
    let mut first_new = None;
    // Five new points, each within a generous 20 s on a loaded host.
    while ys.len() < 6 {
        let waiting = Instant::now();
        let (x, y) = loop {
            let (x, y) = cpu_last(&browser).await;
            if x != last_x {
                break (x, y);
            }
            assert!(
                waiting.elapsed() < Duration::from_secs(20),
                "no new CPU point on the open chart within 20 s (last at {last_x}, points so far {ys:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        first_new.get_or_insert_with(|| opened.elapsed());
        last_x = x;
        ys.push(y);
    }
    eprintln!(
        "first new CPU point on the open chart after {:?}; CPU % drawn: {ys:?}",
        first_new.unwrap()
    );
    // Near the limit, never above it (a loaded host may give the loop less
    // for a while, so not every point).
    assert!(
        ys.iter()
            .filter(|y| y.is_finite())
            .all(|y| *y <= BUSY_LIMIT_PERCENT * 1.2)
            && ys.iter().any(|y| *y >= BUSY_LIMIT_PERCENT * 0.8),
        "the busy loop's CPU chart is not near its limit of {BUSY_LIMIT_PERCENT} %: {ys:?}"
    );
    browser
        .screenshot(&screenshots().join("engine-container.png"))
        .await;

    // Logs: a request just sent to nginx shows up without a reload.
    browser.goto(&format!("{base}/#/c/{}", web.id)).await;
    browser
        .wait_for("the log view", "document.querySelector('#logs')")
        .await;
    browser.run("window.notReloaded = true; return true").await;
    let probe = format!("/jaga-browser-probe-{}", std::process::id());
    let (status, _) = get_url(&format!("http://127.0.0.1:{port}{probe}"), None);
    assert_eq!(status, 404, "nginx answers the probe");
    browser
        .wait_for(
            "the request in nginx's log view",
            &format!("document.querySelector('#logs').textContent.includes('GET {probe} ')"),
        )
        .await;
    assert_eq!(
        browser.run("return window.notReloaded === true").await,
        true,
        "the log view reloaded the page"
    );

    // Alerts: a `docker exec` arrives while the page is open.
    browser.goto(&format!("{base}/#/alerts")).await;
    browser
        .wait_for("the alerts page", "document.querySelector('#alerts')")
        .await;
    browser.run("window.notReloaded = true; return true").await;
    docker(&["exec", &busy.name, "cat", "/etc/hostname"]);
    let exec_alert = format!(
        "[...document.querySelectorAll('#alerts li')].some(li => li.querySelector('code')?.textContent === '91011' && li.querySelector('a')?.textContent === '{}')",
        busy.name
    );
    browser
        .wait_for("the exec alert on the alerts page", &exec_alert)
        .await;
    assert_eq!(
        browser.run("return window.notReloaded === true").await,
        true,
        "the alerts page reloaded"
    );

    let console = browser.console().await;
    let errors = webdriver::console_errors(&console);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    // What the page loaded, by its own performance entries and by the
    // browser's network log.
    let entries = browser
        .run("return performance.getEntries().map(e => e.name).filter(n => /^[a-z]+:/.test(n))")
        .await;
    let entries: Vec<String> = serde_json::from_value(entries).unwrap();
    assert!(
        entries.iter().any(|u| u.contains("/api/v1/")),
        "performance entries of the API: {entries:?}"
    );
    let mut urls = browser.requested_urls().await;
    urls.extend(entries);
    assert!(
        urls.iter().any(|u| u.contains("/api/v1/stream")),
        "the page follows the live stream: {urls:?}"
    );
    let foreign = webdriver::other_origins(&urls, &base);
    assert!(
        foreign.is_empty(),
        "requests to another origin: {foreign:?}"
    );
    browser.quit().await;
}

const CPU_CHART: &str = "document.querySelector('canvas[data-chart=CPU]')";

/// The CPU chart's last point: its time as drawn and its value.
async fn cpu_last(browser: &Browser) -> (String, f64) {
    let v = browser
        .run(&format!(
            "return [{CPU_CHART}.dataset.lastX, Number({CPU_CHART}.dataset.lastY)]"
        ))
        .await;
    (
        v[0].as_str().unwrap_or_default().to_owned(),
        // NaN comes back as null.
        v[1].as_f64().unwrap_or(f64::NAN),
    )
}

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
}
