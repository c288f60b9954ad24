//! jaga's Docker Engine client, on bollard: where the Engine is, how to reach
//! it, and the inventory of containers. No cgroup parsing here.

mod connect;
mod details;
mod error;
mod events;
mod inventory;
mod runtime;
mod setup;

pub use connect::{ConnectionSettings, Endpoint, Engine};
pub use details::{ContainerChange, ContainerDetails, DaemonInfo, MountPoint};
pub use error::EngineError;
pub use events::{engine_time, normalize, redact, EventQuery};
pub use inventory::ContainerListing;
pub use jaga_redact::Redaction;
pub use runtime::runtime_init_pid;
