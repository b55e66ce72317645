//! The `synack` binary: parse the flags, start logging, run until SIGINT/SIGTERM; or, with a
//! subcommand (`status`, `stats`, `connect`, `trace`), ask the running daemon; `man` and
//! `completions` print the man page and a shell completion script.
//!
//! Exit codes: 0 after a clean shutdown or a successful command, 1 when setup or the command
//! fails, 2 for a bad flag (from clap).

use std::process::ExitCode;
use synack::cli::{self, Args};

fn main() -> ExitCode {
    let args = Args::from_env();
    cli::init_logging(args.log_level());
    match cli::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // User-facing: one sentence with the fix, not a diagnostic log line.
            eprintln!("synack: {e}");
            ExitCode::from(1)
        }
    }
}
