//! `jaga stats --no-stream` from the running agent's latest pass: the agent
//! already read every cgroup this second, so asking it costs one loopback
//! round trip instead of a second sampling window and an Engine listing.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use jaga_model::{ContainerState, HostCounters, Sample};
use serde::Deserialize;

use super::{StatsArgs, StatsEntry};
use crate::agent_client::{percent_encode, AgentClient, AskError};

/// Loopback answers at once; an agent that does not is not one to trust.
const TIMEOUT: Duration = Duration::from_secs(3);
/// At most this many requests to the agent in flight.
const CONCURRENCY: usize = 16;

#[derive(Deserialize)]
struct HostAnswer {
    machine: Machine,
    agent: AgentAnswer,
}

#[derive(Deserialize)]
struct Machine {
    memory_bytes: u64,
}

#[derive(Deserialize)]
struct AgentAnswer {
    collection_interval_seconds: f64,
    last_collection_unix_ms: i64,
}

#[derive(Deserialize)]
struct ContainerAnswer {
    id: String,
    state: String,
    live: bool,
    #[serde(default)]
    created_unix: Option<i64>,
}

#[derive(Deserialize)]
struct LatestAnswer {
    id: String,
    name: String,
    #[serde(default)]
    figures: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    sample: Option<Sample>,
}

/// The rows from the running agent, or `None` when no agent answers for
/// them (none runs, it lags, it refuses us, it does not know a container
/// named): then the caller measures as without an agent.
pub async fn latest_entries(
    args: &StatsArgs,
    config: &jaga_config::Config,
) -> anyhow::Result<Option<Vec<StatsEntry>>> {
    // `--all` lists containers that never ran; only the Engine knows those.
    if args.all {
        return Ok(None);
    }
    let agent = AgentClient::new(&args.agent, config, TIMEOUT)?;
    match ask(&agent, args).await {
        Ok(entries) => Ok(entries),
        Err(AskError::Unreachable { .. }) => Ok(None),
        Err(error) => {
            tracing::warn!(%error, "cannot use the running agent's figures; measuring afresh");
            Ok(None)
        }
    }
}

async fn ask(agent: &AgentClient, args: &StatsArgs) -> Result<Option<Vec<StatsEntry>>, AskError> {
    let host: HostAnswer = agent.get("/api/v1/host").await?;
    let age_ms = jaga_cgroup::unix_now_ms().saturating_sub(host.agent.last_collection_unix_ms);
    let fresh_within_ms = (host.agent.collection_interval_seconds * 3_000.0).max(5_000.0) as i64;
    if age_ms > fresh_within_ms {
        tracing::warn!(
            agent = agent.base(),
            age_seconds = age_ms / 1000,
            "the running agent's last pass is old; measuring afresh"
        );
        return Ok(None);
    }
    let wanted: Vec<(String, String)> = if args.containers.is_empty() {
        let mut listed: Vec<ContainerAnswer> = agent.get("/api/v1/containers").await?;
        listed.retain(|c| c.live && ContainerState::parse(&c.state).has_processes());
        // docker's order: newest first.
        listed.sort_by(|a, b| b.created_unix.cmp(&a.created_unix).then(a.id.cmp(&b.id)));
        listed
            .into_iter()
            .map(|c| (c.id.chars().take(12).collect(), c.id))
            .collect()
    } else {
        args.containers
            .iter()
            .map(|c| (c.clone(), c.clone()))
            .collect()
    };
    let named = !args.containers.is_empty();
    let answers: Vec<(String, Result<LatestAnswer, AskError>)> = stream::iter(wanted)
        .map(|(shown_as, query)| async move {
            let path = format!("/api/v1/containers/{}/latest", percent_encode(&query));
            (shown_as, agent.get::<LatestAnswer>(&path).await)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let host_counters = HostCounters {
        mem_total_bytes: host.machine.memory_bytes,
        ..HostCounters::default()
    };
    let mut entries = Vec::with_capacity(answers.len());
    for (shown_as, answer) in answers {
        match answer {
            Ok(latest) => entries.push(entry(shown_as, latest, &host_counters)),
            // A container named that the agent has no reading of: the Engine
            // says what it is (or docker's "No such container").
            Err(AskError::Refused { status, .. }) if status.as_u16() == 404 && named => {
                return Ok(None)
            }
            // Listed a moment ago, gone now.
            Err(AskError::Refused { status, .. }) if status.as_u16() == 404 => {}
            Err(error) => return Err(error),
        }
    }
    Ok(Some(entries))
}

/// One row from the agent's latest reading and its derived CPU %.
fn entry(shown_as: String, latest: LatestAnswer, host: &HostCounters) -> StatsEntry {
    let entry = StatsEntry::empty(shown_as, latest.id, latest.name);
    let Some(sample) = latest.sample else {
        return entry;
    };
    let cpu_percent = latest
        .figures
        .as_ref()
        .and_then(|f| f.get("cpu_percent"))
        .copied()
        .unwrap_or(0.0);
    entry.with_sample(cpu_percent, &sample, host)
}
