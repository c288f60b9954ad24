//! Prometheus Alertmanager, API v2: `POST {url}/api/v2/alerts` with a
//! list of postable alerts. Labels are what people route on and stay the
//! same across an episode, so the resolving alert ends the firing one;
//! what changes from alert to alert (its id, the filled-in description)
//! goes in annotations.
//!
//! Alertmanager forgets an alert at its `endsAt`. As Prometheus does, a
//! firing episode is sent with `endsAt` four resend intervals ahead and
//! re-sent every interval while it fires ([`Output::resend_firing_every`]);
//! a one-shot alert (a Docker event, a log attack) ends `resolve_after`
//! after it was raised.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use jaga_model::{Alert, EpisodeStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::format::{self, clean, Severity};
use crate::{
    http, BuildError, BuildKind, DeliveryError, DeliveryFuture, Message, Output, Receipt, Secret,
    StoredAlert,
};

/// `type = "alertmanager"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// Base URLs of the Alertmanagers, e.g. `["http://am1:9093",
    /// "http://am2:9093"]` for an HA pair: every one gets every alert, and
    /// a delivery succeeds when any of them took it.
    pub urls: Vec<String>,
    /// Basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// `Authorization: Bearer`, instead of basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<Secret>,
    /// How often a firing episode is sent again.
    #[serde(default = "default_resend_every", with = "humantime_serde")]
    pub resend_every: Duration,
    /// How long after it was raised a one-shot alert counts as resolved.
    #[serde(default = "default_resolve_after", with = "humantime_serde")]
    pub resolve_after: Duration,
    /// Each request, connecting included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_resend_every() -> Duration {
    Duration::from_secs(60)
}

fn default_resolve_after() -> Duration {
    Duration::from_secs(300)
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Prometheus' factor: an alert it stops re-sending ends after four
/// missed resends.
const FIRING_VALID_FOR_RESENDS: u32 = 4;

const MAX_ANNOTATION_BYTES: usize = 4096;

enum Auth {
    None,
    Basic { username: String, password: String },
    Bearer(String),
}

struct Endpoint {
    url: reqwest::Url,
    /// The base URL without credentials, for errors and receipts.
    shown: String,
}

pub struct AlertmanagerOutput {
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    auth: Auth,
    resend_every: Duration,
    resolve_after: Duration,
}

const KIND: BuildKind = BuildKind("alertmanager");

fn endpoint(base: &str) -> Result<Endpoint, BuildError> {
    let mut url = reqwest::Url::parse(base)
        .map_err(|error| KIND.invalid("urls", format!("'{base}' is not a URL ({error})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(KIND.invalid(
            "urls",
            format!("'{base}': scheme '{}' is not http or https", url.scheme()),
        ));
    }
    let _ = url.set_password(None);
    let _ = url.set_username("");
    let shown = url.as_str().trim_end_matches('/').to_string();
    let path = url.path().trim_end_matches('/').to_string();
    if !path.ends_with("/api/v2/alerts") {
        url.set_path(&format!("{path}/api/v2/alerts"));
    }
    Ok(Endpoint { url, shown })
}

impl AlertmanagerOutput {
    pub fn new(settings: &AlertmanagerSettings) -> Result<Self, BuildError> {
        if settings.urls.is_empty() {
            return Err(KIND.invalid("urls", "no Alertmanager URL"));
        }
        let endpoints = settings
            .urls
            .iter()
            .map(|base| endpoint(base))
            .collect::<Result<Vec<_>, _>>()?;
        let login = KIND.login(&settings.username, &settings.password)?;
        let auth = match (login, &settings.bearer_token) {
            (None, None) => Auth::None,
            (Some((username, password)), None) => Auth::Basic { username, password },
            (None, Some(token)) => Auth::Bearer(KIND.reveal("bearer_token", token)?),
            (Some(_), Some(_)) => {
                return Err(KIND.invalid(
                    "bearer_token",
                    "give either a bearer token or a username and password",
                ))
            }
        };
        if settings.resend_every.is_zero() {
            return Err(KIND.invalid("resend_every", "it must be above zero"));
        }
        let client = http::client(settings.timeout).map_err(|error| {
            KIND.invalid("urls", format!("cannot build an HTTP client: {error}"))
        })?;
        Ok(Self {
            client,
            endpoints,
            auth,
            resend_every: settings.resend_every,
            resolve_after: settings.resolve_after,
        })
    }

    fn request(&self, endpoint: &Endpoint) -> reqwest::RequestBuilder {
        let request = self.client.post(endpoint.url.clone());
        match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        }
    }
}

impl Output for AlertmanagerOutput {
    fn kind(&self) -> &'static str {
        "alertmanager"
    }

    fn resend_firing_every(&self) -> Option<Duration> {
        Some(self.resend_every)
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let now = Utc::now();
            let alerts: Vec<Value> = message
                .alerts
                .iter()
                .map(|stored| postable(stored, now, self.resend_every, self.resolve_after))
                .collect();
            let body = Value::Array(alerts).to_string().into_bytes();
            // Every Alertmanager at once: a dead one must not hold up the others.
            let mut sends = JoinSet::new();
            for endpoint in &self.endpoints {
                let request = self.request(endpoint);
                let body = body.clone();
                let what = format!("alertmanager {}", endpoint.shown);
                sends.spawn(async move { http::post_json(request, body, &what).await });
            }
            let mut results = Vec::new();
            while let Some(joined) = sends.join_next().await {
                results.push(joined.unwrap_or_else(|error| {
                    Err(DeliveryError::Transient {
                        reason: format!("alertmanager delivery task failed: {error}"),
                        retry_after: None,
                    })
                }));
            }
            merge(results)
        })
    }
}

/// Delivered when any Alertmanager took it (they share alerts among
/// themselves); otherwise transient if any failure was, else permanent.
fn merge(results: Vec<Result<Receipt, DeliveryError>>) -> Result<Receipt, DeliveryError> {
    let mut accepted = Vec::new();
    let mut transient = Vec::new();
    let mut permanent = Vec::new();
    let mut retry_after: Option<Duration> = None;
    for result in results {
        match result {
            Ok(receipt) => accepted.push(receipt.answer),
            Err(DeliveryError::Transient {
                reason,
                retry_after: wait,
            }) => {
                transient.push(reason);
                retry_after = match (retry_after, wait) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Err(DeliveryError::Permanent { reason, answer }) => {
                permanent.push(format!("{reason}: {answer}"))
            }
        }
    }
    if !accepted.is_empty() {
        let mut answer = accepted.join("; ");
        if !transient.is_empty() || !permanent.is_empty() {
            answer.push_str(&format!(
                " (not taken by {} of them: {})",
                transient.len() + permanent.len(),
                [transient, permanent].concat().join("; ")
            ));
        }
        return Ok(Receipt { answer });
    }
    if !transient.is_empty() {
        return Err(DeliveryError::Transient {
            reason: [transient, permanent].concat().join("; "),
            retry_after,
        });
    }
    Err(DeliveryError::Permanent {
        reason: "every alertmanager refused the alerts".to_string(),
        answer: permanent.join("; "),
    })
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|time| time.with_timezone(&Utc))
}

fn after(time: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| time.checked_add_signed(wait))
        .unwrap_or(time)
}

/// The labels of an alert: the same for every alert of an episode.
pub fn labels(alert: &Alert) -> BTreeMap<&'static str, String> {
    let mut labels = BTreeMap::new();
    // The rule id, not the description: descriptions are filled in from
    // the event ("Container web exited with code 137"), and a name that
    // changed between firing and resolved would resolve nothing.
    labels.insert("alertname", format!("jaga_{}", alert.rule.id));
    labels.insert("rule_id", alert.rule.id.clone());
    labels.insert(
        "severity",
        Severity::of_level(alert.rule.level).as_str().to_string(),
    );
    labels.insert("level", alert.rule.level.to_string());
    if let Some(name) = format::container_name(alert) {
        labels.insert("container", name.to_string());
    }
    if let Some(image) = format::container_image(alert) {
        labels.insert("image", image.to_string());
    }
    if let Some(host) = format::host(alert) {
        labels.insert("host", host.to_string());
    }
    if !alert.rule.groups.is_empty() {
        labels.insert("jaga_groups", alert.rule.groups.join(","));
    }
    if let Some(episode) = &alert.episode {
        // Two subjects of one rule on one container (two volumes) are two
        // alerts, not one.
        labels.insert("jaga_episode", episode.key.clone());
    }
    for value in labels.values_mut() {
        *value = clean(value);
    }
    labels.retain(|_, value| !value.is_empty());
    labels
}

/// One postable alert, as of `now`.
pub fn postable(
    stored: &StoredAlert,
    now: DateTime<Utc>,
    resend_every: Duration,
    resolve_after: Duration,
) -> Value {
    let alert = &stored.alert;
    let raised = parse_time(&alert.timestamp).unwrap_or(now);
    let (starts_at, ends_at) = match &alert.episode {
        Some(episode) => {
            let started = parse_time(&episode.started_at).unwrap_or(raised);
            let ends = match episode.status {
                EpisodeStatus::Firing => after(now, resend_every * FIRING_VALID_FOR_RESENDS),
                EpisodeStatus::Resolved => episode
                    .ended_at
                    .as_deref()
                    .and_then(parse_time)
                    .unwrap_or(raised),
            };
            (started, ends)
        }
        None => (raised, after(raised, resolve_after)),
    };
    let single = Message::single(stored.clone());
    let description = format::facts(&single, MAX_ANNOTATION_BYTES)
        .into_iter()
        .map(|(label, value)| format!("{label}: {value}"))
        .collect::<Vec<_>>()
        .join("\n");
    json!({
        "labels": labels(alert),
        "annotations": {
            "summary": format::summary(&single),
            "description": description,
            "alert_id": clean(&alert.id),
        },
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at.max(starts_at)),
    })
}

#[cfg(test)]
mod tests {
    use jaga_model::AlertEpisode;

    use super::*;
    use crate::format::tests::sample_alert;

    fn time(text: &str) -> DateTime<Utc> {
        parse_time(text).unwrap()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn settings_have_the_documented_defaults() {
        let settings: AlertmanagerSettings =
            toml::from_str("urls = [\"http://127.0.0.1:9093\"]").unwrap();
        assert_eq!(settings.resend_every, MINUTE);
        assert_eq!(settings.resolve_after, 5 * MINUTE);
        let output = AlertmanagerOutput::new(&settings).unwrap();
        assert_eq!(output.resend_firing_every(), Some(MINUTE));
        assert_eq!(
            output.endpoints[0].url.as_str(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
    }

    #[test]
    fn urls_get_the_api_path_once_and_lose_their_credentials_in_errors() {
        let sub = endpoint("https://user:pw@am.example/prefix/").unwrap();
        assert_eq!(sub.url.path(), "/prefix/api/v2/alerts");
        assert!(!sub.shown.contains("pw"), "{}", sub.shown);
        let full = endpoint("http://am:9093/api/v2/alerts").unwrap();
        assert_eq!(full.url.path(), "/api/v2/alerts");
        assert!(endpoint("am:9093").is_err());
    }

    #[test]
    fn auth_is_basic_or_bearer_not_both() {
        let both: AlertmanagerSettings = toml::from_str(
            "urls = [\"http://am\"]\nusername = \"u\"\npassword = \"p\"\nbearer_token = \"t\"",
        )
        .unwrap();
        let error = AlertmanagerOutput::new(&both).err().unwrap().to_string();
        assert!(error.contains("'bearer_token'"), "{error}");
    }

    #[test]
    fn labels_are_what_people_route_on() {
        let labels = labels(&sample_alert("a1", "web").alert);
        let expected: BTreeMap<&str, String> = [
            ("alertname", "jaga_91011"),
            ("rule_id", "91011"),
            ("severity", "critical"),
            ("level", "12"),
            ("container", "web"),
            ("image", "nginx:1.25"),
            ("host", "host1"),
            ("jaga_groups", "docker,privilege"),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
        assert_eq!(labels, expected);
    }

    #[test]
    fn a_one_shot_alert_ends_resolve_after_it_was_raised() {
        let now = time("2024-05-01T12:00:00Z");
        let alert = postable(&sample_alert("a1", "web"), now, MINUTE, 5 * MINUTE);
        assert_eq!(alert["startsAt"], "2024-05-01T10:00:00.123Z");
        assert_eq!(alert["endsAt"], "2024-05-01T10:05:00.123Z");
        assert_eq!(alert["annotations"]["alert_id"], "a1");
        assert_eq!(
            alert["annotations"]["summary"],
            "level 12 Privileged container started: web on host1"
        );
        assert!(alert["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("Image: nginx:1.25"));
    }

    fn episode_alert(id: &str, status: EpisodeStatus, ended_at: Option<&str>) -> StoredAlert {
        let mut stored = sample_alert(id, "web");
        stored.alert.episode = Some(AlertEpisode {
            key: "cpu-limit/web".to_string(),
            status,
            started_at: "2024-05-01T09:55:00Z".to_string(),
            ended_at: ended_at.map(str::to_string),
        });
        stored
    }

    #[test]
    fn a_firing_episode_holds_four_resends_ahead_and_a_resolved_one_ends() {
        let now = time("2024-05-01T10:00:30Z");
        let firing = postable(
            &episode_alert("f1", EpisodeStatus::Firing, None),
            now,
            MINUTE,
            5 * MINUTE,
        );
        assert_eq!(firing["startsAt"], "2024-05-01T09:55:00.000Z");
        assert_eq!(firing["endsAt"], "2024-05-01T10:04:30.000Z");
        let resolved = postable(
            &episode_alert("r1", EpisodeStatus::Resolved, Some("2024-05-01T10:20:00Z")),
            now,
            MINUTE,
            5 * MINUTE,
        );
        assert_eq!(resolved["startsAt"], "2024-05-01T09:55:00.000Z");
        assert_eq!(resolved["endsAt"], "2024-05-01T10:20:00.000Z");
        // Same labels: the resolved alert ends the firing one.
        assert_eq!(firing["labels"], resolved["labels"]);
        assert_eq!(firing["labels"]["jaga_episode"], "cpu-limit/web");
    }

    #[test]
    fn one_alertmanager_taking_the_alerts_is_enough() {
        let transient = || DeliveryError::Transient {
            reason: "down".to_string(),
            retry_after: Some(Duration::from_secs(5)),
        };
        let permanent = || DeliveryError::Permanent {
            reason: "refused".to_string(),
            answer: "bad".to_string(),
        };
        let ok = || {
            Ok(Receipt {
                answer: "HTTP 200 OK".to_string(),
            })
        };
        let receipt = merge(vec![Err(transient()), ok()]).unwrap();
        assert!(
            receipt.answer.contains("not taken by 1"),
            "{}",
            receipt.answer
        );
        let error = merge(vec![Err(permanent()), Err(transient())]).unwrap_err();
        assert_eq!(
            error,
            DeliveryError::Transient {
                reason: "down; refused: bad".to_string(),
                retry_after: Some(Duration::from_secs(5))
            }
        );
        assert!(!merge(vec![Err(permanent()), Err(permanent())])
            .unwrap_err()
            .is_transient());
    }
}
