//! `sgwatch`: parses the command line and dispatches; the work lives in the modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod explain;
#[allow(dead_code)] // wired to the CLI with the installer commands
mod rollout;

#[derive(Debug, Parser)]
#[command(
    name = "sgwatch",
    version,
    about = "Emails the owners of an AWS security group when someone changes it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints, offline, what the handler would decide and send for a notification
    Explain(explain::ExplainArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Explain(args) => explain::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
