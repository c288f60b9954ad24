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
    // 5: delivery to outputs by a cursor per output over the alert sequence
    // (the design is argued in `events/delivery.rs`), in place of the
    // `in_file` flag: the alerts file's cursor starts after the last alert
    // it held. Dead letters keep what a receiver refused, with its answer.
    // Alerts remember when they were stored (delivery latency) and the
    // episode they belong to (re-sending what still fires).
    "
CREATE TABLE output_cursors (
    name TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    start_seq INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO output_cursors (name, kind, seq, start_seq, updated_ms)
    SELECT 'alerts_file', 'file', COALESCE(MAX(seq), 0), 0, 0 FROM alerts WHERE in_file = 1;
CREATE TABLE output_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    output TEXT NOT NULL,
    kind TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    seqs TEXT NOT NULL,
    alert_ids TEXT NOT NULL,
    count INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    error TEXT NOT NULL,
    answer TEXT NOT NULL
);
CREATE INDEX dead_letters_by_output ON output_dead_letters (output, last_seq);
ALTER TABLE alerts ADD COLUMN stored_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN episode_key TEXT;
ALTER TABLE alerts ADD COLUMN episode_firing INTEGER NOT NULL DEFAULT 0;
UPDATE alerts SET stored_ms = time_ms,
    episode_key = json_extract(json, '$.episode.key'),
    episode_firing = COALESCE(json_extract(json, '$.episode.status') = 'firing', 0);
CREATE INDEX alerts_by_episode ON alerts (episode_key, seq) WHERE episode_key IS NOT NULL;
DROP INDEX alerts_to_file;
ALTER TABLE alerts DROP COLUMN in_file;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventStore, EVENTS_FILE_NAME};

    /// A file at version 2, as the release before delivery cursors wrote
    /// it, with `alerts` rows `(id, in_file)`.
    fn version_2_file(dir: &Path, alerts: &[(&str, bool)]) {
        let conn = Connection::open(dir.join(EVENTS_FILE_NAME)).unwrap();
        conn.execute_batch(SCHEMA_V0).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        for (i, (id, in_file)) in alerts.iter().enumerate() {
            let json = format!(
                "{{\"id\":\"{id}\",\"timestamp\":\"2024-01-01T00:00:0{i}.000Z\",\
                 \"rule\":{{\"id\":\"91001\",\"level\":3,\"description\":\"d\",\"groups\":[],\"mitre\":[]}},\
                 \"agent\":{{\"id\":\"a\",\"name\":\"a\"}},\"data\":{{}},\"location\":\"docker-events\"}}"
            );
            conn.execute(
                "INSERT INTO alerts (id, time_ms, rule_id, level, text, json, in_file) \
                 VALUES (?1, ?2, '91001', 3, 'd', ?3, ?4)",
                rusqlite::params![id, 1_704_067_200_000_i64 + i as i64 * 1000, json, in_file],
            )
            .unwrap();
        }
    }

    #[test]
    fn version_2_alerts_in_the_file_become_the_file_outputs_cursor() {
        let dir = tempfile::tempdir().unwrap();
        version_2_file(dir.path(), &[("a", true), ("b", true), ("c", false)]);
        let store = EventStore::open(dir.path()).unwrap();
        let cursor = store.open_output_cursor("alerts_file", "file").unwrap();
        assert_eq!(cursor.seq, 2);
        let pending = store.alerts_after(cursor.seq, 10).unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].alert.id, "c");
        // Alerts from before keep their shown time as their stored time.
        assert_eq!(pending[0].stored_ms, 1_704_067_202_000);
        // A new output starts after them.
        assert_eq!(store.open_output_cursor("hook", "webhook").unwrap().seq, 3);
    }

    #[test]
    fn version_2_with_nothing_in_the_file_yet_writes_every_alert() {
        let dir = tempfile::tempdir().unwrap();
        version_2_file(dir.path(), &[("a", false), ("b", false)]);
        let store = EventStore::open(dir.path()).unwrap();
        let cursor = store.open_output_cursor("alerts_file", "file").unwrap();
        assert_eq!(cursor.seq, 0);
        assert_eq!(store.alerts_after(0, 10).unwrap().len(), 2);
    }
}
