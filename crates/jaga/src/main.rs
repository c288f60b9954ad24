//! The `jaga` binary: parses arguments, loads config, runs a command, and maps
//! errors to exit codes. Logic lives in the parts it calls.

use std::process::ExitCode;

use clap::Parser;
use jaga::cli;

fn main() -> ExitCode {
    // Before any thread starts: they take their arenas at their first allocation.
    jaga::heap::limit_arenas();
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `jaga stats | head` closing the pipe is not an error.
            if error
                .chain()
                .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
                .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            if error.downcast_ref::<jaga::audit::FailOn>().is_some() {
                return ExitCode::from(jaga::audit::FAIL_EXIT_CODE);
            }
            // Escaped there: messages quote outside input (names, files, filters).
            eprintln!("Error: {}", cli::describe(&error));
            ExitCode::from(1)
        }
    }
}
