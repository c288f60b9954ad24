//! Command-line surface: subcommands, global options, logging set-up.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use jaga_config::{Config, LogFormat};
use jaga_engine::{ConnectionSettings, Engine, Redaction};
use jaga_model::escape_control;

use crate::{
    audit, config_cmd, events, health, hub, logs, outputs, serve, shell, stats, token, top,
};
use jaga_agent::sampler::Sampler;

/// jaga watches a Docker host: container metrics, security events, log
/// attacks and posture, in one binary.
#[derive(Debug, Parser)]
#[command(name = "jaga", version = env!("JAGA_LONG_VERSION"), about, long_about = None)]
pub struct Cli {
    /// Config file (default: $JAGA_CONFIG, ./jaga.toml, /etc/jaga/jaga.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Host root to read cgroups and /proc under, when jaga runs in a
    /// container with the host's / mounted (e.g. /host)
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/",
        env = "JAGA_HOST_ROOT"
    )]
    pub host_root: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Display a live stream of container resource usage statistics (docker stats)
    Stats(stats::StatsArgs),
    /// Run the agent: collect every container, keep history, serve /metrics and /api/v1
    Serve(serve::ServeArgs),
    /// Show Docker events live (or --since), with the alerts their rules raise
    Events(events::view::EventsArgs),
    /// Audit the host's container security posture (CIS Docker Benchmark style)
    Audit(audit::AuditArgs),
    /// Decode log lines (stdin or --file) and show the rules they match
    Logtest(logs::cli::LogtestArgs),
    /// Work with rule files
    Rules(logs::cli::RulesArgs),
    /// Make API tokens for `jaga serve` ([serve.auth])
    Token(token::TokenArgs),
    /// List the [[outputs]] alerts are delivered to, or send one a test alert
    Outputs(outputs::OutputsArgs),
    /// Check the config file, or print the effective config
    Config(config_cmd::ConfigArgs),
    /// Ask a running `jaga serve` for /healthz: exit 0 when healthy (the container's HEALTHCHECK)
    Health(health::HealthArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(shell::CompletionsArgs),
    /// Print the man page, or write one per subcommand with --out-dir
    Man(shell::ManArgs),
    /// Show the processes of a container (docker top), as the running agent tracks them
    Top(top::TopArgs),
    /// Run the fleet hub: agents' records from NATS JetStream into PostgreSQL, served for every host ([hub])
    Hub(hub::HubArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Generated from the definitions alone: a broken config must not stop them.
    match cli.command {
        Command::Completions(args) => return shell::completions(args),
        Command::Man(args) => return shell::man(args),
        _ => {}
    }
    let config_file = config_cmd::config_file(cli.config.as_deref());
    let config = load_config(config_file.as_deref())?;
    init_logging(&config);
    raise_fd_limit();
    // Commands that need no Docker engine.
    match cli.command {
        Command::Logtest(args) => return logs::cli::logtest(args, redaction(&config)),
        Command::Rules(args) => return logs::cli::rules(args, &config.metric_rules),
        Command::Token(args) => return token::run(args),
        Command::Outputs(args) => return outputs::run(args, &config),
        Command::Config(args) => return config_cmd::run(args, config_file.as_deref(), &config),
        Command::Health(args) => return health::run(args, &config),
        Command::Top(args) => return top::run(args, &config),
        Command::Hub(args) => return hub::run(args, &config),
        _ => {}
    }
    // Two workers: the collector reads cgroup files on one (block_in_place)
    // while the other keeps serving HTTP.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async move {
        if let Command::Stats(args) = &cli.command {
            if args.no_stream && !args.fresh {
                if let Some(entries) = stats::agent::latest_entries(args, &config).await? {
                    return stats::print_once(args, &entries);
                }
            }
        }
        let engine = connect(&config).await?;
        let sampler = Sampler::new(&cli.host_root).with_context(|| {
            format!(
                "cannot find the cgroup hierarchy under '{}'",
                cli.host_root.display()
            )
        })?;
        match cli.command {
            Command::Stats(args) => stats::run(&engine, &sampler, args).await,
            Command::Serve(args) => serve::run(config, engine, sampler, cli.host_root, args).await,
            Command::Events(args) => events::view::run(&engine, args).await,
            Command::Audit(args) => {
                if audit::run(&engine, cli.host_root, &config.audit, args).await? {
                    return Err(anyhow::Error::new(audit::FailOn));
                }
                Ok(())
            }
            Command::Logtest(_)
            | Command::Rules(_)
            | Command::Token(_)
            | Command::Outputs(_)
            | Command::Config(_)
            | Command::Health(_)
            | Command::Completions(_)
            | Command::Man(_)
            | Command::Top(_)
            | Command::Hub(_) => Ok(()),
        }
    });
    // A filesystem walk still running must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// Lifts the soft limit on open files to the hard one: the cgroup readers
/// keep a handle per file they poll, about 20 per container, and each HTTP
/// client takes one. `jaga serve` warns when it stays low.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be a soft one: the kernel caps open
    // files at fs.nr_open, 1048576 by default.
    let wanted = limit.maximum.unwrap_or(1 << 20);
    match limit.current {
        Some(soft) if soft < wanted => {
            let raised = Rlimit {
                current: Some(wanted),
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => tracing::debug!(from = soft, to = wanted, "open-file limit raised"),
                Err(error) => {
                    tracing::debug!(%error, from = soft, to = wanted, "cannot raise the open-file limit")
                }
            }
        }
        soft => tracing::debug!(soft = ?soft, hard = ?limit.maximum, "open-file limit kept"),
    }
}

fn load_config(file: Option<&Path>) -> anyhow::Result<Config> {
    match file {
        Some(path) => Ok(jaga_config::load_file(path)?),
        None => Ok(Config::default()),
    }
}

async fn connect(config: &Config) -> anyhow::Result<Engine> {
    let settings = ConnectionSettings::resolve(&config.engine, |k| std::env::var(k).ok());
    Ok(Engine::connect(&settings)
        .await?
        .with_redaction(redaction(config)))
}

fn redaction(config: &Config) -> Redaction {
    Redaction::keep_raw(config.redaction.keep_raw)
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // A second initialisation (tests) is harmless: keep the first.
    let _ = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// What is printed for an error: the outermost context and its causes on
/// one line, control characters escaped; a list of rule errors goes one per
/// line below it, each escaped on its own.
pub fn describe(error: &anyhow::Error) -> String {
    // The last cause printed: a cause its context already quotes is skipped.
    let mut last: Option<String> = None;
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if last.as_ref().is_some_and(|last| last.contains(&text)) {
            continue;
        }
        parts.push(
            match cause.downcast_ref::<jaga_rules::logs::RuleFileError>() {
                Some(jaga_rules::logs::RuleFileError::Many(errors)) => {
                    let lines: Vec<String> = errors
                        .iter()
                        .map(|e| format!("\n  {}", escape_control(&e.to_string())))
                        .collect();
                    format!("{} errors:{}", errors.len(), lines.concat())
                }
                _ => escape_control(&text).into_owned(),
            },
        );
        last = Some(text);
    }
    parts.join(": ")
}
