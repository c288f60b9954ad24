//! How a container was set up, as `docker inspect` tells it: what its page
//! on the dashboard shows beside the figures (cAdvisor's page and more).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSetup {
    /// The process the container runs: entrypoint and arguments, secrets
    /// redacted as in an exec's command.
    pub command: String,
    pub working_dir: String,
    /// Empty: the image's user (root unless the image says otherwise).
    pub user: String,
    pub ports: Vec<PortBinding>,
    pub mounts: Vec<MountView>,
    pub networks: Vec<NetworkView>,
    /// `no`, `always`, `unless-stopped`, `on-failure:3`.
    pub restart_policy: String,
    /// How often the daemon restarted it under that policy.
    pub restart_count: i64,
    pub health: Option<HealthView>,
    pub limits: Limits,
    pub privileged: bool,
    pub read_only_root: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
}

/// A container port and where the host publishes it (none: not published).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// `80/tcp`.
    pub container_port: String,
    pub host_ip: Option<String>,
    pub host_port: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountView {
    /// `volume`, `bind`, `tmpfs`, ...
    pub kind: String,
    /// The volume's name, or the host path of a bind mount.
    pub source: String,
    pub destination: String,
    pub read_write: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkView {
    pub name: String,
    pub ip_address: String,
    pub gateway: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    /// `starting`, `healthy`, `unhealthy`.
    pub status: String,
    pub failing_streak: i64,
    /// The last probe's output, redacted, at most a few hundred characters.
    pub last_output: Option<String>,
}

/// Resource limits; `None`: unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<i64>,
    /// CPUs, in billionths (`--cpus 0.5` is 500000000).
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub pids: Option<i64>,
}
