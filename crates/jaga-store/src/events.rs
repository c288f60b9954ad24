//! Docker events and the alerts raised from them, in `<dir>/events.sqlite3`.
//!
//! An event is stored once: its identity (time, type, action, actor) is the
//! primary key, so a replay after a restart, or a reconnection that
//! delivers events again, adds nothing. The event, its alerts and the
//! cursor (the newest event time) are written in one transaction, so the
//! cursor never runs ahead of what is stored. Alerts carry an outbox flag
//! that the JSON-lines writer clears once they are in the file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use jaga_model::{Alert, Event};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::StoreError;

pub const EVENTS_FILE_NAME: &str = "events.sqlite3";

const SCHEMA: &str = "
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
    offset INTEGER NOT NULL,
    head_hash INTEGER NOT NULL DEFAULT 0,
    seen_until_ns INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_findings (
    identity TEXT PRIMARY KEY NOT NULL,
    first_seen_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Where reading a log resumes: the file (inode, and a hash of its first
/// line to tell it from a later file given the same inode) and the offset
/// in it, and the time up to which its lines were read. For logs read
/// through the Engine, `offset` is the time of the last line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCheckpoint {
    pub inode: u64,
    pub offset: u64,
    pub head_hash: u64,
    pub seen_until_ns: u64,
}

/// Which events to return; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub kind: Option<String>,
    pub action: Option<String>,
    /// Container id, id prefix or name.
    pub container: Option<String>,
    pub limit: usize,
}

/// Which alerts to return; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub min_level: Option<u8>,
    pub rule_id: Option<String>,
    /// Container id, id prefix or name.
    pub container: Option<String>,
    /// Case-insensitive substring of the description, data or container.
    pub text: Option<String>,
    pub limit: usize,
}

#[derive(Debug)]
pub struct EventStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl EventStore {
    /// Creates `dir` if needed and opens/creates `dir/events.sqlite3`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(EVENTS_FILE_NAME);
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        add_log_checkpoint_columns(&conn).map_err(open_err)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores `event` and `alerts` in one transaction and moves the cursor.
    /// `false`: the event was stored before; nothing was written.
    pub fn record(&self, event: &Event, alerts: &[Alert]) -> Result<bool, StoreError> {
        let event_json = serde_json::to_string(event).map_err(|source| StoreError::Encode {
            what: format!("event {}", event.docker.identity()),
            source,
        })?;
        let alert_rows = encode_alerts(alerts)?;
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> rusqlite::Result<bool> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let docker = &event.docker;
            let (container_id, container_name) = match &event.container {
                Some(c) => (Some(c.id.as_str()), Some(c.name.as_str())),
                None => (None, None),
            };
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO events \
                 (identity, time_nano, type, action, actor, container_id, container_name, json) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    docker.identity(),
                    docker.time_nano,
                    docker.kind,
                    docker.action,
                    docker.actor_id,
                    container_id,
                    container_name,
                    event_json
                ],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            for (alert, json) in &alert_rows {
                insert_alert(&tx, alert, json, event.docker.time_unix_ms())?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('cursor_nano', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
                [docker.time_nano],
            )?;
            tx.commit()?;
            Ok(true)
        };
        run(&mut conn)
            .map_err(|e| self.err(format!("recording event {}", event.docker.identity()), e))
    }

    /// Alerts raised from the lines of a log file up to its checkpoint, and
    /// the checkpoint, in one transaction: the checkpoint never runs ahead
    /// of what the lines raised. Alerts already stored (a replay) are
    /// skipped by id. Returns the alerts newly stored.
    pub fn record_log_batch(
        &self,
        path: &str,
        checkpoint: &LogCheckpoint,
        alerts: &[Alert],
    ) -> Result<usize, StoreError> {
        let rows = encode_alerts(alerts)?;
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> rusqlite::Result<usize> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut new = 0;
            let time_ms = chrono_free_now_ms();
            for (alert, json) in &rows {
                new += insert_alert(&tx, alert, json, time_ms)?;
            }
            tx.execute(
                "INSERT INTO log_checkpoints (path, inode, offset, head_hash, seen_until_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (path) DO UPDATE SET \
                 inode = excluded.inode, offset = excluded.offset, \
                 head_hash = excluded.head_hash, seen_until_ns = excluded.seen_until_ns",
                params![
                    path,
                    checkpoint.inode as i64,
                    checkpoint.offset as i64,
                    checkpoint.head_hash as i64,
                    checkpoint.seen_until_ns as i64
                ],
            )?;
            tx.commit()?;
            Ok(new)
        };
        run(&mut conn).map_err(|e| {
            self.err(
                format!("recording log alerts and checkpoint of '{path}'"),
                e,
            )
        })
    }

    /// The checkpoint of a log file.
    pub fn log_checkpoint(&self, path: &str) -> Result<Option<LogCheckpoint>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT inode, offset, head_hash, seen_until_ns FROM log_checkpoints WHERE path = ?1",
            [path],
            |r| {
                Ok(LogCheckpoint {
                    inode: r.get::<_, i64>(0)? as u64,
                    offset: r.get::<_, i64>(1)? as u64,
                    head_hash: r.get::<_, i64>(2)? as u64,
                    seen_until_ns: r.get::<_, i64>(3)? as u64,
                })
            },
        )
        .optional()
        .map_err(|e| self.err(format!("reading the checkpoint of '{path}'"), e))
    }

    /// Remembers an audit finding by identity; the first time, stores its
    /// alert too (one transaction). `true`: the finding is new.
    pub fn record_finding(&self, identity: &str, alert: &Alert) -> Result<bool, StoreError> {
        let json = encode_alert(alert)?;
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> rusqlite::Result<bool> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let time_ms = chrono_free_now_ms();
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO audit_findings (identity, first_seen_ms) VALUES (?1, ?2)",
                params![identity, time_ms],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            insert_alert(&tx, alert, &json, time_ms)?;
            tx.commit()?;
            Ok(true)
        };
        run(&mut conn).map_err(|e| self.err(format!("recording audit finding {identity}"), e))
    }

    /// Time of the newest stored event, nanoseconds; `None` before the first.
    pub fn cursor(&self) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT value FROM meta WHERE key = 'cursor_nano'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.err("reading the event cursor", e))
    }

    /// Stored events of `action` for one container with a time in
    /// `[from_nano, to_nano]`.
    pub fn count_container_actions(
        &self,
        container_id: &str,
        action: &str,
        from_nano: i64,
        to_nano: i64,
    ) -> Result<u32, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT COUNT(*) FROM events WHERE container_id = ?1 AND action = ?2 \
             AND time_nano >= ?3 AND time_nano <= ?4",
            params![container_id, action, from_nano, to_nano],
            |r| r.get(0),
        )
        .map_err(|e| {
            self.err(
                format!("counting '{action}' events of container {container_id}"),
                e,
            )
        })
    }

    /// Alerts not yet in the JSON-lines file, oldest first: (seq, json).
    pub fn alerts_for_file(&self, limit: usize) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<(i64, String)>> {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, json FROM alerts WHERE in_file = 0 ORDER BY seq LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        run().map_err(|e| self.err("reading alerts for the alerts file", e))
    }

    /// Marks alerts up to `seq` as written to the file.
    pub fn mark_in_file(&self, up_to_seq: i64) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.execute(
            "UPDATE alerts SET in_file = 1 WHERE in_file = 0 AND seq <= ?1",
            [up_to_seq],
        )
        .map(|_| ())
        .map_err(|e| self.err("marking alerts as written", e))
    }

    /// Events matching `filter`, newest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        let mut sql = String::from("SELECT json FROM events WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(from) = filter.from_ms {
            sql.push_str(" AND time_nano >= ?");
            args.push(from.saturating_mul(1_000_000).into());
        }
        if let Some(to) = filter.to_ms {
            sql.push_str(" AND time_nano <= ?");
            args.push(to.saturating_mul(1_000_000).saturating_add(999_999).into());
        }
        if let Some(kind) = &filter.kind {
            sql.push_str(" AND type = ?");
            args.push(kind.clone().into());
        }
        if let Some(action) = &filter.action {
            sql.push_str(" AND action = ?");
            args.push(action.clone().into());
        }
        if let Some(container) = &filter.container {
            sql.push_str(" AND (container_name = ? OR container_id LIKE ? ESCAPE '\\')");
            args.push(container.clone().into());
            args.push(format!("{}%", like_escape(container)).into());
        }
        sql.push_str(" ORDER BY time_nano DESC LIMIT ?");
        args.push((filter.limit.max(1) as i64).into());
        let rows = self.json_rows(&sql, args, "querying events")?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json).map_err(|source| StoreError::Encode {
                    what: "a stored event".to_owned(),
                    source,
                })
            })
            .collect()
    }

    /// Alerts matching `filter`, newest first.
    pub fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let mut sql = String::from("SELECT json FROM alerts WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(from) = filter.from_ms {
            sql.push_str(" AND time_ms >= ?");
            args.push(from.into());
        }
        if let Some(to) = filter.to_ms {
            sql.push_str(" AND time_ms <= ?");
            args.push(to.into());
        }
        if let Some(level) = filter.min_level {
            sql.push_str(" AND level >= ?");
            args.push(i64::from(level).into());
        }
        if let Some(rule) = &filter.rule_id {
            sql.push_str(" AND rule_id = ?");
            args.push(rule.clone().into());
        }
        if let Some(container) = &filter.container {
            sql.push_str(" AND (container_name = ? OR container_id LIKE ? ESCAPE '\\')");
            args.push(container.clone().into());
            args.push(format!("{}%", like_escape(container)).into());
        }
        if let Some(text) = &filter.text {
            sql.push_str(" AND instr(text, ?) > 0");
            args.push(text.to_lowercase().into());
        }
        sql.push_str(" ORDER BY time_ms DESC, seq DESC LIMIT ?");
        args.push((filter.limit.max(1) as i64).into());
        let rows = self.json_rows(&sql, args, "querying alerts")?;
        rows.iter()
            .map(|json| {
                serde_json::from_str(json).map_err(|source| StoreError::Encode {
                    what: "a stored alert".to_owned(),
                    source,
                })
            })
            .collect()
    }

    /// Deletes events and alerts older than `before_ms` (alerts only once
    /// they are in the file). Returns (events, alerts) deleted.
    pub fn trim(&self, before_ms: i64) -> Result<(usize, usize), StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<(usize, usize)> {
            let events = conn.execute(
                "DELETE FROM events WHERE time_nano < ?1",
                [before_ms.saturating_mul(1_000_000)],
            )?;
            let alerts = conn.execute(
                "DELETE FROM alerts WHERE time_ms < ?1 AND in_file = 1",
                [before_ms],
            )?;
            Ok((events, alerts))
        };
        run().map_err(|e| self.err("trimming events and alerts", e))
    }

    /// Flushes the WAL into the database file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err("checkpointing the wal", e))
    }

    fn json_rows(
        &self,
        sql: &str,
        args: Vec<rusqlite::types::Value>,
        action: &str,
    ) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<String>> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| r.get(0))?;
            rows.collect()
        };
        run().map_err(|e| self.err(action, e))
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, action: impl Into<String>, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            action: action.into(),
            path: self.path.clone(),
            source,
        }
    }
}

fn encode_alert(alert: &Alert) -> Result<String, StoreError> {
    serde_json::to_string(alert).map_err(|source| StoreError::Encode {
        what: format!("alert {}", alert.id),
        source,
    })
}

/// Each alert with its JSON, encoded before a transaction is opened.
fn encode_alerts(alerts: &[Alert]) -> Result<Vec<(&Alert, String)>, StoreError> {
    alerts.iter().map(|a| Ok((a, encode_alert(a)?))).collect()
}

/// One alert row; the searchable text is its description, container name
/// and data values, lowercased.
fn insert_alert(
    tx: &rusqlite::Transaction<'_>,
    alert: &Alert,
    json: &str,
    time_ms: i64,
) -> rusqlite::Result<usize> {
    let (container_id, container_name) = match &alert.container {
        Some(c) => (Some(c.id.as_str()), Some(c.name.as_str())),
        None => (None, None),
    };
    let text = format!(
        "{} {} {}",
        alert.rule.description,
        container_name.unwrap_or_default(),
        alert
            .data
            .values()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    )
    .to_lowercase();
    tx.execute(
        "INSERT OR IGNORE INTO alerts \
         (id, time_ms, rule_id, level, container_id, container_name, text, json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            alert.id,
            time_ms,
            alert.rule.id,
            alert.rule.level,
            container_id,
            container_name,
            text,
            json
        ],
    )
}

/// Databases made before `head_hash` and `seen_until_ns` existed get them.
fn add_log_checkpoint_columns(conn: &Connection) -> rusqlite::Result<()> {
    let mut columns = Vec::new();
    let mut statement = conn.prepare("SELECT name FROM pragma_table_info('log_checkpoints')")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        columns.push(row.get::<_, String>(0)?);
    }
    for column in ["head_hash", "seen_until_ns"] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE log_checkpoints ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
            ))?;
        }
    }
    Ok(())
}

fn chrono_free_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{AlertAgent, AlertRule, DockerEvent, EventContainer};
    use std::collections::BTreeMap;

    fn event(time_nano: i64, action: &str, name: &str) -> Event {
        Event {
            docker: DockerEvent {
                time_nano,
                kind: "container".to_owned(),
                action: action.to_owned(),
                action_detail: None,
                actor_id: format!("id-{name}"),
                attributes: BTreeMap::new(),
                scope: "local".to_owned(),
            },
            container: Some(EventContainer {
                id: format!("id-{name}"),
                name: name.to_owned(),
                ..Default::default()
            }),
            exec_command: None,
        }
    }

    fn alert(event: &Event, rule: &str, level: u8, description: &str) -> Alert {
        Alert {
            id: format!("{}-{rule}", event.docker.time_nano),
            timestamp: "2023-11-14T22:13:20.000Z".to_owned(),
            rule: AlertRule {
                id: rule.to_owned(),
                level,
                description: description.to_owned(),
                groups: vec!["docker".to_owned()],
                mitre: vec![],
            },
            agent: AlertAgent::default(),
            container: event.container.clone(),
            data: BTreeMap::from([("action".to_owned(), event.docker.action.clone())]),
            location: "docker-events".to_owned(),
            event: Some(event.docker.clone()),
        }
    }

    #[test]
    fn an_event_is_kept_once_with_its_alerts_and_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(store.cursor().unwrap(), None);
        let start = event(1_000_000_000_000, "start", "web");
        let a = alert(&start, "91001", 3, "Container web started");
        assert!(store.record(&start, std::slice::from_ref(&a)).unwrap());
        assert!(!store.record(&start, std::slice::from_ref(&a)).unwrap());
        assert_eq!(store.cursor().unwrap(), Some(1_000_000_000_000));
        // An older event replayed late does not move the cursor back.
        let older = event(999_000_000_000, "create", "web");
        assert!(store.record(&older, &[]).unwrap());
        assert_eq!(store.cursor().unwrap(), Some(1_000_000_000_000));

        // Reopened: still there.
        drop(store);
        let store = EventStore::open(dir.path()).unwrap();
        let all = store
            .alerts(&AlertFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all, vec![a]);
        let events = store
            .events(&EventFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].docker.action, "start");
    }

    #[test]
    fn alert_filters_narrow() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let e1 = event(1_000_000_000_000, "start", "web");
        let e2 = event(2_000_000_000_000, "exec_start", "db_1");
        let e3 = event(3_000_000_000_000, "die", "web");
        store
            .record(&e1, &[alert(&e1, "91001", 3, "Container web started")])
            .unwrap();
        store
            .record(
                &e2,
                &[alert(
                    &e2,
                    "91011",
                    6,
                    "Command run in container db_1: cat /etc/shadow",
                )],
            )
            .unwrap();
        store
            .record(
                &e3,
                &[alert(&e3, "91006", 7, "Container web exited with code 1")],
            )
            .unwrap();
        let query = |filter: AlertFilter| -> Vec<String> {
            store
                .alerts(&AlertFilter {
                    limit: 100,
                    ..filter
                })
                .unwrap()
                .into_iter()
                .map(|a| a.rule.id)
                .collect()
        };
        assert_eq!(
            query(AlertFilter::default()),
            vec!["91006", "91011", "91001"]
        );
        assert_eq!(
            query(AlertFilter {
                min_level: Some(6),
                ..Default::default()
            }),
            vec!["91006", "91011"]
        );
        assert_eq!(
            query(AlertFilter {
                rule_id: Some("91001".into()),
                ..Default::default()
            }),
            vec!["91001"]
        );
        assert_eq!(
            query(AlertFilter {
                container: Some("web".into()),
                ..Default::default()
            }),
            vec!["91006", "91001"]
        );
        assert_eq!(
            query(AlertFilter {
                container: Some("id-db".into()),
                ..Default::default()
            }),
            vec!["91011"]
        );
        // `_` is literal in a prefix, not a wildcard.
        assert_eq!(
            query(AlertFilter {
                container: Some("id_".into()),
                ..Default::default()
            }),
            Vec::<String>::new()
        );
        assert_eq!(
            query(AlertFilter {
                text: Some("SHADOW".into()),
                ..Default::default()
            }),
            vec!["91011"]
        );
        assert_eq!(
            query(AlertFilter {
                from_ms: Some(1_500_000),
                to_ms: Some(2_500_000),
                ..Default::default()
            }),
            vec!["91011"]
        );
        assert_eq!(
            store
                .count_container_actions("id-web", "die", 0, i64::MAX)
                .unwrap(),
            1
        );
    }

    #[test]
    fn file_outbox_hands_out_each_alert_until_marked() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let e1 = event(1_000_000_000_000, "start", "web");
        let e2 = event(2_000_000_000_000, "stop", "web");
        store.record(&e1, &[alert(&e1, "91001", 3, "a")]).unwrap();
        store.record(&e2, &[alert(&e2, "91002", 3, "b")]).unwrap();
        let pending = store.alerts_for_file(10).unwrap();
        assert_eq!(pending.len(), 2);
        store.mark_in_file(pending[0].0).unwrap();
        let pending = store.alerts_for_file(10).unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending[0].1.contains("\"91002\""));
        store.mark_in_file(pending[0].0).unwrap();
        assert!(store.alerts_for_file(10).unwrap().is_empty());
        assert_eq!(store.trim(1_500_000).unwrap(), (1, 1));
    }

    #[test]
    fn log_checkpoints_of_an_older_database_gain_their_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(EVENTS_FILE_NAME)).unwrap();
            conn.execute_batch(
                "CREATE TABLE log_checkpoints (path TEXT PRIMARY KEY NOT NULL, \
                 inode INTEGER NOT NULL, offset INTEGER NOT NULL) WITHOUT ROWID; \
                 INSERT INTO log_checkpoints VALUES ('/a-json.log', 7, 42);",
            )
            .unwrap();
        }
        let store = EventStore::open(dir.path()).unwrap();
        let old = store.log_checkpoint("/a-json.log").unwrap().unwrap();
        assert_eq!((old.inode, old.offset, old.head_hash), (7, 42, 0));
        let new = LogCheckpoint {
            inode: 8,
            offset: 9,
            head_hash: u64::MAX - 1,
            seen_until_ns: 1_700_000_000_000_000_000,
        };
        store.record_log_batch("/a-json.log", &new, &[]).unwrap();
        assert_eq!(store.log_checkpoint("/a-json.log").unwrap(), Some(new));
    }
}
