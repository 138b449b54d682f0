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

#[derive(Debug, Clone, Args)]
pub struct ExplainArgs {
    /// Fallback recipient (as SGWATCH_FALLBACK_RECIPIENT)
    #[arg(long, value_name = "EMAIL")]
    pub fallback_recipient: Option<String>,
    /// Changes at or above this severity also go to the fallback recipient: critical, high, medium, low, info
    #[arg(long, value_name = "SEVERITY")]
    pub always_notify_at: Option<String>,
    /// Tag that opts a group in (default NotifyOnChange)
    #[arg(long, value_name = "KEY")]
    pub notify_tag: Option<String>,
    /// Tag that lists the owners' addresses (default OwnerDL)
    #[arg(long, value_name = "KEY")]
    pub owner_tag: Option<String>,
    /// Extra resource types to consider, comma-separated (AWS::EC2::SecurityGroup always is)
    #[arg(long, value_name = "TYPE,...")]
    pub resource_types: Option<String>,
    /// Also notify when only attachments (instances, network interfaces) changed
    #[arg(long)]
    pub notify_on_relationship_changes: bool,
    /// A bare Config message, an SNS event or an EventBridge event; `-` reads standard input
    #[arg(value_name = "FILE|-")]
    pub input: PathBuf,
}

impl ExplainArgs {
    fn policy(&self) -> Result<Policy> {
        let raw = RawPolicy {
            notify_tag: self.notify_tag.clone(),
            owner_tag: self.owner_tag.clone(),
            resource_types: self.resource_types.clone(),
            fallback_recipient: self.fallback_recipient.clone(),
            always_notify_at: self.always_notify_at.clone(),
            notify_on_relationship_changes: Some(self.notify_on_relationship_changes.to_string()),
        };
        Policy::from_raw(&raw).map_err(|e| anyhow::anyhow!("invalid setting: {e}"))
    }
}

/// Runs `explain`, printing the JSON array on stdout. Returns the exit code: 0, or 1 when a record
/// could not be read.
pub fn run(args: &ExplainArgs) -> Result<i32> {
    let policy = args.policy()?;
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
