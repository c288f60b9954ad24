//! `jaga events`: Docker events as they happen (or from `--since`), each
//! with the alerts its rules raise, as a table or JSON lines.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;

use anyhow::Context as _;
use futures_util::StreamExt;
use jaga_engine::{Engine, EventQuery};
use jaga_model::{escape_control, escape_control_json, Alert, AlertAgent, Event};
use jaga_rules::events::{evaluate, RESTART_LOOP};
use serde::Serialize;

use jaga_agent::sources::docker_events::{alerts_for, enrich, hostname, rfc3339_ms};

#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Show events since this time: RFC 3339, Unix seconds, or a duration ago (10m, 2h)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stop at this time (same forms as --since); without it, follow live
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Filter as docker events does: type=container, event=start, container=NAME, image=, label=KEY[=VALUE], ...
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Only events whose alerts reach this level (0-15)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=15))]
    pub level: Option<u8>,
    /// A table, or JSON: one object per event
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = EventsFormat::Table)]
    pub format: EventsFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventsFormat {
    Table,
    Json,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    event: &'a Event,
    alerts: &'a [Alert],
}

pub async fn run(engine: &Engine, args: EventsArgs) -> anyhow::Result<()> {
    let json = args.format == EventsFormat::Json;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    let query = EventQuery {
        since: args
            .since
            .as_deref()
            .map(|t| engine_time_arg(t, now).with_context(|| format!("invalid --since '{t}'")))
            .transpose()?,
        until: args
            .until
            .as_deref()
            .map(|t| engine_time_arg(t, now).with_context(|| format!("invalid --until '{t}'")))
            .transpose()?,
        filters: parse_filters(&args.filter)?,
    };
    let agent = AlertAgent {
        id: "cli".to_owned(),
        name: hostname(),
    };
    let mut exits: HashMap<String, VecDeque<i64>> = HashMap::new();
    let mut stdout = std::io::stdout().lock();
    let mut events = std::pin::pin!(engine.events(&query));
    loop {
        let next = tokio::select! {
            next = events.next() => next,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let docker = match next {
            Some(Ok(docker)) => docker,
            Some(Err(error)) => return Err(error.into()),
            None => return Ok(()),
        };
        let mut event = enrich(docker);
        if event.docker.kind == "container" && event.docker.action == "start" {
            if let (Ok(runtime), Some(container)) = (
                engine.runtime_config(&event.docker.actor_id).await,
                event.container.as_mut(),
            ) {
                container.runtime = Some(runtime);
            }
        }
        let matches = evaluate(&event, || {
            let window = exits.entry(event.docker.actor_id.clone()).or_default();
            let time = event.docker.time_nano;
            window.push_back(time);
            while window
                .front()
                .is_some_and(|t| *t < time - RESTART_LOOP.window_seconds * 1_000_000_000)
            {
                window.pop_front();
            }
            window.len() as u32
        });
        let alerts = alerts_for(&event, matches, &agent, 0);
        let top = alerts.iter().map(|a| a.rule.level).max().unwrap_or(0);
        if args.level.is_some_and(|level| top < level) {
            continue;
        }
        let line = if json {
            let json = serde_json::to_string(&JsonLine {
                event: &event,
                alerts: &alerts,
            })
            .context("cannot encode event as JSON")?;
            escape_control_json(&json).into_owned()
        } else {
            table_line(&event, &alerts)
        };
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .context("cannot write to standard output")?;
    }
}

fn table_line(event: &Event, alerts: &[Alert]) -> String {
    let docker = &event.docker;
    let name = event
        .container
        .as_ref()
        .map(|c| c.name.as_str())
        .filter(|n| !n.is_empty())
        .or_else(|| docker.attributes.get("name").map(String::as_str))
        .unwrap_or(&docker.actor_id);
    // Names, labels and commands come from containers: escaped, so that
    // printing them cannot drive the terminal.
    let mut line = format!(
        "{}  {:<9}  {:<14}  {}",
        rfc3339_ms(docker.time_unix_ms()),
        escape_control(&docker.kind),
        escape_control(&docker.action),
        escape_control(name)
    );
    for alert in alerts {
        line.push_str(&format!(
            "\n    [{} level {}] {}",
            alert.rule.id,
            alert.rule.level,
            escape_control(&alert.rule.description)
        ));
    }
    line
}

/// docker's time arguments: RFC 3339, Unix seconds (with a fraction), or a
/// duration before now (`10m`). The Engine takes Unix seconds.
pub fn engine_time_arg(text: &str, now_unix: f64) -> anyhow::Result<String> {
    if let Ok(seconds) = text.parse::<f64>() {
        // `NaN`, `inf` and negative numbers parse as f64 but are no time.
        anyhow::ensure!(
            seconds.is_finite() && seconds >= 0.0,
            "Unix seconds must be a number from 0 on"
        );
        return Ok(format!("{seconds:.9}"));
    }
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(format!(
            "{}.{:09}",
            time.timestamp(),
            time.timestamp_subsec_nanos()
        ));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let at = now_unix - ago.as_secs_f64();
        anyhow::ensure!(at >= 0.0, "that duration ago is before 1970");
        return Ok(format!("{at:.9}"));
    }
    anyhow::bail!("use RFC 3339 (2026-11-23T10:00:00Z), Unix seconds or a duration such as 10m")
}

fn parse_filters(filters: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut parsed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for filter in filters {
        let (key, value) = filter
            .split_once('=')
            .with_context(|| format!("invalid --filter '{filter}': use KEY=VALUE"))?;
        parsed
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments_as_docker_takes_them() {
        assert_eq!(
            engine_time_arg("1700000000", 0.0).unwrap(),
            "1700000000.000000000"
        );
        assert_eq!(
            engine_time_arg("2023-11-14T22:13:20.5Z", 0.0).unwrap(),
            "1700000000.500000000"
        );
        assert_eq!(engine_time_arg("10m", 1000.0).unwrap(), "400.000000000");
        assert!(engine_time_arg("yesterday", 0.0).is_err());
    }

    #[test]
    fn exec_command_with_escape_sequences_prints_no_raw_escape() {
        let docker = jaga_model::DockerEvent {
            time_nano: 1_700_000_000_000_000_000,
            kind: "container".to_owned(),
            action: "exec_start".to_owned(),
            action_detail: Some("sh -c printf '\x1b]0;pwned\x07\x1b[2J\nfake'".to_owned()),
            actor_id: "abc".to_owned(),
            attributes: BTreeMap::from([("name".to_owned(), "web\x1b[31m".to_owned())]),
            scope: "local".to_owned(),
        };
        let event = enrich(docker);
        let matches = evaluate(&event, || 0);
        let alerts = alerts_for(&event, matches, &AlertAgent::default(), 0);
        assert!(!alerts.is_empty());
        let line = table_line(&event, &alerts);
        assert!(!line.contains('\x1b') && !line.contains('\x07'), "{line}");
        assert!(line.contains("\\x1b]0;pwned\\x07"), "{line}");
        assert_eq!(line.lines().count(), 1 + alerts.len());
    }

    #[test]
    fn time_arguments_that_are_no_time_are_refused() {
        for text in ["NaN", "inf", "-5", "1e400"] {
            let err = engine_time_arg(text, 1000.0).unwrap_err().to_string();
            assert_eq!(err, "Unix seconds must be a number from 0 on", "{text}");
        }
        let err = engine_time_arg("1000years", 1000.0)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "that duration ago is before 1970");
    }

    #[test]
    fn filters_group_by_key() {
        let parsed = parse_filters(&[
            "type=container".to_owned(),
            "event=start".to_owned(),
            "event=die".to_owned(),
            "label=com.example=x".to_owned(),
        ])
        .unwrap();
        assert_eq!(parsed["event"], vec!["start", "die"]);
        assert_eq!(parsed["label"], vec!["com.example=x"]);
        assert!(parse_filters(&["nonsense".to_owned()]).is_err());
    }
}
