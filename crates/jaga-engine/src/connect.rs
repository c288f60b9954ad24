//! Where the Engine is and how to reach it: the docker CLI's rules
//! (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) over jaga's config.

use jaga_redact::Redaction;
use std::error::Error as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::{Docker, API_DEFAULT_VERSION};
use jaga_config::EngineConfig;

use crate::EngineError;

/// Resolved connection settings, environment applied over the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub host: String,
    pub tls_verify: bool,
    pub cert_path: PathBuf,
    pub timeout: Duration,
}

/// The transport a host string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp { address: String, tls: bool },
}

impl ConnectionSettings {
    /// The environment wins over the file, as it does for the docker CLI.
    pub fn resolve(config: &EngineConfig, env: impl Fn(&str) -> Option<String>) -> Self {
        let env = |key: &str| env(key).filter(|v| !v.is_empty());
        let host = env("DOCKER_HOST").unwrap_or_else(|| config.host.clone());
        let tls_verify = match env("DOCKER_TLS_VERIFY") {
            Some(value) => value != "0" && !value.eq_ignore_ascii_case("false"),
            None => config.tls_verify,
        };
        let cert_path = env("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| config.cert_path.clone())
            .unwrap_or_else(|| {
                env("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/root"))
                    .join(".docker")
            });
        Self {
            host,
            tls_verify,
            cert_path,
            timeout: config.timeout,
        }
    }

    pub fn endpoint(&self) -> Result<Endpoint, EngineError> {
        let host = self.host.trim();
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(address) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            return Ok(Endpoint::Tcp {
                address: address.trim_end_matches('/').to_owned(),
                tls: self.tls_verify,
            });
        }
        if let Some(address) = host.strip_prefix("https://") {
            return Ok(Endpoint::Tcp {
                address: address.trim_end_matches('/').to_owned(),
                tls: true,
            });
        }
        Err(EngineError::UnsupportedHost {
            endpoint: host.to_owned(),
        })
    }
}

/// A connected Engine client, its API version negotiated.
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) docker: Docker,
    pub(crate) endpoint: String,
    /// How long a request may take (`[engine] timeout`), for errors.
    pub(crate) timeout: Duration,
    /// Applied to labels, event attributes and exec commands as they come
    /// in; [`Engine::client`] stays raw (the audit needs raw values).
    pub(crate) redaction: Redaction,
}

impl Engine {
    /// Connects and asks the daemon for its version, so that a wrong socket,
    /// a stopped daemon or missing permissions show up here, in one line.
    pub async fn connect(settings: &ConnectionSettings) -> Result<Self, EngineError> {
        let endpoint = settings.endpoint()?;
        let timeout_secs = settings.timeout.as_secs().max(1);
        let (docker, shown) = match &endpoint {
            Endpoint::Unix(path) => {
                let shown = format!("unix://{}", path.display());
                check_socket(path, &shown)?;
                let docker = Docker::connect_with_unix(
                    &path.to_string_lossy(),
                    timeout_secs,
                    API_DEFAULT_VERSION,
                )
                .map_err(|e| unreachable(&shown, &e))?;
                (docker, shown)
            }
            Endpoint::Tcp {
                address,
                tls: false,
            } => {
                let shown = format!("tcp://{address}");
                let docker = Docker::connect_with_http(&shown, timeout_secs, API_DEFAULT_VERSION)
                    .map_err(|e| unreachable(&shown, &e))?;
                (docker, shown)
            }
            Endpoint::Tcp { address, tls: true } => {
                let shown = format!("tcp://{address} (TLS)");
                let dir = &settings.cert_path;
                let tls_error = |reason: String| EngineError::Tls {
                    endpoint: shown.clone(),
                    cert_path: dir.display().to_string(),
                    reason,
                };
                for file in ["ca.pem", "cert.pem", "key.pem"] {
                    if !dir.join(file).is_file() {
                        return Err(tls_error(format!(
                            "'{file}' is missing; set DOCKER_CERT_PATH or [engine] cert_path"
                        )));
                    }
                }
                let docker = Docker::connect_with_ssl(
                    &format!("https://{address}"),
                    &dir.join("key.pem"),
                    &dir.join("cert.pem"),
                    &dir.join("ca.pem"),
                    timeout_secs,
                    API_DEFAULT_VERSION,
                )
                .map_err(|e| tls_error(e.to_string()))?;
                (docker, shown)
            }
        };
        let docker = docker.with_timeout(settings.timeout);
        let negotiated = tokio::time::timeout(settings.timeout, docker.negotiate_version())
            .await
            .map_err(|_| EngineError::Timeout {
                endpoint: shown.clone(),
                timeout: settings.timeout,
            })?
            .map_err(|e| classify_connect_error(&shown, settings.timeout, &e))?;
        tracing::debug!(endpoint = %shown, api_version = %negotiated.client_version(), "connected to the Docker engine");
        Ok(Self {
            docker: negotiated,
            endpoint: shown,
            timeout: settings.timeout,
            redaction: Redaction::default(),
        })
    }

    /// How secrets in what the Engine reports are treated (redacted by default).
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = redaction;
        self
    }

    pub fn redaction(&self) -> Redaction {
        self.redaction
    }

    /// The endpoint as shown in messages: `unix:///var/run/docker.sock`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying bollard client, for parts that stream (events, logs).
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The daemon's version string, e.g. `20.10.24+dfsg1`.
    pub async fn server_version(&self) -> Result<String, EngineError> {
        let version = self
            .docker
            .version()
            .await
            .map_err(|e| self.api_error("version", e))?;
        Ok(version.version.unwrap_or_default())
    }

    pub(crate) fn api_error(&self, what: &str, source: bollard::errors::Error) -> EngineError {
        let classified = classify_connect_error(&self.endpoint, self.timeout, &source);
        match classified {
            EngineError::Api { .. } => EngineError::Api {
                what: what.to_owned(),
                source,
            },
            other => other,
        }
    }
}

/// A socket that is missing or unreadable is named before any request is tried.
fn check_socket(path: &Path, shown: &str) -> Result<(), EngineError> {
    match std::fs::metadata(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(EngineError::Unreachable {
            endpoint: shown.to_owned(),
            reason: "no such socket file".to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(EngineError::PermissionDenied {
                endpoint: shown.to_owned(),
            })
        }
        Err(e) => Err(EngineError::Unreachable {
            endpoint: shown.to_owned(),
            reason: e.to_string(),
        }),
    }
}

fn unreachable(shown: &str, error: &bollard::errors::Error) -> EngineError {
    EngineError::Unreachable {
        endpoint: shown.to_owned(),
        reason: error.to_string(),
    }
}

/// Turns transport failures into the messages people can act on; anything
/// else stays an API error. `timeout` is the one the request had.
fn classify_connect_error(
    shown: &str,
    timeout: Duration,
    error: &bollard::errors::Error,
) -> EngineError {
    use bollard::errors::Error as B;
    match error {
        B::RequestTimeoutError => {
            return EngineError::Timeout {
                endpoint: shown.to_owned(),
                timeout,
            }
        }
        B::SocketNotFoundError(_) => {
            return EngineError::Unreachable {
                endpoint: shown.to_owned(),
                reason: "no such socket file".to_owned(),
            }
        }
        _ => {}
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(current) = cause {
        if let Some(io_error) = current.downcast_ref::<io::Error>() {
            return match io_error.kind() {
                io::ErrorKind::PermissionDenied => EngineError::PermissionDenied {
                    endpoint: shown.to_owned(),
                },
                _ => EngineError::Unreachable {
                    endpoint: shown.to_owned(),
                    reason: io_error.to_string(),
                },
            };
        }
        cause = current.source();
    }
    let text = error.to_string();
    if text.contains("client error (Connect)") || text.contains("Connection refused") {
        return EngineError::Unreachable {
            endpoint: shown.to_owned(),
            reason: "connection refused".to_owned(),
        };
    }
    EngineError::Api {
        what: "connect".to_owned(),
        source: clone_error(error),
    }
}

/// bollard's error is not `Clone`; keep its text when it must be re-wrapped.
fn clone_error(error: &bollard::errors::Error) -> bollard::errors::Error {
    bollard::errors::Error::DockerStreamError {
        error: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(host: &str, env: &[(&str, &str)]) -> ConnectionSettings {
        let config = EngineConfig {
            host: host.to_owned(),
            ..EngineConfig::default()
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ConnectionSettings::resolve(&config, |key| {
            env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn default_is_the_unix_socket() {
        let s = settings("unix:///var/run/docker.sock", &[("HOME", "/home/ana")]);
        assert_eq!(
            s.endpoint().unwrap(),
            Endpoint::Unix(PathBuf::from("/var/run/docker.sock"))
        );
        assert_eq!(s.cert_path, PathBuf::from("/home/ana/.docker"));
        assert!(!s.tls_verify);
    }

    #[test]
    fn docker_host_overrides_config() {
        let s = settings(
            "unix:///var/run/docker.sock",
            &[("DOCKER_HOST", "tcp://127.0.0.1:2375")],
        );
        assert_eq!(
            s.endpoint().unwrap(),
            Endpoint::Tcp {
                address: "127.0.0.1:2375".to_owned(),
                tls: false
            }
        );
    }

    #[test]
    fn tls_from_environment() {
        let s = settings(
            "unix:///x",
            &[
                ("DOCKER_HOST", "tcp://docker.example:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", "/certs"),
            ],
        );
        assert_eq!(
            s.endpoint().unwrap(),
            Endpoint::Tcp {
                address: "docker.example:2376".to_owned(),
                tls: true
            }
        );
        assert_eq!(s.cert_path, PathBuf::from("/certs"));
    }

    #[test]
    fn tls_verify_zero_means_off_and_empty_is_unset() {
        let s = settings("tcp://h:2376", &[("DOCKER_TLS_VERIFY", "0")]);
        assert!(!s.tls_verify);
        let s = settings(
            "tcp://h:2376",
            &[("DOCKER_TLS_VERIFY", ""), ("DOCKER_HOST", "")],
        );
        assert!(!s.tls_verify);
        assert_eq!(s.host, "tcp://h:2376");
    }

    #[test]
    fn unsupported_scheme_is_named() {
        let err = settings("ssh://me@host", &[]).endpoint().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported Docker host 'ssh://me@host': use unix://PATH, tcp://HOST:PORT or https://HOST:PORT"
        );
    }

    #[tokio::test]
    async fn missing_socket_is_one_clear_line() {
        let s = settings("unix:///nonexistent/docker.sock", &[]);
        let err = Engine::connect(&s).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot connect to the Docker engine at unix:///nonexistent/docker.sock: no such socket file; is dockerd running? start it, or point DOCKER_HOST (or [engine] host) at the right socket"
        );
    }

    /// A daemon that answers the version negotiation, then nothing.
    fn daemon_that_stops_answering(socket: &Path) {
        use std::io::{Read as _, Write as _};
        let listener = std::os::unix::net::UnixListener::bind(socket).unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut answered = false;
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                if !answered {
                    let mut request = Vec::new();
                    let mut byte = [0u8; 1];
                    while !request.ends_with(b"\r\n\r\n")
                        && stream.read(&mut byte).unwrap_or(0) == 1
                    {
                        request.push(byte[0]);
                    }
                    let body = r#"{"Version":"24.0.0","ApiVersion":"1.43","MinAPIVersion":"1.12"}"#;
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    answered = true;
                    continue;
                }
                held.push(stream);
            }
        });
    }

    #[tokio::test]
    async fn a_request_that_times_out_says_the_timeout_it_had_not_0_s() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        daemon_that_stops_answering(&socket);
        let config = EngineConfig {
            host: format!("unix://{}", socket.display()),
            timeout: Duration::from_secs(1),
            ..EngineConfig::default()
        };
        let engine = Engine::connect(&ConnectionSettings::resolve(&config, |_| None))
            .await
            .unwrap();
        let err = engine.server_version().await.unwrap_err();
        assert!(matches!(err, EngineError::Timeout { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "the Docker engine at unix://{} did not answer within 1s ([engine] timeout)",
                socket.display()
            )
        );
    }

    #[tokio::test]
    async fn refused_tcp_port_is_unreachable() {
        // Bind then drop a listener so the port is known to be closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = settings(&format!("tcp://127.0.0.1:{port}"), &[]);
        let err = Engine::connect(&s).await.unwrap_err();
        assert!(matches!(err, EngineError::Unreachable { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn tls_without_certificates_names_the_directory() {
        let s = settings(
            "tcp://127.0.0.1:2376",
            &[
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", "/nonexistent-certs"),
            ],
        );
        let err = Engine::connect(&s).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot set up TLS to the Docker engine at tcp://127.0.0.1:2376 (TLS) with certificates from '/nonexistent-certs': 'ca.pem' is missing; set DOCKER_CERT_PATH or [engine] cert_path"
        );
    }
}
