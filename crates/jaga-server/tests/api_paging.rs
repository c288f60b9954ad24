#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `/api/v1/alerts` and `/api/v1/events` read to the end with `after=`:
//! paging by the shown times lost alerts (82,000 of 86,055) because `to`
//! filtered on the time of storing and there was no cursor.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use jaga_model::{Alert, AlertAgent, AlertRule, DockerEvent, Event, Snapshot};
use jaga_server::{router, LabelOptions, ServerState};
use jaga_store::{EventStore, HistoryStore, Retention};
use tokio::sync::watch;
use tower::ServiceExt;

const BASE_MS: i64 = 1_700_000_000_000;

fn app(dir: &std::path::Path, events: Arc<EventStore>) -> axum::Router {
    let (_tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    let store = HistoryStore::open(dir, Retention::default()).unwrap();
    router(Arc::new(ServerState {
        snapshot: rx,
        store: Arc::new(store),
        labels: LabelOptions::default(),
        interval: Duration::from_secs(1),
        events: Some(events),
        audit: None,
        auth: Arc::new(jaga_server::auth::Tokens::open()),
        http: Arc::default(),
        tasks: None,
        outputs: None,
        processes: None,
        logs: None,
        setup: None,
    }))
}

async fn get_json(app: &axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
    let response = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// A log alert that shows `time_ms` (read much later, as after a restart).
fn log_alert(n: usize, time_ms: i64) -> Alert {
    Alert {
        id: format!("log.{n:016x}.31100"),
        timestamp: chrono::DateTime::from_timestamp_millis(time_ms)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string(),
        rule: AlertRule {
            id: "31100".to_owned(),
            level: 6,
            description: "SQL injection attempt".to_owned(),
            groups: vec!["web".to_owned()],
            mitre: vec![],
        },
        agent: AlertAgent::default(),
        container: None,
        data: BTreeMap::new(),
        location: "/var/lib/docker/containers/x/x-json.log".to_owned(),
        event: None,
        episode: None,
    }
}

/// `path` followed with `after=` until an empty page: every seq seen.
async fn read_all(app: &axum::Router, path: &str) -> Vec<i64> {
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get_json(app, &format!("{path}?after={after}&limit=1000")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = page.as_array().unwrap().clone();
        let Some(last) = page.last() else {
            return seqs;
        };
        after = last["seq"].as_i64().unwrap();
        seqs.extend(page.iter().map(|r| r["seq"].as_i64().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_is_read_once_with_after_and_to_filters_on_the_shown_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EventStore::open(dir.path()).unwrap());
    // 2,600 alerts whose shown times are out of storing order.
    let times: Vec<i64> = (0..2_600)
        .map(|i| BASE_MS + ((i * 7_919) % 2_600) as i64 * 1_000)
        .collect();
    for (batch, chunk) in times.chunks(200).enumerate() {
        let alerts: Vec<Alert> = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| log_alert(batch * 200 + i, *t))
            .collect();
        store
            .record_log_batch(
                "/logs/a",
                &jaga_store::LogCheckpoint {
                    inode: 1,
                    offset: batch as u64,
                    ..Default::default()
                },
                &alerts,
            )
            .unwrap();
    }
    for i in 0..1_200i64 {
        let event = Event {
            docker: DockerEvent {
                time_nano: (BASE_MS + i) * 1_000_000,
                kind: "container".to_owned(),
                action: "start".to_owned(),
                action_detail: None,
                actor_id: format!("c{i}"),
                attributes: BTreeMap::new(),
                scope: "local".to_owned(),
            },
            container: None,
            exec_command: None,
        };
        store.record(&event, &[]).unwrap();
    }
    let app = app(dir.path(), Arc::clone(&store));

    let alerts = read_all(&app, "/api/v1/alerts").await;
    let unique: BTreeSet<i64> = alerts.iter().copied().collect();
    assert_eq!(alerts.len(), times.len());
    assert_eq!(unique.len(), times.len());
    assert!(alerts.windows(2).all(|w| w[0] < w[1]), "ascending seq");

    let events = read_all(&app, "/api/v1/events").await;
    assert_eq!(events.len(), 1_200);
    assert_eq!(events.iter().collect::<BTreeSet<_>>().len(), 1_200);

    // `to` is the time shown: everything up to the 1,000th second.
    let to_ms = BASE_MS + 999_000;
    let (status, upto) = get_json(
        &app,
        &format!("/api/v1/alerts?to={}&limit=10000", to_ms as f64 / 1000.0),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let upto = upto.as_array().unwrap();
    assert_eq!(upto.len(), times.iter().filter(|t| **t <= to_ms).count());
    assert_eq!(upto.len(), 1_000);
    assert!(upto.iter().all(|a| {
        let shown = chrono::DateTime::parse_from_rfc3339(a["timestamp"].as_str().unwrap()).unwrap();
        shown.timestamp_millis() <= to_ms
    }));

    let (status, error) = get_json(&app, "/api/v1/alerts?after=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"]["parameter"], "after", "{error}");
}
