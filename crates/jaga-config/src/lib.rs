//! jaga's configuration: typed sections with documented defaults, loaded by a
//! pure function so tests can feed it text and an environment.
//!
//! Every key is documented in `jaga.example.toml` at the repository root.

mod duration;
mod load;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jaga_outputs::OutputSettings;
use serde::{Deserialize, Serialize};

pub use duration::{check_duration, parse_period, DurationKind};
pub use load::{find_config_file, load_file, parse, ConfigError, DEFAULT_SEARCH_PATH};

/// The whole configuration file. Every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub engine: EngineConfig,
    pub log: LogConfig,
    pub serve: ServeConfig,
    pub history: HistoryConfig,
    pub filesystem: FilesystemConfig,
    pub metrics: MetricsConfig,
    pub docker_listener: DockerListenerConfig,
    pub alerts: AlertsConfig,
    pub audit: AuditConfig,
    pub logs: LogsConfig,
    pub metric_rules: MetricRulesConfig,
    pub process: ProcessConfig,
    pub redaction: RedactionConfig,
    /// Where alerts are delivered: any number of `[[outputs]]` entries.
    pub outputs: Vec<OutputConfig>,
    /// Container metrics to a Prometheus remote-write receiver, back-filled
    /// from history after an outage; absent: not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_write: Option<jaga_outputs::RemoteWriteSettings>,
    /// `jaga hub`: the fleet's central side; absent unless the hub runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubConfig>,
}

/// `[hub]`: where `jaga hub` reads the agents' records (NATS JetStream),
/// where it keeps them (PostgreSQL) and where it serves them. Its API
/// takes the tokens of `[serve.auth]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address of the hub's API and `/healthz`.
    #[serde(default = "default_hub_listen")]
    pub listen: SocketAddr,
    /// A libpq connection string, e.g. `host=db user=jaga dbname=jaga
    /// password=...`; best given as `{ file = ... }` or `{ env = ... }`.
    pub postgres: jaga_outputs::Secret,
    /// The agents' NATS (the hub's own credentials).
    pub nats: jaga_outputs::NatsConnection,
    /// The JetStream stream, created when missing over `<subject_prefix>.>`.
    #[serde(default = "default_hub_stream")]
    pub stream: String,
    /// The agents' `subject_prefix`.
    #[serde(default = "jaga_outputs::nats::default_subject_prefix")]
    pub subject_prefix: String,
    /// The durable consumer: hubs sharing its name share the work.
    #[serde(default = "default_hub_consumer")]
    pub consumer: String,
    /// How long JetStream keeps what agents sent (the hub's outage budget).
    #[serde(default = "default_hub_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    /// A host not heard from (no record, no heartbeat) for this long is
    /// shown as `quiet` rather than `up`: three of the agents' default
    /// 30 s heartbeats missed.
    #[serde(default = "default_hub_quiet_after", with = "humantime_serde")]
    pub quiet_after: Duration,
    /// ... and as `down` after this long.
    #[serde(default = "default_hub_down_after", with = "humantime_serde")]
    pub down_after: Duration,
    /// The Prometheus-compatible store the agents remote-write to; the
    /// hub forwards `/api/v1/metrics/query` and `query_range` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus_url: Option<String>,
}

fn default_hub_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9809))
}

fn default_hub_stream() -> String {
    "JAGA".to_owned()
}

fn default_hub_consumer() -> String {
    "jaga-hub".to_owned()
}

fn default_hub_max_age() -> Duration {
    Duration::from_secs(7 * 24 * 60 * 60)
}

fn default_hub_quiet_after() -> Duration {
    Duration::from_secs(90)
}

fn default_hub_down_after() -> Duration {
    Duration::from_secs(10 * 60)
}

/// The name of the file output implied by `[alerts] file`.
pub const IMPLIED_FILE_OUTPUT: &str = "alerts_file";

impl Config {
    /// The outputs that run: the `[[outputs]]` entries, and the alerts
    /// file of `[alerts]` as a file output named `alerts_file` when no
    /// entry is a file and `[alerts] file` is set (so a config from before
    /// `[[outputs]]` keeps its file).
    pub fn outputs_in_effect(&self) -> Vec<OutputConfig> {
        let mut outputs = self.outputs.clone();
        let has_file = outputs
            .iter()
            .any(|o| matches!(o.settings, OutputSettings::File(_)));
        if !has_file && !self.alerts.file.as_os_str().is_empty() {
            outputs.push(OutputConfig::new(
                IMPLIED_FILE_OUTPUT,
                OutputSettings::File(jaga_outputs::FileSettings {
                    path: self.alerts.file.clone(),
                    max_file_bytes: self.alerts.max_file_bytes,
                    max_files: self.alerts.max_files,
                }),
            ));
        }
        outputs
    }

    /// The config as TOML, every key with the value in effect (defaults
    /// filled in), inline secrets redacted (see `jaga_outputs::Secret`):
    /// what `jaga config show` prints, and text [`parse`] reads back.
    pub fn render(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }
}

/// One `[[outputs]]` entry: where alerts go, which of them, and how.
/// The keys of its `type` sit beside these (see `jaga.example.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct OutputConfig {
    /// Unique; names the output in metrics, the API and `jaga outputs`,
    /// and keys its delivery cursor: renaming an output starts it afresh.
    pub name: String,
    /// Alerts below this level are not sent here.
    #[serde(default)]
    pub min_level: u8,
    /// Only alerts of a rule in one of these groups; empty: any.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Only alerts of these rule ids; empty: any.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Only alerts about a container whose name matches one of these globs
    /// (`*`, `?`); empty: any alert, with a container or not.
    #[serde(default)]
    pub containers: Vec<String>,
    /// Alerts of the same rule on the same container raised within this
    /// window go out as one message; "0s": each alone. Default: 1m for
    /// people (slack, smtp), off for machines.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub group_window: Option<Duration>,
    /// Most messages per minute (a token bucket, bursts up to it); 0: no
    /// limit. Default: 20 for people (slack, smtp), none for machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Most undelivered alerts kept for this output; past it the oldest
    /// are skipped, counted in `jaga_output_dropped_total` and recorded as
    /// a dead letter.
    #[serde(default = "default_max_backlog")]
    pub max_backlog: u64,
    /// Undelivered alerts stored longer ago than this are skipped, counted
    /// and recorded as a dead letter like those past `max_backlog`; absent:
    /// no age limit.
    #[serde(
        default,
        with = "humantime_serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_age: Option<Duration>,
    /// First wait before trying a failed delivery again; it doubles (with
    /// jitter) up to `backoff_max`. A receiver's `Retry-After` wins.
    #[serde(default = "default_backoff_min", with = "humantime_serde")]
    pub backoff_min: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
    #[serde(flatten)]
    pub settings: OutputSettings,
}

fn default_max_backlog() -> u64 {
    100_000
}

fn default_backoff_min() -> Duration {
    Duration::from_secs(1)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(300)
}

/// Grouping and rate limit when the entry does not say, for people.
const PEOPLE_GROUP_WINDOW: Duration = Duration::from_secs(60);
const PEOPLE_RATE_LIMIT: u32 = 20;

impl OutputConfig {
    /// An entry with every key at its default.
    pub fn new(name: &str, settings: OutputSettings) -> Self {
        Self {
            name: name.to_owned(),
            min_level: 0,
            groups: Vec::new(),
            rules: Vec::new(),
            containers: Vec::new(),
            group_window: None,
            rate_limit: None,
            max_backlog: default_max_backlog(),
            max_age: None,
            backoff_min: default_backoff_min(),
            backoff_max: default_backoff_max(),
            settings,
        }
    }

    /// The grouping window that applies; `None`: every alert alone.
    pub fn group_window_in_effect(&self) -> Option<Duration> {
        let people = self.settings.for_people().then_some(PEOPLE_GROUP_WINDOW);
        self.group_window.or(people).filter(|w| !w.is_zero())
    }

    /// The messages per minute allowed; `None`: no limit.
    pub fn rate_limit_in_effect(&self) -> Option<u32> {
        let people = self.settings.for_people().then_some(PEOPLE_RATE_LIMIT);
        self.rate_limit.or(people).filter(|r| *r > 0)
    }
}

/// Metric rules in `jaga serve`: conditions on container and host figures
/// that must hold a while before they fire, and resolve when they end.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricRulesConfig {
    pub disabled: bool,
    /// Rule files (YAML) used with the built-in defaults.
    pub rules: Vec<PathBuf>,
    /// Leave out the built-in defaults, keeping only `rules`.
    pub no_defaults: bool,
    /// Evaluate the latest collection at most this often (every collection
    /// when it is shorter than `serve.interval`).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for MetricRulesConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            rules: Vec::new(),
            no_defaults: false,
            interval: Duration::from_secs(1),
        }
    }
}

/// What runs inside containers: every execution, checked by process rules.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    pub disabled: bool,
    /// "auto": the proc connector (with fanotify) when jaga may use it
    /// (from the host's network namespace; CAP_NET_ADMIN before Linux 6.6),
    /// else polling /proc;
    /// "connector": the connector or fail; "poll": only polling.
    pub mode: String,
    /// fanotify exec events on each container's filesystem (CAP_SYS_ADMIN):
    /// the executable of a process gone before /proc is read.
    pub fanotify: bool,
    /// How often the poller lists /proc (poll mode only).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Process rule files (YAML, `process_rules:`) used with the built-in rules.
    pub rules: Vec<PathBuf>,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            mode: "auto".to_owned(),
            fanotify: true,
            poll_interval: Duration::from_millis(250),
            rules: Vec::new(),
        }
    }
}

/// Secrets in what jaga stores and shows: label values, exec command lines,
/// credential shapes in log alerts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Keep secrets as they came instead of `<redacted, N chars>`
    /// (default false: redacted everywhere but inside the audit).
    pub keep_raw: bool,
}

/// Container log analysis in `jaga serve`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    pub disabled: bool,
    /// Docker json-file logs to follow (globs).
    pub paths: Vec<String>,
    /// Rule files (YAML) used with the built-in rules; their decoders too.
    pub rules: Vec<PathBuf>,
    /// Time between two looks at the files.
    #[serde(with = "humantime_serde")]
    pub poll: Duration,
    /// Files present at the first start with no checkpoint: "end" (only new
    /// lines, as log shippers do) or "beginning".
    pub read_from: String,
    /// A message longer than this is cut (and counted).
    pub max_message_bytes: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            paths: vec!["/var/lib/docker/containers/*/*-json.log".to_owned()],
            rules: Vec::new(),
            poll: Duration::from_millis(250),
            read_from: "end".to_owned(),
            max_message_bytes: 1 << 20,
        }
    }
}

/// The posture audit in `jaga serve`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    pub disabled: bool,
    /// Time between two full audits (one runs at start); a container's own
    /// checks also run each time it starts.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The daemon's configuration file.
    pub daemon_json: PathBuf,
    /// A CVE data file in the format of `data/container-escape-cves.toml`
    /// whose entries extend jaga's (one with the id and component of a
    /// shipped entry replaces it); empty: none.
    pub cve_data: PathBuf,
    /// The entries of `cve_data` alone, without jaga's.
    pub cve_data_replaces: bool,
    /// Alpine's record of fixed CVEs, which Alpine does not install: secdb
    /// files (`main.json`, `community.json`) or APKBUILDs with a
    /// `# secfixes:` block.
    pub alpine_secfixes: Vec<PathBuf>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            interval: Duration::from_secs(3600),
            daemon_json: PathBuf::from("/etc/docker/daemon.json"),
            cve_data: PathBuf::new(),
            cve_data_replaces: false,
            alpine_secfixes: Vec::new(),
        }
    }
}

/// The Docker event listener of `jaga serve`, with the knobs of Wazuh's
/// docker-listener.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerListenerConfig {
    pub disabled: bool,
    /// Start listening when the agent starts; `false` waits one `interval` first.
    pub run_on_start: bool,
    /// Wait before reconnecting after the event stream failed.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Failed connections in a row before the listener gives up (reported
    /// by `/healthz` and `jaga_docker_listener_up`). A connection that
    /// delivers events resets the count. An event the store cannot take (a
    /// full disk) is not a failed connection: the listener reads it again
    /// every `interval` for as long as it takes, and never gives up on it.
    pub attempts: u32,
}

impl Default for DockerListenerConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            run_on_start: true,
            interval: Duration::from_secs(5),
            attempts: 60,
        }
    }
}

/// Where alerts go besides the embedded store and the API.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Rules below this level are kept as events but raise no alert.
    pub min_level: u8,
    /// JSON-lines file of alerts; relative paths are under `serve.data_dir`;
    /// empty: no file.
    pub file: PathBuf,
    /// Size at which the file is rotated to `<file>.1`.
    pub max_file_bytes: u64,
    /// Rotated files kept (`<file>.1` … `<file>.N`).
    pub max_files: u32,
    /// How long events and alerts stay in the embedded store.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            min_level: 3,
            file: PathBuf::from("alerts.json"),
            max_file_bytes: 100 * 1024 * 1024,
            max_files: 5,
            retention: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

/// `jaga serve`: where it listens, how often it collects, where it keeps data.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address of `/metrics`, `/healthz` and `/api/v1`. Loopback by default:
    /// the API shows container metadata. Any other address needs tokens.
    pub listen: SocketAddr,
    /// Time between two collection passes over every container.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Directory of the embedded history (created if missing).
    pub data_dir: PathBuf,
    /// Time between two full re-reads of the container list; Docker events
    /// bring changes sooner, this catches anything they missed.
    #[serde(with = "humantime_serde")]
    pub resync: Duration,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub tls: TlsConfig,
    /// This agent's name in alerts (`agent.name`), NATS subjects and the
    /// `instance` label of remote-written metrics; empty: the host name.
    /// Give each agent of a fleet its own.
    pub agent_name: String,
}

impl ServeConfig {
    /// `agent_name`, or the host name when it is empty.
    pub fn agent_name_or(&self, hostname: impl FnOnce() -> String) -> String {
        if self.agent_name.trim().is_empty() {
            hostname()
        } else {
            self.agent_name.trim().to_owned()
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9808)),
            interval: Duration::from_secs(1),
            data_dir: PathBuf::from("./jaga-data"),
            resync: Duration::from_secs(30),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            tls: TlsConfig::default(),
            agent_name: String::new(),
        }
    }
}

/// Limits on HTTP connections, so that idle or half-sent ones cannot take
/// the agent's file descriptors.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Most connections open at once; more are closed at once and counted.
    /// 0: an eighth of the open-file limit, between 16 and 4096.
    pub max_connections: u32,
    /// Time a client has to send a request's headers, counted from the
    /// connection's start or its previous response (idle keep-alive
    /// connections close then too); also the limit of a TLS handshake.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves either way for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Time a request may take to be answered before a 503.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: 0,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// API tokens, stored as hashes (`jaga token new` makes one). With any
/// token set, every route but `/healthz` needs `Authorization: Bearer`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `sha256:<64 hex digits>` of each accepted token.
    pub tokens: Vec<String>,
    /// A file with one such hash per line (`#` comments), re-read on SIGHUP;
    /// empty: none.
    pub token_file: PathBuf,
}

/// Serve HTTPS with this certificate and key (PEM), re-read on SIGHUP;
/// both empty: plain HTTP.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain, the server's own certificate first.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// How long the embedded history keeps what it holds.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Raw points, one per container and collection interval.
    #[serde(with = "humantime_serde")]
    pub raw: Duration,
    /// Per-minute min/avg/max rollups.
    #[serde(with = "humantime_serde")]
    pub rollup: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            raw: Duration::from_secs(60 * 60),
            rollup: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// Disk usage of writable layers, volumes and logs: walked on a slower
/// cadence, with a bound on one pass.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemConfig {
    pub disabled: bool,
    /// Time between two passes over every container's files.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Most directory entries one walk (one layer or one volume) may visit;
    /// a bigger tree is reported as what was counted, marked truncated.
    pub max_entries: u64,
    /// Most time one walk may take, with the same effect.
    #[serde(with = "humantime_serde")]
    pub max_walk_time: Duration,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            interval: Duration::from_secs(60),
            max_entries: 200_000,
            max_walk_time: Duration::from_secs(5),
        }
    }
}

/// What `/metrics` exports, as cAdvisor's flags of the same names.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Export every Docker label as `container_label_<key>`.
    pub store_container_labels: bool,
    /// With `store_container_labels = false`: the label keys still exported.
    pub whitelisted_container_labels: Vec<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            store_container_labels: true,
            whitelisted_container_labels: Vec::new(),
        }
    }
}

/// How to reach the Docker Engine. Environment variables (`DOCKER_HOST`,
/// `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`) override these, as for the docker CLI.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// `unix:///var/run/docker.sock`, `tcp://host:2376`, `https://host:2376`.
    pub host: String,
    /// Use TLS and verify the daemon's certificate against `ca.pem` in `cert_path`.
    pub tls_verify: bool,
    /// Directory holding `ca.pem`, `cert.pem`, `key.pem`; default `~/.docker`.
    pub cert_path: Option<PathBuf>,
    /// Timeout of one request to the Engine.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            host: default_engine_host(),
            tls_verify: false,
            cert_path: None,
            timeout: Duration::from_secs(30),
        }
    }
}

pub fn default_engine_host() -> String {
    "unix:///var/run/docker.sock".to_owned()
}

/// jaga's own log output (to stderr).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `error`, `warn`, `info`, `debug`, `jaga=debug,bollard=warn`.
    /// `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
