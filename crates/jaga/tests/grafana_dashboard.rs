#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `packaging/grafana/jaga-dashboard.json` against a real Prometheus
//! scraping a real `jaga serve`: every panel's query returns data.

mod common;

use std::time::Duration;

use common::agent::Agent;
use common::prometheus::Prometheus;
use common::*;

/// A panel's query as Grafana sends it: all containers, a 30 s rate window.
fn as_grafana_sends(expr: &str) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("${name}", ".*")
        .replace("$name", ".*")
}

#[test]
fn every_panel_of_the_grafana_dashboard_returns_data() {
    require_engine();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging/grafana/jaga-dashboard.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap().to_owned();
            panel["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_owned()))
        })
        .collect();
    assert!(queries.len() >= 10, "{} queries", queries.len());
    // The compose set-up provisions the same file (a copy: the compose
    // directory is meant to be copied alone).
    let compose_copy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging/compose/grafana/dashboards/jaga.json");
    assert_eq!(
        std::fs::read_to_string(&compose_copy).unwrap(),
        std::fs::read_to_string(&path).unwrap(),
        "packaging/compose/grafana/dashboards/jaga.json differs from packaging/grafana/jaga-dashboard.json: copy it over"
    );

    let data = tempfile::tempdir().unwrap();
    let _busy = TestContainer::busy_half_cpu("grafana");
    // On the bridge with a memory limit: network and "of limit" panels need both.
    let _bridged = TestContainer::run(
        "grafana-net",
        &["--memory", "64m", BUSYBOX, "sleep", "3600"],
    );
    let agent = Agent::start(data.path(), "");
    let prometheus = Prometheus::start(data.path(), agent.port);
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let query = as_grafana_sends(expr);
        let answered = wait_for(Duration::from_secs(60), || {
            let series = prometheus.query(&query);
            (!series.is_empty()).then_some(series.len())
        });
        if answered.is_none() {
            empty.push(format!("{title}: {query}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels without data:\n{}",
        empty.join("\n")
    );
}
