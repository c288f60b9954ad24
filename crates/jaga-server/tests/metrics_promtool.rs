//! The rendered text, checked by Prometheus' own linter: `promtool check
//! metrics` (Debian package `prometheus`).

mod metrics_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use jaga_server::metrics::{render, ExpositionFormat, LabelOptions};
use metrics_support::{snapshot, stopped, two_containers, web};

/// What promtool says about names cAdvisor itself uses. jaga keeps cAdvisor's
/// names so existing dashboards and alert rules work; these are the only
/// complaints allowed.
const CADVISOR_NAME_COMPLAINTS: &[&str] =
    &["container_memory_failcnt counter metrics should have \"_total\" suffix"];

/// Runs `promtool check metrics` on `text`; returns its exit status and
/// everything it printed, one line per problem.
fn promtool_check(text: &str) -> (Option<i32>, Vec<String>) {
    match run_promtool(text) {
        Ok(result) => result,
        Err(e) => {
            panic!("cannot run 'promtool' ({e}): install it with 'apt-get install -y prometheus'")
        }
    }
}

fn run_promtool(text: &str) -> std::io::Result<(Option<i32>, Vec<String>)> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let lines = printed
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    Ok((output.status.code(), lines))
}

fn assert_only_cadvisor_complaints(text: &str) {
    let (code, lines) = promtool_check(text);
    let unexpected: Vec<&String> = lines
        .iter()
        .filter(|l| !CADVISOR_NAME_COMPLAINTS.contains(&l.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "promtool complained (exit {code:?}): {lines:#?}\n--- text ---\n{text}"
    );
    if lines.is_empty() {
        assert_eq!(code, Some(0), "promtool failed without saying why");
    }
}

#[test]
fn promtool_accepts_the_golden_snapshot_except_cadvisor_names() {
    let text = render(
        &two_containers(),
        ExpositionFormat::Prometheus,
        &LabelOptions::default(),
    );
    assert_only_cadvisor_complaints(&text);
}

#[test]
fn promtool_reports_exactly_the_known_cadvisor_name_complaints() {
    let text = render(
        &two_containers(),
        ExpositionFormat::Prometheus,
        &LabelOptions::default(),
    );
    let (code, lines) = promtool_check(&text);
    let expected: Vec<String> = CADVISOR_NAME_COMPLAINTS
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    assert_eq!(lines, expected, "promtool exit {code:?}");
}

#[test]
fn promtool_is_silent_on_text_without_cadvisor_legacy_names() {
    // With no running container, only machine and jaga families remain:
    // promtool must have nothing at all to say.
    let text = render(
        &snapshot(vec![stopped()]),
        ExpositionFormat::Prometheus,
        &LabelOptions::default(),
    );
    let (code, lines) = promtool_check(&text);
    assert!(
        lines.is_empty(),
        "promtool complained: {lines:#?}\n--- text ---\n{text}"
    );
    assert_eq!(code, Some(0));
}

/// Feeds OpenMetrics text to Prometheus' own OpenMetrics parser, the one
/// `promtool tsdb create-blocks-from openmetrics` uses, and returns how many
/// samples it stored. That command needs a timestamp on every sample, so one
/// is appended; nothing else is changed.
fn prometheus_openmetrics_sample_count(text: &str) -> usize {
    let stamped: String = text
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("{l} 1700000100\n")
            }
        })
        .collect();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let input = dir.path().join("metrics.om");
    std::fs::write(&input, stamped)
        .unwrap_or_else(|e| panic!("cannot write '{}': {e}", input.display()));
    let output = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.path().join("blocks"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run 'promtool' ({e}): install it with 'apt-get install -y prometheus'")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "promtool rejected the OpenMetrics text: {stdout}{stderr}\n--- text ---\n{text}"
    );
    // The last line of its table: ULID, min time, max time, duration, samples, ...
    let row = stdout.lines().last().unwrap_or_default();
    row.split_whitespace()
        .nth(4)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected promtool output: {stdout}{stderr}"))
}

fn sample_lines(text: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#')).count()
}

#[test]
fn prometheus_reads_every_openmetrics_sample_of_the_golden_snapshot() {
    let text = render(
        &two_containers(),
        ExpositionFormat::OpenMetrics,
        &LabelOptions::default(),
    );
    assert_eq!(
        prometheus_openmetrics_sample_count(&text),
        sample_lines(&text)
    );
}

#[test]
fn prometheus_reads_openmetrics_with_escapes_and_special_floats() {
    let mut c = web();
    Arc::make_mut(&mut c.container).name = "we\"ird\\name\nline".to_owned();
    Arc::make_mut(&mut c.container)
        .labels
        .insert("x.y/z".to_owned(), "v\"\\\n".to_owned());
    let mut s = snapshot(vec![c]);
    s.agent.last_collection_seconds = f64::NAN;
    s.agent.collection_seconds_sum = f64::INFINITY;
    let text = render(&s, ExpositionFormat::OpenMetrics, &LabelOptions::default());
    assert_eq!(
        prometheus_openmetrics_sample_count(&text),
        sample_lines(&text)
    );
    let prom = render(&s, ExpositionFormat::Prometheus, &LabelOptions::default());
    assert_only_cadvisor_complaints(&prom);
}

#[test]
fn label_values_with_terminal_escape_sequences_parse_and_carry_no_raw_escape() {
    let mut c = web();
    Arc::make_mut(&mut c.container).labels.insert(
        "com.example.title".to_owned(),
        "\x1b]0;pwned\x07\x1b[2J\rfake\u{9b}31m".to_owned(),
    );
    let s = snapshot(vec![c]);
    for format in [ExpositionFormat::Prometheus, ExpositionFormat::OpenMetrics] {
        let text = render(&s, format, &LabelOptions::default());
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character in {format:?} text"
        );
        assert!(text.contains(
            "container_label_com_example_title=\"\\\\x1b]0;pwned\\\\x07\\\\x1b[2J\\\\rfake\\\\u{9b}31m\""
        ));
    }
    let prom = render(&s, ExpositionFormat::Prometheus, &LabelOptions::default());
    assert_only_cadvisor_complaints(&prom);
    let open = render(&s, ExpositionFormat::OpenMetrics, &LabelOptions::default());
    assert_eq!(
        prometheus_openmetrics_sample_count(&open),
        sample_lines(&open)
    );
}
