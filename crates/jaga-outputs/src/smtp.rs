//! Mail over SMTP (lettre, rustls): a subject a person can act on and a
//! plain-text body with what happened, where, when, the rule's fields and
//! the alert ids.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::format::{self, shorten};
use crate::{
    BuildError, BuildKind, DeliveryError, DeliveryFuture, Message, Output, Receipt, Secret,
};

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No TLS: only for a relay on the same host.
    None,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// `type = "smtp"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    pub host: String,
    /// Default: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    /// PEM file of the certificate authorities to trust for the server,
    /// besides the system's (a private relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Login (PLAIN or LOGIN, only ever over TLS unless `tls = "none"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// The whole delivery, and each step of the SMTP conversation.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_subject_prefix() -> String {
    "[jaga]".to_string()
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// Values in the body are cut at this many bytes; the subject at
/// [`MAX_SUBJECT_BYTES`].
const MAX_VALUE_BYTES: usize = 4096;
const MAX_SUBJECT_BYTES: usize = 200;

pub struct SmtpOutput {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    subject_prefix: String,
    timeout: Duration,
    /// `host:port`, for errors.
    server: String,
}

const KIND: BuildKind = BuildKind("smtp");

fn mailbox(key: &'static str, address: &str) -> Result<Mailbox, BuildError> {
    address
        .parse()
        .map_err(|error| KIND.invalid(key, format!("'{address}' is not a mail address ({error})")))
}

impl SmtpOutput {
    pub fn new(settings: &SmtpSettings) -> Result<Self, BuildError> {
        if settings.host.trim().is_empty() {
            return Err(KIND.invalid("host", "it is empty"));
        }
        let from = mailbox("from", &settings.from)?;
        let to = settings
            .to
            .iter()
            .map(|address| mailbox("to", address))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(KIND.invalid("to", "no recipient"));
        }
        let port = settings.port.unwrap_or(settings.tls.default_port());
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            .port(port)
            .timeout(Some(settings.timeout))
            .tls(tls(settings)?);
        if let Some((username, password)) = KIND.login(&settings.username, &settings.password)? {
            builder = builder.credentials(Credentials::new(username, password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
            to,
            subject_prefix: settings.subject_prefix.clone(),
            timeout: settings.timeout,
            server: format!("{}:{port}", settings.host),
        })
    }

    fn email(&self, message: &Message) -> Result<lettre::Message, DeliveryError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject(&self.subject_prefix, message))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(body(message))
            .map_err(|error| DeliveryError::Permanent {
                reason: format!("cannot build the mail for {}", self.server),
                answer: error.to_string(),
            })
    }
}

fn tls(settings: &SmtpSettings) -> Result<Tls, BuildError> {
    if settings.tls == SmtpTls::None {
        return Ok(Tls::None);
    }
    let mut parameters = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|error| {
            KIND.invalid(
                "ca_file",
                format!("cannot read '{}': {error}", path.display()),
            )
        })?;
        let certificate = Certificate::from_pem(&pem).map_err(|error| {
            KIND.invalid(
                "ca_file",
                format!("'{}' holds no PEM certificate: {error}", path.display()),
            )
        })?;
        parameters = parameters.add_root_certificate(certificate);
    }
    let parameters = parameters
        .build_rustls()
        .map_err(|error| KIND.invalid("tls", format!("cannot set up TLS: {error}")))?;
    Ok(match settings.tls {
        SmtpTls::Tls => Tls::Wrapper(parameters),
        _ => Tls::Required(parameters),
    })
}

impl Output for SmtpOutput {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let email = self.email(message)?;
            let sent = tokio::time::timeout(self.timeout, self.transport.send(email)).await;
            let response = match sent {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => return Err(judge(&self.server, &error)),
                Err(_) => {
                    return Err(DeliveryError::Transient {
                        reason: format!(
                            "smtp server {}: no answer within {:?}",
                            self.server, self.timeout
                        ),
                        retry_after: None,
                    })
                }
            };
            let text: Vec<&str> = response.message().collect();
            Ok(Receipt {
                answer: format::clean(&format!("{} {}", response.code(), text.join(" "))),
            })
        })
    }
}

/// 5xx answers are the server refusing this mail: permanent, with its
/// answer. 4xx, connection and TLS failures may pass: transient.
fn judge(server: &str, error: &lettre::transport::smtp::Error) -> DeliveryError {
    let text = format::error_chain(error);
    if error.is_permanent() {
        DeliveryError::Permanent {
            reason: format!("smtp server {server} rejected the mail"),
            answer: text,
        }
    } else {
        DeliveryError::Transient {
            reason: format!("smtp server {server}: {text}"),
            retry_after: None,
        }
    }
}

/// `[jaga] level 12 Privileged container started: web on host1`.
pub fn subject(prefix: &str, message: &Message) -> String {
    let summary = format::summary(message);
    let summary = shorten(&summary, MAX_SUBJECT_BYTES);
    if prefix.is_empty() {
        summary.into_owned()
    } else {
        format!("{} {summary}", format::clean(prefix))
    }
}

/// The summary, then one `Label: value` line per fact, labels aligned.
pub fn body(message: &Message) -> String {
    let facts = format::facts(message, MAX_VALUE_BYTES);
    let width = facts
        .iter()
        .map(|(label, _)| label.chars().count())
        .max()
        .unwrap_or(0)
        + 1;
    let mut body = format::summary(message);
    body.push_str("\n\n");
    for (label, value) in facts {
        body.push_str(&format!("{:<width$} {value}\n", format!("{label}:")));
    }
    body.push_str(
        "\n-- \nSent by jaga. The alert ids find these alerts in `jaga alerts` and the API.\n",
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::sample_alert;

    fn settings(text: &str) -> SmtpSettings {
        toml::from_str(text).unwrap()
    }

    const MINIMAL: &str =
        "host = \"mail.example\"\nfrom = \"jaga@example.org\"\nto = [\"ops@example.org\"]\n";

    #[test]
    fn settings_default_to_starttls_on_587() {
        let parsed = settings(MINIMAL);
        assert_eq!(parsed.tls, SmtpTls::Starttls);
        assert_eq!(parsed.port.unwrap_or(parsed.tls.default_port()), 587);
        assert_eq!(parsed.subject_prefix, "[jaga]");
        let tls = settings(&format!("{MINIMAL}tls = \"tls\""));
        assert_eq!(tls.tls.default_port(), 465);
        assert!(toml::from_str::<SmtpSettings>(&format!("{MINIMAL}tls = \"ssl\"")).is_err());
    }

    #[test]
    fn bad_addresses_and_half_credentials_are_refused_by_name() {
        let bad_to =
            settings("host = \"m\"\nfrom = \"jaga@example.org\"\nto = [\"ops at example\"]\n");
        let error = SmtpOutput::new(&bad_to).err().unwrap().to_string();
        assert!(
            error.contains("'to'") && error.contains("ops at example"),
            "{error}"
        );
        let no_password = settings(&format!("{MINIMAL}username = \"jaga\""));
        let error = SmtpOutput::new(&no_password).err().unwrap().to_string();
        assert!(error.contains("'password'"), "{error}");
        let nobody = settings("host = \"m\"\nfrom = \"jaga@example.org\"\nto = []\n");
        assert!(SmtpOutput::new(&nobody).is_err());
    }

    #[test]
    fn the_subject_is_the_summary_after_the_prefix() {
        let message = Message::single(sample_alert("a1", "web"));
        assert_eq!(
            subject("[jaga]", &message),
            "[jaga] level 12 Privileged container started: web on host1"
        );
    }

    #[test]
    fn the_body_says_what_where_when_and_which_alert() {
        let body = body(&Message::single(sample_alert("a1", "web")));
        let lines: Vec<&str> = body.lines().collect();
        assert_eq!(
            lines[0],
            "level 12 Privileged container started: web on host1"
        );
        for line in [
            "Rule:         91011 (level 12, critical)",
            "Container:    web",
            "Host:         host1",
            "Time:         2024-05-01T10:00:00.123Z",
            "action:       start",
            "Alert id:     a1",
        ] {
            assert!(lines.contains(&line), "{line:?} in\n{body}");
        }
    }

    #[test]
    fn a_container_name_cannot_add_headers_or_lines() {
        let message = Message::single(sample_alert("web\r\nBcc: victim@example.org", "web"));
        let body = body(&message);
        assert!(!body.contains("\nBcc:"), "{body}");
        let subject = subject(
            "[jaga]",
            &Message::single(sample_alert("a", "x\r\nBcc: v@e")),
        );
        assert!(
            !subject.contains('\n') && !subject.contains('\r'),
            "{subject}"
        );
    }
}
