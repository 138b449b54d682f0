//! `sgwatch teardown`: removes everything install created and nothing else, as its record says:
//! the subscription to an adopted topic, the recorder and channel if install created them (or
//! the security groups it added to an adopted recorder), the stack, the Config bucket (which the
//! stack retains; `--keep-history` keeps it) and the artifacts bucket. Safe to run twice.

use aws_config::SdkConfig;
use clap::Args;
use serde::Serialize;

use crate::deploy::{apply, observe, plan};

#[derive(Debug, Clone, Args)]
pub struct TeardownArgs {
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
    /// Keep the Config bucket and its configuration history
    #[arg(long)]
    pub keep_history: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    pub account: String,
    pub region: String,
    pub stack: String,
    pub removed: Vec<String>,
    pub kept: Vec<String>,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (stack, region, account) = (&self.stack, &self.region, &self.account);
        if self.removed.is_empty() {
            writeln!(
                f,
                "teardown {stack} in {region} ({account}): nothing to remove"
            )?;
        } else {
            writeln!(f, "teardown {stack} in {region} ({account}):")?;
            for r in &self.removed {
                writeln!(f, "  removed {r}")?;
            }
        }
        for k in &self.kept {
            writeln!(f, "  kept {k}")?;
        }
        Ok(())
    }
}

/// Observes what the install of the stack left, plans its undoing ([`plan::undo`]) and applies it.
pub async fn teardown(
    args: &TeardownArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Removed, crate::Error> {
    let place = crate::aws::place(config).await?;
    let installed = observe::installed(config, place, &args.stack_name).await?;
    let (steps, mut kept) = plan::undo(&installed, args.keep_history);
    let (removed, kept_too) = apply::teardown(config, &installed, steps, progress).await?;
    kept.extend(kept_too);
    Ok(Removed {
        account: installed.place.account,
        region: installed.place.region,
        stack: args.stack_name.clone(),
        removed,
        kept,
    })
}
