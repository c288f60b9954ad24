use std::io::Write;
use std::os::unix::fs::MetadataExt;

use super::*;

fn entry(log: &str) -> String {
    format!(
        "{{\"log\":{},\"stream\":\"stdout\",\"time\":\"2026-11-23T03:00:00Z\"}}\n",
        serde_json_string(log)
    )
}

fn serde_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn texts(poll: &Poll) -> Vec<String> {
    poll.batches
        .iter()
        .flat_map(|b| b.messages.iter().map(|m| m.text.clone()))
        .collect()
}

/// What Docker's json-file driver does at `max-file`: drop the oldest,
/// shift `.N` to `.N+1`, the live file to `.1`, start a new live file.
fn rotate(live: &Path, max_file: u32) {
    let name = |n: u32| PathBuf::from(format!("{}.{n}", live.display()));
    let _ = std::fs::remove_file(name(max_file - 1));
    for n in (1..max_file - 1).rev() {
        let _ = std::fs::rename(name(n), name(n + 1));
    }
    std::fs::rename(live, name(1)).unwrap();
    std::fs::write(live, "").unwrap();
}

/// Polls until a poll leaves no backlog: the lines and the losses read.
fn read_to_end(t: &mut Tailer) -> (Vec<String>, Vec<Loss>) {
    let mut none = |_: &Path| None;
    let (mut got, mut lost) = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        let poll = t.poll(&mut none);
        got.extend(texts(&poll));
        lost.extend(poll.batches.iter().flat_map(|b| b.lost.clone()));
        if !poll.backlog {
            break;
        }
    }
    (got, lost)
}

fn numbered(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("line {i}")).collect()
}

fn write_numbered(live: &Path, from: usize, to: usize) {
    let text: String = numbered(from, to)
        .iter()
        .map(|l| entry(&format!("{l}\n")))
        .collect();
    append(live, &text);
}

fn small_budget(dir: &Path, budget: usize) -> Tailer {
    Tailer::new(
        vec![format!("{}/*/*-json.log", dir.display())],
        StartAt::Beginning,
        TailConfig {
            max_message_bytes: 1 << 20,
            max_read_per_poll: budget,
        },
    )
}

fn log_dir(dir: &Path, name: &str) -> PathBuf {
    std::fs::create_dir(dir.join(name)).unwrap();
    dir.join(name).join(format!("{name}-json.log"))
}

fn tailer(dir: &Path) -> Tailer {
    Tailer::new(
        vec![format!("{}/*/*-json.log", dir.display())],
        StartAt::Beginning,
        TailConfig::default(),
    )
}

#[test]
fn follows_new_lines_and_new_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c1")).unwrap();
    let log = dir.path().join("c1/c1-json.log");
    append(&log, &entry("one\n"));
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert_eq!(texts(&t.poll(&mut none)), vec!["one"]);
    append(&log, &entry("two\n"));
    std::fs::create_dir(dir.path().join("c2")).unwrap();
    append(&dir.path().join("c2/c2-json.log"), &entry("other\n"));
    let mut got = texts(&t.poll(&mut none));
    got.sort();
    assert_eq!(got, vec!["other", "two"]);
    assert_eq!(texts(&t.poll(&mut none)), Vec::<String>::new());
}

#[test]
fn incomplete_lines_wait_and_partials_are_joined() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let log = dir.path().join("c/c-json.log");
    let full = entry("abc\n");
    append(&log, &full[..10]);
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    let batches = t.poll(&mut none);
    assert_eq!(texts(&batches), Vec::<String>::new());
    append(&log, &full[10..]);
    append(&log, &entry("first half "));
    let batches = t.poll(&mut none);
    assert_eq!(texts(&batches), vec!["abc"]);
    // The checkpoint stays before the half message.
    assert_eq!(batches.batches[0].checkpoint.offset, full.len() as u64);
    append(&log, &entry("second half\n"));
    let batches = t.poll(&mut none);
    assert_eq!(texts(&batches), vec!["first half second half"]);
    assert_eq!(
        batches.batches[0].checkpoint.offset,
        std::fs::metadata(&log).unwrap().len()
    );
}

#[test]
fn rotation_reads_the_old_file_to_its_end_then_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let log = dir.path().join("c/c-json.log");
    append(&log, &entry("a\n"));
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert_eq!(texts(&t.poll(&mut none)), vec!["a"]);
    append(&log, &entry("b\n"));
    std::fs::rename(&log, dir.path().join("c/c-json.log.1")).unwrap();
    append(&log, &entry("c\n"));
    assert_eq!(texts(&t.poll(&mut none)), vec!["b", "c"]);
}

#[test]
fn truncation_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let log = dir.path().join("c/c-json.log");
    append(&log, &entry("a long first line\n"));
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert_eq!(texts(&t.poll(&mut none)), vec!["a long first line"]);
    std::fs::write(&log, entry("x\n")).unwrap();
    let batches = t.poll(&mut none);
    assert_eq!(texts(&batches), vec!["x"]);
    assert!(batches.batches[0].skipped.contains(&Skip::Truncated));
}

#[test]
fn checkpoints_resume_and_bad_input_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let log = dir.path().join("c/c-json.log");
    append(&log, &entry("old\n"));
    let resume_at = std::fs::metadata(&log).unwrap().len();
    let inode = std::fs::metadata(&log).unwrap().ino();
    append(&log, "{broken json\n");
    let mut garbage = vec![0xffu8, 0xfe, 0x00, b'x'];
    garbage.push(b'\n');
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(&garbage)
        .unwrap();
    append(&log, &entry(&format!("{}\n", "y".repeat(3 << 20))));
    append(&log, &entry("new\n"));
    let mut t = Tailer::new(
        vec![format!("{}/*/*-json.log", dir.path().display())],
        StartAt::Beginning,
        TailConfig {
            max_message_bytes: 1 << 20,
            max_read_per_poll: 64 << 20,
        },
    );
    let mut from_store = |_: &Path| {
        Some(Checkpoint {
            inode,
            offset: resume_at,
            head_hash: 0,
            seen_until_ns: 0,
            born_ns: 0,
        })
    };
    let batches = t.poll(&mut from_store);
    let got = texts(&batches);
    assert_eq!(got.last().map(String::as_str), Some("new"));
    assert!(!got.contains(&"old".to_owned()));
    let skipped = &batches.batches[0].skipped;
    assert!(skipped.contains(&Skip::NotJson), "{skipped:?}");
    assert!(
        skipped.contains(&Skip::InvalidUtf8)
            || skipped.iter().filter(|s| **s == Skip::NotJson).count() >= 2,
        "{skipped:?}"
    );
}

#[test]
fn deleted_files_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    let log = dir.path().join("c/c-json.log");
    append(&log, &entry("a\n"));
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    t.poll(&mut none);
    std::fs::remove_file(&log).unwrap();
    t.poll(&mut none);
    assert!(t.followed().is_empty());
}

#[test]
fn rotations_faster_than_a_poll_are_all_read_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 10);
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert_eq!(texts(&t.poll(&mut none)), numbered(0, 10));
    t.commit(&live);
    // Three rotations between two polls (max-file=5 keeps four rotated files).
    write_numbered(&live, 10, 20);
    rotate(&live, 5);
    write_numbered(&live, 20, 30);
    rotate(&live, 5);
    write_numbered(&live, 30, 40);
    rotate(&live, 5);
    write_numbered(&live, 40, 45);
    let poll = t.poll(&mut none);
    assert_eq!(texts(&poll), numbered(10, 45));
    assert!(
        poll.batches[0].lost.is_empty(),
        "{:?}",
        poll.batches[0].lost
    );
    let live_inode = std::fs::metadata(&live).unwrap().ino();
    assert_eq!(poll.batches[0].checkpoint.inode, live_inode);
    assert_eq!(texts(&t.poll(&mut none)), Vec::<String>::new());
}

#[test]
fn a_restart_resumes_in_the_rotated_generation_of_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 10);
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    let poll = t.poll(&mut none);
    let stored = poll.batches[0].checkpoint;
    drop(t);
    // While the agent is down: more lines, two rotations.
    write_numbered(&live, 10, 20);
    rotate(&live, 5);
    write_numbered(&live, 20, 30);
    rotate(&live, 5);
    write_numbered(&live, 30, 35);
    let mut t = tailer(dir.path());
    let mut from_store = |_: &Path| Some(stored);
    let poll = t.poll(&mut from_store);
    assert_eq!(texts(&poll), numbered(10, 35));
    assert!(poll.batches[0].lost.is_empty());
}

#[test]
fn a_generation_deleted_while_open_is_still_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 100);
    // A budget that reads only part of the file per poll.
    let mut t = small_budget(dir.path(), 1000);
    let mut none = |_: &Path| None;
    let first = t.poll(&mut none);
    assert!(first.backlog);
    let mut got = texts(&first);
    assert!(got.len() < 100);
    rotate(&live, 2);
    // max-file=2: the next rotation deletes the file being read.
    write_numbered(&live, 100, 110);
    rotate(&live, 2);
    write_numbered(&live, 110, 120);
    got.extend(read_to_end(&mut t).0);
    assert_eq!(got, numbered(0, 120));
}

#[test]
fn generations_rotated_while_reading_are_held_open_until_read() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 100);
    let mut t = small_budget(dir.path(), 1000);
    let mut none = |_: &Path| None;
    let mut got = texts(&t.poll(&mut none));
    // Listed (and so held) while the first file is still being read.
    rotate(&live, 3);
    write_numbered(&live, 100, 150);
    got.extend(texts(&t.poll(&mut none)));
    // Three more rotations with max-file=3 delete the file being read and
    // the one after it; the reader holds both.
    rotate(&live, 3);
    write_numbered(&live, 150, 160);
    rotate(&live, 3);
    t.hold_new_generations();
    rotate(&live, 3);
    write_numbered(&live, 160, 170);
    let (rest, lost) = read_to_end(&mut t);
    got.extend(rest);
    assert_eq!(got, numbered(0, 170));
    assert!(lost.is_empty(), "{lost:?}");
}

#[test]
fn generations_held_past_the_bound_are_let_go_and_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 100);
    let mut t = small_budget(dir.path(), 1000);
    let mut none = |_: &Path| None;
    let mut got = texts(&t.poll(&mut none));
    // Rotations before the next look: files of lines and an empty live
    // one, 4 more than can be held.
    let files = holding::MAX_HELD_FILES + 3;
    let mut sizes = Vec::new();
    for k in 0..files {
        rotate(&live, files as u32 + 8);
        write_numbered(&live, 100 + k * 10, 110 + k * 10);
        let meta = std::fs::metadata(&live).unwrap();
        sizes.push((meta.ino(), meta.len()));
    }
    rotate(&live, files as u32 + 8);
    let (rest, lost) = read_to_end(&mut t);
    got.extend(rest);
    let mut expected = numbered(0, 100);
    expected.extend(numbered(140, 100 + files * 10));
    assert_eq!(got, expected);
    let let_go: Vec<(Option<u64>, u64, Option<u64>)> =
        lost.iter().map(|l| (l.inode, l.from, l.to)).collect();
    let wanted: Vec<(Option<u64>, u64, Option<u64>)> = sizes[..4]
        .iter()
        .map(|(inode, size)| (Some(*inode), 0, Some(*size)))
        .collect();
    assert_eq!(let_go, wanted);
    assert!(lost
        .iter()
        .all(|l| !l.estimated && l.bytes == l.to.unwrap()));
    let lines: u64 = lost.iter().map(|l| l.lines).sum();
    assert!((36..=44).contains(&lines), "{lost:?}");
}

#[test]
fn generations_that_came_and_went_unseen_are_estimated_from_log_times() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    // Ten lines per file, 100 ms apart, one file a second.
    let write_second = |second: usize| {
        let mut text = String::new();
        for tenth in 0..10 {
            text.push_str(&format!(
                "{{\"log\":\"second {second} line {tenth}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-23T03:00:{second:02}.{tenth}00000000Z\"}}\n"
            ));
        }
        append(&live, &text);
    };
    write_second(0);
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert_eq!(texts(&t.poll(&mut none)).len(), 10);
    // max-file=2: seconds 1 and 2 are written and deleted between two looks.
    for second in 1..4 {
        rotate(&live, 2);
        write_second(second);
    }
    rotate(&live, 2);
    write_second(4);
    let poll = t.poll(&mut none);
    let got = texts(&poll);
    assert_eq!(got.len(), 20, "{got:?}");
    assert!(got[0].starts_with("second 3 "), "{got:?}");
    let lost = &poll.batches[0].lost;
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].estimated);
    // Seconds 1 and 2: 20 lines, from the gap between 03:00:00.9 and 03:00:03.0.
    assert!((18..=24).contains(&lost[0].lines), "{lost:?}");
}

#[test]
fn a_checkpoint_whose_file_is_gone_counts_an_estimated_loss() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    let line = |i: usize, tenth: usize| {
        format!(
            "{{\"log\":\"line {i}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-23T03:00:{:02}.{}00000000Z\"}}\n",
            tenth / 10,
            tenth % 10
        )
    };
    // 10 lines a second for 3 seconds, each line the same length.
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&line(100 + i, i));
    }
    append(&live, &text);
    let inode = std::fs::metadata(&live).unwrap().ino();
    // The checkpoint was in a file gone since, with lines seen up to 2026-11-23T02:59:57Z.
    let seen_until_ns = generations::parse_time_ns("2026-11-23T02:59:57Z").unwrap();
    let stored = Checkpoint {
        inode: inode + 1_000_000,
        offset: 500,
        head_hash: 0,
        seen_until_ns,
        born_ns: 0,
    };
    let mut t = tailer(dir.path());
    let mut from_store = |_: &Path| Some(stored);
    let poll = t.poll(&mut from_store);
    assert_eq!(texts(&poll).len(), 30);
    let lost = &poll.batches[0].lost;
    assert_eq!(lost.len(), 1);
    assert!(lost[0].estimated);
    assert_eq!(lost[0].inode, Some(stored.inode));
    assert_eq!(lost[0].from, 500);
    // 3 s at ~10 lines/s (the rate of the file left, over its 2.9 s span).
    assert!((28..=35).contains(&lost[0].lines), "{lost:?}");
}

#[test]
fn a_later_file_with_the_checkpoints_inode_is_not_taken_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 10);
    let inode = std::fs::metadata(&live).unwrap().ino();
    let stored = Checkpoint {
        inode,
        offset: 300,
        head_hash: 12345,
        seen_until_ns: 0,
        born_ns: 0,
    };
    let mut t = tailer(dir.path());
    let mut from_store = |_: &Path| Some(stored);
    assert_eq!(texts(&t.poll(&mut from_store)), numbered(0, 10));
}

#[test]
fn a_rewind_reads_the_uncommitted_lines_again() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 5);
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert_eq!(texts(&t.poll(&mut none)), numbered(0, 5));
    t.commit(&live);
    write_numbered(&live, 5, 10);
    rotate(&live, 5);
    write_numbered(&live, 10, 15);
    assert_eq!(texts(&t.poll(&mut none)), numbered(5, 15));
    // Storing failed.
    t.rewind(&live);
    assert_eq!(texts(&t.poll(&mut none)), numbered(5, 15));
    t.commit(&live);
    t.rewind(&live);
    assert_eq!(texts(&t.poll(&mut none)), Vec::<String>::new());
    // Nothing committed yet: a rewind goes back to where reading began.
    let mut fresh = tailer(dir.path());
    assert_eq!(texts(&fresh.poll(&mut none)), numbered(0, 15));
    fresh.rewind(&live);
    assert_eq!(texts(&fresh.poll(&mut none)), numbered(0, 15));
}

#[test]
fn a_partial_message_split_by_a_rotation_is_joined_and_checkpointed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    append(&live, &entry("whole\n"));
    let split_at = std::fs::metadata(&live).unwrap().len();
    append(&live, &entry("first half "));
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    let poll = t.poll(&mut none);
    assert_eq!(texts(&poll), vec!["whole"]);
    let inode = std::fs::metadata(&live).unwrap().ino();
    assert_eq!(
        (
            poll.batches[0].checkpoint.inode,
            poll.batches[0].checkpoint.offset
        ),
        (inode, split_at)
    );
    rotate(&live, 5);
    append(&live, &entry("second half\n"));
    assert_eq!(texts(&t.poll(&mut none)), vec!["first half second half"]);
}

#[test]
fn fifos_and_symlinks_are_refused_once_and_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, entry("root:secret-marker\n")).unwrap();
    let fifo = log_dir(dir.path(), "fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let link = log_dir(dir.path(), "link");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    // A symlinked directory component.
    std::fs::create_dir(outside.path().join("dirlink")).unwrap();
    std::fs::copy(&secret, outside.path().join("dirlink/dirlink-json.log")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("dirlink"), dir.path().join("dirlink")).unwrap();
    // A rotated sibling that is a FIFO.
    let good = log_dir(dir.path(), "good");
    write_numbered(&good, 0, 3);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        PathBuf::from(format!("{}.1", good.display())),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    let poll = t.poll(&mut none);
    assert_eq!(texts(&poll), numbered(0, 3));
    let mut refused: Vec<(String, Skip)> = poll
        .refused
        .iter()
        .map(|(p, s)| (p.file_name().unwrap().to_string_lossy().into_owned(), *s))
        .collect();
    refused.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        refused,
        vec![
            ("dirlink-json.log".to_owned(), Skip::Symlink),
            ("fifo-json.log".to_owned(), Skip::NotRegularFile),
            ("good-json.log.1".to_owned(), Skip::NotRegularFile),
            ("link-json.log".to_owned(), Skip::Symlink),
        ]
    );
    assert_eq!(t.followed(), vec![good.clone()]);
    let again = t.poll(&mut none);
    assert!(again.refused.is_empty(), "{:?}", again.refused);
}

#[test]
fn open_regular_does_not_block_on_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert_eq!(
        generations::open_regular(&fifo).err(),
        Some(generations::OpenError::Refused(Skip::NotRegularFile))
    );
}

#[test]
fn a_new_log_rotating_before_the_first_poll_is_held_by_the_holder_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert!(t.poll(&mut none).batches.is_empty());
    t.hold_in_background(Duration::from_millis(5), || {});
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 10);
    // Give the holder time to find the new log.
    std::thread::sleep(Duration::from_millis(500));
    // max-file=2: the first file is deleted before the reader's first look.
    rotate(&live, 2);
    write_numbered(&live, 10, 20);
    std::thread::sleep(Duration::from_millis(500));
    rotate(&live, 2);
    write_numbered(&live, 20, 30);
    assert_eq!(texts(&t.poll(&mut none)), numbered(0, 30));
}

#[test]
fn a_restart_with_a_small_budget_and_the_holder_thread_reads_every_generation() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 1000);
    let mut t = small_budget(dir.path(), 4000);
    let mut none = |_: &Path| None;
    let mut got = Vec::new();
    let mut stored = None;
    for _ in 0..1000 {
        let poll = t.poll(&mut none);
        got.extend(texts(&poll));
        if let Some(b) = poll.batches.last() {
            stored = Some(b.checkpoint);
        }
        if !poll.backlog {
            break;
        }
    }
    assert_eq!(got.len(), 1000);
    drop(t);
    write_numbered(&live, 1000, 2000);
    rotate(&live, 5);
    write_numbered(&live, 2000, 3000);
    rotate(&live, 5);
    write_numbered(&live, 3000, 4000);
    rotate(&live, 5);
    write_numbered(&live, 4000, 5000);
    let mut t = small_budget(dir.path(), 4000);
    t.hold_in_background(Duration::from_millis(5), || {});
    let mut from_store = |_: &Path| stored;
    let mut got = Vec::new();
    for _ in 0..1000 {
        let poll = t.poll(&mut from_store);
        got.extend(texts(&poll));
        for b in &poll.batches {
            assert!(b.lost.is_empty(), "{:?}", b.lost);
        }
        t.commit(&live);
        if !poll.backlog {
            std::thread::sleep(Duration::from_millis(20));
            let again = t.poll(&mut from_store);
            got.extend(texts(&again));
            if !again.backlog {
                break;
            }
        }
    }
    assert_eq!(got, numbered(1000, 5000));
}

/// A checkpoint taken while the live file was still empty (the agent
/// started with a new container and was SIGKILLed before its first line)
/// names the file by inode number and birth time only. A flood rotating
/// while the agent is down hands that inode number to a later generation:
/// taken for the checkpoint's file, it made the agent skip every older
/// generation unread and count no loss.
#[test]
fn a_file_reusing_the_inode_of_an_empty_checkpoint_is_not_taken_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 10);
    rotate(&live, 5);
    write_numbered(&live, 10, 20);
    rotate(&live, 5);
    write_numbered(&live, 20, 25);
    // The checkpoint names `.1` by its inode number, but another birth time.
    let reused = std::fs::metadata(format!("{}.1", live.display())).unwrap();
    let born_ns = generations::FileId::of(&reused).born_ns;
    let seen_until_ns = generations::parse_time_ns("2026-11-23T02:59:00Z").unwrap();
    let stored = Checkpoint {
        inode: reused.ino(),
        offset: 0,
        head_hash: 0,
        seen_until_ns,
        born_ns: born_ns.wrapping_sub(1_000_000_000).max(1),
    };
    let mut t = tailer(dir.path());
    let mut from_store = |_: &Path| Some(stored);
    let poll = t.poll(&mut from_store);
    assert_eq!(texts(&poll), numbered(0, 25));
    // Where the filesystem keeps no birth time, an empty checkpoint's file is
    // only taken for it when no older generation would be skipped.
    let no_birth_time = Checkpoint {
        born_ns: 0,
        ..stored
    };
    let mut t = tailer(dir.path());
    let mut from_store = |_: &Path| Some(no_birth_time);
    assert_eq!(texts(&t.poll(&mut from_store)), numbered(0, 25));
}

#[test]
fn a_file_checkpointed_while_empty_is_resumed_by_its_birth_time() {
    let dir = tempfile::tempdir().unwrap();
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 10);
    rotate(&live, 5);
    let meta = std::fs::metadata(&live).unwrap();
    let stored = Checkpoint {
        inode: meta.ino(),
        offset: 0,
        head_hash: 0,
        seen_until_ns: 0,
        born_ns: generations::FileId::of(&meta).born_ns,
    };
    write_numbered(&live, 10, 20);
    let mut t = tailer(dir.path());
    let mut from_store = |_: &Path| Some(stored);
    let poll = t.poll(&mut from_store);
    if stored.born_ns == 0 {
        // No birth time here: the live file is not the oldest, so reading
        // starts over from the oldest rather than skip it.
        assert_eq!(texts(&poll), numbered(0, 20));
    } else {
        assert_eq!(texts(&poll), numbered(10, 20));
    }
}

/// A new container flooding from its first line rotated its first files
/// away before the holder's next look for new logs (every 250 ms): the
/// holder is now woken by the directory changes themselves.
#[test]
fn a_new_log_is_held_from_its_first_file_without_waiting_for_a_look() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = tailer(dir.path());
    let mut none = |_: &Path| None;
    assert!(t.poll(&mut none).batches.is_empty());
    // Looks only once a minute: only the directory watch can be in time.
    t.hold_in_background(Duration::from_secs(60), || {});
    std::thread::sleep(Duration::from_millis(200));
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 10);
    std::thread::sleep(Duration::from_secs(1));
    rotate(&live, 2);
    write_numbered(&live, 10, 20);
    std::thread::sleep(Duration::from_secs(1));
    // The first file is deleted here, before the reader's first look.
    rotate(&live, 2);
    write_numbered(&live, 20, 30);
    assert_eq!(texts(&t.poll(&mut none)), numbered(0, 30));
}

#[test]
fn a_poll_is_quiet_only_when_every_log_is_quiet_and_inotify_finds_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut none = |_: &Path| None;
    // Without the holder thread new logs are found by looking: never quiet.
    let mut looking = tailer(dir.path());
    assert!(!looking.poll(&mut none).quiet);

    let mut t = tailer(dir.path());
    t.hold_in_background(Duration::from_secs(60), || {});
    assert!(t.poll(&mut none).quiet, "no log at all is quiet");
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 3);
    std::thread::sleep(Duration::from_millis(200));
    let poll = t.poll(&mut none);
    assert_eq!(texts(&poll), numbered(0, 3));
    assert!(!poll.quiet, "a log just written is not quiet");
    assert!(!t.poll(&mut none).quiet, "quiet for less than QUIET_AFTER");
    std::thread::sleep(QUIET_AFTER + Duration::from_millis(200));
    assert!(t.poll(&mut none).quiet);
    // A quiet log is still read within QUIET_POLL_EVERY, and wakes the pace.
    write_numbered(&live, 3, 4);
    std::thread::sleep(QUIET_POLL_EVERY + Duration::from_millis(100));
    let poll = t.poll(&mut none);
    assert_eq!(texts(&poll), numbered(3, 4));
    assert!(!poll.quiet);
}

/// A log quiet for a minute is polled every 2 s instead of every second,
/// and a line written to it is still read at its next poll.
#[test]
fn a_log_quiet_for_a_minute_is_polled_every_two_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut none = |_: &Path| None;
    let mut t = tailer(dir.path());
    t.hold_in_background(Duration::from_secs(60), || {});
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(texts(&t.poll(&mut none)), numbered(0, 3));
    assert!(t.poll(&mut none).batches.is_empty());
    // Aged by hand rather than waited for: quiet since a minute, last
    // polled well past a quiet log's second, well before two.
    let age = |t: &mut Tailer, quiet: Duration, polled: Duration| {
        let now = Instant::now();
        for log in t.logs.values_mut() {
            log.quiet_since = now.checked_sub(quiet);
            log.last_polled = now.checked_sub(polled);
        }
    };
    age(
        &mut t,
        QUIET_AFTER + Duration::from_secs(1),
        Duration::from_secs(3),
    );
    let poll = t.poll(&mut none);
    assert!(poll.quiet && !poll.long_quiet, "{poll:?}");
    age(
        &mut t,
        LONG_QUIET_AFTER + Duration::from_secs(1),
        Duration::from_secs(3),
    );
    let poll = t.poll(&mut none);
    assert!(poll.quiet && poll.long_quiet, "{poll:?}");

    write_numbered(&live, 3, 4);
    std::thread::sleep(Duration::from_millis(200));
    age(
        &mut t,
        LONG_QUIET_AFTER + Duration::from_secs(1),
        Duration::from_millis(1200),
    );
    assert!(
        t.poll(&mut none).batches.is_empty(),
        "resting between its polls"
    );
    age(
        &mut t,
        LONG_QUIET_AFTER + Duration::from_secs(1),
        Duration::from_millis(2100),
    );
    let poll = t.poll(&mut none);
    assert_eq!(texts(&poll), numbered(3, 4));
    assert!(!poll.quiet && !poll.long_quiet);
}

#[test]
fn with_the_holder_watching_a_log_is_sized_by_its_descriptor_yet_truncation_rotation_and_removal_are_seen(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut none = |_: &Path| None;
    let mut t = tailer(dir.path());
    t.hold_in_background(Duration::from_secs(60), || {});
    std::thread::sleep(Duration::from_millis(200));
    let live = log_dir(dir.path(), "c");
    write_numbered(&live, 0, 3);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(texts(&t.poll(&mut none)), numbered(0, 3));
    // Polls with nothing new: the holder saw no name come or go since the
    // path was looked up, so these size the open file.
    for _ in 0..3 {
        assert!(texts(&t.poll(&mut none)).is_empty());
    }
    write_numbered(&live, 3, 5);
    assert_eq!(texts(&t.poll(&mut none)), numbered(3, 5));
    // Truncated in place: no directory event, the descriptor's size tells.
    std::fs::write(&live, entry("x\n")).unwrap();
    let poll = t.poll(&mut none);
    assert_eq!(texts(&poll), vec!["x"]);
    assert!(poll.batches[0].skipped.contains(&Skip::Truncated));
    // Rotated: the holder sees the names move and the path is looked up.
    write_numbered(&live, 5, 6);
    rotate(&live, 3);
    write_numbered(&live, 6, 8);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < 3 && Instant::now() < deadline {
        got.extend(texts(&t.poll(&mut none)));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got, numbered(5, 8));
    for _ in 0..3 {
        assert!(texts(&t.poll(&mut none)).is_empty());
    }
    // Removed with its directory (a container removed): the holder sees the
    // name go, the path is looked up, the log let go.
    std::fs::remove_dir_all(dir.path().join("c")).unwrap();
    // Well before PATH_CHECK_EVERY: the deletion itself tells.
    let deadline = Instant::now() + PATH_CHECK_EVERY / 2;
    while t.followed_count() > 0 && Instant::now() < deadline {
        t.poll(&mut none);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(t.followed_count(), 0);
}
