//! What people read about an alert, the same in Slack, mail and syslog:
//! a one-line summary and the facts under it. Every piece that comes from
//! outside (container names, descriptions filled from events, log fields)
//! has its control characters escaped, so no field can start a new line
//! or drive a terminal.

use std::borrow::Cow;

use jaga_model::{escape_control, Alert};

use crate::Message;

/// How bad an alert is, in the words receivers route on. Levels are
/// Wazuh's 0–15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn of_level(level: u8) -> Self {
        match level {
            12.. => Severity::Critical,
            7..=11 => Severity::Warning,
            _ => Severity::Info,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// `escape_control`, owned.
pub fn clean(text: &str) -> String {
    escape_control(text).into_owned()
}

/// At most `max` bytes of `text`, cut on a character boundary, with `…`
/// when something was cut.
pub fn shorten(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
}

/// The container's name without Docker's leading `/`, if the alert is
/// about a container.
pub fn container_name(alert: &Alert) -> Option<&str> {
    let container = alert.container.as_ref()?;
    let name = container.name.trim_start_matches('/');
    if name.is_empty() {
        // A container gone before it could be named is still worth naming.
        return (!container.id.is_empty()).then(|| short_id(&container.id));
    }
    Some(name)
}

fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

pub fn container_image(alert: &Alert) -> Option<&str> {
    let image = alert.container.as_ref()?.image.as_str();
    (!image.is_empty()).then_some(image)
}

/// The host the alert was raised on (the agent's name is its hostname).
pub fn host(alert: &Alert) -> Option<&str> {
    let name = alert.agent.name.as_str();
    (!name.is_empty()).then_some(name)
}

/// One line a person can act on, e.g.
/// `level 12 Privileged container started: web on host1`; for a group,
/// `5× level 12 SQL injection attempt: web on host1`. Escaped.
pub fn summary(message: &Message) -> String {
    let Some(first) = message.first() else {
        return "no alert".to_string();
    };
    let alert = &first.alert;
    let mut line = String::new();
    if message.alerts.len() > 1 {
        line.push_str(&format!("{}× ", message.alerts.len()));
    }
    line.push_str(&format!(
        "level {} {}",
        alert.rule.level, alert.rule.description
    ));
    if let Some(name) = container_name(alert) {
        // Event descriptions often name the container already.
        if !alert.rule.description.contains(name) {
            line.push_str(&format!(": {name}"));
        }
    }
    if let Some(host) = host(alert) {
        line.push_str(&format!(" on {host}"));
    }
    clean(&line)
}

/// The facts under the summary, as (label, value) pairs, escaped: rule,
/// container, image, host, time, location, the rule's data fields (values
/// cut at `max_value_bytes`), and the alert id(s).
pub fn facts(message: &Message, max_value_bytes: usize) -> Vec<(String, String)> {
    let Some(first) = message.first() else {
        return Vec::new();
    };
    let alert = &first.alert;
    let mut facts = Vec::new();
    let mut add = |label: &str, value: &str| {
        facts.push((clean(label), clean(&shorten(value, max_value_bytes))));
    };
    add(
        "Rule",
        &format!(
            "{} (level {}, {})",
            alert.rule.id,
            alert.rule.level,
            Severity::of_level(alert.rule.level).as_str()
        ),
    );
    if !alert.rule.groups.is_empty() {
        add("Groups", &alert.rule.groups.join(", "));
    }
    if !alert.rule.mitre.is_empty() {
        add("MITRE ATT&CK", &alert.rule.mitre.join(", "));
    }
    if let Some(name) = container_name(alert) {
        add("Container", name);
    }
    if let Some(image) = container_image(alert) {
        add("Image", image);
    }
    if let Some(host) = host(alert) {
        add("Host", host);
    }
    match message.alerts.as_slice() {
        [_] => add("Time", &alert.timestamp),
        [oldest, .., newest] => add(
            "Time",
            &format!("{} to {}", oldest.alert.timestamp, newest.alert.timestamp),
        ),
        [] => {}
    }
    if let Some(episode) = &alert.episode {
        let status = match episode.status {
            jaga_model::EpisodeStatus::Firing => "firing".to_string(),
            jaga_model::EpisodeStatus::Resolved => format!(
                "resolved at {}",
                episode.ended_at.as_deref().unwrap_or(&alert.timestamp)
            ),
        };
        add(
            "Condition",
            &format!("{status}, since {}", episode.started_at),
        );
    }
    if !alert.location.is_empty() {
        add("Location", &alert.location);
    }
    for (key, value) in &alert.data {
        add(key, value);
    }
    if message.alerts.len() > 1 {
        add("Alert ids", &alert_ids(message).join(", "));
    } else {
        add("Alert id", &alert.id);
    }
    facts
}

/// An error with its sources, `a: b: c`, escaped: reqwest and lettre keep
/// the useful part (connection refused, certificate unknown) in them, and
/// a server's answer may be in it.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    clean(&text)
}

pub fn alert_ids(message: &Message) -> Vec<&str> {
    message.alerts.iter().map(|a| a.alert.id.as_str()).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::StoredAlert;

    /// An alert as the event rules raise it (the one the integration
    /// tests send too), for the modules' tests.
    pub(crate) fn sample_alert(id: &str, container: &str) -> StoredAlert {
        let mut alert: Alert =
            serde_json::from_str(include_str!("../tests/fixtures/alert.json")).unwrap();
        alert.id = id.to_string();
        if let Some(found) = alert.container.as_mut() {
            found.name = container.to_string();
        }
        StoredAlert { seq: 7, alert }
    }

    #[test]
    fn levels_map_to_severities_at_7_and_12() {
        let at = |level| Severity::of_level(level).as_str();
        assert_eq!(
            (0..=15).map(at).collect::<Vec<_>>(),
            [
                ["info"; 7].as_slice(),
                ["warning"; 5].as_slice(),
                ["critical"; 4].as_slice()
            ]
            .concat()
        );
    }

    #[test]
    fn the_summary_names_level_rule_container_and_host() {
        let message = Message::single(sample_alert("a1", "web"));
        assert_eq!(
            summary(&message),
            "level 12 Privileged container started: web on host1"
        );
    }

    #[test]
    fn a_description_that_names_the_container_is_not_repeated() {
        let mut alert = sample_alert("a1", "web");
        alert.alert.rule.description = "Container web started".to_string();
        assert_eq!(
            summary(&Message::single(alert)),
            "level 12 Container web started on host1"
        );
    }

    #[test]
    fn a_group_says_how_many_and_lists_every_id() {
        let message = Message {
            alerts: vec![
                sample_alert("a1", "web"),
                sample_alert("a2", "web"),
                sample_alert("a3", "web"),
            ],
        };
        assert!(summary(&message).starts_with("3× level 12 "));
        let ids = facts(&message, 100)
            .into_iter()
            .find(|(label, _)| label == "Alert ids")
            .map(|(_, value)| value);
        assert_eq!(ids.as_deref(), Some("a1, a2, a3"));
    }

    #[test]
    fn a_container_name_cannot_forge_a_line() {
        let message = Message::single(sample_alert("a1", "web\nlevel 0 all is well"));
        let line = summary(&message);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("web\\nlevel 0"), "{line}");
        for (label, value) in facts(&message, 100) {
            assert!(!value.contains('\n'), "{label}: {value}");
        }
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        let cut = shorten("ééééé", 7);
        assert!(cut.len() <= 7, "{cut}");
        assert_eq!(cut, "éé…");
    }
}
