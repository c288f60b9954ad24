//! `jaga outputs`: the outputs the config sets up, and a test alert sent to
//! one of them.

use std::io::Write as _;

use anyhow::Context as _;
use jaga_config::{Config, OutputConfig};
use jaga_model::escape_control;
use jaga_outputs::{Message, StoredAlert};

#[derive(Debug, clap::Args)]
pub struct OutputsArgs {
    #[command(subcommand)]
    pub command: OutputsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum OutputsCommand {
    /// List the outputs in effect ([[outputs]] and the alerts file of [alerts]), with their filters and where delivery stands
    List,
    /// Send a test alert to one output and print what its receiver answered (exit 1 when it failed)
    Test {
        /// The output's `name`
        name: String,
    },
}

pub fn run(args: OutputsArgs, config: &Config) -> anyhow::Result<()> {
    match args.command {
        OutputsCommand::List => list(config),
        OutputsCommand::Test { name } => test(config, &name),
    }
}

fn list(config: &Config) -> anyhow::Result<()> {
    let outputs = config.outputs_in_effect();
    // Where delivery stands, when the agent has a store here.
    let store_file = config.serve.data_dir.join(jaga_store::EVENTS_FILE_NAME);
    let (cursors, latest) = if store_file.exists() {
        let store = jaga_store::EventStore::open(&config.serve.data_dir)?;
        (store.output_cursors()?, Some(store.latest_alert_seq()?))
    } else {
        (Vec::new(), None)
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<20} {:<13} {:<9} {:<30} {:<9} {:<10} {:>8} {:>8}",
        "NAME", "TYPE", "MIN_LEVEL", "FILTERS", "GROUPING", "RATE", "CURSOR", "BACKLOG"
    )?;
    for output in &outputs {
        let cursor = cursors.iter().find(|c| c.name == output.name);
        let (at, backlog) = match (cursor, latest) {
            (Some(c), Some(latest)) => (c.seq.to_string(), (latest - c.seq).max(0).to_string()),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        writeln!(
            out,
            "{:<20} {:<13} {:<9} {:<30} {:<9} {:<10} {:>8} {:>8}",
            escape_control(&output.name),
            output.settings.kind(),
            output.min_level,
            escape_control(&filters(output)),
            output
                .group_window_in_effect()
                .map_or("off".to_owned(), |w| humantime::format_duration(w)
                    .to_string()),
            output
                .rate_limit_in_effect()
                .map_or("none".to_owned(), |r| format!("{r}/min")),
            at,
            backlog
        )?;
    }
    Ok(())
}

fn filters(output: &OutputConfig) -> String {
    let mut parts = Vec::new();
    if !output.groups.is_empty() {
        parts.push(format!("groups={}", output.groups.join(",")));
    }
    if !output.rules.is_empty() {
        parts.push(format!("rules={}", output.rules.join(",")));
    }
    if !output.containers.is_empty() {
        parts.push(format!("containers={}", output.containers.join(",")));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(" ")
    }
}

fn test(config: &Config, name: &str) -> anyhow::Result<()> {
    let outputs = config.outputs_in_effect();
    let Some(entry) = outputs.iter().find(|o| o.name == name) else {
        let names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
        anyhow::bail!(
            "no output is named '{name}'; the outputs are: {}",
            if names.is_empty() {
                "(none)".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let output = jaga_outputs::build(&entry.settings, &config.serve.data_dir)
        .with_context(|| format!("cannot set up output '{name}'"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let message = Message::single(StoredAlert {
        seq: 0,
        alert: test_alert(),
    });
    let id = message.idempotency_key();
    match runtime.block_on(output.deliver(&message)) {
        Ok(receipt) => {
            println!(
                "output '{}' ({}) took test alert {id}: {}",
                escape_control(name),
                entry.settings.kind(),
                escape_control(&receipt.answer)
            );
            Ok(())
        }
        Err(jaga_outputs::DeliveryError::Permanent { reason, answer }) => anyhow::bail!(
            "output '{name}' refused test alert {id}: {reason}; the receiver answered: {answer}"
        ),
        Err(error) => anyhow::bail!("output '{name}' did not take test alert {id}: {error}"),
    }
}

/// An alert that says what it is, with an id of its own each time.
fn test_alert() -> jaga_model::Alert {
    let now = jaga_agent::clock::unix_ms();
    jaga_model::Alert {
        id: format!("test.{now}"),
        timestamp: jaga_agent::sink::rfc3339_ms(now),
        rule: jaga_model::AlertRule {
            id: "jaga-test".to_owned(),
            level: 3,
            description: "Test alert from `jaga outputs test`: this output works".to_owned(),
            groups: vec!["jaga".to_owned(), "test".to_owned()],
            mitre: Vec::new(),
        },
        agent: jaga_model::AlertAgent {
            id: String::new(),
            name: jaga_agent::sources::docker_events::hostname(),
        },
        container: None,
        data: Default::default(),
        location: "jaga outputs test".to_owned(),
        event: None,
        episode: None,
    }
}
