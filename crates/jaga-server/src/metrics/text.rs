//! Writing families in the Prometheus 0.0.4 and OpenMetrics 1.0.0 text
//! formats: headers, label escaping, number spelling.

use std::borrow::Cow;
use std::fmt::Write as _;

use jaga_model::escape_control;

use super::ExpositionFormat;

/// How a family is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A counter whose name ends in `_total`.
    Counter,
    Gauge,
    /// A counter whose name does not end in `_total` (cAdvisor's
    /// `container_memory_failcnt`): `counter` in the Prometheus format,
    /// `unknown` in OpenMetrics, which forbids such counters.
    LegacyCounter,
    /// A constant `1` whose labels carry the information; the name ends in
    /// `_info`. A gauge in the Prometheus format, `info` in OpenMetrics.
    Info,
}

/// A sample value, kept in the form it was measured in so that nothing is
/// lost on the way to text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Unsigned(u64),
    Signed(i64),
    /// Nanoseconds, written as exact decimal seconds.
    NanosAsSeconds(u64),
    Float(f64),
}

pub(crate) type Label<'a> = (Cow<'a, str>, Cow<'a, str>);

/// One line of a family: labels sorted by name, and a value.
#[derive(Debug, Clone)]
pub(crate) struct Series<'a> {
    pub labels: Vec<Label<'a>>,
    pub value: Value,
}

/// A metric family with its series in output order.
#[derive(Debug, Clone)]
pub(crate) struct Family<'a> {
    /// The sample name, as the Prometheus format writes it.
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub series: Vec<Series<'a>>,
}

pub(crate) struct Writer {
    format: ExpositionFormat,
    out: String,
}

impl Writer {
    pub fn new(format: ExpositionFormat) -> Self {
        Self {
            format,
            out: String::with_capacity(16 * 1024),
        }
    }

    /// Writes the family's header and samples; a family without series is
    /// left out.
    pub fn family(&mut self, family: &Family<'_>) {
        if family.series.is_empty() {
            return;
        }
        let (header_name, type_name) = match (self.format, family.kind) {
            (ExpositionFormat::Prometheus, Kind::Counter | Kind::LegacyCounter) => {
                (family.name, "counter")
            }
            (ExpositionFormat::Prometheus, Kind::Gauge | Kind::Info) => (family.name, "gauge"),
            (ExpositionFormat::OpenMetrics, Kind::Counter) => (
                family.name.strip_suffix("_total").unwrap_or(family.name),
                "counter",
            ),
            (ExpositionFormat::OpenMetrics, Kind::Gauge) => (family.name, "gauge"),
            (ExpositionFormat::OpenMetrics, Kind::LegacyCounter) => (family.name, "unknown"),
            (ExpositionFormat::OpenMetrics, Kind::Info) => (
                family.name.strip_suffix("_info").unwrap_or(family.name),
                "info",
            ),
        };
        self.out.push_str("# HELP ");
        self.out.push_str(header_name);
        self.out.push(' ');
        escape_help(&mut self.out, family.help, self.format);
        self.out.push('\n');
        self.out.push_str("# TYPE ");
        self.out.push_str(header_name);
        self.out.push(' ');
        self.out.push_str(type_name);
        self.out.push('\n');
        for series in &family.series {
            self.out.push_str(family.name);
            write_labels(&mut self.out, &series.labels);
            self.out.push(' ');
            write_value(&mut self.out, series.value);
            self.out.push('\n');
        }
    }

    pub fn finish(mut self) -> String {
        if self.format == ExpositionFormat::OpenMetrics {
            self.out.push_str("# EOF\n");
        }
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[Label<'_>]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

/// Label values escape backslash, double quote and line feed, in both
/// formats, which know no other escape. Other control characters (from
/// container labels, names) are made visible with an escaped backslash, so
/// the value read back is the text `\x1b`, never a raw ESC.
pub(crate) fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => {
                let mut buf = [0u8; 4];
                match escape_control(c.encode_utf8(&mut buf)) {
                    Cow::Borrowed(_) => out.push(c),
                    Cow::Owned(visible) => {
                        out.push('\\');
                        out.push_str(&visible);
                    }
                }
            }
        }
    }
}

/// Help text escapes backslash and line feed; OpenMetrics also the double quote.
fn escape_help(out: &mut String, help: &str, format: ExpositionFormat) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == ExpositionFormat::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

pub(crate) fn write_value(out: &mut String, value: Value) {
    // Writing to a String cannot fail.
    let _ = match value {
        Value::Unsigned(v) => write!(out, "{v}"),
        Value::Signed(v) => write!(out, "{v}"),
        Value::NanosAsSeconds(ns) => {
            let seconds = ns / 1_000_000_000;
            let nanos = ns % 1_000_000_000;
            if nanos == 0 {
                write!(out, "{seconds}")
            } else {
                let fraction = format!("{nanos:09}");
                write!(out, "{seconds}.{}", fraction.trim_end_matches('0'))
            }
        }
        Value::Float(v) => write_float(out, v),
    };
}

fn write_float(out: &mut String, v: f64) -> std::fmt::Result {
    if v.is_nan() {
        out.push_str("NaN");
        return Ok(());
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return Ok(());
    }
    let magnitude = v.abs();
    if v == 0.0 || (1e-5..1e16).contains(&magnitude) {
        // Shortest round-trip form; integral values have no decimal point.
        write!(out, "{v}")
    } else {
        // `1e-7`, `1.5e20`: still shortest round-trip, without a page of zeros.
        write!(out, "{v:e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(v: Value) -> String {
        let mut out = String::new();
        write_value(&mut out, v);
        out
    }

    #[test]
    fn numbers_are_spelled_as_prometheus_reads_them() {
        assert_eq!(value(Value::Unsigned(u64::MAX)), "18446744073709551615");
        assert_eq!(value(Value::Signed(-3)), "-3");
        assert_eq!(value(Value::NanosAsSeconds(1_500_000_000)), "1.5");
        assert_eq!(value(Value::NanosAsSeconds(2_000_000_000)), "2");
        assert_eq!(value(Value::NanosAsSeconds(7)), "0.000000007");
        assert_eq!(
            value(Value::NanosAsSeconds(u64::MAX)),
            "18446744073.709551615"
        );
        assert_eq!(value(Value::Float(0.0125)), "0.0125");
        assert_eq!(value(Value::Float(3.0)), "3");
        assert_eq!(value(Value::Float(0.0)), "0");
        assert_eq!(value(Value::Float(1e-7)), "1e-7");
        assert_eq!(value(Value::Float(1.5e20)), "1.5e20");
        assert_eq!(value(Value::Float(f64::INFINITY)), "+Inf");
        assert_eq!(value(Value::Float(f64::NEG_INFINITY)), "-Inf");
        assert_eq!(value(Value::Float(f64::NAN)), "NaN");
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        let mut out = String::new();
        escape_label_value(&mut out, "a\\b\"c\nd");
        assert_eq!(out, "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn label_values_carry_no_raw_escape_sequences() {
        let mut out = String::new();
        escape_label_value(&mut out, "x\x1b]0;pwned\x07\ry\u{9b}");
        assert_eq!(out, "x\\\\x1b]0;pwned\\\\x07\\\\ry\\\\u{9b}");
        assert!(!out.chars().any(char::is_control));
    }
}
