//! Folding raw points and minute rollups into wider time buckets.

use jaga_model::{HistoryPoint, RollupPoint, SERIES_COUNT};

/// Floors `ts` to a multiple of `step` (`step > 0`), also for negative times.
pub(crate) fn floor_to(ts: i64, step: i64) -> i64 {
    ts.div_euclid(step).saturating_mul(step)
}

/// Smallest multiple of `step` (`step > 0`) that is `>= ts`.
pub(crate) fn ceil_to(ts: i64, step: i64) -> i64 {
    let floor = floor_to(ts, step);
    if floor == ts {
        floor
    } else {
        floor.saturating_add(step)
    }
}

/// One bucket being summed. NaN values count as missing: they do not move
/// min, max or the average, as SQLite's aggregates skip the NULL it stores
/// for NaN.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    count: u64,
    min: [f64; SERIES_COUNT],
    max: [f64; SERIES_COUNT],
    sum: [f64; SERIES_COUNT],
    weight: [f64; SERIES_COUNT],
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            count: 0,
            // `f64::min(NaN, x)` is `x`, so NaN is the neutral start.
            min: [f64::NAN; SERIES_COUNT],
            max: [f64::NAN; SERIES_COUNT],
            sum: [0.0; SERIES_COUNT],
            weight: [0.0; SERIES_COUNT],
        }
    }
}

impl Bucket {
    pub fn add_raw(&mut self, point: &HistoryPoint) {
        self.count += 1;
        for (i, &v) in point.values.iter().enumerate() {
            if v.is_nan() {
                continue;
            }
            self.min[i] = self.min[i].min(v);
            self.max[i] = self.max[i].max(v);
            self.sum[i] += v;
            self.weight[i] += 1.0;
        }
    }

    /// Adds a minute rollup; its average weighs as many raw points as it
    /// summarised. (A disk-usage series has a value in few of those points,
    /// so its minutes weigh alike whatever their number of walks: close
    /// enough for a figure that moves slowly.)
    pub fn add_rollup(&mut self, r: &RollupPoint) {
        self.count += u64::from(r.count);
        let weight = f64::from(r.count);
        for i in 0..SERIES_COUNT {
            self.min[i] = self.min[i].min(r.min[i]);
            self.max[i] = self.max[i].max(r.max[i]);
            if !r.avg[i].is_nan() && weight > 0.0 {
                self.sum[i] += r.avg[i] * weight;
                self.weight[i] += weight;
            }
        }
    }

    pub fn finish(&self, unix_ms: i64) -> RollupPoint {
        let mut avg = [f64::NAN; SERIES_COUNT];
        for (i, a) in avg.iter_mut().enumerate() {
            if self.weight[i] > 0.0 {
                *a = self.sum[i] / self.weight[i];
            }
        }
        RollupPoint {
            unix_ms,
            count: u32::try_from(self.count).unwrap_or(u32::MAX),
            min: self.min,
            avg,
            max: self.max,
        }
    }
}

/// A raw point as a bucket of one.
pub(crate) fn raw_as_rollup(point: &HistoryPoint) -> RollupPoint {
    RollupPoint {
        unix_ms: point.unix_ms,
        count: 1,
        min: point.values,
        avg: point.values,
        max: point.values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_and_ceil_handle_negative_times_and_extremes() {
        assert_eq!(floor_to(119_999, 60_000), 60_000);
        assert_eq!(floor_to(-1, 60_000), -60_000);
        assert_eq!(ceil_to(60_001, 60_000), 120_000);
        assert_eq!(ceil_to(60_000, 60_000), 60_000);
        assert_eq!(ceil_to(-1, 60_000), 0);
        // no overflow panic at the ends of the range
        let _ = floor_to(i64::MIN, 60_000);
        let _ = ceil_to(i64::MAX, 60_000);
    }

    #[test]
    fn nan_values_are_skipped_not_propagated() {
        let mut b = Bucket::default();
        let mut values = [1.0; SERIES_COUNT];
        values[0] = f64::NAN;
        b.add_raw(&HistoryPoint { unix_ms: 0, values });
        values[0] = 4.0;
        b.add_raw(&HistoryPoint { unix_ms: 1, values });
        let r = b.finish(0);
        assert_eq!(r.count, 2);
        assert_eq!((r.min[0], r.avg[0], r.max[0]), (4.0, 4.0, 4.0));
        assert_eq!((r.min[1], r.avg[1], r.max[1]), (1.0, 1.0, 1.0));
    }

    #[test]
    fn all_nan_series_stays_nan() {
        let mut b = Bucket::default();
        b.add_raw(&HistoryPoint {
            unix_ms: 0,
            values: [f64::NAN; SERIES_COUNT],
        });
        let r = b.finish(0);
        assert_eq!(r.count, 1);
        assert!(r.min[3].is_nan() && r.avg[3].is_nan() && r.max[3].is_nan());
    }
}
