//! The HTTP side of `jaga serve` as the config asks for it: tokens, TLS and
//! connection limits, the refusal to listen off loopback without tokens, and
//! SIGHUP re-reading the token file and the certificate.

use std::sync::Arc;

use anyhow::Context as _;
use jaga_config::ServeConfig;
use jaga_server::auth::{self, TokenHash, TokenSources, Tokens};
use jaga_server::listen::{HttpCounters, Limits};
use jaga_server::tls::{Tls, TlsFiles};
use tokio::sync::watch;

/// Below this many open files jaga warns: a few dozen containers and a
/// handful of HTTP clients would use them up.
const LOW_FILE_LIMIT: u64 = 4096;

/// Everything the HTTP server needs besides the router's state.
pub struct HttpSetup {
    pub limits: Limits,
    pub tokens: Arc<Tokens>,
    pub tls: Option<Arc<Tls>>,
    pub counters: Arc<HttpCounters>,
}

/// The tokens of `[serve.auth]` (`jaga serve`'s and `jaga hub`'s).
pub fn load_tokens(serve: &ServeConfig) -> anyhow::Result<Tokens> {
    let hashes = serve
        .auth
        .tokens
        .iter()
        .map(|text| TokenHash::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .context("invalid [serve.auth] tokens")?;
    let file = Some(serve.auth.token_file.clone()).filter(|f| !f.as_os_str().is_empty());
    Ok(Tokens::load(TokenSources { hashes, file })?)
}

/// Reads tokens and TLS files and sizes the limits; refuses an address off
/// loopback without tokens. Runs before anything is opened or bound.
pub fn prepare(serve: &ServeConfig) -> anyhow::Result<HttpSetup> {
    let tokens = load_tokens(serve)?;
    auth::check_exposure(serve.listen, &tokens)?;
    let tls = if serve.tls.cert_file.as_os_str().is_empty() {
        None
    } else {
        let files = TlsFiles {
            cert: serve.tls.cert_file.clone(),
            key: serve.tls.key_file.clone(),
        };
        Some(Arc::new(Tls::load(files)?))
    };
    let open_files = open_file_limit();
    if open_files < LOW_FILE_LIMIT {
        tracing::warn!(
            open_files,
            "the open-file limit is low: raise it (ulimit -Hn, systemd LimitNOFILE=, docker --ulimit nofile=) to watch more containers and serve more clients"
        );
    }
    let max_connections = match serve.http.max_connections {
        0 => Limits::connections_for_file_limit(open_files),
        set => usize::try_from(set).unwrap_or(usize::MAX),
    };
    tracing::debug!(
        max_connections,
        open_files,
        tokens = tokens.required(),
        tls = tls.is_some(),
        "HTTP limits"
    );
    Ok(HttpSetup {
        limits: Limits {
            max_connections,
            header_read_timeout: serve.http.header_read_timeout,
            idle_timeout: serve.http.idle_timeout,
            request_timeout: serve.http.request_timeout,
        },
        tokens: Arc::new(tokens),
        tls,
        counters: Arc::new(HttpCounters::default()),
    })
}

/// The soft limit on open files, as raised at start.
fn open_file_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// On each SIGHUP, re-reads the token file and the TLS pair; what does not
/// load is refused with a warning and the one in use kept. Registered now,
/// so a SIGHUP never kills the agent once this returns.
pub fn reload_on_sighup(
    setup: &HttpSetup,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch for SIGHUP")?;
    let tokens = Arc::clone(&setup.tokens);
    let tls = setup.tls.clone();
    let counters = Arc::clone(&setup.counters);
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                received = hangup.recv() => if received.is_none() { return },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            match tokens.reload() {
                Ok(count) => tracing::info!(tokens = count, "SIGHUP: API tokens re-read"),
                Err(error) => tracing::warn!(%error, "SIGHUP: keeping the current API tokens"),
            }
            if let Some(tls) = &tls {
                let reloaded = tls.reload();
                counters.tls_reloaded(reloaded.is_ok());
                match reloaded {
                    Ok(()) => tracing::info!(
                        cert = %tls.files().cert.display(),
                        "SIGHUP: TLS certificate re-read"
                    ),
                    Err(error) => {
                        tracing::warn!(%error, "SIGHUP: keeping the current TLS certificate")
                    }
                }
            }
        }
    }))
}
