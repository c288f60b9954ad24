//! Limits on the regexes users write (decoders and rules): a pattern is
//! refused by its length before it is parsed, and by its compiled size.
//! The parser's memory grows with the pattern's length long before the
//! compiled-size limit is checked: one 100 MB pattern took 23.7 GB.

use regex::{Regex, RegexBuilder};

/// The longest pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 16 * 1024;

/// The most heap one compiled regex may take (the `regex` crate's
/// `size_limit`), and the most its lazy DFA cache may grow to.
pub const REGEX_SIZE_LIMIT: usize = 4 << 20;
pub const REGEX_DFA_SIZE_LIMIT: usize = 4 << 20;

/// Why a pattern is too long to be parsed; `None` when it is short enough.
pub fn check_length(pattern: &str) -> Result<(), String> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(format!(
            "the pattern is {} bytes long, more than the limit of {MAX_PATTERN_BYTES}",
            pattern.len()
        ));
    }
    Ok(())
}

/// Compiles a user's pattern within the limits above.
pub fn build_regex(pattern: &str) -> Result<Regex, String> {
    check_length(pattern)?;
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_pattern_is_refused_before_it_is_parsed() {
        let pattern = "a".repeat(MAX_PATTERN_BYTES + 1);
        assert_eq!(
            build_regex(&pattern).unwrap_err(),
            format!(
                "the pattern is {} bytes long, more than the limit of {MAX_PATTERN_BYTES}",
                MAX_PATTERN_BYTES + 1
            )
        );
    }

    #[test]
    fn short_pattern_that_compiles_huge_is_refused() {
        let err = build_regex(r"\w{200}\w{200}\w{200}").unwrap_err();
        assert!(err.contains("exceeds size limit"), "{err}");
    }

    #[test]
    fn ordinary_pattern_compiles() {
        assert!(build_regex(r"^myapp\[(?P<pid>\d+)\]").is_ok());
    }
}
