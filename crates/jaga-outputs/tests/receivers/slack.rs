//! Slack payloads against an HTTP receiver of our own that answers as
//! Slack does: 200 `ok`, 400 `invalid_payload`, 500 and 429 with
//! `Retry-After`, or nothing in time. The same receiver checks the
//! Alertmanager output's credentials.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use jaga_outputs::{DeliveryError, Message};
use serde_json::Value;

use crate::common;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Request>>>);

#[derive(Clone, Debug)]
struct Request {
    path: String,
    headers: HeaderMap,
    body: Value,
}

/// The first segment of the path says how to answer.
async fn answer(State(seen): State<Seen>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().to_string();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.0.lock().unwrap().push(Request {
        path: path.clone(),
        headers,
        body,
    });
    match path.split('/').nth(1).unwrap_or("") {
        "fail" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("retry-after", "7")],
            "upstream down",
        )
            .into_response(),
        "rate" => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "3")],
            "slow down",
        )
            .into_response(),
        "bad" => (StatusCode::BAD_REQUEST, "invalid_payload").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "ok".into_response()
        }
        _ => "ok".into_response(),
    }
}

/// Starts the receiver; its base URL and what it saw.
async fn start_receiver() -> (String, Seen) {
    let seen = Seen::default();
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), seen)
}

fn slack(url: &str, extra: &str) -> std::sync::Arc<dyn jaga_outputs::Output> {
    common::output(&format!("type = \"slack\"\nurl = \"{url}\"\n{extra}"))
}

#[tokio::test]
async fn the_webhook_gets_a_readable_payload_with_username_and_channel() {
    let (base, seen) = start_receiver().await;
    let output = slack(
        &format!("{base}/ok/T000/B000/XXXX"),
        "username = \"jaga\"\nchannel = \"#alerts\"\nicon_emoji = \":whale:\"",
    );
    let receipt = output
        .deliver(&Message::single(common::alert("s-1", "web")))
        .await
        .unwrap();
    assert_eq!(receipt.answer, "HTTP 200 OK: ok");

    let requests = seen.0.lock().unwrap().clone();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/ok/T000/B000/XXXX");
    assert_eq!(request.headers["content-type"], "application/json");
    let body = &request.body;
    assert_eq!(
        body["text"],
        ":rotating_light: *level 12 Privileged container started: web on host1*"
    );
    assert_eq!(body["username"], "jaga");
    assert_eq!(body["channel"], "#alerts");
    assert_eq!(body["icon_emoji"], ":whale:");
    let facts = body["attachments"][0]["text"].as_str().unwrap();
    for fact in [
        "*Rule:* 91011",
        "*Image:* nginx:1.25",
        "*Host:* host1",
        "*action:* start",
        "*Alert id:* s-1",
    ] {
        assert!(facts.contains(fact), "{fact} in {facts}");
    }
}

#[tokio::test]
async fn a_group_says_how_many_and_lists_its_ids() {
    let (base, seen) = start_receiver().await;
    let output = slack(&format!("{base}/ok/x"), "attachments = false");
    let message = Message {
        alerts: (1..=3)
            .map(|n| common::alert(&format!("g-{n}"), "web"))
            .collect(),
    };
    output.deliver(&message).await.unwrap();
    let body = seen.0.lock().unwrap()[0].body.clone();
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            ":rotating_light: *3× level 12 Privileged container started: web on host1*\n"
        ),
        "{text}"
    );
    assert!(text.contains("*Alert ids:* g-1, g-2, g-3"), "{text}");
    assert!(body.get("attachments").is_none());
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient_with_retry_after() {
    let (base, _) = start_receiver().await;
    let message = Message::single(common::alert("s-2", "web"));
    for (path, wait) in [("fail", 7), ("rate", 3)] {
        match slack(&format!("{base}/{path}/x"), "")
            .deliver(&message)
            .await
        {
            Err(DeliveryError::Transient {
                reason,
                retry_after,
            }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(wait)), "{path}");
                assert!(reason.contains("HTTP"), "{reason}");
            }
            other => panic!("{path}: expected transient, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_refused_payload_is_permanent_with_the_body_and_without_the_token() {
    let (base, _) = start_receiver().await;
    let output = slack(&format!("{base}/bad/T000/B000/SECRETTOKEN"), "");
    match output
        .deliver(&Message::single(common::alert("s-3", "web")))
        .await
    {
        Err(error @ DeliveryError::Permanent { .. }) => {
            let DeliveryError::Permanent { answer, .. } = &error else {
                unreachable!()
            };
            assert_eq!(answer, "HTTP 400 Bad Request: invalid_payload");
            assert!(
                !format!("{error} {error:?}").contains("SECRETTOKEN"),
                "{error:?}"
            );
        }
        other => panic!("expected permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_times_out_as_transient() {
    let (base, _) = start_receiver().await;
    let output = slack(&format!("{base}/slow/SECRETTOKEN"), "timeout = \"1s\"");
    match output
        .deliver(&Message::single(common::alert("s-4", "web")))
        .await
    {
        Err(DeliveryError::Transient { reason, .. }) => {
            assert!(reason.contains("timed out"), "{reason}");
            assert!(!reason.contains("SECRETTOKEN"), "{reason}");
        }
        other => panic!("expected transient, got {other:?}"),
    }
}

#[tokio::test]
async fn a_webhook_url_can_come_from_a_file() {
    let (base, seen) = start_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slack-url");
    std::fs::write(&file, format!("{base}/ok/from-file\n")).unwrap();
    let output = common::output(&format!(
        "type = \"slack\"\nurl = {{ file = \"{}\" }}",
        file.display()
    ));
    output
        .deliver(&Message::single(common::alert("s-5", "web")))
        .await
        .unwrap();
    assert_eq!(seen.0.lock().unwrap()[0].path, "/ok/from-file");
}

#[tokio::test]
async fn alertmanager_credentials_are_sent_as_basic_or_bearer() {
    let (base, seen) = start_receiver().await;
    let message = Message::single(common::alert("am-1", "web"));
    common::output(&format!(
        "type = \"alertmanager\"\nurls = [\"{base}/basic\"]\nusername = \"jaga\"\npassword = \"pw\""
    ))
    .deliver(&message)
    .await
    .unwrap();
    common::output(&format!(
        "type = \"alertmanager\"\nurls = [\"{base}/bearer\"]\nbearer_token = \"tok\""
    ))
    .deliver(&message)
    .await
    .unwrap();
    let requests = seen.0.lock().unwrap().clone();
    assert_eq!(requests[0].path, "/basic/api/v2/alerts");
    // base64("jaga:pw")
    assert_eq!(requests[0].headers["authorization"], "Basic amFnYTpwdw==");
    assert_eq!(requests[1].path, "/bearer/api/v2/alerts");
    assert_eq!(requests[1].headers["authorization"], "Bearer tok");
    assert_eq!(requests[1].body[0]["annotations"]["alert_id"], "am-1");
}
