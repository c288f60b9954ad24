//! Docker events and the alerts raised from them, in `<dir>/events.sqlite3`.
//!
//! An event is stored once: its identity (time, type, action, actor) is the
//! primary key, so a replay after a restart, or a reconnection that
//! delivers events again, adds nothing. The event, its alerts and the
//! cursor (the newest event time) are written in one transaction, so the
//! cursor never runs ahead of what is stored; every source commits its
//! alerts with what it consumed the same way ([`EventStore::commit`]).
//! Outputs read the alerts through a cursor each (the `delivery` module).
//!
//! Every event and alert gets a sequence number when stored, never reused:
//! a reader pages through everything with `after` (see [`EventFilter`]).
//! Times stored are the times shown: an event's own time, an alert's
//! `timestamp`. The layout and its migrations are in `events_schema`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use jaga_model::{Alert, Event, MetricRuleState, MetricStateChange, MetricStatus};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::{events_schema, StoreError};

mod delivery;

pub use delivery::{DeadLetter, DeadLetterKind, OutputCursor, QueuedAlert};

pub const EVENTS_FILE_NAME: &str = "events.sqlite3";

/// A stored record with its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequenced<T> {
    pub seq: i64,
    pub record: T,
}

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
    /// The file's birth time (nanoseconds since the epoch); 0 when the
    /// filesystem keeps none.
    pub born_ns: u64,
}

/// What a source read to raise the alerts it commits, written in the
/// same transaction as them. A new source kind that keeps a cursor adds a
/// variant here and its table in `events_schema`.
#[derive(Debug, Clone, Copy)]
pub enum Consumed<'a> {
    /// A Docker event: stored once by identity; moves the listener's cursor.
    Event(&'a Event),
    /// Lines of a log up to `checkpoint` (file path, or the Engine's
    /// location for a container on another log driver).
    LogBatch {
        location: &'a str,
        checkpoint: LogCheckpoint,
    },
    /// An audit finding, alerted once by identity.
    Finding { identity: &'a str },
    /// Metric rule states that changed (pending, firing, resolved): the
    /// firing state survives a restart with the alerts it raised.
    MetricTransitions(&'a [MetricStateChange]),
    /// Nothing to remember: the alerts alone (tests, `jaga outputs test`).
    Nothing,
}

impl Consumed<'_> {
    fn describe(&self) -> String {
        match self {
            Consumed::Event(event) => format!("event {}", event.docker.identity()),
            Consumed::LogBatch { location, .. } => {
                format!("log alerts and checkpoint of '{location}'")
            }
            Consumed::Finding { identity } => format!("audit finding {identity}"),
            Consumed::MetricTransitions(changes) => {
                format!("{} metric rule state changes", changes.len())
            }
            Consumed::Nothing => "alerts".to_owned(),
        }
    }
}

/// What a commit wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    /// `false`: the event or finding was stored before; nothing was written.
    pub consumed_new: bool,
    /// Alerts stored now (not before, by id).
    pub new_alerts: usize,
    /// The sequence number of the last alert stored now.
    pub last_seq: Option<i64>,
}

/// Which events to return; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events with a greater sequence number, oldest first; without
    /// it, the newest first.
    pub after_seq: Option<i64>,
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
    /// Only alerts with a greater sequence number, oldest first; without
    /// it, the newest first.
    pub after_seq: Option<i64>,
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
    /// Moves on every commit of a Docker event and every trim that removed
    /// events: readers that keep what they read (the metric rules' exits)
    /// ask the database again only when it moved.
    events_generation: AtomicU64,
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
        let mut conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        events_schema::migrate(&mut conn, &path)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
            events_generation: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Changes whenever the stored Docker events may have changed (read it
    /// before reading the events: a commit after it changes it again).
    pub fn events_generation(&self) -> u64 {
        self.events_generation.load(Ordering::Acquire)
    }

    /// Stores `alerts` and what their source `consumed` to raise them in
    /// one transaction: the source's cursor (event cursor, log checkpoint,
    /// finding identity) never runs ahead of the alerts, and the alert rows
    /// are at once the queue of every output (see the `delivery` module).
    /// Alerts already stored (a replay) are skipped by id; an event or a
    /// finding stored before writes nothing at all.
    pub fn commit(&self, alerts: &[Alert], consumed: &Consumed) -> Result<Committed, StoreError> {
        let alert_rows = encode_alerts(alerts)?;
        let event_json = match consumed {
            Consumed::Event(event) => {
                Some(
                    serde_json::to_string(event).map_err(|source| StoreError::Encode {
                        what: format!("event {}", event.docker.identity()),
                        source,
                    })?,
                )
            }
            _ => None,
        };
        let stored_ms = chrono_free_now_ms();
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> rusqlite::Result<Committed> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if !consume(&tx, consumed, event_json.as_deref(), stored_ms)? {
                return Ok(Committed::default());
            }
            let mut committed = Committed {
                consumed_new: true,
                ..Committed::default()
            };
            for (alert, json) in &alert_rows {
                if let Some(seq) = insert_alert(&tx, alert, json, stored_ms)? {
                    committed.new_alerts += 1;
                    committed.last_seq = Some(seq);
                }
            }
            tx.commit()?;
            Ok(committed)
        };
        let committed = run(&mut conn)
            .map_err(|e| self.err(format!("recording {}", consumed.describe()), e))?;
        if committed.consumed_new && matches!(consumed, Consumed::Event(_)) {
            self.events_generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(committed)
    }

    /// The checkpoints of logs whose lines raised no alert, in one
    /// transaction: a hundred idle logs refreshing their time each second
    /// cost one commit, not a hundred.
    pub fn record_log_checkpoints(
        &self,
        checkpoints: &[(&str, LogCheckpoint)],
    ) -> Result<(), StoreError> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let stored_ms = chrono_free_now_ms();
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for &(location, checkpoint) in checkpoints {
                let consumed = Consumed::LogBatch {
                    location,
                    checkpoint,
                };
                consume(&tx, &consumed, None, stored_ms)?;
            }
            tx.commit()
        };
        run(&mut conn).map_err(|e| {
            self.err(
                format!("recording {} log checkpoints", checkpoints.len()),
                e,
            )
        })
    }

    /// Stores `event` and `alerts` in one transaction and moves the cursor.
    /// `false`: the event was stored before; nothing was written.
    pub fn record(&self, event: &Event, alerts: &[Alert]) -> Result<bool, StoreError> {
        Ok(self.commit(alerts, &Consumed::Event(event))?.consumed_new)
    }

    /// Alerts raised from the lines of a log file up to its checkpoint, and
    /// the checkpoint, in one transaction: the checkpoint never runs ahead
    /// of what the lines raised. Returns the alerts newly stored.
    pub fn record_log_batch(
        &self,
        path: &str,
        checkpoint: &LogCheckpoint,
        alerts: &[Alert],
    ) -> Result<usize, StoreError> {
        let consumed = Consumed::LogBatch {
            location: path,
            checkpoint: *checkpoint,
        };
        Ok(self.commit(alerts, &consumed)?.new_alerts)
    }

    /// The checkpoint of a log file.
    pub fn log_checkpoint(&self, path: &str) -> Result<Option<LogCheckpoint>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT inode, offset, head_hash, seen_until_ns, born_ns FROM log_checkpoints \
             WHERE path = ?1",
            [path],
            |r| {
                Ok(LogCheckpoint {
                    inode: r.get::<_, i64>(0)? as u64,
                    offset: r.get::<_, i64>(1)? as u64,
                    head_hash: r.get::<_, i64>(2)? as u64,
                    seen_until_ns: r.get::<_, i64>(3)? as u64,
                    born_ns: r.get::<_, i64>(4)? as u64,
                })
            },
        )
        .optional()
        .map_err(|e| self.err(format!("reading the checkpoint of '{path}'"), e))
    }

    /// Remembers an audit finding by identity; the first time, stores its
    /// alert too (one transaction). `true`: the finding is new.
    pub fn record_finding(&self, identity: &str, alert: &Alert) -> Result<bool, StoreError> {
        let committed =
            self.commit(std::slice::from_ref(alert), &Consumed::Finding { identity })?;
        Ok(committed.consumed_new)
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

    /// The container and time of each `action` event from `from_nano` on,
    /// oldest first.
    pub fn action_times(
        &self,
        action: &str,
        from_nano: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<(String, i64)>> {
            let mut stmt = conn.prepare_cached(
                "SELECT container_id, time_nano FROM events WHERE action = ?1 \
                 AND time_nano >= ?2 AND container_id IS NOT NULL ORDER BY time_nano",
            )?;
            let rows =
                stmt.query_map(params![action, from_nano], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        };
        run().map_err(|e| self.err(format!("reading the times of '{action}' events"), e))
    }

    /// The state changes of metric rules and the alerts they raised, in one
    /// transaction: the state never runs ahead of the alerts (a `firing`
    /// stored without its alert would never be raised again), nor behind
    /// them. Alerts already stored (a replay) are skipped by id. Returns the
    /// alerts newly stored.
    pub fn record_metric_transitions(
        &self,
        changes: &[MetricStateChange],
        alerts: &[Alert],
    ) -> Result<usize, StoreError> {
        Ok(self
            .commit(alerts, &Consumed::MetricTransitions(changes))?
            .new_alerts)
    }

    /// Every stored metric rule state, by key. A row that cannot be read
    /// back (a status or alert from another version) is an error naming it.
    pub fn metric_rule_states(&self) -> Result<Vec<MetricRuleState>, StoreError> {
        type Row = (
            String,
            String,
            String,
            String,
            i64,
            Option<i64>,
            Option<f64>,
            Option<String>,
        );
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<Row>> {
            let mut stmt = conn.prepare(
                "SELECT key, rule_id, subject, status, pending_since_ms, firing_since_ms, \
                 last_value, alert_json FROM metric_rule_state ORDER BY key",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })?;
            rows.collect()
        };
        let rows = run().map_err(|e| self.err("reading metric rule states", e))?;
        rows.into_iter()
            .map(
                |(key, rule_id, subject, status, pending, firing, value, alert)| {
                    let status =
                        MetricStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
                            path: self.path.clone(),
                            what: format!(
                                "metric rule state '{key}' has unknown status '{status}'"
                            ),
                        })?;
                    let firing_alert = alert
                        .map(|json| serde_json::from_str::<Alert>(&json))
                        .transpose()
                        .map_err(|source| StoreError::Encode {
                            what: format!("the alert of metric rule state '{key}'"),
                            source,
                        })?;
                    Ok(MetricRuleState {
                        key,
                        rule_id,
                        subject,
                        status,
                        pending_since_ms: pending,
                        firing_since_ms: firing,
                        last_value: value,
                        firing_alert,
                    })
                },
            )
            .collect()
    }
    /// Events matching `filter`: newest first, or after a sequence number
    /// oldest first.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<Sequenced<Event>>, StoreError> {
        let mut sql = String::from("SELECT seq, json FROM events WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(after) = filter.after_seq {
            sql.push_str(" AND seq > ?");
            args.push(after.into());
        }
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
        sql.push_str(if filter.after_seq.is_some() {
            " ORDER BY seq LIMIT ?"
        } else {
            " ORDER BY time_nano DESC, seq DESC LIMIT ?"
        });
        args.push((filter.limit.max(1) as i64).into());
        let rows = self.json_rows(&sql, args, "querying events")?;
        decode_rows(rows, "a stored event")
    }

    /// Alerts matching `filter`: newest first, or after a sequence number
    /// oldest first.
    pub fn alerts(&self, filter: &AlertFilter) -> Result<Vec<Sequenced<Alert>>, StoreError> {
        let mut sql = String::from("SELECT seq, json FROM alerts WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(after) = filter.after_seq {
            sql.push_str(" AND seq > ?");
            args.push(after.into());
        }
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
        sql.push_str(if filter.after_seq.is_some() {
            " ORDER BY seq LIMIT ?"
        } else {
            " ORDER BY time_ms DESC, seq DESC LIMIT ?"
        });
        args.push((filter.limit.max(1) as i64).into());
        let rows = self.json_rows(&sql, args, "querying alerts")?;
        decode_rows(rows, "a stored alert")
    }

    /// Deletes events older than `before_ms`, and alerts older than it
    /// that every output in `outputs` has passed (its cursor is at or past
    /// them); cursors of outputs no longer configured hold nothing back.
    /// Returns (events, alerts) deleted.
    pub fn trim(&self, before_ms: i64, outputs: &[String]) -> Result<(usize, usize), StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<(usize, usize)> {
            let events = conn.execute(
                "DELETE FROM events WHERE time_nano < ?1",
                [before_ms.saturating_mul(1_000_000)],
            )?;
            let names = serde_json::to_string(outputs).unwrap_or_else(|_| "[]".to_owned());
            let passed: i64 = conn.query_row(
                "SELECT COALESCE(MIN(seq), 9223372036854775807) FROM output_cursors \
                 WHERE name IN (SELECT value FROM json_each(?1))",
                [names],
                |r| r.get(0),
            )?;
            let alerts = conn.execute(
                "DELETE FROM alerts WHERE time_ms < ?1 AND seq <= ?2",
                [before_ms, passed],
            )?;
            conn.execute(
                "DELETE FROM output_dead_letters WHERE at_ms < ?1",
                [before_ms],
            )?;
            Ok((events, alerts))
        };
        let trimmed = run().map_err(|e| self.err("trimming events and alerts", e))?;
        if trimmed.0 > 0 {
            self.events_generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(trimmed)
    }

    /// Flushes the WAL into the database file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err("checkpointing the wal", e))
    }

    /// (seq, json) rows of a query.
    fn json_rows(
        &self,
        sql: &str,
        args: Vec<rusqlite::types::Value>,
        action: &str,
    ) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<(i64, String)>> {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
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

fn decode_rows<T: serde::de::DeserializeOwned>(
    rows: Vec<(i64, String)>,
    what: &str,
) -> Result<Vec<Sequenced<T>>, StoreError> {
    rows.into_iter()
        .map(|(seq, json)| {
            serde_json::from_str(&json)
                .map(|record| Sequenced { seq, record })
                .map_err(|source| StoreError::Encode {
                    what: what.to_owned(),
                    source,
                })
        })
        .collect()
}

/// The time an alert shows, which is the time it is stored and filtered
/// by; the time of storing when it shows none that can be read.
fn shown_time_ms(alert: &Alert) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&alert.timestamp)
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| chrono_free_now_ms())
}

/// One alert row; the searchable text is its description, container name
/// and data values, lowercased. The sequence number it got, or `None` when
/// an alert with its id is stored already.
fn insert_alert(
    tx: &rusqlite::Transaction<'_>,
    alert: &Alert,
    json: &str,
    stored_ms: i64,
) -> rusqlite::Result<Option<i64>> {
    let time_ms = shown_time_ms(alert);
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
    let (episode_key, episode_firing) = match &alert.episode {
        Some(episode) => (
            Some(episode.key.as_str()),
            episode.status == jaga_model::EpisodeStatus::Firing,
        ),
        None => (None, false),
    };
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO alerts \
         (id, time_ms, rule_id, level, container_id, container_name, text, json, \
          stored_ms, episode_key, episode_firing) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            alert.id,
            time_ms,
            alert.rule.id,
            alert.rule.level,
            container_id,
            container_name,
            text,
            json,
            stored_ms,
            episode_key,
            episode_firing
        ],
    )?;
    Ok((inserted > 0).then(|| tx.last_insert_rowid()))
}

/// Writes what a source consumed; `false` when it was consumed before
/// (an event or finding already stored), and nothing is to be written.
fn consume(
    tx: &rusqlite::Transaction<'_>,
    consumed: &Consumed,
    event_json: Option<&str>,
    now_ms: i64,
) -> rusqlite::Result<bool> {
    match consumed {
        Consumed::Event(event) => {
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
                    event_json.unwrap_or("{}")
                ],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('cursor_nano', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
                [docker.time_nano],
            )?;
            Ok(true)
        }
        Consumed::LogBatch {
            location,
            checkpoint,
        } => {
            // Cached: a poll stores the checkpoints of every log at once.
            tx.prepare_cached(
                "INSERT INTO log_checkpoints (path, inode, offset, head_hash, seen_until_ns, born_ns) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (path) DO UPDATE SET \
                 inode = excluded.inode, offset = excluded.offset, \
                 head_hash = excluded.head_hash, seen_until_ns = excluded.seen_until_ns, \
                 born_ns = excluded.born_ns",
            )?
            .execute(params![
                location,
                checkpoint.inode as i64,
                checkpoint.offset as i64,
                checkpoint.head_hash as i64,
                checkpoint.seen_until_ns as i64,
                checkpoint.born_ns as i64
            ])?;
            Ok(true)
        }
        Consumed::Finding { identity } => {
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO audit_findings (identity, first_seen_ms) VALUES (?1, ?2)",
                params![identity, now_ms],
            )?;
            Ok(inserted > 0)
        }
        Consumed::MetricTransitions(changes) => {
            write_metric_states(tx, changes)?;
            Ok(true)
        }
        Consumed::Nothing => Ok(true),
    }
}

/// Writes metric rule states that changed; a cleared one is deleted.
fn write_metric_states(
    tx: &rusqlite::Transaction<'_>,
    changes: &[MetricStateChange],
) -> rusqlite::Result<()> {
    for change in changes {
        match change {
            MetricStateChange::Set(state) => {
                let alert_json = state
                    .firing_alert
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                tx.execute(
                    "INSERT INTO metric_rule_state (key, rule_id, subject, status, \
                     pending_since_ms, firing_since_ms, last_value, alert_json) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (key) DO UPDATE SET \
                     rule_id = excluded.rule_id, subject = excluded.subject, \
                     status = excluded.status, pending_since_ms = excluded.pending_since_ms, \
                     firing_since_ms = excluded.firing_since_ms, \
                     last_value = excluded.last_value, alert_json = excluded.alert_json",
                    params![
                        change.key(),
                        state.rule_id,
                        state.subject,
                        state.status.as_str(),
                        state.pending_since_ms,
                        state.firing_since_ms,
                        state.last_value,
                        alert_json
                    ],
                )?;
            }
            MetricStateChange::Clear { key } => {
                tx.execute("DELETE FROM metric_rule_state WHERE key = ?1", [key])?;
            }
        }
    }
    Ok(())
}

/// Databases made before `head_hash` and `seen_until_ns` existed get them.
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
            // As alerts show their event's time.
            timestamp: chrono::DateTime::from_timestamp_millis(event.docker.time_unix_ms())
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string(),
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
            episode: None,
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
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].record, a);
        let events = store
            .events(&EventFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].record.docker.action, "start");
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
                .map(|a| a.record.rule.id)
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
    fn an_output_cursor_starts_at_the_latest_alert_and_only_moves_forward() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let e1 = event(1_000_000_000_000, "start", "web");
        store.record(&e1, &[alert(&e1, "91001", 3, "a")]).unwrap();
        let cursor = store.open_output_cursor("hook", "webhook").unwrap();
        assert_eq!((cursor.seq, cursor.start_seq), (1, 1));
        let e2 = event(2_000_000_000_000, "stop", "web");
        store.record(&e2, &[alert(&e2, "91002", 3, "b")]).unwrap();
        let queued = store.alerts_after(cursor.seq, 10).unwrap();
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0].alert.rule.id, "91002");
        assert!(queued[0].stored_ms > 0);
        store.move_output_cursor("hook", 2, None).unwrap();
        store.move_output_cursor("hook", 1, None).unwrap();
        assert_eq!(store.open_output_cursor("hook", "webhook").unwrap().seq, 2);
        assert!(store.alerts_after(2, 10).unwrap().is_empty());
    }

    #[test]
    fn trim_keeps_old_alerts_until_every_configured_output_passed_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        store.open_output_cursor("fast", "file").unwrap();
        store.open_output_cursor("slow", "webhook").unwrap();
        store.open_output_cursor("removed", "webhook").unwrap();
        log_alerts(&store, "/logs/a", &[1_000, 2_000, 3_000]);
        store.move_output_cursor("fast", 3, None).unwrap();
        store.move_output_cursor("slow", 1, None).unwrap();
        let configured = ["fast".to_owned(), "slow".to_owned()];
        // All three are old; only the one the slow output passed goes.
        assert_eq!(store.trim(i64::MAX, &configured).unwrap().1, 1);
        let left: Vec<i64> = store
            .alerts_after(0, 10)
            .unwrap()
            .iter()
            .map(|a| a.seq)
            .collect();
        assert_eq!(left, [2, 3]);
        // The cursor of an output no longer configured holds nothing back.
        assert_eq!(store.trim(i64::MAX, &configured[..1]).unwrap().1, 2);
    }

    #[test]
    fn a_refused_message_is_kept_as_a_dead_letter_with_the_answer() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        store.open_output_cursor("hook", "webhook").unwrap();
        log_alerts(&store, "/logs/a", &[1_000, 2_000, 3_000]);
        let letter = DeadLetter {
            output: "hook".to_owned(),
            kind: DeadLetterKind::Refused,
            first_seq: 1,
            last_seq: 3,
            seqs: vec![1, 3],
            alert_ids: vec!["log.1000".to_owned(), "log.3000".to_owned()],
            count: 2,
            at_ms: 5,
            error: "permanent delivery failure: HTTP 400".to_owned(),
            answer: "HTTP 400 Bad Request: {\"error\":\"no\"}".to_owned(),
        };
        store.move_output_cursor("hook", 3, Some(&letter)).unwrap();
        let letters = store.dead_letters(Some("hook"), 0, 10, 10).unwrap();
        assert_eq!(letters, vec![letter]);
        assert!(letters[0].holds(3) && !letters[0].holds(2));
        assert!(store
            .dead_letters(Some("other"), 0, 10, 10)
            .unwrap()
            .is_empty());
        assert_eq!(store.seq_keeping_newest(0, 1).unwrap(), Some(2));
        assert_eq!(store.seq_keeping_newest(0, 3).unwrap(), None);
        assert_eq!(store.alerts_count_after(1).unwrap(), 2);
    }

    #[test]
    fn only_episodes_whose_latest_alert_fires_are_firing() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let e = event(1_000_000_000_000, "log", "web");
        let episode = |id: &str, key: &str, status| {
            let mut a = alert(&e, "cpu", 7, "CPU high");
            a.id = id.to_owned();
            a.episode = Some(jaga_model::AlertEpisode {
                key: key.to_owned(),
                status,
                started_at: "2024-01-01T00:00:00.000Z".to_owned(),
                ended_at: None,
            });
            a
        };
        use jaga_model::EpisodeStatus::{Firing, Resolved};
        let alerts = [
            episode("1", "cpu/web", Firing),
            episode("2", "cpu/db", Firing),
            episode("3", "cpu/web", Resolved),
            episode("4", "mem/web", Firing),
        ];
        store.commit(&alerts, &Consumed::Nothing).unwrap();
        let firing: Vec<String> = store
            .firing_episodes()
            .unwrap()
            .into_iter()
            .map(|a| a.alert.id)
            .collect();
        assert_eq!(firing, ["2", "4"]);
    }

    /// `record_log_batch` with one alert per line at `times_ms`.
    fn log_alerts(store: &EventStore, path: &str, times_ms: &[i64]) {
        let alerts: Vec<Alert> = times_ms
            .iter()
            .map(|t| {
                let e = event(t * 1_000_000, "log", "web");
                let mut a = alert(&e, "31100", 6, "SQL injection attempt");
                a.id = format!("log.{t}");
                a.timestamp = chrono::DateTime::from_timestamp_millis(*t)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string();
                a.event = None;
                a
            })
            .collect();
        let checkpoint = LogCheckpoint {
            inode: 1,
            offset: 100,
            ..LogCheckpoint::default()
        };
        store.record_log_batch(path, &checkpoint, &alerts).unwrap();
    }

    #[test]
    fn paging_after_seq_reads_every_alert_and_event_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        // Alerts out of time order across sources, as logs and events interleave.
        let times: Vec<i64> = (0..2_345)
            .map(|i| 1_700_000_000_000 + (i * 7919) % 5000)
            .collect();
        for chunk in times.chunks(100) {
            log_alerts(&store, "/logs/a", chunk);
        }
        for i in 0..250 {
            let e = event(1_700_000_000_000_000_000 + i * 1_000, "start", "web");
            store.record(&e, &[]).unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut after = 0;
        let mut pages = 0;
        loop {
            let page = store
                .alerts(&AlertFilter {
                    after_seq: Some(after),
                    limit: 1000,
                    ..Default::default()
                })
                .unwrap();
            let Some(last) = page.last() else { break };
            assert!(page.windows(2).all(|w| w[0].seq < w[1].seq));
            after = last.seq;
            pages += 1;
            for a in page {
                assert!(seen.insert(a.seq), "seq {} twice", a.seq);
            }
        }
        assert_eq!(pages, 3);
        assert_eq!(seen.len(), times.len());
        let mut events = 0;
        let mut after = 0;
        loop {
            let page = store
                .events(&EventFilter {
                    after_seq: Some(after),
                    limit: 100,
                    ..Default::default()
                })
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq;
            events += page.len();
        }
        assert_eq!(events, 250);
    }

    #[test]
    fn log_alerts_are_stored_and_filtered_at_the_time_they_show() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        // Lines from long ago, read now.
        log_alerts(&store, "/logs/a", &[1_000_000, 2_000_000, 3_000_000]);
        let shown = |to_ms| {
            store
                .alerts(&AlertFilter {
                    to_ms: Some(to_ms),
                    limit: 100,
                    ..Default::default()
                })
                .unwrap()
                .into_iter()
                .map(|a| a.record.timestamp)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shown(2_000_000),
            vec!["1970-01-01T00:33:20.000Z", "1970-01-01T00:16:40.000Z"]
        );
    }

    #[test]
    fn sequence_numbers_are_not_reused_after_a_trim() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        log_alerts(&store, "/logs/a", &[1_000, 2_000]);
        store.trim(i64::MAX, &[]).unwrap();
        log_alerts(&store, "/logs/a", &[3_000]);
        let all = store
            .alerts(&AlertFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].seq, 3);
        assert_eq!(store.latest_alert_seq().unwrap(), 3);
    }

    /// The layout the first releases wrote, frozen here as they made it.
    const RELEASED_SCHEMA: &str = "
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

    #[test]
    fn a_database_from_before_schema_versions_opens_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As the released code wrote it: events by identity, a log
            // alert stored at the time it was read (9_999_999_999_999)
            // while it shows 2023-11-14T22:13:20.000Z.
            let conn = Connection::open(dir.path().join(EVENTS_FILE_NAME)).unwrap();
            conn.execute_batch(RELEASED_SCHEMA).unwrap();
            for (i, action) in ["create", "start", "die"].iter().enumerate() {
                let e = event(1_000_000_000_000 * (3 - i as i64), action, "web");
                conn.execute(
                    "INSERT INTO events (identity, time_nano, type, action, actor, container_id, container_name, json) \
                     VALUES (?1, ?2, 'container', ?3, 'id-web', 'id-web', 'web', ?4)",
                    params![e.docker.identity(), e.docker.time_nano, action, serde_json::to_string(&e).unwrap()],
                )
                .unwrap();
            }
            let e = event(1_700_000_000_000_000_000, "log", "web");
            let a = alert(&e, "31100", 6, "SQL injection attempt");
            conn.execute(
                "INSERT INTO alerts (id, time_ms, rule_id, level, container_id, container_name, text, json, in_file) \
                 VALUES (?1, 9999999999999, '31100', 6, 'id-web', 'web', 'sql injection attempt web', ?2, 1)",
                params![a.id, serde_json::to_string(&a).unwrap()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO log_checkpoints VALUES ('/logs/a', 7, 4096)",
                [],
            )
            .unwrap();
            conn.execute("INSERT INTO meta VALUES ('cursor_nano', 3000000000000)", [])
                .unwrap();
        }
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(store.cursor().unwrap(), Some(3_000_000_000_000));
        let checkpoint = store.log_checkpoint("/logs/a").unwrap().unwrap();
        assert_eq!((checkpoint.inode, checkpoint.offset), (7, 4096));
        // Events numbered in time order.
        let events = store
            .events(&EventFilter {
                after_seq: Some(0),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let actions: Vec<&str> = events
            .iter()
            .map(|e| e.record.docker.action.as_str())
            .collect();
        assert_eq!(actions, ["die", "start", "create"]);
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        // The alert kept its seq and now sits at the time it shows.
        let alerts = store
            .alerts(&AlertFilter {
                to_ms: Some(1_700_000_000_000),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].seq, 1);
        // New records continue the sequences; the event identity still dedups.
        let again = event(1_000_000_000_000, "die", "web");
        assert!(!store.record(&again, &[]).unwrap());
        let new = event(4_000_000_000_000, "stop", "web");
        assert!(store
            .record(&new, &[alert(&new, "91002", 3, "stopped")])
            .unwrap());
        let newest = store
            .events(&EventFilter {
                limit: 1,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(newest[0].seq, 4);
        drop(store);
        // Opening again migrates nothing and keeps everything.
        let store = EventStore::open(dir.path()).unwrap();
        let version: u32 = store
            .lock()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, crate::EVENTS_SCHEMA_VERSION);
        let all = store
            .alerts(&AlertFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        // Newest shown time first: the 2023 alert (seq 1), then the new one
        // (seq 2), whose event is from 1970.
        assert_eq!(all.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_database_from_a_newer_jaga_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(EventStore::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(EVENTS_FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let error = EventStore::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("'99'"), "{error}");
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
        assert_eq!(
            (old.inode, old.offset, old.head_hash, old.born_ns),
            (7, 42, 0, 0)
        );
        let new = LogCheckpoint {
            inode: 8,
            offset: 9,
            head_hash: u64::MAX - 1,
            seen_until_ns: 1_700_000_000_000_000_000,
            born_ns: 1_700_000_000_000_000_001,
        };
        store.record_log_batch("/a-json.log", &new, &[]).unwrap();
        assert_eq!(store.log_checkpoint("/a-json.log").unwrap(), Some(new));
    }

    fn metric_state(key: &str, status: MetricStatus, alert: Option<Alert>) -> MetricRuleState {
        MetricRuleState {
            key: key.to_owned(),
            rule_id: "92000".to_owned(),
            subject: "container/id-web".to_owned(),
            status,
            pending_since_ms: 1_000,
            firing_since_ms: alert.as_ref().map(|_| 2_000),
            last_value: Some(95.5),
            firing_alert: alert,
        }
    }

    #[test]
    fn metric_transitions_are_stored_with_their_alerts_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        let e = event(2_000_000_000, "start", "web");
        let firing = alert(&e, "92000", 7, "CPU high: web");
        let pending = metric_state("92000/container/id-web", MetricStatus::Pending, None);
        let other = metric_state("92001/container/id-web", MetricStatus::Pending, None);
        store
            .record_metric_transitions(
                &[
                    MetricStateChange::Set(Box::new(pending.clone())),
                    MetricStateChange::Set(Box::new(other.clone())),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(
            store.metric_rule_states().unwrap(),
            vec![pending, other.clone()]
        );
        let fired = metric_state(
            "92000/container/id-web",
            MetricStatus::Firing,
            Some(firing.clone()),
        );
        let change = [
            MetricStateChange::Set(Box::new(fired.clone())),
            MetricStateChange::Clear {
                key: other.key.clone(),
            },
        ];
        assert_eq!(
            store
                .record_metric_transitions(&change, std::slice::from_ref(&firing))
                .unwrap(),
            1
        );
        // A replay stores the alert once.
        assert_eq!(
            store
                .record_metric_transitions(&change, std::slice::from_ref(&firing))
                .unwrap(),
            0
        );
        drop(store);
        let store = EventStore::open(dir.path()).unwrap();
        assert_eq!(store.metric_rule_states().unwrap(), vec![fired]);
        let stored = store
            .alerts(&AlertFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].record, firing);
    }

    #[test]
    fn exit_times_are_read_from_a_time_on_and_their_changes_are_told() {
        let dir = tempfile::tempdir().unwrap();
        let store = EventStore::open(dir.path()).unwrap();
        for (time, action, name) in [
            (1_000, "die", "web"),
            (2_000, "die", "web"),
            (3_000, "die", "db"),
            (3_500, "start", "db"),
            (9_000, "die", "web"),
        ] {
            store.record(&event(time, action, name), &[]).unwrap();
        }
        let generation = store.events_generation();
        assert_eq!(
            store.action_times("die", 1_500).unwrap(),
            vec![
                ("id-web".to_owned(), 2_000),
                ("id-db".to_owned(), 3_000),
                ("id-web".to_owned(), 9_000)
            ]
        );
        // Readers that keep the times know when to read them again.
        store.record(&event(9_500, "die", "db"), &[]).unwrap();
        assert_ne!(store.events_generation(), generation);
        let generation = store.events_generation();
        store.record(&event(9_500, "die", "db"), &[]).unwrap();
        assert_eq!(
            store.events_generation(),
            generation,
            "a replay changes nothing"
        );
        store.trim(0, &[]).unwrap();
        assert_eq!(store.events_generation(), generation, "nothing trimmed");
        store.trim(5, &[]).unwrap();
        assert_ne!(store.events_generation(), generation);
    }
}
