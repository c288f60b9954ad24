//! `jaga hub`: the fleet's central side. Agents publish their alerts,
//! Docker events and audit findings to NATS JetStream (the `nats`
//! output); the hub reads the stream with a durable consumer, stores every
//! record once in PostgreSQL, and serves the fleet: a host list with each
//! host's state and last contact, alerts and findings with a host filter
//! (the JSON of an agent's `/api/v1/alerts`), and metrics forwarded to the
//! Prometheus-compatible store the agents remote-write to; and `jaga
//! serve`'s dashboard over them (hosts, alerts, findings, a host's charts).
//! Several hubs can run against the same stream and database. The agents' heartbeats
//! (core NATS, outside the stream) keep an idle host's last contact fresh.

pub mod api;
pub mod conninfo;
pub mod consume;
pub mod store;

use std::sync::Arc;

use jaga_config::HubConfig;
use jaga_server::auth::Tokens;
use tokio::sync::watch;

pub use api::{router, HubState};
pub use consume::ConsumeStats;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("hub config: {0}")]
    Config(String),
    #[error("nats: {0}")]
    Nats(String),
    #[error("postgres: {0}")]
    Postgres(String),
    /// The connection is gone; it is being made again.
    #[error("postgres is unreachable: {0}")]
    PostgresDown(String),
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// An error and its causes, as tokio-postgres' Display leaves them out.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the hub takes from `[hub]` before it connects to anything, its
/// secrets read: what `jaga hub` refuses at start, and what `jaga config
/// check` checks.
pub struct Prepared {
    conninfo: conninfo::Conninfo,
    options: async_nats::ConnectOptions,
    prefix: String,
    prometheus: Option<reqwest::Url>,
    thresholds: store::HostThresholds,
}

impl Prepared {
    /// The `sslmode` in effect for PostgreSQL (`require` with a root
    /// certificate verifies as `verify-ca`).
    pub fn postgres_sslmode(&self) -> &'static str {
        self.conninfo.sslmode.as_str()
    }
}

/// Checks `[hub]` and reads its secrets; connects to nothing.
pub fn prepare(config: &HubConfig) -> Result<Prepared, HubError> {
    let conninfo = config
        .postgres
        .reveal()
        .map_err(|e| HubError::Config(format!("cannot read 'postgres': {e}")))?;
    let conninfo = conninfo::Conninfo::parse(&conninfo)?;
    let errors = jaga_outputs::nats::ServerErrors::default();
    let options = config
        .nats
        .options("hub", "jaga hub", &errors)
        .map_err(|e| HubError::Config(e.to_string()))?;
    let prefix = jaga_outputs::nats::subject_prefix(&config.subject_prefix)
        .map_err(|reason| HubError::Config(format!("'subject_prefix' is not valid: {reason}")))?
        .to_owned();
    for (key, name) in [("stream", &config.stream), ("consumer", &config.consumer)] {
        if name.is_empty()
            || name
                .chars()
                .any(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace())
        {
            return Err(HubError::Config(format!(
                "'{key}' '{}' is not a JetStream name (no dots, wildcards, slashes or spaces)",
                jaga_model::escape_control(name)
            )));
        }
    }
    if config.quiet_after.is_zero() || config.quiet_after >= config.down_after {
        return Err(HubError::Config(format!(
            "'quiet_after' ({}) must be above zero and below 'down_after' ({})",
            humantime::format_duration(config.quiet_after),
            humantime::format_duration(config.down_after)
        )));
    }
    let prometheus = config
        .prometheus_url
        .as_deref()
        .map(|url| {
            reqwest::Url::parse(url).map_err(|e| {
                HubError::Config(format!(
                    "'prometheus_url' '{}' is not a URL: {e}",
                    jaga_model::escape_control(url)
                ))
            })
        })
        .transpose()?;
    Ok(Prepared {
        conninfo,
        options,
        prefix,
        prometheus,
        thresholds: store::HostThresholds {
            quiet_after: config.quiet_after,
            down_after: config.down_after,
        },
    })
}

/// The hub, connected and ready to serve.
pub struct Hub {
    pub state: Arc<HubState>,
    consume: consume::Consume,
    heartbeats: async_nats::Subscriber,
    listener: tokio::net::TcpListener,
}

impl Hub {
    /// Connects to NATS (creating the stream and the durable consumer when
    /// missing) and PostgreSQL (creating the tables), and binds the API.
    pub async fn start(config: &HubConfig, tokens: Arc<Tokens>) -> Result<Self, HubError> {
        let Prepared {
            conninfo,
            options,
            prefix,
            prometheus,
            thresholds,
        } = prepare(config)?;
        let client = config.nats.connect(options).await.map_err(|failure| {
            HubError::Nats(match failure {
                jaga_outputs::nats::ConnectFailure::Unreachable(text)
                | jaga_outputs::nats::ConnectFailure::Refused(text) => text,
            })
        })?;
        // Every hub of the consumer's group shares the heartbeats too:
        // each is written once.
        let heartbeats = client
            .queue_subscribe(
                format!("{prefix}.*.{}", jaga_outputs::nats::HEARTBEAT_KIND),
                config.consumer.clone(),
            )
            .await
            .map_err(|e| HubError::Nats(format!("cannot subscribe to heartbeats: {e}")))?;
        let mut context = async_nats::jetstream::new(client);
        context.set_timeout(config.nats.timeout);
        let stream = consume::stream(&context, &config.stream, &prefix, config.max_age).await?;
        let consumer = consume::consumer(&stream, &config.consumer).await?;
        let stats = Arc::new(ConsumeStats::default());
        let conninfo = Arc::new(conninfo);
        let writer =
            store::link(
                Arc::clone(&conninfo),
                "consumer",
                Arc::clone(&stats),
                |client, connection| async move {
                    Ok(store::Writer::new(client).await?.severs(connection))
                },
            )
            .await?;
        let reader = store::link(
            conninfo,
            "api",
            Arc::clone(&stats),
            |client, _| async move { Ok::<_, HubError>(client) },
        )
        .await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| HubError::Listen {
                listen: config.listen,
                source,
            })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| HubError::Config(format!("cannot build an HTTP client: {e}")))?;
        let state = Arc::new(HubState {
            postgres: reader.current,
            tokens,
            stats: Arc::clone(&stats),
            thresholds,
            prometheus,
            http,
        });
        Ok(Self {
            state,
            consume: consume::Consume {
                consumer,
                writer: writer.current,
                writer_up: writer.up,
                prefix,
                stats,
            },
            heartbeats,
            listener,
        })
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Consumes and serves until `shutdown` turns true.
    pub async fn run(self, shutdown: watch::Receiver<bool>) -> Result<(), HubError> {
        let addr = self.local_addr();
        tracing::info!(listen = ?addr, "jaga hub started");
        let beating = tokio::spawn(consume::heartbeats(
            self.heartbeats,
            Arc::clone(&self.consume.writer),
            self.consume.prefix.clone(),
            Arc::clone(&self.consume.stats),
            shutdown.clone(),
        ));
        let consuming = tokio::spawn(self.consume.run(shutdown.clone()));
        let mut stop = shutdown.clone();
        // The peer's address: failed dashboard logins are limited per address.
        let app = router(self.state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
        let _ = consuming.await;
        let _ = beating.await;
        served.map_err(|source| HubError::Listen {
            listen: addr.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        })
    }
}
