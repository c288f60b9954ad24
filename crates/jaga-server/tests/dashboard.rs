#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dashboard's server side on a real socket: the live stream and its
//! resume without a gap, the page's headers, and the login form.

mod dashboard_support;

use std::time::Duration;

use dashboard_support::*;
use jaga_server::auth::{TokenHash, TokenSources, Tokens};
use jaga_store::Consumed;

/// The status of a GET with a cookie.
async fn status_with_cookie(url: &str, cookie: &str) -> u16 {
    client()
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn get_json(url: &str) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Reads SSE messages until `done` says so; (event, id, data) each.
async fn read_until(
    response: &mut reqwest::Response,
    seen: &mut Vec<(String, String, String)>,
    done: impl Fn(&[(String, String, String)]) -> bool,
) {
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(seen) {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("the awaited messages within 60 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ").or(line.strip_prefix("event:")) {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("id: ").or(line.strip_prefix("id:")) {
                    id = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ").or(line.strip_prefix("data:")) {
                    data.push_str(v);
                }
            }
            if !event.is_empty() {
                seen.push((event, id, data));
            }
        }
    }
}

fn has(seen: &[(String, String, String)], event: &str, needle: &str) -> bool {
    seen.iter()
        .any(|(e, _, d)| e == event && d.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sends_samples_alerts_and_lifecycle_and_resumes_without_a_gap() {
    let bed = start(Tokens::open(), 0).await;
    let url = format!("http://127.0.0.1:{}/api/v1/stream", bed.port);
    let mut response = client().get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut seen = Vec::new();
    // Two samples: the one at connection and the next collection.
    read_until(&mut response, &mut seen, |s| {
        s.iter().filter(|(e, _, _)| e == "sample").count() >= 2
    })
    .await;
    assert_eq!(seen[0].0, "hello");
    assert!(has(&seen, "sample", "\"name\":\"busy\""), "{seen:?}");
    // The alert stored before the connection is not replayed.
    assert!(!has(&seen, "alert", "80001"), "{seen:?}");

    bed.events
        .commit(
            &[alert(
                2,
                "80002",
                10,
                "exec into container",
                BUSY_ID,
                "busy",
            )],
            &Consumed::Nothing,
        )
        .unwrap();
    bed.events
        .record(&lifecycle("stop", WEB_ID, "web"), &[])
        .unwrap();
    read_until(&mut response, &mut seen, |s| {
        has(s, "alert", "80002") && has(s, "container", "\"action\":\"stop\"")
    })
    .await;
    let last_id = seen
        .iter()
        .rev()
        .find(|(_, id, _)| !id.is_empty())
        .unwrap()
        .1
        .clone();
    drop(response);

    // Stored while no one listens: a reconnect with Last-Event-ID gets them.
    bed.events
        .commit(
            &[alert(3, "80003", 12, "while away", WEB_ID, "web")],
            &Consumed::Nothing,
        )
        .unwrap();
    bed.events
        .record(&lifecycle("start", WEB_ID, "web"), &[])
        .unwrap();
    let mut resumed = client()
        .get(&url)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let mut again = Vec::new();
    read_until(&mut resumed, &mut again, |s| {
        has(s, "alert", "80003") && has(s, "container", "\"action\":\"start\"")
    })
    .await;
    assert!(!has(&again, "alert", "80002"), "sent twice: {again:?}");
    assert!(
        !has(&again, "container", "\"action\":\"stop\""),
        "sent twice: {again:?}"
    );

    let bad = client()
        .get(&url)
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad
        .text()
        .await
        .unwrap()
        .contains("'x' is not a stream cursor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_is_served_with_a_strict_policy_and_assets_gzipped() {
    let bed = start(Tokens::open(), 0).await;
    let base = format!("http://127.0.0.1:{}", bed.port);
    let page = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    let script = client()
        .get(format!("{base}/assets/app.js"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert_eq!(script.headers()["content-encoding"], "gzip");
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let missing = client()
        .get(format!("{base}/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // No token needed on loopback without tokens: the login form goes to the page.
    let login = client().get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(login.status(), 303);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_opens_a_strict_session_and_failures_are_limited() {
    let tokens = Tokens::load(TokenSources {
        hashes: vec![TokenHash::of("jaga_right")],
        file: None,
    })
    .unwrap();
    let bed = start(tokens, 0).await;
    let base = format!("http://127.0.0.1:{}", bed.port);
    let page = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login");
    let api = client()
        .get(format!("{base}/api/v1/host"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    let stream = client()
        .get(format!("{base}/api/v1/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 401);
    // The form and the page's code load without a token.
    assert_eq!(
        client()
            .get(format!("{base}/login"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client()
            .get(format!("{base}/assets/style.css"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let post = |token: &str| {
        client()
            .post(format!("{base}/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let wrong = post("jaga_wrong").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("That token is not valid"));

    let right = post("jaga_right").await.unwrap();
    assert_eq!(right.status(), 303);
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "not under TLS: {cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(
        status_with_cookie(&format!("{base}/api/v1/host"), &session).await,
        200
    );
    assert_eq!(status_with_cookie(&format!("{base}/"), &session).await, 200);

    // The login cleared the count: five failures, then even the right token waits.
    for _ in 0..5 {
        assert_eq!(post("jaga_wrong").await.unwrap().status(), 401);
    }
    let limited = post("jaga_right").await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));

    let out = client()
        .post(format!("{base}/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    assert_eq!(
        status_with_cookie(&format!("{base}/api/v1/host"), &session).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_with_the_cursor() {
    let bed = start(Tokens::open(), 0).await;
    let base = format!("http://127.0.0.1:{}", bed.port);
    let first = get_json(&format!("{base}/api/v1/containers/web/logs?tail=10")).await;
    assert_eq!(first["lines"][0]["line"], "nginx started", "{first}");
    tokio::time::sleep(Duration::from_millis(5)).await;
    bed.logs.push("stderr", "GET /probe 404");
    let cursor = first["cursor"].as_str().unwrap();
    let next = get_json(&format!("{base}/api/v1/containers/web/logs?after={cursor}")).await;
    let lines = next["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{next}");
    assert_eq!(lines[0]["stream"], "stderr");
    let bad = client()
        .get(format!("{base}/api/v1/containers/web/logs?tail=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_carries_the_disk_series_from_walks_and_leaves_them_out_between() {
    let bed = start(Tokens::open(), 1).await;
    let base = format!("http://127.0.0.1:{}/api/v1/containers", bed.port);
    let now_s = now_ms() / 1000;

    // Raw points of the last half hour: a walk in every sixth point.
    let raw = get_json(&format!(
        "{base}/busy/history?from={}&to={now_s}",
        now_s - 1800
    ))
    .await;
    let series: Vec<&str> = raw["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for name in ["writable_layer_bytes", "volume_bytes", "log_file_bytes"] {
        assert!(series.contains(&name), "{series:?}");
    }
    let points = raw["points"].as_array().unwrap();
    assert!(points.len() > 300, "{} raw points", points.len());
    let walks: Vec<&serde_json::Value> = points
        .iter()
        .filter(|p| p["avg"].get("writable_layer_bytes").is_some())
        .collect();
    assert!(
        walks.len() >= 50 && walks.len() < points.len() / 3,
        "{} of {} raw points carry a walk",
        walks.len(),
        points.len()
    );
    for p in &walks {
        let t = p["unix_ms"].as_i64().unwrap();
        assert_eq!(p["avg"]["writable_layer_bytes"], layer_bytes(t), "{p}");
        assert_eq!(p["avg"]["volume_bytes"], 1e9, "{p}");
        assert_eq!(p["avg"]["log_file_bytes"], 2e6, "{p}");
    }
    // Between walks the series are absent: neither 0 nor null.
    let between = points
        .iter()
        .find(|p| p["avg"].get("writable_layer_bytes").is_none())
        .unwrap();
    assert!(between["avg"].get("cpu_percent").is_some(), "{between}");
    assert!(between["avg"].get("log_file_bytes").is_none(), "{between}");

    // Ten-minute buckets of minute rollups a day back: each holds the walks
    // of its minutes, so none is missing or 0; web has no volumes.
    let from = now_s - 86_000;
    let to = now_s - 3 * 3600;
    for (name, volumes) in [("busy", true), ("web", false)] {
        let rolled = get_json(&format!(
            "{base}/{name}/history?from={from}&to={to}&step=10m"
        ))
        .await;
        let buckets = rolled["points"].as_array().unwrap();
        assert!(buckets.len() > 100, "{name}: {} buckets", buckets.len());
        for b in buckets {
            let layer = b["avg"]["writable_layer_bytes"].as_f64().unwrap();
            let (start, end) = (
                layer_bytes(b["unix_ms"].as_i64().unwrap()),
                layer_bytes(b["unix_ms"].as_i64().unwrap() + 600_000),
            );
            // The layer grows all day, except across midnight (UTC).
            assert!(
                (layer >= start && layer <= end) || start > end,
                "{name}: {layer} not within {start}..{end}: {b}"
            );
            assert_eq!(b["avg"].get("volume_bytes").is_some(), volumes, "{b}");
        }
    }
}
