//! Parsers for the shapes most cgroup files share: one number, `max` or a
//! number, and flat `key value` lines.

use crate::error::ParseError;

/// The lines of a flat-keyed file (`cpu.stat`, `memory.stat`,
/// `memory.events`, `cpuacct.stat`, `memory.oom_control`, ...), in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlatKeyed<'a> {
    entries: Vec<(&'a str, u64)>,
}

impl<'a> FlatKeyed<'a> {
    /// Value of `key`, if the file has it.
    pub fn get(&self, key: &str) -> Option<u64> {
        self.entries
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    }

    /// Value of `key`, or 0 when the file lacks it.
    pub fn get_or_zero(&self, key: &str) -> u64 {
        self.get(key).unwrap_or(0)
    }

    pub fn entries(&self) -> &[(&'a str, u64)] {
        &self.entries
    }
}

/// Parses `key value` lines. Blank lines are skipped; any other line must be
/// exactly a key and an unsigned integer.
pub fn parse_flat_keyed(text: &str) -> Result<FlatKeyed<'_>, ParseError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(key), Some(value), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(ParseError::at(
                index + 1,
                format!("expected 'key value', found '{line}'"),
            ));
        };
        let value = parse_u64_field(value, index + 1)?;
        entries.push((key, value));
    }
    Ok(FlatKeyed { entries })
}

/// A file holding one unsigned integer (`memory.usage_in_bytes`, `pids.current`).
pub fn parse_u64(text: &str) -> Result<u64, ParseError> {
    let value = single_token(text)?;
    parse_u64_field(value, 1)
}

/// A file holding one signed integer (`cpu.cfs_quota_us`).
pub fn parse_i64(text: &str) -> Result<i64, ParseError> {
    let value = single_token(text)?;
    value
        .parse::<i64>()
        .map_err(|_| ParseError::at(1, format!("expected an integer, found '{value}'")))
}

/// A file holding `max` or an unsigned integer (`pids.max`, `memory.max`);
/// `max` is `None`.
pub fn parse_max_or_u64(text: &str) -> Result<Option<u64>, ParseError> {
    let value = single_token(text)?;
    if value == "max" {
        Ok(None)
    } else {
        parse_u64_field(value, 1).map(Some)
    }
}

/// Non-blank lines in a file such as `tasks` or `cgroup.threads`.
pub fn count_lines(text: &str) -> u64 {
    text.lines().filter(|line| !line.trim().is_empty()).count() as u64
}

pub(crate) fn parse_u64_field(value: &str, line: usize) -> Result<u64, ParseError> {
    value.parse::<u64>().map_err(|_| {
        ParseError::at(
            line,
            format!("expected an unsigned integer, found '{value}'"),
        )
    })
}

fn single_token(text: &str) -> Result<&str, ParseError> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let Some(first) = lines.next() else {
        return Err(ParseError::whole("file is empty"));
    };
    let mut fields = first.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(value), None) => {
            if lines.next().is_some() {
                return Err(ParseError::at(2, "expected a single line"));
            }
            Ok(value)
        }
        _ => Err(ParseError::at(
            1,
            format!("expected a single value, found '{first}'"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_keyed_reads_keys_in_order() {
        let parsed = parse_flat_keyed("nr_periods 3\nnr_throttled 1\nthrottled_time 42\n").unwrap();
        assert_eq!(parsed.get("nr_periods"), Some(3));
        assert_eq!(parsed.get("throttled_time"), Some(42));
        assert_eq!(parsed.get("absent"), None);
        assert_eq!(parsed.get_or_zero("absent"), 0);
        assert_eq!(parsed.entries().len(), 3);
    }

    #[test]
    fn flat_keyed_rejects_bad_lines_with_line_number() {
        let err = parse_flat_keyed("a 1\nb 2\nc\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert_eq!(err.reason, "expected 'key value', found 'c'");
        let err = parse_flat_keyed("a 1\nb -2\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.reason, "expected an unsigned integer, found '-2'");
        let err = parse_flat_keyed("a 1 2\n").unwrap_err();
        assert_eq!(err.line, Some(1));
    }

    #[test]
    fn flat_keyed_skips_blank_lines() {
        assert_eq!(parse_flat_keyed("\na 1\n\n").unwrap().get("a"), Some(1));
        assert!(parse_flat_keyed("").unwrap().entries().is_empty());
    }

    #[test]
    fn single_values() {
        assert_eq!(parse_u64("1212416\n").unwrap(), 1_212_416);
        assert_eq!(parse_i64("-1\n").unwrap(), -1);
        assert_eq!(parse_max_or_u64("max\n").unwrap(), None);
        assert_eq!(parse_max_or_u64("100\n").unwrap(), Some(100));
        assert_eq!(
            parse_u64("").unwrap_err(),
            ParseError::whole("file is empty")
        );
        assert_eq!(parse_u64("x\n").unwrap_err().line, Some(1));
        assert_eq!(parse_u64("1 2\n").unwrap_err().line, Some(1));
        assert_eq!(parse_u64("1\n2\n").unwrap_err().line, Some(2));
        assert!(parse_max_or_u64("maximum\n").is_err());
    }

    #[test]
    fn counts_lines() {
        assert_eq!(count_lines("13761\n13789\n13790\n"), 3);
        assert_eq!(count_lines(""), 0);
    }
}
