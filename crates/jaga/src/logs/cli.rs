//! `jaga logtest` and `jaga rules check`: the tools for writing rules.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use jaga_engine::Redaction;
use jaga_model::{escape_control, escape_control_json};
use serde::Serialize;

use jaga_agent::sources::logs::{load_metric_rules, load_rules, Analyzer};

#[derive(Debug, Clone, clap::Args)]
pub struct LogtestArgs {
    /// Read lines from this file instead of standard input
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Extra rule files (YAML), used after the built-in rules
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Text, or JSON: one object per line
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogtestFormat::Text)]
    pub format: LogtestFormat,
    /// Lines are Docker json-file entries ({"log": ...}); unwrap them first
    #[arg(long)]
    pub docker_json: bool,
    /// Print only totals: lines, decoders, rules matched, lines per second
    #[arg(long)]
    pub summary: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogtestFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    pub command: RulesCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RulesCommand {
    /// Validate a rule file (log rules; metric rules: rules with `metric:`; process rules: `process_rules:`); each error names its rule id and line
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the metric rules (built-in defaults, [metric_rules] rules, --rules) in another tool's format
    Export {
        /// As a Prometheus alerting rules file over the metrics `jaga serve` exports
        #[arg(long, required = true)]
        prometheus: bool,
        /// Extra metric rule files (YAML), after those of [metric_rules] rules
        #[arg(long = "rules", value_name = "FILE")]
        rules: Vec<PathBuf>,
        /// Leave out the built-in defaults [config: metric_rules.no_defaults]
        #[arg(long)]
        no_defaults: bool,
    },
}

#[derive(Serialize)]
struct Verdict<'a> {
    line: &'a str,
    decoder: &'a str,
    fields: std::collections::BTreeMap<&'a str, &'a str>,
    rules: &'a [jaga_rules::logs::RuleMatch],
}

/// The lines of a reader, each without its `\n`: borrowed from the
/// reader's buffer when it lies whole in it (most lines of a file read a
/// megabyte at a time), copied only when it spans two reads.
struct Lines<R> {
    reader: R,
    /// A line that spans two reads.
    spill: Vec<u8>,
    /// Bytes of the buffer the line handed out last took.
    taken: usize,
}

impl<R: BufRead> Lines<R> {
    fn new(reader: R) -> Self {
        Self {
            reader,
            spill: Vec::new(),
            taken: 0,
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.reader.consume(std::mem::take(&mut self.taken));
        let end = {
            let buffer = self.reader.fill_buf()?;
            if buffer.is_empty() {
                return Ok(None);
            }
            memchr::memchr(b'\n', buffer)
        };
        if let Some(end) = end {
            self.taken = end + 1;
            // The same buffer: `fill_buf` reads only when it is empty.
            return Ok(self.reader.fill_buf()?.get(..end));
        }
        self.spill.clear();
        self.reader.read_until(b'\n', &mut self.spill)?;
        Ok(Some(self.spill.strip_suffix(b"\n").unwrap_or(&self.spill)))
    }
}

pub fn logtest(args: LogtestArgs, redaction: Redaction) -> anyhow::Result<()> {
    let json = args.format == LogtestFormat::Json;
    let mut analyzer = Analyzer::new(load_rules(&args.rules)?).with_redaction(redaction);
    let reader: Box<dyn BufRead> = match &args.file {
        // Lines of up to 8 KB and more: a buffer of many, not of one.
        Some(path) => Box::new(std::io::BufReader::with_capacity(
            1 << 20,
            std::fs::File::open(path)
                .with_context(|| format!("cannot open '{}'", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    let mut stdout = std::io::stdout().lock();
    let mut line_no = 0u64;
    let started = std::time::Instant::now();
    let mut decoders: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    // Rule id -> lines matched, and the rule as printed.
    let mut matched: std::collections::BTreeMap<String, (u64, String)> =
        std::collections::BTreeMap::new();
    let mut lines = Lines::new(reader);
    while let Some(bytes) = lines.next_line().context("cannot read input")? {
        line_no += 1;
        // Checked with SIMD (std's check goes a byte at a time past ASCII);
        // the lossy decoder only for lines that are not UTF-8.
        let raw = match simdutf8::basic::from_utf8(bytes) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(bytes),
        };
        let raw = raw.trim_end_matches('\r');
        let text: std::borrow::Cow<'_, str> = if args.docker_json {
            match jaga_decode::DockerLine::parse(raw) {
                Ok(entry) => entry.log.trim_end_matches('\n').to_owned().into(),
                Err(error) => {
                    let error = error.to_string();
                    writeln!(
                        stdout,
                        "line {line_no}: skipped: {}",
                        escape_control(&error)
                    )?;
                    continue;
                }
            }
        } else {
            raw.into()
        };
        let now = jaga_agent::clock::unix_secs().max(0) as u64;
        let (fields, matches) = analyzer.analyze(&text, None, now);
        if args.summary {
            // Counted without a copy of the names once they are known.
            match decoders.get_mut(fields.decoder.as_ref()) {
                Some(n) => *n += 1,
                None => {
                    decoders.insert(fields.decoder.to_string(), 1);
                }
            }
            for m in &matches {
                match matched.get_mut(m.id.as_str()) {
                    Some((n, _)) => *n += 1,
                    None => {
                        let name = format!(
                            "{} (level {}) {}",
                            escape_control(&m.id),
                            m.level,
                            escape_control(&m.description)
                        );
                        matched.insert(m.id.clone(), (1, name));
                    }
                }
            }
            continue;
        }
        if json {
            let verdict = Verdict {
                line: &text,
                decoder: &fields.decoder,
                fields: fields
                    .values
                    .iter()
                    .map(|(k, v)| (k.as_ref(), v.as_ref()))
                    .collect(),
                rules: &matches,
            };
            let json = serde_json::to_string(&verdict)?;
            writeln!(stdout, "{}", escape_control_json(&json))?;
        } else {
            writeln!(
                stdout,
                "**Phase 1: line {line_no}\n    {}",
                escape_control(&text)
            )?;
            writeln!(
                stdout,
                "**Phase 2: decoder '{}'",
                escape_control(&fields.decoder)
            )?;
            for (k, v) in &fields.values {
                writeln!(stdout, "    {}: '{}'", escape_control(k), escape_control(v))?;
            }
            writeln!(stdout, "**Phase 3: {} rule(s) matched", matches.len())?;
            for m in &matches {
                writeln!(
                    stdout,
                    "    id: '{}'  level: '{}'  description: '{}'",
                    escape_control(&m.id),
                    m.level,
                    escape_control(&m.description)
                )?;
                writeln!(stdout, "    groups: {:?}  mitre: {:?}", m.groups, m.mitre)?;
                if let Some(payload) = &m.payload {
                    writeln!(
                        stdout,
                        "    payload ({}): '{}'",
                        escape_control(m.payload_field.as_deref().unwrap_or("?")),
                        escape_control(payload)
                    )?;
                }
            }
            writeln!(stdout)?;
        }
    }
    if args.summary {
        let seconds = started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            line_no as f64 / seconds
        } else {
            0.0
        };
        writeln!(
            stdout,
            "lines: {line_no}  seconds: {seconds:.3}  lines/s: {rate:.0}"
        )?;
        for (decoder, n) in &decoders {
            writeln!(stdout, "decoder {}: {n}", escape_control(decoder))?;
        }
        for (n, rule) in matched.values() {
            writeln!(stdout, "rule {rule}: {n}")?;
        }
    }
    stdout.flush().context("cannot write to standard output")?;
    Ok(())
}

pub fn rules(args: RulesArgs, config: &jaga_config::MetricRulesConfig) -> anyhow::Result<()> {
    match args.command {
        RulesCommand::Check { file } => {
            // Errors are escaped where they are printed (main). Checked with the built-in rules, as `serve` and
            // `logtest` load them: a parent or a duplicate id may be one of theirs.
            let texts = jaga_agent::sources::logs::RuleFiles::read(std::slice::from_ref(&file))?;
            let metric = texts
                .texts()
                .first()
                .is_some_and(|text| jaga_rules::metric::is_metric_rule_file(text));
            let process = texts
                .texts()
                .first()
                .is_some_and(|text| jaga_rules::process::is_process_rule_file(text));
            let (kind, with_file, builtin) = if process {
                let builtin = jaga_rules::process::ProcessRules::builtin()
                    .map_err(|e| anyhow::anyhow!("invalid built-in process rules: {e}"))?;
                let with_file =
                    jaga_agent::sources::process::load_rules(std::slice::from_ref(&file))?;
                ("process rule(s)", with_file.len(), builtin.len())
            } else if metric {
                let builtin = jaga_rules::metric::builtin()
                    .map_err(|e| anyhow::anyhow!("invalid built-in metric rules: {e}"))?;
                let with_file = load_metric_rules(std::slice::from_ref(&file), true)?;
                ("metric rule(s)", with_file.len(), builtin.len())
            } else {
                let builtin = jaga_rules::logs::builtin()
                    .map_err(|e| anyhow::anyhow!("invalid built-in rules: {e}"))?;
                let with_file = load_rules(std::slice::from_ref(&file))?;
                ("rule(s)", with_file.len(), builtin.len())
            };
            println!(
                "{}: {} {kind} OK",
                escape_control(&file.display().to_string()),
                with_file - builtin
            );
            Ok(())
        }
        RulesCommand::Export {
            prometheus: _,
            rules,
            no_defaults,
        } => {
            let mut files = config.rules.clone();
            files.extend(rules);
            let loaded = load_metric_rules(&files, !(no_defaults || config.no_defaults))?;
            let text = jaga_rules::metric::prometheus_rules(&loaded)
                .context("cannot write the metric rules as Prometheus rules")?;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write to standard output")?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_spanning_reads_are_read_whole_and_the_last_without_a_newline_too() {
        let text = b"a\n\nlonger than the buffer\r\nb\nexactly7\nlast";
        for capacity in [1, 2, 3, 7, 8, 9, 64] {
            let mut lines = Lines::new(std::io::BufReader::with_capacity(capacity, &text[..]));
            let mut read = Vec::new();
            while let Some(line) = lines.next_line().unwrap() {
                read.push(String::from_utf8_lossy(line).into_owned());
            }
            assert_eq!(
                read,
                ["a", "", "longer than the buffer\r", "b", "exactly7", "last"],
                "buffer of {capacity}"
            );
        }
    }
}
