//! Rules over decoded log lines: the YAML format, normalization, the
//! compiled rule set, and the built-in web attack rules.

pub mod engine;
pub mod format;
pub mod normalize;
mod required;
mod scan;
#[cfg(target_arch = "x86_64")]
mod simd;
mod starts;

pub use engine::{
    FrequencyState, RuleError, RuleFileError, RuleMatch, RuleSet, RuleSource, MAX_RULE_FILE_BYTES,
};

/// The built-in web attack rules.
pub const WEB_RULES: &str = include_str!("../../rules/web-attacks.yml");

/// The built-in rules, compiled.
pub fn builtin() -> Result<RuleSet, RuleFileError> {
    RuleSet::parse(WEB_RULES)
}

#[cfg(test)]
mod tests;
