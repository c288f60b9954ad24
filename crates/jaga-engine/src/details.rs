//! What `jaga serve` needs beyond a [`ContainerRef`]: where a container keeps
//! its files (for disk usage), the daemon's own facts, and the stream of
//! container changes that keeps the inventory fresh.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard::models::{EventMessageTypeEnum, SystemInfoCgroupVersionEnum};
use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use futures_util::{Stream, StreamExt};
use jaga_model::{ContainerId, ContainerRef};

use crate::inventory::container_from_inspect;
use crate::{Engine, EngineError};

/// A container and the host paths of its files.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerDetails {
    pub container: ContainerRef,
    /// The writable layer (overlay2's `UpperDir`); `None` for other storage drivers.
    pub upper_dir: Option<PathBuf>,
    /// The json-file log; `None` with other log drivers.
    pub log_path: Option<PathBuf>,
    pub mounts: Vec<MountPoint>,
}

/// A volume or bind mount of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    /// `volume`, `bind`, `tmpfs`, ...
    pub kind: String,
    /// The volume's name; the source path for a bind mount.
    pub name: String,
    /// Where the data lives on the host.
    pub source: PathBuf,
    /// Where it appears in the container.
    pub destination: String,
}

/// The daemon's view of the host (`GET /info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonInfo {
    pub name: String,
    pub server_version: String,
    pub operating_system: String,
    pub kernel_version: String,
    pub docker_root_dir: PathBuf,
    pub storage_driver: String,
    /// 1 or 2; 0 when the daemon does not say.
    pub cgroup_version: u8,
    pub cpus: u32,
    pub memory_bytes: u64,
}

/// A container event, reduced to what the inventory acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerChange {
    pub id: ContainerId,
    /// The Engine's action: `start`, `die`, `destroy`, `pause`, `rename`, ...
    pub action: String,
}

impl Engine {
    /// [`Engine::inspect`] plus the container's storage and log paths.
    pub async fn inspect_details(&self, name_or_id: &str) -> Result<ContainerDetails, EngineError> {
        let response = self
            .docker
            .inspect_container(name_or_id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.inspect_error(name_or_id, e))?;
        let upper_dir = response
            .graph_driver
            .as_ref()
            .and_then(|driver| driver.data.get("UpperDir"))
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        let log_path = response
            .log_path
            .as_deref()
            .filter(|path| !path.is_empty())
            .map(PathBuf::from);
        let mounts = response
            .mounts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let source = m.source.filter(|s| !s.is_empty())?;
                Some(MountPoint {
                    kind: m.typ.map(|t| t.to_string()).unwrap_or_default(),
                    name: m.name.unwrap_or_else(|| source.clone()),
                    source: PathBuf::from(source),
                    destination: m.destination.unwrap_or_default(),
                })
            })
            .collect();
        let container = container_from_inspect(response, self.redaction)
            .ok_or_else(|| EngineError::NoSuchContainer(name_or_id.to_owned()))?;
        Ok(ContainerDetails {
            container,
            upper_dir,
            log_path,
            mounts,
        })
    }

    /// The daemon's version, OS, data root and host size.
    pub async fn daemon_info(&self) -> Result<DaemonInfo, EngineError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| self.api_error("info", e))?;
        Ok(DaemonInfo {
            name: info.name.unwrap_or_default(),
            server_version: info.server_version.unwrap_or_default(),
            operating_system: info.operating_system.unwrap_or_default(),
            kernel_version: info.kernel_version.unwrap_or_default(),
            docker_root_dir: PathBuf::from(
                info.docker_root_dir
                    .unwrap_or_else(|| "/var/lib/docker".to_owned()),
            ),
            storage_driver: info.driver.unwrap_or_default(),
            cgroup_version: match info.cgroup_version {
                Some(SystemInfoCgroupVersionEnum::_1) => 1,
                Some(SystemInfoCgroupVersionEnum::_2) => 2,
                _ => 0,
            },
            cpus: info
                .ncpu
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or_default(),
            memory_bytes: info
                .mem_total
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or_default(),
        })
    }

    /// Container events from now on. The stream ends (or yields an error)
    /// when the daemon goes away; the caller reconnects.
    pub fn container_changes(
        &self,
    ) -> impl Stream<Item = Result<ContainerChange, EngineError>> + '_ {
        let filters = HashMap::from([("type".to_owned(), vec!["container".to_owned()])]);
        let options = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        self.docker
            .events(Some(options))
            .filter_map(move |message| async move {
                match message {
                    Ok(event) => {
                        if event.typ != Some(EventMessageTypeEnum::CONTAINER) {
                            return None;
                        }
                        let id = event.actor.and_then(|actor| actor.id)?;
                        Some(Ok(ContainerChange {
                            id: ContainerId(id),
                            action: event.action.unwrap_or_default(),
                        }))
                    }
                    Err(e) => Some(Err(self.api_error("follow events", e))),
                }
            })
    }

    pub(crate) fn inspect_error(
        &self,
        name_or_id: &str,
        error: bollard::errors::Error,
    ) -> EngineError {
        match error {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => EngineError::NoSuchContainer(name_or_id.to_owned()),
            other => self.api_error(&format!("inspect container '{name_or_id}'"), other),
        }
    }
}
