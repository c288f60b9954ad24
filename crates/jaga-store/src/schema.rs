//! Table layout, the SQL built from it, and opening/creating the file.
//!
//! # Why NUMERIC columns rather than a BLOB of nine `f64`
//!
//! Each series is its own column with NUMERIC affinity: SQLite then stores a
//! double with no fractional part as an integer of 0 to 8 bytes (a zero or
//! a one takes no payload byte at all) and reads it back as the same
//! `f64`. Most history values are whole numbers (memory bytes, pids, the
//! limit) or zero (idle network, block I/O), so a row costs 9 header bytes
//! plus typically 20–50 payload bytes, where a BLOB always costs 72 bytes
//! plus its header. REAL affinity would not do: the bundled SQLite (3.54)
//! writes every REAL as 8 bytes, even 0.0. Measured on 100 containers ×
//! 3600 realistic points: about 55 bytes per raw row with NUMERIC columns,
//! 99 with a BLOB. Columns also let [`roll_up`](crate::HistoryStore::roll_up)
//! run as one `INSERT … SELECT MIN/AVG/MAX … GROUP BY`, with no decoding in
//! Rust. SQLite stores a NaN as NULL; reads turn NULL back into NaN and the
//! aggregates skip it, so a NaN reading counts as missing.
//!
//! Both point tables are `WITHOUT ROWID`: the key is the row, there is no
//! second b-tree. `raw` is clustered on `(ts, ck)`, so each collection pass
//! appends its rows to the rightmost leaf pages and a commit writes a few
//! pages, where `(ck, ts)` would touch one leaf page per container: measured
//! with 100 containers at 1 s, that layout made SQLite write 1.3 GiB an hour.
//! A range read for one container scans the time range of all containers,
//! which for an hour of raw points is a few hundred thousand short rows.
//! `rollup_1m`, written once a minute, stays on `(ck, ts)` so that long
//! ranges read one container's rows only. `ck` is a small integer from
//! `containers` rather than the 64-hex-digit id, which would cost 65 bytes
//! per row.

use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use jaga_model::SERIES_COUNT;

use crate::StoreError;

/// The schema this code reads and writes. Bump it, and add a migration to
/// [`migration`], when a table or column changes.
///
/// - 1: the nine resource series.
/// - 2: the disk-usage series (writable layer, volumes, log file) appended.
pub const SCHEMA_VERSION: u32 = 2;

/// Column names of the series, in the order of
/// [`jaga_model::HISTORY_SERIES`] (a test keeps them equal). Renaming one
/// is a schema change; a new one is appended, with a migration.
///
/// The disk-usage series arrive at the filesystem cadence, so most raw rows
/// hold NULL there (one header byte, no payload); the rollup aggregates skip
/// NULL, and a minute with no walk rolls up to NULL, not 0.
pub(crate) const SERIES_COLUMNS: [&str; SERIES_COUNT] = [
    "cpu_percent",
    "memory_usage_bytes",
    "memory_working_set_bytes",
    "network_rx_bytes_per_second",
    "network_tx_bytes_per_second",
    "block_read_bytes_per_second",
    "block_write_bytes_per_second",
    "pids",
    "memory_limit_bytes",
    "writable_layer_bytes",
    "volume_bytes",
    "log_file_bytes",
];

/// How many of [`SERIES_COLUMNS`] version 1 had.
const V1_SERIES: usize = 9;

/// The series version 2 appended to version 1's.
const ADDED_IN_V2: [&str; 3] = ["writable_layer_bytes", "volume_bytes", "log_file_bytes"];

pub(crate) const META_SCHEMA_VERSION: &str = "schema_version";
/// Minutes before this (exclusive, minute aligned) are rolled up.
pub(crate) const META_ROLLED_UNTIL: &str = "rolled_until_ms";
/// Raw points are complete from this time on; older ones were trimmed.
pub(crate) const META_RAW_COMPLETE_FROM: &str = "raw_complete_from_ms";
/// Minute rollups are complete from this time on; older ones were trimmed.
pub(crate) const META_ROLLUPS_COMPLETE_FROM: &str = "rollups_complete_from_ms";

pub(crate) const MINUTE_MS: i64 = 60_000;

/// SQL text built once per store from [`SERIES_COLUMNS`].
#[derive(Debug)]
pub(crate) struct Sql {
    pub insert_raw: String,
    pub select_raw: String,
    pub latest_raw: String,
    pub roll_up: String,
    pub select_rollup: String,
    pub export_rollups: String,
}

fn rollup_columns() -> Vec<String> {
    rollup_columns_of(&SERIES_COLUMNS)
}

/// `min_`, `avg_` and `max_` of each of `series`, in that order.
fn rollup_columns_of(series: &[&str]) -> Vec<String> {
    ["min", "avg", "max"]
        .iter()
        .flat_map(|agg| series.iter().map(move |s| format!("{agg}_{s}")))
        .collect()
}

impl Sql {
    pub fn new() -> Self {
        let series = SERIES_COLUMNS.join(", ");
        let placeholders = (3..3 + SERIES_COUNT)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rollup_cols = rollup_columns().join(", ");
        let rollup_cols_r = rollup_columns()
            .iter()
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let aggregates = ["MIN", "AVG", "MAX"]
            .iter()
            .flat_map(|f| SERIES_COLUMNS.iter().map(move |s| format!("{f}({s})")))
            .collect::<Vec<_>>()
            .join(", ");
        Self {
            insert_raw: format!(
                "INSERT OR REPLACE INTO raw (ck, ts, {series}) VALUES (?1, ?2, {placeholders})"
            ),
            select_raw: format!(
                "SELECT ts, {series} FROM raw WHERE ck = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts"
            ),
            latest_raw: format!(
                "SELECT ts, {series} FROM raw WHERE ck = ?1 ORDER BY ts DESC LIMIT 1"
            ),
            // `ts - ((ts % m) + m) % m` floors to the minute for negative
            // times too (SQLite's % keeps the sign of the dividend).
            roll_up: format!(
                "INSERT OR REPLACE INTO rollup_1m (ck, ts, count, {rollup_cols}) \
                 SELECT ck, ts - ((ts % {MINUTE_MS}) + {MINUTE_MS}) % {MINUTE_MS} AS minute, \
                 COUNT(*), {aggregates} \
                 FROM raw WHERE ts >= ?1 AND ts < ?2 \
                 GROUP BY ck, minute"
            ),
            select_rollup: format!(
                "SELECT ts, count, {rollup_cols} FROM rollup_1m \
                 WHERE ck = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY ts"
            ),
            // One range seek per container on (ck, ts), then sorted.
            export_rollups: format!(
                "SELECT r.ts, r.count, {rollup_cols_r}, c.id, c.name, c.image \
                 FROM containers c JOIN rollup_1m r ON r.ck = c.key \
                 WHERE r.ts >= ?1 AND r.ts < ?2 ORDER BY r.ts, r.ck"
            ),
        }
    }
}

/// `ALTER TABLE` statements that add the series `names` to both point
/// tables: a raw column each, and its min/avg/max rollup columns.
fn add_series_sql(names: &[&str]) -> String {
    let mut sql = String::new();
    for name in names {
        sql.push_str(&format!("ALTER TABLE raw ADD COLUMN {name} NUMERIC;\n"));
    }
    for agg in ["min", "avg", "max"] {
        for name in names {
            sql.push_str(&format!(
                "ALTER TABLE rollup_1m ADD COLUMN {agg}_{name} NUMERIC;\n"
            ));
        }
    }
    sql
}

/// The SQL that brings a file at version `from` to `from + 1`; `None` for
/// a version no migration starts from.
fn migration(from: i64) -> Option<String> {
    match from {
        1 => Some(add_series_sql(&ADDED_IN_V2)),
        _ => None,
    }
}

/// The tables as version 1 created them. A fresh file starts here and goes
/// through the same migrations as an old one, so both end in one layout
/// (columns a migration adds come after the ones before).
fn create_v1_sql() -> String {
    let v1 = &SERIES_COLUMNS[..V1_SERIES];
    let raw_cols: String = v1.iter().map(|s| format!(",\n    {s} NUMERIC")).collect();
    let rollup_cols: String = rollup_columns_of(v1)
        .iter()
        .map(|s| format!(",\n    {s} NUMERIC"))
        .collect();
    format!(
        "CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value NOT NULL
) WITHOUT ROWID;
CREATE TABLE containers (
    key INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    image TEXT NOT NULL,
    labels TEXT NOT NULL,
    state TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE TABLE raw (
    ts INTEGER NOT NULL,
    ck INTEGER NOT NULL{raw_cols},
    PRIMARY KEY (ts, ck)
) WITHOUT ROWID;
CREATE TABLE rollup_1m (
    ck INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    count INTEGER NOT NULL{rollup_cols},
    PRIMARY KEY (ck, ts)
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('{META_SCHEMA_VERSION}', 1);"
    )
}

/// Opens `path`, sets WAL and `synchronous=NORMAL`, creates the tables in a
/// fresh file, migrates an older one in place and refuses a schema version
/// it does not know (a newer jaga's).
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open_err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_err)?;
    // The first statement that reads the file: a file that is not a SQLite
    // database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(open_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(
            path = %path.display(),
            journal_mode = %mode,
            "history database is not in wal mode; writes will block readers"
        );
    }
    // WAL + NORMAL: a commit is not fsynced, so a crash can lose the last
    // transactions, but the file is never corrupted.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err)?;
    // After a checkpoint the WAL is cut back to this size instead of
    // keeping its largest size forever.
    conn.pragma_update(None, "journal_size_limit", 8 * 1024 * 1024)
        .map_err(open_err)?;

    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(open_err)?;
    let has_meta: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |r| r.get(0),
        )
        .map_err(open_err)?;
    if !has_meta {
        tx.execute_batch(&create_v1_sql()).map_err(open_err)?;
    }
    let found: Option<Value> = tx
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [META_SCHEMA_VERSION],
            |r| r.get(0),
        )
        .optional()
        .map_err(open_err)?;
    let refuse = |found: String| StoreError::SchemaVersion {
        path: path.to_path_buf(),
        found,
        supported: SCHEMA_VERSION,
    };
    let first = match found {
        Some(Value::Integer(v)) => v,
        Some(Value::Text(t)) => return Err(refuse(t)),
        Some(_) => return Err(refuse("not a number".to_owned())),
        None => return Err(refuse("none".to_owned())),
    };
    // Every step in the one transaction: a crash midway leaves the file at
    // the version it had.
    let mut version = first;
    while version != i64::from(SCHEMA_VERSION) {
        let Some(sql) = (version < i64::from(SCHEMA_VERSION))
            .then(|| migration(version))
            .flatten()
        else {
            return Err(refuse(version.to_string()));
        };
        let migrate_err = |source| StoreError::Sqlite {
            action: format!("migrating the history schema from version {version}"),
            path: path.to_path_buf(),
            source,
        };
        tx.execute_batch(&sql).map_err(migrate_err)?;
        set_meta_i64(&tx, META_SCHEMA_VERSION, version + 1).map_err(migrate_err)?;
        version += 1;
    }
    tx.commit().map_err(open_err)?;
    if has_meta && first != version {
        tracing::info!(
            path = %path.display(),
            from = first,
            to = version,
            "history database schema migrated"
        );
    }
    Ok(conn)
}

/// Reads an integer from `meta`; `Ok(None)` when the key is absent.
pub(crate) fn meta_i64(conn: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

pub(crate) fn set_meta_i64(conn: &Connection, key: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(rusqlite::params![key, value])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_columns_follow_history_series() {
        assert_eq!(SERIES_COLUMNS, jaga_model::HISTORY_SERIES);
    }

    #[test]
    fn the_migrations_add_every_series_after_version_1() {
        assert_eq!(SERIES_COLUMNS[V1_SERIES..], ADDED_IN_V2);
        assert!(migration(i64::from(SCHEMA_VERSION)).is_none());
        assert!(migration(0).is_none());
    }
}
