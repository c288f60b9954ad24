//! Asking the running `jaga serve` on this host through its API: `jaga top`
//! and `jaga stats --no-stream` answer from what the agent already tracks.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    /// The agent's address (default: from [serve] listen and tls)
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// File holding an API token, when the agent requires one ([serve.auth])
    #[arg(long, value_name = "FILE", env = "JAGA_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

/// What went wrong asking the agent.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Nothing answers at the address: no agent runs there.
    #[error("cannot reach the agent at {url} (is `jaga serve` running?): {source}")]
    Unreachable { url: String, source: reqwest::Error },
    /// The agent answered with an error status.
    #[error("the agent at {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: reqwest::StatusCode,
        message: String,
    },
    #[error("cannot read the agent's answer from {url}: {reason}")]
    Unreadable { url: String, reason: String },
}

pub struct AgentClient {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: String,
}

impl AgentClient {
    pub fn new(
        args: &AgentArgs,
        config: &jaga_config::Config,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let base = args.url.clone().unwrap_or_else(|| {
            let scheme = if config.serve.tls.cert_file.as_os_str().is_empty() {
                "http"
            } else {
                "https"
            };
            format!(
                "{scheme}://{}",
                loopback_if_unspecified(config.serve.listen)
            )
        });
        let token = match &args.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the token file '{}'", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            client,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// GET `path` (from `/api/...`) and decode the JSON answer.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, AskError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|source| AskError::Unreachable {
                url: url.clone(),
                source,
            })?;
        let status = response.status();
        let body = response.text().await.map_err(|e| AskError::Unreadable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
        if !status.is_success() {
            let message = serde_json::from_str::<ErrorAnswer>(&body)
                .map(|e| e.error.message)
                .unwrap_or(body);
            return Err(AskError::Refused {
                url,
                status,
                message: jaga_model::escape_control(&message).into_owned(),
            });
        }
        serde_json::from_str(&body).map_err(|e| AskError::Unreadable {
            url,
            reason: e.to_string(),
        })
    }
}

/// An unspecified listen address (0.0.0.0, ::) is reached on loopback.
pub fn loopback_if_unspecified(listen: std::net::SocketAddr) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port())
}

/// A path segment as the API expects it: names and ids pass, anything
/// else is escaped.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
