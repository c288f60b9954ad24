//! Any bytes through everything a log line goes through: the Docker
//! json-file wrapper and its reassembly, every decoder, normalization and
//! the whole built-in rule set. It must never panic, and (by the regex
//! crate's construction) never take more than linear time.
#![no_main]

use std::sync::OnceLock;

use jaga_decode::{decode, DockerLine, Reassembler, UserDecoders};
use jaga_rules::logs::{builtin, normalize::normalize, FrequencyState, RuleSet};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| match builtin() {
        Ok(rules) => rules,
        Err(e) => panic!("built-in rules do not compile: {e}"),
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut reassembler = Reassembler::new(64 * 1024);
    for line in text.split('\n') {
        if let Ok(entry) = DockerLine::parse(line) {
            let _ = reassembler.push(entry);
        }
        let fields = decode(line, &UserDecoders::default());
        let _ = normalize(line);
        let mut state = FrequencyState::default();
        let _ = rules().evaluate(&fields, 0, &mut state);
    }
});
