//! The hub's PostgreSQL tables: every record once, keyed by the agent and
//! the record's id (an alert id is unique per host, not per fleet), and
//! one row per host with its last contact.

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use jaga_model::Alert;
use tokio::sync::{watch, Mutex};
use tokio::task::AbortHandle;
use tokio_postgres::Client;

use crate::conninfo::Conninfo;
use crate::{ConsumeStats, HubError};

/// Schema, created by whichever hub comes first; the advisory lock keeps
/// two hubs starting together from racing on `CREATE TABLE`.
const SCHEMA: &str = "
SELECT pg_advisory_xact_lock(7405412);
CREATE TABLE IF NOT EXISTS fleet_records (
    seq BIGSERIAL UNIQUE,
    agent TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    level INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    record JSONB NOT NULL,
    PRIMARY KEY (agent, id)
);
CREATE INDEX IF NOT EXISTS fleet_records_kind_seq ON fleet_records (kind, seq);
CREATE TABLE IF NOT EXISTS fleet_hosts (
    agent TEXT PRIMARY KEY,
    first_contact TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_contact TIMESTAMPTZ NOT NULL DEFAULT now(),
    records BIGINT NOT NULL DEFAULT 0
);
ALTER TABLE fleet_hosts ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMPTZ;
ALTER TABLE fleet_hosts ADD COLUMN IF NOT EXISTS version TEXT;
ALTER TABLE fleet_hosts ADD COLUMN IF NOT EXISTS uptime_s BIGINT;
ALTER TABLE fleet_hosts ADD COLUMN IF NOT EXISTS name TEXT;
";

/// A record as the hub received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The subject's agent token.
    pub agent: String,
    /// `alerts`, `events` or `findings`.
    pub kind: String,
    pub alert: Alert,
}

/// What a connection task hands back when the connection ends.
type Ended = tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>;

/// Connects once, the connection driven by its own task, and makes sure
/// the tables exist.
async fn open(
    conninfo: &Conninfo,
) -> Result<(Client, Ended), (tokio_postgres::Error, &'static str)> {
    let (client, connection) = conninfo
        .config
        .connect(conninfo.tls.clone())
        .await
        .map_err(|e| (e, "cannot connect"))?;
    let ended = tokio::spawn(connection);
    client
        .batch_execute(&format!("BEGIN;{SCHEMA}COMMIT;"))
        .await
        .map_err(|e| (e, "cannot create the hub's tables"))?;
    Ok((client, ended))
}

/// The first connection: a database that is starting up (or restarting)
/// is waited for; wrong credentials, database or TLS are refused at once.
async fn first(conninfo: &Conninfo) -> Result<(Client, Ended), HubError> {
    let mut waited = 0u32;
    loop {
        match open(conninfo).await {
            Ok(connected) => return Ok(connected),
            Err((error, _)) if waited < 30 && !refused(&error) => {
                tracing::info!(error = %explain(&error), "waiting for postgres");
                waited += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err((error, what)) => {
                return Err(HubError::Postgres(format!("{what}: {}", explain(&error))))
            }
        }
    }
}

/// Connects and makes sure the tables exist. The connection task runs
/// until the client is dropped; a connection that ends is not made again
/// (the hub's own connections are [`Link`]s).
pub async fn connect(conninfo: &str) -> Result<Client, HubError> {
    let (client, ended) = first(&Conninfo::parse(conninfo)?).await?;
    tokio::spawn(async move {
        if let Ok(Err(error)) = ended.await {
            tracing::warn!(error = %explain(&error), "postgres connection ended");
        }
    });
    Ok(client)
}

/// A connection kept up, and what it is for (the consumer's [`Writer`],
/// the API's client). When the connection ends (PostgreSQL restarted,
/// the network went), a task connects again with backoff, makes the
/// tables and what the connection is for anew (the writer prepares its
/// statements again) and swaps it in. Meanwhile the old one fails at
/// once, `up` is false and `postgres_links_down` in the stats counts it.
pub struct Link<T> {
    pub current: Arc<Mutex<T>>,
    pub up: watch::Receiver<bool>,
}

/// Connects as [`connect`] does, then keeps the connection up until
/// every holder of `current` is gone.
pub async fn link<T, F, Fut>(
    conninfo: Arc<Conninfo>,
    role: &'static str,
    stats: Arc<ConsumeStats>,
    make: F,
) -> Result<Link<T>, HubError>
where
    T: Send + 'static,
    F: Fn(Client, AbortHandle) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, HubError>> + Send + 'static,
{
    let (client, ended) = first(&conninfo).await?;
    let current = Arc::new(Mutex::new(make(client, ended.abort_handle()).await?));
    let (up_tx, up) = watch::channel(true);
    let weak = Arc::downgrade(&current);
    tokio::spawn(async move {
        let mut ended = ended;
        loop {
            let reason = match (&mut ended).await {
                // The client was dropped: the hub is done with it.
                Ok(Ok(())) => return,
                Ok(Err(error)) => explain(&error),
                Err(error) if error.is_cancelled() => {
                    "a query had no answer in time: the connection was dropped".to_owned()
                }
                Err(error) => format!("the connection task failed: {error}"),
            };
            let Some(next) =
                reconnect(&conninfo, role, &stats, &make, &weak, &up_tx, &reason).await
            else {
                return;
            };
            ended = next;
        }
    });
    Ok(Link { current, up })
}

/// Connects again until it works (or the link's holders are gone): the
/// first connection lost of an outage is logged, the last one back too,
/// each failed attempt is counted.
async fn reconnect<T, F, Fut>(
    conninfo: &Conninfo,
    role: &'static str,
    stats: &ConsumeStats,
    make: &F,
    current: &Weak<Mutex<T>>,
    up: &watch::Sender<bool>,
    reason: &str,
) -> Option<Ended>
where
    F: Fn(Client, AbortHandle) -> Fut,
    Fut: Future<Output = Result<T, HubError>>,
{
    up.send_replace(false);
    stats
        .postgres_disconnects_total
        .fetch_add(1, Ordering::Relaxed);
    if stats.postgres_links_down.fetch_add(1, Ordering::Relaxed) == 0 {
        tracing::warn!(connection = role, error = %reason, "lost the connection to postgres; reconnecting (records wait in the stream)");
    } else {
        tracing::debug!(connection = role, error = %reason, "lost the connection to postgres");
    }
    let since = std::time::Instant::now();
    let mut attempts = 0u32;
    loop {
        tokio::time::sleep(reconnect_backoff(attempts)).await;
        let current = current.upgrade()?;
        attempts = attempts.saturating_add(1);
        let made = match open(conninfo).await {
            Ok((client, ended)) => make(client, ended.abort_handle())
                .await
                .map(|made| (made, ended)),
            Err((error, what)) => Err(HubError::PostgresDown(format!(
                "{what}: {}",
                explain(&error)
            ))),
        };
        match made {
            Ok((made, ended)) => {
                *current.lock().await = made;
                up.send_replace(true);
                stats
                    .postgres_reconnects_total
                    .fetch_add(1, Ordering::Relaxed);
                let down_for = humantime::format_duration(std::time::Duration::from_secs(
                    since.elapsed().as_secs(),
                ));
                if stats.postgres_links_down.fetch_sub(1, Ordering::Relaxed) == 1 {
                    tracing::info!(connection = role, %down_for, attempts, "reconnected to postgres");
                } else {
                    tracing::debug!(connection = role, %down_for, attempts, "reconnected to postgres");
                }
                return Some(ended);
            }
            Err(error) => {
                stats
                    .postgres_connect_failures_total
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(connection = role, %error, attempts, "postgres still unreachable");
            }
        }
    }
}

/// 250 ms, doubling, at most 10 s between attempts.
fn reconnect_backoff(attempts: u32) -> std::time::Duration {
    std::time::Duration::from_millis(250u64.saturating_mul(1 << attempts.min(5)).min(10_000))
}

/// The server's own message, which tokio-postgres' Display leaves out;
/// for TLS trouble, where to look.
pub fn explain(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None if tls_failed(error) => format!(
            "{} (check sslmode and sslrootcert in 'postgres', and the server's certificate)",
            crate::with_causes(error)
        ),
        None => crate::with_causes(error),
    }
}

/// tokio-postgres tells TLS failures (a certificate refused, a server
/// without TLS under `require`) by this text alone.
fn tls_failed(error: &tokio_postgres::Error) -> bool {
    error
        .to_string()
        .starts_with("error performing TLS handshake")
}

/// Wrong credentials, database or TLS: waiting cannot help.
fn refused(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    tls_failed(error)
        || error.code().is_some_and(|code| {
            [
                SqlState::INVALID_PASSWORD,
                SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
                SqlState::INVALID_CATALOG_NAME,
            ]
            .contains(code)
        })
}

/// One statement stores a whole batch: the records arrive as one array
/// per column (so the statement has 7 parameters whatever the batch's
/// size, far below PostgreSQL's 65535), are inserted in the order they
/// came unless already there, and each host of the batch has its last
/// contact and count moved, in agent order so that hubs writing at once
/// lock the host rows in the same order. A single statement is one
/// transaction: all of it is stored, or nothing.
const INSERT_BATCH: &str = "
WITH batch AS (
    SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[])
        WITH ORDINALITY AS b(agent, id, kind, level, rule_id, raised_at, record, n)
), added AS (
    INSERT INTO fleet_records (agent, id, kind, level, rule_id, raised_at, record)
    SELECT agent, id, kind, level, rule_id, raised_at, CAST(record AS jsonb) FROM batch ORDER BY n
    ON CONFLICT (agent, id) DO NOTHING
    RETURNING agent
), per_host AS (
    SELECT hosts.agent, count(added.agent) AS records
    FROM (SELECT DISTINCT agent FROM batch) AS hosts LEFT JOIN added ON added.agent = hosts.agent
    GROUP BY hosts.agent
), touched AS (
    INSERT INTO fleet_hosts (agent, records) SELECT agent, records FROM per_host ORDER BY agent
    ON CONFLICT (agent) DO UPDATE SET last_contact = now(),
    records = fleet_hosts.records + EXCLUDED.records
)
SELECT count(*) FROM added";

/// The latest heartbeat of each host: its last contact, version and uptime.
const HEARTBEATS: &str = "
INSERT INTO fleet_hosts (agent, version, uptime_s, name, heartbeat_at)
SELECT agent, version, uptime_s, name, now()
FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[]) AS h(agent, version, uptime_s, name) ORDER BY agent
ON CONFLICT (agent) DO UPDATE SET last_contact = now(), heartbeat_at = now(),
version = EXCLUDED.version, uptime_s = EXCLUDED.uptime_s,
name = COALESCE(EXCLUDED.name, fleet_hosts.name)";

/// A host's heartbeat as the hub received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// The subject's agent token.
    pub agent: String,
    pub version: String,
    pub uptime_s: i64,
    /// The agent's own name (the `instance` of its metrics), when the
    /// heartbeat's matches the subject's token.
    pub name: Option<String>,
}

/// The consumer's connection, its statements prepared once.
pub struct Writer {
    client: Client,
    insert: tokio_postgres::Statement,
    heartbeats: tokio_postgres::Statement,
    /// How long a statement may go without an answer (a server that
    /// stopped, a network that drops packets without a word)...
    timeout: std::time::Duration,
    /// ... before its connection is dropped, for the [`Link`] to make
    /// again.
    sever: Option<AbortHandle>,
}

/// The default of [`Writer::answer_within`]: a batch takes milliseconds.
pub const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Writer {
    pub async fn new(client: Client) -> Result<Self, HubError> {
        let prepare = |e: tokio_postgres::Error| {
            HubError::Postgres(format!(
                "cannot prepare the hub's statements: {}",
                explain(&e)
            ))
        };
        let insert = client.prepare(INSERT_BATCH).await.map_err(prepare)?;
        let heartbeats = client.prepare(HEARTBEATS).await.map_err(prepare)?;
        Ok(Self {
            client,
            insert,
            heartbeats,
            timeout: QUERY_TIMEOUT,
            sever: None,
        })
    }

    /// A statement without an answer within `timeout` fails as
    /// [`HubError::PostgresDown`] (and drops the connection, when
    /// [`severs`](Self::severs) gave it).
    pub fn answer_within(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The task of this writer's connection, ended when a statement has
    /// no answer in time.
    pub fn severs(mut self, connection: AbortHandle) -> Self {
        self.sever = Some(connection);
        self
    }

    /// Runs `query` within the timeout.
    async fn answered<T>(
        &self,
        what: &str,
        query: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, HubError> {
        match tokio::time::timeout(self.timeout, query).await {
            Ok(answer) => answer.map_err(|e| self.failed(what, &e)),
            Err(_) => {
                if let Some(connection) = &self.sever {
                    connection.abort();
                }
                Err(HubError::PostgresDown(format!(
                    "{what}: no answer within {}; the connection is dropped",
                    humantime::format_duration(self.timeout)
                )))
            }
        }
    }

    /// Stores `records` in one transaction, each only if absent (a record
    /// twice in `records` is stored once); returns how many were new.
    /// Nothing is stored when it fails.
    pub async fn insert(&self, records: &[Incoming]) -> Result<u64, HubError> {
        if records.is_empty() {
            return Ok(0);
        }
        let mut columns = Columns::with_capacity(records.len());
        for record in records {
            columns.agent.push(without_nul(&record.agent));
            columns.id.push(without_nul(&record.alert.id));
            columns.kind.push(without_nul(&record.kind));
            columns.level.push(i32::from(record.alert.rule.level));
            columns.rule_id.push(without_nul(&record.alert.rule.id));
            columns.raised_at.push(without_nul(&record.alert.timestamp));
            columns.record.push(json_without_nul(&record.alert)?);
        }
        let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &columns.agent,
            &columns.id,
            &columns.kind,
            &columns.level,
            &columns.rule_id,
            &columns.raised_at,
            &columns.record,
        ];
        let query = self.client.query_one(&self.insert, &parameters);
        let row = self.answered("cannot store records", query).await?;
        let new: i64 = row.get(0);
        Ok(u64::try_from(new).unwrap_or(0))
    }

    /// Records the hosts' heartbeats (the latest of each) as their last
    /// contact.
    pub async fn heartbeats(&self, beats: &[Beat]) -> Result<(), HubError> {
        let mut latest: std::collections::BTreeMap<&str, &Beat> = Default::default();
        for beat in beats {
            latest.insert(beat.agent.as_str(), beat);
        }
        if latest.is_empty() {
            return Ok(());
        }
        let agents: Vec<&str> = latest.keys().copied().collect();
        let versions: Vec<&str> = latest.values().map(|b| b.version.as_str()).collect();
        let uptimes: Vec<i64> = latest.values().map(|b| b.uptime_s).collect();
        let names: Vec<Option<&str>> = latest.values().map(|b| b.name.as_deref()).collect();
        let parameters: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&agents, &versions, &uptimes, &names];
        let query = self.client.execute(&self.heartbeats, &parameters);
        self.answered("cannot record heartbeats", query).await?;
        Ok(())
    }

    /// What failed: the database, or its connection (an outage that the
    /// writer's [`Link`] reports once and mends).
    fn failed(&self, what: &str, error: &tokio_postgres::Error) -> HubError {
        let text = format!("{what}: {}", explain(error));
        // An error the server did not send (the connection broke, which
        // the client may not know yet), or a server shutting down (class
        // 57P, operator intervention) or losing the connection (08).
        let going = error
            .code()
            .is_none_or(|code| code.code().starts_with("57P") || code.code().starts_with("08"));
        if going || self.client.is_closed() {
            HubError::PostgresDown(text)
        } else {
            HubError::Postgres(text)
        }
    }
}

/// PostgreSQL's text and jsonb take no NUL character, which a log line can
/// carry into an alert: a record holding one would fail its whole batch
/// at every delivery. It is stored with U+FFFD in its place.
fn without_nul(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The record's JSON, NUL characters replaced as [`without_nul`] does.
fn json_without_nul(alert: &Alert) -> Result<String, HubError> {
    let encode = |e: serde_json::Error| HubError::Postgres(format!("cannot encode a record: {e}"));
    let json = serde_json::to_string(alert).map_err(encode)?;
    // serde_json writes a NUL as this escape. The text "\u0000" (an
    // escaped backslash) matches too; the walk leaves it as it is.
    if !json.contains("\\u0000") {
        return Ok(json);
    }
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(text) if text.contains('\0') => {
                *text = text.replace('\0', "\u{FFFD}");
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(fields) => {
                let keys: Vec<String> = fields
                    .keys()
                    .filter(|k| k.contains('\0'))
                    .cloned()
                    .collect();
                for key in keys {
                    if let Some(item) = fields.remove(&key) {
                        fields.insert(key.replace('\0', "\u{FFFD}"), item);
                    }
                }
                fields.values_mut().for_each(walk);
            }
            _ => {}
        }
    }
    let mut value = serde_json::to_value(alert).map_err(encode)?;
    walk(&mut value);
    serde_json::to_string(&value).map_err(encode)
}

/// A batch, one array per column of `fleet_records`.
struct Columns<'a> {
    agent: Vec<Cow<'a, str>>,
    id: Vec<Cow<'a, str>>,
    kind: Vec<Cow<'a, str>>,
    level: Vec<i32>,
    rule_id: Vec<Cow<'a, str>>,
    raised_at: Vec<Cow<'a, str>>,
    record: Vec<String>,
}

impl Columns<'_> {
    fn with_capacity(n: usize) -> Self {
        Self {
            agent: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            level: Vec::with_capacity(n),
            rule_id: Vec::with_capacity(n),
            raised_at: Vec::with_capacity(n),
            record: Vec::with_capacity(n),
        }
    }
}

/// A host as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Host {
    pub agent: String,
    /// By the age of the last contact (a record or a heartbeat): `up`
    /// within `quiet_after`, `quiet` within `down_after`, else `down`.
    pub state: &'static str,
    pub first_contact_unix_ms: i64,
    pub last_contact_unix_ms: i64,
    pub records: i64,
    /// From the last heartbeat; `null` for a host that never sent one.
    pub last_heartbeat_unix_ms: Option<i64>,
    pub version: Option<String>,
    pub uptime_s: Option<i64>,
}

/// How old a host's last contact may be for each state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostThresholds {
    pub quiet_after: std::time::Duration,
    pub down_after: std::time::Duration,
}

impl HostThresholds {
    /// `up`, `quiet` or `down` for a last contact `silent_s` seconds ago.
    pub fn state(&self, silent_s: f64) -> &'static str {
        if silent_s <= self.quiet_after.as_secs_f64() {
            "up"
        } else if silent_s <= self.down_after.as_secs_f64() {
            "quiet"
        } else {
            "down"
        }
    }
}

pub async fn hosts(client: &Client, thresholds: HostThresholds) -> Result<Vec<Host>, HubError> {
    let rows = client
        .query(
            "SELECT agent, \
             (EXTRACT(EPOCH FROM first_contact) * 1000)::BIGINT, \
             (EXTRACT(EPOCH FROM last_contact) * 1000)::BIGINT, records, \
             EXTRACT(EPOCH FROM now() - last_contact)::FLOAT8, \
             (EXTRACT(EPOCH FROM heartbeat_at) * 1000)::BIGINT, version, uptime_s \
             FROM fleet_hosts ORDER BY agent",
            &[],
        )
        .await
        .map_err(|e| HubError::Postgres(format!("cannot list hosts: {}", explain(&e))))?;
    Ok(rows
        .iter()
        .map(|row| Host {
            agent: row.get(0),
            state: thresholds.state(row.get(4)),
            first_contact_unix_ms: row.get(1),
            last_contact_unix_ms: row.get(2),
            records: row.get(3),
            last_heartbeat_unix_ms: row.get(5),
            version: row.get(6),
            uptime_s: row.get(7),
        })
        .collect())
}

/// What `/api/v1/alerts` and `/api/v1/findings` select.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    /// `alerts` and `events` for alerts, `findings` for findings.
    pub kinds: Vec<String>,
    pub agent: Option<String>,
    pub min_level: Option<u8>,
    /// The rule's id, exactly.
    pub rule_id: Option<String>,
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// A record as stored: the hub's sequence number, the host it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub seq: i64,
    pub agent: String,
    pub alert: Alert,
}

/// Records newest first (oldest first after `after_seq`).
pub async fn records(client: &Client, filter: &RecordFilter) -> Result<Vec<Stored>, HubError> {
    let order = if filter.after_seq.is_some() {
        "ASC"
    } else {
        "DESC"
    };
    let rows = client
        .query(
            &format!(
                "SELECT seq, record::text, agent FROM fleet_records \
                 WHERE kind = ANY($1) AND ($2::TEXT IS NULL OR agent = $2) \
                 AND level >= $3 AND seq > $4 AND ($6::TEXT IS NULL OR rule_id = $6) \
                 ORDER BY seq {order} LIMIT $5"
            ),
            &[
                &filter.kinds,
                &filter.agent,
                &i32::from(filter.min_level.unwrap_or(0)),
                &filter.after_seq.unwrap_or(0),
                &filter.limit,
                &filter.rule_id,
            ],
        )
        .await
        .map_err(|e| HubError::Postgres(format!("cannot read records: {}", explain(&e))))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.get(1);
        match serde_json::from_str::<Alert>(&text) {
            Ok(alert) => out.push(Stored {
                seq: row.get(0),
                agent: row.get(2),
                alert,
            }),
            Err(error) => {
                tracing::warn!(%error, "a stored record does not read as an alert; left out")
            }
        }
    }
    Ok(out)
}

/// How many records of each kind each host has stored: (agent, kind, count).
pub async fn counts(client: &Client) -> Result<Vec<(String, String, i64)>, HubError> {
    let rows = client
        .query(
            "SELECT agent, kind, count(*) FROM fleet_records GROUP BY agent, kind",
            &[],
        )
        .await
        .map_err(|e| HubError::Postgres(format!("cannot count records: {}", explain(&e))))?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}
