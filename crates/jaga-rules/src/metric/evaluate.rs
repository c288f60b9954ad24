//! The evaluation of metric rules over one snapshot: a condition must hold
//! at every evaluation for the rule's `for` duration before it fires
//! (pending until then, as in Prometheus); an episode raises one `firing`
//! alert, and one `resolved` alert when the condition stops holding, its
//! container goes away or the rule is removed. Pure: the caller stores the
//! state changes with the alerts, and restores the state after a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use jaga_model::{
    Alert, AlertAgent, AlertEpisode, AlertRule, ContainerRef, ContainerSnapshot, ContainerState,
    EpisodeStatus, EventContainer, MetricRuleState, MetricStateChange, MetricStatus, Snapshot,
    HISTORY_SERIES,
};

use super::rules::{number, Figure, MetricRule, MetricRules};

/// Where alerts of metric rules say they come from.
pub const METRIC_LOCATION: &str = "metrics";

/// Exits per container in the windows of `restarts` rules, counted by the
/// caller (from stored Docker events, which survive restarts).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartCounts {
    by_window: HashMap<Duration, HashMap<String, u32>>,
}

impl RestartCounts {
    /// Sets the exits of each container id in the last `window`.
    pub fn insert(&mut self, window: Duration, counts: HashMap<String, u32>) {
        self.by_window.insert(window, counts);
    }

    /// Exits of `container_id` in `window`; `None` when that window was not counted.
    pub fn get(&self, window: Duration, container_id: &str) -> Option<u32> {
        self.by_window
            .get(&window)
            .map(|counts| counts.get(container_id).copied().unwrap_or(0))
    }
}

/// What one evaluation looks at.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub snapshot: &'a Snapshot,
    pub restarts: &'a RestartCounts,
    /// The agent alerts name.
    pub agent: &'a AlertAgent,
}

/// Where every rule stands on every subject, between evaluations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FiringState {
    states: BTreeMap<String, MetricRuleState>,
}

impl FiringState {
    /// The state as stored, after a restart.
    pub fn restore(states: impl IntoIterator<Item = MetricRuleState>) -> Self {
        Self {
            states: states.into_iter().map(|s| (s.key.clone(), s)).collect(),
        }
    }

    pub fn get(&self, key: &str) -> Option<&MetricRuleState> {
        self.states.get(key)
    }

    pub fn states(&self) -> impl Iterator<Item = &MetricRuleState> {
        self.states.values()
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    pub fn firing(&self) -> usize {
        self.states
            .values()
            .filter(|s| s.status == MetricStatus::Firing)
            .count()
    }
}

/// One change of one rule on one subject: the state to store, and the
/// alert it raises (`None` when it only starts or ends a pending time).
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub change: MetricStateChange,
    pub alert: Option<Alert>,
}

/// The changes and the alerts of transitions, as the store takes them.
pub fn split(transitions: Vec<Transition>) -> (Vec<MetricStateChange>, Vec<Alert>) {
    let mut changes = Vec::with_capacity(transitions.len());
    let mut alerts = Vec::new();
    for transition in transitions {
        changes.push(transition.change);
        alerts.extend(transition.alert);
    }
    (changes, alerts)
}

/// `<rule id>/<subject>`: stable for the rule and the subject.
pub fn episode_key(rule_id: &str, subject: &str) -> String {
    format!("{rule_id}/{subject}")
}

const HOST_SUBJECT: &str = "host";

fn container_subject(container: &ContainerRef) -> String {
    format!("container/{}", container.id)
}

/// One thing a rule is evaluated on, with its value now.
struct Subject<'a> {
    /// `None`: the host.
    container: Option<&'a ContainerRef>,
    /// `None`: the figure does not apply (no limit, no health check).
    value: Option<f64>,
    /// No reading yet (a container just started or tracked again after a
    /// restart of jaga, a disk pass still to come): its state is kept as it
    /// is, neither held nor ended.
    unknown: bool,
}

impl Subject<'_> {
    /// `host`, or `container/<id>`: what episode keys and alerts name.
    fn id(&self) -> String {
        match self.container {
            Some(container) => container_subject(container),
            None => HOST_SUBJECT.to_owned(),
        }
    }
}

impl MetricRules {
    /// Evaluates every rule on `observed` at `now_ms`, moving `state` on;
    /// returns what changed, in rule order, then the episodes that ended
    /// because their subject or rule went away.
    pub fn evaluate(
        &self,
        observed: &Observation<'_>,
        now_ms: i64,
        state: &mut FiringState,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        // The keys of the states seen this pass; the states of the others
        // end. A rule with no state moves on only where its condition
        // holds: the rest of its subjects cost no key (at 500 containers,
        // building and keeping a key for every rule and container was
        // most of the evaluation).
        let mut visited: HashSet<String> = HashSet::new();
        let rules_with_state: HashSet<String> =
            state.states.values().map(|s| s.rule_id.clone()).collect();
        for rule in &self.rules {
            let has_state = rules_with_state.contains(&rule.id);
            for subject in subjects(rule, observed) {
                let holds =
                    !subject.unknown && subject.value.is_some_and(|v| rule.condition.holds(v));
                if !has_state && !holds {
                    continue;
                }
                let key = episode_key(&rule.id, &subject.id());
                if !subject.unknown {
                    step(
                        rule, &key, &subject, holds, now_ms, observed, state, &mut out,
                    );
                }
                visited.insert(key);
            }
        }
        let left: Vec<String> = state
            .states
            .keys()
            .filter(|key| !visited.contains(*key))
            .cloned()
            .collect();
        for key in left {
            let Some(ended) = state.states.remove(&key) else {
                continue;
            };
            let reason = why_gone(self, &ended, observed.snapshot);
            let alert = ended
                .firing_alert
                .as_ref()
                .map(|firing| resolved_alert(firing, &ended, now_ms, None, reason));
            out.push(Transition {
                change: MetricStateChange::Clear { key },
                alert,
            });
        }
        out
    }
}

/// Moves one rule on one subject on by one evaluation.
#[allow(clippy::too_many_arguments)]
fn step(
    rule: &MetricRule,
    key: &str,
    subject: &Subject<'_>,
    holds: bool,
    now_ms: i64,
    observed: &Observation<'_>,
    state: &mut FiringState,
    out: &mut Vec<Transition>,
) {
    let hold_ms = i64::try_from(rule.hold_for.as_millis()).unwrap_or(i64::MAX);
    match state.states.get_mut(key) {
        None if !holds => {}
        None => {
            let pending = MetricRuleState {
                key: key.to_owned(),
                rule_id: rule.id.clone(),
                subject: subject.id(),
                status: MetricStatus::Pending,
                pending_since_ms: now_ms,
                firing_since_ms: None,
                last_value: subject.value,
                firing_alert: None,
            };
            if hold_ms == 0 {
                out.push(fire(rule, subject, pending, now_ms, observed, state));
            } else {
                state.states.insert(key.to_owned(), pending.clone());
                out.push(Transition {
                    change: MetricStateChange::Set(Box::new(pending)),
                    alert: None,
                });
            }
        }
        Some(current) if holds => {
            current.last_value = subject.value;
            let due = now_ms.saturating_sub(current.pending_since_ms) >= hold_ms;
            if current.status == MetricStatus::Pending && due {
                let pending = current.clone();
                out.push(fire(rule, subject, pending, now_ms, observed, state));
            }
        }
        Some(_) => {
            let Some(ended) = state.states.remove(key) else {
                return;
            };
            let alert = ended.firing_alert.as_ref().map(|firing| {
                let reason = match subject.value {
                    Some(_) => {
                        format!("{} no longer {}", rule.figure.name(), rule.condition_text())
                    }
                    None => format!("no {} reading", rule.figure.name()),
                };
                let value = subject.value.map(|v| shown(rule.figure, v, subject));
                resolved_alert(firing, &ended, now_ms, value, reason)
            });
            out.push(Transition {
                change: MetricStateChange::Clear {
                    key: key.to_owned(),
                },
                alert,
            });
        }
    }
}

/// The pending state turned firing, with its alert.
fn fire(
    rule: &MetricRule,
    subject: &Subject<'_>,
    mut pending: MetricRuleState,
    now_ms: i64,
    observed: &Observation<'_>,
    state: &mut FiringState,
) -> Transition {
    pending.status = MetricStatus::Firing;
    pending.firing_since_ms = Some(now_ms);
    let alert = firing_alert(rule, subject, &pending, now_ms, observed);
    pending.firing_alert = Some(alert.clone());
    state.states.insert(pending.key.clone(), pending.clone());
    Transition {
        change: MetricStateChange::Set(Box::new(pending)),
        alert: Some(alert),
    }
}

fn firing_alert(
    rule: &MetricRule,
    subject: &Subject<'_>,
    state: &MetricRuleState,
    now_ms: i64,
    observed: &Observation<'_>,
) -> Alert {
    let mut data = BTreeMap::new();
    data.insert("metric".to_owned(), rule.figure.name().to_owned());
    data.insert("condition".to_owned(), rule.condition_text());
    if let super::rules::Condition::Threshold { value, .. } = rule.condition {
        data.insert("threshold".to_owned(), number(value));
    }
    if let Some(value) = subject.value {
        data.insert("value".to_owned(), shown(rule.figure, value, subject));
    }
    if !rule.hold_for.is_zero() {
        data.insert("for".to_owned(), format_duration(rule.hold_for));
    }
    if let Some(window) = rule.window {
        data.insert("window".to_owned(), format_duration(window));
    }
    data.insert("subject".to_owned(), subject.id());
    data.insert(
        "pending_since".to_owned(),
        rfc3339_ms(state.pending_since_ms),
    );
    let mut about = observed.snapshot.machine.hostname.clone();
    if let Some(container) = subject.container {
        data.insert("name".to_owned(), container.name.clone());
        data.insert("state".to_owned(), container.state.as_str().to_owned());
        if let Some(health) = &container.health {
            data.insert("health".to_owned(), health.clone());
        }
        if let Some(policy) = &container.restart_policy {
            data.insert("restart_policy".to_owned(), policy.clone());
        }
        about = container.name.clone();
    } else if let Some(root) = &observed.snapshot.data_root {
        data.insert("path".to_owned(), root.path.clone());
        data.insert("device".to_owned(), root.device.clone());
    }
    let value_text = subject
        .value
        .filter(|_| !rule.figure.is_flag())
        .map(|v| format!(" ({})", shown(rule.figure, v, subject)))
        .unwrap_or_default();
    let started = state.firing_since_ms.unwrap_or(now_ms);
    Alert {
        id: alert_id(&state.key, started, EpisodeStatus::Firing),
        timestamp: rfc3339_ms(now_ms),
        rule: AlertRule {
            id: rule.id.clone(),
            level: rule.level,
            description: format!("{}: {about}{value_text}", rule.description),
            groups: rule.groups.clone(),
            mitre: rule.mitre.clone(),
        },
        agent: observed.agent.clone(),
        container: subject.container.map(event_container),
        data,
        location: METRIC_LOCATION.to_owned(),
        event: None,
        episode: Some(AlertEpisode {
            key: state.key.clone(),
            status: EpisodeStatus::Firing,
            started_at: rfc3339_ms(started),
            ended_at: None,
        }),
    }
}

/// The `resolved` alert of an episode, made from its `firing` one.
fn resolved_alert(
    firing: &Alert,
    state: &MetricRuleState,
    now_ms: i64,
    value: Option<String>,
    reason: String,
) -> Alert {
    let started = state.firing_since_ms.unwrap_or(state.pending_since_ms);
    let mut alert = firing.clone();
    alert.id = alert_id(&state.key, started, EpisodeStatus::Resolved);
    alert.timestamp = rfc3339_ms(now_ms);
    alert.rule.description = format!("Resolved: {}", firing.rule.description);
    match value {
        Some(text) => alert.data.insert("value".to_owned(), text),
        None => alert.data.remove("value"),
    };
    alert.data.insert("reason".to_owned(), reason);
    alert.episode = Some(AlertEpisode {
        key: state.key.clone(),
        status: EpisodeStatus::Resolved,
        started_at: rfc3339_ms(started),
        ended_at: Some(rfc3339_ms(now_ms)),
    });
    alert
}

/// Why an episode's subject was not evaluated this time.
fn why_gone(rules: &MetricRules, ended: &MetricRuleState, snapshot: &Snapshot) -> String {
    if !rules.rules.iter().any(|r| r.id == ended.rule_id) {
        return "the rule is no longer loaded".to_owned();
    }
    if ended.subject == HOST_SUBJECT {
        return "no reading of the host".to_owned();
    }
    let running = snapshot
        .containers
        .iter()
        .any(|c| container_subject(&c.container) == ended.subject);
    let stopped = snapshot
        .stopped
        .iter()
        .find(|c| container_subject(c) == ended.subject);
    match (running, stopped) {
        (true, _) => "the container no longer matches the rule".to_owned(),
        (false, Some(container)) => format!("the container is {}", container.state.as_str()),
        (false, None) => "the container is gone".to_owned(),
    }
}

/// Stable per episode and status: a replay cannot store an alert twice.
fn alert_id(key: &str, started_ms: i64, status: EpisodeStatus) -> String {
    let status = match status {
        EpisodeStatus::Firing => "firing",
        EpisodeStatus::Resolved => "resolved",
    };
    format!("metric.{:016x}.{started_ms}.{status}", fnv1a(key))
}

/// A stable 64-bit hash (FNV-1a): ids must not change between releases.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The subjects `rule` is evaluated on, each with its value.
fn subjects<'a>(rule: &MetricRule, observed: &Observation<'a>) -> Vec<Subject<'a>> {
    let snapshot = observed.snapshot;
    if rule.figure.is_host() {
        return vec![Subject {
            container: None,
            value: snapshot.data_root.as_ref().and_then(|root| {
                (root.capacity_bytes > 0)
                    .then(|| root.used_bytes as f64 / root.capacity_bytes as f64 * 100.0)
            }),
            unknown: snapshot.data_root.is_none(),
        }];
    }
    let mut out = Vec::new();
    for running in &snapshot.containers {
        let container = &running.container;
        if !rule.selector.matches(container) || !applies(rule, container) {
            continue;
        }
        out.push(Subject {
            container: Some(container),
            value: container_value(rule, Some(running), container, observed),
            unknown: no_reading_yet(rule.figure, running),
        });
    }
    if !rule.figure.needs_running() {
        for container in &snapshot.stopped {
            if !rule.selector.matches(container) || !applies(rule, container) {
                continue;
            }
            out.push(Subject {
                container: Some(container),
                value: container_value(rule, None, container, observed),
                unknown: false,
            });
        }
    }
    out
}

/// `not_running` watches the containers its selector names, or without
/// one those whose restart policy says they should run.
fn applies(rule: &MetricRule, container: &ContainerRef) -> bool {
    rule.figure != Figure::NotRunning || !rule.selector.is_empty() || container.should_run()
}

/// Whether the reading `figure` comes from is still to come.
fn no_reading_yet(figure: Figure, running: &ContainerSnapshot) -> bool {
    match figure {
        Figure::CpuPercent
        | Figure::CpuLimitPercent
        | Figure::NetworkRxBytesPerSecond
        | Figure::NetworkTxBytesPerSecond => running.sample.is_none() || running.figures.is_none(),
        Figure::MemoryLimitPercent | Figure::MemoryWorkingSetBytes | Figure::PidsLimitPercent => {
            running.sample.is_none()
        }
        Figure::WritableLayerBytes | Figure::VolumeBytes => running.fs.is_none(),
        Figure::DataRootUsedPercent | Figure::Restarts | Figure::Health | Figure::NotRunning => {
            false
        }
    }
}

fn series(running: &ContainerSnapshot, name: &str) -> Option<f64> {
    let index = HISTORY_SERIES.iter().position(|s| *s == name)?;
    running.figures.map(|f| f.values[index])
}

fn container_value(
    rule: &MetricRule,
    running: Option<&ContainerSnapshot>,
    container: &ContainerRef,
    observed: &Observation<'_>,
) -> Option<f64> {
    let sample = running.and_then(|r| r.sample.as_ref());
    let percent = |part: f64, whole: Option<u64>| {
        whole
            .filter(|w| *w > 0)
            .map(|whole| part / whole as f64 * 100.0)
    };
    match rule.figure {
        Figure::CpuPercent => running.and_then(|r| series(r, "cpu_percent")),
        Figure::CpuLimitPercent => {
            let cpu = running.and_then(|r| series(r, "cpu_percent"))?;
            let cpu_stats = &sample?.cpu;
            let quota = cpu_stats.quota_us.filter(|q| *q > 0)? as f64;
            let period = cpu_stats.period_us.filter(|p| *p > 0)? as f64;
            Some(cpu / (quota / period))
        }
        Figure::MemoryLimitPercent => {
            let memory = &sample?.memory;
            percent(memory.working_set_bytes as f64, memory.limit_bytes)
        }
        Figure::MemoryWorkingSetBytes => sample.map(|s| s.memory.working_set_bytes as f64),
        Figure::NetworkRxBytesPerSecond | Figure::NetworkTxBytesPerSecond => {
            // Host-network containers see the host's traffic: not theirs to judge.
            if !matches!(sample?.network, jaga_model::NetworkStats::Interfaces(_)) {
                return None;
            }
            let name = if rule.figure == Figure::NetworkRxBytesPerSecond {
                "network_rx_bytes_per_second"
            } else {
                "network_tx_bytes_per_second"
            };
            running.and_then(|r| series(r, name))
        }
        Figure::PidsLimitPercent => {
            let pids = &sample?.pids;
            percent(pids.current as f64, pids.limit)
        }
        Figure::WritableLayerBytes => running
            .and_then(|r| r.fs.as_ref())
            .and_then(|fs| fs.writable_layer_bytes)
            .map(|b| b as f64),
        Figure::VolumeBytes => running
            .and_then(|r| r.fs.as_ref())
            .filter(|fs| !fs.volumes.is_empty())
            .map(|fs| fs.volumes.iter().map(|v| v.bytes as f64).sum()),
        Figure::DataRootUsedPercent => None,
        Figure::Restarts => rule
            .window
            .and_then(|w| observed.restarts.get(w, container.id.as_str()))
            .map(f64::from),
        Figure::Health => {
            let health = container.health.as_deref()?;
            running?;
            Some(f64::from(u8::from(
                Some(health) == rule.health_is.as_deref(),
            )))
        }
        Figure::NotRunning => Some(f64::from(u8::from(matches!(
            container.state,
            ContainerState::Exited | ContainerState::Dead | ContainerState::Restarting
        )))),
    }
}

/// A value with its unit, as alerts show it.
fn shown(figure: Figure, value: f64, subject: &Subject<'_>) -> String {
    match figure {
        Figure::Health => subject
            .container
            .and_then(|c| c.health.clone())
            .unwrap_or_default(),
        Figure::NotRunning => subject
            .container
            .map(|c| c.state.as_str().to_owned())
            .unwrap_or_default(),
        _ => format!("{} {}", number_text(value), figure.unit()),
    }
}

/// One decimal for fractions, none for whole numbers.
fn number_text(value: f64) -> String {
    if value.fract() == 0.0 {
        number(value)
    } else {
        format!("{value:.1}")
    }
}

/// `5m`, `90s`, `1h30m`: as rule files write them.
pub fn format_duration(duration: Duration) -> String {
    humantime::format_duration(duration)
        .to_string()
        .replace(' ', "")
}

/// `2026-11-23T10:00:00.123Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn event_container(container: &ContainerRef) -> EventContainer {
    EventContainer {
        id: container.id.as_str().to_owned(),
        name: container.name.clone(),
        image: container.image.clone(),
        labels: container.labels.clone(),
        compose_project: container.labels.get("com.docker.compose.project").cloned(),
        compose_service: container.labels.get("com.docker.compose.service").cloned(),
        runtime: None,
    }
}
