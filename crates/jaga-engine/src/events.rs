//! The Engine's event stream as [`DockerEvent`]s, and the inspection that
//! tells how a started container runs.

use std::collections::{BTreeMap, HashMap};

use bollard::models::EventMessage;
use bollard::query_parameters::{EventsOptions, InspectContainerOptions};
use futures_util::{Stream, StreamExt};
use jaga_model::{ContainerRuntimeConfig, DockerEvent};
use jaga_redact::Redaction;

use crate::{Engine, EngineError};

/// Which events to ask for: a time window and docker-style filters
/// (`type=container`, `event=start`, `container=web`, `label=k=v`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Unix time; with a fraction in nanoseconds: `1700000000.000000001`.
    pub since: Option<String>,
    pub until: Option<String>,
    pub filters: BTreeMap<String, Vec<String>>,
}

/// `since`/`until` as the Engine reads them: seconds with nanoseconds.
pub fn engine_time(time_nano: i64) -> String {
    format!(
        "{}.{:09}",
        time_nano.div_euclid(1_000_000_000),
        time_nano.rem_euclid(1_000_000_000)
    )
}

impl Engine {
    /// Events in `query`'s window; without `until`, the stream goes on live
    /// after the past ones. It ends, or yields an error, when the daemon
    /// goes away.
    pub fn events(
        &self,
        query: &EventQuery,
    ) -> impl Stream<Item = Result<DockerEvent, EngineError>> + '_ {
        let filters: HashMap<String, Vec<String>> = query
            .filters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let options = EventsOptions {
            since: query.since.clone(),
            until: query.until.clone(),
            filters: (!filters.is_empty()).then_some(filters),
        };
        self.docker
            .events(Some(options))
            .map(move |message| match message {
                Ok(message) => Ok(redact(normalize(message), self.redaction)),
                Err(e) => Err(self.api_error("follow events", e)),
            })
    }

    /// How a container runs: privileges, namespaces, capabilities, host mounts.
    pub async fn runtime_config(&self, id: &str) -> Result<ContainerRuntimeConfig, EngineError> {
        let response = self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.inspect_error(id, e))?;
        let host = response.host_config.unwrap_or_default();
        let mut host_mounts: Vec<String> = host
            .binds
            .unwrap_or_default()
            .iter()
            .filter_map(|bind| bind.split(':').next())
            .filter(|source| source.starts_with('/'))
            .map(str::to_owned)
            .collect();
        host_mounts.extend(
            response
                .mounts
                .unwrap_or_default()
                .into_iter()
                .filter(|m| m.typ.as_ref().is_some_and(|t| t == "bind"))
                .filter_map(|m| m.source),
        );
        host_mounts.sort();
        host_mounts.dedup();
        Ok(ContainerRuntimeConfig {
            privileged: host.privileged.unwrap_or(false),
            pid_mode: host.pid_mode.unwrap_or_default(),
            network_mode: host.network_mode.unwrap_or_default(),
            ipc_mode: host.ipc_mode.unwrap_or_default(),
            cap_add: host.cap_add.unwrap_or_default(),
            host_mounts,
            user: response.config.and_then(|c| c.user).unwrap_or_default(),
        })
    }
}

/// Splits `exec_start: sh -c id` into action and detail; takes the time from
/// `timeNano`, else `time`.
pub fn normalize(message: EventMessage) -> DockerEvent {
    let raw_action = message.action.unwrap_or_default();
    let (action, action_detail) = match raw_action.split_once(": ") {
        Some((action, detail)) => (action.to_owned(), Some(detail.trim().to_owned())),
        None => (raw_action.trim_end_matches(':').to_owned(), None),
    };
    let time_nano = message
        .time_nano
        .or_else(|| message.time.map(|t| t.saturating_mul(1_000_000_000)))
        .unwrap_or_default();
    let actor = message.actor.unwrap_or_default();
    DockerEvent {
        time_nano,
        kind: message.typ.map(|t| t.to_string()).unwrap_or_default(),
        action,
        action_detail,
        actor_id: actor.id.unwrap_or_default(),
        attributes: actor.attributes.unwrap_or_default().into_iter().collect(),
        scope: message.scope.map(|s| s.to_string()).unwrap_or_default(),
    }
}

/// The event with secrets redacted as it enters jaga: attribute values
/// (a container's labels travel as attributes) and the command of an exec.
pub fn redact(mut event: DockerEvent, redaction: Redaction) -> DockerEvent {
    redaction.map(&mut event.attributes);
    if let Some(detail) = event.action_detail.as_mut() {
        if let std::borrow::Cow::Owned(hidden) = redaction.command_line(detail) {
            *detail = hidden;
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{EventActor, EventMessageTypeEnum};

    fn message(action: &str) -> EventMessage {
        EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some(action.to_owned()),
            actor: Some(EventActor {
                id: Some("abc".to_owned()),
                attributes: Some(HashMap::from([("name".to_owned(), "web".to_owned())])),
            }),
            scope: None,
            time: Some(1_700_000_000),
            time_nano: Some(1_700_000_000_123_456_789),
        }
    }

    #[test]
    fn exec_start_carries_its_command() {
        let event = normalize(message("exec_start: sh -c 'cat /etc/shadow' "));
        assert_eq!(event.action, "exec_start");
        assert_eq!(
            event.action_detail.as_deref(),
            Some("sh -c 'cat /etc/shadow'")
        );
        assert_eq!(event.kind, "container");
        assert_eq!(event.time_nano, 1_700_000_000_123_456_789);
        assert_eq!(event.attributes["name"], "web");
    }

    #[test]
    fn plain_actions_have_no_detail_and_old_daemons_give_seconds() {
        let mut old = message("die");
        old.time_nano = None;
        let event = normalize(old);
        assert_eq!(event.action, "die");
        assert_eq!(event.action_detail, None);
        assert_eq!(event.time_nano, 1_700_000_000_000_000_000);
    }

    #[test]
    fn exec_passwords_and_secret_labels_are_redacted_as_events_come_in() {
        let mut exec = message("exec_start: sh -c mysql -pS3cretPassw0rd shop");
        if let Some(actor) = exec.actor.as_mut() {
            actor.attributes = Some(HashMap::from([
                (
                    "com.example.token".to_owned(),
                    "tok-8f2a61c9d4e7b035".to_owned(),
                ),
                ("name".to_owned(), "db".to_owned()),
            ]));
        }
        let redacted = redact(normalize(exec.clone()), Redaction::Redact);
        assert_eq!(
            redacted.action_detail.as_deref(),
            Some("sh -c mysql -p<redacted, 14 chars> shop")
        );
        assert_eq!(
            redacted.attributes["com.example.token"],
            "<redacted, 20 chars>"
        );
        assert_eq!(redacted.attributes["name"], "db");
        let raw = redact(normalize(exec), Redaction::KeepRaw);
        assert_eq!(
            raw.action_detail.as_deref(),
            Some("sh -c mysql -pS3cretPassw0rd shop")
        );
    }

    #[test]
    fn engine_time_keeps_nanoseconds() {
        assert_eq!(
            engine_time(1_700_000_000_000_000_001),
            "1700000000.000000001"
        );
    }
}
