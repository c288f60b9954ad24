//! What the HTTP outputs share: one way to build a client with timeouts,
//! and one reading of a receiver's answer as delivered, transient or
//! permanent.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};

use crate::format::{self, clean, shorten};
use crate::{DeliveryError, Receipt};

/// How much of a receiver's answer is kept for receipts and dead letters.
const ANSWER_BYTES: usize = 2048;

/// A client whose every request gives up after `timeout` (connecting
/// included) and that does not follow redirects: a redirected POST with a
/// token in its URL should be seen, not followed.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("jaga/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends a JSON body and reads the answer. `what` names the receiver in
/// errors; it must not contain a secret (reqwest's own errors are stripped
/// of the URL for that reason).
pub async fn post_json(
    request: RequestBuilder,
    body: Vec<u8>,
    what: &str,
) -> Result<Receipt, DeliveryError> {
    post(request, "application/json", body, what).await
}

/// Sends a body of `content_type` and reads the answer, as [`post_json`].
pub async fn post(
    request: RequestBuilder,
    content_type: &str,
    body: Vec<u8>,
    what: &str,
) -> Result<Receipt, DeliveryError> {
    let response = request
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .map_err(|error| request_failed(what, error))?;
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let answer = read_answer(response).await;
    judge(what, status, retry_after, answer)
}

fn request_failed(what: &str, error: reqwest::Error) -> DeliveryError {
    // Nothing a request can fail on once built is the message's fault:
    // timeouts, refused connections, TLS, resets.
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    DeliveryError::Transient {
        reason: format!(
            "{what}: {kind}: {}",
            format::error_chain(&error.without_url())
        ),
        retry_after: None,
    }
}

/// The start of the body, escaped; a body that cannot be read is said so.
async fn read_answer(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > ANSWER_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) => {
                return format!("(body unreadable: {})", error.without_url());
            }
        }
    }
    let text = String::from_utf8_lossy(&body);
    clean(shorten(text.trim(), ANSWER_BYTES).as_ref())
}

/// 2xx delivered; 408, 429 and 5xx transient (with `Retry-After`);
/// anything else (other 4xx, a redirect) permanent, with the answer.
pub fn judge(
    what: &str,
    status: StatusCode,
    retry_after: Option<Duration>,
    answer: String,
) -> Result<Receipt, DeliveryError> {
    let shown = if answer.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {answer}")
    };
    if status.is_success() {
        return Ok(Receipt { answer: shown });
    }
    if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        return Err(DeliveryError::Transient {
            reason: format!("{what} answered {shown}"),
            retry_after,
        });
    }
    Err(DeliveryError::Permanent {
        reason: format!("{what} refused the message with HTTP {status}"),
        answer: shown,
    })
}

/// `Retry-After` as seconds or as an HTTP date (RFC 9110 10.2.3).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        headers
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(retry_after(&headers("120")), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(600))
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let wait = retry_after(&headers(&later)).unwrap();
        assert!(wait > Duration::from_secs(500), "{wait:?}");
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn statuses_are_judged_delivered_transient_or_permanent() {
        let judged = |code: u16| {
            judge(
                "receiver",
                StatusCode::from_u16(code).unwrap(),
                None,
                "body".to_string(),
            )
        };
        assert_eq!(judged(200).unwrap().answer, "HTTP 200 OK: body");
        for code in [408, 429, 500, 502, 503] {
            assert!(judged(code).unwrap_err().is_transient(), "{code}");
        }
        for code in [301, 400, 401, 403, 404, 413] {
            match judged(code).unwrap_err() {
                DeliveryError::Permanent { answer, .. } => {
                    assert!(answer.ends_with(": body"), "{code}: {answer}")
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }
}
