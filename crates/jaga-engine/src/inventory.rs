//! The containers the Engine knows: listing and inspection, turned into
//! jaga's plain [`ContainerRef`].

use std::collections::{BTreeMap, HashMap};

use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use jaga_model::{ContainerId, ContainerRef, ContainerState};
use jaga_redact::Redaction;

use crate::{Engine, EngineError};

/// One row of `GET /containers/json`: enough to choose what to sample. It has
/// no init PID; [`Engine::inspect`] gives that.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerListing {
    pub id: ContainerId,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub network_mode: String,
    pub labels: BTreeMap<String, String>,
    pub created: i64,
}

impl Engine {
    /// Containers in the Engine's order (newest first); stopped ones too when `all`.
    pub async fn list_containers(&self, all: bool) -> Result<Vec<ContainerListing>, EngineError> {
        let options = ListContainersOptionsBuilder::default().all(all).build();
        let summaries = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.api_error("list containers", e))?;
        Ok(summaries
            .into_iter()
            .filter_map(|summary| listing_from_summary(summary, self.redaction))
            .collect())
    }

    /// One container by name, full id or unique id prefix, as `docker inspect` resolves it.
    pub async fn inspect(&self, name_or_id: &str) -> Result<ContainerRef, EngineError> {
        let response = self
            .docker
            .inspect_container(name_or_id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.inspect_error(name_or_id, e))?;
        container_from_inspect(response, self.redaction)
            .ok_or_else(|| EngineError::NoSuchContainer(name_or_id.to_owned()))
    }
}

fn listing_from_summary(
    summary: ContainerSummary,
    redaction: Redaction,
) -> Option<ContainerListing> {
    let id = summary.id?;
    let name = summary
        .names
        .as_ref()
        .and_then(|names| names.first())
        .map(|n| n.trim_start_matches('/').to_owned())
        .unwrap_or_default();
    Some(ContainerListing {
        id: ContainerId(id),
        name,
        image: summary.image.unwrap_or_default(),
        state: summary
            .state
            .map(|s| ContainerState::parse(s.as_ref()))
            .unwrap_or(ContainerState::Unknown),
        network_mode: summary
            .host_config
            .and_then(|h| h.network_mode)
            .unwrap_or_default(),
        labels: into_sorted(summary.labels, redaction),
        created: summary.created.unwrap_or_default(),
    })
}

pub(crate) fn container_from_inspect(
    response: ContainerInspectResponse,
    redaction: Redaction,
) -> Option<ContainerRef> {
    let id = response.id?;
    let state = response.state.unwrap_or_default();
    let status = state
        .status
        .map(|s| ContainerState::parse(s.as_ref()))
        .unwrap_or(ContainerState::Unknown);
    let pid = state
        .pid
        .filter(|pid| *pid > 0)
        .and_then(|pid| u32::try_from(pid).ok());
    let health = state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty() && s != "none");
    let exit_code = (!status.has_processes())
        .then_some(state.exit_code)
        .flatten();
    let host_config = response.host_config.unwrap_or_default();
    let restart_policy = host_config
        .restart_policy
        .as_ref()
        .and_then(|p| p.name)
        .map(|n| n.to_string())
        .map(|n| if n.is_empty() { "no".to_owned() } else { n });
    let config = response.config.unwrap_or_default();
    let started_at = state
        .started_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .filter(|t| *t > 0);
    Some(ContainerRef {
        id: ContainerId(id),
        name: response
            .name
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or_default(),
        image: config.image.unwrap_or_default(),
        labels: into_sorted(config.labels, redaction),
        state: status,
        pid,
        network_mode: host_config.network_mode.unwrap_or_default(),
        created: response.created.map(|c| c.timestamp()).unwrap_or_default(),
        started_at,
        restart_policy,
        health,
        exit_code,
    })
}

/// Labels sorted, with secret values redacted as they enter jaga.
fn into_sorted(
    labels: Option<HashMap<String, String>>,
    redaction: Redaction,
) -> BTreeMap<String, String> {
    let mut sorted: BTreeMap<String, String> = labels.unwrap_or_default().into_iter().collect();
    redaction.map(&mut sorted);
    sorted
}
