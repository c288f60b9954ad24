//! The metric rule file format (YAML):
//!
//! ```yaml
//! rules:
//!   - id: 300101              # a number or a string, unique among all rule files
//!     level: 10               # 0..=15
//!     description: CPU above 90 % of the container's limit
//!     groups: [metrics, resources]
//!     mitre: [T1496]          # optional
//!     metric: cpu_limit_percent
//!     above: 90               # or at_least, below, at_most
//!     for: 5m                 # held this long before it fires; default 0s
//!     containers:             # optional, every part given must match
//!       name: "web-*"         # glob (* and ?) on the name
//!       image: "nginx*"       # glob on the image as it was named
//!       label: "com.example.tier=front"   # key, or key=value (value may be a glob)
//!   - id: 300102
//!     level: 8
//!     description: Restart loop
//!     metric: restarts        # exits (Docker `die` events) in the window
//!     at_least: 3
//!     window: 10m
//!   - id: 300103
//!     level: 8
//!     description: Container unhealthy
//!     metric: health
//!     is: unhealthy
//!     for: 1m
//!   - id: 300104
//!     level: 7
//!     description: Container should run and is not
//!     metric: not_running     # restart policy says it should run, or a selector names it
//!     for: 1m
//! ```

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRuleFile {
    #[serde(default)]
    pub rules: Vec<MetricRuleSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricRuleSpec {
    pub id: RuleId,
    pub level: u8,
    pub description: String,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub mitre: Vec<String>,
    pub metric: String,
    pub above: Option<f64>,
    pub at_least: Option<f64>,
    pub below: Option<f64>,
    pub at_most: Option<f64>,
    /// For `health`: the status that fires (`unhealthy`, `starting`, `healthy`).
    pub is: Option<String>,
    /// How long the condition must hold, e.g. `5m`, `30s`.
    #[serde(rename = "for")]
    pub hold_for: Option<String>,
    /// For `restarts`: the window exits are counted in.
    pub window: Option<String>,
    pub containers: Option<SelectorSpec>,
}

/// A rule id written as a number (`300101`) or a string (`"300101"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RuleId {
    Number(u64),
    Text(String),
}

impl RuleId {
    pub fn text(&self) -> String {
        match self {
            Self::Number(n) => n.to_string(),
            Self::Text(t) => t.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectorSpec {
    pub name: Option<String>,
    pub image: Option<String>,
    pub label: Option<String>,
}
