//! What is there: one read of the account, with read-only calls, that [`crate::deploy::plan`] decides
//! from. Install, plan and teardown all start here, so they see the same account the same way.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::aws::{sns_for, Place};
use crate::deploy::artifacts::{self, ArtifactsError, InstallState};
use crate::deploy::package::Artifact;
use crate::deploy::preflight;
use crate::deploy::recorder::{self, Found};
use crate::deploy::stack::{self, Deployed, StackOutputs, StackParams};
use crate::deploy::topic;

/// What an install of `stack_name` left in the account: enough for teardown and to decide who
/// owns the Config recorder and channel.
#[derive(Debug, Clone)]
pub struct Installed {
    pub place: Place,
    pub stack_name: String,
    /// The stack, with its parameters and outputs.
    pub deployed: Option<Deployed>,
    /// The install record.
    pub state: Option<InstallState>,
    /// The region's Config recorder and delivery channel.
    pub found: Found,
}

impl Installed {
    /// The stack's outputs (none without a stack).
    pub fn outputs(&self) -> &StackOutputs {
        self.deployed
            .as_ref()
            .map_or(&StackOutputs::NONE, |d| &d.outputs)
    }

    /// The stack's parameters (none without a stack).
    pub fn params(&self) -> &StackParams {
        static NONE: StackParams = StackParams::NONE;
        self.deployed.as_ref().map_or(&NONE, |d| &d.params)
    }

    /// What to run to fix a missing piece.
    pub fn install_hint(&self) -> String {
        match self.stack_name.as_str() {
            "sgwatch" => "run `sgwatch install`".to_owned(),
            other => format!("run `sgwatch install --stack-name {other}`"),
        }
    }
}

/// A topic the handler is (or will be) subscribed to, and whether its subscription should park
/// what SNS cannot deliver in the failure queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    pub arn: String,
    pub redriven: bool,
}

/// The handler's subscription to a topic, as SNS has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub arn: String,
    /// The subscription's `RedrivePolicy` attribute.
    pub redrive: Option<String>,
}

/// Everything install compares with what it wants.
#[derive(Debug, Clone)]
pub struct Observed {
    pub installed: Installed,
    /// The SES identity the sender address belongs to (verified).
    pub identity: String,
    pub warnings: Vec<String>,
    /// The deployed template body, read when the stack can be compared (settled).
    pub template: Option<String>,
    pub artifacts_bucket: bool,
    /// Whether the handler zip is already in the artifacts bucket (see [`uploaded`]).
    pub uploaded: bool,
    /// The handler's subscriptions, by topic: read for the topics [`crate::deploy::plan::topics`] names.
    pub subscriptions: BTreeMap<String, Option<Subscribed>>,
}

impl std::ops::Deref for Observed {
    type Target = Installed;
    fn deref(&self) -> &Installed {
        &self.installed
    }
}

/// Reads the stack, its outputs, the install record, and Config.
pub async fn installed(
    config: &SdkConfig,
    place: Place,
    stack_name: &str,
) -> Result<Installed, crate::Error> {
    match installed_and_record(config, place, stack_name).await? {
        (_, Some(unreadable)) => Err(unreadable.into()),
        (installed, None) => Ok(installed),
    }
}

/// What [`installed`] reads, with an install record that could not be read returned beside it
/// rather than as the error (the record is then `None`): `status` reports it, and looks at the
/// rest.
pub async fn installed_and_record(
    config: &SdkConfig,
    place: Place,
    stack_name: &str,
) -> Result<(Installed, Option<ArtifactsError>), crate::Error> {
    let found = recorder::find(&crate::aws::configservice(config), &place).await?;
    let s3 = crate::aws::s3(config);
    let (state, unreadable) = match artifacts::read_state(&s3, &place, stack_name).await {
        Ok(state) => (state, None),
        Err(e) => (None, Some(e)),
    };
    let cf = crate::aws::cloudformation(config);
    let deployed = Deployed::find(&cf, stack_name, &place).await?;
    let installed = Installed {
        place,
        stack_name: stack_name.to_owned(),
        deployed,
        state,
        found,
    };
    Ok((installed, unreadable))
}

/// Preflight (the sender's SES identity, the sandbox) and what install compares: the stack's
/// template, the artifacts bucket. The handler's subscriptions are read by [`subscriptions`] once
/// the topics are known, and the artifact by [`uploaded`] once it is built.
pub async fn observe(
    config: &SdkConfig,
    stack_name: &str,
    sender: &str,
) -> Result<Observed, crate::Error> {
    let place = crate::aws::place(config).await?;
    let ses = crate::aws::sesv2(config);
    let identity = preflight::sender_identity(&ses, &place, sender).await?;
    let warnings = preflight::sandbox_warning(&ses, &place)
        .await
        .into_iter()
        .collect();
    let installed = installed(config, place, stack_name).await?;
    let settled = installed
        .deployed
        .as_ref()
        .and_then(Deployed::status)
        .is_some_and(stack::is_settled);
    let template = if settled {
        let cf = crate::aws::cloudformation(config);
        Some(stack::deployed_template(&cf, stack_name, &installed.place).await?)
    } else {
        None
    };
    let s3 = crate::aws::s3(config);
    let bucket = artifacts::bucket_name(&installed.place);
    let artifacts_bucket = artifacts::bucket_exists(&s3, &bucket, &installed.place).await?;
    Ok(Observed {
        installed,
        identity,
        warnings,
        template,
        artifacts_bucket,
        uploaded: false,
        subscriptions: BTreeMap::new(),
    })
}

/// Whether `artifact` is in the artifacts bucket.
pub async fn uploaded(
    config: &SdkConfig,
    observed: &Observed,
    artifact: &Artifact,
) -> Result<bool, crate::Error> {
    if !observed.artifacts_bucket {
        return Ok(false);
    }
    let s3 = crate::aws::s3(config);
    let bucket = artifacts::bucket_name(&observed.place);
    Ok(artifacts::object_exists(&s3, &bucket, &artifact.key(), &observed.place).await?)
}

/// The handler's subscription on each of `topics` (with its redrive policy where the topic is
/// redriven); nothing without a function yet.
pub async fn subscriptions(
    config: &SdkConfig,
    installed: &Installed,
    topics: &[Topic],
) -> Result<BTreeMap<String, Option<Subscribed>>, crate::Error> {
    let mut out = BTreeMap::new();
    let Some(function) = &installed.outputs().function_arn else {
        return Ok(out);
    };
    let place = &installed.place;
    for Topic {
        arn: topic,
        redriven,
    } in topics
    {
        let sns = sns_for(config, topic);
        let subscribed = match topic::subscription(&sns, place, topic, function).await? {
            Some(arn) if *redriven => Some(Subscribed {
                redrive: topic::redrive(&sns, place, topic, &arn).await?,
                arn,
            }),
            Some(arn) => Some(Subscribed { arn, redrive: None }),
            None => None,
        };
        out.insert(topic.clone(), subscribed);
    }
    Ok(out)
}

/// How many messages the queue holds (visible and in flight), from its attributes.
pub async fn parked_count(config: &SdkConfig, queue_url: &str) -> Result<u64, String> {
    let attrs = crate::aws::sqs(config)
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|e| crate::aws::error_text(&e))?;
    let get = |name: QueueAttributeName| {
        attrs
            .attributes()
            .and_then(|m| m.get(&name))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok(get(QueueAttributeName::ApproximateNumberOfMessages)
        + get(QueueAttributeName::ApproximateNumberOfMessagesNotVisible))
}
