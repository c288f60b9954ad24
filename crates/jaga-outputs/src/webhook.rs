//! `type = "webhook"`: each message as a JSON POST.
//!
//! The body is the alert itself (the JSON of `/api/v1/alerts` and
//! `alerts.json`); a grouped message is
//! `{"count": N, "alert_ids": [...], "alerts": [...]}`, oldest first.
//! Headers:
//! - `Idempotency-Key`: the alert id (`<first id>+<count>` for a group);
//!   the same message sent again carries the same key, so a receiver that
//!   got it before can drop it (delivery is at least once).
//! - `X-Jaga-Alert-Id`: the (first) alert's id; `X-Jaga-Alert-Count`.
//! - `X-Jaga-Signature: sha256=<hex>`: HMAC-SHA256 of the body with
//!   `secret`, when one is set (GitHub's scheme).
//!
//! 2xx is delivered. Timeouts, refused connections, 408, 429 and 5xx are
//! transient (tried again, after `Retry-After` when the receiver gives
//! one); any other answer (4xx, a redirect) is permanent, kept with the
//! receiver's answer as a dead letter.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{http, BuildError, BuildKind, DeliveryError, DeliveryFuture, Message, Output, Secret};

/// `[[outputs]]` keys of `type = "webhook"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://` URL to POST to; a secret, as it may hold a token.
    pub url: Secret,
    /// Key of the `X-Jaga-Signature` HMAC; none: no signature.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Time one POST may take, connection included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

pub struct WebhookOutput {
    client: reqwest::Client,
    url: reqwest::Url,
    key: Option<ring::hmac::Key>,
}

impl WebhookOutput {
    /// Reads the secrets and checks the URL.
    pub fn new(settings: &WebhookSettings) -> Result<Self, BuildError> {
        let kind = BuildKind("webhook");
        let text = kind.reveal("url", &settings.url)?;
        // The URL may carry a token: errors name where it came from.
        let url = reqwest::Url::parse(&text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                kind.invalid(
                    "url",
                    format!(
                        "the URL from {} is not an http:// or https:// URL",
                        settings.url.describe()
                    ),
                )
            })?;
        let key = match &settings.secret {
            Some(secret) => Some(ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                kind.reveal("secret", secret)?.as_bytes(),
            )),
            None => None,
        };
        let client = http::client(settings.timeout)
            .map_err(|e| kind.invalid("timeout", format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self { client, url, key })
    }
}

/// The JSON body of a message (see the module doc).
pub fn body(message: &Message) -> Result<Vec<u8>, serde_json::Error> {
    match message.alerts.as_slice() {
        [one] => serde_json::to_vec(&one.alert),
        alerts => serde_json::to_vec(&serde_json::json!({
            "count": alerts.len(),
            "alert_ids": alerts.iter().map(|a| a.alert.id.as_str()).collect::<Vec<_>>(),
            "alerts": alerts.iter().map(|a| &a.alert).collect::<Vec<_>>(),
        })),
    }
}

/// `sha256=<hex>` of the body under `key`.
pub fn signature(key: &ring::hmac::Key, body: &[u8]) -> String {
    let tag = ring::hmac::sign(key, body);
    let hex: String = tag
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256={hex}")
}

impl Output for WebhookOutput {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let body = body(message).map_err(|e| DeliveryError::Permanent {
                reason: format!("cannot encode message {}: {e}", message.idempotency_key()),
                answer: String::new(),
            })?;
            let first_id = message
                .first()
                .map(|a| a.alert.id.clone())
                .unwrap_or_default();
            let mut request = self
                .client
                .post(self.url.clone())
                .header("Idempotency-Key", message.idempotency_key())
                .header("X-Jaga-Alert-Id", first_id)
                .header("X-Jaga-Alert-Count", message.alerts.len().to_string());
            if let Some(key) = &self.key {
                request = request.header("X-Jaga-Signature", signature(key, &body));
            }
            // Named by host only: the path and query may hold a token.
            let what = format!("webhook {}", self.url.host_str().unwrap_or_default());
            http::post_json(request, body, &what).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::stored;
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One request as the receiver saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// A receiver on 127.0.0.1 answering each request with the next of
    /// `answers` (raw status line, headers and body).
    async fn receiver(answers: Vec<&'static str>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/hook?token=t0ps3cret",
            listener.local_addr().unwrap()
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let (head_end, length) = loop {
                    let n = socket.read(&mut buf).await.unwrap();
                    data.extend_from_slice(&buf[..n]);
                    if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while data.len() < head_end + length {
                    let n = socket.read(&mut buf).await.unwrap();
                    data.extend_from_slice(&buf[..n]);
                }
                let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
                let headers = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .collect();
                record.lock().unwrap().push(Seen {
                    headers,
                    body: data[head_end..head_end + length].to_vec(),
                });
                socket.write_all(answer.as_bytes()).await.unwrap();
                socket.shutdown().await.unwrap();
            }
        });
        (url, seen)
    }

    fn output(url: &str, secret: Option<&str>) -> WebhookOutput {
        WebhookOutput::new(&WebhookSettings {
            url: Secret::Inline(url.to_owned()),
            secret: secret.map(|s| Secret::Inline(s.to_owned())),
            timeout: Duration::from_secs(10),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn an_alert_is_posted_signed_with_its_id_as_idempotency_key() {
        let (url, seen) = receiver(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ])
        .await;
        let hook = output(&url, Some("k3y"));
        let receipt = hook
            .deliver(&Message::single(stored(7, "a.7")))
            .await
            .unwrap();
        assert_eq!(receipt.answer, "HTTP 200 OK: ok");
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.header("Idempotency-Key"), Some("a.7"));
        assert_eq!(seen.header("X-Jaga-Alert-Id"), Some("a.7"));
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"k3y");
        let expected = signature(&key, &seen.body);
        assert_eq!(seen.header("X-Jaga-Signature"), Some(expected.as_str()));
        let hex = expected.trim_start_matches("sha256=");
        let tag: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        ring::hmac::verify(&key, &seen.body, &tag).unwrap();
        let alert: jaga_model::Alert = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(alert.id, "a.7");
    }

    #[tokio::test]
    async fn a_group_says_how_many_and_lists_the_ids() {
        let (url, seen) =
            receiver(vec!["HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"]).await;
        let message = Message {
            alerts: vec![stored(1, "a.1"), stored(2, "a.2"), stored(5, "a.5")],
        };
        output(&url, None).deliver(&message).await.unwrap();
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(seen.header("Idempotency-Key"), Some("a.1+3"));
        assert_eq!(seen.header("X-Jaga-Alert-Count"), Some("3"));
        assert_eq!(seen.header("X-Jaga-Signature"), None);
        let body: serde_json::Value = serde_json::from_slice(&seen.body).unwrap();
        assert_eq!(body["count"], 3);
        assert_eq!(body["alert_ids"], serde_json::json!(["a.1", "a.2", "a.5"]));
        assert_eq!(body["alerts"][2]["id"], "a.5");
    }

    #[tokio::test]
    async fn busy_receivers_are_transient_with_retry_after_and_4xx_is_permanent() {
        let (url, _) = receiver(vec![
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
            "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"err\":\"no\"}\n",
        ])
        .await;
        let hook = output(&url, None);
        let message = Message::single(stored(1, "a.1"));
        match hook.deliver(&message).await.unwrap_err() {
            DeliveryError::Transient {
                reason,
                retry_after,
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert!(reason.contains("503"), "{reason}");
                assert!(!reason.contains("t0ps3cret"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert!(hook.deliver(&message).await.unwrap_err().is_transient());
        match hook.deliver(&message).await.unwrap_err() {
            DeliveryError::Permanent { answer, .. } => {
                assert_eq!(answer, "HTTP 400 Bad Request: {\"err\":\"no\"}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_receiver_that_is_down_is_transient_and_the_url_token_is_not_shown() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/hook?token=t0ps3cret",
            listener.local_addr().unwrap()
        );
        drop(listener);
        let error = output(&url, None)
            .deliver(&Message::single(stored(1, "a.1")))
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().contains("cannot connect"), "{error}");
        assert!(!error.to_string().contains("t0ps3cret"), "{error}");
    }

    #[test]
    fn a_url_that_is_not_http_is_refused_without_showing_it() {
        let error = WebhookOutput::new(&WebhookSettings {
            url: Secret::Inline("ftp://user:pw@host/x".to_owned()),
            secret: None,
            timeout: Duration::from_secs(1),
        })
        .err()
        .unwrap()
        .to_string();
        assert!(error.contains("inline value"), "{error}");
        assert!(!error.contains("pw@"), "{error}");
    }
}
