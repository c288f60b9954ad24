//! `jaga token`: API tokens for `jaga serve`. jaga keeps only their hashes.

use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use jaga_server::auth::{new_token, TokenHash};

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a new API token: the token alone on stdout (shown only now), the
    /// hash to put in the config on stderr
    New,
    /// Print the hash of the token on the first line of stdin
    Hash,
}

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.command {
        TokenCommand::New => {
            let (token, hash) = new_token()?;
            writeln!(std::io::stdout(), "{token}").context("cannot print the token")?;
            eprintln!(
                "Give the token (on stdout) to the client: jaga keeps only its hash, it is not shown again.\n\
                 Add its hash to the config, then restart jaga:\n\n\
                 [serve.auth]\n\
                 tokens = [\"{hash}\"]\n\n\
                 or append the line {hash} to the serve.auth.token_file and send jaga SIGHUP."
            );
            Ok(())
        }
        TokenCommand::Hash => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the token from stdin")?;
            let token = line.trim();
            anyhow::ensure!(!token.is_empty(), "no token on stdin");
            writeln!(std::io::stdout(), "{}", TokenHash::of(token))
                .context("cannot print the hash")?;
            Ok(())
        }
    }
}
