//! `sgwatch`: parses the command line, sets up logging, dispatches to the library and prints each
//! command's report once (its `Display` for text, its `Serialize` for `--output json`).

use std::fmt::Display;
use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;
use tracing_subscriber::EnvFilter;

use sgwatch::aws::{self, GlobalArgs, Output};
use sgwatch::cmd::hub::{self, HubCommand};
use sgwatch::cmd::rollout::{self, Action, Outcome, RolloutArgs};
use sgwatch::cmd::spoke::{self, SpokeCommand};
use sgwatch::cmd::{explain, install, redrive, status, teardown, test_event, verify};
use sgwatch::deploy::package;

#[derive(Debug, Parser)]
#[command(
    name = "sgwatch",
    version,
    about = "Emails the owners of an AWS security group when someone changes it"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Builds the handler for Linux and writes bootstrap.zip
    Package(package::PackageArgs),
    /// Shows what install would change; changes nothing
    Plan(install::InstallArgs),
    /// Installs or updates sgwatch in one account and region (idempotent)
    Install(install::InstallArgs),
    /// Checks the whole chain, one line per check
    Status(status::StatusArgs),
    /// Removes everything install created, and nothing else
    Teardown(teardown::TeardownArgs),
    /// Runs install, plan, status or teardown over many accounts and regions
    Rollout(RolloutArgs),
    /// Prints, offline, what the handler would decide and send for a notification
    Explain(explain::ExplainArgs),
    /// Sends a test notification built from a group's current state through the deployed function
    TestEvent(test_event::TestEventArgs),
    /// Proves the chain with a real change to a throwaway group, and times each step
    Verify(verify::VerifyArgs),
    /// Lists what is parked in the failure queue; with --yes, replays it through the function
    Redrive(redrive::RedriveArgs),
    /// The organization's one handler, in the security account: install, plan, status (with the
    /// coverage map), teardown
    #[command(subcommand)]
    Hub(HubCommand),
    /// A member account and region that tells the hub: install, plan, status, teardown
    #[command(subcommand)]
    Spoke(SpokeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Log lines on standard error: RUST_LOG when set; otherwise none, or with `-v` the debug lines
/// of sgwatch and the AWS SDK (`-vv`: trace).
fn logging(verbose: u8) {
    let filter = match (std::env::var("RUST_LOG"), verbose) {
        (Ok(spec), _) if !spec.is_empty() => EnvFilter::new(spec),
        (_, 0) => return,
        (_, 1) => EnvFilter::new("debug"),
        _ => EnvFilter::new("trace"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// Prints a report in the chosen format.
fn report(output: Output, value: &(impl Display + Serialize)) -> Result<()> {
    match output {
        Output::Text => print!("{value}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Explain(args) => {
            let explained = explain::run(args)?;
            println!("{explained}");
            Ok(u8::from(explained.failed()))
        }
        Command::Package(args) => {
            let artifact = package::build(args.arch, &args.output_dir)?;
            if g.output == Output::Text {
                println!("{artifact}");
            } else {
                report(g.output, &artifact)?;
            }
            Ok(0)
        }
        Command::Plan(args) => {
            let r = install::plan(args, &aws::load(g).await?).await?;
            warn(&r.warnings);
            report(g.output, &r)?;
            Ok(0)
        }
        Command::Install(args) => {
            let progress = g.output == Output::Text;
            let r = install::install(args, &aws::load(g).await?, progress).await?;
            warn(&r.warnings);
            report(g.output, &r)?;
            Ok(0)
        }
        Command::Status(args) => {
            let s = status::status(args, &aws::load(g).await?).await?;
            report(g.output, &s)?;
            Ok(u8::from(s.failed()))
        }
        Command::Teardown(args) => teardown(g, args).await,
        Command::Rollout(args) => rollout(g, args).await,
        Command::TestEvent(args) => {
            let answer = test_event::run(args, &aws::load(g).await?).await?;
            report(g.output, &answer)?;
            if g.output == Output::Text {
                println!();
            }
            Ok(0)
        }
        Command::Verify(args) => {
            // The progress line goes to stderr, whatever the output format.
            let verified = verify::run(args, &aws::load(g).await?, true).await?;
            report(g.output, &verified)?;
            Ok(u8::from(!verified.email_accepted))
        }
        Command::Hub(c) => hub_command(g, c).await,
        Command::Spoke(c) => spoke_command(g, c).await,
        Command::Redrive(args) => {
            let replay = g.yes && !args.dry_run;
            let r = redrive::run(args, &aws::load(g).await?, replay).await?;
            report(g.output, &r)?;
            Ok(u8::from(r.failed()))
        }
    }
}

/// `sgwatch hub …`.
async fn hub_command(g: &GlobalArgs, c: &HubCommand) -> Result<u8> {
    let progress = g.output == Output::Text;
    match c {
        HubCommand::Install(args) => {
            let r = hub::install(args, &aws::load(g).await?, progress).await?;
            warn(&r.install.warnings);
            report(g.output, &r)?;
            Ok(0)
        }
        HubCommand::Plan(args) => {
            let r = install::plan(&args.install_args(), &aws::load(g).await?).await?;
            warn(&r.warnings);
            report(g.output, &r)?;
            Ok(0)
        }
        HubCommand::Status(args) => {
            let s = hub::status(args, &aws::load(g).await?).await?;
            report(g.output, &s)?;
            Ok(u8::from(s.failed()))
        }
        HubCommand::Teardown(args) => teardown(g, args).await,
    }
}

/// `sgwatch spoke …`.
async fn spoke_command(g: &GlobalArgs, c: &SpokeCommand) -> Result<u8> {
    let progress = g.output == Output::Text;
    match c {
        SpokeCommand::Install(args) => {
            let r = spoke::install(args, &aws::load(g).await?, progress).await?;
            warn(&r.warnings);
            report(g.output, &r)?;
            Ok(0)
        }
        SpokeCommand::Plan(args) => {
            let r = spoke::plan_only(args, &aws::load(g).await?).await?;
            warn(&r.warnings);
            report(g.output, &r)?;
            Ok(0)
        }
        SpokeCommand::Status(args) => {
            let s = spoke::status(args, &aws::load(g).await?).await?;
            report(g.output, &s)?;
            Ok(u8::from(s.failed()))
        }
        SpokeCommand::Teardown(args) => {
            let what = format!("remove the sgwatch spoke (stack {})", args.stack_name);
            confirm(g, &what)?;
            let r = spoke::teardown(args, &aws::load(g).await?, progress).await?;
            warn(&r.warnings);
            report(g.output, &r)?;
            Ok(0)
        }
    }
}

/// `sgwatch teardown`, once confirmed.
async fn teardown(g: &GlobalArgs, args: &teardown::TeardownArgs) -> Result<u8> {
    let what = format!(
        "remove sgwatch (stack {}) and everything it created",
        args.stack_name
    );
    confirm(g, &what)?;
    let progress = g.output == Output::Text;
    let r = teardown::teardown(args, &aws::load(g).await?, progress).await?;
    report(g.output, &r)?;
    Ok(0)
}

/// `sgwatch rollout`, each target's line shown as it finishes; a teardown once confirmed.
async fn rollout(g: &GlobalArgs, args: &RolloutArgs) -> Result<u8> {
    let targets = rollout::read_targets(&args.targets)?;
    if args.action == Action::Teardown {
        let what = format!("remove sgwatch from {} account/region(s)", targets.len());
        confirm(g, &what)?;
    }
    let text = g.output == Output::Text;
    let done = rollout::rollout(g, args, targets, |r| {
        if text {
            progress_line(r)
        }
    })
    .await?;
    report(g.output, &done)?;
    Ok(u8::from(done.failed()))
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// A rollout target as it finishes: `✓ ACCOUNT/REGION: ok (1.2 s)`.
fn progress_line(r: &rollout::TargetReport) {
    let error = r
        .error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    eprintln!(
        "{} {}/{}: {} ({:.1} s){error}",
        if r.result == Outcome::Ok {
            "✓"
        } else {
            "✗"
        },
        r.account,
        r.region,
        r.result,
        r.duration_secs,
    );
}

/// Asks before destroying, unless --yes; refuses to guess on a non-interactive stdin.
fn confirm(g: &GlobalArgs, what: &str) -> Result<()> {
    if g.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("about to {what}: pass --yes to confirm when not running interactively");
    }
    eprint!("About to {what}. Continue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("cancelled");
    }
    Ok(())
}
