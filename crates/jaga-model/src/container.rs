//! Who a container is, as the Engine describes it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A full 64-hex-digit container id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(pub String);

impl ContainerId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character form `docker ps` shows.
    pub fn short(&self) -> &str {
        self.0.get(..12).unwrap_or(&self.0)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The lifecycle state the Engine reports (`State.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Unknown,
}

impl ContainerState {
    pub fn parse(status: &str) -> Self {
        match status {
            "created" => Self::Created,
            "running" => Self::Running,
            "paused" => Self::Paused,
            "restarting" => Self::Restarting,
            "removing" => Self::Removing,
            "exited" => Self::Exited,
            "dead" => Self::Dead,
            _ => Self::Unknown,
        }
    }

    /// Whether the container has processes whose cgroups can be read.
    pub fn has_processes(self) -> bool {
        matches!(self, Self::Running | Self::Paused | Self::Restarting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Restarting => "restarting",
            Self::Removing => "removing",
            Self::Exited => "exited",
            Self::Dead => "dead",
            Self::Unknown => "unknown",
        }
    }
}

/// A container as the inventory knows it: identity plus what collectors need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRef {
    pub id: ContainerId,
    /// Name without the leading `/`.
    pub name: String,
    /// Image as the user named it (`nginx:1.25`), or its id when untagged.
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// Init process id on the host, when the container has processes.
    pub pid: Option<u32>,
    /// `HostConfig.NetworkMode`: `bridge`, `host`, `none`, `container:<id>`, a network name.
    pub network_mode: String,
    /// Unix seconds the container was created.
    pub created: i64,
    /// Unix seconds the container last started, when known.
    pub started_at: Option<i64>,
    /// `HostConfig.RestartPolicy.Name` (`no`, `always`, `unless-stopped`,
    /// `on-failure`), when the container was inspected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// `State.Health.Status` (`starting`, `healthy`, `unhealthy`); `None`
    /// without a health check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// `State.ExitCode` of a container that is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
}

impl ContainerRef {
    /// Containers on the host's network namespace see the host's interfaces;
    /// counting them per container would count the host's traffic again.
    pub fn uses_host_network(&self) -> bool {
        self.network_mode == "host"
    }

    /// Whether Docker is meant to keep it running: its restart policy is
    /// `always` or `unless-stopped`, or `on-failure` and it failed.
    pub fn should_run(&self) -> bool {
        match self.restart_policy.as_deref() {
            Some("always" | "unless-stopped") => true,
            Some("on-failure") => self.exit_code != Some(0),
            _ => false,
        }
    }
}

/// A Docker label key as cAdvisor names it in a metric label (after
/// `container_label_`), its `sanitizeLabelName`: every character outside
/// `[a-zA-Z0-9_]` becomes `_`.
pub fn cadvisor_label_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Capabilities whose addition opens a way from a container to the host;
/// the event rules and the audit both judge `--cap-add` by this list.
pub const DANGEROUS_CAPABILITIES: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "SYS_RAWIO",
    "DAC_READ_SEARCH",
    "DAC_OVERRIDE",
    "NET_ADMIN",
    "BPF",
    "PERFMON",
    "SYS_BOOT",
    "MAC_ADMIN",
    "SYSLOG",
    "SYS_TIME",
];
