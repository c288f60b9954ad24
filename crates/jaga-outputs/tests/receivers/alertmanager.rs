//! Debian's prometheus-alertmanager takes firing alerts with their labels
//! and ends them when the resolving alert comes.

use jaga_model::{AlertEpisode, EpisodeStatus};
use jaga_outputs::{DeliveryError, Message};
use serde_json::Value;

use crate::common::{self, free_port, start_served, Served};

fn start_alertmanager() -> Served {
    start_served(
        "alertmanager",
        "/usr/bin/prometheus-alertmanager",
        "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n",
        "storage.path",
        &["--cluster.listen-address="],
    )
}

/// The alerts Alertmanager holds as active (resolved ones are not listed).
async fn active_alerts(url: &str) -> Vec<Value> {
    let response = reqwest::get(format!("{url}/api/v2/alerts")).await.unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let body: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    body.as_array().cloned().unwrap_or_default()
}

fn with_alert_id<'a>(alerts: &'a [Value], id: &str) -> Option<&'a Value> {
    alerts
        .iter()
        .find(|alert| alert["annotations"]["alert_id"] == id)
}

fn episode(id: &str, status: EpisodeStatus, ended_at: Option<String>) -> jaga_outputs::StoredAlert {
    let mut stored = common::alert(id, "web");
    stored.alert.rule.id = "95001".to_string();
    stored.alert.rule.level = 10;
    stored.alert.rule.description = "CPU of web above 90% of its limit for 5m".to_string();
    stored.alert.episode = Some(AlertEpisode {
        key: "95001/web".to_string(),
        status,
        started_at: (chrono::Utc::now() - chrono::Duration::minutes(5))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ended_at,
    });
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firing_episode_shows_with_its_labels_and_its_resolution_ends_it() {
    let am = start_alertmanager();
    let output = common::output(&format!(
        "type = \"alertmanager\"\nurls = [\"{}\"]\nresend_every = \"1m\"",
        am.url
    ));
    assert_eq!(
        output.resend_firing_every(),
        Some(std::time::Duration::from_secs(60))
    );

    let firing = episode("fire-1", EpisodeStatus::Firing, None);
    let receipt = output.deliver(&Message::single(firing)).await.unwrap();
    assert!(receipt.answer.starts_with("HTTP 200"), "{}", receipt.answer);

    let shown = common::wait_for_async("the firing alert in alertmanager", || async {
        with_alert_id(&active_alerts(&am.url).await, "fire-1").cloned()
    })
    .await;
    let labels = &shown["labels"];
    assert_eq!(labels["alertname"], "jaga_95001");
    assert_eq!(labels["rule_id"], "95001");
    assert_eq!(labels["severity"], "warning");
    assert_eq!(labels["container"], "web");
    assert_eq!(labels["image"], "nginx:1.25");
    assert_eq!(labels["host"], "host1");
    assert_eq!(labels["jaga_groups"], "docker,privilege");
    assert!(shown["annotations"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("level 10 CPU of web above 90%"));

    // The resolving alert has another id but the same labels: it ends the
    // firing one.
    let ended = (chrono::Utc::now() - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let resolved = episode("resolve-1", EpisodeStatus::Resolved, Some(ended));
    output.deliver(&Message::single(resolved)).await.unwrap();
    common::wait_for_async("the episode to leave the active alerts", || async {
        let alerts = active_alerts(&am.url).await;
        alerts
            .iter()
            .all(|alert| alert["labels"]["rule_id"] != "95001")
            .then_some(())
    })
    .await;
    drop(am);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_live_alertmanager_of_a_pair_is_enough_and_none_is_transient() {
    let am = start_alertmanager();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let pair = common::output(&format!(
        "type = \"alertmanager\"\nurls = [\"{dead}\", \"{}\"]\ntimeout = \"5s\"",
        am.url
    ));
    let receipt = pair
        .deliver(&Message::single(common::alert("ha-1", "db")))
        .await
        .unwrap();
    assert!(
        receipt.answer.contains("not taken by 1"),
        "{}",
        receipt.answer
    );
    let shown = common::wait_for_async("the one-shot alert", || async {
        with_alert_id(&active_alerts(&am.url).await, "ha-1").cloned()
    })
    .await;
    assert_eq!(shown["labels"]["container"], "db");
    assert_eq!(shown["labels"]["severity"], "critical");

    let none = common::output(&format!(
        "type = \"alertmanager\"\nurls = [\"{dead}\"]\ntimeout = \"5s\""
    ));
    match none
        .deliver(&Message::single(common::alert("ha-2", "db")))
        .await
    {
        Err(DeliveryError::Transient { reason, .. }) => {
            assert!(reason.contains("cannot connect"), "{reason}")
        }
        other => panic!("expected a transient failure, got {other:?}"),
    }
    drop(am);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_is_delivered_as_every_alert_it_holds() {
    let am = start_alertmanager();
    let output = common::output(&format!("type = \"alertmanager\"\nurls = [\"{}\"]", am.url));
    let mut second = common::alert("group-2", "api");
    second.alert.rule.id = "91012".to_string();
    let message = Message {
        alerts: vec![common::alert("group-1", "api"), second],
    };
    output.deliver(&message).await.unwrap();
    common::wait_for_async("both alerts of the group", || async {
        let alerts = active_alerts(&am.url).await;
        (with_alert_id(&alerts, "group-1").is_some() && with_alert_id(&alerts, "group-2").is_some())
            .then_some(())
    })
    .await;
    drop(am);
}
