//! Findings of the posture audit.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "info" => Some(Self::Info),
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            "critical" => Some(Self::Critical),
            _ => None,
        }
    }

    /// The alert level a new finding of this severity raises.
    pub fn alert_level(self) -> u8 {
        match self {
            Self::Info => 2,
            Self::Low => 4,
            Self::Medium => 7,
            Self::High => 10,
            Self::Critical => 12,
        }
    }
}

/// What a weakness lets an attacker do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Threat {
    /// From the container to the host.
    ContainerEscape,
    /// From the container to its neighbours (resources, namespaces, network).
    ContainerBreakout,
    /// Untrusted or tampered images.
    ImagePoisoning,
    /// Forgotten containers, images, volumes and networks.
    ContainerSprawl,
    /// Taking over the daemon or a container from outside.
    ContainerHijacking,
}

impl Threat {
    pub const ALL: [Threat; 5] = [
        Self::ContainerEscape,
        Self::ContainerBreakout,
        Self::ImagePoisoning,
        Self::ContainerSprawl,
        Self::ContainerHijacking,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContainerEscape => "container_escape",
            Self::ContainerBreakout => "container_breakout",
            Self::ImagePoisoning => "image_poisoning",
            Self::ContainerSprawl => "container_sprawl",
            Self::ContainerHijacking => "container_hijacking",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::ContainerEscape => "Container escape",
            Self::ContainerBreakout => "Container breakout",
            Self::ImagePoisoning => "Image poisoning",
            Self::ContainerSprawl => "Container sprawl",
            Self::ContainerHijacking => "Container hijacking",
        }
    }
}

/// The practice a check belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Practice {
    AccessControl,
    NetworkConfiguration,
    DataAndConfigurationManagement,
    KeepingDockerUpToDate,
}

impl Practice {
    pub fn title(self) -> &'static str {
        match self {
            Self::AccessControl => "access control",
            Self::NetworkConfiguration => "network configuration",
            Self::DataAndConfigurationManagement => "data and configuration management",
            Self::KeepingDockerUpToDate => "keeping Docker up to date",
        }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FindingObject {
    /// `container`, `image`, `volume`, `network`, `daemon`, `host`.
    pub kind: String,
    /// Container or image id, volume or network name, `dockerd`.
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// CIS Docker Benchmark id (`5.4`) where one exists, else `jaga-…`.
    pub check_id: String,
    pub title: String,
    pub severity: Severity,
    pub threat: Threat,
    pub practice: Practice,
    pub object: FindingObject,
    /// What was seen. Secret values never appear here: they are redacted.
    pub evidence: String,
    /// What to do, in a sentence or two.
    pub remediation: String,
}

impl Finding {
    /// The same weakness on the same object: how continuous mode tells a
    /// new finding from one it already reported.
    pub fn identity(&self) -> String {
        format!("{}/{}/{}", self.check_id, self.object.kind, self.object.id)
    }
}
