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

pub mod alertmanager;
pub mod file;
pub mod format;
mod http;
pub mod nats;
pub mod remote_write;
pub mod secret;
pub mod slack;
pub mod smtp;
pub mod syslog;
pub mod webhook;

pub use alertmanager::{AlertmanagerOutput, AlertmanagerSettings};
pub use file::{FileOutput, FileSettings};
pub use nats::{Heartbeat, NatsConnection, NatsOutput, NatsSettings};
pub use remote_write::{RemoteWriteSettings, RemoteWriter};
pub use secret::{Secret, SecretError};
pub use slack::{SlackOutput, SlackSettings};
pub use smtp::{SmtpOutput, SmtpSettings, SmtpTls};
pub use syslog::{SyslogOutput, SyslogSettings};
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

    /// Receivers that keep track of which agents are alive (the hub's host
    /// list, through NATS) are sent a [`heartbeat`](Output::heartbeat)
    /// this often, whether or not there are alerts.
    fn heartbeat_every(&self) -> Option<Duration> {
        None
    }

    /// Tells the receiver the agent is alive; not through the durable
    /// queue (a lost heartbeat is made good by the next). Must time out
    /// on its own.
    fn heartbeat<'a>(&'a self, _beat: &'a nats::Heartbeat) -> DeliveryFuture<'a> {
        Box::pin(async { Ok(Receipt::default()) })
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
}

/// Builds the errors of one kind of output, which each module names once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BuildKind(pub &'static str);

impl BuildKind {
    pub(crate) fn invalid(self, key: &'static str, reason: impl Into<String>) -> BuildError {
        BuildError::Invalid {
            kind: self.0,
            key,
            reason: reason.into(),
        }
    }

    pub(crate) fn reveal(self, key: &'static str, secret: &Secret) -> Result<String, BuildError> {
        secret.reveal().map_err(|source| BuildError::Secret {
            kind: self.0,
            key,
            source,
        })
    }

    /// `username` and `password`: both or neither.
    pub(crate) fn login(
        self,
        username: &Option<String>,
        password: &Option<Secret>,
    ) -> Result<Option<(String, String)>, BuildError> {
        match (username, password) {
            (Some(username), Some(password)) => {
                Ok(Some((username.clone(), self.reveal("password", password)?)))
            }
            (None, None) => Ok(None),
            (Some(_), None) => Err(self.invalid("password", "a username needs a password")),
            (None, Some(_)) => Err(self.invalid("username", "a password needs a username")),
        }
    }
}

/// The output an `[[outputs]]` entry describes, ready to deliver.
pub fn build(settings: &OutputSettings, base_dir: &Path) -> Result<Arc<dyn Output>, BuildError> {
    match settings {
        OutputSettings::File(file) => Ok(Arc::new(FileOutput::new(file, base_dir))),
        OutputSettings::Webhook(hook) => Ok(Arc::new(WebhookOutput::new(hook)?)),
        OutputSettings::Slack(slack) => Ok(Arc::new(SlackOutput::new(slack)?)),
        OutputSettings::Smtp(smtp) => Ok(Arc::new(SmtpOutput::new(smtp)?)),
        OutputSettings::Alertmanager(alertmanager) => {
            Ok(Arc::new(AlertmanagerOutput::new(alertmanager)?))
        }
        OutputSettings::Syslog(syslog) => Ok(Arc::new(SyslogOutput::new(syslog)?)),
        OutputSettings::Nats(nats) => Ok(Arc::new(NatsOutput::new(nats)?)),
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
    Nats(NatsSettings),
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
            OutputSettings::Nats(_) => "nats",
        }
    }

    /// Grouping and rate limits are for people: on by default for Slack
    /// and mail, off for machines, which get every alert.
    pub fn for_people(&self) -> bool {
        matches!(self, OutputSettings::Slack(_) | OutputSettings::Smtp(_))
    }
}

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

    /// Keys every `[[outputs]]` entry has whatever its type (jaga-config's
    /// `OutputConfig`): not part of the per-kind settings.
    const SHARED_KEYS: &[&str] = &[
        "name",
        "min_level",
        "groups",
        "rules",
        "containers",
        "group_window",
        "rate_limit",
        "max_backlog",
        "max_age",
        "backoff_min",
        "backoff_max",
    ];

    /// The commented `[[outputs]]` examples of `jaga.example.toml`, without
    /// the keys every entry shares, as TOML texts.
    fn documented_examples() -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../jaga.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let mut examples: Vec<String> = Vec::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let Some(uncommented) = line.strip_prefix("# ") else {
                examples.extend(current.take());
                continue;
            };
            if uncommented == "[[outputs]]" {
                examples.extend(current.replace(String::new()));
            } else if let Some(example) = current.as_mut() {
                let key = uncommented.split(['=', ' ']).next().unwrap_or_default();
                if !SHARED_KEYS.contains(&key) {
                    example.push_str(uncommented);
                    example.push('\n');
                }
            }
        }
        examples.extend(current);
        examples
    }

    #[test]
    fn the_documented_examples_parse() {
        let examples = documented_examples();
        let kinds: Vec<&str> = examples
            .iter()
            .map(|example| match toml::from_str::<OutputSettings>(example) {
                Ok(settings) => settings.kind(),
                Err(error) => panic!("{example}\n{error}"),
            })
            .collect();
        for kind in ["slack", "smtp", "alertmanager", "syslog", "nats"] {
            assert!(kinds.contains(&kind), "no {kind} example in {kinds:?}");
        }
    }

    #[test]
    fn settings_flatten_into_an_entry_with_shared_keys() {
        // As the runner's `[[outputs]]` entry holds them.
        #[derive(Debug, Deserialize)]
        struct Entry {
            name: String,
            #[serde(flatten)]
            settings: OutputSettings,
        }
        let entry: Entry =
            toml::from_str("name = \"chat\"\ntype = \"slack\"\nurl = \"https://x/\"").unwrap();
        assert_eq!(entry.name, "chat");
        assert_eq!(entry.settings.kind(), "slack");
        let typo =
            toml::from_str::<Entry>("name = \"c\"\ntype = \"slack\"\nurl = \"x\"\nchanel = \"#a\"");
        assert!(typo.is_err(), "{typo:?}");
    }

    #[test]
    fn building_reads_secrets_and_names_the_missing_one() {
        let settings: OutputSettings =
            toml::from_str("type = \"slack\"\nurl = { env = \"JAGA_TEST_NO_SUCH_SLACK_URL\" }")
                .unwrap();
        let error = build(&settings, Path::new(".")).err().unwrap().to_string();
        assert!(
            error.starts_with("slack output: cannot read 'url'")
                && error.contains("JAGA_TEST_NO_SUCH_SLACK_URL"),
            "{error}"
        );
    }

    #[test]
    fn every_kind_of_this_crate_builds() {
        for text in [
            "type = \"slack\"\nurl = \"https://hooks.example/T/B/x\"",
            "type = \"smtp\"\nhost = \"mail.example\"\nfrom = \"j@example.org\"\nto = [\"o@example.org\"]",
            "type = \"alertmanager\"\nurls = [\"http://127.0.0.1:9093\"]",
            "type = \"syslog\"\naddress = \"127.0.0.1:514\"\ntransport = \"tcp\"",
            "type = \"nats\"\nservers = [\"nats://127.0.0.1:4222\"]",
        ] {
            let settings: OutputSettings = toml::from_str(text).unwrap();
            let output = build(&settings, Path::new(".")).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(output.kind(), settings.kind());
        }
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
