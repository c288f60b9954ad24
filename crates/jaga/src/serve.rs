//! `jaga serve`: the agent (`jaga-agent`) with the command line's overrides.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use jaga_agent::sampler::Sampler;
use jaga_agent::Agent;
use jaga_config::Config;
use jaga_engine::Engine;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to serve /metrics, /healthz and /api/v1 on; off loopback it needs [serve.auth] tokens [config: serve.listen, default 127.0.0.1:9808]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Time between collection passes, e.g. 1s, 500ms [config: serve.interval, default 1s]
    #[arg(long, value_name = "DURATION", value_parser = jaga_config::parse_period)]
    pub interval: Option<Duration>,
    /// Directory of the embedded history [config: serve.data_dir, default ./jaga-data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

pub async fn run(
    mut config: Config,
    engine: Engine,
    sampler: Sampler,
    host_root: PathBuf,
    args: ServeArgs,
) -> anyhow::Result<()> {
    if let Some(listen) = args.listen {
        config.serve.listen = listen;
    }
    if let Some(interval) = args.interval {
        config.serve.interval = interval;
    }
    if let Some(dir) = args.data_dir {
        config.serve.data_dir = dir;
    }
    use tokio::signal::unix::{signal, SignalKind};
    // Watched before anything starts, so an early signal is not lost.
    let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
    let agent = Agent::build(config, engine, sampler, host_root).await?;
    // Bursts (floods, container waves) must not stay resident. Started only
    // once the agent is built: spawned before a refused config, its first
    // timer could be polled while the runtime was shutting down, and tokio
    // panicked on stderr ahead of the refusal.
    tokio::spawn(crate::heap::release_periodically());
    agent
        .run(async move {
            let signal = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal, "stopping: finishing the pass in hand");
        })
        .await
}
