//! The posture audit as a source: what it gathers from the host and the
//! Engine, and the audit that runs inside the agent.

pub mod continuous;
pub mod gather;
