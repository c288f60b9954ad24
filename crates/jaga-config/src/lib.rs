//! jaga's configuration: typed sections with documented defaults, loaded by a
//! pure function so tests can feed it text and an environment.
//!
//! Every key is documented in `jaga.example.toml` at the repository root.

mod load;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{find_config_file, load_file, parse, ConfigError, DEFAULT_SEARCH_PATH};

/// The whole configuration file. Every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub log: LogConfig,
}

/// How to reach the Docker Engine. Environment variables (`DOCKER_HOST`,
/// `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) override these, as for the docker CLI.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2376`, `https://host:2376`.
    pub host: String,
    /// Use TLS and verify the daemon's certificate against `ca.pem` in `cert_path`.
    pub tls_verify: bool,
    /// Directory holding `ca.pem`, `cert.pem`, `key.pem`; default `~/.docker`.
    pub cert_path: Option<PathBuf>,
    /// Timeout of one request to the Engine.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            host: default_engine_host(),
            tls_verify: false,
            cert_path: None,
            timeout: Duration::from_secs(30),
        }
    }
}

pub fn default_engine_host() -> String {
    "unix:///var/run/docker.sock".to_owned()
}

/// jaga's own log output (to stderr).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `error`, `warn`, `info`, `debug`, `jaga=debug,bollard=warn`.
    /// `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
