//! Writes one simulated hour of history for 100 containers at a 1 s
//! interval (3600 passes of 100 points, one transaction each), rolls it up,
//! and prints the time taken and the size of the files. Then a second hour
//! runs as `jaga serve` would, with `roll_up` and `trim` once a minute, to
//! show the steady-state size (raw points of one hour are trimmed and their
//! pages reused).
//!
//! ```text
//! cargo run --release -p jaga-store --example write_rate [DIR]
//! ```
//!
//! Without `DIR` a temporary directory is used and removed afterwards.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use jaga_model::{ContainerId, HistoryPoint};
use jaga_store::{HistoryStore, Retention};

const CONTAINERS: u64 = 100;
const PASSES: i64 = 3600;
const START_MS: i64 = 1_700_000_040_000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Figures shaped like real ones: half the containers busy with fractional
/// CPU and network rates, half idle (zero rates); memory in whole pages;
/// block I/O mostly zero; a limit on a third of them.
fn values(c: u64, rng: &mut Rng) -> [f64; jaga_model::SERIES_COUNT] {
    let busy = c.is_multiple_of(2);
    let page = 4096.0;
    let memory = 50_000_000.0 + (c as f64) * 1000.0 * page + (rng.next() % 4096) as f64 * page;
    let working_set = memory - (rng.next() % 1000) as f64 * page;
    let rate = |rng: &mut Rng| if busy { rng.unit() * 1e5 } else { 0.0 };
    let block = |rng: &mut Rng, p: f64| {
        if rng.unit() < p {
            (1 + rng.next() % 100) as f64 * page
        } else {
            0.0
        }
    };
    [
        if busy {
            rng.unit() * 40.0
        } else {
            rng.unit() * 0.2
        },
        memory,
        working_set,
        rate(rng),
        rate(rng),
        block(rng, 0.1),
        block(rng, 0.2),
        (1 + rng.next() % 30) as f64,
        if c.is_multiple_of(3) {
            536_870_912.0
        } else {
            0.0
        },
        // Disk usage: missing between filesystem walks, as in 59 of 60
        // points at the default cadence.
        f64::NAN,
        f64::NAN,
        f64::NAN,
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let store = HistoryStore::open(&dir, Retention::default())?;
    let ids: Vec<ContainerId> = (0..CONTAINERS)
        .map(|c| ContainerId::new(format!("{c:064x}")))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let mut batch = Vec::with_capacity(ids.len());
    let mut slowest = Duration::ZERO;
    let mut writing = Duration::ZERO;
    for pass in 0..PASSES {
        let t = write_pass(&store, &ids, &mut rng, &mut batch, pass)?;
        writing += t;
        slowest = slowest.max(t);
    }
    let before_rollup = store.disk_bytes();

    let t = Instant::now();
    let rollups = store.roll_up(START_MS + PASSES * 1000)?;
    let rolling = t.elapsed();

    let t = Instant::now();
    let mut read = 0;
    for id in &ids {
        read += store
            .range(id, START_MS, START_MS + PASSES * 1000, 60_000)?
            .len();
    }
    let reading = t.elapsed();

    store.checkpoint()?;
    let after = store.disk_bytes();

    // Second hour: write, and every minute roll up and trim.
    let mut maintenance = Duration::ZERO;
    let mut slowest_maintenance = Duration::ZERO;
    let mut trimmed = 0;
    for pass in PASSES..2 * PASSES {
        write_pass(&store, &ids, &mut rng, &mut batch, pass)?;
        if (pass + 1) % 60 == 0 {
            let t = Instant::now();
            let now = START_MS + (pass + 1) * 1000;
            store.roll_up(now)?;
            trimmed += store.trim(now)?.raw_deleted;
            let took = t.elapsed();
            maintenance += took;
            slowest_maintenance = slowest_maintenance.max(took);
        }
    }
    store.checkpoint()?;
    let steady = store.disk_bytes();

    let points = CONTAINERS as i64 * PASSES;
    println!("points written:      {points} ({CONTAINERS} containers x {PASSES} passes)");
    println!(
        "write time:          {:.2?} total, {:.1?} per pass of {CONTAINERS} points, slowest {:.2?}",
        writing,
        writing / PASSES as u32,
        slowest
    );
    println!("db+wal after writes: {} bytes", before_rollup);
    println!("roll_up:             {rollups} minute rows in {rolling:.2?}");
    println!("range (step 60 s):   {read} buckets for {CONTAINERS} containers in {reading:.2?}");
    println!(
        "db after checkpoint: {after} bytes ({:.1} bytes per raw point incl. rollups)",
        after as f64 / points as f64
    );
    println!(
        "second hour:         roll_up+trim every minute took {:.1?} on average, slowest {:.1?}; {trimmed} raw points trimmed",
        maintenance / 60,
        slowest_maintenance
    );
    println!("db after 2 hours:    {steady} bytes (1 h of raw points + 2 h of minute rollups)");
    Ok(())
}

/// Writes one collection pass: a point for every container at `pass` seconds.
fn write_pass(
    store: &HistoryStore,
    ids: &[ContainerId],
    rng: &mut Rng,
    batch: &mut Vec<(ContainerId, HistoryPoint)>,
    pass: i64,
) -> Result<Duration, jaga_store::StoreError> {
    let unix_ms = START_MS + pass * 1000;
    batch.clear();
    for (c, id) in ids.iter().enumerate() {
        let values = values(c as u64, rng);
        batch.push((id.clone(), HistoryPoint { unix_ms, values }));
    }
    let t = Instant::now();
    store.write_points(batch)?;
    Ok(t.elapsed())
}
