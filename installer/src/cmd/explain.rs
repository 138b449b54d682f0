//! `sgwatch explain`: what the handler would decide and send for a notification, offline.
//!
//! It calls the handler's own decision code, so what it prints is what the Lambda does (less the
//! actor lookup and the S3 read of oversized items, which need AWS).

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use sgwatch_handler::explain::{explain, Explained};
use sgwatch_handler::settings::{Policy, RawPolicy};

use crate::deploy::policy_args::{InvalidSetting, PolicyArgs};

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

/// Why explain could not read its input.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {what}: {source}")]
pub struct ExplainError {
    what: String,
    source: std::io::Error,
}

/// What the handler would do with each record; printed as JSON whatever the output format.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Explanation(pub Vec<Explained>);

impl Explanation {
    /// Whether a record could not be read (the exit code is then 1).
    pub fn failed(&self) -> bool {
        self.0.iter().any(|e| matches!(e, Explained::Error { .. }))
    }
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let json = serde_json::to_string_pretty(&self.0).map_err(|_| std::fmt::Error)?;
        f.write_str(&json)
    }
}

/// Runs `explain` on the input.
pub fn run(args: &ExplainArgs) -> Result<Explanation, crate::Error> {
    let raw = RawPolicy {
        baseline_until: args.baseline_until.clone(),
        accounts: args.accounts.clone(),
        ..args.policy.raw()
    };
    let policy = Policy::from_raw(&raw).map_err(InvalidSetting::from)?;
    let mut text = String::new();
    if args.input.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| ExplainError {
                what: "standard input".into(),
                source,
            })?;
    } else {
        let bytes = std::fs::read(&args.input).map_err(|source| ExplainError {
            what: args.input.display().to_string(),
            source,
        })?;
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let explained = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(event) => explain(&event, &policy),
        Err(e) => vec![Explained::Error {
            error: format!("the input is not JSON: {e}"),
        }],
    };
    Ok(Explanation(explained))
}
