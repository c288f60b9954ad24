//! `jaga stats`: docker stats, read straight from cgroups.

pub mod agent;
mod template;
mod units;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::stream::{self, StreamExt};
use jaga_engine::{ContainerListing, Engine, EngineError};
use jaga_model::{ContainerId, ContainerRef, ContainerState};

use jaga_agent::sampler::Sampler;
pub use jaga_agent::stats_entry::{cpu_percent, memory_limit, Reading, StatsEntry};
pub use template::Template;

/// The sampling window: docker's daemon samples once a second.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// At most this many Engine requests in flight while resolving containers.
const ENGINE_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, clap::Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a custom template: 'table', 'table TEMPLATE', 'json',
    /// or a Go-style template with .Container .Name .ID .CPUPerc .MemUsage
    /// .MemPerc .NetIO .BlockIO .PIDs
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Containers by name or id (default: every running container)
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
    /// With --no-stream: measure from cgroups even when a jaga agent runs on
    /// this host (by default its latest pass answers at once)
    #[arg(long)]
    pub fresh: bool,
    #[command(flatten)]
    pub agent: crate::agent_client::AgentArgs,
}

/// One container on screen.
struct Tracked {
    /// What the row's `.Container` shows: the argument given, else the short id.
    shown_as: String,
    container: ContainerRef,
    previous: Option<Reading>,
}

/// Prints rows the running agent gave (`--no-stream`), as one frame.
pub fn print_once(args: &StatsArgs, entries: &[StatsEntry]) -> anyhow::Result<()> {
    let template = Template::parse(args.format.as_deref().unwrap_or("table"))?;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(template.render(entries, !args.no_trunc).as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot write to standard output")
}

pub async fn run(engine: &Engine, sampler: &Sampler, args: StatsArgs) -> anyhow::Result<()> {
    let template = Template::parse(args.format.as_deref().unwrap_or("table"))?;
    let mut view = View::new(args);

    // The first pass resolves every container named and fails on unknown ones,
    // as docker does; later passes tolerate containers that come and go.
    view.refresh(engine, sampler, true).await?;
    view.sample(sampler);

    let mut stdout = std::io::stdout().lock();
    let live = !view.args.no_stream;
    let redraw = live && stdout.is_terminal();
    let mut next_tick = tokio::time::Instant::now() + INTERVAL;
    loop {
        let interrupted = tokio::select! {
            _ = tokio::time::sleep_until(next_tick) => false,
            _ = tokio::signal::ctrl_c() => true,
        };
        if interrupted {
            return Ok(());
        }
        next_tick += INTERVAL;
        let entries = view.sample(sampler);
        let mut frame = String::new();
        if redraw {
            // Home the cursor and clear the screen, as docker's live view does.
            frame.push_str("\x1b[H\x1b[2J");
        }
        if let Some(problem) = &view.engine_problem {
            frame.push_str(&format!(
                "jaga: {problem}; showing what cgroups still tell\n"
            ));
        }
        frame.push_str(&template.render(&entries, !view.args.no_trunc));
        stdout
            .write_all(frame.as_bytes())
            .and_then(|()| stdout.flush())
            .context("cannot write to standard output")?;
        if !live {
            return Ok(());
        }
        if let Err(error) = view.refresh(engine, sampler, false).await {
            view.engine_problem = Some(error.to_string());
        }
    }
}

struct View {
    args: StatsArgs,
    tracked: Vec<Tracked>,
    engine_problem: Option<String>,
}

impl View {
    fn new(args: StatsArgs) -> Self {
        Self {
            args,
            tracked: Vec::new(),
            engine_problem: None,
        }
    }

    /// Brings the set of containers up to date with the Engine, keeping each
    /// known container's previous reading.
    async fn refresh(
        &mut self,
        engine: &Engine,
        sampler: &Sampler,
        first: bool,
    ) -> anyhow::Result<()> {
        let mut previous: HashMap<ContainerId, Option<Reading>> = self
            .tracked
            .drain(..)
            .map(|t| (t.container.id, t.previous))
            .collect();
        let found = if self.args.containers.is_empty() {
            self.listed(engine, sampler).await?
        } else {
            self.named(engine, first).await?
        };
        self.engine_problem = None;
        self.tracked = found
            .into_iter()
            .map(|(shown_as, container)| {
                let previous = previous.remove(&container.id).flatten();
                Tracked {
                    shown_as,
                    container,
                    previous,
                }
            })
            .collect();
        let current: std::collections::HashSet<(&ContainerId, u32)> = self
            .tracked
            .iter()
            .filter_map(|t| Some((&t.container.id, t.container.pid?)))
            .collect();
        sampler.retain(|id, pid| current.contains(&(id, pid)));
        Ok(())
    }

    /// Every running container (every container with `--all`), in the Engine's order.
    async fn listed(
        &self,
        engine: &Engine,
        sampler: &Sampler,
    ) -> anyhow::Result<Vec<(String, ContainerRef)>> {
        let listings = engine.list_containers(self.args.all).await?;
        let resolved: Vec<Option<ContainerRef>> = stream::iter(listings)
            .map(|listing| resolve_listing(engine, sampler, listing))
            .buffered(ENGINE_CONCURRENCY)
            .collect()
            .await;
        Ok(resolved
            .into_iter()
            .flatten()
            .map(|c| (c.id.short().to_owned(), c))
            .collect())
    }

    /// The containers named on the command line, in the order given.
    async fn named(
        &self,
        engine: &Engine,
        first: bool,
    ) -> anyhow::Result<Vec<(String, ContainerRef)>> {
        let results: Vec<(String, Result<ContainerRef, EngineError>)> =
            stream::iter(self.args.containers.clone())
                .map(|name| async move {
                    let result = engine.inspect(&name).await;
                    (name, result)
                })
                .buffered(ENGINE_CONCURRENCY)
                .collect()
                .await;
        let mut found = Vec::with_capacity(results.len());
        for (name, result) in results {
            match result {
                Ok(container) => found.push((name, container)),
                // A container removed while shown leaves the view.
                Err(e) if e.is_no_such_container() && !first => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(found)
    }

    /// Reads every container once and turns the readings into rows.
    fn sample(&mut self, sampler: &Sampler) -> Vec<StatsEntry> {
        let host = match sampler.host_counters() {
            Ok(host) => host,
            Err(error) => {
                tracing::warn!(%error, "cannot read host CPU and memory counters");
                return self.tracked.iter().map(invalid_entry).collect();
            }
        };
        self.tracked
            .iter_mut()
            .map(|tracked| {
                let c = &tracked.container;
                let blank =
                    StatsEntry::empty(tracked.shown_as.clone(), c.id.to_string(), c.name.clone());
                if !c.state.has_processes() {
                    tracked.previous = None;
                    return blank;
                }
                match sampler.sample(c) {
                    Ok(sample) => {
                        let current = Reading { sample, host };
                        let entry = blank.with_figures(tracked.previous.as_ref(), &current);
                        tracked.previous = Some(current);
                        entry
                    }
                    Err(error) => {
                        tracing::debug!(container = %c.name, %error, "cannot sample container");
                        tracked.previous = None;
                        invalid_entry(tracked)
                    }
                }
            })
            .collect()
    }
}

fn invalid_entry(tracked: &Tracked) -> StatsEntry {
    let c = &tracked.container;
    StatsEntry::invalid(tracked.shown_as.clone(), c.id.to_string(), c.name.clone())
}

/// Completes a list row with the init PID: from the runtime's state file when
/// it is there, else by inspecting. A container gone meanwhile is dropped.
async fn resolve_listing(
    engine: &Engine,
    sampler: &Sampler,
    listing: ContainerListing,
) -> Option<ContainerRef> {
    let pid = if listing.state.has_processes() {
        match sampler.runtime_pid(&listing.id) {
            Some(pid) => Some(pid),
            None => match engine.inspect(listing.id.as_str()).await {
                Ok(inspected) => inspected.pid,
                Err(e) if e.is_no_such_container() => return None,
                Err(error) => {
                    tracing::debug!(container = %listing.name, %error, "cannot inspect container");
                    None
                }
            },
        }
    } else {
        None
    };
    let state = if listing.state.has_processes() && pid.is_none() {
        ContainerState::Unknown
    } else {
        listing.state
    };
    Some(ContainerRef {
        id: listing.id,
        name: listing.name,
        image: listing.image,
        labels: listing.labels,
        state,
        pid,
        network_mode: listing.network_mode,
        created: listing.created,
        started_at: None,
        restart_policy: None,
        health: None,
        exit_code: None,
    })
}
