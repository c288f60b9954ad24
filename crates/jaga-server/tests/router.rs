#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTP surface on hand-made snapshots: health states, content
//! negotiation of `/metrics`, and the JSON error shape.

mod metrics_support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jaga_model::{Snapshot, TaskHealth};
use jaga_server::{router, LabelOptions, ServerState, TaskHealthSource};
use jaga_store::{HistoryStore, Retention};
use tokio::sync::watch;
use tower::ServiceExt;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn app(snapshot: Snapshot, dir: &std::path::Path) -> axum::Router {
    app_with_tasks(snapshot, dir, None)
}

fn app_with_tasks(
    snapshot: Snapshot,
    dir: &std::path::Path,
    tasks: Option<TaskHealthSource>,
) -> axum::Router {
    let (_tx, rx) = watch::channel(Arc::new(snapshot));
    // The sender may go: the receiver keeps the last value.
    let store = HistoryStore::open(dir, Retention::default()).unwrap();
    router(Arc::new(ServerState {
        snapshot: rx,
        store: Arc::new(store),
        labels: LabelOptions::default(),
        interval: Duration::from_secs(1),
        events: None,
        audit: None,
        auth: Arc::new(jaga_server::auth::Tokens::open()),
        http: Arc::default(),
        tasks,
        outputs: None,
        processes: None,
        logs: None,
        setup: None,
    }))
}

async fn get(app: axum::Router, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::get(path);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

fn collected(taken_unix_ms: i64) -> Snapshot {
    let mut snapshot = metrics_support::two_containers();
    snapshot.taken_unix_ms = taken_unix_ms;
    snapshot.agent.collections_total = 3;
    snapshot
}

#[tokio::test]
async fn healthz_is_503_before_the_first_pass_and_when_stalled() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, body) = get(app(Snapshot::default(), dir.path()), "/healthz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"status\":\"starting\""), "{body}");

    let (status, _, body) = get(
        app(collected(now_ms() - 60_000), dir.path()),
        "/healthz",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"status\":\"stalled\""), "{body}");

    let (status, _, body) = get(app(collected(now_ms()), dir.path()), "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"status\":\"ok\""), "{body}");
}

fn tasks(logs_state: &str, logs_up: bool) -> TaskHealthSource {
    let logs = TaskHealth {
        name: "logs".to_owned(),
        up: logs_up,
        state: logs_state.to_owned(),
        last_progress_age_seconds: 42.5,
    };
    let collector = TaskHealth {
        name: "collector".to_owned(),
        up: true,
        state: "running".to_owned(),
        last_progress_age_seconds: 0.25,
    };
    Arc::new(move || vec![collector.clone(), logs.clone()])
}

#[tokio::test]
async fn healthz_is_503_naming_a_dead_task_while_collection_keeps_up() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, body) = get(
        app_with_tasks(
            collected(now_ms()),
            dir.path(),
            Some(tasks("dead: panicked: boom", false)),
        ),
        "/healthz",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "unhealthy");
    assert_eq!(health["tasks"]["logs"], "dead: panicked: boom");
    assert_eq!(health["tasks"]["collector"], "running");
    assert!(health["collections_total"].as_u64().unwrap() > 0, "{body}");

    let (status, _, body) = get(
        app_with_tasks(
            collected(now_ms()),
            dir.path(),
            Some(tasks("running", true)),
        ),
        "/healthz",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn metrics_show_each_task_up_and_its_last_progress() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, body) = get(
        app_with_tasks(
            collected(now_ms()),
            dir.path(),
            Some(tasks("stalled: no progress for 42s (bound 30s)", false)),
        ),
        "/metrics",
        None,
    )
    .await;
    assert!(body.contains("# TYPE jaga_task_up gauge"), "{body}");
    assert!(body.contains("jaga_task_up{task=\"logs\"} 0\n"), "{body}");
    assert!(
        body.contains("jaga_task_up{task=\"collector\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("jaga_task_last_progress_seconds{task=\"logs\"} 42.5\n"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_speak_prometheus_text_or_openmetrics_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (status, content_type, body) =
        get(app(collected(now_ms()), dir.path()), "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(body.contains("# TYPE container_cpu_usage_seconds_total counter"));

    let (_, content_type, body) = get(
        app(collected(now_ms()), dir.path()),
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn errors_are_json_naming_the_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let (status, content_type, body) = get(
        app(collected(now_ms()), dir.path()),
        "/api/v1/containers/web/history?from=10&to=5",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type, "application/json");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["status"], 400);
    assert_eq!(error["error"]["parameter"], "from");

    let (status, _, body) = get(
        app(collected(now_ms()), dir.path()),
        "/api/v1/containers/web/history?limit=3",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("unknown parameter 'limit'"), "{body}");
}

#[tokio::test]
async fn live_containers_resolve_by_name_and_unknown_ones_are_404() {
    let dir = tempfile::tempdir().unwrap();
    let (status, _, body) = get(
        app(collected(now_ms()), dir.path()),
        "/api/v1/containers/web",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let c: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(c["id"], metrics_support::WEB_ID);
    assert_eq!(c["live"], true);

    let (status, _, body) = get(
        app(collected(now_ms()), dir.path()),
        "/api/v1/containers/nobody/latest",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("No such container: nobody"), "{body}");
}
