use std::io::Write;

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

fn texts(batches: &[Batch]) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| b.messages.iter().map(|m| m.text.clone()))
        .collect()
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
    assert_eq!(batches[0].checkpoint, full.len() as u64);
    append(&log, &entry("second half\n"));
    let batches = t.poll(&mut none);
    assert_eq!(texts(&batches), vec!["first half second half"]);
    assert_eq!(
        batches[0].checkpoint,
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
    assert!(batches[0].skipped.contains(&Skip::Truncated));
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
    let mut from_store = |_: &Path| Some((inode, resume_at));
    let batches = t.poll(&mut from_store);
    let got = texts(&batches);
    assert_eq!(got.last().map(String::as_str), Some("new"));
    assert!(!got.contains(&"old".to_owned()));
    let skipped = &batches[0].skipped;
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
