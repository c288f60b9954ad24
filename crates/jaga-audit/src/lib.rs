//! The posture audit: checks in the spirit of the CIS Docker Benchmark over
//! facts gathered from the Engine API and the host, each finding filed under
//! the threat it guards against and the practice it belongs to.
//!
//! Checks are pure functions of [`AuditInput`]; gathering the facts (and
//! so any I/O) is the caller's. Nothing here changes the host.

pub mod checks;
pub mod distro;
pub mod explain;
pub mod facts;
pub mod report;
pub mod secrets;
pub mod versions;

pub use checks::{component_versions, run, Selection};
pub use explain::explain;
pub use facts::{
    AuditInput, DaemonFacts, ImageFacts, ProcessFacts, SocketFacts, UnusedNetwork, UnusedVolume,
};
pub use report::{scores, Report};
pub use versions::{decide, CveEntry, CveTable, Decision, Outcome, CVE_DATA};
