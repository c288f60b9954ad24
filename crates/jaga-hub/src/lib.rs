//! `jaga hub`: the fleet's central side. Agents publish their alerts,
//! Docker events and audit findings to NATS JetStream (the `nats`
//! output); the hub reads the stream with a durable consumer, stores every
//! record once in PostgreSQL, and serves the fleet: a host list with each
//! host's state and last contact, alerts and findings with a host filter
//! (the JSON of an agent's `/api/v1/alerts`), and metrics forwarded to the
//! Prometheus-compatible store the agents remote-write to. Several hubs
//! can run against the same stream and database.

pub mod api;
pub mod consume;
pub mod store;

use std::sync::Arc;

use jaga_config::HubConfig;
use jaga_server::auth::Tokens;
use tokio::sync::{watch, Mutex};

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
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The hub, connected and ready to serve.
pub struct Hub {
    pub state: Arc<HubState>,
    consume: consume::Consume,
    listener: tokio::net::TcpListener,
}

impl Hub {
    /// Connects to NATS (creating the stream and the durable consumer when
    /// missing) and PostgreSQL (creating the tables), and binds the API.
    pub async fn start(config: &HubConfig, tokens: Arc<Tokens>) -> Result<Self, HubError> {
        let conninfo = config
            .postgres
            .reveal()
            .map_err(|e| HubError::Config(format!("cannot read 'postgres': {e}")))?;
        let errors = jaga_outputs::nats::ServerErrors::default();
        let options = config
            .nats
            .options("hub", "jaga hub", &errors)
            .map_err(|e| HubError::Config(e.to_string()))?;
        let client = config.nats.connect(options).await.map_err(|failure| {
            HubError::Nats(match failure {
                jaga_outputs::nats::ConnectFailure::Unreachable(text)
                | jaga_outputs::nats::ConnectFailure::Refused(text) => text,
            })
        })?;
        let mut context = async_nats::jetstream::new(client);
        context.set_timeout(config.nats.timeout);
        let stream = consume::stream(
            &context,
            &config.stream,
            &config.subject_prefix,
            config.max_age,
        )
        .await?;
        let consumer = consume::consumer(&stream, &config.consumer).await?;
        let writer = store::connect(&conninfo).await?;
        let reader = store::connect(&conninfo).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| HubError::Listen {
                listen: config.listen,
                source,
            })?;
        let stats = Arc::new(ConsumeStats::default());
        let prometheus = config
            .prometheus_url
            .as_deref()
            .map(|url| {
                reqwest::Url::parse(url).map_err(|e| {
                    HubError::Config(format!("'prometheus_url' '{url}' is not a URL: {e}"))
                })
            })
            .transpose()?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| HubError::Config(format!("cannot build an HTTP client: {e}")))?;
        let state = Arc::new(HubState {
            postgres: Mutex::new(reader),
            tokens,
            stats: Arc::clone(&stats),
            quiet_after: config.quiet_after,
            prometheus,
            http,
        });
        Ok(Self {
            state,
            consume: consume::Consume {
                consumer,
                postgres: Arc::new(Mutex::new(writer)),
                prefix: config.subject_prefix.clone(),
                stats,
            },
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
        let consuming = tokio::spawn(self.consume.run(shutdown.clone()));
        let mut stop = shutdown.clone();
        let served = axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|stop| *stop).await;
            })
            .await;
        let _ = consuming.await;
        served.map_err(|source| HubError::Listen {
            listen: addr.unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0))),
            source,
        })
    }
}
