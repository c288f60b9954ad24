//! Where each metric rule stands for each subject (a container or the
//! host): the state the evaluator keeps between two snapshots, and that the
//! store keeps across restarts so an episode fires once and resolves once.

use serde::{Deserialize, Serialize};

use crate::Alert;

/// A condition that holds (`pending`, not yet for its `for` duration) or
/// has fired (`firing`). A subject whose condition does not hold has no state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricStatus {
    Pending,
    Firing,
}

impl MetricStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Firing => "firing",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Self::Pending),
            "firing" => Some(Self::Firing),
            _ => None,
        }
    }
}

/// One rule on one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRuleState {
    /// `<rule id>/<subject>`: the episode key alerts carry.
    pub key: String,
    pub rule_id: String,
    /// `container/<full id>` or `host`.
    pub subject: String,
    pub status: MetricStatus,
    /// Unix ms of the first evaluation the condition held in a row.
    pub pending_since_ms: i64,
    /// Unix ms it fired; `None` while pending.
    pub firing_since_ms: Option<i64>,
    pub last_value: Option<f64>,
    /// The alert it fired with, from which its `resolved` alert is made
    /// (even when the container or the rule is gone by then).
    pub firing_alert: Option<Alert>,
}

/// What an evaluation changed, to be stored with the alerts it raised.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricStateChange {
    Set(Box<MetricRuleState>),
    /// The condition stopped holding (or its subject went away).
    Clear {
        key: String,
    },
}

impl MetricStateChange {
    pub fn key(&self) -> &str {
        match self {
            Self::Set(state) => &state.key,
            Self::Clear { key } => key,
        }
    }
}
