//! Outputs: the receivers alerts are delivered to.
//!
//! An output only knows how to hand one [`Message`] to its receiver and
//! what the receiver answered. Everything around that (the durable cursor
//! over the alert sequence, retries with backoff, rate limits, grouping,
//! dead letters) is the delivery runner's job in the agent, the same for
//! every output. Adding an output is one module here and one variant in
//! [`OutputSettings`].

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub mod file;
pub mod secret;
pub mod webhook;

pub use file::{FileOutput, FileSettings};
pub use secret::{Secret, SecretError};
pub use webhook::{WebhookOutput, WebhookSettings};

use jaga_model::Alert;
use serde::{Deserialize, Serialize};

/// An alert as stored, with its place in the alert sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub seq: i64,
    pub alert: Alert,
}

/// What one delivery hands to a receiver: one alert, or a group of alerts
/// of the same rule on the same container raised within the output's
/// grouping window (oldest first; the message says how many and lists
/// their ids).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub alerts: Vec<StoredAlert>,
}

impl Message {
    pub fn single(alert: StoredAlert) -> Self {
        Self {
            alerts: vec![alert],
        }
    }

    /// The first alert: the one a grouped message is about.
    pub fn first(&self) -> Option<&StoredAlert> {
        self.alerts.first()
    }

    /// An id for the whole message, for idempotency headers and
    /// de-duplication: the alert id for one alert, the first id and the
    /// count for a group.
    pub fn idempotency_key(&self) -> String {
        match self.alerts.as_slice() {
            [] => String::new(),
            [one] => one.alert.id.clone(),
            [first, ..] => format!("{}+{}", first.alert.id, self.alerts.len()),
        }
    }
}

/// What the receiver answered to a delivery it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// e.g. `HTTP 200 OK: {"status":"success"}`, `250 2.0.0 Ok: queued`.
    pub answer: String,
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// Timeouts, refused connections, 5xx, 429: retried with backoff.
    #[error("transient delivery failure: {reason}")]
    Transient {
        reason: String,
        /// The receiver's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
    /// The receiver refused the message itself (4xx other than 429, a
    /// rejected recipient): it goes to the dead-letter list with `answer`.
    #[error("permanent delivery failure: {reason}")]
    Permanent { reason: String, answer: String },
}

impl DeliveryError {
    pub fn is_transient(&self) -> bool {
        matches!(self, DeliveryError::Transient { .. })
    }
}

pub type DeliveryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// A receiver of alerts.
pub trait Output: Send + Sync {
    /// The kind, as written in `type = "..."`.
    fn kind(&self) -> &'static str;

    /// Hands one message to the receiver. Must time out on its own (no
    /// call may hang the runner) and must not retry: the runner does.
    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a>;

    /// Receivers that forget an alert unless told again while it holds
    /// (Alertmanager) ask the runner to deliver every episode still firing
    /// this often.
    fn resend_firing_every(&self) -> Option<Duration> {
        None
    }
}

/// The part of an `[[outputs]]` entry that depends on its `type`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OutputSettings {
    File(FileSettings),
    Webhook(WebhookSettings),
    Slack(SlackSettings),
    Smtp(SmtpSettings),
    Alertmanager(AlertmanagerSettings),
    Syslog(SyslogSettings),
}

impl OutputSettings {
    pub fn kind(&self) -> &'static str {
        match self {
            OutputSettings::File(_) => "file",
            OutputSettings::Webhook(_) => "webhook",
            OutputSettings::Slack(_) => "slack",
            OutputSettings::Smtp(_) => "smtp",
            OutputSettings::Alertmanager(_) => "alertmanager",
            OutputSettings::Syslog(_) => "syslog",
        }
    }

    /// Grouping and rate limits are for people: on by default for Slack
    /// and mail, off for machines, which get every alert.
    pub fn for_people(&self) -> bool {
        matches!(self, OutputSettings::Slack(_) | OutputSettings::Smtp(_))
    }
}

/// Why an output cannot be set up from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("{what}")]
    Invalid { what: String },
    #[error("outputs of type '{kind}' are not available in this build of jaga")]
    NotAvailable { kind: &'static str },
}

/// The output an `[[outputs]]` entry describes; `base_dir` is where
/// relative paths live (`serve.data_dir`). Secrets are read now.
pub fn build(settings: &OutputSettings, base_dir: &Path) -> Result<Arc<dyn Output>, BuildError> {
    match settings {
        OutputSettings::File(file) => Ok(Arc::new(FileOutput::new(file, base_dir))),
        OutputSettings::Webhook(hook) => Ok(Arc::new(WebhookOutput::new(hook)?)),
        // Each kind below gets its arm with its module.
        OutputSettings::Slack(_)
        | OutputSettings::Smtp(_)
        | OutputSettings::Alertmanager(_)
        | OutputSettings::Syslog(_) => Err(BuildError::NotAvailable {
            kind: settings.kind(),
        }),
    }
}

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110),
/// relative to `now`. A date in the past is no wait.
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or_default())
}

// Per-kind settings of the outputs not written yet. Each is filled in by
// the module that delivers it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SlackSettings {}
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SmtpSettings {}
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct AlertmanagerSettings {}
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct SyslogSettings {}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// An alert stored at `seq` with id `id`.
    pub(crate) fn stored(seq: i64, id: &str) -> StoredAlert {
        StoredAlert {
            seq,
            alert: jaga_model::Alert {
                id: id.to_owned(),
                timestamp: "2024-01-01T00:00:00.000Z".to_owned(),
                rule: jaga_model::AlertRule {
                    id: "91011".to_owned(),
                    level: 6,
                    description: "Command run in container web".to_owned(),
                    groups: vec!["docker".to_owned()],
                    mitre: Vec::new(),
                },
                agent: jaga_model::AlertAgent::default(),
                container: None,
                data: BTreeMap::new(),
                location: "docker-events".to_owned(),
                event: None,
                episode: None,
            },
        }
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn settings_are_read_by_type_and_unknown_keys_refused() {
        let file: OutputSettings = toml::from_str("type = \"file\"\npath = \"x.json\"\n").unwrap();
        assert_eq!(
            file,
            OutputSettings::File(FileSettings {
                path: "x.json".into(),
                ..FileSettings::default()
            })
        );
        let hook: OutputSettings =
            toml::from_str("type = \"webhook\"\nurl = { env = \"HOOK_URL\" }\ntimeout = \"3s\"\n")
                .unwrap();
        match hook {
            OutputSettings::Webhook(h) => {
                assert_eq!(h.timeout, Duration::from_secs(3));
                assert_eq!(
                    h.url,
                    Secret::Env {
                        env: "HOOK_URL".into()
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let error = toml::from_str::<OutputSettings>("type = \"file\"\npaht = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("paht"), "{error}");
    }
}
