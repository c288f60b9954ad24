//! Syslog, RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME jaga PROCID alert [SD] MSG`,
//! over UDP (RFC 5426, one message per datagram), TCP with octet counting
//! (RFC 6587) or TLS (RFC 5425). The structured data carries the alert's
//! identity (`[jaga@32473 alert_id=".." rule_id=".." level=".." ...]`), the
//! message a one-line summary or the alert's JSON.
//!
//! A TCP or TLS connection is kept between deliveries. Syslog has no
//! acknowledgement, so before each write the connection is checked for an
//! end the receiver sent; one found closed, or failing to write, is dropped
//! and the delivery reported transient, and the next one reconnects.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use jaga_model::escape_control_json;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use crate::format::{self, clean, Severity};
use crate::{BuildError, BuildKind, DeliveryError, DeliveryFuture, Message, Output, Receipt};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

/// What follows the structured data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// The one-line summary people read.
    #[default]
    Text,
    /// The alert as JSON (an array for a grouped message).
    Json,
}

/// RFC 5424's facilities, by their usual names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    Kern = 0,
    User = 1,
    Mail = 2,
    #[default]
    Daemon = 3,
    Auth = 4,
    Syslog = 5,
    Lpr = 6,
    News = 7,
    Uucp = 8,
    Cron = 9,
    Authpriv = 10,
    Ftp = 11,
    Local0 = 16,
    Local1 = 17,
    Local2 = 18,
    Local3 = 19,
    Local4 = 20,
    Local5 = 21,
    Local6 = 22,
    Local7 = 23,
}

/// `type = "syslog"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogSettings {
    /// `host:port`, or `host` for the transport's port (514, 6514 for TLS).
    pub address: String,
    #[serde(default)]
    pub transport: SyslogTransport,
    #[serde(default)]
    pub facility: Facility,
    #[serde(default)]
    pub format: SyslogFormat,
    /// TLS: PEM file of the certificate authorities that may sign the
    /// receiver's certificate (default: the system's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// TLS: the name the receiver's certificate must carry (default: the
    /// host of `address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// The HOSTNAME field (default: the host the alert was raised on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Longer messages are cut (and counted). Default 2048 over UDP (RFC
    /// 5426's size every receiver should take), 8192 over TCP and TLS
    /// (rsyslog's default limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<usize>,
    /// Connecting, the TLS handshake, and each write.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// jaga's structured-data id: a name at a private enterprise number, as
/// RFC 5424 7.2.2 asks for ids that are not IANA's. 32473 is the number
/// RFC 5612 reserves for documentation.
pub const SD_ID: &str = "jaga@32473";

/// The smallest size a message may be cut to: the header and SD fit.
const MIN_MESSAGE_BYTES: usize = 480;

const KIND: BuildKind = BuildKind("syslog");

/// `host:port`, `[v6]:port`, or a host alone with `default_port`.
fn split_address(address: &str, default_port: u16) -> Result<(String, u16), String> {
    let port = |text: &str| {
        text.parse::<u16>()
            .map_err(|_| format!("'{address}': port '{text}' is not a number from 0 to 65535"))
    };
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, "")) => (host, default_port),
            Some((host, tail)) => match tail.strip_prefix(':') {
                Some(text) => (host, port(text)?),
                None => return Err(format!("'{address}' is not [host]:port")),
            },
            None => return Err(format!("'{address}' has no closing ']'")),
        }
    } else {
        match address.split_once(':') {
            Some((host, text)) if !text.contains(':') => (host, port(text)?),
            Some(_) => return Err(format!("'{address}': write an IPv6 address as [addr]:port")),
            None => (address, default_port),
        }
    };
    if host.is_empty() {
        return Err(format!("'{address}' has no host"));
    }
    Ok((host.to_string(), port))
}

/// Anything the tokio stream types share, so plain TCP and TLS
/// connections are kept the same way.
trait SyslogStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> SyslogStream for T {}

enum Transport {
    Udp(Mutex<Option<UdpSocket>>),
    Stream {
        tls: Option<(TlsConnector, ServerName<'static>)>,
        connection: Mutex<Option<Box<dyn SyslogStream>>>,
    },
}

pub struct SyslogOutput {
    host: String,
    port: u16,
    transport: Transport,
    facility: Facility,
    format: SyslogFormat,
    hostname: Option<String>,
    max_message_bytes: usize,
    timeout: Duration,
    truncated: AtomicU64,
}

fn tls_connector(
    settings: &SyslogSettings,
    host: &str,
) -> Result<(TlsConnector, ServerName<'static>), BuildError> {
    let mut roots = rustls::RootCertStore::empty();
    match &settings.ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|error| {
                    KIND.invalid(
                        "ca_file",
                        format!("cannot read '{}': {error}", path.display()),
                    )
                })?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(KIND.invalid(
                    "ca_file",
                    format!("'{}' holds no usable certificate", path.display()),
                ));
            }
        }
        None => {
            let (added, _) =
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err(KIND.invalid(
                    "ca_file",
                    "the system has no CA certificates: give the receiver's CA in 'ca_file'",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| KIND.invalid("transport", format!("cannot set up TLS: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = settings.server_name.as_deref().unwrap_or(host).to_string();
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| KIND.invalid("server_name", format!("'{name}' is not a DNS name or IP")))?;
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}

impl SyslogOutput {
    pub fn new(settings: &SyslogSettings) -> Result<Self, BuildError> {
        let default_port = match settings.transport {
            SyslogTransport::Tls => 6514,
            _ => 514,
        };
        let (host, port) = split_address(&settings.address, default_port)
            .map_err(|e| KIND.invalid("address", e))?;
        let transport = match settings.transport {
            SyslogTransport::Udp => Transport::Udp(Mutex::new(None)),
            SyslogTransport::Tcp => Transport::Stream {
                tls: None,
                connection: Mutex::new(None),
            },
            SyslogTransport::Tls => Transport::Stream {
                tls: Some(tls_connector(settings, &host)?),
                connection: Mutex::new(None),
            },
        };
        let max_message_bytes = settings
            .max_message_bytes
            .unwrap_or(match settings.transport {
                SyslogTransport::Udp => 2048,
                _ => 8192,
            });
        if max_message_bytes < MIN_MESSAGE_BYTES {
            return Err(KIND.invalid(
                "max_message_bytes",
                format!("{max_message_bytes} is below {MIN_MESSAGE_BYTES}"),
            ));
        }
        Ok(Self {
            host,
            port,
            transport,
            facility: settings.facility,
            format: settings.format,
            hostname: settings.hostname.clone(),
            max_message_bytes,
            timeout: settings.timeout,
            truncated: AtomicU64::new(0),
        })
    }

    fn transient(&self, what: &str, error: impl std::fmt::Display) -> DeliveryError {
        DeliveryError::Transient {
            reason: format!(
                "syslog receiver {}:{}: {what}: {error}",
                self.host, self.port
            ),
            retry_after: None,
        }
    }

    fn timed_out(&self, what: &str) -> DeliveryError {
        self.transient(what, format_args!("no progress within {:?}", self.timeout))
    }

    async fn resolve(&self) -> Result<std::net::SocketAddr, DeliveryError> {
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let mut addresses = tokio::time::timeout(self.timeout, lookup)
            .await
            .map_err(|_| self.timed_out("resolving"))?
            .map_err(|error| self.transient("resolving", error))?;
        addresses
            .next()
            .ok_or_else(|| self.transient("resolving", "no address"))
    }

    async fn send_udp(
        &self,
        socket: &Mutex<Option<UdpSocket>>,
        record: &[u8],
    ) -> Result<(), DeliveryError> {
        let mut socket = socket.lock().await;
        if socket.is_none() {
            let target = self.resolve().await?;
            let local: std::net::SocketAddr = if target.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            let bound = UdpSocket::bind(local)
                .await
                .map_err(|error| self.transient("binding a UDP socket", error))?;
            bound
                .connect(target)
                .await
                .map_err(|error| self.transient("connecting", error))?;
            *socket = Some(bound);
        }
        let Some(open) = socket.as_ref() else {
            return Err(self.transient("sending", "no socket"));
        };
        let sent = tokio::time::timeout(self.timeout, open.send(record)).await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            // A refused datagram (ICMP port unreachable) shows on the next
            // send: a fresh socket for the retry.
            Ok(Err(error)) => {
                *socket = None;
                Err(self.transient("sending", error))
            }
            Err(_) => {
                *socket = None;
                Err(self.timed_out("sending"))
            }
        }
    }

    async fn connect(
        &self,
        tls: &Option<(TlsConnector, ServerName<'static>)>,
    ) -> Result<Box<dyn SyslogStream>, DeliveryError> {
        let address = (self.host.as_str(), self.port);
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| self.timed_out("connecting"))?
            .map_err(|error| self.transient("connecting", error))?;
        // Small records, sent as they come.
        let _ = tcp.set_nodelay(true);
        let Some((connector, server_name)) = tls else {
            return Ok(Box::new(tcp));
        };
        let stream =
            tokio::time::timeout(self.timeout, connector.connect(server_name.clone(), tcp))
                .await
                .map_err(|_| self.timed_out("TLS handshake"))?
                .map_err(|error| self.transient("TLS handshake", format::error_chain(&error)))?;
        Ok(Box::new(stream))
    }

    async fn send_stream(
        &self,
        tls: &Option<(TlsConnector, ServerName<'static>)>,
        connection: &Mutex<Option<Box<dyn SyslogStream>>>,
        record: &[u8],
    ) -> Result<(), DeliveryError> {
        let mut connection = connection.lock().await;
        if let Some(stream) = connection.as_mut() {
            if !still_open(stream).await {
                tracing::debug!(host = %self.host, port = self.port, "syslog receiver closed the connection; reconnecting");
                *connection = None;
            }
        }
        let stream = match connection.as_mut() {
            Some(stream) => stream,
            None => connection.insert(self.connect(tls).await?),
        };
        let frame = octet_counted(record);
        let written = tokio::time::timeout(self.timeout, async {
            stream.write_all(&frame).await?;
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                *connection = None;
                Err(self.transient("connection broken, will reconnect", error))
            }
            Err(_) => {
                *connection = None;
                Err(self.timed_out("writing"))
            }
        }
    }
}

/// Whether the receiver has not ended the connection: it never sends
/// anything, so whatever is there to read without waiting is its end (or
/// TLS records rustls consumes itself).
async fn still_open(stream: &mut Box<dyn SyslogStream>) -> bool {
    let mut scratch = [0u8; 512];
    loop {
        // A zero timeout polls the read once: pending means open and idle.
        match tokio::time::timeout(Duration::ZERO, stream.read(&mut scratch)).await {
            Err(_) => return true,
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(_)) => continue,
        }
    }
}

/// RFC 6587 3.4.1: `MSG-LEN SP SYSLOG-MSG`.
pub fn octet_counted(record: &[u8]) -> Vec<u8> {
    let mut frame = format!("{} ", record.len()).into_bytes();
    frame.extend_from_slice(record);
    frame
}

impl Output for SyslogOutput {
    fn kind(&self) -> &'static str {
        "syslog"
    }

    fn truncated_messages(&self) -> u64 {
        self.truncated.load(Ordering::Relaxed)
    }

    fn deliver<'a>(&'a self, message: &'a Message) -> DeliveryFuture<'a> {
        Box::pin(async move {
            let full = record(
                message,
                self.facility,
                self.format,
                self.hostname.as_deref(),
                std::process::id(),
            );
            let cut = truncate(&full, self.max_message_bytes);
            if cut.len() < full.len() {
                self.truncated.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    host = %self.host,
                    bytes = full.len(),
                    max = self.max_message_bytes,
                    alert_id = %message.idempotency_key(),
                    "syslog message cut to the receiver's size"
                );
            }
            match &self.transport {
                Transport::Udp(socket) => self.send_udp(socket, cut.as_bytes()).await?,
                Transport::Stream { tls, connection } => {
                    self.send_stream(tls, connection, cut.as_bytes()).await?
                }
            }
            Ok(Receipt {
                answer: format!("sent {} bytes to {}:{}", cut.len(), self.host, self.port),
            })
        })
    }
}

/// At most `max` bytes, cut on a character boundary.
fn truncate(record: &str, max: usize) -> &str {
    if record.len() <= max {
        return record;
    }
    let mut end = max;
    while !record.is_char_boundary(end) {
        end -= 1;
    }
    &record[..end]
}

/// Syslog severities (RFC 5424 6.2.1) from levels; emergency (the system
/// is unusable) is never jaga's to say.
pub fn syslog_severity(level: u8) -> u8 {
    match level {
        15.. => 1,
        12..=14 => 2,
        10..=11 => 3,
        7..=9 => 4,
        4..=6 => 5,
        _ => 6,
    }
}

/// RFC 5424 6.3.3: inside a PARAM-VALUE, `"`, `\` and `]` are escaped with
/// a backslash. Control characters are made visible first, so a value
/// cannot end the line.
pub fn sd_escape(value: &str) -> String {
    let visible = clean(value);
    let mut out = String::with_capacity(visible.len());
    for c in visible.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Printable ASCII without spaces, at most `max` long, or `-` (NILVALUE).
fn header_field(value: &str, max: usize) -> String {
    let field: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if field.is_empty() {
        "-".to_string()
    } else {
        field
    }
}

/// The RFC 5424 message for `message`, without framing.
pub fn record(
    message: &Message,
    facility: Facility,
    format: SyslogFormat,
    hostname: Option<&str>,
    procid: u32,
) -> String {
    let Some(first) = message.first() else {
        return String::new();
    };
    let alert = &first.alert;
    let pri = (facility as u8) * 8 + syslog_severity(alert.rule.level);
    let timestamp = DateTime::parse_from_rfc3339(&alert.timestamp)
        .map(|time| {
            time.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        })
        .unwrap_or_else(|_| "-".to_string());
    let host = header_field(hostname.or(format::host(alert)).unwrap_or(""), 255);
    let mut params = vec![
        ("alert_id", alert.id.clone()),
        ("rule_id", alert.rule.id.clone()),
        ("level", alert.rule.level.to_string()),
        (
            "severity",
            Severity::of_level(alert.rule.level).as_str().to_string(),
        ),
    ];
    if let Some(name) = format::container_name(alert) {
        params.push(("container", name.to_string()));
    }
    if let Some(image) = format::container_image(alert) {
        params.push(("image", image.to_string()));
    }
    if let Some(episode) = &alert.episode {
        let status = match episode.status {
            jaga_model::EpisodeStatus::Firing => "firing",
            jaga_model::EpisodeStatus::Resolved => "resolved",
        };
        params.push(("episode", episode.key.clone()));
        params.push(("status", status.to_string()));
    }
    if message.alerts.len() > 1 {
        params.push(("count", message.alerts.len().to_string()));
        params.push(("alert_ids", format::alert_ids(message).join(" ")));
    }
    let sd: String = params
        .iter()
        .map(|(name, value)| format!(" {name}=\"{}\"", sd_escape(value)))
        .collect();
    let msg = match format {
        SyslogFormat::Text => format::summary(message),
        SyslogFormat::Json => {
            let json = match message.alerts.as_slice() {
                [one] => serde_json::to_string(&one.alert),
                many => serde_json::to_string(&many.iter().map(|s| &s.alert).collect::<Vec<_>>()),
            };
            // serde_json escapes newlines in strings: the JSON is one line.
            json.map(|text| escape_control_json(&text).into_owned())
                .unwrap_or_else(|error| format!("(alert not serialisable: {error})"))
        }
    };
    format!("<{pri}>1 {timestamp} {host} jaga {procid} alert [{SD_ID}{sd}] {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tests::sample_alert;

    #[test]
    fn severities_follow_levels() {
        let got: Vec<u8> = [0, 3, 4, 6, 7, 9, 10, 11, 12, 14, 15]
            .into_iter()
            .map(syslog_severity)
            .collect();
        assert_eq!(got, [6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1]);
    }

    #[test]
    fn sd_values_escape_quote_backslash_bracket_and_controls() {
        assert_eq!(sd_escape(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(sd_escape("x\ny"), r"x\\ny");
        assert_eq!(sd_escape("plain [ok"), "plain [ok");
    }

    #[test]
    fn frames_are_octet_counted_in_bytes() {
        assert_eq!(
            octet_counted(b"<30>1 - - - - - - hi"),
            b"20 <30>1 - - - - - - hi"
        );
        assert_eq!(octet_counted("é".as_bytes()), "2 é".as_bytes());
    }

    #[test]
    fn a_record_has_the_rfc5424_header_sd_and_summary() {
        let message = Message::single(sample_alert("a1", "web"));
        let line = record(&message, Facility::Daemon, SyslogFormat::Text, None, 42);
        assert_eq!(
            line,
            "<26>1 2024-05-01T10:00:00.123Z host1 jaga 42 alert [jaga@32473 alert_id=\"a1\" \
             rule_id=\"91011\" level=\"12\" severity=\"critical\" container=\"web\" \
             image=\"nginx:1.25\"] level 12 Privileged container started: web on host1"
        );
        let local7 = record(
            &message,
            Facility::Local7,
            SyslogFormat::Text,
            Some("edge 1"),
            1,
        );
        assert!(
            local7.starts_with("<186>1 2024-05-01T10:00:00.123Z edge1 jaga 1 "),
            "{local7}"
        );
    }

    #[test]
    fn json_records_are_one_line_holding_the_alert() {
        let message = Message::single(sample_alert("a1", "web\nforged"));
        let line = record(&message, Facility::Daemon, SyslogFormat::Json, None, 1);
        assert!(!line.contains('\n'), "{line}");
        let json = line.split_once("] ").unwrap().1;
        let alert: jaga_model::Alert = serde_json::from_str(json).unwrap();
        assert_eq!(alert, message.alerts[0].alert);
    }

    #[test]
    fn a_group_record_counts_and_lists_the_ids() {
        let message = Message {
            alerts: vec![sample_alert("a1", "web"), sample_alert("a2", "web")],
        };
        let line = record(&message, Facility::Daemon, SyslogFormat::Text, None, 1);
        assert!(line.contains(" count=\"2\" alert_ids=\"a1 a2\"]"), "{line}");
        assert!(line.ends_with("] 2× level 12 Privileged container started: web on host1"));
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(
            split_address("127.0.0.1:1514", 514),
            Ok(("127.0.0.1".into(), 1514))
        );
        assert_eq!(
            split_address("logs.example", 6514),
            Ok(("logs.example".into(), 6514))
        );
        assert_eq!(split_address("[::1]:5514", 514), Ok(("::1".into(), 5514)));
        assert_eq!(split_address("[::1]", 514), Ok(("::1".into(), 514)));
        assert!(split_address("::1", 514).is_err());
        assert!(split_address("host:99999", 514).is_err());
        assert!(split_address(":514", 514).is_err());
    }

    #[test]
    fn long_records_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("aé", 2), "a");
    }

    #[test]
    fn settings_default_to_udp_daemon_text() {
        let settings: SyslogSettings = toml::from_str("address = \"127.0.0.1:514\"").unwrap();
        assert_eq!(settings.transport, SyslogTransport::Udp);
        assert_eq!(settings.facility, Facility::Daemon);
        assert_eq!(settings.format, SyslogFormat::Text);
        let output = SyslogOutput::new(&settings).unwrap();
        assert_eq!(output.max_message_bytes, 2048);
        assert!(
            toml::from_str::<SyslogSettings>("address = \"x\"\nfacility = \"local9\"").is_err()
        );
    }
}
