//! Cost per line of decode + the built-in web rules, by kind of text: a
//! micro-benchmark to find where time goes (`cargo run --release -p
//! jaga-rules --example rules_cost`). Prints lines/s per class, and the
//! time of normalization alone, each the best of short batches (the
//! machine is shared: the best batch is the one that ran alone).
//!
//! `--rules FILE` times the rules of that file in place of the built-in
//! ones (one rule alone, or all but one, to see what each costs), and the
//! class `varied printable` gives every line new random text, as a fuzzer
//! does: the lazy DFAs keep building states, so it is timed over 4,000
//! lines after 4,000 lines of warm-up, not by best batch.

use std::time::Instant;

use jaga_decode::{decode, UserDecoders};
use jaga_rules::logs::{builtin, normalize::Normalizer, FrequencyState, RuleSet};

fn percent(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn line(url: &str) -> String {
    format!(
        r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET {url} HTTP/1.1" 200 612 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0""#
    )
}

/// Characters of `alphabet` drawn at random (seeded) to at most `bytes`:
/// text that never repeats.
fn scrambled(alphabet: &str, bytes: usize) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let mut seed = 7u32;
    let mut out = String::new();
    loop {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let c = chars[(seed >> 16) as usize % chars.len()];
        if out.len() + c.len_utf8() > bytes {
            return out;
        }
        out.push(c);
    }
}

fn fill(unit: &str, bytes: usize) -> String {
    let mut out = String::new();
    while out.len() + unit.len() <= bytes {
        out.push_str(unit);
    }
    out
}

/// Runs per second of the fastest of many short batches: the machine is
/// shared, and the best batch is the one that had a core to itself.
fn best_rate(seconds: f64, mut run: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut best = 0f64;
    while start.elapsed().as_secs_f64() < seconds {
        let batch = Instant::now();
        for _ in 0..20 {
            run();
        }
        best = best.max(20.0 / batch.elapsed().as_secs_f64());
    }
    best
}

/// Lines of random letters, digits and punctuation, each new (seeded):
/// the benchmark's `varied printable` class.
fn varied_printable(lines: usize, bytes: usize) -> Vec<String> {
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789'()<>;|&$`{}[]*/.=-#+";
    let mut seed = 12_345u64;
    (0..lines)
        .map(|_| {
            let text: String = (0..bytes)
                .map(|_| {
                    seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    alphabet[(seed >> 33) as usize % alphabet.len()] as char
                })
                .collect();
            line(&format!("/search?q={text}"))
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let rules = if args.peek().map(String::as_str) == Some("--rules") {
        let path = args.nth(1).ok_or("--rules needs a file")?;
        RuleSet::parse(&std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?)?
    } else {
        builtin()?
    };
    let budget = 7_600;
    let only = args.next();
    let user = UserDecoders::default();
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if wanted("varied printable") {
        let lines = varied_printable(8_000, budget);
        let (warm_up, timed) = lines.split_at(lines.len() / 2);
        let mut state = FrequencyState::default();
        for text in warm_up {
            std::hint::black_box(rules.evaluate(&decode(text, &user), 0, &mut state));
        }
        let start = Instant::now();
        for text in timed {
            std::hint::black_box(rules.evaluate(&decode(text, &user), 0, &mut state));
        }
        let rate = timed.len() as f64 / start.elapsed().as_secs_f64();
        println!("varied printable   {budget:5} B {rate:>10.0} lines/s (after warm-up)");
    }
    let classes: Vec<(&str, String)> = vec![
        (
            "latin words",
            line(&format!("/search?q={}", fill("hello+world+", budget))),
        ),
        (
            "percent latin",
            line(&format!(
                "/search?q={}",
                percent(&fill("hello world ", budget / 3))
            )),
        ),
        (
            "percent hebrew",
            line(&format!(
                "/search?q={}",
                percent(&fill("שלום עולם ", budget / 3))
            )),
        ),
        (
            "percent cyrillic",
            line(&format!(
                "/search?q={}",
                percent(&fill("привет мир ", budget / 3))
            )),
        ),
        (
            "raw cyrillic",
            line(&format!("/search?q={}", fill("привет+мир+", budget))),
        ),
        ("quotes", line(&format!("/search?q={}", fill("'", budget)))),
        (
            "double quotes",
            line(&format!("/search?q={}", fill("%22", budget))),
        ),
        (
            "one char",
            line(&format!("/search?q={}", fill("a", budget))),
        ),
        ("parens", line(&format!("/search?q={}", fill("(", budget)))),
        (
            "dots slashes",
            line(&format!("/search?q={}", fill("../", budget))),
        ),
        (
            "percent percent",
            line(&format!("/search?q={}", fill("%25", budget))),
        ),
        (
            "comments",
            line(&format!("/search?q={}", fill("/*", budget))),
        ),
        (
            "lookups",
            line(&format!("/search?q={}", fill("${", budget))),
        ),
        (
            "nested lookups",
            line(&format!("/search?q={}", fill("${${j", budget))),
        ),
        (
            "angles",
            line(&format!("/search?q={}", fill("<a ", budget))),
        ),
        (
            "entities",
            line(&format!("/search?q={}", fill("&#x", budget))),
        ),
        (
            "ampersands",
            line(&format!("/search?q={}", fill("a=1&", budget))),
        ),
        (
            "ampersands semicolon",
            line(&format!("/search?q=;{}", fill("a=1&", budget))),
        ),
        (
            "exec comments",
            line(&format!("/search?q={}", fill("/*!", budget))),
        ),
        (
            "semicolons",
            line(&format!("/search?q={}", fill(";a", budget))),
        ),
        (
            "agent",
            format!(
                r#"203.0.113.7 - - [23/Nov/2026:03:24:25 +0000] "GET / HTTP/1.1" 200 612 "-" "{}""#,
                fill("Mozilla/5.0 (X; Y) ", budget)
            ),
        ),
        (
            "scrambled latin",
            line(&format!(
                "/search?q={}",
                scrambled("abcdefghijklmnopqrstuvwxyz+", budget)
            )),
        ),
        (
            "scrambled cyrillic",
            line(&format!(
                "/search?q={}",
                percent(&scrambled("абвгдежзийклмнопрстуфхцчшщыэюя ", budget / 3))
            )),
        ),
        (
            "scrambled punct",
            line(&format!(
                "/search?q={}",
                scrambled("'()<>;|&$`{}[]*/.=-#", budget)
            )),
        ),
        ("short", line("/index.html?a=1")),
    ];
    for (name, text) in classes.iter().filter(|(n, _)| wanted(n)) {
        let mut state = FrequencyState::default();
        let seconds = if only.is_some() { 3.0 } else { 0.5 };
        let rate = best_rate(seconds, || {
            let fields = decode(text, &user);
            std::hint::black_box(rules.evaluate(&fields, 0, &mut state));
        });
        // With its buffers kept, as the rules normalize.
        let (mut normalizer, mut out) = (Normalizer::default(), Vec::new());
        let norm = best_rate(0.2, || {
            std::hint::black_box(normalizer.normalize_into(text, &mut out));
        });
        println!(
            "{name:18} {:5} B {rate:>10.0} lines/s   normalize alone {norm:>10.0}/s",
            text.len()
        );
    }
    Ok(())
}
