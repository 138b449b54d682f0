//! The deployed stack, read once: [`Deployed::find`] describes it and reads its parameters and
//! outputs into [`StackParams`] and [`StackOutputs`], one field for each the installer uses.
//! Nothing else reads the stack's parameters or outputs.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{Stack, StackStatus, TemplateStage};
use aws_sdk_cloudformation::Client;

use clap::ValueEnum;

use super::{aws_error, in_progress, OnOff, Source, StackError};
use crate::aws::Place;

/// The parameters a deployed stack holds, by name.
fn parameters(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The deployed stack, if any (a deleted stack counts as none).
pub async fn describe(cf: &Client, name: &str, place: &Place) -> Result<Option<Stack>, StackError> {
    match cf.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))
            .cloned()),
        // CloudFormation has no "not found" error type: a missing stack is a ValidationError
        // whose message says it does not exist.
        Err(e) if is_missing_stack(&e) => Ok(None),
        Err(e) => Err(aws_error("describing", name, place, &e)),
    }
}

fn is_missing_stack<E: ProvideErrorMetadata, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> bool {
    err.as_service_error().is_some_and(|e| {
        e.code() == Some("ValidationError")
            && e.message().is_some_and(|m| m.contains("does not exist"))
    })
}

/// The physical id of the stack's resource `logical`, if the stack has it. Read through
/// `ListStackResources` (one call for every resource), not `DescribeStackResource`, which answers
/// an error for a resource the stack does not have.
pub async fn physical_id(cf: &Client, name: &str, logical: &str) -> Option<String> {
    let mut pages = cf
        .list_stack_resources()
        .stack_name(name)
        .into_paginator()
        .send();
    while let Some(Ok(page)) = pages.next().await {
        let found = page
            .stack_resource_summaries()
            .iter()
            .find(|s| s.logical_resource_id() == Some(logical))
            .and_then(|s| s.physical_resource_id())
            .filter(|id| !id.is_empty());
        if let Some(id) = found {
            return Some(id.to_owned());
        }
    }
    None
}

/// The template body the stack was deployed with, as it was given.
pub async fn deployed_template(
    cf: &Client,
    name: &str,
    place: &Place,
) -> Result<String, StackError> {
    let out = cf
        .get_template()
        .stack_name(name)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| aws_error("reading the template of", name, place, &e))?;
    Ok(out.template_body().unwrap_or_default().to_owned())
}

/// The deployed stack: its status and id, with the parameters and outputs the installer uses.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub stack: Stack,
    pub params: StackParams,
    pub outputs: StackOutputs,
}

impl Deployed {
    /// The stack `name` as deployed, if it is (a deleted stack counts as none), with its
    /// parameters and its outputs.
    pub async fn find(
        cf: &Client,
        name: &str,
        place: &Place,
    ) -> Result<Option<Deployed>, StackError> {
        match describe(cf, name, place).await? {
            Some(stack) => Ok(Some(Deployed::read(cf, name, stack, place).await?)),
            None => Ok(None),
        }
    }

    /// As [`find`](Self::find), for a command that cannot work without the stack: none is
    /// [`StackError::NoStack`].
    pub async fn require(cf: &Client, name: &str, place: &Place) -> Result<Deployed, StackError> {
        Deployed::find(cf, name, place)
            .await?
            .ok_or_else(|| StackError::NoStack {
                stack: name.to_owned(),
                place: place.clone(),
            })
    }

    /// `stack`, just described or deployed, with its parameters and outputs read.
    pub async fn read(
        cf: &Client,
        name: &str,
        stack: Stack,
        place: &Place,
    ) -> Result<Deployed, StackError> {
        let outputs = StackOutputs::resolved(cf, name, &stack, place).await?;
        let params = StackParams::from_map(parameters(&stack));
        Ok(Deployed {
            stack,
            params,
            outputs,
        })
    }

    pub fn status(&self) -> Option<&StackStatus> {
        self.stack.stack_status()
    }
}

/// `value`, an output the caller cannot do without: its absence is [`StackError::NoOutput`].
pub fn required<'a>(
    value: &'a Option<String>,
    stack: &str,
    output: &'static str,
) -> Result<&'a str, StackError> {
    value.as_deref().ok_or_else(|| StackError::NoOutput {
        stack: stack.to_owned(),
        output,
    })
}

/// The stack parameters the installer reads back, one field each; a parameter left empty is
/// `None`.
#[derive(Debug, Clone, Default)]
pub struct StackParams {
    pub sender: Option<String>,
    pub fallback_recipient: Option<String>,
    pub notify_tag: Option<String>,
    pub owner_tag: Option<String>,
    pub event_source: Option<Source>,
    pub actor_feed: Option<OnOff>,
    /// The SSM parameters holding the destinations' URLs.
    pub destination_parameters: Vec<String>,
    pub destination_kms_key_arn: Option<String>,
    pub adopted_topic_arn: Option<String>,
    pub baseline_until: Option<String>,
    /// Every parameter as CloudFormation holds it, for comparing with what install would deploy.
    pub all: BTreeMap<String, String>,
}

impl StackParams {
    /// A stack's parameters where there is no stack.
    pub const NONE: StackParams = StackParams {
        sender: None,
        fallback_recipient: None,
        notify_tag: None,
        owner_tag: None,
        event_source: None,
        actor_feed: None,
        destination_parameters: Vec::new(),
        destination_kms_key_arn: None,
        adopted_topic_arn: None,
        baseline_until: None,
        all: BTreeMap::new(),
    };

    /// The parameters from their names and values.
    pub fn from_map(all: BTreeMap<String, String>) -> StackParams {
        let set = |name: &str| all.get(name).filter(|v| !v.is_empty()).cloned();
        StackParams {
            sender: set("Sender"),
            fallback_recipient: set("FallbackRecipient"),
            notify_tag: set("NotifyTag"),
            owner_tag: set("OwnerTag"),
            event_source: set("EventSource").and_then(|v| Source::from_str(&v, true).ok()),
            actor_feed: set("ActorFeed").and_then(|v| OnOff::from_str(&v, true).ok()),
            destination_parameters: set("DestinationParameters")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            destination_kms_key_arn: set("DestinationKmsKeyArn"),
            adopted_topic_arn: set("AdoptedTopicArn"),
            baseline_until: set("BaselineUntil"),
            all,
        }
    }

    /// Whether Config's notifications reach the function through EventBridge.
    pub fn eventbridge(&self) -> bool {
        self.event_source == Some(Source::Eventbridge)
    }
}

/// The stack's outputs the installer uses, one field each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackOutputs {
    pub function_arn: Option<String>,
    pub function_name: Option<String>,
    pub handler_role_arn: Option<String>,
    pub topic_arn: Option<String>,
    pub config_bucket_name: Option<String>,
    pub config_role_arn: Option<String>,
    pub failure_queue_url: Option<String>,
    pub failure_queue_arn: Option<String>,
    pub idempotency_table_name: Option<String>,
    pub log_group_name: Option<String>,
    pub alarm_topic_arn: Option<String>,
    pub actor_feed_rule_name: Option<String>,
    /// The hub's event bus (a hub stack only).
    pub hub_bus_arn: Option<String>,
    /// The queue the hub's function reads (a hub stack only).
    pub hub_queue_arn: Option<String>,
    /// Where the events that failed their receives on the hub's queue wait (a hub stack only).
    pub hub_dead_letter_queue_url: Option<String>,
    /// The act function's URL, its role and the links' key (with `--act-links on` only).
    pub act_url: Option<String>,
    pub act_role_arn: Option<String>,
    pub link_key_arn: Option<String>,
    /// The daily digest's EventBridge Scheduler schedule.
    pub digest_schedule_name: Option<String>,
    /// The queue that ends coalescing windows and the rate limit's hours.
    pub wake_queue_arn: Option<String>,
}

impl StackOutputs {
    /// A stack's outputs where there is no stack.
    pub const NONE: StackOutputs = StackOutputs {
        function_arn: None,
        function_name: None,
        handler_role_arn: None,
        topic_arn: None,
        config_bucket_name: None,
        config_role_arn: None,
        failure_queue_url: None,
        failure_queue_arn: None,
        idempotency_table_name: None,
        log_group_name: None,
        alarm_topic_arn: None,
        actor_feed_rule_name: None,
        hub_bus_arn: None,
        hub_queue_arn: None,
        hub_dead_letter_queue_url: None,
        act_url: None,
        act_role_arn: None,
        link_key_arn: None,
        digest_schedule_name: None,
        wake_queue_arn: None,
    };

    /// The outputs from their names and values.
    pub fn from_map(mut listed: BTreeMap<String, String>) -> StackOutputs {
        let mut take = |name: &str| listed.remove(name);
        StackOutputs {
            function_arn: take("FunctionArn"),
            function_name: take("FunctionName"),
            handler_role_arn: take("HandlerRoleArn"),
            topic_arn: take("TopicArn"),
            config_bucket_name: take("ConfigBucketName"),
            config_role_arn: take("ConfigRoleArn"),
            failure_queue_url: take("FailureQueueUrl"),
            failure_queue_arn: take("FailureQueueArn"),
            idempotency_table_name: take("IdempotencyTableName"),
            log_group_name: take("LogGroupName"),
            alarm_topic_arn: take("AlarmTopicArn"),
            actor_feed_rule_name: take("ActorFeedRuleName"),
            hub_bus_arn: take("HubBusArn"),
            hub_queue_arn: take("HubQueueArn"),
            hub_dead_letter_queue_url: take("HubDeadLetterQueueUrl"),
            act_url: take("ActUrl"),
            act_role_arn: take("ActRoleArn"),
            link_key_arn: take("LinkKeyArn"),
            digest_schedule_name: take("DigestScheduleName"),
            wake_queue_arn: take("WakeQueueArn"),
        }
    }

    /// The outputs the stack lists.
    fn listed(stack: &Stack) -> StackOutputs {
        StackOutputs::from_map(
            stack
                .outputs()
                .iter()
                .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
                .collect(),
        )
    }

    /// The stack's outputs, completed from its resources' physical ids where the stack lists
    /// none (a stack whose creation failed, or an emulator that does not evaluate outputs), so
    /// that status and teardown still find what is there.
    async fn resolved(
        cf: &Client,
        name: &str,
        stack: &Stack,
        place: &Place,
    ) -> Result<StackOutputs, StackError> {
        let mut out = StackOutputs::listed(stack);
        let changing = stack.stack_status().is_some_and(in_progress);
        // A stack under review has no resources yet, and one being changed is read once it
        // settles.
        if changing || (out.function_arn.is_some() && out.config_bucket_name.is_some()) {
            return Ok(out);
        }
        let resources = cf
            .list_stack_resources()
            .stack_name(name)
            .send()
            .await
            .map_err(|e| aws_error("listing the resources of", name, place, &e))?;
        // arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/ID
        let partition = stack
            .stack_id()
            .and_then(|id| id.split(':').nth(1))
            .unwrap_or("aws");
        for r in resources.stack_resource_summaries() {
            if let (Some(logical), Some(physical)) =
                (r.logical_resource_id(), r.physical_resource_id())
            {
                if !physical.is_empty() {
                    out.fill(logical, physical, partition, place);
                }
            }
        }
        Ok(out)
    }

    /// Fills in what the stack's resource `logical`, whose physical id is `physical`, tells,
    /// where the stack did not list it. ARNs are built in the stack's own partition.
    fn fill(&mut self, logical: &str, physical: &str, partition: &str, place: &Place) {
        let (account, region) = (&place.account, &place.region);
        let set = |output: &mut Option<String>, value: String| {
            output.get_or_insert(value);
        };
        match logical {
            "Topic" => set(&mut self.topic_arn, physical.to_owned()),
            "ConfigBucket" => set(&mut self.config_bucket_name, physical.to_owned()),
            "ConfigRole" => set(
                &mut self.config_role_arn,
                format!("arn:{partition}:iam::{account}:role/{physical}"),
            ),
            "HandlerRole" => set(
                &mut self.handler_role_arn,
                format!("arn:{partition}:iam::{account}:role/{physical}"),
            ),
            "ActRole" => set(
                &mut self.act_role_arn,
                format!("arn:{partition}:iam::{account}:role/{physical}"),
            ),
            "Function" => {
                set(&mut self.function_name, physical.to_owned());
                set(
                    &mut self.function_arn,
                    format!("arn:{partition}:lambda:{region}:{account}:function:{physical}"),
                );
            }
            "FailureQueue" => {
                set(&mut self.failure_queue_url, physical.to_owned());
                let queue = physical.rsplit('/').next().unwrap_or(physical);
                set(
                    &mut self.failure_queue_arn,
                    format!("arn:{partition}:sqs:{region}:{account}:{queue}"),
                );
            }
            "HubQueue" => {
                let queue = physical.rsplit('/').next().unwrap_or(physical);
                set(
                    &mut self.hub_queue_arn,
                    format!("arn:{partition}:sqs:{region}:{account}:{queue}"),
                );
            }
            "HubDeadLetterQueue" => set(&mut self.hub_dead_letter_queue_url, physical.to_owned()),
            "IdempotencyTable" => set(&mut self.idempotency_table_name, physical.to_owned()),
            "LogGroup" => set(&mut self.log_group_name, physical.to_owned()),
            _ => {}
        }
    }
}
