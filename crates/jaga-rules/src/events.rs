//! Built-in rules for Docker events, in the spirit of the Wazuh
//! docker-listener rules but with ids of jaga's own (910xx), MITRE ATT&CK
//! technique ids and levels 0–15.
//!
//! Every event matches at most one *base* rule (its type and action) and any
//! number of *risk* rules (on `start`: privileged, Docker socket, host
//! namespaces, added capabilities). A die that completes a burst of
//! [`RESTART_LOOP`] exits also raises the restart-loop rule: the caller
//! counts the exits, so the count can come from a store that survives
//! restarts.

use std::collections::BTreeMap;

use jaga_model::{AlertRule, Event, DANGEROUS_CAPABILITIES};

/// What must hold besides type and action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Always,
    ExitCodeNonZero,
    ExitCodeZero,
    Unhealthy,
    Privileged,
    DockerSocketMounted,
    SensitiveHostPathMounted,
    HostPid,
    HostNetwork,
    HostIpc,
    DangerousCapabilities,
    /// The `die` completing a burst: count in the window is a multiple of the threshold.
    RestartLoop,
}

/// One built-in rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRule {
    pub id: &'static str,
    pub level: u8,
    /// With `{name}`, `{image}`, `{actor}`, `{command}`, `{exit_code}`,
    /// `{signal}`, `{caps}`, `{mounts}`, `{type}`, `{action}` filled in.
    pub description: &'static str,
    pub groups: &'static [&'static str],
    pub mitre: &'static [&'static str],
    /// Event type; `*` for any.
    pub kind: &'static str,
    /// Actions; empty for any.
    pub actions: &'static [&'static str],
    pub condition: Condition,
    /// A base rule describes the event itself; the first base rule that
    /// matches wins. Other rules add to it.
    pub base: bool,
}

/// Exits of one container within a window that make a restart loop.
pub struct RestartLoop {
    pub exits: u32,
    pub window_seconds: i64,
}

pub const RESTART_LOOP: RestartLoop = RestartLoop {
    exits: 3,
    window_seconds: 120,
};

/// Host paths whose mount into a container hands it the host.
pub const SENSITIVE_HOST_PATHS: &[&str] = &[
    "/",
    "/etc",
    "/proc",
    "/sys",
    "/boot",
    "/dev",
    "/root",
    "/var/lib/docker",
    "/run",
    "/var/run",
    "/usr",
    "/lib",
];

const C: &[&str] = &["docker", "container"];
const I: &[&str] = &["docker", "image"];
const V: &[&str] = &["docker", "volume"];
const N: &[&str] = &["docker", "network"];
const ESCAPE: &[&str] = &[
    "docker",
    "container",
    "privilege_escalation",
    "container_escape",
];

macro_rules! rule {
    ($id:literal, $level:literal, $kind:literal, [$($action:literal),*], $cond:ident, $groups:expr, [$($mitre:literal),*], $base:literal, $desc:literal) => {
        EventRule {
            id: $id,
            level: $level,
            description: $desc,
            groups: $groups,
            mitre: &[$($mitre),*],
            kind: $kind,
            actions: &[$($action),*],
            condition: Condition::$cond,
            base: $base,
        }
    };
}

/// The built-in event rules, base rules first in the order they are tried.
pub const EVENT_RULES: &[EventRule] = &[
    // Containers.
    rule!(
        "91000",
        3,
        "container",
        ["create"],
        Always,
        C,
        ["T1610"],
        true,
        "Container {name} created from image {image}"
    ),
    rule!(
        "91001",
        3,
        "container",
        ["start"],
        Always,
        C,
        ["T1610"],
        true,
        "Container {name} started (image {image})"
    ),
    rule!(
        "91002",
        3,
        "container",
        ["stop"],
        Always,
        C,
        ["T1489"],
        true,
        "Container {name} stopped"
    ),
    rule!(
        "91003",
        3,
        "container",
        ["pause"],
        Always,
        C,
        ["T1489"],
        true,
        "Container {name} paused"
    ),
    rule!(
        "91004",
        3,
        "container",
        ["unpause"],
        Always,
        C,
        [],
        true,
        "Container {name} unpaused"
    ),
    rule!(
        "91005",
        5,
        "container",
        ["kill"],
        Always,
        C,
        ["T1489"],
        true,
        "Container {name} sent signal {signal}"
    ),
    rule!(
        "91006",
        7,
        "container",
        ["die"],
        ExitCodeNonZero,
        C,
        [],
        true,
        "Container {name} exited with code {exit_code}"
    ),
    rule!(
        "91007",
        2,
        "container",
        ["die"],
        ExitCodeZero,
        C,
        [],
        true,
        "Container {name} exited normally"
    ),
    rule!(
        "91008",
        10,
        "container",
        ["oom"],
        Always,
        C,
        ["T1499"],
        true,
        "Container {name} ran out of memory: the OOM killer struck"
    ),
    rule!(
        "91010",
        3,
        "container",
        ["destroy"],
        Always,
        C,
        ["T1070"],
        true,
        "Container {name} removed"
    ),
    rule!(
        "91011",
        6,
        "container",
        ["exec_start"],
        Always,
        &["docker", "container", "exec"],
        ["T1609"],
        true,
        "Command run in container {name}: {command}"
    ),
    rule!(
        "91012",
        2,
        "container",
        ["exec_create", "exec_die", "exec_detach"],
        Always,
        C,
        ["T1609"],
        true,
        "Exec {action} in container {name}"
    ),
    rule!(
        "91013",
        6,
        "container",
        ["attach"],
        Always,
        C,
        ["T1609"],
        true,
        "Terminal attached to container {name}"
    ),
    rule!(
        "91014",
        6,
        "container",
        ["archive-path"],
        Always,
        &["docker", "container", "exfiltration"],
        ["T1005"],
        true,
        "Files copied out of container {name}"
    ),
    rule!(
        "91015",
        6,
        "container",
        ["extract-to-dir"],
        Always,
        C,
        ["T1105"],
        true,
        "Files copied into container {name}"
    ),
    rule!(
        "91016",
        5,
        "container",
        ["commit"],
        Always,
        C,
        ["T1525"],
        true,
        "Container {name} committed to an image"
    ),
    rule!(
        "91017",
        6,
        "container",
        ["export"],
        Always,
        &["docker", "container", "exfiltration"],
        ["T1005"],
        true,
        "Filesystem of container {name} exported"
    ),
    rule!(
        "91018",
        3,
        "container",
        ["restart"],
        Always,
        C,
        [],
        true,
        "Container {name} restarted"
    ),
    rule!(
        "91019",
        4,
        "container",
        ["rename"],
        Always,
        C,
        ["T1036"],
        true,
        "Container renamed to {name}"
    ),
    rule!(
        "91020",
        4,
        "container",
        ["update"],
        Always,
        C,
        [],
        true,
        "Resources of container {name} updated"
    ),
    rule!(
        "91021",
        7,
        "container",
        ["health_status"],
        Unhealthy,
        C,
        [],
        true,
        "Container {name} is unhealthy"
    ),
    rule!(
        "91022",
        2,
        "container",
        ["health_status", "top", "resize"],
        Always,
        C,
        [],
        true,
        "Container {name}: {action}"
    ),
    rule!(
        "91023",
        5,
        "container",
        ["prune"],
        Always,
        C,
        ["T1070"],
        true,
        "Stopped containers pruned"
    ),
    // Images.
    rule!(
        "91050",
        3,
        "image",
        ["pull"],
        Always,
        I,
        [],
        true,
        "Image {actor} pulled"
    ),
    rule!(
        "91051",
        5,
        "image",
        ["push"],
        Always,
        I,
        ["T1525"],
        true,
        "Image {actor} pushed"
    ),
    rule!(
        "91052",
        3,
        "image",
        ["delete"],
        Always,
        I,
        ["T1070"],
        true,
        "Image {actor} deleted"
    ),
    rule!(
        "91053",
        5,
        "image",
        ["import"],
        Always,
        I,
        ["T1525"],
        true,
        "Image {actor} imported"
    ),
    rule!(
        "91054",
        5,
        "image",
        ["load"],
        Always,
        I,
        ["T1525"],
        true,
        "Image {actor} loaded"
    ),
    rule!(
        "91055",
        5,
        "image",
        ["save"],
        Always,
        &["docker", "image", "exfiltration"],
        ["T1005"],
        true,
        "Image {actor} saved to a file"
    ),
    rule!(
        "91056",
        3,
        "image",
        ["tag"],
        Always,
        I,
        [],
        true,
        "Image {actor} tagged {name}"
    ),
    rule!(
        "91057",
        3,
        "image",
        ["untag"],
        Always,
        I,
        [],
        true,
        "Image {actor} untagged"
    ),
    rule!(
        "91058",
        5,
        "image",
        ["prune"],
        Always,
        I,
        ["T1070"],
        true,
        "Unused images pruned"
    ),
    // Volumes.
    rule!(
        "91060",
        3,
        "volume",
        ["create"],
        Always,
        V,
        [],
        true,
        "Volume {actor} created"
    ),
    rule!(
        "91061",
        5,
        "volume",
        ["destroy"],
        Always,
        V,
        ["T1485"],
        true,
        "Volume {actor} removed"
    ),
    rule!(
        "91062",
        2,
        "volume",
        ["mount", "unmount"],
        Always,
        V,
        [],
        true,
        "Volume {actor}: {action}"
    ),
    rule!(
        "91063",
        5,
        "volume",
        ["prune"],
        Always,
        V,
        ["T1485"],
        true,
        "Unused volumes pruned"
    ),
    // Networks.
    rule!(
        "91070",
        3,
        "network",
        ["create"],
        Always,
        N,
        [],
        true,
        "Network {name} created"
    ),
    rule!(
        "91071",
        3,
        "network",
        ["destroy", "remove"],
        Always,
        N,
        [],
        true,
        "Network {name} removed"
    ),
    rule!(
        "91072",
        2,
        "network",
        ["connect", "disconnect"],
        Always,
        N,
        [],
        true,
        "Network {name}: container {action}"
    ),
    rule!(
        "91073",
        5,
        "network",
        ["prune"],
        Always,
        N,
        [],
        true,
        "Unused networks pruned"
    ),
    // Daemon and plugins.
    rule!(
        "91080",
        5,
        "daemon",
        ["reload"],
        Always,
        &["docker", "daemon"],
        ["T1562"],
        true,
        "Docker daemon configuration reloaded"
    ),
    rule!(
        "91090",
        8,
        "plugin",
        ["install", "pull"],
        Always,
        &["docker", "plugin"],
        ["T1543"],
        true,
        "Docker plugin {name} installed"
    ),
    rule!(
        "91091",
        5,
        "plugin",
        ["enable", "disable", "remove"],
        Always,
        &["docker", "plugin"],
        ["T1543"],
        true,
        "Docker plugin {name}: {action}"
    ),
    // Anything else, so no event goes without a rule.
    rule!(
        "91099",
        2,
        "*",
        [],
        Always,
        &["docker"],
        [],
        true,
        "Docker {type} event {action} on {actor}"
    ),
    // Risks of a container being started.
    rule!(
        "91030",
        12,
        "container",
        ["start"],
        Privileged,
        ESCAPE,
        ["T1611"],
        false,
        "Privileged container {name} started (image {image})"
    ),
    rule!(
        "91031",
        12,
        "container",
        ["start"],
        DockerSocketMounted,
        ESCAPE,
        ["T1611", "T1552"],
        false,
        "Container {name} started with the Docker socket mounted"
    ),
    rule!(
        "91032",
        10,
        "container",
        ["start"],
        SensitiveHostPathMounted,
        ESCAPE,
        ["T1611"],
        false,
        "Container {name} started with sensitive host paths mounted: {mounts}"
    ),
    rule!(
        "91033",
        10,
        "container",
        ["start"],
        HostPid,
        ESCAPE,
        ["T1611"],
        false,
        "Container {name} started in the host's PID namespace"
    ),
    rule!(
        "91034",
        8,
        "container",
        ["start"],
        HostNetwork,
        ESCAPE,
        ["T1611"],
        false,
        "Container {name} started in the host's network namespace"
    ),
    rule!(
        "91035",
        8,
        "container",
        ["start"],
        HostIpc,
        ESCAPE,
        ["T1611"],
        false,
        "Container {name} started in the host's IPC namespace"
    ),
    rule!(
        "91036",
        10,
        "container",
        ["start"],
        DangerousCapabilities,
        ESCAPE,
        ["T1611"],
        false,
        "Container {name} started with added capabilities {caps}"
    ),
    rule!(
        "91009",
        10,
        "container",
        ["die"],
        RestartLoop,
        C,
        ["T1499"],
        false,
        "Container {name} is restarting in a loop: {exits} exits within {window} s"
    ),
];

/// A rule that matched, with its description filled in and the fields it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMatch {
    pub rule: AlertRule,
    pub data: BTreeMap<String, String>,
}

/// The rules `event` matches: its base rule, then risk rules.
/// `exits_in_window` is the number of `die` events of the same container in
/// the last [`RESTART_LOOP`] window, this one included (only asked for dies).
pub fn evaluate(event: &Event, exits_in_window: impl FnOnce() -> u32) -> Vec<EventMatch> {
    let docker = &event.docker;
    let mut fields = fields_of(event);
    let mut exits: Option<u32> = None;
    let mut exits_in_window = Some(exits_in_window);
    let mut matches = Vec::new();
    let mut base_found = false;
    for rule in EVENT_RULES {
        if rule.base && base_found {
            continue;
        }
        if rule.kind != "*" && rule.kind != docker.kind {
            continue;
        }
        if !rule.actions.is_empty() && !rule.actions.contains(&docker.action.as_str()) {
            continue;
        }
        let holds = match rule.condition {
            Condition::RestartLoop => {
                let count =
                    *exits.get_or_insert_with(|| exits_in_window.take().map_or(0, |count| count()));
                count >= RESTART_LOOP.exits && count.is_multiple_of(RESTART_LOOP.exits)
            }
            other => condition_holds(other, event),
        };
        if !holds {
            continue;
        }
        if rule.base {
            base_found = true;
        }
        if let Some(count) = exits {
            fields.insert("exits".to_owned(), count.to_string());
            fields.insert("window".to_owned(), RESTART_LOOP.window_seconds.to_string());
        }
        matches.push(EventMatch {
            rule: AlertRule {
                id: rule.id.to_owned(),
                level: rule.level,
                description: fill(rule.description, &fields),
                groups: rule.groups.iter().map(|g| (*g).to_owned()).collect(),
                mitre: rule.mitre.iter().map(|m| (*m).to_owned()).collect(),
            },
            data: fields.clone(),
        });
    }
    matches
}

fn condition_holds(condition: Condition, event: &Event) -> bool {
    let attributes = &event.docker.attributes;
    let runtime = event.container.as_ref().and_then(|c| c.runtime.as_ref());
    match condition {
        Condition::Always => true,
        Condition::ExitCodeNonZero => attributes.get("exitCode").is_some_and(|c| c != "0"),
        Condition::ExitCodeZero => attributes.get("exitCode").is_none_or(|c| c == "0"),
        Condition::Unhealthy => event.docker.action_detail.as_deref() == Some("unhealthy"),
        Condition::Privileged => runtime.is_some_and(|r| r.privileged),
        Condition::DockerSocketMounted => {
            runtime.is_some_and(|r| r.host_mounts.iter().any(|m| is_docker_socket(m)))
        }
        Condition::SensitiveHostPathMounted => {
            runtime.is_some_and(|r| !sensitive_mounts(&r.host_mounts).is_empty())
        }
        Condition::HostPid => runtime.is_some_and(|r| r.pid_mode == "host"),
        Condition::HostNetwork => runtime.is_some_and(|r| r.network_mode == "host"),
        Condition::HostIpc => runtime.is_some_and(|r| r.ipc_mode == "host"),
        Condition::DangerousCapabilities => {
            runtime.is_some_and(|r| !dangerous_caps(&r.cap_add).is_empty())
        }
        Condition::RestartLoop => false,
    }
}

fn is_docker_socket(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path.ends_with("/docker.sock")
        || path.ends_with("/containerd.sock")
        || path == "/run/docker"
        || path == "/var/run/docker"
}

fn sensitive_mounts(mounts: &[String]) -> Vec<&str> {
    mounts
        .iter()
        .map(String::as_str)
        .filter(|m| {
            let normal = if *m == "/" {
                "/"
            } else {
                m.trim_end_matches('/')
            };
            SENSITIVE_HOST_PATHS.contains(&normal) && !is_docker_socket(normal)
        })
        .collect()
}

fn dangerous_caps(caps: &[String]) -> Vec<String> {
    caps.iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
        .filter(|c| DANGEROUS_CAPABILITIES.contains(&c.as_str()))
        .collect()
}

/// Fields an alert carries, and the descriptions draw on.
fn fields_of(event: &Event) -> BTreeMap<String, String> {
    let docker = &event.docker;
    let mut fields = BTreeMap::new();
    fields.insert("type".to_owned(), docker.kind.clone());
    fields.insert("action".to_owned(), docker.action.clone());
    fields.insert("actor".to_owned(), docker.actor_id.clone());
    let name = event
        .container
        .as_ref()
        .map(|c| c.name.clone())
        .filter(|n| !n.is_empty())
        .or_else(|| docker.attributes.get("name").cloned())
        .unwrap_or_else(|| docker.actor_id.chars().take(12).collect());
    fields.insert("name".to_owned(), name);
    if let Some(image) = event
        .container
        .as_ref()
        .map(|c| c.image.clone())
        .filter(|i| !i.is_empty())
        .or_else(|| docker.attributes.get("image").cloned())
    {
        fields.insert("image".to_owned(), image);
    }
    if let Some(command) = &event.exec_command {
        fields.insert("command".to_owned(), command.clone());
    }
    if let Some(code) = docker.attributes.get("exitCode") {
        fields.insert("exit_code".to_owned(), code.clone());
    }
    if let Some(signal) = docker.attributes.get("signal") {
        fields.insert("signal".to_owned(), signal.clone());
    }
    if let Some(detail) = &docker.action_detail {
        fields.insert("detail".to_owned(), detail.clone());
    }
    if let Some(runtime) = event.container.as_ref().and_then(|c| c.runtime.as_ref()) {
        let caps = dangerous_caps(&runtime.cap_add);
        if !caps.is_empty() {
            fields.insert("caps".to_owned(), caps.join(","));
        }
        let mut risky: Vec<&str> = sensitive_mounts(&runtime.host_mounts);
        risky.extend(
            runtime
                .host_mounts
                .iter()
                .map(String::as_str)
                .filter(|m| is_docker_socket(m)),
        );
        if !risky.is_empty() {
            fields.insert("mounts".to_owned(), risky.join(","));
        }
    }
    fields
}

fn fill(template: &str, fields: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                out.push_str(fields.get(key).map_or("?", String::as_str));
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{ContainerRuntimeConfig, DockerEvent, EventContainer};

    fn event(kind: &str, action: &str, attributes: &[(&str, &str)]) -> Event {
        Event {
            docker: DockerEvent {
                time_nano: 1_700_000_000_000_000_000,
                kind: kind.to_owned(),
                action: action.to_owned(),
                action_detail: None,
                actor_id: "4f9d3c1e2b7a68d5c0e1f2a3".to_owned(),
                attributes: attributes
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                scope: "local".to_owned(),
            },
            container: None,
            exec_command: None,
        }
    }

    fn ids(matches: &[EventMatch]) -> Vec<(&str, u8)> {
        matches
            .iter()
            .map(|m| (m.rule.id.as_str(), m.rule.level))
            .collect()
    }

    #[test]
    fn rule_ids_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for rule in EVENT_RULES {
            assert!(seen.insert(rule.id), "duplicate rule id {}", rule.id);
            assert!(rule.level <= 15);
        }
    }

    #[test]
    fn lifecycle_events_have_their_rules() {
        let name = [("name", "web"), ("image", "nginx:1.25")];
        for (action, id, level) in [
            ("start", "91001", 3),
            ("pause", "91003", 3),
            ("unpause", "91004", 3),
            ("stop", "91002", 3),
            ("destroy", "91010", 3),
            ("oom", "91008", 10),
        ] {
            let matches = evaluate(&event("container", action, &name), || 0);
            assert_eq!(ids(&matches), vec![(id, level)], "{action}");
        }
        let started = evaluate(&event("container", "start", &name), || 0);
        assert_eq!(
            started[0].rule.description,
            "Container web started (image nginx:1.25)"
        );
        assert_eq!(started[0].rule.mitre, vec!["T1610"]);
    }

    #[test]
    fn die_level_depends_on_exit_code() {
        let failed = evaluate(
            &event("container", "die", &[("name", "web"), ("exitCode", "137")]),
            || 1,
        );
        assert_eq!(ids(&failed), vec![("91006", 7)]);
        assert_eq!(
            failed[0].rule.description,
            "Container web exited with code 137"
        );
        let clean = evaluate(
            &event("container", "die", &[("name", "web"), ("exitCode", "0")]),
            || 1,
        );
        assert_eq!(ids(&clean), vec![("91007", 2)]);
    }

    #[test]
    fn third_exit_in_the_window_is_a_restart_loop() {
        let die = event("container", "die", &[("name", "web"), ("exitCode", "1")]);
        assert_eq!(ids(&evaluate(&die, || 2)), vec![("91006", 7)]);
        let looped = evaluate(&die, || 3);
        assert_eq!(ids(&looped), vec![("91006", 7), ("91009", 10)]);
        assert_eq!(
            looped[1].rule.description,
            "Container web is restarting in a loop: 3 exits within 120 s"
        );
        assert_eq!(ids(&evaluate(&die, || 4)), vec![("91006", 7)]);
        assert_eq!(
            ids(&evaluate(&die, || 6)),
            vec![("91006", 7), ("91009", 10)]
        );
    }

    #[test]
    fn exec_carries_the_command() {
        let mut exec = event(
            "container",
            "exec_start",
            &[("name", "web"), ("execID", "e1")],
        );
        exec.exec_command = Some("sh -c 'cat /etc/shadow'".to_owned());
        let matches = evaluate(&exec, || 0);
        assert_eq!(ids(&matches), vec![("91011", 6)]);
        assert_eq!(
            matches[0].rule.description,
            "Command run in container web: sh -c 'cat /etc/shadow'"
        );
        assert_eq!(matches[0].data["command"], "sh -c 'cat /etc/shadow'");
    }

    #[test]
    fn risky_starts_rate_high() {
        let mut start = event(
            "container",
            "start",
            &[("name", "pwn"), ("image", "alpine")],
        );
        start.container = Some(EventContainer {
            name: "pwn".to_owned(),
            runtime: Some(ContainerRuntimeConfig {
                privileged: true,
                pid_mode: "host".to_owned(),
                network_mode: "host".to_owned(),
                cap_add: vec!["SYS_ADMIN".to_owned(), "CHOWN".to_owned()],
                host_mounts: vec!["/var/run/docker.sock".to_owned(), "/etc".to_owned()],
                ..Default::default()
            }),
            ..Default::default()
        });
        let matches = evaluate(&start, || 0);
        assert_eq!(
            ids(&matches),
            vec![
                ("91001", 3),
                ("91030", 12),
                ("91031", 12),
                ("91032", 10),
                ("91033", 10),
                ("91034", 8),
                ("91036", 10)
            ]
        );
        assert_eq!(
            matches[6].rule.description,
            "Container pwn started with added capabilities SYS_ADMIN"
        );
        assert_eq!(matches[3].data["mounts"], "/etc,/var/run/docker.sock");
    }

    #[test]
    fn image_and_other_events() {
        assert_eq!(
            ids(&evaluate(&event("image", "delete", &[]), || 0)),
            vec![("91052", 3)]
        );
        assert_eq!(
            ids(&evaluate(&event("image", "pull", &[]), || 0)),
            vec![("91050", 3)]
        );
        assert_eq!(
            ids(&evaluate(&event("daemon", "reload", &[]), || 0)),
            vec![("91080", 5)]
        );
        let unknown = evaluate(&event("config", "create", &[]), || 0);
        assert_eq!(ids(&unknown), vec![("91099", 2)]);
        assert_eq!(
            unknown[0].rule.description,
            "Docker config event create on 4f9d3c1e2b7a68d5c0e1f2a3"
        );
    }
}
