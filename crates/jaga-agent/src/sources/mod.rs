//! What the agent watches: each source reads one kind of input and hands
//! what it found to the store.

pub mod audit;
pub mod collector;
pub mod docker_events;
pub mod figures;
pub mod filesystem;
pub mod logs;
pub mod metric_rules;
pub mod process;
