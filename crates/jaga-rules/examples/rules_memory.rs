//! Memory of the built-in log rules: resident and peak before and after
#![allow(unsafe_code)] // the counting allocator
//! compiling them, and after matching a few lines (`cargo run --release -p
//! jaga-rules --example rules_memory`). Linux only: reads /proc/self/status.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use jaga_decode::{decode, UserDecoders};

/// The system allocator, counting live heap bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;
use jaga_rules::logs::{builtin, FrequencyState};

fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn report(stage: &str) {
    println!(
        "{stage:>16}: heap {:>6} KiB (peak {:>6} KiB); rss {:>6} KiB (peak {:>6} KiB)",
        LIVE.load(Ordering::Relaxed) / 1024,
        PEAK.load(Ordering::Relaxed) / 1024,
        status("VmRSS:"),
        status("VmHWM:")
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    report("start");
    let rules = builtin()?;
    report("compiled");
    let mut state = FrequencyState::default();
    let lines = [
        r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET /index.html HTTP/1.1" 200 612 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0""#,
        r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET /?id=1'%20union%20select%20password%20from%20users--%20 HTTP/1.1" 200 612 "-" "sqlmap/1.7""#,
        r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET /../../etc/passwd HTTP/1.1" 404 0 "-" "curl/8.0""#,
    ];
    let user = UserDecoders::default();
    let mut alerts = 0;
    for round in 0..200 {
        for line in &lines {
            let text = format!("{line} {round}");
            let fields = decode(&text, &user);
            alerts += rules.evaluate(&fields, round, &mut state).len();
        }
    }
    report("after 600 lines");
    println!("{} rules, {alerts} matches", rules.len());
    Ok(())
}
