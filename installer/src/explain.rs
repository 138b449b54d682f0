//! `sgwatch explain`: what the handler would decide and send for a notification, offline.
//!
//! It calls the handler's own decision code, so what it prints is what the Lambda does (less the
//! actor lookup and the S3 read of oversized items, which need AWS).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sgwatch_handler::explain::{explain, Explained};
use sgwatch_handler::settings::{Policy, RawPolicy};

use crate::policy_args::PolicyArgs;

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Groups discovered (ResourceDiscovered) before this RFC 3339 time are the baseline of groups that existed when recording started: no email (the function's SGWATCH_BASELINE_UNTIL)
    #[arg(long, value_name = "TIME")]
    pub baseline_until: Option<String>,
    /// Only these accounts are served, comma-separated ids or `*`; others are skipped (the function's SGWATCH_ACCOUNTS). Default: any account
    #[arg(long, value_name = "ID,...")]
    pub accounts: Option<String>,
    /// A bare Config message, an SNS event or an EventBridge event; `-` reads standard input
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
}

/// Runs `explain`, printing the JSON array on stdout. Returns the exit code: 0, or 1 when a record
/// could not be read.
pub fn run(args: &ExplainArgs) -> Result<i32> {
    let raw = RawPolicy {
        baseline_until: args.baseline_until.clone(),
        accounts: args.accounts.clone(),
        ..args.policy.raw()
    };
    let policy = Policy::from_raw(&raw).map_err(|e| anyhow::anyhow!("invalid setting: {e}"))?;
    let mut text = String::new();
    if args.input.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
    } else {
        let bytes = std::fs::read(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let explained = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(event) => explain(&event, &policy),
        Err(e) => vec![Explained::Error {
            error: format!("the input is not JSON: {e}"),
        }],
    };
    println!("{}", serde_json::to_string_pretty(&explained)?);
    let failed = explained
        .iter()
        .any(|e| matches!(e, Explained::Error { .. }));
    Ok(i32::from(failed))
}
