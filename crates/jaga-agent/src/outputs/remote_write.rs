//! The remote-write exporter: sends the history's raw points to a
//! Prometheus remote-write receiver, oldest first, after a cursor kept in
//! the history database (the time of the next point to send). The cursor
//! moves only after the receiver took a request, so an outage or a
//! restart (SIGKILL included) resumes where it stopped and back-fills the
//! gap, at most `samples_per_second`. An outage deeper than the raw
//! retention is back-filled from the minute rollups (a point per minute,
//! the minute's averages) up to where raw points were kept.
//!
//! A gap longer than the raw retention goes out from the minute rollups
//! where the raw points were trimmed: one sample per minute and series
//! (the minute's mean, see [`rollup_as_point`]), still oldest first and
//! rate-limited, counted in `jaga_remote_write_rollup_samples_total`. A
//! part older than the rollups too is skipped and counted in
//! `jaga_remote_write_lost_seconds_total`.
//!
//! It shows itself as the output `remote_write` (kind
//! `prometheus_remote_write`) in /api/v1/outputs and the `jaga_output_*`
//! metrics: `delivered_alerts_total` counts samples there.

use std::sync::Arc;
use std::time::Duration;

use jaga_model::BackfillStats;
use jaga_outputs::remote_write::{
    rollup_as_point, series_of, ContainerPoint, RemoteWriteSettings, RemoteWriter,
};
use jaga_outputs::DeliveryError;
use jaga_store::{ExportedPoint, HistoryStore, StoreError};
use tokio::sync::watch;

use super::runner::{backoff, blocking, pause};
use super::status::{Delivered, OutputStatus, Retrying};
use crate::clock::unix_ms;

pub const NAME: &str = "remote_write";
pub const KIND: &str = "prometheus_remote_write";
const CURSOR: &str = "remote_write";
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

pub struct RemoteWrite {
    pub writer: RemoteWriter,
    pub settings: RemoteWriteSettings,
    pub store: Arc<HistoryStore>,
    pub instance: String,
    pub status: Arc<OutputStatus>,
}

/// Points per read: whole collection passes of the series that fit in a
/// request.
fn points_per_request(settings: &RemoteWriteSettings) -> usize {
    let series = jaga_model::HISTORY_SERIES.len() as u32;
    (settings.max_samples_per_request / series).max(1) as usize
}

/// The points that can go out as one request, and the cursor after them.
/// A full read may end inside one instant: those points are left for the
/// next read (which starts at that instant), unless the whole read is one
/// instant (more containers than fit a request), which then goes whole.
pub fn whole_instants(mut points: Vec<ExportedPoint>, full: bool) -> (Vec<ExportedPoint>, i64) {
    let Some(last) = points.last().map(|p| p.point.unix_ms) else {
        return (points, i64::MIN);
    };
    if full && points.first().map(|p| p.point.unix_ms) != Some(last) {
        points.retain(|p| p.point.unix_ms < last);
        return (points, last);
    }
    (points, last.saturating_add(1))
}

/// What goes out next.
#[derive(Debug)]
pub struct Batch {
    pub points: Vec<ExportedPoint>,
    /// The cursor once they are sent.
    pub next: i64,
    /// Made of minute rollups: the raw points of that time were trimmed.
    pub from_rollups: bool,
    /// History before `points` that the store no longer holds: skipped.
    pub lost_ms: i64,
}

/// The points to send from `cursor`: the raw points, or where they were
/// trimmed the minute rollups that stand for them.
pub fn read_batch(store: &HistoryStore, cursor: i64, limit: usize) -> Result<Batch, StoreError> {
    // Raw points first: a trim between the two reads can only move the
    // raw points' start later, so when the rollups are not needed after
    // the read, no raw point from `cursor` on was trimmed before it.
    let points = store.points_from(cursor, limit)?;
    if let Some(export) = store.rollups_to_export(cursor, limit)? {
        let points = export
            .rollups
            .into_iter()
            .map(|r| ExportedPoint {
                point: rollup_as_point(&r.rollup),
                id: r.id,
                name: r.name,
                image: r.image,
            })
            .collect();
        return Ok(Batch {
            points,
            next: export.next_ms,
            from_rollups: true,
            lost_ms: export.lost_ms,
        });
    }
    let full = points.len() == limit;
    let (points, next) = whole_instants(points, full);
    Ok(Batch {
        points,
        next,
        from_rollups: false,
        lost_ms: 0,
    })
}

impl RemoteWrite {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut cursor = match self.open_cursor(&mut shutdown).await {
            Some(cursor) => cursor,
            None => return,
        };
        self.status.update(|s| {
            s.state = "idle".to_owned();
            s.cursor = cursor;
            s.backfill.get_or_insert_with(BackfillStats::default);
        });
        let limit = points_per_request(&self.settings);
        loop {
            if *shutdown.borrow() {
                break;
            }
            let store = Arc::clone(&self.store);
            let read = blocking(move || read_batch(&store, cursor, limit)).await;
            let batch = match read {
                Ok(batch) => batch,
                Err(error) => {
                    self.failed(&format!("cannot read the history to send: {error}"));
                    if pause(BACKOFF_MAX, &mut shutdown).await {
                        break;
                    }
                    continue;
                }
            };
            let Batch {
                points,
                next,
                from_rollups,
                lost_ms,
            } = batch;
            if points.is_empty() && !from_rollups {
                self.status.update(|s| {
                    s.state = "idle".to_owned();
                    s.backlog = 0;
                });
                if pause(self.settings.every, &mut shutdown).await {
                    break;
                }
                continue;
            }
            let shown: Vec<ContainerPoint<'_>> = points
                .iter()
                .map(|p| ContainerPoint {
                    id: p.id.as_str(),
                    name: &p.name,
                    image: &p.image,
                    point: &p.point,
                })
                .collect();
            let series = series_of(&shown, &self.instance);
            let samples: usize = series.iter().map(|s| s.samples.len()).sum();
            // Taken, or refused for good (counted): either way passed. A
            // stretch with no rollups has nothing to send.
            if samples > 0 {
                match self.send(&series, samples, &mut shutdown).await {
                    None => break,
                    Some(true) if from_rollups => self.status.update(|s| {
                        let backfill = s.backfill.get_or_insert_with(BackfillStats::default);
                        backfill.rollup_samples_total += samples as u64;
                    }),
                    Some(_) => {}
                }
            }
            if lost_ms > 0 {
                self.lost(cursor, lost_ms);
            }
            cursor = next;
            let store = Arc::clone(&self.store);
            if let Err(error) = blocking(move || store.set_cursor(CURSOR, next)).await {
                // Sent stays sent; the next store of the cursor catches up.
                self.failed(&format!("cannot store the remote-write cursor: {error}"));
            }
            let behind_ms = unix_ms().saturating_sub(cursor).max(0);
            self.status.update(|s| {
                s.cursor = cursor;
                // Seconds of history not sent yet.
                s.backlog = (behind_ms / 1000) as u64;
            });
            // The rate limit: this request's share of a second.
            let wait = Duration::from_secs_f64(
                samples as f64 / f64::from(self.settings.samples_per_second.max(1)),
            );
            if pause(wait, &mut shutdown).await {
                break;
            }
        }
        self.status.update(|s| s.state = "stopped".to_owned());
    }

    /// Sends until the receiver takes or refuses the request: `Some(true)`
    /// taken, `Some(false)` refused for good, `None` shutdown.
    async fn send(
        &self,
        series: &[jaga_outputs::remote_write::Series],
        samples: usize,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<bool> {
        let mut attempt = 0u32;
        loop {
            attempt = attempt.saturating_add(1);
            let result = tokio::select! {
                result = self.writer.send(series) => result,
                _ = shutdown.changed() => return None,
            };
            match result {
                Ok(receipt) => {
                    Delivered {
                        alerts: samples,
                        answer: &receipt.answer,
                        stored_ms: &[],
                    }
                    .emit(&self.status);
                    return Some(true);
                }
                Err(DeliveryError::Permanent { reason, .. }) => {
                    tracing::warn!(output = NAME, samples, %reason, "remote-write receiver refused samples for good; skipping them");
                    self.status.update(|s| {
                        s.dead_lettered_total += samples as u64;
                        s.last_error = Some(reason.clone());
                        s.last_error_unix_ms = Some(unix_ms());
                    });
                    return Some(false);
                }
                Err(error @ DeliveryError::Transient { .. }) => {
                    let wait = backoff(attempt, BACKOFF_MIN, BACKOFF_MAX);
                    Retrying {
                        error: &error.to_string(),
                        attempt,
                        wait,
                    }
                    .emit(&self.status);
                    if pause(wait, shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// The stored cursor; on the first start, now (history from before the
    /// exporter was configured is not sent). `None`: shutdown.
    async fn open_cursor(&self, shutdown: &mut watch::Receiver<bool>) -> Option<i64> {
        loop {
            let store = Arc::clone(&self.store);
            let opened = blocking(move || match store.cursor(CURSOR)? {
                Some(cursor) => Ok(cursor),
                None => {
                    let now = unix_ms();
                    store.set_cursor(CURSOR, now)?;
                    Ok(now)
                }
            })
            .await;
            match opened {
                Ok(cursor) => return Some(cursor),
                Err(error) => self.failed(&format!("cannot read the remote-write cursor: {error}")),
            }
            if pause(BACKOFF_MAX, shutdown).await {
                return None;
            }
        }
    }

    /// History from `cursor` on, `lost_ms` long, that the store no
    /// longer held: skipped.
    fn lost(&self, cursor: i64, lost_ms: i64) {
        let seconds = u64::try_from(lost_ms).unwrap_or(0).div_ceil(1000);
        tracing::warn!(
            output = NAME,
            from_unix_ms = cursor,
            seconds,
            "remote-write back-fill skips history older than the rollups kept (history.rollup); those samples are lost"
        );
        self.status.update(|s| {
            let backfill = s.backfill.get_or_insert_with(BackfillStats::default);
            backfill.lost_seconds_total += seconds;
        });
    }

    fn failed(&self, error: &str) {
        tracing::warn!(output = NAME, %error, "remote write cannot use the history; trying again");
        self.status.update(|s| {
            s.last_error = Some(error.to_owned());
            s.last_error_unix_ms = Some(unix_ms());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jaga_model::{ContainerId, HistoryPoint};

    fn at(ms: i64, id: &str) -> ExportedPoint {
        ExportedPoint {
            id: ContainerId::new(id),
            name: id.to_owned(),
            image: String::new(),
            point: HistoryPoint {
                unix_ms: ms,
                values: [0.0; jaga_model::SERIES_COUNT],
            },
        }
    }

    #[test]
    fn a_full_read_leaves_its_last_instant_for_the_next_read() {
        let (kept, next) = whole_instants(vec![at(1, "a"), at(2, "a"), at(2, "b")], true);
        assert_eq!(kept.len(), 1);
        assert_eq!(next, 2);
        let (kept, next) = whole_instants(vec![at(1, "a"), at(2, "a")], false);
        assert_eq!((kept.len(), next), (2, 3));
        // One instant larger than a request still moves on.
        let (kept, next) = whole_instants(vec![at(5, "a"), at(5, "b")], true);
        assert_eq!((kept.len(), next), (2, 6));
        assert!(whole_instants(Vec::new(), true).0.is_empty());
    }
}
