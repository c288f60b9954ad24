//! The hub's PostgreSQL tables: every record once, keyed by the agent and
//! the record's id (an alert id is unique per host, not per fleet), and
//! one row per host with its last contact.

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

/// Stores `records` in one transaction, each only if absent; returns how
/// many were new. Nothing is stored when it fails.
pub async fn insert(client: &mut Client, records: &[Incoming]) -> Result<u64, HubError> {
    let failed =
        |e: tokio_postgres::Error| HubError::Postgres(format!("cannot store records: {e}"));
    let tx = client.transaction().await.map_err(failed)?;
    let insert = tx
        .prepare(
            "INSERT INTO fleet_records (agent, id, kind, level, rule_id, raised_at, record) \
             VALUES ($1, $2, $3, $4, $5, $6, CAST($7::text AS jsonb)) \
             ON CONFLICT (agent, id) DO NOTHING",
        )
        .await
        .map_err(failed)?;
    let host = tx
        .prepare(
            "INSERT INTO fleet_hosts (agent, records) VALUES ($1, $2) \
             ON CONFLICT (agent) DO UPDATE SET last_contact = now(), \
             records = fleet_hosts.records + EXCLUDED.records",
        )
        .await
        .map_err(failed)?;
    let mut new = 0u64;
    let mut per_host: std::collections::BTreeMap<&str, i64> = Default::default();
    for record in records {
        let json = serde_json::to_string(&record.alert)
            .map_err(|e| HubError::Postgres(format!("cannot encode a record: {e}")))?;
        let added = tx
            .execute(
                &insert,
                &[
                    &record.agent,
                    &record.alert.id,
                    &record.kind,
                    &i32::from(record.alert.rule.level),
                    &record.alert.rule.id,
                    &record.alert.timestamp,
                    &json,
                ],
            )
            .await
            .map_err(failed)?;
        new += added;
        *per_host.entry(record.agent.as_str()).or_default() += added as i64;
    }
    for (agent, added) in per_host {
        tx.execute(&host, &[&agent, &added]).await.map_err(failed)?;
    }
    tx.commit().await.map_err(failed)?;
    Ok(new)
}

/// A host as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Host {
    pub agent: String,
    /// `active` (a record within `quiet_after`) or `quiet`.
    pub state: String,
    pub first_contact_unix_ms: i64,
    pub last_contact_unix_ms: i64,
    pub records: i64,
}

pub async fn hosts(client: &Client, quiet_after_s: f64) -> Result<Vec<Host>, HubError> {
    let rows = client
        .query(
            "SELECT agent, \
             (EXTRACT(EPOCH FROM first_contact) * 1000)::BIGINT, \
             (EXTRACT(EPOCH FROM last_contact) * 1000)::BIGINT, records, \
             EXTRACT(EPOCH FROM now() - last_contact)::FLOAT8 \
             FROM fleet_hosts ORDER BY agent",
            &[],
        )
        .await
        .map_err(|e| HubError::Postgres(format!("cannot list hosts: {e}")))?;
    Ok(rows
        .iter()
        .map(|row| {
            let silent: f64 = row.get(4);
            Host {
                agent: row.get(0),
                state: if silent <= quiet_after_s {
                    "active"
                } else {
                    "quiet"
                }
                .to_owned(),
                first_contact_unix_ms: row.get(1),
                last_contact_unix_ms: row.get(2),
                records: row.get(3),
            }
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
    pub after_seq: Option<i64>,
    pub limit: i64,
}

/// Records newest first (oldest first after `after_seq`), with their hub
/// sequence number.
pub async fn records(
    client: &Client,
    filter: &RecordFilter,
) -> Result<Vec<(i64, Alert)>, HubError> {
    let order = if filter.after_seq.is_some() {
        "ASC"
    } else {
        "DESC"
    };
    let rows = client
        .query(
            &format!(
                "SELECT seq, record::text FROM fleet_records \
                 WHERE kind = ANY($1) AND ($2::TEXT IS NULL OR agent = $2) \
                 AND level >= $3 AND seq > $4 ORDER BY seq {order} LIMIT $5"
            ),
            &[
                &filter.kinds,
                &filter.agent,
                &i32::from(filter.min_level.unwrap_or(0)),
                &filter.after_seq.unwrap_or(0),
                &filter.limit,
            ],
        )
        .await
        .map_err(|e| HubError::Postgres(format!("cannot read records: {e}")))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.get(1);
        match serde_json::from_str::<Alert>(&text) {
            Ok(alert) => out.push((row.get(0), alert)),
            Err(error) => {
                tracing::warn!(%error, "a stored record does not read as an alert; left out")
            }
        }
    }
    Ok(out)
}
