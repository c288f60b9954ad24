//! `jaga hub`: the fleet's central side (see `jaga_hub`), configured by
//! the `[hub]` section; its API takes the tokens of `[serve.auth]`.

use std::sync::Arc;

use anyhow::Context as _;
use jaga_config::{Config, HubConfig};
use jaga_server::auth;

#[derive(Debug, clap::Args)]
pub struct HubArgs {}

/// What `jaga hub` refuses before it connects to anything: no `[hub]`, a
/// key it cannot use, a secret it cannot read, an API off loopback without
/// tokens. `jaga config check` runs it too (and shows what was prepared).
pub fn preflight(
    config: &Config,
) -> anyhow::Result<(&HubConfig, auth::Tokens, jaga_hub::Prepared)> {
    let hub = config
        .hub
        .as_ref()
        .context("`jaga hub` needs a [hub] section in the config file (see jaga.example.toml)")?;
    let prepared = jaga_hub::prepare(hub).context("cannot set up [hub]")?;
    let tokens = jaga_agent::http::load_tokens(&config.serve)?;
    auth::check_exposure(hub.listen, &tokens)?;
    Ok((hub, tokens, prepared))
}

pub fn run(_args: HubArgs, config: &Config) -> anyhow::Result<()> {
    let (hub, tokens, _) = preflight(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot watch for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch for SIGINT")?;
        let started = jaga_hub::Hub::start(hub, Arc::new(tokens))
            .await
            .context("cannot start the hub")?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("stopping the hub");
            let _ = stop_tx.send(true);
        });
        started.run(stop_rx).await.context("the hub stopped")
    })
}
