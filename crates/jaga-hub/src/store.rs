//! The hub's PostgreSQL tables: every record once, keyed by the agent and
//! the record's id (an alert id is unique per host, not per fleet), and
//! one row per host with its last contact.

use std::borrow::Cow;

use jaga_model::Alert;
use tokio_postgres::{Client, NoTls};

use crate::HubError;

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

/// Connects and makes sure the tables exist. The connection task runs
/// until the client is dropped.
pub async fn connect(conninfo: &str) -> Result<Client, HubError> {
    // A database that is starting up (or restarting) is waited for.
    let mut waited = 0u32;
    let (client, connection) = loop {
        match tokio_postgres::connect(conninfo, NoTls).await {
            Ok(connected) => break connected,
            Err(error) if waited < 30 && !refused(&error) => {
                tracing::info!(error = %explain(&error), "waiting for postgres");
                waited += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(error) => {
                return Err(HubError::Postgres(format!(
                    "cannot connect: {}",
                    explain(&error)
                )))
            }
        }
    };
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "postgres connection ended");
        }
    });
    client
        .batch_execute(&format!("BEGIN;{SCHEMA}COMMIT;"))
        .await
        .map_err(|e| {
            HubError::Postgres(format!("cannot create the hub's tables: {}", explain(&e)))
        })?;
    Ok(client)
}

/// The server's own message, which tokio-postgres' Display leaves out.
pub fn explain(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => error.to_string(),
    }
}

/// Wrong credentials or database: waiting cannot help.
fn refused(error: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    error.code().is_some_and(|code| {
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
}

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
        })
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
        let row = self
            .client
            .query_one(
                &self.insert,
                &[
                    &columns.agent,
                    &columns.id,
                    &columns.kind,
                    &columns.level,
                    &columns.rule_id,
                    &columns.raised_at,
                    &columns.record,
                ],
            )
            .await
            .map_err(|e| HubError::Postgres(format!("cannot store records: {}", explain(&e))))?;
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
        self.client
            .execute(&self.heartbeats, &[&agents, &versions, &uptimes, &names])
            .await
            .map_err(|e| {
                HubError::Postgres(format!("cannot record heartbeats: {}", explain(&e)))
            })?;
        Ok(())
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
        .map_err(|e| HubError::Postgres(format!("cannot read records: {e}")))?;
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
