//! Plain types every part of jaga shares. No I/O happens here.

pub mod container;
pub mod event;
pub mod finding;
pub mod history;
pub mod metric_state;
pub mod sample;
pub mod setup;
pub mod snapshot;
pub mod text;

pub use container::{
    cadvisor_label_name, ContainerId, ContainerRef, ContainerState, DANGEROUS_CAPABILITIES,
};
pub use event::{
    Alert, AlertAgent, AlertEpisode, AlertRule, ContainerRuntimeConfig, DockerEvent, EpisodeStatus,
    Event, EventContainer,
};
pub use finding::{Finding, FindingObject, Practice, Severity, Threat};
pub use history::{HistoryPoint, RollupPoint, FS_SERIES_START, HISTORY_SERIES, SERIES_COUNT};
pub use metric_state::{MetricRuleState, MetricStateChange, MetricStatus};
pub use sample::{
    BlockDeviceIo, CgroupVersion, CpuStats, HostCounters, InterfaceStats, MemoryStats,
    NetworkStats, PidsStats, Sample,
};
pub use setup::{ContainerSetup, HealthView, Limits, MountView, NetworkView, PortBinding};
pub use snapshot::{
    AgentStats, BackfillStats, ContainerProcess, ContainerSnapshot, DataRootUsage, FsUsage,
    ListenerStats, LogStats, MachineInfo, OutputStats, ProcessStats, Snapshot, TaskHealth,
    VolumeUsage,
};
pub use text::{escape_control, escape_control_json, glob_matches};
