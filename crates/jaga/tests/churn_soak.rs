#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `jaga serve` (default settings: logs, audit and filesystem on) under
//! container churn: hundreds of containers created, sampled, followed and
//! removed must leave no descriptor, no audit finding and no memory behind.
//! Issue 11 item 5: 1,300 containers took the agent from 23 to 541 MB RSS and
//! from 24 to 1,111 open files, each removed container keeping its 17 cgroup
//! files open.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::agent::{series_value, Agent};
use common::*;

/// Containers churned after the baseline; ~2 minutes on two busy cores.
const CHURNED: usize = 300;
/// Started in parallel, then removed together once the agent sampled them all.
const BATCH: usize = 25;
/// Containers churned before the baseline, so that what is allocated once
/// (thread pool, malloc arenas, lazy regex caches, SQLite page caches) is
/// already there.
const WARM_UP: usize = 50;
/// Descriptors that come and go on their own: idle keep-alive connections
/// to the Engine left by up to 8 parallel inspections plus the event, list
/// and log-discovery requests (closed when they time out), a log file read
/// at that moment, SQLite journals. A leak of even one descriptor per
/// container would show as 300.
const FD_SLACK: usize = 16;
/// RSS growth allowed over the churn. Before the fix this test saw +271 MB
/// (903 KB per container: the audit kept every started container's findings
/// and re-serialised the growing report at each start); any leak of 110 KB
/// or more per container exceeds the bound. Descriptor leaks (17 cgroup
/// files each) are caught above, not here. Measured after the fix, debug
/// build: +11 to +14 MB (malloc arenas warming up and keeping freed pages).
const RSS_GROWTH_BOUND_KB: u64 = 32 * 1024;

#[test]
fn container_churn_returns_fds_and_memory_to_baseline() {
    require_engine();
    let data = tempfile::tempdir().unwrap();
    let agent = Agent::start(data.path(), "");
    let pid = agent.pid();
    // Ids (for descriptors) and names (for /metrics) of every container churned.
    let mut ours: HashSet<String> = HashSet::new();
    let mut names: Vec<String> = Vec::new();

    churn(&agent, "churn-warm", WARM_UP, &mut ours, &mut names);
    wait_until_gone(&agent, &names);
    // Back to no container of ours: the warm-up's handles are closed too.
    let baseline_fds = settle_fds(pid, &ours, usize::MAX);
    let baseline_rss = rss_kb(pid);
    let baseline_lines = log_lines(&agent);

    let started = Instant::now();
    churn(&agent, "churn", CHURNED, &mut ours, &mut names);
    let churn_time = started.elapsed();
    wait_until_gone(&agent, &names);

    // Cgroup files are closed in the pass that sees a container gone, not
    // by the idle sweep (30 s, and before the fix only when some other file
    // was opened): one more pass later, none is open.
    let passes = collections(&agent);
    let next_pass = wait_for(Duration::from_secs(60), || {
        (collections(&agent) > passes).then_some(())
    });
    assert!(next_pass.is_some(), "no collection pass within 60 s");
    let cgroup_files: Vec<String> = fds_of(pid, &ours)
        .into_iter()
        .filter(|target| target.starts_with("/sys/fs/cgroup"))
        .collect();
    assert!(
        cgroup_files.is_empty(),
        "{} cgroup files of removed containers are still open, e.g. {:?}",
        cgroup_files.len(),
        cgroup_files.iter().take(3).collect::<Vec<_>>()
    );

    let after_fds = settle_fds(pid, &ours, baseline_fds + FD_SLACK);
    let left = fds_of(pid, &ours).len();
    assert_eq!(
        left,
        0,
        "{left} descriptors still refer to removed containers: {:?}",
        fds_of(pid, &ours).into_iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        after_fds <= baseline_fds + FD_SLACK,
        "open descriptors went from {baseline_fds} to {after_fds} after {CHURNED} containers \
         (allowed {FD_SLACK} more); by kind: {:?}",
        fd_kinds(pid, &ours)
    );

    let after_rss = rss_kb(pid);
    let growth = after_rss.saturating_sub(baseline_rss);
    // Ours write ~225 lines; a flood from another test's container (on a
    // shared engine) makes malloc keep its peak: the count tells.
    let lines = log_lines(&agent) - baseline_lines;
    assert!(
        growth <= RSS_GROWTH_BOUND_KB,
        "RSS went from {baseline_rss} KB to {after_rss} KB (+{growth} KB, {} KB per container) \
         after {CHURNED} containers in {churn_time:?}; allowed +{RSS_GROWTH_BOUND_KB} KB \
         (the agent analysed {lines} log lines meanwhile)",
        growth / CHURNED as u64
    );

    // The audit checked each container as it started; none stays in its report.
    let report = agent.get("/api/v1/audit").1;
    assert!(
        !report.contains("jaga-test-churn"),
        "the audit report still lists removed containers: {}",
        &report[..report.len().min(500)]
    );
    eprintln!(
        "churned {CHURNED} containers in {churn_time:?}: fds {baseline_fds} -> {after_fds}, \
         RSS {baseline_rss} KB -> {after_rss} KB"
    );
}

/// The churn's `docker rm -f` once waited on a stuck engine until CI's time
/// limit: a call that runs past its limit is killed and fails the test.
#[test]
fn a_command_stuck_past_its_limit_is_killed_and_reported() {
    let start = Instant::now();
    let error = run_within("sleep", &["60"], Duration::from_secs(1))
        .expect_err("sleep 60 ran past a limit of 1 s");
    assert!(
        error.contains("sleep 60 did not finish within 1 s"),
        "{error}"
    );
    assert!(start.elapsed() < Duration::from_secs(30), "{error}");
}

/// Creates, starts and removes `count` containers, `BATCH` at a time; one in
/// four writes lines (two of them attacks) so the log watch follows it.
/// Each batch is removed once the agent has sampled all of it, so every one
/// had its cgroup files opened.
fn churn(
    agent: &Agent,
    prefix: &str,
    count: usize,
    ours: &mut HashSet<String>,
    all_names: &mut Vec<String>,
) {
    let script = "echo started; \
        echo '10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET /?id=1%20UNION%20SELECT%20password%20FROM%20users HTTP/1.1\" 200 1 \"-\" \"sqlmap\"'; \
        echo '10.0.0.2 - - [01/Jan/2026:00:00:01 +0000] \"GET /../../etc/passwd HTTP/1.1\" 404 0 \"-\" \"curl\"'; \
        exec sleep 300";
    for first in (0..count).step_by(BATCH) {
        let names: Vec<String> = (first..count.min(first + BATCH))
            .map(|_| unique_name(prefix))
            .collect();
        let ids: Vec<String> = std::thread::scope(|scope| {
            let runs: Vec<_> = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    scope.spawn(move || {
                        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
                        if (first + i) % 4 == 0 {
                            args.extend_from_slice(&[BUSYBOX, "sh", "-c", script]);
                        } else {
                            args.extend_from_slice(&[BUSYBOX, "sleep", "300"]);
                        }
                        docker(&args)
                    })
                })
                .collect();
            runs.into_iter().map(|run| run.join().unwrap()).collect()
        });
        ours.extend(ids);
        all_names.extend(names.iter().cloned());
        let sampled = wait_for(Duration::from_secs(60), || {
            let metrics = agent.metrics();
            let sampled: Vec<&str> = metrics
                .lines()
                .filter(|line| line.starts_with("container_memory_usage_bytes{"))
                .collect();
            names
                .iter()
                .all(|name| {
                    let label = format!("name=\"{name}\"");
                    sampled.iter().any(|line| line.contains(&label))
                })
                .then_some(())
        });
        let mut rm = vec!["rm", "-f"];
        rm.extend(names.iter().map(String::as_str));
        docker(&rm);
        assert!(
            sampled.is_some(),
            "the agent did not sample all of {names:?} within 60 s"
        );
    }
}

/// Log lines analysed so far, from every container on the host.
fn log_lines(agent: &Agent) -> f64 {
    series_value(&agent.metrics(), "jaga_log_messages_total", &[])
        .expect("jaga_log_messages_total in /metrics")
}

fn collections(agent: &Agent) -> f64 {
    series_value(&agent.metrics(), "jaga_collections_total", &[])
        .expect("jaga_collections_total in /metrics")
}

/// Waits (up to 120 s) until `/metrics` lists none of `names`.
fn wait_until_gone(agent: &Agent, names: &[String]) {
    let gone = wait_for(Duration::from_secs(120), || {
        let metrics = agent.metrics();
        (!names
            .iter()
            .any(|name| metrics.contains(&format!("name=\"{name}\""))))
        .then_some(())
    });
    assert!(
        gone.is_some(),
        "the agent still lists removed containers after 120 s"
    );
}

/// The agent's open descriptors, not counting those of other containers
/// (other tests may run some meanwhile), once none refers to one of `ours`
/// and they are at most `target`, or after 90 s (the idle sweep is a
/// backstop at 30 s; the log watch may still be catching up on a loaded
/// machine).
fn settle_fds(pid: u32, ours: &HashSet<String>, target: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let count = own_fds(pid, ours);
        let settled = count <= target && fds_of(pid, ours).is_empty();
        if settled || Instant::now() >= deadline {
            return count;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Where each descriptor of `pid` points.
fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the agent's fd directory")
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .map(|target| target.display().to_string())
        .collect()
}

/// The 64-hex container id in a path, if any.
fn container_id_in(path: &str) -> Option<&str> {
    path.split(['/', '-', '.'])
        .find(|part| part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Descriptors that do not belong to someone else's container.
fn own_fds(pid: u32, ours: &HashSet<String>) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|target| container_id_in(target).is_none_or(|id| ours.contains(id)))
        .count()
}

/// The agent's own descriptors counted by kind (socket, cgroup file, ...).
fn fd_kinds(pid: u32, ours: &HashSet<String>) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for target in fd_targets(pid) {
        if container_id_in(&target).is_some_and(|id| !ours.contains(id)) {
            continue;
        }
        let kind = if target.starts_with("/sys/fs/cgroup") {
            "cgroup".to_owned()
        } else if target.ends_with("-json.log") || target.ends_with("(deleted)") {
            "log".to_owned()
        } else {
            target
                .split([':', '['])
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

/// Descriptors that refer to one of our (removed) containers.
fn fds_of(pid: u32, ours: &HashSet<String>) -> Vec<String> {
    fd_targets(pid)
        .into_iter()
        .filter(|target| container_id_in(target).is_some_and(|id| ours.contains(id)))
        .collect()
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read the agent's status")
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
