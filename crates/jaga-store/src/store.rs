//! [`HistoryStore`]: the public face of the history database.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jaga_model::{ContainerId, ContainerRef, HistoryPoint, RollupPoint, SERIES_COUNT};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::bucket::{ceil_to, floor_to, raw_as_rollup, Bucket};
use crate::schema::{
    self, meta_i64, set_meta_i64, Sql, META_RAW_COMPLETE_FROM, META_ROLLED_UNTIL,
    META_ROLLUPS_COMPLETE_FROM, MINUTE_MS,
};
use crate::StoreError;

/// Name of the database file inside the directory given to
/// [`HistoryStore::open`]. SQLite keeps `-wal` and `-shm` files beside it.
pub const FILE_NAME: &str = "history.sqlite3";

/// How long each kind of history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw points, at the collection interval. Default 1 hour.
    pub raw: Duration,
    /// Per-minute rollups. Default 7 days.
    pub rollup: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw: Duration::from_secs(60 * 60),
            rollup: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}

/// What [`HistoryStore::trim`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimReport {
    pub raw_deleted: usize,
    pub rollups_deleted: usize,
    pub containers_deleted: usize,
}

/// A container as the store remembers it, possibly long gone from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredContainer {
    pub id: ContainerId,
    /// Name without the leading `/`; the 12-character id when the container
    /// was only ever seen through its points.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    /// `State.Status` when last seen (`running`, `exited`, …).
    pub state: String,
    pub first_seen_unix_ms: i64,
    pub last_seen_unix_ms: i64,
}

/// A raw point with the container it is about, for exporters.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedPoint {
    pub id: ContainerId,
    pub name: String,
    pub image: String,
    pub point: HistoryPoint,
}

/// A minute rollup with the container it is about, for exporters.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedRollup {
    pub id: ContainerId,
    pub name: String,
    pub image: String,
    pub rollup: RollupPoint,
}

/// What an exporter sends next where the raw points it has not sent yet
/// were trimmed: see [`HistoryStore::rollups_to_export`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollupExport {
    /// Minute rollups with a start in `[from, next_ms)`, in time, then
    /// container order.
    pub rollups: Vec<ExportedRollup>,
    /// Where the next read starts (the exporter's new cursor).
    pub next_ms: i64,
    /// Milliseconds of history from `from` on that the store no longer
    /// holds at all (the rollups were trimmed too): skipped, not sent.
    pub lost_ms: i64,
}

/// History of container figures in `<dir>/history.sqlite3`.
///
/// One connection behind a mutex: every call takes the lock for its whole
/// transaction, so calls are serialised. Other processes (or a second
/// `HistoryStore` on the same directory) see each committed transaction.
#[derive(Debug)]
pub struct HistoryStore {
    path: PathBuf,
    retention: Retention,
    sql: Sql,
    conn: Mutex<Connection>,
    /// Each container's row key, looked up once rather than with a query
    /// per point every pass. Rows keep their key (metadata is upserted in
    /// place) until the trim deletes them, which empties this.
    container_keys: Mutex<HashMap<ContainerId, i64>>,
}

impl HistoryStore {
    /// Creates `dir` if needed, opens/creates `dir/history.sqlite3`. Errors name the path.
    pub fn open(dir: &Path, retention: Retention) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let conn = schema::open(&path)?;
        Ok(Self {
            path,
            retention,
            sql: Sql::new(),
            conn: Mutex::new(conn),
            container_keys: Mutex::new(HashMap::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Records/updates container metadata (name, image, labels, state, last_seen).
    ///
    /// `first_seen` is set when a container is new and never moves later;
    /// `last_seen` never moves earlier.
    pub fn upsert_containers(
        &self,
        containers: &[ContainerRef],
        seen_unix_ms: i64,
    ) -> Result<(), StoreError> {
        let mut rows = Vec::with_capacity(containers.len());
        for c in containers {
            let labels =
                serde_json::to_string(&c.labels).map_err(|source| StoreError::EncodeLabels {
                    id: c.id.to_string(),
                    source,
                })?;
            rows.push((c, labels));
        }
        let mut conn = self.lock();
        upsert_tx(&mut conn, &rows, seen_unix_ms)
            .map_err(|e| self.err("recording container metadata", e))
    }

    /// One transaction for a whole collection pass. Returns the points
    /// written.
    ///
    /// A container not yet known gets a row named after its short id. A
    /// point for an instant already stored replaces it. A point older than
    /// a rolled-up minute makes [`roll_up`](Self::roll_up) fold that minute
    /// again, unless raw points of that minute were already trimmed: such a
    /// point is dropped, as rewriting the minute from it alone would lose
    /// the rest.
    pub fn write_points(
        &self,
        points: &[(ContainerId, HistoryPoint)],
    ) -> Result<usize, StoreError> {
        if points.is_empty() {
            return Ok(0);
        }
        let mut conn = self.lock();
        let mut keys = self
            .container_keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        write_points_tx(&mut conn, &self.sql, &mut keys, points)
            .map_err(|e| self.err("writing points", e))
    }

    /// Folds every complete minute (minute start < floor(now_ms to minute))
    /// not yet rolled up into per-minute rollups (min/avg/max per series,
    /// count). Returns the rollup rows written.
    ///
    /// Idempotent: the end of the last rolled minute is kept in `meta`, and
    /// a minute folded again is recomputed from raw points and replaced.
    pub fn roll_up(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut conn = self.lock();
        roll_up_tx(&mut conn, &self.sql, now_ms).map_err(|e| self.err("rolling up minutes", e))
    }

    /// Deletes raw points older than now-raw and rollups older than
    /// now-rollup; returns counts. Containers with no data left and
    /// last_seen older than the rollup retention are removed too.
    ///
    /// Rolls up complete minutes first, and never deletes a raw point whose
    /// minute is not rolled up, so trimming loses no history.
    pub fn trim(&self, now_ms: i64) -> Result<TrimReport, StoreError> {
        let mut conn = self.lock();
        let report = trim_tx(&mut conn, &self.sql, self.retention, now_ms)
            .map_err(|e| self.err("trimming history", e))?;
        if report.containers_deleted > 0 {
            self.container_keys
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        Ok(report)
    }

    /// Points for one container in `[from_ms, to_ms]`.
    ///
    /// - `step_ms <= 0`, or the range lies where raw points are kept and
    ///   `step_ms` is no wider than their spacing: the raw points, each as a
    ///   `RollupPoint` with `count = 1` and `min = avg = max`.
    /// - Otherwise buckets `step_ms` wide, aligned to multiples of `step_ms`
    ///   since the epoch, each stamped with its start. Raw points make up
    ///   the part of a bucket where raw points are still kept; minute
    ///   rollups make up the part before (min of mins, average weighted by
    ///   count, max of maxes). A minute rollup counts whole in the bucket its
    ///   start falls in, and whole in the range when it overlaps `from_ms`.
    ///
    /// Buckets with no data are omitted; the result is sorted by time. An
    /// unknown container gives an empty result.
    pub fn range(
        &self,
        id: &ContainerId,
        from_ms: i64,
        to_ms: i64,
        step_ms: i64,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        let conn = self.lock();
        range_query(&conn, &self.sql, id, from_ms, to_ms, step_ms)
            .map_err(|e| self.err(format!("reading history of container '{id}'"), e))
    }

    /// The stored minute rollups of one container with a start in
    /// `[from_ms, to_ms]`, as they are in the table.
    pub fn minute_rollups(
        &self,
        id: &ContainerId,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<RollupPoint>, StoreError> {
        let conn = self.lock();
        let query = || -> rusqlite::Result<Vec<RollupPoint>> {
            let Some(key) = container_key(&conn, id.as_str())? else {
                return Ok(Vec::new());
            };
            select_rollups(&conn, &self.sql, key, from_ms, to_ms)
        };
        query().map_err(|e| self.err(format!("reading rollups of container '{id}'"), e))
    }

    /// The newest raw point of a container; `None` when it has none (never
    /// written, or all trimmed).
    pub fn latest_point(&self, id: &ContainerId) -> Result<Option<HistoryPoint>, StoreError> {
        let conn = self.lock();
        let query = || -> rusqlite::Result<Option<HistoryPoint>> {
            let Some(key) = container_key(&conn, id.as_str())? else {
                return Ok(None);
            };
            conn.prepare_cached(&self.sql.latest_raw)?
                .query_row([key], read_point)
                .optional()
        };
        query().map_err(|e| self.err(format!("reading latest point of container '{id}'"), e))
    }

    /// Containers seen since `since_ms` (running and recent), newest
    /// last_seen first (then by name).
    pub fn containers_since(&self, since_ms: i64) -> Result<Vec<StoredContainer>, StoreError> {
        let conn = self.lock();
        let query = || -> rusqlite::Result<Vec<StoredContainer>> {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CONTAINER_COLUMNS} FROM containers WHERE last_seen >= ?1 \
                 ORDER BY last_seen DESC, name, id"
            ))?;
            let rows = stmt.query_map([since_ms], read_container)?;
            rows.collect()
        };
        query().map_err(|e| self.err("listing containers", e))
    }

    /// Looks a container up the way `docker` does: full id, then name (with
    /// or without the leading `/`; the most recently seen when a name was
    /// reused), then a unique id prefix. A prefix shared by several ids is
    /// [`StoreError::AmbiguousContainer`].
    pub fn container(
        &self,
        id_or_name_or_prefix: &str,
    ) -> Result<Option<StoredContainer>, StoreError> {
        let query = id_or_name_or_prefix;
        if query.is_empty() {
            return Ok(None);
        }
        let conn = self.lock();
        let found = lookup_container(&conn, query)
            .map_err(|e| self.err(format!("looking up container '{query}'"), e))?;
        match found {
            Lookup::One(c) => Ok(Some(*c)),
            Lookup::None => Ok(None),
            Lookup::Ambiguous(count) => Err(StoreError::AmbiguousContainer {
                query: query.to_owned(),
                count,
            }),
        }
    }

    /// Raw points stored at or after `from_ms` (time, then container
    /// order), at most `limit`, each with its container's id, name and
    /// image: what an exporter that keeps its own time cursor sends next.
    pub fn points_from(
        &self,
        from_ms: i64,
        limit: usize,
    ) -> Result<Vec<ExportedPoint>, StoreError> {
        let conn = self.lock();
        let query = || -> rusqlite::Result<Vec<ExportedPoint>> {
            let series = crate::schema::SERIES_COLUMNS
                .iter()
                .map(|s| format!("r.{s}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT r.ts, {series}, c.id, c.name, c.image FROM raw r \
                 JOIN containers c ON c.key = r.ck WHERE r.ts >= ?1 \
                 ORDER BY r.ts, r.ck LIMIT ?2"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![from_ms, limit], |row| {
                let (id, name, image) = read_exported_container(row, 1 + SERIES_COUNT)?;
                Ok(ExportedPoint {
                    id,
                    name,
                    image,
                    point: read_point(row)?,
                })
            })?;
            rows.collect()
        };
        query().map_err(|e| self.err("reading points to export", e))
    }

    /// For an exporter whose cursor `from_ms` lies before the raw points
    /// still kept: the minute rollups that stand for the trimmed part,
    /// the same split as [`range`](Self::range) makes (rollups of the
    /// minutes before the first whole minute of raw points, raw points
    /// after). `None` when raw points hold everything from `from_ms` on
    /// (send [`points_from`](Self::points_from)).
    ///
    /// - Minutes start at or after `from_ms`: a minute whose first raw
    ///   points were sent before `from_ms` is not sent again as a rollup.
    /// - A read spans as many minutes as `limit` rollups of every known
    ///   container fill (at least one minute, which goes whole however
    ///   many containers it has), starting at the first stored rollup.
    /// - A part older than the rollups still kept is skipped and returned
    ///   as `lost_ms`.
    /// - Once no rollup is left before the split, `next_ms` is the split
    ///   and `rollups` is empty: the raw points go on from there.
    pub fn rollups_to_export(
        &self,
        from_ms: i64,
        limit: usize,
    ) -> Result<Option<RollupExport>, StoreError> {
        let conn = self.lock();
        rollups_to_export(&conn, &self.sql, from_ms, limit)
            .map_err(|e| self.err("reading rollups to export", e))
    }

    /// A named cursor kept in the database (an exporter's place); `None`
    /// before it was first set.
    pub fn cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        meta_i64(&conn, &format!("cursor:{name}"))
            .map_err(|e| self.err(format!("reading cursor '{name}'"), e))
    }

    pub fn set_cursor(&self, name: &str, value: i64) -> Result<(), StoreError> {
        let conn = self.lock();
        set_meta_i64(&conn, &format!("cursor:{name}"), value)
            .map_err(|e| self.err(format!("storing cursor '{name}'"), e))
    }

    /// Size on disk of the database files (db + wal), for jaga_* metrics.
    pub fn disk_bytes(&self) -> u64 {
        let mut wal = OsString::from(self.path.as_os_str());
        wal.push("-wal");
        [self.path.as_path(), Path::new(&wal)]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Flushes the WAL into the db and truncates it (used at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(|e| self.err("checkpointing the wal", e))?;
        if busy != 0 {
            tracing::warn!(
                path = %self.path.display(),
                "wal checkpoint incomplete: another connection is reading"
            );
        }
        Ok(())
    }

    /// The connection. A panic while it was held rolled its transaction
    /// back (the `Transaction` drop did), so a poisoned lock is safe to use.
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

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn container_key(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT key FROM containers WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

fn upsert_tx(
    conn: &mut Connection,
    rows: &[(&ContainerRef, String)],
    seen_unix_ms: i64,
) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO containers (id, name, image, labels, state, first_seen, last_seen) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) \
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, image = excluded.image, \
             labels = excluded.labels, state = excluded.state, \
             first_seen = MIN(first_seen, excluded.first_seen), \
             last_seen = MAX(last_seen, excluded.last_seen)",
        )?;
        for (c, labels) in rows {
            stmt.execute(params![
                c.id.as_str(),
                c.name.trim_start_matches('/'),
                c.image,
                labels,
                c.state.as_str(),
                seen_unix_ms,
            ])?;
        }
    }
    tx.commit()
}

fn write_points_tx(
    conn: &mut Connection,
    sql: &Sql,
    keys: &mut HashMap<ContainerId, i64>,
    points: &[(ContainerId, HistoryPoint)],
) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rolled_until = meta_i64(&tx, META_ROLLED_UNTIL)?.unwrap_or(i64::MAX);
    let complete_from = meta_i64(&tx, META_RAW_COMPLETE_FROM)?.unwrap_or(i64::MIN);
    let mut written = 0;
    let mut dropped = 0_usize;
    let mut earliest_late = i64::MAX;
    // Kept only once committed: a row added by a transaction rolled back
    // has no key.
    let mut found: HashMap<ContainerId, i64> = HashMap::new();
    {
        let mut insert = tx.prepare_cached(&sql.insert_raw)?;
        let mut add_container = tx.prepare_cached(
            "INSERT INTO containers (id, name, image, labels, state, first_seen, last_seen) \
             VALUES (?1, ?2, '', '{}', 'unknown', ?3, ?3)",
        )?;
        for (id, point) in points {
            let ts = point.unix_ms;
            if ts < rolled_until {
                if floor_to(ts, MINUTE_MS) < complete_from {
                    dropped += 1;
                    continue;
                }
                earliest_late = earliest_late.min(ts);
            }
            let key: i64 = match keys.get(id).or_else(|| found.get(id)) {
                Some(key) => *key,
                None => {
                    let key = match container_key(&tx, id.as_str())? {
                        Some(key) => key,
                        None => {
                            add_container.execute(params![id.as_str(), id.short(), ts])?;
                            tx.last_insert_rowid()
                        }
                    };
                    found.insert(id.clone(), key);
                    key
                }
            };
            let head: [&dyn rusqlite::ToSql; 2] = [&key, &ts];
            let values = point.values.iter().map(|v| v as &dyn rusqlite::ToSql);
            written +=
                insert.execute(rusqlite::params_from_iter(head.into_iter().chain(values)))?;
        }
    }
    if earliest_late != i64::MAX {
        set_meta_i64(&tx, META_ROLLED_UNTIL, floor_to(earliest_late, MINUTE_MS))?;
    }
    tx.commit()?;
    keys.extend(found);
    if dropped > 0 {
        tracing::debug!(dropped, "dropped points older than the trimmed raw history");
    }
    Ok(written)
}

fn roll_up_tx(conn: &mut Connection, sql: &Sql, now_ms: i64) -> rusqlite::Result<usize> {
    let end = floor_to(now_ms, MINUTE_MS);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let stored = meta_i64(&tx, META_ROLLED_UNTIL)?;
    let start = match stored {
        Some(t) => t,
        None => {
            // The first row of the table: raw is clustered on time.
            let first: Option<i64> = tx.query_row("SELECT MIN(ts) FROM raw", [], |r| r.get(0))?;
            first.map_or(end, |t| floor_to(t, MINUTE_MS))
        }
    };
    let mut rows = 0;
    if start < end {
        rows = tx
            .prepare_cached(&sql.roll_up)?
            .execute(params![start, end])?;
    }
    let rolled_until = start.max(end);
    if stored != Some(rolled_until) {
        set_meta_i64(&tx, META_ROLLED_UNTIL, rolled_until)?;
    }
    tx.commit()?;
    if rows > 0 {
        tracing::debug!(rows, from_ms = start, to_ms = end, "rolled up minutes");
    }
    Ok(rows)
}

fn trim_tx(
    conn: &mut Connection,
    sql: &Sql,
    retention: Retention,
    now_ms: i64,
) -> rusqlite::Result<TrimReport> {
    roll_up_tx(conn, sql, now_ms)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rolled_until = meta_i64(&tx, META_ROLLED_UNTIL)?.unwrap_or(i64::MIN);
    let raw_cut = now_ms
        .saturating_sub(duration_ms(retention.raw))
        .min(rolled_until);
    let rollup_cut = now_ms.saturating_sub(duration_ms(retention.rollup));
    // Raw is clustered on time: this deletes from the left of the table.
    let raw_deleted = tx.execute("DELETE FROM raw WHERE ts < ?1", [raw_cut])?;
    // `ck IN (…)` makes this a range seek per container instead of a scan
    // of the whole table.
    let rollups_deleted = tx.execute(
        "DELETE FROM rollup_1m WHERE ck IN (SELECT key FROM containers) AND ts < ?1",
        [rollup_cut],
    )?;
    let containers_deleted = tx.execute(
        "DELETE FROM containers WHERE last_seen < ?1 \
         AND NOT EXISTS (SELECT 1 FROM raw WHERE ck = containers.key) \
         AND NOT EXISTS (SELECT 1 FROM rollup_1m WHERE ck = containers.key)",
        [rollup_cut],
    )?;
    for (key, cut) in [
        (META_RAW_COMPLETE_FROM, raw_cut),
        (META_ROLLUPS_COMPLETE_FROM, rollup_cut),
    ] {
        if meta_i64(&tx, key)?.is_none_or(|t| cut > t) {
            set_meta_i64(&tx, key, cut)?;
        }
    }
    tx.commit()?;
    let report = TrimReport {
        raw_deleted,
        rollups_deleted,
        containers_deleted,
    };
    if report != TrimReport::default() {
        tracing::debug!(
            raw_deleted,
            rollups_deleted,
            containers_deleted,
            "trimmed history"
        );
    }
    Ok(report)
}

fn range_query(
    conn: &Connection,
    sql: &Sql,
    id: &ContainerId,
    from_ms: i64,
    to_ms: i64,
    step_ms: i64,
) -> rusqlite::Result<Vec<RollupPoint>> {
    if to_ms < from_ms {
        return Ok(Vec::new());
    }
    let Some(key) = container_key(conn, id.as_str())? else {
        return Ok(Vec::new());
    };
    if step_ms <= 0 {
        return select_raw(conn, sql, key, from_ms, to_ms, |p| raw_as_rollup(&p));
    }
    // Minutes before `split` come from rollups, later instants from raw
    // points. `None`: nothing was ever trimmed, raw points are complete.
    let split = meta_i64(conn, META_RAW_COMPLETE_FROM)?.map(|t| ceil_to(t, MINUTE_MS));
    if split.is_none_or(|s| from_ms >= s) {
        let (count, first, last): (i64, Option<i64>, Option<i64>) = conn
            .prepare_cached(
                "SELECT COUNT(*), MIN(ts), MAX(ts) FROM raw \
                 WHERE ck = ?1 AND ts >= ?2 AND ts <= ?3",
            )?
            .query_row(params![key, from_ms, to_ms], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        let spacing = match (first, last) {
            (Some(first), Some(last)) if count >= 2 => last.saturating_sub(first) / (count - 1),
            _ => i64::MAX,
        };
        if step_ms <= spacing {
            return select_raw(conn, sql, key, from_ms, to_ms, |p| raw_as_rollup(&p));
        }
    }

    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    let mut raw_from = from_ms;
    if let Some(split) = split {
        let first_minute = floor_to(from_ms, MINUTE_MS);
        if first_minute < split {
            let last_minute = to_ms.min(split.saturating_sub(1));
            for r in select_rollups(conn, sql, key, first_minute, last_minute)? {
                buckets
                    .entry(floor_to(r.unix_ms, step_ms))
                    .or_default()
                    .add_rollup(&r);
            }
        }
        raw_from = raw_from.max(split);
    }
    if raw_from <= to_ms {
        select_raw(conn, sql, key, raw_from, to_ms, |p| {
            buckets
                .entry(floor_to(p.unix_ms, step_ms))
                .or_default()
                .add_raw(&p);
        })?;
    }
    Ok(buckets.iter().map(|(&ts, b)| b.finish(ts)).collect())
}

fn rollups_to_export(
    conn: &Connection,
    sql: &Sql,
    from_ms: i64,
    limit: usize,
) -> rusqlite::Result<Option<RollupExport>> {
    let Some(raw_from) = meta_i64(conn, META_RAW_COMPLETE_FROM)? else {
        return Ok(None);
    };
    if from_ms >= raw_from {
        return Ok(None);
    }
    let split = ceil_to(raw_from, MINUTE_MS);
    let mut start = ceil_to(from_ms, MINUTE_MS);
    let mut lost_ms = 0;
    if let Some(kept_from) = meta_i64(conn, META_ROLLUPS_COMPLETE_FROM)? {
        let kept_from = ceil_to(kept_from, MINUTE_MS).min(split);
        if start < kept_from {
            lost_ms = kept_from.saturating_sub(from_ms);
            start = kept_from;
        }
    }
    // The first stored minute: a gap with no rollups (the agent was not
    // running) is crossed in one read.
    let first: Option<i64> = conn
        .prepare_cached(
            "SELECT MIN(ts) FROM rollup_1m \
             WHERE ck IN (SELECT key FROM containers) AND ts >= ?1 AND ts < ?2",
        )?
        .query_row(params![start, split], |r| r.get(0))?;
    let Some(first) = first else {
        return Ok(Some(RollupExport {
            rollups: Vec::new(),
            next_ms: split,
            lost_ms,
        }));
    };
    let containers: i64 = conn.query_row("SELECT COUNT(*) FROM containers", [], |r| r.get(0))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let minutes = (limit / containers.max(1)).max(1);
    let end = first
        .saturating_add(minutes.saturating_mul(MINUTE_MS))
        .min(split);
    let mut stmt = conn.prepare_cached(&sql.export_rollups)?;
    let rows = stmt.query_map(params![first, end], |row| {
        let (id, name, image) = read_exported_container(row, 2 + 3 * SERIES_COUNT)?;
        Ok(ExportedRollup {
            id,
            name,
            image,
            rollup: read_rollup(row)?,
        })
    })?;
    Ok(Some(RollupExport {
        rollups: rows.collect::<rusqlite::Result<_>>()?,
        next_ms: end,
        lost_ms,
    }))
}

/// The id, name and image that follow an exported point or rollup, from
/// column `first` on.
fn read_exported_container(
    row: &Row<'_>,
    first: usize,
) -> rusqlite::Result<(ContainerId, String, String)> {
    Ok((
        ContainerId::new(row.get::<_, String>(first)?),
        row.get(first + 1)?,
        row.get(first + 2)?,
    ))
}

/// Calls `each` on the raw points of `key` in `[from_ms, to_ms]`, in time
/// order, and collects what it returns.
fn select_raw<T>(
    conn: &Connection,
    sql: &Sql,
    key: i64,
    from_ms: i64,
    to_ms: i64,
    mut each: impl FnMut(HistoryPoint) -> T,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(&sql.select_raw)?;
    let mut rows = stmt.query(params![key, from_ms, to_ms])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(each(read_point(row)?));
    }
    Ok(out)
}

fn select_rollups(
    conn: &Connection,
    sql: &Sql,
    key: i64,
    from_ms: i64,
    to_ms: i64,
) -> rusqlite::Result<Vec<RollupPoint>> {
    let mut stmt = conn.prepare_cached(&sql.select_rollup)?;
    let rows = stmt.query_map(params![key, from_ms, to_ms], read_rollup)?;
    rows.collect()
}

/// The series from column `first` on; NULL (how SQLite stores NaN, and a
/// disk-usage series between two filesystem walks) reads back as NaN.
fn read_values(row: &Row<'_>, first: usize) -> rusqlite::Result<[f64; SERIES_COUNT]> {
    let mut values = [f64::NAN; SERIES_COUNT];
    for (i, v) in values.iter_mut().enumerate() {
        if let Some(x) = row.get::<_, Option<f64>>(first + i)? {
            *v = x;
        }
    }
    Ok(values)
}

fn read_point(row: &Row<'_>) -> rusqlite::Result<HistoryPoint> {
    Ok(HistoryPoint {
        unix_ms: row.get(0)?,
        values: read_values(row, 1)?,
    })
}

fn read_rollup(row: &Row<'_>) -> rusqlite::Result<RollupPoint> {
    let count: i64 = row.get(1)?;
    let count = u32::try_from(count)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(1, Type::Integer, Box::new(e)))?;
    Ok(RollupPoint {
        unix_ms: row.get(0)?,
        count,
        min: read_values(row, 2)?,
        avg: read_values(row, 2 + SERIES_COUNT)?,
        max: read_values(row, 2 + 2 * SERIES_COUNT)?,
    })
}

const CONTAINER_COLUMNS: &str = "id, name, image, labels, state, first_seen, last_seen";

fn read_container(row: &Row<'_>) -> rusqlite::Result<StoredContainer> {
    let labels: String = row.get(3)?;
    let labels = serde_json::from_str(&labels)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, Box::new(e)))?;
    Ok(StoredContainer {
        id: ContainerId::new(row.get::<_, String>(0)?),
        name: row.get(1)?,
        image: row.get(2)?,
        labels,
        state: row.get(4)?,
        first_seen_unix_ms: row.get(5)?,
        last_seen_unix_ms: row.get(6)?,
    })
}

enum Lookup {
    None,
    One(Box<StoredContainer>),
    Ambiguous(usize),
}

fn lookup_container(conn: &Connection, query: &str) -> rusqlite::Result<Lookup> {
    let by_id = format!("SELECT {CONTAINER_COLUMNS} FROM containers WHERE id = ?1");
    if let Some(c) = conn
        .prepare_cached(&by_id)?
        .query_row([query], read_container)
        .optional()?
    {
        return Ok(Lookup::One(Box::new(c)));
    }
    let by_name = format!(
        "SELECT {CONTAINER_COLUMNS} FROM containers WHERE name = ?1 \
         ORDER BY last_seen DESC LIMIT 1"
    );
    let name = query.strip_prefix('/').unwrap_or(query);
    if let Some(c) = conn
        .prepare_cached(&by_name)?
        .query_row([name], read_container)
        .optional()?
    {
        return Ok(Lookup::One(Box::new(c)));
    }
    let by_prefix = format!(
        "SELECT {CONTAINER_COLUMNS} FROM containers \
         WHERE substr(id, 1, length(?1)) = ?1 LIMIT 1000"
    );
    let mut stmt = conn.prepare_cached(&by_prefix)?;
    let mut found: Vec<StoredContainer> = stmt
        .query_map([query], read_container)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(match found.len() {
        0 => Lookup::None,
        1 => Lookup::One(Box::new(found.remove(0))),
        n => Lookup::Ambiguous(n),
    })
}

#[cfg(test)]
mod tests;
