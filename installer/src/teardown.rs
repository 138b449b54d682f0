//! `sgwatch teardown`: removes everything install created and nothing else, as its record says:
//! the subscription to an adopted topic, the recorder and channel if install created them (or
//! the security groups it added to an adopted recorder), the stack, the Config bucket (which the
//! stack retains; `--keep-history` keeps it) and the artifacts bucket. Safe to run twice.

use aws_config::SdkConfig;
use clap::Args;
use serde::Serialize;

use crate::artifacts;
use crate::recorder;
use crate::stack;
use crate::topic;

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

pub async fn teardown(
    args: &TeardownArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Removed, crate::Error> {
    let place = crate::aws::place(config).await?;
    let s3 = sgwatch_handler::aws::s3_client(config);
    let cf = aws_sdk_cloudformation::Client::new(config);
    let cfg = aws_sdk_config::Client::new(config);
    let name = &args.stack_name;
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    let state = artifacts::read_state(&s3, &place, name).await?;
    let deployed = stack::describe(&cf, name, &place).await?;
    let outputs = match &deployed {
        Some(s) => stack::resolved_outputs(&cf, name, s, &place).await?,
        None => Default::default(),
    };

    // Outside the stack first, while the stack's outputs still say what is ours.
    if let Some(state) = &state {
        if let (Some(topic), Some(sub)) =
            (&state.adopted_topic_arn, &state.adopted_subscription_arn)
        {
            let region = topic.split(':').nth(3).unwrap_or(&place.region).to_owned();
            let sns = aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .region(aws_config::Region::new(region))
                    .build(),
            );
            let lambda = aws_sdk_lambda::Client::new(config);
            let function = outputs.get("FunctionName").map(String::as_str);
            topic::unsubscribe(&sns, &lambda, &place, topic, sub, function).await?;
            removed.push(format!("subscription of the handler to {topic}"));
        }
    }
    let found = recorder::find(&cfg, &place).await?;
    let owned = crate::install::owned(&found, state.as_ref(), &outputs);
    let (recorder_ours, channel_ours) = (owned.recorder, owned.channel);
    match (found.recorder_name(), found.channel_name()) {
        (Some(r), channel) if recorder_ours => {
            let channel = channel.filter(|_| channel_ours);
            recorder::delete_created(&cfg, &place, r, channel).await?;
            removed.push(format!("configuration recorder {r}"));
            if let Some(c) = channel {
                removed.push(format!("delivery channel {c}"));
            }
        }
        (_, Some(c)) if channel_ours => {
            recorder::delete_created_channel(&cfg, &place, c).await?;
            removed.push(format!("delivery channel {c}"));
        }
        _ => {}
    }
    if let Some(state) = state.as_ref().filter(|s| s.recorder == "adopted") {
        if !state.extended_types.is_empty()
            && recorder::unextend(&cfg, &place, &state.recorder_name, &state.extended_types).await?
        {
            removed.push(format!(
                "{} from the types recorder {} records (added by --extend-recorder)",
                state.extended_types.join(", "),
                state.recorder_name
            ));
        }
    }
    // Worth saying only where there was an install of this stack to tear down.
    let installed = state.is_some() || deployed.is_some();
    if let Some(r) = found
        .recorder_name()
        .filter(|_| installed && !recorder_ours)
    {
        kept.push(format!(
            "configuration recorder {r} (adopted, not created by this install)"
        ));
    }
    if let Some(c) = found.channel_name().filter(|_| installed && !channel_ours) {
        kept.push(format!(
            "delivery channel {c} (adopted, not created by this install)"
        ));
    }
    if stack::delete(&cf, name, &place, progress).await? {
        removed.push(format!("stack {name}"));
    }
    // The stack retains its Config bucket (DeletionPolicy: Retain); it goes here unless kept.
    let config_bucket = outputs
        .get("ConfigBucketName")
        .cloned()
        .or_else(|| state.as_ref().and_then(|s| s.config_bucket.clone()));
    if let Some(bucket) = &config_bucket {
        if args.keep_history {
            if artifacts::bucket_exists(&s3, bucket, &place).await? {
                kept.push(format!("Config bucket {bucket} (--keep-history)"));
            }
        } else if artifacts::empty_and_delete(&s3, bucket, &place).await? {
            removed.push(format!("Config bucket {bucket}"));
        }
    }
    // The artifacts bucket is shared by every sgwatch stack of the account and region: it goes
    // with the last one's record.
    let others = artifacts::delete_state(&s3, &place, name).await?;
    let bucket = artifacts::bucket_name(&place);
    if others.is_empty() {
        if artifacts::empty_and_delete(&s3, &bucket, &place).await? {
            removed.push(format!("artifacts bucket {bucket}"));
        }
    } else {
        kept.push(format!(
            "artifacts bucket {bucket} (still used by stack {})",
            others.join(", ")
        ));
    }
    Ok(Removed {
        account: place.account,
        region: place.region,
        stack: name.clone(),
        removed,
        kept,
    })
}
