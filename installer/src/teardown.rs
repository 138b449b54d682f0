//! `sgwatch teardown`: removes everything install created and nothing else. Safe to run twice.

use anyhow::{Context, Result};
use aws_config::SdkConfig;
use clap::Args;
use serde::Serialize;

use crate::{artifacts, recorder, stack};

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

impl Removed {
    pub fn print(&self) {
        if self.removed.is_empty() {
            println!(
                "teardown {} in {} ({}): nothing to remove",
                self.stack, self.region, self.account
            );
        } else {
            println!(
                "teardown {} in {} ({}):",
                self.stack, self.region, self.account
            );
            for r in &self.removed {
                println!("  removed {r}");
            }
        }
        for k in &self.kept {
            println!("  kept {k}");
        }
    }
}

pub async fn teardown(args: &TeardownArgs, config: &SdkConfig, progress: bool) -> Result<Removed> {
    let place = crate::aws::place(config).await?;
    let s3 = sgwatch_handler::aws::s3_client(config);
    let cf = aws_sdk_cloudformation::Client::new(config);
    let cfg = aws_sdk_config::Client::new(config);
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let state = artifacts::read_state(&s3, &place, &args.stack_name).await?;
    let deployed = stack::describe(&cf, &args.stack_name, &place).await?;
    let outputs = match &deployed {
        Some(s) => stack::resolved_outputs(&cf, &args.stack_name, s, &place).await?,
        None => Default::default(),
    };

    if let Some(state) = &state {
        if let (Some(topic), Some(sub)) =
            (&state.adopted_topic_arn, &state.adopted_subscription_arn)
        {
            let _ = aws_sdk_sns::Client::new(config)
                .unsubscribe()
                .subscription_arn(sub)
                .send()
                .await;
            removed.push(format!("subscription of the handler to {topic}"));
        }
        if state.recorder == "created" || state.channel == "created" {
            let recorder_name = if state.recorder == "created" {
                state.recorder_name.as_str()
            } else {
                ""
            };
            let channel_name = if state.channel == "created" {
                state.channel_name.as_str()
            } else {
                ""
            };
            if state.recorder == "created" {
                recorder::delete_created(&cfg, &place, recorder_name, channel_name).await?;
                removed.push(format!(
                    "configuration recorder {recorder_name} and delivery channel {channel_name}"
                ));
            } else {
                let _ = cfg
                    .delete_delivery_channel()
                    .delivery_channel_name(channel_name)
                    .send()
                    .await;
                removed.push(format!("delivery channel {channel_name}"));
            }
        }
        if state.recorder == "adopted" {
            kept.push(format!(
                "configuration recorder {} (not created by sgwatch)",
                state.recorder_name
            ));
        }
        if state.channel == "adopted" {
            kept.push(format!(
                "delivery channel {} (not created by sgwatch)",
                state.channel_name
            ));
        }
    }
    if stack::delete(&cf, &args.stack_name, &place, progress).await? {
        removed.push(format!("stack {}", args.stack_name));
    }
    let config_bucket = outputs
        .get("ConfigBucketName")
        .cloned()
        .or_else(|| state.as_ref().and_then(|s| s.config_bucket.clone()));
    if let Some(bucket) = &config_bucket {
        if args.keep_history {
            kept.push(format!("Config bucket {bucket} (--keep-history)"));
        } else if artifacts::empty_and_delete(&s3, bucket)
            .await
            .with_context(|| format!("{place}"))?
        {
            removed.push(format!("Config bucket {bucket}"));
        }
    }
    let bucket = artifacts::bucket_name(&place);
    if artifacts::empty_and_delete(&s3, &bucket)
        .await
        .with_context(|| format!("{place}"))?
    {
        removed.push(format!("artifacts bucket {bucket}"));
    }
    Ok(Removed {
        account: place.account,
        region: place.region,
        stack: args.stack_name.clone(),
        removed,
        kept,
    })
}
