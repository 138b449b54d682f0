//! `sgwatch`: parses the command line, sets up logging and dispatches; the work lives in the
//! modules named after each command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod artifacts;
mod aws;
mod explain;
mod install;
mod package;
mod policy_args;
mod preflight;
mod recorder;
mod rollout;
mod stack;
mod status;
mod teardown;
mod test_event;
mod topic;

use aws::{GlobalArgs, Output};

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
}

#[derive(Debug, Clone, clap::Args)]
struct RolloutArgs {
    /// The targets file (YAML: defaults and targets)
    #[arg(long, value_name = "FILE")]
    targets: PathBuf,
    /// How many account/regions run at once
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Handler zip to install everywhere (built once if absent)
    #[arg(long, value_name = "PATH")]
    handler_zip: Option<PathBuf>,
    /// install, plan, status or teardown
    #[arg(value_parser = ["install", "plan", "status", "teardown"])]
    action: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    let text = g.output == Output::Text;
    match &cli.command {
        Command::Explain(args) => Ok(u8::try_from(explain::run(args)?).unwrap_or(1)),
        Command::Package(args) => {
            let a = package::build(args.arch, &args.output_dir)?;
            if text {
                println!(
                    "{} ({} bytes, sha256 {})",
                    a.path.display(),
                    a.size,
                    a.sha256
                );
            } else {
                print_json(&a)?;
            }
            Ok(0)
        }
        Command::Plan(args) => {
            let config = aws::load(g).await?;
            let report = install::plan(args, &config).await?;
            if text {
                report.print("plan")
            } else {
                print_json(&report)?
            }
            Ok(0)
        }
        Command::Install(args) => {
            let config = aws::load(g).await?;
            let report = install::install(args, &config, text).await?;
            if text {
                report.print("install")
            } else {
                print_json(&report)?
            }
            Ok(0)
        }
        Command::Status(args) => {
            let config = aws::load(g).await?;
            let s = status::status(args, &config).await?;
            if text {
                s.print()
            } else {
                print_json(&s)?
            }
            Ok(u8::from(s.failed()))
        }
        Command::Teardown(args) => {
            confirm(
                g,
                &format!(
                    "remove sgwatch (stack {}) and everything it created",
                    args.stack_name
                ),
            )?;
            let config = aws::load(g).await?;
            let r = teardown::teardown(args, &config, text).await?;
            if text {
                r.print()
            } else {
                print_json(&r)?
            }
            Ok(0)
        }
        Command::Rollout(args) => rollout_command(g, args).await,
        Command::TestEvent(args) => {
            let config = aws::load(g).await?;
            let answer = test_event::run(args, &config).await?;
            if text {
                println!(
                    "test notification for {} delivered to the function; it answered: {answer}",
                    args.group_id
                );
            } else {
                print_json(&answer)?;
            }
            Ok(0)
        }
    }
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

async fn rollout_command(g: &GlobalArgs, args: &RolloutArgs) -> Result<u8> {
    let file = args.targets.display().to_string();
    let text =
        std::fs::read_to_string(&args.targets).with_context(|| format!("cannot read {file}"))?;
    let targets = rollout::parse_targets(&file, &text)?;
    if args.action == "teardown" {
        confirm(
            g,
            &format!("remove sgwatch from {} account/region(s)", targets.len()),
        )?;
    }
    // Built (or checked) once for every target, before any AWS call.
    let zip = match (&args.handler_zip, args.action.as_str()) {
        (_, "status" | "teardown") => None,
        (Some(p), _) => Some(package::check_zip(p, package::Arch::Arm64)?.path),
        (None, _) => Some(package::build(package::Arch::Arm64, &PathBuf::from("dist"))?.path),
    };
    let base = aws::load(g).await?;
    let action = args.action.clone();
    let run = |t: rollout::Target| {
        let (base, action, zip, g) = (base.clone(), action.clone(), zip.clone(), g.clone());
        async move { rollout_target(&base, &g, &t, &action, zip).await }
    };
    let json = g.output == Output::Json;
    let reports = rollout::run_all(targets, &args.action, args.concurrency, run, |r| {
        if !json {
            eprintln!(
                "{} {}/{}: {} ({:.1} s){}",
                if r.result == "ok" { "✓" } else { "✗" },
                r.account,
                r.region,
                r.result,
                r.duration_secs,
                r.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    })
    .await;
    if json {
        print_json(&reports)?;
    } else {
        print!("{}", rollout::table(&reports));
    }
    Ok(u8::from(reports.iter().any(|r| r.result != "ok")))
}

async fn rollout_target(
    base: &aws_config::SdkConfig,
    g: &GlobalArgs,
    t: &rollout::Target,
    action: &str,
    zip: Option<PathBuf>,
) -> Result<Vec<String>> {
    let config = aws::assume(base, g, t).await?;
    let s = &t.settings;
    let stack_name = s.stack_name.clone().unwrap_or_else(|| "sgwatch".to_owned());
    let install_args = || install::InstallArgs {
        sender: s.sender.clone().unwrap_or_default(),
        policy: policy_args::PolicyArgs {
            fallback_recipient: s.fallback_recipient.clone(),
            always_notify_at: s.always_notify_at.clone(),
            notify_tag: s.notify_tag.clone(),
            owner_tag: s.owner_tag.clone(),
            resource_types: s.resource_types.clone(),
            notify_on_relationship_changes: s.notify_on_relationship_changes.unwrap_or(false),
        },
        arch: package::Arch::Arm64,
        stack_name: stack_name.clone(),
        handler_zip: zip.clone(),
        source: match s.source.as_deref() {
            Some("eventbridge") => install::Source::Eventbridge,
            _ => install::Source::Sns,
        },
        extend_recorder: s.extend_recorder.unwrap_or(false),
    };
    match action {
        "install" => Ok(install::install(&install_args(), &config, false)
            .await?
            .changes),
        "plan" => Ok(install::plan(&install_args(), &config).await?.changes),
        "status" => {
            let st = status::status(&status::StatusArgs { stack_name }, &config).await?;
            let failed: Vec<String> = st
                .checks
                .iter()
                .filter(|c| c.level == status::Level::Fail)
                .map(|c| format!("{}: {}", c.check, c.detail))
                .collect();
            if failed.is_empty() {
                Ok(vec![])
            } else {
                bail!("{}", failed.join("; "))
            }
        }
        "teardown" => Ok(teardown::teardown(
            &teardown::TeardownArgs {
                stack_name,
                keep_history: false,
            },
            &config,
            false,
        )
        .await?
        .removed),
        other => bail!("unknown action {other}"),
    }
}
