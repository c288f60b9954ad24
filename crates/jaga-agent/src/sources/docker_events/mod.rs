//! Docker events as security events: enrichment, alerts, the listener of
//! `jaga serve`, the alerts file, and the `jaga events` view.

pub mod listener;

use std::collections::BTreeMap;

use jaga_model::{Alert, AlertAgent, DockerEvent, Event, EventContainer};
use jaga_rules::events::EventMatch;

/// Attributes of container events that are not the container's labels.
const NON_LABEL_ATTRIBUTES: &[&str] = &["name", "image", "exitCode", "signal", "execID"];

/// The event with what its attributes tell: for container events the
/// container's name, image, labels and compose project/service; for exec
/// events the command run.
pub fn enrich(docker: DockerEvent) -> Event {
    let container = (docker.kind == "container").then(|| {
        let labels: BTreeMap<String, String> = docker
            .attributes
            .iter()
            .filter(|(k, _)| !NON_LABEL_ATTRIBUTES.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        EventContainer {
            id: docker.actor_id.clone(),
            name: docker.attributes.get("name").cloned().unwrap_or_default(),
            image: docker.attributes.get("image").cloned().unwrap_or_default(),
            compose_project: labels.get("com.docker.compose.project").cloned(),
            compose_service: labels.get("com.docker.compose.service").cloned(),
            labels,
            runtime: None,
        }
    });
    let exec_command = matches!(docker.action.as_str(), "exec_create" | "exec_start")
        .then(|| docker.action_detail.clone())
        .flatten();
    Event {
        docker,
        container,
        exec_command,
    }
}

/// Alerts for the rules `event` matched at `min_level` or above.
pub fn alerts_for(
    event: &Event,
    matches: Vec<EventMatch>,
    agent: &AlertAgent,
    min_level: u8,
) -> Vec<Alert> {
    let timestamp = rfc3339_ms(event.docker.time_unix_ms());
    let identity = fnv1a(&event.docker.identity());
    matches
        .into_iter()
        .filter(|m| m.rule.level >= min_level)
        .map(|m| Alert {
            id: format!(
                "{}.{identity:016x}.{}",
                event.docker.time_nano.div_euclid(1_000_000_000),
                m.rule.id
            ),
            timestamp: timestamp.clone(),
            rule: m.rule,
            agent: agent.clone(),
            container: event.container.clone(),
            data: m.data,
            location: "docker-events".to_owned(),
            event: Some(event.docker.clone()),
            episode: None,
        })
        .collect()
}

/// The host's name, as the kernel has it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

pub use crate::sink::{fnv1a, rfc3339_ms};

#[cfg(test)]
mod tests {
    use super::*;

    fn docker_event(action: &str, detail: Option<&str>) -> DockerEvent {
        DockerEvent {
            time_nano: 1_700_000_000_123_000_000,
            kind: "container".to_owned(),
            action: action.to_owned(),
            action_detail: detail.map(str::to_owned),
            actor_id: "4f9d3c1e2b7a".to_owned(),
            attributes: BTreeMap::from([
                ("name".to_owned(), "shop-web-1".to_owned()),
                ("image".to_owned(), "nginx:1.25".to_owned()),
                ("execID".to_owned(), "e1".to_owned()),
                ("com.docker.compose.project".to_owned(), "shop".to_owned()),
                ("com.docker.compose.service".to_owned(), "web".to_owned()),
            ]),
            scope: "local".to_owned(),
        }
    }

    #[test]
    fn container_events_carry_name_image_labels_and_compose() {
        let event = enrich(docker_event("exec_start", Some("sh -c id")));
        let container = event.container.unwrap();
        assert_eq!(container.name, "shop-web-1");
        assert_eq!(container.image, "nginx:1.25");
        assert_eq!(container.compose_project.as_deref(), Some("shop"));
        assert_eq!(container.compose_service.as_deref(), Some("web"));
        assert_eq!(container.labels.len(), 2);
        assert_eq!(event.exec_command.as_deref(), Some("sh -c id"));
    }

    #[test]
    fn alerts_have_stable_ids_and_respect_min_level() {
        let event = enrich(docker_event("start", None));
        let matches = jaga_rules::events::evaluate(&event, || 0);
        let agent = AlertAgent {
            id: "vm".to_owned(),
            name: "vm".to_owned(),
        };
        let alerts = alerts_for(&event, matches.clone(), &agent, 3);
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].timestamp, "2023-11-14T22:13:20.123Z");
        assert!(alerts[0].id.starts_with("1700000000."));
        assert!(alerts[0].id.ends_with(".91001"));
        assert_eq!(
            alerts_for(&event, matches.clone(), &agent, 3)[0].id,
            alerts[0].id
        );
        assert!(alerts_for(&event, matches, &agent, 4).is_empty());
    }
}
