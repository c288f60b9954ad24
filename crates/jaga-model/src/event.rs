//! Docker Engine events as jaga keeps them, and the alerts rules raise.
//!
//! Only the Engine's `Type`, `Action`, `Actor` and time fields are relied
//! on: API 1.22 and later dropped nothing of those, while the legacy
//! `status`/`id`/`from` fields are gone from newer versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One event from `GET /events`, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerEvent {
    /// `timeNano`: nanoseconds since the epoch.
    pub time_nano: i64,
    /// `container`, `image`, `volume`, `network`, `daemon`, `plugin`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The action without its argument: `exec_start`, not `exec_start: sh`.
    pub action: String,
    /// What followed `: ` in the Engine's action (`exec_start: sh -c id`,
    /// `health_status: healthy`), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_detail: Option<String>,
    /// `Actor.ID`: a container or image id, a volume or network name, ...
    pub actor_id: String,
    /// `Actor.Attributes`: for containers their name, image and labels,
    /// `exitCode` on `die`, `signal` on `kill`.
    pub attributes: BTreeMap<String, String>,
    /// `local` or `swarm`.
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub scope: String,
}

impl DockerEvent {
    /// What makes an event itself: replays and reconnections deliver the
    /// same event again with the same identity, and it is kept once.
    pub fn identity(&self) -> String {
        let detail = self.action_detail.as_deref().unwrap_or("");
        format!(
            "{}/{}/{}/{}/{}",
            self.time_nano, self.kind, self.action, detail, self.actor_id
        )
    }

    pub fn time_unix_ms(&self) -> i64 {
        self.time_nano.div_euclid(1_000_000)
    }
}

/// The container an event is about, as far as jaga knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose_project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose_service: Option<String>,
    /// How the container was started, read by inspecting it on `start`;
    /// `None` when it was gone before it could be inspected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<ContainerRuntimeConfig>,
}

impl EventContainer {
    /// What an alert says of a container the inventory knows.
    pub fn of(container: &crate::ContainerRef) -> Self {
        Self {
            id: container.id.to_string(),
            name: container.name.clone(),
            image: container.image.clone(),
            compose_project: container.labels.get("com.docker.compose.project").cloned(),
            compose_service: container.labels.get("com.docker.compose.service").cloned(),
            labels: container.labels.clone(),
            runtime: None,
        }
    }
}

/// The parts of a container's configuration the event rules judge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRuntimeConfig {
    pub privileged: bool,
    pub pid_mode: String,
    pub network_mode: String,
    pub ipc_mode: String,
    pub cap_add: Vec<String>,
    /// Host paths mounted into the container (binds and mounts).
    pub host_mounts: Vec<String>,
    pub user: String,
}

/// An event with what jaga added to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub docker: DockerEvent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<EventContainer>,
    /// For `exec_create`/`exec_start`: the command run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_command: Option<String>,
}

/// A rule as an alert carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: String,
    /// 0 (ignore) to 15 (most severe), as in Wazuh.
    pub level: u8,
    pub description: String,
    pub groups: Vec<String>,
    /// MITRE ATT&CK technique ids, e.g. `T1611`.
    pub mitre: Vec<String>,
}

/// The agent that raised an alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAgent {
    pub id: String,
    pub name: String,
}

/// An alert, in the shape written to `alerts.json` and served by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable for the same event and rule, so a replay cannot add it twice.
    pub id: String,
    /// RFC 3339 with milliseconds, UTC.
    pub timestamp: String,
    pub rule: AlertRule,
    pub agent: AlertAgent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<EventContainer>,
    /// The fields the rule looked at: action, command, exit code, ...
    pub data: BTreeMap<String, String>,
    /// Where the alert came from: `docker-events`, a log path, `audit`.
    pub location: String,
    /// The event as received, for events alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<DockerEvent>,
    /// For a condition that holds for a while (metric rules): the episode
    /// this alert opens (`firing`) or closes (`resolved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub episode: Option<AlertEpisode>,
}

/// One episode of a condition: from the alert that fires to the one that
/// resolves it. Both carry the same `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEpisode {
    /// Stable for the rule and the subject (container or host) of this
    /// episode: receivers such as Alertmanager group on it.
    pub key: String,
    pub status: EpisodeStatus,
    /// RFC 3339, when the condition started to hold for its `for` duration.
    pub started_at: String,
    /// RFC 3339, when it stopped holding; only on `resolved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpisodeStatus {
    Firing,
    Resolved,
}
