//! What the checks look at: Engine API answers and a few host facts.

use std::collections::BTreeMap;
use std::sync::Arc;

use bollard::models::{
    ContainerInspectResponse, ImageHistoryResponseItem, ImageInspect, SystemInfo, SystemVersion,
};

use crate::distro::{ComponentProvenance, Provenance};
use crate::versions::CveTable;

#[derive(Debug, Clone, Default)]
pub struct AuditInput {
    pub containers: Vec<ContainerInspectResponse>,
    pub images: Vec<ImageFacts>,
    pub unused_volumes: Vec<UnusedVolume>,
    pub unused_networks: Vec<UnusedNetwork>,
    pub daemon: DaemonFacts,
    /// Unix seconds, for image age.
    pub now_unix: i64,
    /// The CVE data to judge versions by; `None`: the shipped table.
    pub cves: Option<Arc<CveTable>>,
    /// The processes running in each container (container id → each
    /// process's name and executable), from jaga's process table; `None`
    /// when they could not be read (the checks on them do not run).
    pub processes: Option<BTreeMap<String, Vec<ProcessFacts>>>,
}

/// A process inside a container, for the checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFacts {
    pub pid: u32,
    /// The kernel's name for it (`comm`).
    pub name: String,
    pub exe: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct ImageFacts {
    pub inspect: ImageInspect,
    pub history: Vec<ImageHistoryResponseItem>,
    /// Untagged and used by no container.
    pub dangling: bool,
    /// How running (or created) containers name it: `nginx:1.25`, `nginx@sha256:…`.
    pub referenced_as: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedVolume {
    pub name: String,
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusedNetwork {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Default)]
pub struct DaemonFacts {
    pub info: Option<SystemInfo>,
    pub version: Option<SystemVersion>,
    /// `/etc/docker/daemon.json`, parsed; `None` when absent.
    pub daemon_json: Option<serde_json::Value>,
    pub daemon_json_path: String,
    /// dockerd's command line, from /proc.
    pub dockerd_args: Vec<String>,
    pub socket: Option<SocketFacts>,
    /// Members of the `docker` group (from /etc/group).
    pub docker_group_members: Vec<String>,
    /// The package behind the Engine, containerd and runc binaries, and
    /// its record of fixed CVEs; empty when not looked up.
    pub packages: Vec<ComponentProvenance>,
}

impl DaemonFacts {
    /// What is known of `component`'s package (`engine`, `containerd`, `runc`).
    pub fn provenance_of(&self, component: &str) -> Option<&Provenance> {
        self.packages
            .iter()
            .find(|p| p.component == component)
            .map(|p| &p.provenance)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketFacts {
    pub path: String,
    /// Permission bits, e.g. 0o660.
    pub mode: u32,
    pub owner: String,
    pub group: String,
}
