#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard in a real browser (Debian's headless Chromium through
//! chromedriver): login when a token is configured, the overview lists the
//! containers, the busy container's CPU chart holds points near its limit
//! and gains new ones live, a log line and an exec alert appear without a
//! reload, no console error, no request to another origin. Screenshots of
//! each page, desktop and 390 px, light and dark, go to
//! `target/dashboard-screenshots/`.
//!
//! Skipped with one line when Chromium is missing, except under CI
//! (`CI=true`), where that fails.

mod dashboard_support;

use std::path::PathBuf;
use std::time::Instant;

use dashboard_support::webdriver::{self, Browser, Shot};
use dashboard_support::*;
use jaga_server::auth::{TokenHash, TokenSources, Tokens};
use jaga_store::Consumed;

const TOKEN: &str = "jaga_browser_test_token";

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Some((chromium, driver)) = webdriver::required() else {
        return;
    };
    let tokens = Tokens::load(TokenSources {
        hashes: vec![TokenHash::of(TOKEN)],
        file: None,
    })
    .unwrap();
    let bed = start(tokens, 1).await;
    let base = format!("http://127.0.0.1:{}", bed.port);
    let browser = Browser::start(chromium, driver, 1280, 900).await;

    // Login is required: the page sends the browser to the form.
    browser.log_in(&base, TOKEN).await;
    // Overview: both running containers and the stopped one.
    browser
        .wait_for(
            "the containers table",
            "[...document.querySelectorAll('#containers tbody tr')].length >= 3",
        )
        .await;
    let names = browser
        .run("return [...document.querySelectorAll('#containers tbody tr td:first-child')].map(td => td.textContent)")
        .await;
    for name in ["busy", "web", "idle"] {
        assert!(
            names.as_array().unwrap().iter().any(|n| n == name),
            "{names}"
        );
    }
    browser
        .wait_for("the CPU figure of busy", "[...document.querySelectorAll('#containers tbody tr')].some(tr => tr.textContent.includes('busy') && /4[0-9]\\.[0-9] %/.test(tr.textContent))")
        .await;
    // The busy container: its CPU chart near the limit, then a new point live.
    browser.goto(&format!("{base}/#/c/{BUSY_ID}")).await;
    let chart = "document.querySelector('canvas[data-chart=CPU]')";
    browser
        .wait_for(
            "CPU points",
            &format!("Number({chart}?.dataset.points) > 100"),
        )
        .await;
    let last_y: f64 = browser
        .run(&format!("return Number({chart}.dataset.lastY)"))
        .await
        .as_f64()
        .unwrap();
    assert!(
        last_y > BUSY_LIMIT_PERCENT * 0.9 && last_y <= BUSY_LIMIT_PERCENT,
        "busy's CPU {last_y} % is not near its limit of {BUSY_LIMIT_PERCENT} %"
    );
    let last_x = browser.run(&format!("return {chart}.dataset.lastX")).await;
    let waited = Instant::now();
    browser
        .wait_for(
            "a new CPU point",
            &format!("{chart}?.dataset.lastX !== {last_x}"),
        )
        .await;
    eprintln!(
        "a new sample reached the open chart after {:?} (collection each 1 s)",
        waited.elapsed()
    );

    // Its filesystem chart: the walks only (one point in six of the last
    // hour), the writable layer as the walk found it, never a 0 between.
    let fs_chart = "document.querySelector('canvas[data-chart=Filesystem]')";
    browser
        .wait_for(
            "filesystem points",
            &format!("Number({fs_chart}?.dataset.points) > 50"),
        )
        .await;
    let drawn = browser
        .run(&format!(
            "return [Number({fs_chart}.dataset.points), Number({chart}.dataset.points), Number({fs_chart}.dataset.lastX), Number({fs_chart}.dataset.lastY)]"
        ))
        .await;
    let drawn: Vec<f64> = drawn
        .as_array()
        .unwrap()
        .iter()
        // NaN comes back as null.
        .map(|v| v.as_f64().unwrap_or(f64::NAN))
        .collect();
    let (fs_points, cpu_points, last_x, last_y) = (drawn[0], drawn[1], drawn[2], drawn[3]);
    assert!(
        fs_points < cpu_points / 3.0,
        "the filesystem chart drew {fs_points} points of {cpu_points}: points between walks too"
    );
    assert_eq!(
        last_y,
        layer_bytes(last_x as i64),
        "the writable layer of the last walk"
    );

    // Its set-up, from the Engine's inspect: published port, restart policy, limits.
    browser
        .wait_for(
            "the container's set-up",
            "(() => { const s = document.querySelector('#container-setup'); return s && !s.hidden && s.textContent.includes('127.0.0.1:8080 → 80/tcp') && s.textContent.includes('on-failure:3') && s.textContent.includes('memory 256 MiB'); })()",
        )
        .await;

    // Logs: a request just made shows up without a reload.
    browser
        .wait_for(
            "the first log line",
            "document.querySelector('#logs').textContent.includes('nginx started')",
        )
        .await;
    browser.run("window.notReloaded = true; return true").await;
    bed.logs.push(
        "stdout",
        "172.17.0.1 - - \"GET /dashboard-probe HTTP/1.1\" 404 153",
    );
    browser
        .wait_for(
            "the new log line",
            "document.querySelector('#logs').textContent.includes('/dashboard-probe')",
        )
        .await;
    // The level filter reads each format's own level, not any word in the
    // line: the access line's /error.html and the info line's "errors" are
    // not errors.
    for (stream, line) in [
        (
            "stdout",
            r#"{"level":"error","msg":"level-probe json error"}"#,
        ),
        (
            "stdout",
            r#"{"level":30,"msg":"level-probe pino info, no errors"}"#,
        ),
        ("stdout", r#"{"level":50,"msg":"level-probe pino error"}"#),
        (
            "stderr",
            "time=now level=warn msg=\"level-probe logfmt warning\"",
        ),
        (
            "stderr",
            "2026/12/01 10:00:00 [error] 7#7: level-probe nginx error",
        ),
        (
            "stdout",
            "172.17.0.1 - - \"GET /error.html?level-probe HTTP/1.1\" 200 12",
        ),
        ("stderr", "level-probe plain line mentioning a warning"),
    ] {
        bed.logs.push(stream, line);
    }
    browser
        .wait_for(
            "the level-probe lines",
            "document.querySelector('#logs').textContent.includes('level-probe plain')",
        )
        .await;
    let shown_at = |level: &str| {
        format!(
            "const s = document.querySelector('select[aria-label=level]'); s.value = '{level}'; \
             s.dispatchEvent(new Event('input')); \
             return [...document.querySelectorAll('#logs > div')].map(d => d.textContent).filter(t => t.includes('level-probe')).map(t => t.split('level-probe ')[1])"
        )
    };
    let errors = browser.run(&shown_at("error")).await;
    assert_eq!(
        errors,
        serde_json::json!(["json error\"}", "pino error\"}", "nginx error"]),
        "lines shown at level error"
    );
    let warnings = browser.run(&shown_at("warn")).await;
    assert_eq!(
        warnings,
        serde_json::json!([
            "json error\"}",
            "pino error\"}",
            "logfmt warning\"",
            "nginx error"
        ]),
        "lines shown at level warn"
    );
    browser.run(&shown_at("")).await;

    // Alerts: an exec alert arrives while the page is open.
    browser.goto(&format!("{base}/#/alerts")).await;
    browser
        .wait_for(
            "the stored alert",
            "document.querySelector('#alerts').textContent.includes('80001')",
        )
        .await;
    browser.run("window.notReloaded = true; return true").await;
    bed.events
        .commit(
            &[alert(
                9,
                "80010",
                10,
                "exec in container busy: sh -c id",
                BUSY_ID,
                "busy",
            )],
            &Consumed::Nothing,
        )
        .unwrap();
    browser
        .wait_for(
            "the exec alert",
            "document.querySelector('#alerts').textContent.includes('exec in container busy')",
        )
        .await;
    assert_eq!(
        browser.run("return window.notReloaded === true").await,
        true
    );
    // Each alert opens its container at that moment.
    let href = browser
        .run("return document.querySelector('#alerts li a').getAttribute('href')")
        .await;
    assert!(
        href.as_str()
            .unwrap()
            .starts_with(&format!("#/c/{BUSY_ID}?at=")),
        "{href}"
    );

    browser.goto(&format!("{base}/#/audit")).await;
    browser
        .wait_for(
            "the audit findings",
            "document.body.textContent.includes('Container runs privileged')",
        )
        .await;

    // Screenshots: each page, desktop and phone width, light and dark.
    let container = format!("#/c/{BUSY_ID}");
    let pages = [
        Shot::new("overview", "#/", "#containers tbody tr"),
        Shot::new(
            "container",
            &container,
            "canvas[data-chart=CPU][data-points]",
        ),
        // The same page scrolled to its charts, the filesystem one among them.
        Shot::new(
            "container-charts",
            &container,
            "canvas[data-chart=Filesystem][data-points]",
        )
        .scrolled_to(".charts"),
        Shot::new("alerts", "#/alerts", "#alerts li"),
        Shot::new("audit", "#/audit", "#scores .card"),
    ];
    browser
        .screenshot_pages(&base, &pages, &screenshots())
        .await;
    let urls = browser.assert_clean(&base).await;
    assert!(!urls.is_empty());
    browser.quit().await;
}

/// With the audit off, the container and audit pages say so and the browser
/// logs no error: they ask the agent's state before the audit endpoint,
/// whose 404 Chromium would log as a failed load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_audit_leaves_no_console_error() {
    let Some((chromium, driver)) = webdriver::required() else {
        return;
    };
    let bed = start_with_audit(Tokens::open(), 0, false).await;
    let base = format!("http://127.0.0.1:{}", bed.port);
    let browser = Browser::start(chromium, driver, 1280, 900).await;
    browser.goto(&format!("{base}/#/audit")).await;
    browser
        .wait_for(
            "the audit page's message",
            "document.body.textContent.includes('the audit is disabled')",
        )
        .await;
    browser.goto(&format!("{base}/#/c/{BUSY_ID}")).await;
    browser
        .wait_for(
            "the container's findings box",
            "document.querySelector('#container-findings')?.textContent.includes('the audit is disabled')",
        )
        .await;
    let console = browser.console().await;
    let errors = webdriver::console_errors(&console);
    assert!(errors.is_empty(), "console errors: {errors:?}");
    browser.quit().await;
}

/// 7 days of minute rollups for 30 containers (302,400 points) drawn by the
/// dashboard's chart code in headless Chromium: prints each run's time
/// (the figure the issue asks for; a test asserts no timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chart_of_a_week_for_30_containers_renders() {
    let Some((chromium, driver)) = webdriver::required() else {
        return;
    };
    let bed = start(Tokens::open(), 0).await;
    let browser = Browser::start(chromium, driver, 1280, 900).await;
    browser
        .goto(&format!("http://127.0.0.1:{}/#/audit", bed.port))
        .await;
    browser
        .wait_for("the page", "document.querySelector('h1')")
        .await;
    let runs = browser
        .run_async(include_str!("../../../bench/chart_render.js"))
        .await;
    assert_eq!(runs["points"], 302_400, "{runs}");
    eprintln!(
        "chart render of 302,400 points, ms per run: {}",
        runs["runs"]
    );
    browser.quit().await;
}
