//! `jaga completions` and `jaga man`: shell completions and man pages made
//! from the clap definitions themselves, so they never drift from the parser.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::CommandFactory as _;

use crate::cli::Cli;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write jaga.1 and one page per subcommand (jaga-serve.1, ...) into
    /// this directory instead of printing jaga.1
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

/// The completion script on stdout, e.g. `jaga completions bash >
/// /usr/share/bash-completion/completions/jaga`.
pub fn completions(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut command = Cli::command();
    // clap_complete panics when its writer fails: `jaga completions bash |
    // head` must not. Into memory, then out with the usual error handling.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "jaga", &mut script);
    std::io::stdout()
        .lock()
        .write_all(&script)
        .context("cannot write the completion script to standard output")
}

pub fn man(args: ManArgs) -> anyhow::Result<()> {
    let command = Cli::command();
    match args.out_dir {
        Some(dir) => write_pages(command, &dir),
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut out)
                .context("cannot write the man page to standard output")
        }
    }
}

/// `jaga.1` and `jaga-<sub>[-<subsub>].1` for every subcommand.
fn write_pages(command: clap::Command, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory '{}'", dir.display()))?;
    clap_mangen::generate_to(command, dir)
        .with_context(|| format!("cannot write man pages into '{}'", dir.display()))
}
