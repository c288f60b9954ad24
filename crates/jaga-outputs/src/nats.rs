//! NATS JetStream: each alert published to `<prefix>.<agent>.<kind>`
//! (`kind`: `events` for Docker events, `findings` for audit findings,
//! `alerts` for the rest) with `Nats-Msg-Id` = `<agent>.<alert id>`, so the
//! stream drops a duplicate sent again after a restart. A delivery counts
//! only when JetStream acknowledged every alert of the message (its
//! PubAck): the runner moves its cursor after that, never before.
//!
//! Besides the alerts, the output publishes a small heartbeat to
//! `<prefix>.<agent>.heartbeat` every `heartbeat` (30 s): core NATS, not
//! JetStream and not through the durable queue, since a heartbeat is only
//! worth something while it is fresh. The hubs subscribe to it in a queue
//! group and take it as the host's last contact.
//!
//! Every agent authenticates with its own credentials (user/password, an
//! NKey seed or a `.creds` file), over TLS when the URL says `tls://` or a
//! CA is given. The stream itself is the hub's (`jaga hub` creates it);
//! an agent needs only publish rights on its own subjects.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use jaga_model::Alert;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex as AsyncMutex;

use crate::format::clean;
use crate::{
    BuildError, BuildKind, DeliveryError, DeliveryFuture, Message, Output, Receipt, Secret,
};

/// How an agent or the hub reaches NATS: servers, credentials, TLS.
/// Shared by the `nats` output and `jaga hub`'s `[hub.nats]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConnection {
    /// `nats://host:4222` or `tls://host:4222`; several for a cluster.
    pub servers: Vec<String>,
    /// User/password authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// NKey authentication: the user's seed (`SU...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey_seed: Option<Secret>,
    /// A `.creds` file (JWT + NKey seed) of an operator-mode server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// The CA the server's certificate must chain to; setting it requires TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), for servers that verify them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// Connecting, and the wait for each acknowledgement.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `type = "nats"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    #[serde(flatten)]
    pub connection: NatsConnection,
    /// The first token of every subject.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// How often the agent tells the hub it is alive when it has nothing
    /// to send; `0s`: never.
    #[serde(default = "default_heartbeat", with = "humantime_serde")]
    pub heartbeat: Duration,
}

fn default_heartbeat() -> Duration {
    Duration::from_secs(30)
}

/// What an agent's heartbeat says; the agent's name is also the
/// subject's token, which is what the hub goes by.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Heartbeat {
    pub agent: String,
    /// jaga's version.
    pub version: String,
    /// Seconds since the agent started.
    pub uptime_s: u64,
}

/// The token that ends a heartbeat's subject.
pub const HEARTBEAT_KIND: &str = "heartbeat";

/// `<prefix>.<agent>.heartbeat`.
pub fn heartbeat_subject(prefix: &str, agent: &str) -> String {
    format!("{prefix}.{}.{HEARTBEAT_KIND}", subject_token(agent))
}

pub fn default_subject_prefix() -> String {
    "jaga".to_owned()
}

const KIND: BuildKind = BuildKind("nats");

/// A `subject_prefix` as subjects use it (outer dots trimmed), or why it
/// cannot be one. The nats output and the hub check it the same way.
pub fn subject_prefix(given: &str) -> Result<&str, String> {
    let prefix = given.trim_matches('.');
    if prefix.is_empty()
        || prefix
            .split('.')
            .any(|token| token.is_empty() || subject_token(token) != token)
    {
        return Err(format!(
            "'{}' is not dot-separated tokens of letters, digits, '-' and '_'",
            clean(given)
        ));
    }
    Ok(prefix)
}

/// A NATS connection refused or failed, said for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NatsConnectError(pub String);

/// The last error the server sent, read into errors that would otherwise
/// only say "timed out" (a permissions violation, a revoked user).
#[derive(Clone, Default)]
pub struct ServerErrors(Arc<Mutex<Option<String>>>);

impl ServerErrors {
    fn set(&self, error: String) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some(error);
        }
    }

    fn clear(&self) {
        if let Ok(mut last) = self.0.lock() {
            *last = None;
        }
    }

    /// ` (the server said: ...)`, or nothing.
    pub fn suffix(&self) -> String {
        match self.0.lock().ok().and_then(|last| last.clone()) {
            Some(error) => format!(" (the server said: {error})"),
            None => String::new(),
        }
    }
}

impl NatsConnection {
    /// What the servers are, for messages (no credentials in them).
    pub fn shown(&self) -> String {
        self.servers.join(",")
    }

    /// The client options these settings describe, secrets read now.
    /// `name` is what the server shows for the connection.
    pub fn options(
        &self,
        kind: &'static str,
        name: &str,
        errors: &ServerErrors,
    ) -> Result<async_nats::ConnectOptions, BuildError> {
        let kind = BuildKind(kind);
        if self.servers.is_empty() {
            return Err(kind.invalid("servers", "no NATS server"));
        }
        for server in &self.servers {
            server
                .parse::<async_nats::ServerAddr>()
                .map_err(|error| kind.invalid("servers", format!("'{server}': {error}")))?;
        }
        let login = kind.login(&self.username, &self.password)?;
        let given = [
            login.is_some(),
            self.nkey_seed.is_some(),
            self.credentials_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(kind.invalid(
                "credentials_file",
                "give one of username/password, nkey_seed or credentials_file",
            ));
        }
        let mut options = async_nats::ConnectOptions::new();
        if let Some((user, password)) = login {
            options = options.user_and_password(user, password);
        }
        if let Some(seed) = &self.nkey_seed {
            let seed = kind.reveal("nkey_seed", seed)?;
            // Checked now: the client would only find out when connecting.
            nkeys::KeyPair::from_seed(&seed)
                .map_err(|error| kind.invalid("nkey_seed", format!("not an NKey seed: {error}")))?;
            options = options.nkey(seed);
        }
        if let Some(path) = &self.credentials_file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                kind.invalid(
                    "credentials_file",
                    format!("cannot read '{}': {error}", path.display()),
                )
            })?;
            options = options.credentials(&text).map_err(|error| {
                kind.invalid(
                    "credentials_file",
                    format!("'{}' is not a NATS .creds file: {error}", path.display()),
                )
            })?;
        }
        if self.ca_file.is_some() || self.client_cert.is_some() {
            options = options
                .tls_client_config(self.tls_config(kind)?)
                .require_tls(true);
        }
        let errors = errors.clone();
        let shown = self.shown();
        Ok(options
            .name(name)
            .connection_timeout(self.timeout)
            .request_timeout(Some(self.timeout))
            // Forever: the durable queue holds what waits meanwhile.
            .max_reconnects(None)
            .event_callback(move |event| {
                let errors = errors.clone();
                let shown = shown.clone();
                async move {
                    match event {
                        async_nats::Event::ServerError(error) => {
                            tracing::warn!(servers = %shown, %error, "nats server reported an error");
                            errors.set(clean(&error.to_string()));
                        }
                        async_nats::Event::Connected => {
                            tracing::info!(servers = %shown, "connected to nats");
                            errors.clear();
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!(servers = %shown, "disconnected from nats; reconnecting")
                        }
                        other => tracing::debug!(servers = %shown, event = %other, "nats event"),
                    }
                }
            }))
    }

    fn tls_config(&self, kind: BuildKind) -> Result<rustls::ClientConfig, BuildError> {
        let mut roots = rustls::RootCertStore::empty();
        let certificates = match &self.ca_file {
            Some(path) => read_certificates(kind, "ca_file", path)?,
            None => rustls_native_certs::load_native_certs().certs,
        };
        let (added, _) = roots.add_parsable_certificates(certificates);
        if added == 0 {
            return Err(kind.invalid("ca_file", "no usable CA certificate"));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| kind.invalid("ca_file", format!("cannot set up TLS: {error}")))?
            .with_root_certificates(roots);
        match (&self.client_cert, &self.client_key) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = read_certificates(kind, "client_cert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|error| {
                    kind.invalid(
                        "client_key",
                        format!("cannot read a PEM key from '{}': {error}", key.display()),
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|error| {
                    kind.invalid("client_key", format!("does not match client_cert: {error}"))
                })
            }
            (Some(_), None) => Err(kind.invalid("client_key", "a client_cert needs its key")),
            (None, Some(_)) => Err(kind.invalid("client_cert", "a client_key needs its cert")),
        }
    }

    /// Connects, saying plainly why not: wrong credentials and TLS trouble
    /// are told apart from a server that is down.
    pub async fn connect(
        &self,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::Client, ConnectFailure> {
        let shown = self.shown();
        let connecting = options.connect(self.servers.clone());
        let result = tokio::time::timeout(self.timeout + Duration::from_secs(1), connecting).await;
        match result {
            Ok(Ok(client)) => Ok(client),
            Err(_) => Err(ConnectFailure::Unreachable(format!(
                "cannot connect to nats {shown}: timed out after {}s",
                self.timeout.as_secs()
            ))),
            Ok(Err(error)) => {
                use async_nats::ConnectErrorKind as K;
                let text = format!(
                    "cannot connect to nats {shown}: {}",
                    clean(&error.to_string())
                );
                Err(match error.kind() {
                    K::AuthorizationViolation | K::Authentication => ConnectFailure::Refused(
                        format!("{text}: the server refused the credentials (check username/password, nkey_seed or credentials_file)"),
                    ),
                    // rustls' verdicts come back as IO errors.
                    K::Tls | K::Io if text.contains("certificate") || text.contains("TLS") => {
                        ConnectFailure::Unreachable(format!("{text} (check ca_file, client_cert and the server's certificate)"))
                    }
                    _ => ConnectFailure::Unreachable(text),
                })
            }
        }
    }
}

/// Why a connection could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The server is down, slow or the network is: try again.
    Unreachable(String),
    /// The server refused who we are: trying again cannot help until the
    /// credentials change.
    Refused(String),
}

fn read_certificates(
    kind: BuildKind,
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, BuildError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|error| kind.invalid(key, format!("cannot read '{}': {error}", path.display())))?;
    if certificates.is_empty() {
        return Err(kind.invalid(key, format!("'{}' holds no certificate", path.display())));
    }
    Ok(certificates)
}

/// The subject kind of an alert: what the hub files it under.
pub fn subject_kind(alert: &Alert) -> &'static str {
    match alert.location.as_str() {
        "docker-events" => "events",
        "audit" => "findings",
        _ => "alerts",
    }
}

/// A subject token from any name: NATS subjects split on `.` and treat
/// `*`, `>` and white space specially.
pub fn subject_token(name: &str) -> String {
    let token: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if token.is_empty() {
        "unnamed".to_owned()
    } else {
        token
    }
}

/// The record's id in the fleet, JetStream's `Nats-Msg-Id`: the agent
/// and the alert id, as alert ids are unique per host only (two agents on
/// one host raise the same id for the same Docker event).
pub fn message_id(alert: &Alert) -> String {
    format!("{}.{}", subject_token(&alert.agent.name), alert.id)
}

/// `<prefix>.<agent>.<kind>`.
pub fn subject(prefix: &str, alert: &Alert) -> String {
    format!(
        "{prefix}.{}.{}",
        subject_token(&alert.agent.name),
        subject_kind(alert)
    )
}

pub struct NatsOutput {
    connection: NatsConnection,
    options: async_nats::ConnectOptions,
    prefix: String,
    errors: ServerErrors,
    heartbeat: Option<Duration>,
    /// Connected on first use and kept: the client reconnects by itself.
    context: AsyncMutex<Option<jetstream::Context>>,
}

impl NatsOutput {
    pub fn new(settings: &NatsSettings) -> Result<Self, BuildError> {
        let prefix = subject_prefix(&settings.subject_prefix)
            .map_err(|reason| KIND.invalid("subject_prefix", reason))?;
        let errors = ServerErrors::default();
        let options = settings.connection.options("nats", "jaga agent", &errors)?;
        Ok(Self {
            connection: settings.connection.clone(),
            options,
            prefix: prefix.to_owned(),
            errors,
            heartbeat: (!settings.heartbeat.is_zero()).then_some(settings.heartbeat),
            context: AsyncMutex::new(None),
        })
    }

    async fn context(&self) -> Result<jetstream::Context, DeliveryError> {
        let mut slot = self.context.lock().await;
        if let Some(context) = slot.as_ref() {
            return Ok(context.clone());
        }
        let client = self
            .connection
            .connect(self.options.clone())
            .await
            .map_err(|failure| match failure {
                ConnectFailure::Unreachable(reason) => DeliveryError::Transient {
                    reason,
                    retry_after: None,
                },
                ConnectFailure::Refused(reason) => DeliveryError::Permanent {
                    answer: reason.clone(),
                    reason,
                },
            })?;
        let mut context = jetstream::new(client);
        context.set_timeout(self.connection.timeout);
        *slot = Some(context.clone());
        Ok(context)
    }

    async fn publish(
        &self,
        context: &jetstream::Context,
        message: &Message,
    ) -> Result<Receipt, DeliveryError> {
        // Every alert sent first, then every ack awaited: one round trip.
        let mut acks = Vec::with_capacity(message.alerts.len());
        for stored in &message.alerts {
            let alert = &stored.alert;
            let payload = serde_json::to_vec(alert).map_err(|error| DeliveryError::Permanent {
                reason: format!("cannot encode alert '{}' as JSON: {error}", alert.id),
                answer: String::new(),
            })?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_MESSAGE_ID,
                message_id(alert).as_str(),
            );
            let subject = subject(&self.prefix, alert);
            let ack = context
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|error| self.publish_failed(&subject, &error))?;
            acks.push((subject, ack));
        }
        let (mut stored, mut duplicates) = (0u64, 0u64);
        let mut stream = String::new();
        for (subject, ack) in acks {
            let ack = ack
                .await
                .map_err(|error| self.publish_failed(&subject, &error))?;
            if ack.duplicate {
                duplicates += 1;
            } else {
                stored += 1;
            }
            stream = ack.stream;
        }
        Ok(Receipt {
            answer: format!(
                "PubAck from stream {stream}: {stored} stored, {duplicates} duplicate(s)"
            ),
        })
    }

    fn publish_failed(
        &self,
        subject: &str,
        error: &jetstream::context::PublishError,
    ) -> DeliveryError {
        use jetstream::context::PublishErrorKind as K;
        let reason = format!(
            "nats {}: publishing to '{subject}' failed: {}{}",
            self.connection.shown(),
            clean(&error.to_string()),
            self.errors.suffix()
        );
        match error.kind() {
            // The message itself is too big: sending it again cannot help.
            K::MaxPayloadExceeded => DeliveryError::Permanent {
                answer: reason.clone(),
                reason,
            },
            // No stream (yet) on the subject, no ack in time, a broken
            // connection: the hub or the server may come back.
            _ => DeliveryError::Transient {
                reason,
                retry_after: None,
            },
        }
    }
}

impl Output for NatsOutput {
    fn kind(&self) -> &'static str {
        "nats"
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let context = self.context().await?;
            self.publish(&context, message).await
        })
    }

    fn heartbeat_every(&self) -> Option<Duration> {
        self.heartbeat
    }

    fn heartbeat<'a>(&'a self, beat: &'a Heartbeat) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let context = self.context().await?;
            let payload = serde_json::to_vec(beat).map_err(|error| DeliveryError::Permanent {
                reason: format!("cannot encode a heartbeat as JSON: {error}"),
                answer: String::new(),
            })?;
            let subject = heartbeat_subject(&self.prefix, &beat.agent);
            let failed = |error: &dyn std::fmt::Display| DeliveryError::Transient {
                reason: format!(
                    "nats {}: publishing to '{subject}' failed: {}{}",
                    self.connection.shown(),
                    clean(&error.to_string()),
                    self.errors.suffix()
                ),
                retry_after: None,
            };
            let client = context.client();
            client
                .publish(subject.clone(), payload.into())
                .await
                .map_err(|e| failed(&e))?;
            // Written out now, or said why not (no ack comes for core NATS).
            client.flush().await.map_err(|e| failed(&e))?;
            Ok(Receipt {
                answer: format!("published to {subject}"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::stored;

    fn settings(text: &str) -> NatsSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn subjects_name_the_agent_and_kind_in_safe_tokens() {
        let mut alert = stored(1, "a").alert;
        alert.agent.name = "web 1.prod>*".to_owned();
        alert.location = "/var/lib/docker/containers/c/c-json.log".to_owned();
        assert_eq!(subject("jaga", &alert), "jaga.web_1_prod__.alerts");
        alert.location = "docker-events".to_owned();
        assert_eq!(subject("fleet.eu", &alert), "fleet.eu.web_1_prod__.events");
        alert.location = "audit".to_owned();
        alert.agent.name = String::new();
        assert_eq!(subject("jaga", &alert), "jaga.unnamed.findings");
    }

    #[test]
    fn settings_refuse_bad_prefixes_and_mixed_credentials() {
        let ok = settings("servers = [\"nats://127.0.0.1:4222\"]");
        assert_eq!(ok.subject_prefix, "jaga");
        assert_eq!(
            NatsOutput::new(&ok).unwrap().heartbeat_every(),
            Some(Duration::from_secs(30))
        );
        let silent = settings("servers = [\"nats://127.0.0.1:4222\"]\nheartbeat = \"0s\"");
        assert_eq!(NatsOutput::new(&silent).unwrap().heartbeat_every(), None);
        let bad_prefix =
            settings("servers = [\"nats://127.0.0.1:4222\"]\nsubject_prefix = \"a.*\"");
        let error = NatsOutput::new(&bad_prefix).err().unwrap().to_string();
        assert!(
            error.contains("subject_prefix") && error.contains("'a.*'"),
            "{error}"
        );
        let both = settings(
            "servers = [\"nats://127.0.0.1:4222\"]\nusername = \"u\"\npassword = \"p\"\nnkey_seed = \"SUAx\"",
        );
        let error = NatsOutput::new(&both).err().unwrap().to_string();
        assert!(error.contains("give one of"), "{error}");
        let seed = settings("servers = [\"nats://127.0.0.1:4222\"]\nnkey_seed = \"not-a-seed\"");
        let error = NatsOutput::new(&seed).err().unwrap().to_string();
        assert!(
            error.contains("nkey_seed") && error.contains("not an NKey seed"),
            "{error}"
        );
        let none = settings("servers = []");
        assert!(NatsOutput::new(&none).is_err());
    }

    #[test]
    fn heartbeats_go_to_their_own_subject_outside_the_records() {
        assert_eq!(
            heartbeat_subject("jaga", "web 1.prod"),
            "jaga.web_1_prod.heartbeat"
        );
        let beat = Heartbeat {
            agent: "web-1".to_owned(),
            version: "1.2.3".to_owned(),
            uptime_s: 7,
        };
        let json = serde_json::to_string(&beat).unwrap();
        assert_eq!(json, r#"{"agent":"web-1","version":"1.2.3","uptime_s":7}"#);
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_a_transient_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let output = NatsOutput::new(&settings(&format!(
            "servers = [\"nats://127.0.0.1:{port}\"]\ntimeout = \"2s\""
        )))
        .unwrap();
        let error = output
            .deliver(&Message::single(stored(1, "a")))
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
        assert!(
            error.to_string().contains("cannot connect to nats"),
            "{error}"
        );
    }
}
