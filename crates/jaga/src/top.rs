//! `jaga top CONTAINER`: the processes of a container, as `docker top`
//! shows them, from the running agent's own tracking (its
//! `/api/v1/containers/{c}/processes`), with no Engine call.

use std::io::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use jaga_model::{escape_control, ContainerProcess};
use serde::Deserialize;

use crate::agent_client::{percent_encode, AgentArgs, AgentClient};

/// The agent must answer within this.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// Container name, id or id prefix
    pub container: String,
    #[command(flatten)]
    pub agent: AgentArgs,
}

#[derive(Deserialize)]
struct Answer {
    name: String,
    processes: Vec<ContainerProcess>,
}

pub fn run(args: TopArgs, config: &jaga_config::Config) -> anyhow::Result<()> {
    let agent = AgentClient::new(&args.agent, config, TIMEOUT)?;
    let path = format!(
        "/api/v1/containers/{}/processes",
        percent_encode(&args.container)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let answer: Answer = runtime.block_on(agent.get(&path))?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(render(&answer.processes).as_bytes())?;
    if answer.processes.is_empty() {
        writeln!(
            stdout,
            "(no process tracked in {})",
            escape_control(&answer.name)
        )?;
    }
    stdout.flush().context("cannot write to standard output")?;
    Ok(())
}

/// The table `docker top` prints (ps -ef's columns jaga knows).
pub fn render(processes: &[ContainerProcess]) -> String {
    let rows: Vec<[String; 6]> = processes
        .iter()
        .map(|p| {
            [
                p.user
                    .clone()
                    .or_else(|| p.uid.map(|u| u.to_string()))
                    .unwrap_or_else(|| "?".to_owned()),
                p.pid.to_string(),
                p.ppid.to_string(),
                chrono::DateTime::from_timestamp_millis(p.started_unix_ms)
                    .filter(|_| p.started_unix_ms > 0)
                    .map_or("?".to_owned(), |t| t.format("%H:%M:%S").to_string()),
                if p.tty { "pts" } else { "?" }.to_owned(),
                escape_control(&p.command).into_owned(),
            ]
        })
        .collect();
    let header = ["UID", "PID", "PPID", "STIME", "TTY", "CMD"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.push('\n');
        out
    };
    let mut text = line(header);
    for row in &rows {
        text.push_str(&line([
            &row[0], &row[1], &row[2], &row[3], &row[4], &row[5],
        ]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_docker_tops_columns_and_escapes_commands() {
        let processes = vec![
            ContainerProcess {
                pid: 4242,
                ppid: 4200,
                uid: Some(0),
                user: Some("root".to_owned()),
                exe: Some("/bin/busybox".to_owned()),
                command: "sleep 60".to_owned(),
                tty: false,
                started_unix_ms: 1_700_000_000_000,
            },
            ContainerProcess {
                pid: 4300,
                ppid: 4242,
                uid: Some(1000),
                command: "sh -c \u{1b}[31m".to_owned(),
                tty: true,
                ..ContainerProcess::default()
            },
        ];
        assert_eq!(
            render(&processes),
            "UID   PID   PPID  STIME     TTY  CMD\n\
             root  4242  4200  22:13:20  ?    sleep 60\n\
             1000  4300  4242  ?         pts  sh -c \\x1b[31m\n"
        );
        assert_eq!(percent_encode("web/1 x"), "web%2F1%20x");
    }
}
