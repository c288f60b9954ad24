//! Outputs: the receivers alerts are delivered to.
//!
//! An output only knows how to hand one [`Message`] to its receiver and
//! what the receiver answered. Everything around that (the durable cursor
//! over the alert sequence, retries with backoff, rate limits, grouping,
//! dead letters) is the delivery runner's job in the agent, the same for
//! every output. Adding an output is one module here and one variant in
//! [`OutputSettings`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub mod alertmanager;
pub mod format;
mod http;
pub mod secret;
pub mod slack;
pub mod smtp;
pub mod syslog;

pub use alertmanager::{AlertmanagerOutput, AlertmanagerSettings};
pub use secret::{Secret, SecretError};
pub use slack::{SlackOutput, SlackSettings};
pub use smtp::{SmtpOutput, SmtpSettings, SmtpTls};
pub use syslog::{SyslogOutput, SyslogSettings};

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

    /// Messages this output had to cut to fit its receiver (syslog over
    /// UDP) since it was built, for the runner's metrics.
    fn truncated_messages(&self) -> u64 {
        0
    }
}

/// Why an output could not be built from its settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{kind} output: '{key}' is not valid: {reason}")]
    Invalid {
        kind: &'static str,
        key: &'static str,
        reason: String,
    },
    #[error("{kind} output: cannot read '{key}': {source}")]
    Secret {
        kind: &'static str,
        key: &'static str,
        source: SecretError,
    },
    #[error("{kind} output: not built here yet")]
    NotBuiltHere { kind: &'static str },
}

/// The output an `[[outputs]]` entry describes, ready to deliver.
pub fn build(settings: &OutputSettings) -> Result<Arc<dyn Output>, BuildError> {
    match settings {
        OutputSettings::File(_) => Err(BuildError::NotBuiltHere { kind: "file" }),
        OutputSettings::Webhook(_) => Err(BuildError::NotBuiltHere { kind: "webhook" }),
        OutputSettings::Slack(slack) => Ok(Arc::new(SlackOutput::new(slack)?)),
        OutputSettings::Smtp(smtp) => Ok(Arc::new(SmtpOutput::new(smtp)?)),
        OutputSettings::Alertmanager(alertmanager) => {
            Ok(Arc::new(AlertmanagerOutput::new(alertmanager)?))
        }
        OutputSettings::Syslog(syslog) => Ok(Arc::new(SyslogOutput::new(syslog)?)),
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

// Per-kind settings. Each is filled in by the module that delivers it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct FileSettings {}
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct WebhookSettings {}
