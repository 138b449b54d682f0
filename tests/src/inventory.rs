//! What a stack made and what an account holds, read through each service's own API: moto's
//! CloudFormation reports types it skips as created, so the stack's status alone proves nothing.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;

/// The stack name sgwatch installs under by default.
pub const STACK: &str = "sgwatch";

/// Everything install could create in an account and region, by kind: each kind's resources by
/// name, with the settings that tell an adopted recorder or channel changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory(BTreeMap<&'static str, Vec<String>>);

impl Inventory {
    /// Reads the account and region of `config`.
    pub async fn take(config: &SdkConfig) -> Result<Inventory> {
        let mut inventory = Inventory::default();

        let stacks = aws_sdk_cloudformation::Client::new(config)
            .list_stacks()
            .send()
            .await
            .context("listing stacks")?;
        inventory.add(
            "stack",
            stacks
                .stack_summaries()
                .iter()
                .filter(|s| s.stack_status().map(|st| st.as_str()) != Some("DELETE_COMPLETE"))
                .filter_map(|s| s.stack_name().map(str::to_owned)),
        );
        let functions = aws_sdk_lambda::Client::new(config)
            .list_functions()
            .send()
            .await
            .context("listing Lambda functions")?;
        inventory.add(
            "function",
            functions
                .functions()
                .iter()
                .filter_map(|f| f.function_name().map(str::to_owned)),
        );
        let buckets = sgwatch_handler::aws::s3_client(config)
            .list_buckets()
            .send()
            .await
            .context("listing S3 buckets")?;
        inventory.add(
            "bucket",
            buckets
                .buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_owned)),
        );
        let sns = aws_sdk_sns::Client::new(config);
        let topics = sns
            .list_topics()
            .send()
            .await
            .context("listing SNS topics")?;
        inventory.add(
            "topic",
            topics
                .topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(str::to_owned)),
        );
        let subscriptions = sns
            .list_subscriptions()
            .send()
            .await
            .context("listing SNS subscriptions")?;
        inventory.add(
            "subscription",
            subscriptions.subscriptions().iter().map(|s| {
                format!(
                    "{} -> {}",
                    s.topic_arn().unwrap_or(""),
                    s.endpoint().unwrap_or("")
                )
            }),
        );
        let queues = aws_sdk_sqs::Client::new(config)
            .list_queues()
            .send()
            .await
            .context("listing SQS queues")?;
        inventory.add("queue", queues.queue_urls().iter().cloned());
        let tables = aws_sdk_dynamodb::Client::new(config)
            .list_tables()
            .send()
            .await
            .context("listing DynamoDB tables")?;
        inventory.add("table", tables.table_names().iter().cloned());
        let roles = aws_sdk_iam::Client::new(config)
            .list_roles()
            .send()
            .await
            .context("listing IAM roles")?;
        inventory.add(
            "role",
            roles.roles().iter().map(|r| r.role_name().to_owned()),
        );
        let aws_config_service = aws_sdk_config::Client::new(config);
        let recorders = aws_config_service
            .describe_configuration_recorders()
            .send()
            .await
            .context("describing Config recorders")?;
        inventory.add(
            "Config recorder",
            recorders
                .configuration_recorders()
                .iter()
                .map(|r| format!("{} {:?}", r.name().unwrap_or(""), r.recording_group())),
        );
        let channels = aws_config_service
            .describe_delivery_channels()
            .send()
            .await
            .context("describing Config delivery channels")?;
        inventory.add(
            "Config delivery channel",
            channels.delivery_channels().iter().map(|c| {
                format!(
                    "{} {:?} {:?}",
                    c.name().unwrap_or(""),
                    c.s3_bucket_name(),
                    c.sns_topic_arn()
                )
            }),
        );
        Ok(inventory)
    }

    fn add(&mut self, kind: &'static str, names: impl Iterator<Item = String>) {
        let listed = self.0.entry(kind).or_default();
        listed.extend(names);
        listed.sort();
    }

    /// What is here and was not in `earlier`, each as `KIND NAME`.
    pub fn minus(&self, earlier: &Inventory) -> Vec<String> {
        let before: BTreeSet<String> = earlier.entries().collect();
        self.entries().filter(|e| !before.contains(e)).collect()
    }

    /// How many resources there are of each kind: what an install leaves, whatever names it
    /// generated.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        self.0
            .iter()
            .map(|(kind, names)| (*kind, names.len()))
            .collect()
    }

    fn entries(&self) -> impl Iterator<Item = String> + '_ {
        self.0
            .iter()
            .flat_map(|(kind, names)| names.iter().map(move |n| format!("{kind} {n}")))
    }
}

/// An output of stack [`STACK`].
pub async fn stack_output(config: &SdkConfig, name: &str) -> Result<String> {
    let stacks = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(STACK)
        .send()
        .await
        .with_context(|| format!("describing stack {STACK}"))?;
    stacks
        .stacks()
        .first()
        .and_then(|s| s.outputs().iter().find(|o| o.output_key() == Some(name)))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("stack {STACK} has no {name} output"))
}

/// The environment the function of stack [`STACK`] runs with, and its name
/// (`AWS_LAMBDA_FUNCTION_NAME`).
pub async fn deployed_function_env(config: &SdkConfig) -> Result<BTreeMap<String, String>> {
    let function = stack_output(config, "FunctionName").await?;
    let configuration = aws_sdk_lambda::Client::new(config)
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .with_context(|| format!("reading the configuration of function {function}"))?;
    let mut env: BTreeMap<String, String> = configuration
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    env.insert("AWS_LAMBDA_FUNCTION_NAME".to_owned(), function);
    Ok(env)
}
