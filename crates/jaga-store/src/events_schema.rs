//! The layout of `events.sqlite3` and its migrations.
//!
//! The schema version is SQLite's `PRAGMA user_version`. Version 0 is the
//! layout the first releases wrote (no version, created with `IF NOT
//! EXISTS`); a fresh file is created in that layout and brought up to
//! [`EVENTS_SCHEMA_VERSION`] by the same migrations an old file goes
//! through, so there is one path to the current layout. Each migration runs
//! in one transaction with the version it sets: a crash midway leaves the
//! file as it was. A file from a newer jaga is refused.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// The version this code reads and writes: the number of [`MIGRATIONS`].
pub const EVENTS_SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 0, as the first releases created it.
const SCHEMA_V0: &str = "
CREATE TABLE IF NOT EXISTS events (
    identity TEXT PRIMARY KEY NOT NULL,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    container_id TEXT,
    container_name TEXT,
    json TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (time_nano);
CREATE INDEX IF NOT EXISTS events_by_container ON events (container_id, action, time_nano);
CREATE TABLE IF NOT EXISTS alerts (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    time_ms INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    container_id TEXT,
    container_name TEXT,
    text TEXT NOT NULL,
    json TEXT NOT NULL,
    in_file INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alerts_by_time ON alerts (time_ms);
CREATE INDEX IF NOT EXISTS alerts_to_file ON alerts (seq) WHERE in_file = 0;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_checkpoints (
    path TEXT PRIMARY KEY NOT NULL,
    inode INTEGER NOT NULL,
    offset INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_findings (
    identity TEXT PRIMARY KEY NOT NULL,
    first_seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Migration `i` takes the file from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: a sequence number on every event and alert, never reused (so a
    // client paging with `after=` cannot miss what comes after a trim), and
    // the alert time stored as the time the alert shows (log alerts stored
    // the time they were read). Events keep their identity as a unique key
    // and are numbered in time order.
    "
CREATE TABLE events_v1 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT NOT NULL UNIQUE,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    container_id TEXT,
    container_name TEXT,
    json TEXT NOT NULL
);
INSERT INTO events_v1 (identity, time_nano, type, action, actor, container_id, container_name, json)
    SELECT identity, time_nano, type, action, actor, container_id, container_name, json
    FROM events ORDER BY time_nano, identity;
DROP TABLE events;
ALTER TABLE events_v1 RENAME TO events;
CREATE INDEX events_by_time ON events (time_nano);
CREATE INDEX events_by_container ON events (container_id, action, time_nano);
CREATE TABLE alerts_v1 (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    time_ms INTEGER NOT NULL,
    rule_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    container_id TEXT,
    container_name TEXT,
    text TEXT NOT NULL,
    json TEXT NOT NULL,
    in_file INTEGER NOT NULL DEFAULT 0
);
INSERT INTO alerts_v1 (seq, id, time_ms, rule_id, level, container_id, container_name, text, json, in_file)
    SELECT seq, id,
        COALESCE(CAST(ROUND(unixepoch(json_extract(json, '$.timestamp'), 'subsec') * 1000) AS INTEGER), time_ms),
        rule_id, level, container_id, container_name, text, json, in_file
    FROM alerts ORDER BY seq;
DROP TABLE alerts;
ALTER TABLE alerts_v1 RENAME TO alerts;
CREATE INDEX alerts_by_time ON alerts (time_ms);
CREATE INDEX alerts_to_file ON alerts (seq) WHERE in_file = 0;
",
    // 2: a log checkpoint also names its file by a hash of its first line
    // (a deleted file's inode number is soon given to a new one) and keeps
    // the time up to which lines were read, which bounds a later loss.
    "
ALTER TABLE log_checkpoints ADD COLUMN head_hash INTEGER NOT NULL DEFAULT 0;
ALTER TABLE log_checkpoints ADD COLUMN seen_until_ns INTEGER NOT NULL DEFAULT 0;
",
    // 3: and by its birth time, where the filesystem keeps one: a file
    // checkpointed while still empty has no first line to tell it from the
    // later file that reuses its inode number.
    "
ALTER TABLE log_checkpoints ADD COLUMN born_ns INTEGER NOT NULL DEFAULT 0;
",
    // 4: metric rules: where each rule stands on each subject (pending since,
    // firing since, and the alert it fired with, from which its resolved
    // alert is made), so a restart neither fires an episode twice nor
    // loses its resolution. Self-contained: it may be ordered after any
    // other migration.
    "
CREATE TABLE metric_rule_state (
    key TEXT PRIMARY KEY NOT NULL,
    rule_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    pending_since_ms INTEGER NOT NULL,
    firing_since_ms INTEGER,
    last_value REAL,
    alert_json TEXT
) WITHOUT ROWID;
",
];

/// Brings the open file at `path` to [`EVENTS_SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sqlite = |action: &str, source| StoreError::Sqlite {
        action: action.to_owned(),
        path: path.to_path_buf(),
        source,
    };
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sqlite("starting a schema migration", e))?;
        // Read inside the write lock: another process may have migrated.
        let version: u32 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| sqlite("reading the schema version", e))?;
        if version == EVENTS_SCHEMA_VERSION {
            return Ok(());
        }
        let Some(migration) = MIGRATIONS.get(version as usize) else {
            return Err(StoreError::SchemaVersion {
                path: path.to_path_buf(),
                found: version.to_string(),
                supported: EVENTS_SCHEMA_VERSION,
            });
        };
        if version == 0 {
            tx.execute_batch(SCHEMA_V0)
                .map_err(|e| sqlite("creating the tables", e))?;
        }
        let action = format!("migrating the schema from version {version}");
        tx.execute_batch(migration)
            .map_err(|e| sqlite(&action, e))?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(|e| sqlite(&action, e))?;
        tx.commit().map_err(|e| sqlite(&action, e))?;
        tracing::info!(
            path = %path.display(),
            from = version,
            to = version + 1,
            "events database schema migrated"
        );
    }
}
