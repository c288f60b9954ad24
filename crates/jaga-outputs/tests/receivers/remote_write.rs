//! Debian's Prometheus with its remote-write receiver takes our protobuf +
//! snappy requests, back-filled points included (within its out-of-order
//! window), and refuses samples it cannot take with a 4xx that we count as
//! permanent.

use jaga_model::HistoryPoint;
use jaga_outputs::remote_write::{series_of, ContainerPoint, RemoteWriteSettings, RemoteWriter};
use serde_json::Value;

use crate::common::{free_port, start_prometheus, wait_for_async};

fn writer(url: &str) -> RemoteWriter {
    let settings: RemoteWriteSettings =
        toml::from_str(&format!("url = \"{url}/api/v1/write\"\ntimeout = \"10s\"")).unwrap();
    RemoteWriter::new(&settings).unwrap()
}

fn point(unix_ms: i64, memory: f64) -> HistoryPoint {
    let mut values = [1.0; jaga_model::SERIES_COUNT];
    values[1] = memory;
    HistoryPoint { unix_ms, values }
}

/// `points` as points of one container, "web".
fn on_web(points: &[HistoryPoint]) -> Vec<ContainerPoint<'_>> {
    points
        .iter()
        .map(|p| ContainerPoint {
            id: "abc",
            name: "web",
            image: "nginx",
            point: p,
        })
        .collect()
}

/// The values of `query` over `[start_s, end_s]` at 15 s steps.
pub async fn range(url: &str, query: &str, start_s: i64, end_s: i64) -> Vec<(f64, String)> {
    let response: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/query_range"))
        .query(&[
            ("query", query.to_owned()),
            ("start", start_s.to_string()),
            ("end", end_s.to_string()),
            ("step", "15".to_owned()),
        ])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .map(|body| serde_json::from_slice(&body).unwrap_or(Value::Null))
        .unwrap();
    let Some(result) = response["data"]["result"].as_array() else {
        return Vec::new();
    };
    result
        .iter()
        .flat_map(|series| series["values"].as_array().cloned().unwrap_or_default())
        .map(|pair| {
            (
                pair[0].as_f64().unwrap_or(0.0),
                pair[1].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn prometheus_takes_points_and_back_filled_ones_and_refuses_what_is_too_old() {
    let prometheus = start_prometheus("2h");
    let writer = writer(&prometheus.url);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let live = [point(now_ms, 300.0)];
    let points = on_web(&live);
    writer.send(&series_of(&points, "edge-1")).await.unwrap();

    // An outage of ten minutes, sent afterwards, oldest first.
    let gap: Vec<HistoryPoint> = (1..=10)
        .rev()
        .map(|minutes| point(now_ms - minutes * 60_000, 100.0 + minutes as f64))
        .collect();
    let points = on_web(&gap);
    let receipt = writer.send(&series_of(&points, "edge-1")).await.unwrap();
    assert!(receipt.answer.contains("204"), "{}", receipt.answer);

    let query = "container_memory_usage_bytes{instance=\"edge-1\",name=\"web\",job=\"jaga\"}";
    let now_s = now_ms / 1000;
    let values = wait_for_async("the back-filled points", || async {
        let values = range(&prometheus.url, query, now_s - 11 * 60, now_s - 60).await;
        values.iter().any(|(_, v)| v == "110").then_some(values)
    })
    .await;
    assert!(values.iter().any(|(_, v)| v == "105"), "{values:?}");

    // Five hours back is outside the out-of-order window: refused for good.
    let old = [point(now_ms - 5 * 3_600_000, 1.0)];
    let points = on_web(&old);
    let error = writer
        .send(&series_of(&points, "edge-1"))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error}");
    // 400, or 500 "too old sample" from Prometheus before 2.44.
    assert!(
        error.to_string().contains("too old") || error.to_string().contains("400"),
        "{error}"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_is_transient() {
    let port = free_port();
    let writer = writer(&format!("http://127.0.0.1:{port}"));
    let now = point(chrono::Utc::now().timestamp_millis(), 1.0);
    let points = [ContainerPoint {
        id: "abc",
        name: "web",
        image: "nginx",
        point: &now,
    }];
    let error = writer
        .send(&series_of(&points, "edge-1"))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error}");
}
