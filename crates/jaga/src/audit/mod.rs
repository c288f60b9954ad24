//! `jaga audit`: the posture of this Docker host, as a table, JSON or SARIF,
//! with an exit code for CI gates.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use jaga_audit::{Report, Selection};
use jaga_config::AuditConfig;
use jaga_engine::Engine;
use jaga_model::{escape_control, escape_control_json, Severity};

/// Exit code when findings reach `--fail-on`.
pub const FAIL_EXIT_CODE: u8 = 3;

/// Findings reached `--fail-on`: the binary exits with [`FAIL_EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
#[error("findings reached the --fail-on severity")]
pub struct FailOn;

#[derive(Debug, Clone, clap::Args)]
pub struct AuditArgs {
    /// A grouped table, JSON, or SARIF for code-scanning tools
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = AuditFormat::Table)]
    pub format: AuditFormat,
    /// Exit with code 3 when a finding is at least this severe
    #[arg(long, value_name = "SEVERITY", value_parser = severity_arg())]
    pub fail_on: Option<Severity>,
    /// Only this container's checks (name or id prefix; repeatable)
    #[arg(long, value_name = "CONTAINER")]
    pub container: Vec<String>,
    /// Only these checks (id or prefix such as 5. ; repeatable)
    #[arg(long, value_name = "ID")]
    pub check: Vec<String>,
    /// Skip these checks (id or prefix; repeatable)
    #[arg(long, value_name = "ID")]
    pub skip: Vec<String>,
    /// The daemon's configuration file
    #[arg(long, value_name = "FILE", default_value = "/etc/docker/daemon.json")]
    pub daemon_json: PathBuf,
    /// Print what jaga knows of this CVE and how it decided for this host, instead of the audit
    #[arg(long, value_name = "CVE")]
    pub explain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Sarif,
}

/// `--fail-on`: a severity, checked by clap (a bad one is usage error 2).
fn severity_arg() -> impl clap::builder::TypedValueParser<Value = Severity> {
    use clap::builder::TypedValueParser as _;
    let names = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ]
    .map(Severity::as_str);
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| Severity::parse(&name).unwrap_or(Severity::Info))
}

/// Runs the audit and prints it; `Ok(true)` when `--fail-on` is reached.
pub async fn run(
    engine: &Engine,
    host_root: PathBuf,
    config: &AuditConfig,
    args: AuditArgs,
) -> anyhow::Result<bool> {
    let fail_on = args.fail_on;
    use jaga_agent::sources::audit::{gather, load_cve_table};
    let cves = Arc::new(load_cve_table(config)?);
    let paths = gather::HostPaths {
        root: host_root,
        daemon_json: args.daemon_json.clone(),
        alpine_secfixes: config.alpine_secfixes.clone(),
    };
    if let Some(cve) = &args.explain {
        let daemon = gather::gather_daemon(engine, &paths).await?;
        let text = jaga_audit::explain(&cves, &daemon, cve).with_context(|| {
            format!(
                "jaga knows no '{}': not in its CVE data nor in [audit] cve_data",
                escape_control(cve)
            )
        })?;
        // Line by line: the lines stay, a control character in a changelog does not.
        let escaped: Vec<_> = text.trim_end().lines().map(escape_control).collect();
        writeln!(std::io::stdout().lock(), "{}", escaped.join("\n"))
            .context("cannot write to standard output")?;
        return Ok(false);
    }
    let mut input = gather::gather(engine, &paths).await?;
    input.cves = Some(cves);
    let selection = Selection {
        containers: args.container.clone(),
        checks: args.check.clone(),
        skip: args.skip.clone(),
    };
    if !selection.containers.is_empty() {
        for wanted in &selection.containers {
            let known = input.containers.iter().any(|c| {
                c.name.as_deref().map(|n| n.trim_start_matches('/')) == Some(wanted.as_str())
                    || c.id
                        .as_deref()
                        .is_some_and(|id| id.starts_with(wanted.as_str()))
            });
            if !known {
                anyhow::bail!("No such container: {wanted}");
            }
        }
    }
    let findings = jaga_audit::run(&input, &selection);
    let report = Report::new(&findings);
    let mut stdout = std::io::stdout().lock();
    let text = match args.format {
        // JSON escapes C0 controls itself; C1 and bidi controls too, here.
        AuditFormat::Json => escape_control_json(&report.json()).into_owned(),
        AuditFormat::Sarif => escape_control_json(&report.sarif()).into_owned(),
        AuditFormat::Table => report.table(stdout.is_terminal()),
    };
    writeln!(stdout, "{}", text.trim_end()).context("cannot write to standard output")?;
    Ok(fail_on.is_some_and(|threshold| findings.iter().any(|f| f.severity >= threshold)))
}
