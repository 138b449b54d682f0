//! `sgwatch explain`: what the handler would decide and send for a notification, offline.
//!
//! It calls the handler's own decision code, so what it prints is what the Lambda does (less the
//! actor lookup and the S3 read of oversized items, which need AWS).

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use sgwatch_handler::explain::{explain_acting, Acting, Explained};
use sgwatch_handler::settings::{Policy, RawPolicy, Settings};

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
    /// Say what auto-revert would do with each change: off (default), shadow or on (the function's SGWATCH_AUTO_REVERT)
    #[arg(long, value_name = "off|shadow|on")]
    pub auto_revert: Option<String>,
    /// The lowest severity auto-revert acts on (default critical; SGWATCH_AUTO_REVERT_AT)
    #[arg(long, value_name = "SEVERITY")]
    pub auto_revert_at: Option<String>,
    /// A principal whose changes auto-revert never undoes and whose changes below HIGH go to the digest (repeatable; SGWATCH_TRUSTED_PRINCIPALS). Only the API calls in the input name a change's actor
    #[arg(long = "trusted-principal", value_name = "PATTERN")]
    pub trusted_principals: Vec<String>,
    /// Say which changes go to the daily digest: off (default), info or low (the function's SGWATCH_DIGEST)
    #[arg(long, value_name = "off|info|low")]
    pub digest: Option<String>,
    /// Say which changes would be gathered with their group's others into one email: a window such as 60s (the function's SGWATCH_COALESCE_SECONDS; default 0, off)
    #[arg(long, value_name = "DURATION", value_parser = crate::deploy::wanted::parse_window)]
    pub coalesce: Option<u64>,
    /// Judge quiet periods (sgwatch:quiet-until) at this RFC 3339 time instead of now
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
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
    // The function's own reading of the same settings: what it would refuse, this refuses.
    let settings = Settings::from_lookup(|name| match name {
        "SGWATCH_SENDER" => Some("explain@example.com".to_owned()),
        "SGWATCH_AUTO_REVERT" => args.auto_revert.clone(),
        "SGWATCH_AUTO_REVERT_AT" => args.auto_revert_at.clone(),
        "SGWATCH_TRUSTED_PRINCIPALS" => Some(args.trusted_principals.join(",")),
        "SGWATCH_DIGEST" => args.digest.clone(),
        _ => None,
    })
    .map_err(InvalidSetting::from)?;
    let now = match &args.at {
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        Some(at) => aws_smithy_types::DateTime::from_str(
            at,
            aws_smithy_types::date_time::Format::DateTimeWithOffset,
        )
        .ok()
        .and_then(|t| u64::try_from(t.secs()).ok())
        .ok_or_else(|| InvalidSetting::Invalid {
            flag: "--at".to_owned(),
            value: at.clone(),
            why: "expected an RFC 3339 time such as 2026-12-24T18:00:00Z".to_owned(),
        })?,
    };
    let acting = Acting {
        auto_revert: settings.auto_revert,
        trusted: settings.trusted_principals,
        quiet: sgwatch_handler::quiet::Quiet {
            coalesce: args.coalesce.unwrap_or(0),
            ..settings.quiet
        },
        now: Some(now),
    };
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
        Ok(event) => explain_acting(&event, &policy, &acting),
        Err(e) => vec![Explained::Error {
            error: format!("the input is not JSON: {e}"),
        }],
    };
    Ok(Explanation(explained))
}
