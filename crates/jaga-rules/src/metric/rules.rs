//! Metric rule files compiled: each rule's figure, condition, hold time and
//! container selector, checked with every problem reported by rule id,
//! file and line.

use jaga_model::glob_matches;
use std::collections::HashMap;
use std::time::Duration;

use jaga_model::ContainerRef;

use super::format::{MetricRuleFile, MetricRuleSpec, SelectorSpec};
use crate::logs::engine::{line_of_value, parse_yaml};
use crate::logs::{RuleError, RuleFileError, RuleSource};

/// The longest `for` or `window` accepted: longer would outlive any
/// history jaga keeps of it.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The longest selector pattern: globs are matched on every container at
/// every evaluation.
const MAX_PATTERN_CHARS: usize = 256;

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Figure {
    /// Docker's CPU %: 100 = one core busy.
    CpuPercent,
    /// CPU % of the container's own CPU limit (`--cpus`); none: not evaluated.
    CpuLimitPercent,
    /// Working set % of the memory limit; none: not evaluated.
    MemoryLimitPercent,
    MemoryWorkingSetBytes,
    NetworkRxBytesPerSecond,
    NetworkTxBytesPerSecond,
    /// Tasks % of the PIDs limit; none: not evaluated.
    PidsLimitPercent,
    WritableLayerBytes,
    /// Bytes in the container's volumes and bind mounts, summed.
    VolumeBytes,
    /// Used % of the filesystem holding Docker's data root (host).
    DataRootUsedPercent,
    /// Exits (`die` events) in the rule's window.
    Restarts,
    /// 1 when the health status is the rule's `is`.
    Health,
    /// 1 when a container that should run is not running.
    NotRunning,
}

impl Figure {
    pub const ALL: [Figure; 13] = [
        Self::CpuPercent,
        Self::CpuLimitPercent,
        Self::MemoryLimitPercent,
        Self::MemoryWorkingSetBytes,
        Self::NetworkRxBytesPerSecond,
        Self::NetworkTxBytesPerSecond,
        Self::PidsLimitPercent,
        Self::WritableLayerBytes,
        Self::VolumeBytes,
        Self::DataRootUsedPercent,
        Self::Restarts,
        Self::Health,
        Self::NotRunning,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::CpuPercent => "cpu_percent",
            Self::CpuLimitPercent => "cpu_limit_percent",
            Self::MemoryLimitPercent => "memory_limit_percent",
            Self::MemoryWorkingSetBytes => "memory_working_set_bytes",
            Self::NetworkRxBytesPerSecond => "network_rx_bytes_per_second",
            Self::NetworkTxBytesPerSecond => "network_tx_bytes_per_second",
            Self::PidsLimitPercent => "pids_limit_percent",
            Self::WritableLayerBytes => "writable_layer_bytes",
            Self::VolumeBytes => "volume_bytes",
            Self::DataRootUsedPercent => "data_root_used_percent",
            Self::Restarts => "restarts",
            Self::Health => "health",
            Self::NotRunning => "not_running",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// A figure of the host rather than of each container.
    pub fn is_host(self) -> bool {
        self == Self::DataRootUsedPercent
    }

    /// Figures read from the latest reading of a running container;
    /// the others also apply to containers that are not running.
    pub fn needs_running(self) -> bool {
        !matches!(
            self,
            Self::Restarts | Self::NotRunning | Self::DataRootUsedPercent
        )
    }

    /// A yes/no figure: it holds or not, with no threshold.
    pub fn is_flag(self) -> bool {
        matches!(self, Self::Health | Self::NotRunning)
    }

    /// How a value of it reads: `93.4 %`, `1048576 bytes`.
    pub fn unit(self) -> &'static str {
        match self {
            Self::CpuPercent
            | Self::CpuLimitPercent
            | Self::MemoryLimitPercent
            | Self::PidsLimitPercent
            | Self::DataRootUsedPercent => "%",
            Self::MemoryWorkingSetBytes | Self::WritableLayerBytes | Self::VolumeBytes => "bytes",
            Self::NetworkRxBytesPerSecond | Self::NetworkTxBytesPerSecond => "bytes/s",
            Self::Restarts => "exits",
            Self::Health | Self::NotRunning => "",
        }
    }
}

/// How a value is compared with the rule's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Above,
    AtLeast,
    Below,
    AtMost,
}

impl Comparison {
    /// The PromQL operator.
    pub fn operator(self) -> &'static str {
        match self {
            Self::Above => ">",
            Self::AtLeast => ">=",
            Self::Below => "<",
            Self::AtMost => "<=",
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Self::Above => "above",
            Self::AtLeast => "at_least",
            Self::Below => "below",
            Self::AtMost => "at_most",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    Threshold {
        comparison: Comparison,
        value: f64,
    },
    /// The figure is 1 (health is the status asked for; not running).
    Flag,
}

impl Condition {
    pub fn holds(&self, value: f64) -> bool {
        match *self {
            Self::Threshold {
                comparison,
                value: threshold,
            } => match comparison {
                Comparison::Above => value > threshold,
                Comparison::AtLeast => value >= threshold,
                Comparison::Below => value < threshold,
                Comparison::AtMost => value <= threshold,
            },
            Self::Flag => value >= 1.0,
        }
    }
}

/// Which containers a rule watches; every part given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    pub name: Option<String>,
    pub image: Option<String>,
    /// Key, and a glob on the value when one was given.
    pub label: Option<(String, Option<String>)>,
}

impl Selector {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.image.is_none() && self.label.is_none()
    }

    pub fn matches(&self, container: &ContainerRef) -> bool {
        self.name
            .as_deref()
            .is_none_or(|glob| glob_matches(glob, &container.name))
            && self
                .image
                .as_deref()
                .is_none_or(|glob| glob_matches(glob, &container.image))
            && self.label.as_ref().is_none_or(|(key, value)| {
                container.labels.get(key).is_some_and(|actual| {
                    value
                        .as_deref()
                        .is_none_or(|glob| glob_matches(glob, actual))
                })
            })
    }
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRule {
    pub id: String,
    pub level: u8,
    pub description: String,
    pub groups: Vec<String>,
    pub mitre: Vec<String>,
    pub figure: Figure,
    pub condition: Condition,
    /// For `health`: the status that fires.
    pub health_is: Option<String>,
    pub hold_for: Duration,
    /// For `restarts`.
    pub window: Option<Duration>,
    pub selector: Selector,
}

impl MetricRule {
    /// `above 90`, `is unhealthy`, `not running`: the condition as people read it.
    pub fn condition_text(&self) -> String {
        match (&self.condition, &self.health_is) {
            (Condition::Threshold { comparison, value }, _) => {
                format!("{} {}", comparison.word().replace('_', " "), number(*value))
            }
            (Condition::Flag, Some(status)) => format!("is {status}"),
            (Condition::Flag, None) => "not running".to_owned(),
        }
    }
}

/// A number as written: `90`, not `90.0`; `0.5` stays.
pub(crate) fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Every metric rule loaded: the built-in ones, then the user's files.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricRules {
    pub(crate) rules: Vec<MetricRule>,
}

impl MetricRules {
    pub fn parse(text: &str) -> Result<Self, RuleFileError> {
        Self::parse_sources(&[RuleSource { name: None, text }])
    }

    /// Several files as one set; ids are unique across them, and errors
    /// name the file and the line in it.
    pub fn parse_sources(sources: &[RuleSource<'_>]) -> Result<Self, RuleFileError> {
        let mut errors = Vec::new();
        let mut rules = Vec::new();
        let mut ids: HashMap<String, ()> = HashMap::new();
        for source in sources {
            let file = source.name.map(str::to_owned);
            let parsed: MetricRuleFile = parse_yaml(source)?;
            let mut seen: HashMap<String, usize> = HashMap::new();
            for spec in &parsed.rules {
                let id = spec.id.text();
                let occurrence = seen.entry(id.clone()).or_default();
                let line = line_of_value(source.text, "id", &id, *occurrence);
                *occurrence += 1;
                let mut fail = |message: String| {
                    errors.push(RuleError {
                        rule_id: id.clone(),
                        file: file.clone(),
                        line,
                        message,
                    })
                };
                if ids.insert(id.clone(), ()).is_some() {
                    fail("duplicate rule id".to_owned());
                }
                if let Some(rule) = compile(spec, &id, &mut fail) {
                    rules.push(rule);
                }
            }
        }
        match errors.len() {
            0 => Ok(Self { rules }),
            1 => Err(RuleFileError::Rule(errors.remove(0))),
            _ => Err(RuleFileError::Many(errors)),
        }
    }

    pub fn rules(&self) -> &[MetricRule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Only the rules at `min_level` or above: the others would never alert.
    pub fn at_least_level(mut self, min_level: u8) -> Self {
        self.rules.retain(|r| r.level >= min_level);
        self
    }

    /// The distinct windows of `restarts` rules: the counts an evaluation needs.
    pub fn restart_windows(&self) -> Vec<Duration> {
        let mut windows: Vec<Duration> = self.rules.iter().filter_map(|r| r.window).collect();
        windows.sort();
        windows.dedup();
        windows
    }
}

/// One rule from its spec; `None` (with every problem passed to `fail`)
/// when it cannot be used.
fn compile(spec: &MetricRuleSpec, id: &str, fail: &mut dyn FnMut(String)) -> Option<MetricRule> {
    let errors_before = std::cell::Cell::new(0usize);
    let mut problem = |message: String| {
        errors_before.set(errors_before.get() + 1);
        fail(message)
    };
    if id.trim().is_empty() {
        problem("the id is empty".to_owned());
    }
    if spec.level > 15 {
        problem(format!("level {} is out of range 0..=15", spec.level));
    }
    if spec.description.trim().is_empty() {
        problem("the description is empty".to_owned());
    }
    let Some(figure) = Figure::parse(&spec.metric) else {
        let known: Vec<&str> = Figure::ALL.iter().map(|f| f.name()).collect();
        problem(format!(
            "unknown metric '{}': use one of {}",
            spec.metric,
            known.join(", ")
        ));
        return None;
    };
    let thresholds = [
        (Comparison::Above, spec.above),
        (Comparison::AtLeast, spec.at_least),
        (Comparison::Below, spec.below),
        (Comparison::AtMost, spec.at_most),
    ];
    let given: Vec<(Comparison, f64)> = thresholds
        .iter()
        .filter_map(|(c, v)| v.map(|v| (*c, v)))
        .collect();
    let mut condition = Condition::Flag;
    let mut health_is = None;
    if figure.is_flag() {
        if !given.is_empty() {
            problem(format!(
                "metric '{}' holds or not: give no above, at_least, below or at_most",
                figure.name()
            ));
        }
    } else {
        match given.as_slice() {
            [(comparison, value)] if value.is_finite() => {
                condition = Condition::Threshold {
                    comparison: *comparison,
                    value: *value,
                }
            }
            [(_, value)] => problem(format!("threshold {value} is not a finite number")),
            _ => problem(format!(
                "metric '{}' needs exactly one of above, at_least, below or at_most",
                figure.name()
            )),
        }
    }
    match (figure, spec.is.as_deref()) {
        (Figure::Health, Some(status @ ("unhealthy" | "starting" | "healthy"))) => {
            health_is = Some(status.to_owned())
        }
        (Figure::Health, Some(other)) => problem(format!(
            "is: '{other}' is not a health status: use unhealthy, starting or healthy"
        )),
        (Figure::Health, None) => problem("metric 'health' needs is: unhealthy".to_owned()),
        (_, Some(_)) => problem("is: applies only to metric 'health'".to_owned()),
        (_, None) => {}
    }
    let hold_for = match spec.hold_for.as_deref() {
        Some(text) => duration(text, "for", &mut problem).unwrap_or_default(),
        None => Duration::ZERO,
    };
    let window = match (figure, spec.window.as_deref()) {
        (Figure::Restarts, Some(text)) => {
            let window = duration(text, "window", &mut problem);
            if window.is_some_and(|w| w < Duration::from_secs(1)) {
                problem(format!("window '{text}' is shorter than 1s"));
            }
            window
        }
        (Figure::Restarts, None) => {
            problem("metric 'restarts' needs a window, e.g. window: 10m".to_owned());
            None
        }
        (_, Some(_)) => {
            problem("window applies only to metric 'restarts'".to_owned());
            None
        }
        (_, None) => None,
    };
    let selector = spec
        .containers
        .as_ref()
        .map(|s| selector(s, &mut problem))
        .unwrap_or_default();
    if figure.is_host() && !selector.is_empty() {
        problem(format!(
            "metric '{}' is a figure of the host: containers does not apply",
            figure.name()
        ));
    }
    if errors_before.get() > 0 {
        return None;
    }
    Some(MetricRule {
        id: id.to_owned(),
        level: spec.level,
        description: spec.description.clone(),
        groups: spec.groups.clone(),
        mitre: spec.mitre.clone(),
        figure,
        condition,
        health_is,
        hold_for,
        window,
        selector,
    })
}

fn duration(text: &str, key: &str, problem: &mut dyn FnMut(String)) -> Option<Duration> {
    match humantime::parse_duration(text.trim()) {
        Ok(value) if value > MAX_DURATION => {
            problem(format!("{key} '{text}' is longer than 30 days"));
            None
        }
        Ok(value) => Some(value),
        Err(e) => {
            problem(format!(
                "{key} '{text}' is not a duration ({e}): write e.g. 30s, 5m, 1h"
            ));
            None
        }
    }
}

fn selector(spec: &SelectorSpec, problem: &mut dyn FnMut(String)) -> Selector {
    let mut check = |what: &str, text: &str| {
        if text.is_empty() {
            problem(format!("containers.{what} is empty"));
        } else if text.chars().count() > MAX_PATTERN_CHARS {
            problem(format!(
                "containers.{what} is longer than {MAX_PATTERN_CHARS} characters"
            ));
        }
    };
    if let Some(name) = &spec.name {
        check("name", name);
    }
    if let Some(image) = &spec.image {
        check("image", image);
    }
    let label = spec.label.as_ref().map(|label| {
        check("label", label);
        match label.split_once('=') {
            Some((key, value)) => (key.trim().to_owned(), Some(value.trim().to_owned())),
            None => (label.trim().to_owned(), None),
        }
    });
    if label.as_ref().is_some_and(|(key, _)| key.is_empty()) {
        problem("containers.label needs a key: write key or key=value".to_owned());
    }
    Selector {
        name: spec.name.clone(),
        image: spec.image.clone(),
        label,
    }
}
