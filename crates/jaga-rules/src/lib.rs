//! Rules that turn what jaga sees into alerts. This crate decides what is an
//! alert and how severe; it does no I/O.

pub mod events;
pub mod logs;
pub mod metric;
pub mod process;

pub use events::{EventMatch, EventRule, EVENT_RULES, RESTART_LOOP};
