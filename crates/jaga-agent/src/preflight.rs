//! What `jaga serve` checks before it starts anything — tokens, TLS files,
//! the refusal to listen off loopback without tokens, rule files, outputs,
//! `[remote_write]` and their secrets — shared with `jaga config check`, which stops there.

use std::path::Path;

use anyhow::Context as _;
use jaga_audit::CveTable;
use jaga_config::Config;
use jaga_outputs::RemoteWriter;
use jaga_rules::logs::RuleSet;
use jaga_rules::metric::MetricRules;
use jaga_rules::process::ProcessRules;

use crate::http::{self, HttpSetup};
use crate::outputs::build_output;

/// The parts of the agent that come from the config alone.
pub(crate) struct Preflight {
    pub http: HttpSetup,
    pub log_rules: Option<RuleSet>,
    pub metric_rules: Option<MetricRules>,
    /// `None` when process monitoring is disabled.
    pub process_rules: Option<ProcessRules>,
    pub cves: CveTable,
    /// `[remote_write]`, its secrets and certificates read.
    pub remote_writer: Option<RemoteWriter>,
}

/// Reads and compiles what the config names; nothing is opened or bound.
pub(crate) fn preflight(config: &Config) -> anyhow::Result<Preflight> {
    let http = http::prepare(&config.serve)?;
    // Rule files are checked before anything starts: a bad one must not
    // leave an audit run and alerts written behind it.
    let log_rules = if config.logs.disabled {
        None
    } else {
        Some(crate::sources::logs::load_rules(&config.logs.rules)?)
    };
    let metric_rules = crate::sources::metric_rules::load(config)?;
    let process_rules = if config.process.disabled {
        None
    } else {
        Some(crate::sources::process::load_rules(&config.process.rules)?)
    };
    let cves = crate::sources::audit::load_cve_table(&config.audit)?;
    let remote_writer = config
        .remote_write
        .as_ref()
        .map(RemoteWriter::new)
        .transpose()
        .context("cannot set up [remote_write]")?;
    Ok(Preflight {
        http,
        log_rules,
        metric_rules,
        process_rules,
        cves,
        remote_writer,
    })
}

/// What a config that passed [`check`] sets up, for `jaga config check`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedConfig {
    /// Log rules (built-in and the files of `[logs] rules`); `None`: disabled.
    pub log_rules: Option<usize>,
    /// Metric rules at or above `[alerts] min_level`; `None`: disabled.
    pub metric_rules: Option<usize>,
    /// Each output in effect: name and type.
    pub outputs: Vec<(String, &'static str)>,
    /// Where `[remote_write]` sends metrics (no credentials in it).
    pub remote_write: Option<String>,
    /// Whether API tokens are required.
    pub tokens_required: bool,
    pub tls: bool,
}

/// Everything `jaga serve` would refuse about this config before starting,
/// checked without starting it: the first problem is the error.
pub fn check(config: &Config) -> anyhow::Result<CheckedConfig> {
    let checked = preflight(config)?;
    let mut outputs = Vec::new();
    for entry in config.outputs_in_effect() {
        build_output(&entry, Path::new(&config.serve.data_dir))?;
        outputs.push((entry.name.clone(), entry.settings.kind()));
    }
    Ok(CheckedConfig {
        log_rules: checked.log_rules.as_ref().map(RuleSet::len),
        metric_rules: checked.metric_rules.as_ref().map(MetricRules::len),
        outputs,
        remote_write: checked.remote_writer.as_ref().map(|w| w.shown().to_owned()),
        tokens_required: checked.http.tokens.required(),
        tls: checked.http.tls.is_some(),
    })
}
