//! `jaga config check` and `jaga config show`: the config file as `jaga
//! serve` would take it, checked without starting, or printed in full.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use jaga_config::Config;
use jaga_engine::Redaction;

#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Check the config as `jaga serve` and `jaga hub` would before starting: keys and values, tokens, TLS files, rule files, outputs, [remote_write], [hub] and their secrets (exit 1 on the first problem)
    Check,
    /// Print the effective config: the file over the defaults, every key, secrets redacted
    Show,
}

/// Environment variables that override keys of the file.
const OVERRIDES: &[(&str, &str)] = &[
    ("DOCKER_HOST", "[engine] host"),
    ("DOCKER_TLS_VERIFY", "[engine] tls_verify"),
    ("DOCKER_CERT_PATH", "[engine] cert_path"),
    ("RUST_LOG", "[log] level"),
];

pub fn run(args: ConfigArgs, file: Option<&Path>, config: &Config) -> anyhow::Result<()> {
    match args.command {
        ConfigCommand::Check => check(file, config),
        ConfigCommand::Show => show(file, config),
    }
}

fn source(file: Option<&Path>) -> String {
    match file {
        Some(path) => format!("config file '{}'", path.display()),
        None => "the built-in defaults (no config file)".to_owned(),
    }
}

fn check(file: Option<&Path>, config: &Config) -> anyhow::Result<()> {
    let checked = jaga_agent::preflight::check(config)
        .with_context(|| format!("{} would not start jaga serve", source(file)))?;
    let hub = match &config.hub {
        Some(_) => {
            let (hub, _, prepared) = crate::hub::preflight(config)
                .with_context(|| format!("{} would not start jaga hub", source(file)))?;
            Some((hub, prepared.postgres_sslmode()))
        }
        None => None,
    };
    let count = |n: Option<usize>| n.map_or("disabled".to_owned(), |n| n.to_string());
    let outputs: Vec<String> = checked
        .outputs
        .iter()
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} is valid\n  listen: {}{}{}\n  log rules: {}\n  metric rules: {}\n  outputs: {}\n  remote write: {}\n  hub: {}",
        jaga_model::escape_control(&source(file)),
        config.serve.listen,
        if checked.tls { ", TLS" } else { "" },
        if checked.tokens_required {
            ", tokens required"
        } else {
            ", no tokens (loopback)"
        },
        count(checked.log_rules),
        count(checked.metric_rules),
        if outputs.is_empty() {
            "none".to_owned()
        } else {
            jaga_model::escape_control(&outputs.join(", ")).into_owned()
        },
        checked
            .remote_write
            .as_deref()
            .map_or("none".into(), jaga_model::escape_control),
        hub.map_or("none".to_owned(), |(hub, sslmode)| format!(
            "listen {}, nats {}, stream {}, consumer {}, postgres sslmode {sslmode}",
            hub.listen,
            jaga_model::escape_control(&hub.nats.shown()),
            jaga_model::escape_control(&hub.stream),
            jaga_model::escape_control(&hub.consumer)
        )),
    )
    .context("cannot write to standard output")
}

fn show(file: Option<&Path>, config: &Config) -> anyhow::Result<()> {
    let mut text = format!(
        "# jaga's effective configuration: {}\n# over the built-in defaults; inline secrets are redacted\n",
        source(file)
    );
    for (variable, key) in OVERRIDES {
        if let Some(value) = std::env::var_os(variable) {
            text.push_str(&format!(
                "# {variable}={} overrides {key}\n",
                value.to_string_lossy()
            ));
        }
    }
    text.push('\n');
    text.push_str(
        &config
            .render()
            .context("cannot render the config as TOML")?,
    );
    // What has a credential's shape anywhere (a URL's password in an
    // Alertmanager URL or DOCKER_HOST) is hidden as everywhere else.
    let text = Redaction::Redact.text(&text);
    let mut out = std::io::stdout().lock();
    for line in text.lines() {
        writeln!(out, "{}", jaga_model::escape_control(line))
            .context("cannot write to standard output")?;
    }
    Ok(())
}

/// The file `--config`, `$JAGA_CONFIG` or the search path point to.
pub fn config_file(explicit: Option<&Path>) -> Option<PathBuf> {
    jaga_config::find_config_file(explicit, |k| std::env::var(k).ok(), Path::exists)
}
