use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use jaga_model::{
    AlertAgent, CgroupVersion, ContainerId, ContainerRef, ContainerSnapshot, ContainerState,
    CpuStats, DataRootUsage, EpisodeStatus, HistoryPoint, MemoryStats, MetricStateChange,
    MetricStatus, NetworkStats, PidsStats, Sample, Snapshot,
};

use super::*;
use crate::logs::{RuleFileError, RuleSource};
use jaga_model::glob_matches;

const CPU_RULE: &str = "
rules:
  - id: 300101
    level: 10
    description: CPU above 90 % of the container's limit
    groups: [metrics, resources]
    metric: cpu_limit_percent
    above: 90
    for: 5m
";

fn container(name: &str, state: ContainerState) -> ContainerRef {
    ContainerRef {
        id: ContainerId::new(format!("{name:0>64}")),
        name: name.to_owned(),
        image: "nginx:1.25".to_owned(),
        labels: BTreeMap::from([("com.example.tier".to_owned(), "front".to_owned())]),
        state,
        pid: state.has_processes().then_some(42),
        network_mode: "bridge".to_owned(),
        created: 0,
        started_at: None,
        restart_policy: Some("no".to_owned()),
        health: None,
        exit_code: None,
    }
}

/// A running container using `cpu_percent` of docker's CPU % under a
/// `--cpus 0.5` limit, with 100 of 200 MiB and 10 of 100 PIDs.
fn running(name: &str, cpu_percent: f64) -> ContainerSnapshot {
    let mut values = [0.0; jaga_model::SERIES_COUNT];
    values[0] = cpu_percent;
    ContainerSnapshot {
        container: Arc::new(container(name, ContainerState::Running)),
        cgroup_path: String::new(),
        sample: Some(Sample {
            cgroup_version: CgroupVersion::V2,
            monotonic_ns: 0,
            unix_ms: 0,
            cpu: CpuStats {
                quota_us: Some(50_000),
                period_us: Some(100_000),
                ..Default::default()
            },
            memory: MemoryStats {
                working_set_bytes: 100 << 20,
                limit_bytes: Some(200 << 20),
                ..Default::default()
            },
            block_io: Vec::new(),
            pids: PidsStats {
                current: 10,
                limit: Some(100),
                threads: None,
            },
            network: NetworkStats::Interfaces(Vec::new()),
        }),
        figures: Some(HistoryPoint { unix_ms: 0, values }),
        fs: None,
        devices: Arc::default(),
        last_seen_unix: 0,
    }
}

fn snapshot(containers: Vec<ContainerSnapshot>) -> Snapshot {
    Snapshot {
        taken_unix_ms: 0,
        containers,
        ..Snapshot::default()
    }
}

const MINUTE: i64 = 60_000;
const T0: i64 = 1_700_000_000_000;

struct Harness {
    rules: MetricRules,
    state: FiringState,
    restarts: RestartCounts,
    agent: AlertAgent,
}

impl Harness {
    fn new(text: &str) -> Self {
        Self {
            rules: MetricRules::parse(text).unwrap(),
            state: FiringState::default(),
            restarts: RestartCounts::default(),
            agent: AlertAgent {
                id: "host".to_owned(),
                name: "host".to_owned(),
            },
        }
    }

    fn at(&mut self, now_ms: i64, snapshot: &Snapshot) -> Vec<Transition> {
        let observed = Observation {
            snapshot,
            restarts: &self.restarts,
            agent: &self.agent,
        };
        self.rules.evaluate(&observed, now_ms, &mut self.state)
    }
}

fn alerts(transitions: &[Transition]) -> Vec<(EpisodeStatus, String)> {
    transitions
        .iter()
        .filter_map(|t| t.alert.as_ref())
        .map(|a| {
            let episode = a.episode.as_ref().unwrap();
            (episode.status, episode.key.clone())
        })
        .collect()
}

#[test]
fn pending_does_not_fire_before_its_for_duration() {
    let mut h = Harness::new(CPU_RULE);
    // 48 % of one core is 96 % of a half-core limit.
    let busy = snapshot(vec![running("web", 48.0)]);
    let first = h.at(T0, &busy);
    assert_eq!(first.len(), 1);
    assert!(first[0].alert.is_none());
    let MetricStateChange::Set(pending) = &first[0].change else {
        panic!("{first:?}")
    };
    assert_eq!(pending.status, MetricStatus::Pending);
    assert_eq!(pending.pending_since_ms, T0);
    assert!((pending.last_value.unwrap() - 96.0).abs() < 1e-9);
    for minute in 1..5 {
        assert!(h.at(T0 + minute * MINUTE, &busy).is_empty());
    }
    assert_eq!(h.state.firing(), 0);
    assert!(h.at(T0 + 5 * MINUTE - 1, &busy).is_empty());
}

#[test]
fn fires_once_then_resolves_once_with_the_same_key() {
    let mut h = Harness::new(CPU_RULE);
    let busy = snapshot(vec![running("web", 48.0)]);
    h.at(T0, &busy);
    let fired = h.at(T0 + 5 * MINUTE, &busy);
    let key = format!("300101/container/{:0>64}", "web");
    assert_eq!(alerts(&fired), vec![(EpisodeStatus::Firing, key.clone())]);
    let firing = fired[0].alert.clone().unwrap();
    assert_eq!(firing.location, "metrics");
    assert_eq!(firing.rule.id, "300101");
    assert_eq!(firing.rule.level, 10);
    assert_eq!(firing.data["metric"], "cpu_limit_percent");
    assert_eq!(firing.data["threshold"], "90");
    assert_eq!(firing.data["value"], "96 %");
    assert_eq!(firing.data["name"], "web");
    assert_eq!(firing.container.as_ref().unwrap().name, "web");
    assert_eq!(
        firing.episode.as_ref().unwrap().started_at,
        "2023-11-14T22:18:20.000Z"
    );
    for minute in 6..20 {
        assert!(h.at(T0 + minute * MINUTE, &busy).is_empty(), "fired again");
    }
    let calm = snapshot(vec![running("web", 10.0)]);
    let resolved = h.at(T0 + 20 * MINUTE, &calm);
    assert_eq!(
        alerts(&resolved),
        vec![(EpisodeStatus::Resolved, key.clone())]
    );
    let alert = resolved[0].alert.as_ref().unwrap();
    assert_ne!(alert.id, firing.id);
    let episode = alert.episode.as_ref().unwrap();
    assert_eq!(
        episode.started_at,
        firing.episode.as_ref().unwrap().started_at
    );
    assert_eq!(
        episode.ended_at.as_deref(),
        Some("2023-11-14T22:33:20.000Z")
    );
    assert_eq!(alert.data["value"], "20 %");
    assert_eq!(alert.data["reason"], "cpu_limit_percent no longer above 90");
    assert!(matches!(
        resolved[0].change,
        MetricStateChange::Clear { .. }
    ));
    assert!(h.at(T0 + 21 * MINUTE, &calm).is_empty(), "resolved twice");
    assert!(h.state.is_empty());
}

#[test]
fn flapping_shorter_than_for_never_fires() {
    let mut h = Harness::new(CPU_RULE);
    let busy = snapshot(vec![running("web", 48.0)]);
    let calm = snapshot(vec![running("web", 10.0)]);
    let mut changes = 0;
    for minute in 0..60 {
        let current = if minute % 4 == 3 { &calm } else { &busy };
        let out = h.at(T0 + minute * MINUTE, current);
        assert!(out.iter().all(|t| t.alert.is_none()), "fired at {minute}");
        changes += out.len();
    }
    // Each 3-minute run starts a pending time and the calm minute ends it.
    assert_eq!(changes, 30);
}

#[test]
fn container_removed_resolves_with_a_reason_and_stopped_says_so() {
    let mut h = Harness::new(CPU_RULE);
    let busy = snapshot(vec![running("web", 48.0), running("api", 48.0)]);
    h.at(T0, &busy);
    assert_eq!(alerts(&h.at(T0 + 5 * MINUTE, &busy)).len(), 2);
    let mut after = snapshot(Vec::new());
    after.stopped = vec![container("api", ContainerState::Exited)];
    let out = h.at(T0 + 6 * MINUTE, &after);
    let reasons: Vec<&str> = out
        .iter()
        .map(|t| t.alert.as_ref().unwrap().data["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        vec!["the container is exited", "the container is gone"]
    );
    assert!(h.state.is_empty());
}

#[test]
fn restart_restores_state_without_a_second_firing() {
    let mut h = Harness::new(CPU_RULE);
    let busy = snapshot(vec![running("web", 48.0)]);
    h.at(T0, &busy);
    let fired = h.at(T0 + 5 * MINUTE, &busy);
    let firing = fired[0].alert.clone().unwrap();
    // What the store holds: every Set, minus what was cleared.
    let stored: Vec<_> = h.state.states().cloned().collect();

    let mut restarted = Harness::new(CPU_RULE);
    restarted.state = FiringState::restore(stored);
    assert!(restarted.at(T0 + 7 * MINUTE, &busy).is_empty());
    let resolved = restarted.at(T0 + 8 * MINUTE, &snapshot(vec![running("web", 1.0)]));
    let alert = resolved[0].alert.as_ref().unwrap();
    assert_eq!(
        alert.episode.as_ref().unwrap().key,
        firing.episode.unwrap().key
    );
    assert_eq!(
        alert.episode.as_ref().unwrap().status,
        EpisodeStatus::Resolved
    );

    // A replay of the same evaluation after a failed commit gives the same ids.
    let mut again = Harness::new(CPU_RULE);
    again.at(T0, &busy);
    assert_eq!(
        again.at(T0 + 5 * MINUTE, &busy)[0]
            .alert
            .as_ref()
            .unwrap()
            .id,
        firing.id
    );
}

#[test]
fn a_pending_time_survives_a_restart() {
    let mut h = Harness::new(CPU_RULE);
    let busy = snapshot(vec![running("web", 48.0)]);
    h.at(T0, &busy);
    let mut restarted = Harness::new(CPU_RULE);
    restarted.state = FiringState::restore(h.state.states().cloned());
    assert_eq!(alerts(&restarted.at(T0 + 5 * MINUTE, &busy)).len(), 1);
}

#[test]
fn a_removed_rule_resolves_what_it_fired() {
    let mut h = Harness::new(CPU_RULE);
    let busy = snapshot(vec![running("web", 48.0)]);
    h.at(T0, &busy);
    h.at(T0 + 5 * MINUTE, &busy);
    let mut other = Harness::new(
        "rules:\n  - {id: 1, level: 3, description: d, metric: cpu_percent, above: 1000}\n",
    );
    other.state = FiringState::restore(h.state.states().cloned());
    let out = other.at(T0 + 6 * MINUTE, &busy);
    let alert = out[0].alert.as_ref().unwrap();
    assert_eq!(alert.rule.id, "300101");
    assert_eq!(alert.data["reason"], "the rule is no longer loaded");
}

#[test]
fn selectors_by_name_glob_image_and_label() {
    let text = |selector: &str| {
        format!(
            "rules:\n  - id: 1\n    level: 5\n    description: busy\n    metric: cpu_percent\n    above: 10\n    containers: {selector}\n"
        )
    };
    let mut web = running("web-1", 50.0);
    Arc::make_mut(&mut web.container).image = "nginx:1.25".to_owned();
    let mut db = running("db", 50.0);
    Arc::make_mut(&mut db.container).image = "postgres:16".to_owned();
    Arc::make_mut(&mut db.container).labels =
        BTreeMap::from([("com.example.tier".to_owned(), "back".to_owned())]);
    let both = snapshot(vec![web, db]);
    let fired = |selector: &str| -> Vec<String> {
        let mut h = Harness::new(&text(selector));
        h.at(T0, &both)
            .iter()
            .filter_map(|t| t.alert.as_ref())
            .map(|a| a.data["name"].clone())
            .collect()
    };
    assert_eq!(fired("{name: \"web-*\"}"), vec!["web-1"]);
    assert_eq!(fired("{name: \"web-?\"}"), vec!["web-1"]);
    assert_eq!(fired("{name: \"web\"}"), Vec::<String>::new());
    assert_eq!(fired("{image: \"postgres*\"}"), vec!["db"]);
    assert_eq!(fired("{label: \"com.example.tier=front\"}"), vec!["web-1"]);
    assert_eq!(fired("{label: \"com.example.tier=b*\"}"), vec!["db"]);
    assert_eq!(fired("{label: \"com.example.tier\"}"), vec!["web-1", "db"]);
    assert_eq!(
        fired("{name: \"*\", image: \"nginx*\", label: \"com.example.tier=back\"}"),
        Vec::<String>::new()
    );
}

#[test]
fn no_limit_means_not_evaluated() {
    let mut h = Harness::new(CPU_RULE);
    let mut unlimited = running("web", 400.0);
    unlimited.sample.as_mut().unwrap().cpu.quota_us = None;
    assert!(h.at(T0, &snapshot(vec![unlimited])).is_empty());
    let mut memory = Harness::new(
        "rules:\n  - {id: 2, level: 5, description: m, metric: memory_limit_percent, at_least: 50}\n",
    );
    let limited = running("web", 0.0);
    assert_eq!(
        alerts(&memory.at(T0, &snapshot(vec![limited.clone()]))).len(),
        1
    );
    let mut no_limit = limited;
    no_limit.sample.as_mut().unwrap().memory.limit_bytes = None;
    let mut memory = Harness::new(
        "rules:\n  - {id: 2, level: 5, description: m, metric: memory_limit_percent, at_least: 50}\n",
    );
    assert!(memory.at(T0, &snapshot(vec![no_limit])).is_empty());
}

#[test]
fn not_running_watches_restart_policies_or_its_selector() {
    let text = "rules:\n  - {id: 7, level: 7, description: down, metric: not_running, for: 1m}\n";
    let mut always = container("always", ContainerState::Exited);
    always.restart_policy = Some("always".to_owned());
    let mut done = container("job", ContainerState::Exited);
    done.restart_policy = Some("on-failure".to_owned());
    done.exit_code = Some(0);
    let mut failed = container("failed", ContainerState::Exited);
    failed.restart_policy = Some("on-failure".to_owned());
    failed.exit_code = Some(1);
    let plain = container("plain", ContainerState::Exited);
    let mut down = snapshot(vec![running("up", 0.0)]);
    down.stopped = vec![always, done, failed, plain];
    let mut h = Harness::new(text);
    assert!(alerts(&h.at(T0, &down)).is_empty());
    let names: Vec<String> = h
        .at(T0 + MINUTE, &down)
        .iter()
        .filter_map(|t| t.alert.as_ref())
        .map(|a| format!("{}={}", a.data["name"], a.data["value"]))
        .collect();
    assert_eq!(names, vec!["always=exited", "failed=exited"]);

    let mut by_name = Harness::new(
        "rules:\n  - {id: 8, level: 7, description: down, metric: not_running, containers: {name: plain}}\n",
    );
    let out = by_name.at(T0, &down);
    assert_eq!(alerts(&out).len(), 1);
    assert_eq!(out[0].alert.as_ref().unwrap().data["name"], "plain");
    // Started again: resolved.
    let mut up = snapshot(vec![running("plain", 0.0)]);
    Arc::make_mut(&mut up.containers[0].container).name = "plain".to_owned();
    let out = by_name.at(T0 + MINUTE, &up);
    assert_eq!(alerts(&out)[0].0, EpisodeStatus::Resolved);
}

#[test]
fn restarts_are_counted_in_the_rule_window() {
    let text = "rules:\n  - {id: 9, level: 9, description: loop, metric: restarts, at_least: 3, window: 10m}\n";
    let mut h = Harness::new(text);
    assert_eq!(h.rules.restart_windows(), vec![Duration::from_secs(600)]);
    let mut looping = snapshot(Vec::new());
    looping.stopped = vec![container("crash", ContainerState::Restarting)];
    let id = looping.stopped[0].id.as_str().to_owned();
    h.restarts
        .insert(Duration::from_secs(600), HashMap::from([(id.clone(), 2)]));
    assert!(h.at(T0, &looping).is_empty());
    h.restarts
        .insert(Duration::from_secs(600), HashMap::from([(id.clone(), 3)]));
    let out = h.at(T0 + 1000, &looping);
    assert_eq!(out[0].alert.as_ref().unwrap().data["value"], "3 exits");
    h.restarts.insert(Duration::from_secs(600), HashMap::new());
    assert_eq!(
        alerts(&h.at(T0 + 2000, &looping))[0].0,
        EpisodeStatus::Resolved
    );
}

#[test]
fn health_and_data_root() {
    let mut h = Harness::new(
        "rules:
  - {id: 10, level: 8, description: sick, metric: health, is: unhealthy, for: 1m}
  - {id: 11, level: 9, description: disk, metric: data_root_used_percent, at_least: 85}
",
    );
    let mut sick = running("web", 0.0);
    Arc::make_mut(&mut sick.container).health = Some("unhealthy".to_owned());
    let mut now = snapshot(vec![sick]);
    now.data_root = Some(DataRootUsage {
        path: "/var/lib/docker".to_owned(),
        device: "/dev/vda1".to_owned(),
        capacity_bytes: 100,
        used_bytes: 90,
        available_bytes: 10,
    });
    let first = h.at(T0, &now);
    assert_eq!(
        alerts(&first),
        vec![(EpisodeStatus::Firing, "11/host".to_owned())]
    );
    let disk = first.iter().find_map(|t| t.alert.as_ref()).unwrap();
    assert_eq!(disk.data["value"], "90 %");
    assert!(disk.container.is_none());
    let key = format!("10/container/{:0>64}", "web");
    assert_eq!(
        alerts(&h.at(T0 + MINUTE, &now)),
        vec![(EpisodeStatus::Firing, key)]
    );
}

#[test]
fn rule_file_errors_name_the_rule_and_the_line() {
    let text = "rules:
  - id: 1
    level: 5
    description: fine
    metric: cpu_percent
    above: 90
  - id: 2
    level: 5
    description: unknown figure
    metric: cpu_temperature
    above: 90
  - id: 3
    level: 16
    description: two thresholds
    metric: cpu_percent
    above: 90
    below: 10
  - id: 1
    level: 5
    description: again
    metric: restarts
    at_least: 3
";
    let error = MetricRules::parse_sources(&[RuleSource {
        name: Some("mine.yml"),
        text,
    }])
    .unwrap_err();
    let shown = error.to_string();
    assert!(shown.starts_with("5 errors:"), "{shown}");
    for expected in [
        "'mine.yml', line 7: rule 2: unknown metric 'cpu_temperature': use one of cpu_percent,",
        "'mine.yml', line 12: rule 3: level 16 is out of range 0..=15",
        "'mine.yml', line 12: rule 3: metric 'cpu_percent' needs exactly one of above, at_least, below or at_most",
        "'mine.yml', line 18: rule 1: duplicate rule id",
        "'mine.yml', line 18: rule 1: metric 'restarts' needs a window, e.g. window: 10m",
    ] {
        assert!(shown.contains(expected), "missing {expected:?} in:\n{shown}");
    }
    let syntax =
        MetricRules::parse("rules:\n  - id: 1\n    level: 5\n    colour: red\n").unwrap_err();
    assert!(
        matches!(syntax, RuleFileError::Syntax { line: Some(4), .. }),
        "{syntax:?}"
    );
    for (text, message) in [
        (
            "rules:\n  - {id: 1, level: 5, description: d, metric: health}\n",
            "metric 'health' needs is: unhealthy",
        ),
        (
            "rules:\n  - {id: 1, level: 5, description: d, metric: cpu_percent, above: 1, for: soon}\n",
            "for 'soon' is not a duration",
        ),
        (
            "rules:\n  - {id: 1, level: 5, description: d, metric: data_root_used_percent, above: 1, containers: {name: x}}\n",
            "is a figure of the host: containers does not apply",
        ),
        (
            "rules:\n  - {id: 1, level: 5, description: d, metric: not_running, above: 1}\n",
            "holds or not",
        ),
        (
            "rules:\n  - {id: 1, level: 5, description: d, metric: cpu_percent, above: 1, window: 5m}\n",
            "window applies only to metric 'restarts'",
        ),
    ] {
        let shown = MetricRules::parse(text).unwrap_err().to_string();
        assert!(shown.contains(message), "{shown}");
        assert!(shown.starts_with("line 2: rule 1:"), "{shown}");
    }
}

#[test]
fn builtin_defaults_load_and_ids_collide_with_a_user_file() {
    let rules = builtin().unwrap();
    assert!(rules.len() >= 8);
    assert!(rules.rules().iter().all(|r| r.id.starts_with("920")));
    let error = MetricRules::parse_sources(&[
        RuleSource {
            name: Some(DEFAULT_RULES_NAME),
            text: DEFAULT_RULES,
        },
        RuleSource {
            name: Some("mine.yml"),
            text: "rules:\n  - id: \"92000\"\n    level: 3\n    description: d\n    metric: cpu_percent\n    above: 1\n",
        },
    ])
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "'mine.yml', line 2: rule 92000: duplicate rule id"
    );
    assert!(is_metric_rule_file(DEFAULT_RULES));
    assert!(!is_metric_rule_file(crate::logs::WEB_RULES));
}

#[test]
fn globs() {
    assert!(glob_matches("web-*", "web-1"));
    assert!(glob_matches("*", ""));
    assert!(glob_matches("a*b*c", "aXbYbZc"));
    assert!(glob_matches("?b", "ab"));
    assert!(!glob_matches("?b", "b"));
    assert!(!glob_matches("web", "web-1"));
    assert!(!glob_matches("a*b", "aXbY"));
    assert!(glob_matches("nginx*", "nginx:1.25"));
}

#[test]
fn prometheus_export_of_the_defaults_and_selectors() {
    let text = prometheus_rules(&builtin().unwrap()).unwrap();
    assert!(text.contains("# Left out: rule 92005"), "{text}");
    assert!(text.contains("# Left out: rule 92007"), "{text}");
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let rules = parsed["groups"][0]["rules"].as_sequence().unwrap();
    assert_eq!(rules.len(), 6);
    assert_eq!(rules[0]["alert"], "JagaCpuLimitPercent92000");
    assert_eq!(rules[0]["for"], "5m");
    assert_eq!(
        rules[0]["expr"],
        "sum without (cpu) (rate(container_cpu_usage_seconds_total[1m])) / (container_spec_cpu_quota / container_spec_cpu_period) * 100 >= 90"
    );
    assert_eq!(rules[0]["labels"]["severity"], "warning");

    let rules = MetricRules::parse(
        "rules:
  - id: 5
    level: 12
    description: d
    metric: memory_working_set_bytes
    above: 1000000
    containers: {name: \"web.*\", image: nginx, label: \"com.example.tier=front\"}
  - id: 6
    level: 3
    description: d
    metric: restarts
    at_least: 3
    window: 90s
    containers: {label: com.example.tier}
",
    )
    .unwrap();
    let exprs: Vec<String> = rules.rules().iter().map(prometheus::expression).collect();
    assert_eq!(
        exprs,
        vec![
            r#"container_memory_working_set_bytes{name=~"web\\..*",image="nginx",container_label_com_example_tier="front"} > 1000000"#,
            r#"changes(container_start_time_seconds{container_label_com_example_tier!=""}[90s]) >= 3"#,
        ]
    );
}

#[test]
fn a_missing_reading_keeps_the_state_as_it_is() {
    let mut h = Harness::new(CPU_RULE);
    let busy = snapshot(vec![running("web", 48.0)]);
    h.at(T0, &busy);
    h.at(T0 + 5 * MINUTE, &busy);
    // Tracked again after a restart of jaga: one reading, no rate yet.
    let mut first_reading = running("web", 0.0);
    first_reading.figures = None;
    assert!(h
        .at(T0 + 6 * MINUTE, &snapshot(vec![first_reading]))
        .is_empty());
    assert_eq!(h.state.firing(), 1);
    assert!(h.at(T0 + 7 * MINUTE, &busy).is_empty());
}

/// Subjects of a rule with no state are skipped where the condition does
/// not hold; another rule's state on the same containers must still move
/// on, and a subject that starts to hold must still start its own.
#[test]
fn rules_without_state_leave_the_others_states_as_they_are() {
    let two_rules = format!(
        "{CPU_RULE}  - id: 300102
    level: 12
    description: CPU above 99 % of the container's limit
    groups: [metrics, resources]
    metric: cpu_limit_percent
    above: 99
    for: 5m
"
    );
    let mut h = Harness::new(&two_rules);
    let busy = snapshot(vec![running("web", 48.0), running("api", 10.0)]);
    h.at(T0, &busy);
    let web = format!("300101/container/{:0>64}", "web");
    assert_eq!(
        alerts(&h.at(T0 + 5 * MINUTE, &busy)),
        vec![(EpisodeStatus::Firing, web.clone())]
    );
    // api starts to hold both rules: pending, then firing for both.
    let both = snapshot(vec![running("web", 48.0), running("api", 49.8)]);
    assert!(alerts(&h.at(T0 + 6 * MINUTE, &both)).is_empty());
    let api = |rule: &str| format!("{rule}/container/{:0>64}", "api");
    assert_eq!(
        alerts(&h.at(T0 + 11 * MINUTE, &both)),
        vec![
            (EpisodeStatus::Firing, api("300101")),
            (EpisodeStatus::Firing, api("300102")),
        ]
    );
    assert_eq!(h.state.firing(), 3);
    let calm = snapshot(vec![running("web", 10.0), running("api", 10.0)]);
    let resolved = h.at(T0 + 12 * MINUTE, &calm);
    assert_eq!(resolved.len(), 3);
    for transition in &resolved {
        let reason = &transition.alert.as_ref().unwrap().data["reason"];
        assert!(reason.contains("no longer above"), "{reason}");
    }
    assert!(h.state.is_empty());
}
