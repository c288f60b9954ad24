use std::collections::BTreeMap;
use std::time::Duration;

use jaga_model::{
    ContainerId, ContainerRef, ContainerState, HistoryPoint, RollupPoint, FS_SERIES_START,
    SERIES_COUNT,
};
use rusqlite::Connection;

use super::*;
use crate::SCHEMA_VERSION;

/// A minute boundary (and a multiple of 120 s).
const T0: i64 = 1_700_000_040_000;
const MIN: i64 = 60_000;
const SEC: i64 = 1_000;

fn cid(hex: &str) -> ContainerId {
    ContainerId::new(format!("{hex:0<64}"))
}

/// Series `i` holds `cpu * (i + 1)`, so every column is checked.
fn point(unix_ms: i64, cpu: f64) -> HistoryPoint {
    let mut values = [0.0; SERIES_COUNT];
    for (i, v) in values.iter_mut().enumerate() {
        *v = cpu * (i as f64 + 1.0);
    }
    HistoryPoint { unix_ms, values }
}

fn series(x: f64) -> [f64; SERIES_COUNT] {
    point(0, x).values
}

fn rollup(unix_ms: i64, count: u32, min: f64, avg: f64, max: f64) -> RollupPoint {
    RollupPoint {
        unix_ms,
        count,
        min: series(min),
        avg: series(avg),
        max: series(max),
    }
}

fn container_ref(id: &ContainerId, name: &str, state: ContainerState) -> ContainerRef {
    ContainerRef {
        id: id.clone(),
        name: name.to_owned(),
        image: "nginx:1.25".to_owned(),
        labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
        state,
        pid: None,
        network_mode: "bridge".to_owned(),
        created: 0,
        started_at: None,
        restart_policy: None,
        health: None,
        exit_code: None,
    }
}

fn open(dir: &tempfile::TempDir) -> HistoryStore {
    HistoryStore::open(dir.path(), Retention::default()).unwrap()
}

fn open_with(dir: &tempfile::TempDir, raw: Duration, rollup: Duration) -> HistoryStore {
    HistoryStore::open(dir.path(), Retention { raw, rollup }).unwrap()
}

/// Minute T0: cpu 1, 2, 6 (avg 3). Minute T0+1: cpu 10, 20 (avg 15).
/// Minute T0+2 (incomplete at T0+2m30s): cpu 100.
fn write_three_minutes(store: &HistoryStore, id: &ContainerId) {
    let pts = [
        (T0, 1.0),
        (T0 + 10 * SEC, 2.0),
        (T0 + 20 * SEC, 6.0),
        (T0 + MIN, 10.0),
        (T0 + MIN + 10 * SEC, 20.0),
        (T0 + 2 * MIN, 100.0),
    ];
    let batch: Vec<_> = pts
        .iter()
        .map(|&(t, v)| (id.clone(), point(t, v)))
        .collect();
    assert_eq!(store.write_points(&batch).unwrap(), 6);
}

fn expected_first_two_minutes() -> Vec<RollupPoint> {
    vec![
        rollup(T0, 3, 1.0, 3.0, 6.0),
        rollup(T0 + MIN, 2, 10.0, 15.0, 20.0),
    ]
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HistoryStore>();
}

#[test]
fn roll_up_gives_exact_min_avg_max_count_per_complete_minute() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    write_three_minutes(&store, &a);

    assert_eq!(store.roll_up(T0 + 2 * MIN + 30 * SEC).unwrap(), 2);
    assert_eq!(
        store.minute_rollups(&a, i64::MIN, i64::MAX).unwrap(),
        expected_first_two_minutes(),
        "the current minute (T0+2m) is not complete and must not be rolled"
    );
}

#[test]
fn roll_up_twice_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    write_three_minutes(&store, &a);
    let now = T0 + 2 * MIN + 30 * SEC;
    assert_eq!(store.roll_up(now).unwrap(), 2);
    assert_eq!(store.roll_up(now).unwrap(), 0);
    assert_eq!(store.roll_up(now + 10 * SEC).unwrap(), 0);
    assert_eq!(
        store.minute_rollups(&a, i64::MIN, i64::MAX).unwrap(),
        expected_first_two_minutes()
    );

    // and after a restart
    drop(store);
    let store = open(&dir);
    assert_eq!(store.roll_up(now).unwrap(), 0);
    assert_eq!(
        store.minute_rollups(&a, i64::MIN, i64::MAX).unwrap(),
        expected_first_two_minutes()
    );
    // the next minute completes: only it is added
    assert_eq!(store.roll_up(T0 + 3 * MIN).unwrap(), 1);
    let rows = store.minute_rollups(&a, i64::MIN, i64::MAX).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2], rollup(T0 + 2 * MIN, 1, 100.0, 100.0, 100.0));
}

#[test]
fn late_point_in_a_rolled_minute_is_rolled_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    write_three_minutes(&store, &a);
    store.roll_up(T0 + 2 * MIN + 30 * SEC).unwrap();

    store
        .write_points(&[(a.clone(), point(T0 + 30 * SEC, 3.0))])
        .unwrap();
    assert_eq!(store.roll_up(T0 + 2 * MIN + 40 * SEC).unwrap(), 2);
    assert_eq!(
        store.minute_rollups(&a, i64::MIN, i64::MAX).unwrap(),
        vec![
            rollup(T0, 4, 1.0, 3.0, 6.0),
            rollup(T0 + MIN, 2, 10.0, 15.0, 20.0),
        ]
    );
}

#[test]
fn trim_removes_exactly_what_is_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, Duration::from_secs(600), Duration::from_secs(3600));
    let now = T0 + 120 * MIN;
    let (a, b, c, d) = (cid("a1"), cid("b2"), cid("c3"), cid("d4"));
    store
        .upsert_containers(
            &[
                container_ref(&b, "old-with-data", ContainerState::Exited),
                container_ref(&c, "old-no-data", ContainerState::Exited),
            ],
            T0,
        )
        .unwrap();
    store
        .upsert_containers(
            &[container_ref(&d, "current", ContainerState::Running)],
            now,
        )
        .unwrap();
    store
        .write_points(&[
            (a.clone(), point(T0, 1.0)),                 // past both retentions
            (a.clone(), point(T0 + 90 * MIN, 2.0)),      // raw gone, rollup kept
            (a.clone(), point(T0 + 115 * MIN, 3.0)),     // both kept
            (b.clone(), point(T0, 4.0)),                 // past both retentions
            (a.clone(), point(now - 10 * MIN, 5.0)),     // exactly at the raw edge: kept
            (a.clone(), point(now - 10 * MIN - 1, 6.0)), // 1 ms past it: deleted
        ])
        .unwrap();

    let report = store.trim(now).unwrap();
    assert_eq!(
        report,
        TrimReport {
            raw_deleted: 4,
            rollups_deleted: 2,
            containers_deleted: 2,
        }
    );
    let raw: Vec<i64> = store
        .range(&a, i64::MIN, i64::MAX, 0)
        .unwrap()
        .iter()
        .map(|p| p.unix_ms)
        .collect();
    assert_eq!(raw, vec![now - 10 * MIN, T0 + 115 * MIN]);
    let rollups: Vec<(i64, u32)> = store
        .minute_rollups(&a, i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|r| (r.unix_ms, r.count))
        .collect();
    assert_eq!(
        rollups,
        vec![
            (T0 + 90 * MIN, 1),
            (now - 11 * MIN, 1),
            (now - 10 * MIN, 1),
            (T0 + 115 * MIN, 1),
        ]
    );
    assert!(store.container(b.as_str()).unwrap().is_none());
    assert!(store.container(c.as_str()).unwrap().is_none());
    assert!(store.container(d.as_str()).unwrap().is_some());
    assert!(store.container(a.as_str()).unwrap().is_some());

    assert_eq!(store.trim(now).unwrap(), TrimReport::default());
}

#[test]
fn trim_never_deletes_raw_points_not_rolled_up() {
    let dir = tempfile::tempdir().unwrap();
    // raw retention shorter than a minute
    let store = open_with(&dir, Duration::from_secs(1), Duration::from_secs(3600));
    let a = cid("a1");
    store
        .write_points(&[(a.clone(), point(T0 + 10 * SEC, 1.0))])
        .unwrap();
    let report = store.trim(T0 + 30 * SEC).unwrap();
    assert_eq!(report.raw_deleted, 0, "minute T0 is not complete yet");
    assert_eq!(store.range(&a, i64::MIN, i64::MAX, 0).unwrap().len(), 1);
}

#[test]
fn late_point_older_than_trimmed_raw_is_dropped_not_folded_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, Duration::from_secs(600), Duration::from_secs(3600));
    let a = cid("a1");
    write_three_minutes(&store, &a);
    store.trim(T0 + 30 * MIN).unwrap();
    assert_eq!(
        store
            .write_points(&[(a.clone(), point(T0 + 5 * SEC, 50.0))])
            .unwrap(),
        0
    );
    store.roll_up(T0 + 31 * MIN).unwrap();
    assert_eq!(
        store.minute_rollups(&a, T0, T0 + MIN).unwrap(),
        expected_first_two_minutes()
    );
}

#[test]
fn points_rollups_and_containers_survive_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = cid("a1");
    {
        let store = open(&dir);
        store
            .upsert_containers(&[container_ref(&a, "web", ContainerState::Running)], T0)
            .unwrap();
        write_three_minutes(&store, &a);
        store.roll_up(T0 + 2 * MIN + 30 * SEC).unwrap();
    }
    let store = open(&dir);
    assert_eq!(store.range(&a, i64::MIN, i64::MAX, 0).unwrap().len(), 6);
    assert_eq!(
        store.minute_rollups(&a, i64::MIN, i64::MAX).unwrap(),
        expected_first_two_minutes()
    );
    assert_eq!(
        store.latest_point(&a).unwrap(),
        Some(point(T0 + 2 * MIN, 100.0))
    );
    assert_eq!(store.container("web").unwrap().unwrap().id, a);
}

#[test]
fn range_with_step_zero_returns_raw_points() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    write_three_minutes(&store, &a);
    let got = store.range(&a, T0 + 10 * SEC, T0 + MIN, 0).unwrap();
    assert_eq!(
        got,
        vec![
            rollup(T0 + 10 * SEC, 1, 2.0, 2.0, 2.0),
            rollup(T0 + 20 * SEC, 1, 6.0, 6.0, 6.0),
            rollup(T0 + MIN, 1, 10.0, 10.0, 10.0),
        ]
    );
}

#[test]
fn range_inside_raw_window_with_step_within_spacing_returns_raw() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    let batch: Vec<_> = (0..6)
        .map(|i| (a.clone(), point(T0 + i * 10 * SEC, i as f64)))
        .collect();
    store.write_points(&batch).unwrap();
    let got = store.range(&a, T0, T0 + MIN, 5 * SEC).unwrap();
    assert_eq!(got.len(), 6);
    assert!(got.iter().all(|p| p.count == 1));
    assert_eq!(got[5].unix_ms, T0 + 50 * SEC);
}

#[test]
fn range_step_wider_than_spacing_buckets_raw_points() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    write_three_minutes(&store, &a);
    assert_eq!(
        store.range(&a, T0, T0 + MIN + 59 * SEC, MIN).unwrap(),
        expected_first_two_minutes()
    );
    // (1 + 2 + 6 + 10 + 20) / 5
    assert_eq!(
        store.range(&a, T0, T0 + MIN + 59 * SEC, 2 * MIN).unwrap(),
        vec![rollup(T0, 5, 1.0, 39.0 / 5.0, 20.0)]
    );
}

#[test]
fn range_older_than_raw_window_uses_rollups_and_weights_avg_by_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, Duration::from_secs(600), Duration::from_secs(86_400));
    let a = cid("a1");
    write_three_minutes(&store, &a);
    let report = store.trim(T0 + 30 * MIN).unwrap();
    assert_eq!(report.raw_deleted, 6);
    assert!(store.range(&a, T0, T0 + 3 * MIN, 0).unwrap().is_empty());

    assert_eq!(
        store.range(&a, T0, T0 + MIN + 59 * SEC, MIN).unwrap(),
        expected_first_two_minutes()
    );
    // weighted: (3 * 3 + 15 * 2) / 5 = 7.8, where the mean of the means is 9
    assert_eq!(
        store.range(&a, T0, T0 + MIN + 59 * SEC, 2 * MIN).unwrap(),
        vec![rollup(T0, 5, 1.0, 39.0 / 5.0, 20.0)]
    );
}

#[test]
fn bucket_across_the_raw_edge_counts_every_point_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, Duration::from_secs(600), Duration::from_secs(86_400));
    let a = cid("a1");
    // one point every 10 s for 20 minutes, cpu = 1
    let batch: Vec<_> = (0..120)
        .map(|i| (a.clone(), point(T0 + i * 10 * SEC, 1.0)))
        .collect();
    store.write_points(&batch).unwrap();
    let now = T0 + 20 * MIN + 5 * SEC;
    let report = store.trim(now).unwrap();
    assert!(report.raw_deleted > 0);
    let hour = 60 * MIN;
    let got = store.range(&a, T0, now, 10 * hour).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].count, 120);
    assert_eq!(got[0].avg, series(1.0));
    assert_eq!(got[0].unix_ms, floor_to(T0, 10 * hour));
}

#[test]
fn unknown_container_has_no_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write_three_minutes(&store, &cid("a1"));
    let nobody = cid("ff");
    assert!(store
        .range(&nobody, i64::MIN, i64::MAX, 0)
        .unwrap()
        .is_empty());
    assert!(store
        .range(&nobody, i64::MIN, i64::MAX, MIN)
        .unwrap()
        .is_empty());
    assert_eq!(store.latest_point(&nobody).unwrap(), None);
    assert!(store.container("nobody").unwrap().is_none());
}

#[test]
fn container_lookup_by_full_id_name_and_unique_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let web = cid("abc123def456");
    let db = cid("abc999");
    store
        .upsert_containers(
            &[
                container_ref(&web, "/web", ContainerState::Running),
                container_ref(&db, "db", ContainerState::Exited),
            ],
            T0,
        )
        .unwrap();
    let by_id = store.container(web.as_str()).unwrap().unwrap();
    assert_eq!(
        by_id,
        StoredContainer {
            id: web.clone(),
            name: "web".to_owned(),
            image: "nginx:1.25".to_owned(),
            labels: BTreeMap::from([("app".to_owned(), "web".to_owned())]),
            state: "running".to_owned(),
            first_seen_unix_ms: T0,
            last_seen_unix_ms: T0,
        }
    );
    assert_eq!(store.container("web").unwrap().unwrap().id, web);
    assert_eq!(store.container("/web").unwrap().unwrap().id, web);
    assert_eq!(store.container(web.short()).unwrap().unwrap().id, web);
    assert_eq!(store.container("abc9").unwrap().unwrap().id, db);
    assert!(store.container("0123").unwrap().is_none());
    assert!(store.container("").unwrap().is_none());
    let err = store.container("abc").unwrap_err();
    assert!(
        matches!(err, StoreError::AmbiguousContainer { count: 2, .. }),
        "{err}"
    );
}

#[test]
fn upsert_keeps_first_seen_and_moves_last_seen_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    store
        .upsert_containers(&[container_ref(&a, "web", ContainerState::Running)], T0)
        .unwrap();
    store
        .upsert_containers(
            &[container_ref(&a, "web2", ContainerState::Exited)],
            T0 + MIN,
        )
        .unwrap();
    // an older pass arriving late does not move last_seen back
    store
        .upsert_containers(&[container_ref(&a, "web2", ContainerState::Exited)], T0 + 1)
        .unwrap();
    let c = store.container(a.as_str()).unwrap().unwrap();
    assert_eq!((c.name.as_str(), c.state.as_str()), ("web2", "exited"));
    assert_eq!((c.first_seen_unix_ms, c.last_seen_unix_ms), (T0, T0 + MIN));
}

#[test]
fn points_for_an_unseen_container_create_a_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    store.write_points(&[(a.clone(), point(T0, 1.0))]).unwrap();
    let c = store.container(a.as_str()).unwrap().unwrap();
    assert_eq!(c.name, a.short());
    assert_eq!((c.first_seen_unix_ms, c.last_seen_unix_ms), (T0, T0));
    store
        .upsert_containers(
            &[container_ref(&a, "web", ContainerState::Running)],
            T0 + MIN,
        )
        .unwrap();
    let c = store.container("web").unwrap().unwrap();
    assert_eq!((c.first_seen_unix_ms, c.last_seen_unix_ms), (T0, T0 + MIN));
}

#[test]
fn containers_since_lists_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b, c) = (cid("a1"), cid("b2"), cid("c3"));
    store
        .upsert_containers(&[container_ref(&a, "old", ContainerState::Exited)], T0)
        .unwrap();
    store
        .upsert_containers(&[container_ref(&b, "b", ContainerState::Running)], T0 + MIN)
        .unwrap();
    store
        .upsert_containers(
            &[container_ref(&c, "c", ContainerState::Running)],
            T0 + 2 * MIN,
        )
        .unwrap();
    let names: Vec<String> = store
        .containers_since(T0 + MIN)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["c", "b"]);
}

#[test]
fn nan_values_round_trip_and_are_skipped_by_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    let mut p1 = point(T0, 1.0);
    p1.values[0] = f64::NAN;
    p1.values[8] = f64::NAN;
    let mut p2 = point(T0 + SEC, 3.0);
    p2.values[8] = f64::NAN;
    store
        .write_points(&[(a.clone(), p1), (a.clone(), p2)])
        .unwrap();
    let raw = store.range(&a, T0, T0, 0).unwrap();
    assert!(raw[0].avg[0].is_nan());
    assert_eq!(raw[0].avg[1], 2.0);

    store.roll_up(T0 + MIN).unwrap();
    let r = store.minute_rollups(&a, T0, T0).unwrap()[0];
    assert_eq!(r.count, 2);
    assert_eq!((r.min[0], r.avg[0], r.max[0]), (3.0, 3.0, 3.0));
    assert_eq!((r.min[1], r.avg[1], r.max[1]), (2.0, 4.0, 6.0));
    assert!(r.min[8].is_nan() && r.avg[8].is_nan() && r.max[8].is_nan());
}

#[test]
fn second_connection_sees_committed_points_while_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(&dir);
    let a = cid("a1");
    write_three_minutes(&first, &a);

    // a plain SQLite connection, as after a crash of the writer
    let raw = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let n: i64 = raw
        .query_row("SELECT COUNT(*) FROM raw", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 6);

    let second = open(&dir);
    assert_eq!(second.range(&a, i64::MIN, i64::MAX, 0).unwrap().len(), 6);
    second
        .write_points(&[(a.clone(), point(T0 + 3 * MIN, 7.0))])
        .unwrap();
    assert_eq!(
        first.latest_point(&a).unwrap(),
        Some(point(T0 + 3 * MIN, 7.0))
    );
}

#[test]
fn newer_schema_version_is_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(&dir));
    let path = dir.path().join(FILE_NAME);
    Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE meta SET value = 99 WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    let err = HistoryStore::open(dir.path(), Retention::default()).unwrap_err();
    assert!(
        matches!(&err, StoreError::SchemaVersion { found, supported: SCHEMA_VERSION, .. } if found == "99"),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn file_that_is_not_a_database_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = HistoryStore::open(dir.path(), Retention::default()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn directory_that_cannot_be_created_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = HistoryStore::open(&file.join("sub"), Retention::default()).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    assert!(err.to_string().contains("sub"), "{err}");
}

#[test]
fn bad_data_in_the_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    store
        .upsert_containers(&[container_ref(&a, "web", ContainerState::Running)], T0)
        .unwrap();
    write_three_minutes(&store, &a);
    store.roll_up(T0 + 2 * MIN + 30 * SEC).unwrap();
    let raw = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    raw.execute_batch(
        "UPDATE containers SET labels = 'not json';
         UPDATE raw SET cpu_percent = 'abc' WHERE ts = 1700000040000;
         UPDATE rollup_1m SET count = -1;",
    )
    .unwrap();

    let err = store.container("web").unwrap_err();
    assert!(err.to_string().contains(FILE_NAME), "{err}");
    assert!(err.to_string().contains("'web'"), "{err}");
    let err = store.range(&a, i64::MIN, i64::MAX, 0).unwrap_err();
    assert!(err.to_string().contains(a.as_str()), "{err}");
    assert!(store.minute_rollups(&a, i64::MIN, i64::MAX).is_err());
    assert!(store.containers_since(0).is_err());
}

#[test]
fn checkpoint_empties_the_wal_and_disk_bytes_counts_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    write_three_minutes(&store, &cid("a1"));
    let mut wal = dir.path().join(FILE_NAME).into_os_string();
    wal.push("-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    let before = store.disk_bytes();
    assert!(before > 0);
    store.checkpoint().unwrap();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    assert_eq!(
        store.disk_bytes(),
        std::fs::metadata(store.path()).unwrap().len()
    );
}

#[test]
fn integral_values_are_stored_as_integers_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    let values = [
        12.5,
        52_428_800.0,
        -0.0,
        1e20,
        f64::INFINITY,
        f64::NEG_INFINITY,
        9_007_199_254_740_992.0,
        0.1,
        -3.0,
        4096.0,
        f64::NAN,
        0.0,
    ];
    store
        .write_points(&[(
            a.clone(),
            HistoryPoint {
                unix_ms: T0,
                values,
            },
        )])
        .unwrap();
    let back = store.latest_point(&a).unwrap().unwrap();
    assert_eq!(back.unix_ms, T0);
    // NaN != NaN: a missing value must come back missing.
    for (i, (got, sent)) in back.values.iter().zip(values).enumerate() {
        assert!(
            *got == sent || (got.is_nan() && sent.is_nan()),
            "series {i}: {got} for {sent}"
        );
    }
    let raw = Connection::open(dir.path().join(FILE_NAME)).unwrap();
    let types: (String, String, String) = raw
        .query_row(
            "SELECT typeof(cpu_percent), typeof(memory_usage_bytes), \
             typeof(network_rx_bytes_per_second) FROM raw",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        types,
        ("real".to_owned(), "integer".to_owned(), "real".to_owned())
    );
}

#[test]
fn points_from_pages_by_time_with_their_container_and_cursors_persist() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (a, b) = (cid("a"), cid("b"));
    store
        .upsert_containers(&[container_ref(&a, "web", ContainerState::Running)], T0)
        .unwrap();
    store
        .write_points(&[
            (b.clone(), point(T0 + SEC, 2.0)),
            (a.clone(), point(T0, 1.0)),
            (a.clone(), point(T0 + SEC, 3.0)),
        ])
        .unwrap();
    let first = store.points_from(T0, 2).unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(
        (first[0].name.as_str(), first[0].point.unix_ms),
        ("web", T0)
    );
    assert_eq!(first[0].image, "nginx:1.25");
    assert_eq!(first[1].point.unix_ms, T0 + SEC);
    let rest = store.points_from(T0 + SEC, 10).unwrap();
    assert_eq!(rest.len(), 2);
    assert!(store.points_from(T0 + 2 * SEC, 10).unwrap().is_empty());

    assert_eq!(store.cursor("remote_write").unwrap(), None);
    store.set_cursor("remote_write", T0 + SEC).unwrap();
    drop(store);
    let store = open(&dir);
    assert_eq!(store.cursor("remote_write").unwrap(), Some(T0 + SEC));
}

/// Two containers, a point every 20 s over `[T0, T0 + 90 min)` but none
/// in `[T0 + 50 min, T0 + 60 min)`; cpu = the minute's index plus the
/// second's tenth, so a minute's average is its index + 2.
fn write_ninety_minutes(store: &HistoryStore, ids: &[&ContainerId]) {
    let mut batch = Vec::new();
    for minute in (0..90).filter(|m| !(50..60).contains(m)) {
        for second in [0, 20, 40] {
            let t = T0 + minute * MIN + second * SEC;
            for id in ids {
                batch.push((
                    (*id).clone(),
                    point(t, minute as f64 + second as f64 / 10.0),
                ));
            }
        }
    }
    store.write_points(&batch).unwrap();
}

#[test]
fn rollups_to_export_stand_for_trimmed_raw_points_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    // Raw points from T0 + 79m30s on, rollups from T0 + 30m on.
    let store = open_with(&dir, Duration::from_secs(630), Duration::from_secs(3600));
    let (a, b) = (cid("a1"), cid("b2"));
    store
        .upsert_containers(&[container_ref(&a, "web", ContainerState::Running)], T0)
        .unwrap();
    write_ninety_minutes(&store, &[&a, &b]);
    let now = T0 + 90 * MIN;
    store.trim(now).unwrap();

    // The cursor in the middle of minute 5: minutes 6 to 29 are gone.
    let mut from = T0 + 5 * MIN + 30 * SEC;
    let mut minutes = Vec::new();
    let mut lost = 0;
    let mut reads = 0;
    while let Some(export) = store.rollups_to_export(from, 20).unwrap() {
        reads += 1;
        assert!(export.rollups.len() <= 20, "{}", export.rollups.len());
        assert!(export.next_ms > from);
        for r in &export.rollups {
            assert!(r.rollup.unix_ms >= from && r.rollup.unix_ms < export.next_ms);
            if r.id == a {
                assert_eq!((r.name.as_str(), r.image.as_str()), ("web", "nginx:1.25"));
                let minute = (r.rollup.unix_ms - T0) / MIN;
                assert_eq!(r.rollup.count, 3);
                assert_eq!(r.rollup.avg, series(minute as f64 + 2.0));
                minutes.push(minute);
            }
        }
        lost += export.lost_ms;
        from = export.next_ms;
        assert!(reads < 100, "no end to the rollups");
    }
    assert_eq!(lost, 30 * MIN - (5 * MIN + 30 * SEC));
    // Ten minutes a read (20 rollups of 2 containers), oldest first, the
    // hole crossed in one read, up to the minute where raw points start.
    let expected: Vec<i64> = (30..50).chain(60..80).collect();
    assert_eq!(minutes, expected);
    assert_eq!(reads, 4);
    // The raw points go on from the first whole minute of them.
    assert_eq!(from, T0 + 80 * MIN);
    assert_eq!(store.points_from(from, 1).unwrap()[0].point.unix_ms, from);

    // A cursor inside the rollup era: from the next whole minute, nothing lost.
    let export = store
        .rollups_to_export(T0 + 45 * MIN + 10 * SEC, 1)
        .unwrap()
        .unwrap();
    assert_eq!(export.lost_ms, 0);
    // One minute at least, whole, however many containers it has.
    assert_eq!(export.rollups.len(), 2);
    assert_eq!(export.rollups[0].rollup.unix_ms, T0 + 46 * MIN);
    assert_eq!(export.next_ms, T0 + 47 * MIN);
}

#[test]
fn rollups_to_export_is_none_while_raw_points_cover_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, Duration::from_secs(600), Duration::from_secs(3600));
    let a = cid("a1");
    write_ninety_minutes(&store, &[&a]);
    // Never trimmed: every raw point is there.
    assert_eq!(store.rollups_to_export(T0, 100).unwrap(), None);
    store.trim(T0 + 90 * MIN).unwrap();
    assert_eq!(store.rollups_to_export(T0 + 80 * MIN, 100).unwrap(), None);
    assert!(store
        .rollups_to_export(T0 + 80 * MIN - 1, 100)
        .unwrap()
        .is_some());
}

/// `history.sqlite3` as schema version 1 created it (the nine resource
/// series), frozen here so the migration is tested against the old layout
/// and not against whatever the code creates today.
const SCHEMA_V1: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL) WITHOUT ROWID;
CREATE TABLE containers (
    key INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
    image TEXT NOT NULL, labels TEXT NOT NULL, state TEXT NOT NULL,
    first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL
);
CREATE TABLE raw (
    ts INTEGER NOT NULL, ck INTEGER NOT NULL,
    cpu_percent NUMERIC, memory_usage_bytes NUMERIC, memory_working_set_bytes NUMERIC,
    network_rx_bytes_per_second NUMERIC, network_tx_bytes_per_second NUMERIC,
    block_read_bytes_per_second NUMERIC, block_write_bytes_per_second NUMERIC,
    pids NUMERIC, memory_limit_bytes NUMERIC,
    PRIMARY KEY (ts, ck)
) WITHOUT ROWID;
CREATE TABLE rollup_1m (
    ck INTEGER NOT NULL, ts INTEGER NOT NULL, count INTEGER NOT NULL,
    min_cpu_percent NUMERIC, min_memory_usage_bytes NUMERIC, min_memory_working_set_bytes NUMERIC,
    min_network_rx_bytes_per_second NUMERIC, min_network_tx_bytes_per_second NUMERIC,
    min_block_read_bytes_per_second NUMERIC, min_block_write_bytes_per_second NUMERIC,
    min_pids NUMERIC, min_memory_limit_bytes NUMERIC,
    avg_cpu_percent NUMERIC, avg_memory_usage_bytes NUMERIC, avg_memory_working_set_bytes NUMERIC,
    avg_network_rx_bytes_per_second NUMERIC, avg_network_tx_bytes_per_second NUMERIC,
    avg_block_read_bytes_per_second NUMERIC, avg_block_write_bytes_per_second NUMERIC,
    avg_pids NUMERIC, avg_memory_limit_bytes NUMERIC,
    max_cpu_percent NUMERIC, max_memory_usage_bytes NUMERIC, max_memory_working_set_bytes NUMERIC,
    max_network_rx_bytes_per_second NUMERIC, max_network_tx_bytes_per_second NUMERIC,
    max_block_read_bytes_per_second NUMERIC, max_block_write_bytes_per_second NUMERIC,
    max_pids NUMERIC, max_memory_limit_bytes NUMERIC,
    PRIMARY KEY (ck, ts)
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('schema_version', 1);
";

fn columns(conn: &Connection, table: &str) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// A point with the resource series of [`point`] and, when `disk` is
/// given, every disk-usage series set to it; NaN (between walks) otherwise.
fn fs_point(unix_ms: i64, cpu: f64, disk: Option<f64>) -> HistoryPoint {
    let mut p = point(unix_ms, cpu);
    for v in &mut p.values[FS_SERIES_START..] {
        *v = disk.unwrap_or(f64::NAN);
    }
    p
}

#[test]
fn version_1_database_is_migrated_in_place_and_gains_the_disk_series() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    let a = cid("a1");
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA_V1).unwrap();
        old.execute(
            "INSERT INTO containers (key, id, name, image, labels, state, first_seen, last_seen) \
             VALUES (1, ?1, 'web', 'nginx', '{}', 'running', ?2, ?2)",
            params![a.as_str(), T0],
        )
        .unwrap();
        old.execute(
            "INSERT INTO raw (ts, ck, cpu_percent, memory_usage_bytes, memory_working_set_bytes, \
             network_rx_bytes_per_second, network_tx_bytes_per_second, \
             block_read_bytes_per_second, block_write_bytes_per_second, pids, memory_limit_bytes) \
             VALUES (?1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9)",
            [T0],
        )
        .unwrap();
        old.execute(
            "INSERT INTO rollup_1m (ck, ts, count, min_cpu_percent, avg_cpu_percent, max_cpu_percent) \
             VALUES (1, ?1, 60, 0.5, 1.5, 2.5)",
            [T0 - MIN],
        )
        .unwrap();
    }

    let store = open(&dir);
    // The old rows are there, the new series missing in them.
    let old = store.latest_point(&a).unwrap().unwrap();
    assert_eq!(
        old.values[..FS_SERIES_START],
        series(1.0)[..FS_SERIES_START]
    );
    assert!(old.values[FS_SERIES_START..].iter().all(|v| v.is_nan()));
    let old_minute = store.minute_rollups(&a, T0 - MIN, T0 - MIN).unwrap();
    assert_eq!((old_minute[0].count, old_minute[0].avg[0]), (60, 1.5));
    assert!(old_minute[0].avg[FS_SERIES_START].is_nan());

    // New points carry the disk series through raw points and rollups.
    store
        .write_points(&[
            (a.clone(), fs_point(T0 + SEC, 2.0, Some(4096.0))),
            (a.clone(), fs_point(T0 + 2 * SEC, 2.0, Some(8192.0))),
        ])
        .unwrap();
    store.roll_up(T0 + MIN).unwrap();
    let minute = store.minute_rollups(&a, T0, T0).unwrap()[0];
    assert_eq!(minute.count, 3);
    let fs = FS_SERIES_START;
    assert_eq!(
        (minute.min[fs], minute.avg[fs], minute.max[fs]),
        (4096.0, 6144.0, 8192.0)
    );
    drop(store);

    // The migrated file has the layout a fresh one gets, and its version.
    let fresh_dir = tempfile::tempdir().unwrap();
    drop(open(&fresh_dir));
    let fresh = Connection::open(fresh_dir.path().join(FILE_NAME)).unwrap();
    let migrated = Connection::open(&path).unwrap();
    let mut expected = vec!["ts".to_owned(), "ck".to_owned()];
    expected.extend(jaga_model::HISTORY_SERIES.map(str::to_owned));
    assert_eq!(columns(&fresh, "raw"), expected);
    for table in ["raw", "rollup_1m", "containers", "meta"] {
        assert_eq!(columns(&migrated, table), columns(&fresh, table), "{table}");
    }
    let version: i64 = migrated
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
    // Opening again finds nothing to migrate.
    drop(open(&dir));
}

#[test]
fn disk_series_between_walks_stay_missing_never_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let a = cid("a1");
    let fs = FS_SERIES_START;
    // Three minutes of points each second; a walk every 30 s in the first
    // two minutes (values 1000, 2000, 3000, 4000), none in the third.
    let mut walks = 0.0;
    let points: Vec<_> = (0..180)
        .map(|s| {
            let disk = (s % 30 == 0 && s < 120).then(|| {
                walks += 1.0;
                walks * 1000.0
            });
            (a.clone(), fs_point(T0 + s * SEC, 1.0, disk))
        })
        .collect();
    store.write_points(&points).unwrap();
    store.roll_up(T0 + 3 * MIN).unwrap();

    let minutes = store.minute_rollups(&a, T0, T0 + 2 * MIN).unwrap();
    assert_eq!(minutes.len(), 3);
    assert_eq!(
        (minutes[0].min[fs], minutes[0].avg[fs], minutes[0].max[fs]),
        (1000.0, 1500.0, 2000.0)
    );
    assert_eq!(
        (minutes[1].min[fs], minutes[1].avg[fs], minutes[1].max[fs]),
        (3000.0, 3500.0, 4000.0)
    );
    assert!(
        minutes[2].min[fs].is_nan() && minutes[2].avg[fs].is_nan(),
        "a minute with no walk is missing, not 0: {:?}",
        minutes[2]
    );
    assert_eq!(minutes[2].avg[0], 1.0, "the other series are untouched");

    // Raw points: the walks, and NaN (not 0) between them.
    let raw = store.range(&a, T0, T0 + 3 * MIN, 0).unwrap();
    assert_eq!(raw.len(), 180);
    let with_disk: Vec<f64> = raw
        .iter()
        .map(|p| p.avg[fs])
        .filter(|v| !v.is_nan())
        .collect();
    assert_eq!(with_disk, vec![1000.0, 2000.0, 3000.0, 4000.0]);

    // Two-minute buckets (T0 is a multiple of 120 s), over the raw points
    // and over the rollups alike: the walks of the first two minutes, and
    // none in the next bucket, whose other series are there.
    let check = |buckets: Vec<RollupPoint>, from: &str| {
        assert_eq!(buckets.len(), 2, "{from}");
        let b = buckets[0];
        assert_eq!(
            (b.min[fs], b.avg[fs], b.max[fs]),
            (1000.0, 2500.0, 4000.0),
            "{from}"
        );
        assert!(buckets[1].avg[fs].is_nan(), "{from}: {:?}", buckets[1]);
        assert_eq!(buckets[1].avg[0], 1.0, "{from}");
    };
    check(
        store.range(&a, T0, T0 + 4 * MIN - 1, 2 * MIN).unwrap(),
        "raw",
    );
    store.trim(T0 + 3 * MIN + 2 * 3_600_000).unwrap();
    check(
        store.range(&a, T0, T0 + 4 * MIN - 1, 2 * MIN).unwrap(),
        "rollups",
    );
}

/// Points are written under a container key remembered between passes; a
/// container whose row the trim deleted must get a row again, not have its
/// points stored under the deleted key where no query finds them.
#[test]
fn points_of_a_container_written_again_after_the_trim_removed_it_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(&dir, Duration::from_secs(600), Duration::from_secs(3600));
    let now = T0 + 120 * MIN;
    let b = cid("b2");
    store.write_points(&[(b.clone(), point(T0, 4.0))]).unwrap();
    assert_eq!(store.trim(now).unwrap().containers_deleted, 1);
    assert!(store.container(b.as_str()).unwrap().is_none());

    store.write_points(&[(b.clone(), point(now, 7.0))]).unwrap();
    let raw: Vec<i64> = store
        .range(&b, i64::MIN, i64::MAX, 0)
        .unwrap()
        .iter()
        .map(|p| p.unix_ms)
        .collect();
    assert_eq!(raw, vec![now]);
    assert!(store.container(b.as_str()).unwrap().is_some());
}
