//! The remote-write back-fill of a gap longer than the raw history, into
//! Debian's Prometheus (installed by `scripts/receivers.sh`): the part of
//! the gap whose raw points were trimmed arrives as one point per minute
//! from the minute rollups, the part older than the rollups is counted as
//! lost, and the raw points follow.
//! `cargo test -p jaga-agent --test remote_write_backfill`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jaga_agent::outputs::remote_write::{RemoteWrite, KIND, NAME};
use jaga_agent::outputs::status::OutputStatus;
use jaga_model::{ContainerId, ContainerRef, ContainerState, HistoryPoint, SERIES_COUNT};
use jaga_outputs::remote_write::{series_of, ContainerPoint, RemoteWriteSettings, RemoteWriter};
use jaga_store::{HistoryStore, Retention};
use serde_json::Value;

#[allow(dead_code)]
#[path = "../../jaga-outputs/tests/receivers/common.rs"]
mod common;

const MIN: i64 = 60_000;

fn floor_minute(ms: i64) -> i64 {
    ms.div_euclid(MIN) * MIN
}

fn ceil_minute(ms: i64) -> i64 {
    let floor = floor_minute(ms);
    if floor == ms {
        floor
    } else {
        floor + MIN
    }
}

/// Memory of a point at `t`: its minute (since the epoch) times 1000
/// plus its place in the minute (0, 1, 2 at 20 s spacing), so the
/// minute's mean is `1000 * minute + 1`.
fn memory_at(t: i64) -> f64 {
    (t.div_euclid(MIN) * 1000 + t.rem_euclid(MIN) / 20_000) as f64
}

fn point(t: i64) -> HistoryPoint {
    let mut values = [2.0; SERIES_COUNT];
    values[1] = memory_at(t);
    HistoryPoint { unix_ms: t, values }
}

fn container(id: &ContainerId, name: &str) -> ContainerRef {
    ContainerRef {
        id: id.clone(),
        name: name.to_owned(),
        image: "nginx".to_owned(),
        labels: BTreeMap::new(),
        state: ContainerState::Running,
        pid: None,
        network_mode: "bridge".to_owned(),
        created: 0,
        started_at: None,
        restart_policy: None,
        health: None,
        exit_code: None,
    }
}

/// Prometheus's answer to `path` with `query`, its `data.result`.
async fn prometheus_result(url: &str, path: &str, query: &[(&str, String)]) -> Vec<Value> {
    let response: Value = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .query(query)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "success", "{response}");
    response["data"]["result"].as_array().cloned().unwrap()
}

/// The (unix ms, value) pairs of the one series in `result`.
fn samples(result: &[Value]) -> Vec<(i64, f64)> {
    assert_eq!(result.len(), 1, "{result:?}");
    result[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let ms = (pair[0].as_f64().unwrap() * 1000.0).round() as i64;
            (ms, pair[1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_longer_than_the_raw_history_is_back_filled_from_minute_rollups() {
    // A 3 h out-of-order window: Prometheus takes samples that far behind
    // its newest one (without it, about 1 h).
    let prometheus = common::start_prometheus("3h");
    let now = chrono::Utc::now().timestamp_millis();
    let settings: RemoteWriteSettings = toml::from_str(&format!(
        "url = \"{}/api/v1/write\"\ntimeout = \"10s\"\nevery = \"1s\"\n\
         max_samples_per_request = 240\nsamples_per_second = 20000\n",
        prometheus.url
    ))
    .unwrap();

    // The receiver already has a sample of now (from another container),
    // as after a real outage.
    let live = point(now);
    let writer = RemoteWriter::new(&settings).unwrap();
    writer
        .send(&series_of(
            &[ContainerPoint {
                id: "live",
                name: "live",
                image: "nginx",
                point: &live,
            }],
            "edge-1",
        ))
        .await
        .unwrap();

    // Two hours of history at 20 s, raw points kept 30 min, rollups 90.
    let dir = tempfile::tempdir().unwrap();
    let store = HistoryStore::open(
        dir.path(),
        Retention {
            raw: Duration::from_secs(30 * 60),
            rollup: Duration::from_secs(90 * 60),
        },
    )
    .unwrap();
    let (web, db) = (
        ContainerId::new("a".repeat(64)),
        ContainerId::new("b".repeat(64)),
    );
    store
        .upsert_containers(&[container(&web, "web"), container(&db, "db")], now)
        .unwrap();
    let gap_start = now - 120 * MIN;
    let mut batch = Vec::new();
    let mut t = gap_start;
    while t < now {
        batch.push((web.clone(), point(t)));
        batch.push((db.clone(), point(t)));
        t += 20_000;
    }
    let last_point = t - 20_000;
    store.write_points(&batch).unwrap();
    store.trim(now).unwrap();
    // The agent's cursor stopped when the outage began.
    store.set_cursor("remote_write", gap_start).unwrap();

    let status = Arc::new(OutputStatus::new(NAME, KIND));
    let exporter = RemoteWrite {
        writer,
        settings,
        store: Arc::new(store),
        instance: "edge-1".to_owned(),
        status: Arc::clone(&status),
    };
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(exporter.run(shutdown));
    common::wait_for_async("the exporter to catch up", || async {
        (status.snapshot().cursor > last_point).then_some(())
    })
    .await;
    stop.send(true).unwrap();
    task.await.unwrap();

    // Rollups are kept from the first minute after now - 90 min, raw
    // points from the first whole minute after now - 30 min.
    let kept_from = ceil_minute(now - 90 * MIN);
    let split = ceil_minute(now - 30 * MIN);
    let stats = status.snapshot();
    let backfill = stats.backfill.unwrap();
    let minutes = (split - kept_from) / MIN;
    assert_eq!(minutes, 60);
    // A sample per minute, series (all twelve have values) and container.
    assert_eq!(backfill.rollup_samples_total, minutes as u64 * 12 * 2);
    assert_eq!(
        backfill.lost_seconds_total,
        ((kept_from - gap_start) as u64).div_ceil(1000)
    );
    assert_eq!(stats.dead_lettered_total, 0, "{stats:?}");

    // A range query over the old part of the gap: one point a minute, the
    // minute's mean.
    let query = "container_memory_usage_bytes{instance=\"edge-1\",job=\"jaga\",name=\"web\"}";
    let old = samples(
        &prometheus_result(
            &prometheus.url,
            "/api/v1/query_range",
            &[
                ("query", query.to_owned()),
                ("start", (kept_from / 1000).to_string()),
                ("end", ((split - MIN) / 1000).to_string()),
                ("step", "60".to_owned()),
            ],
        )
        .await,
    );
    let expected: Vec<(i64, f64)> = (0..minutes)
        .map(|i| {
            let minute = kept_from + i * MIN;
            (minute, (minute / MIN * 1000 + 1) as f64)
        })
        .collect();
    assert_eq!(old, expected);

    // Every sample stored: none older than the rollups kept, one a minute
    // up to the split, then the raw points at 20 s.
    let stored = samples(
        &prometheus_result(
            &prometheus.url,
            "/api/v1/query",
            &[
                ("query", format!("{query}[3h]")),
                ("time", format!("{:.3}", (now + 1) as f64 / 1000.0)),
            ],
        )
        .await,
    );
    let (before, after): (Vec<_>, Vec<_>) = stored.iter().partition(|(t, _)| *t < split);
    assert_eq!(before, expected.iter().collect::<Vec<_>>());
    let raw: Vec<(i64, f64)> = batch
        .iter()
        .filter(|(id, p)| *id == web && p.unix_ms >= split)
        .map(|(_, p)| (p.unix_ms, p.values[1]))
        .collect();
    assert_eq!(after.into_iter().copied().collect::<Vec<_>>(), raw);
}
