//! The delivery queue of every output: a cursor per output over the alert
//! sequence, and the dead letters of what a receiver refused.
//!
//! Why a cursor and not an outbox copy per output: an alert row already
//! carries a sequence number that is never reused, and it is written in
//! the same transaction as what its source consumed. With a cursor per
//! output (`output_cursors(name, seq)`: everything up to `seq` is done for
//! that output), the queue of every output is written with the alert, for
//! free: no row per alert and output, no fan-out at commit, no table that
//! grows with the number of outputs. Adding an output is one row. A slow
//! output only holds its own cursor back. The cost is borne by trimming:
//! an alert is deleted only when every configured output's cursor has
//! passed it, and an output that stays down cannot hold the store hostage
//! because its runner skips the oldest undelivered alerts past its
//! `max_backlog`, recording the skipped range as a dead letter and counting
//! it (never silently). Delivery is at least once: the cursor moves after
//! the receiver took the message, and the alert id is the de-duplication
//! key for receivers.
//!
//! What a receiver refused for good is kept in `output_dead_letters` with
//! the receiver's answer, so it can be looked at and sent again by hand.

use rusqlite::{params, OptionalExtension, TransactionBehavior};

use jaga_model::Alert;

use super::{chrono_free_now_ms, EventStore};
use crate::StoreError;

/// An alert as an output reads it: its place in the sequence and when it
/// was stored (delivery latency is counted from there).
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedAlert {
    pub seq: i64,
    pub stored_ms: i64,
    pub alert: Alert,
}

/// Where one output is in the alert sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputCursor {
    pub name: String,
    /// The output's `type` when the cursor last moved.
    pub kind: String,
    /// Every alert up to this sequence number is done for this output:
    /// delivered, filtered out, dead-lettered or dropped.
    pub seq: i64,
    /// The sequence number when the output first ran: alerts up to it were
    /// stored before the output existed and are not sent to it.
    pub start_seq: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// The receiver refused the message for good (a 4xx other than 429).
    Refused,
    /// Skipped undelivered: the output's backlog went past `max_backlog`.
    Dropped,
}

impl DeadLetterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterKind::Refused => "refused",
            DeadLetterKind::Dropped => "dropped",
        }
    }
}

/// A message an output could not deliver, or a range it skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub output: String,
    pub kind: DeadLetterKind,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The sequence numbers of the alerts of a refused message; empty for
    /// a dropped range (every seq from `first_seq` to `last_seq`).
    pub seqs: Vec<i64>,
    pub alert_ids: Vec<String>,
    pub count: u64,
    pub at_ms: i64,
    pub error: String,
    /// What the receiver answered (status and body), as it came.
    pub answer: String,
}

impl DeadLetter {
    /// Whether this letter holds the alert `seq`.
    pub fn holds(&self, seq: i64) -> bool {
        match self.kind {
            DeadLetterKind::Refused => self.seqs.contains(&seq),
            DeadLetterKind::Dropped => (self.first_seq..=self.last_seq).contains(&seq),
        }
    }
}

impl EventStore {
    /// The highest sequence number an alert ever got (0 before the first),
    /// trimmed alerts included.
    pub fn latest_alert_seq(&self) -> Result<i64, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'alerts'), 0)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| self.err("reading the latest alert sequence number", e))
    }

    /// The cursor of output `name`, created at the latest alert when the
    /// output runs for the first time: a new output gets what is raised
    /// from now on, not the whole history.
    pub fn open_output_cursor(&self, name: &str, kind: &str) -> Result<OutputCursor, StoreError> {
        let mut conn = self.lock();
        let run = |conn: &mut rusqlite::Connection| -> rusqlite::Result<OutputCursor> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "INSERT OR IGNORE INTO output_cursors (name, kind, seq, start_seq, updated_ms) \
                 SELECT ?1, ?2, s, s, ?3 FROM \
                 (SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'alerts'), 0) AS s)",
                params![name, kind, chrono_free_now_ms()],
            )?;
            tx.execute(
                "UPDATE output_cursors SET kind = ?2 WHERE name = ?1",
                params![name, kind],
            )?;
            let cursor = tx.query_row(
                "SELECT name, kind, seq, start_seq, updated_ms FROM output_cursors WHERE name = ?1",
                [name],
                cursor_row,
            )?;
            tx.commit()?;
            Ok(cursor)
        };
        run(&mut conn).map_err(|e| self.err(format!("opening the cursor of output '{name}'"), e))
    }

    /// Every output cursor stored, by name.
    pub fn output_cursors(&self) -> Result<Vec<OutputCursor>, StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<OutputCursor>> {
            let mut stmt = conn.prepare_cached(
                "SELECT name, kind, seq, start_seq, updated_ms FROM output_cursors ORDER BY name",
            )?;
            let rows = stmt.query_map([], cursor_row)?;
            rows.collect()
        };
        run().map_err(|e| self.err("reading the output cursors", e))
    }

    /// Up to `limit` alerts after `after_seq`, oldest first.
    pub fn alerts_after(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<QueuedAlert>, StoreError> {
        self.queued(
            "SELECT seq, stored_ms, json FROM alerts WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            params![after_seq, limit as i64],
            "reading alerts to deliver",
        )
    }

    /// How many alerts are stored after `after_seq`.
    pub fn alerts_count_after(&self, after_seq: i64) -> Result<u64, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT COUNT(*) FROM alerts WHERE seq > ?1",
            [after_seq],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n.max(0) as u64)
        .map_err(|e| self.err("counting alerts to deliver", e))
    }

    /// The alerts after `after_seq` stored before `before_ms`: the newest
    /// of their sequence numbers and how many they are; `None` when none.
    pub fn stored_before(
        &self,
        after_seq: i64,
        before_ms: i64,
    ) -> Result<Option<(i64, u64)>, StoreError> {
        let conn = self.lock();
        let (last, count): (Option<i64>, i64) = conn
            .query_row(
                "SELECT MAX(seq), COUNT(*) FROM alerts WHERE seq > ?1 AND stored_ms < ?2",
                params![after_seq, before_ms],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(|e| self.err("finding alerts past the age bound", e))?;
        Ok(last.map(|last| (last, count.max(0) as u64)))
    }

    /// The sequence number after which exactly `keep` stored alerts
    /// follow; `None` when `keep` or fewer follow `after_seq`.
    pub fn seq_keeping_newest(&self, after_seq: i64, keep: u64) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        conn.query_row(
            "SELECT seq FROM alerts WHERE seq > ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
            params![after_seq, keep as i64],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.err("finding the oldest alerts past the backlog bound", e))
    }

    /// Moves output `name`'s cursor forward to `seq` (never back), with
    /// `letter` (what it refused or skipped on the way) in the same
    /// transaction.
    pub fn move_output_cursor(
        &self,
        name: &str,
        seq: i64,
        letter: Option<&DeadLetter>,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let run = |conn: &mut rusqlite::Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(letter) = letter {
                tx.execute(
                    "INSERT INTO output_dead_letters \
                     (output, kind, first_seq, last_seq, seqs, alert_ids, count, at_ms, error, answer) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        letter.output,
                        letter.kind.as_str(),
                        letter.first_seq,
                        letter.last_seq,
                        serde_json::to_string(&letter.seqs).unwrap_or_else(|_| "[]".to_owned()),
                        serde_json::to_string(&letter.alert_ids)
                            .unwrap_or_else(|_| "[]".to_owned()),
                        letter.count as i64,
                        letter.at_ms,
                        letter.error,
                        letter.answer
                    ],
                )?;
            }
            tx.execute(
                "UPDATE output_cursors SET seq = MAX(seq, ?2), updated_ms = ?3 WHERE name = ?1",
                params![name, seq, chrono_free_now_ms()],
            )?;
            tx.commit()
        };
        run(&mut conn).map_err(|e| self.err(format!("moving the cursor of output '{name}'"), e))
    }

    /// Dead letters of `output` (all outputs: `None`) that hold alerts in
    /// `[from_seq, to_seq]`, newest first, at most `limit`.
    pub fn dead_letters(
        &self,
        output: Option<&str>,
        from_seq: i64,
        to_seq: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<DeadLetter>> {
            let mut stmt = conn.prepare_cached(
                "SELECT output, kind, first_seq, last_seq, seqs, alert_ids, count, at_ms, error, answer \
                 FROM output_dead_letters WHERE (?1 IS NULL OR output = ?1) \
                 AND last_seq >= ?2 AND first_seq <= ?3 ORDER BY id DESC LIMIT ?4",
            )?;
            let rows = stmt.query_map(params![output, from_seq, to_seq, limit as i64], |r| {
                let kind: String = r.get(1)?;
                let seqs: String = r.get(4)?;
                let ids: String = r.get(5)?;
                Ok(DeadLetter {
                    output: r.get(0)?,
                    kind: if kind == "dropped" {
                        DeadLetterKind::Dropped
                    } else {
                        DeadLetterKind::Refused
                    },
                    first_seq: r.get(2)?,
                    last_seq: r.get(3)?,
                    seqs: serde_json::from_str(&seqs).unwrap_or_default(),
                    alert_ids: serde_json::from_str(&ids).unwrap_or_default(),
                    count: r.get::<_, i64>(6)?.max(0) as u64,
                    at_ms: r.get(7)?,
                    error: r.get(8)?,
                    answer: r.get(9)?,
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err("reading dead letters", e))
    }

    /// The latest alert of every episode whose latest alert says it is
    /// still firing, oldest first.
    pub fn firing_episodes(&self) -> Result<Vec<QueuedAlert>, StoreError> {
        self.queued(
            "SELECT a.seq, a.stored_ms, a.json FROM alerts a \
             JOIN (SELECT MAX(seq) AS seq FROM alerts WHERE episode_key IS NOT NULL \
                   GROUP BY episode_key) latest ON a.seq = latest.seq \
             WHERE a.episode_firing = 1 ORDER BY a.seq",
            params![],
            "reading the episodes still firing",
        )
    }

    fn queued(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
        action: &str,
    ) -> Result<Vec<QueuedAlert>, StoreError> {
        let conn = self.lock();
        let run = || -> rusqlite::Result<Vec<(i64, i64, String)>> {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect()
        };
        let rows = run().map_err(|e| self.err(action, e))?;
        drop(conn);
        // A row that no longer reads as an alert must not stop every
        // output at it: it is left out, and said so.
        Ok(rows
            .into_iter()
            .filter_map(|(seq, stored_ms, json)| match serde_json::from_str(&json) {
                Ok(alert) => Some(QueuedAlert {
                    seq,
                    stored_ms,
                    alert,
                }),
                Err(error) => {
                    tracing::warn!(seq, %error, path = %self.path.display(), "a stored alert cannot be read; it is not delivered");
                    None
                }
            })
            .collect())
    }
}

fn cursor_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutputCursor> {
    Ok(OutputCursor {
        name: r.get(0)?,
        kind: r.get(1)?,
        seq: r.get(2)?,
        start_seq: r.get(3)?,
        updated_ms: r.get(4)?,
    })
}
