//! Metric rules: a condition on a container or host figure (CPU % of the
//! limit, memory, PIDs, disk, restarts, health, a container that should
//! run and is not) that must hold `for` a while before it fires, and that
//! raises a `resolved` alert when it ends. The YAML format, its compiler,
//! the evaluator, the built-in defaults and the Prometheus export.

pub mod evaluate;
pub mod format;
pub mod prometheus;
pub mod rules;

pub use evaluate::{
    episode_key, split, FiringState, Observation, RestartCounts, Transition, METRIC_LOCATION,
};
pub use prometheus::prometheus_rules;
pub use rules::{Comparison, Condition, Figure, MetricRule, MetricRules, Selector};

use crate::logs::{RuleFileError, RuleSource};

/// The built-in defaults, loaded unless `[metric_rules] disabled`.
pub const DEFAULT_RULES: &str = include_str!("../../rules/metric-defaults.yml");

/// The name errors give the built-in file.
pub const DEFAULT_RULES_NAME: &str = "built-in metric rules";

/// The built-in rules, compiled.
pub fn builtin() -> Result<MetricRules, RuleFileError> {
    MetricRules::parse_sources(&[RuleSource {
        name: Some(DEFAULT_RULES_NAME),
        text: DEFAULT_RULES,
    }])
}

/// Whether a rule file holds metric rules (a rule with `metric:`) rather
/// than log rules: `jaga rules check` takes both.
/// A file that is not valid YAML is judged by its lines, so that its
/// syntax error is reported by the parser of its kind.
pub fn is_metric_rule_file(text: &str) -> bool {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) {
        Ok(value) => value
            .get("rules")
            .and_then(|rules| rules.as_sequence())
            .is_some_and(|rules| rules.iter().any(|rule| rule.get("metric").is_some())),
        Err(_) => text.lines().any(|line| {
            let key = line.trim_start().trim_start_matches("- ").trim_start();
            key.trim_start_matches('{')
                .trim_start()
                .starts_with("metric:")
        }),
    }
}

#[cfg(test)]
mod tests;
