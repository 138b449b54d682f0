//! `sgwatch install` and `sgwatch plan`: preflight, the handler artifact, the stack, AWS Config.
//!
//! Both start from the same reading of the account ([`prepare`]: read-only calls), so plan lists
//! exactly what install would do, and install with nothing to do makes no mutating call and says
//! "no changes". The comparison covers the stack's template body and parameters (the artifact's
//! sha256 is in ArtifactKey), the Config recorder and channel, the subscription to an adopted
//! channel's topic, the subscriptions' redrive policies, and the install record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_config::{Region, SdkConfig};
use aws_sdk_cloudformation::types::{Stack, StackStatus};
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use sgwatch_handler::recipients::parse_address;
use sgwatch_handler::settings::Policy;

use crate::policy_args::PolicyArgs;

use crate::artifacts::{self, InstallState};
use crate::aws::Place;
use crate::baseline::{self, Exposed};
use crate::package::{self, Arch, Artifact};
use crate::preflight;
use crate::recorder::{self, Owned, Step, Want};
use crate::stack::{self, StackError};
use crate::topic;

/// How Config notifications reach the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Sns,
    Eventbridge,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Sns => "sns",
            Source::Eventbridge => "eventbridge",
        }
    }
}

/// The settings flags of `install` and `plan`.
#[derive(Debug, Clone, Args)]
pub struct InstallArgs {
    /// Verified SES identity (address) the email is sent from
    #[arg(long, value_name = "EMAIL")]
    pub sender: String,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// CPU architecture of the Lambda
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
    /// Use this handler zip instead of building one (must hold an executable `bootstrap`)
    #[arg(long, value_name = "PATH")]
    pub handler_zip: Option<PathBuf>,
    /// How notifications reach the handler (default sns; eventbridge when an adopted delivery
    /// channel's topic belongs to another account)
    #[arg(long, value_enum)]
    pub source: Option<Source>,
    /// Add AWS::EC2::SecurityGroup to an existing recorder that does not record it
    #[arg(long)]
    pub extend_recorder: bool,
    /// Most copies of the handler running at once (1-1000; 5 paces bursts for SES's default 14
    /// sends/s); unset, no reservation
    // Unset by default: Lambda refuses a reservation that leaves fewer than 10 unreserved
    // executions, so accounts with the new-account quota of 10 cannot reserve at all
    // (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html). Throttled
    // events are not lost: Lambda keeps asynchronous events and retries them for up to 6 hours
    // (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub reserved_concurrency: Option<u16>,
}

/// Why install or plan stopped. Each says what failed, where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("--sender {value:?} is not an email address: {why}")]
    Sender { value: String, why: String },
    #[error(
        "--stack-name {0:?} is invalid: letters, digits and dashes, starting with a letter, at \
         most 56 characters (the function is named STACK-handler, and Lambda allows 64)"
    )]
    StackName(String),
    // The installer's policy names the stack, its roles, function, queues and buckets by this
    // prefix (docs/iam-installer-policy.json); a stack named otherwise would be denied half-way.
    #[error(
        "--stack-name {0:?} must start with \"sgwatch\": the installer's IAM policy \
         (docs/iam-installer-policy.json) grants the stack and what it makes only under that prefix"
    )]
    StackPrefix(String),
    #[error(
        "the existing delivery channel {channel:?} in {place} has no SNS topic to subscribe the \
         handler to: run install with --source eventbridge"
    )]
    ChannelWithoutTopic { channel: String, place: Place },
    #[error("stack {stack} in {place} has no output {output}: run install again; if it persists, see the stack's events")]
    MissingOutput {
        stack: String,
        place: Place,
        output: &'static str,
    },
}

/// Settings checked before any AWS call.
pub struct Checked {
    pub policy: Policy,
    pub sender: String,
    pub stack_name: String,
}

impl InstallArgs {
    /// Checks the settings flags with the handler's own validation (what the Lambda would refuse
    /// at start is refused here, before anything is deployed).
    pub fn check(&self) -> Result<Checked, crate::Error> {
        let policy = self.policy.policy()?;
        let sender = parse_address(&self.sender).map_err(|why| InstallError::Sender {
            value: self.sender.clone(),
            why,
        })?;
        let name = &self.stack_name;
        let valid = name.len() <= 56
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(InstallError::StackName(name.clone()).into());
        }
        if !name.starts_with("sgwatch") {
            return Err(InstallError::StackPrefix(name.clone()).into());
        }
        Ok(Checked {
            policy,
            sender,
            stack_name: name.clone(),
        })
    }
}

/// What install did (or plan would do).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `install` or `plan`, for the text form.
    #[serde(skip)]
    pub verb: &'static str,
    pub account: String,
    pub region: String,
    pub stack: String,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
    /// The stack parameter `BaselineUntil`: groups AWS Config discovers before it existed when
    /// recording started and are not emailed; empty for none.
    pub baseline_until: String,
    /// When install starts recording: the tagged groups already open to the world on a critical
    /// or high port, printed once instead of a burst of emails.
    pub baseline: Vec<Exposed>,
}

/// The changes, one a line (the warnings go to standard error, see `main`).
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = self.verb;
        if self.changes.is_empty() {
            writeln!(
                f,
                "{verb} {} in {} ({}): no changes",
                self.stack, self.region, self.account
            )?;
        } else {
            writeln!(
                f,
                "{verb} {} in {} ({}):",
                self.stack, self.region, self.account
            )?;
            for c in &self.changes {
                writeln!(f, "  {c}")?;
            }
        }
        if !self.baseline_until.is_empty() {
            writeln!(
                f,
                "baseline: groups discovered before {} are not emailed",
                self.baseline_until
            )?;
        }
        if !self.baseline.is_empty() {
            writeln!(
                f,
                "tagged groups open to the world when recording started (the baseline, not emailed):"
            )?;
            for g in &self.baseline {
                writeln!(f, "  {g}")?;
            }
        }
        Ok(())
    }
}

/// The stack parameters install deploys (before the template's defaults are filled in).
fn parameters(
    args: &InstallArgs,
    source: Source,
    checked: &Checked,
    identity: &str,
    place: &Place,
    artifact: &Artifact,
    baseline_until: &str,
) -> BTreeMap<String, String> {
    let p = &checked.policy;
    // The handler always watches security groups; the parameter holds the others.
    let extra: Vec<&str> = p
        .resource_types
        .iter()
        .filter(|t| *t != recorder::SECURITY_GROUP)
        .map(String::as_str)
        .collect();
    [
        ("Sender", checked.sender.clone()),
        ("SenderIdentity", identity.to_owned()),
        (
            "FallbackRecipient",
            p.fallback_recipient.clone().unwrap_or_default(),
        ),
        (
            "AlwaysNotifyAt",
            p.always_notify_at
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
        ),
        ("NotifyTag", p.notify_tag.clone()),
        ("OwnerTag", p.owner_tag.clone()),
        ("ResourceTypes", extra.join(",")),
        (
            "NotifyOnRelationshipChanges",
            p.notify_on_relationship_changes.to_string(),
        ),
        ("LookupActor", "true".to_owned()),
        ("Architecture", args.arch.as_str().to_owned()),
        ("ArtifactBucket", artifacts::bucket_name(place)),
        ("ArtifactKey", artifact.key()),
        ("EventSource", source.as_str().to_owned()),
        ("BaselineUntil", baseline_until.to_owned()),
        // Only this account's changes: a channel's topic may aggregate many (AWS Control Tower).
        ("Accounts", place.account.clone()),
        (
            "ReservedConcurrency",
            args.reserved_concurrency
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The account as install finds it, and what it would change; read with read-only calls.
struct Prepared {
    place: Place,
    artifact: Artifact,
    params: BTreeMap<String, String>,
    deployed: Option<Stack>,
    /// How the deployed stack differs from what install would deploy, one line each; empty when
    /// it is the same.
    stack_changes: Vec<String>,
    want: Want,
    config_steps: Vec<Step>,
    /// How notifications reach the handler: as asked, or as decided for an adopted channel.
    source: Source,
    /// The topics whose subscription of the handler has no redrive policy to the failure queue
    /// yet (the stack's own topic before the stack exists).
    redrive: Vec<String>,
    /// The adopted channel's topic the handler must be subscribed to (`--source sns`).
    adopted_topic: Option<String>,
    /// The handler's existing subscription to that topic.
    subscription: Option<String>,
    state: Option<InstallState>,
    warnings: Vec<String>,
}

impl Prepared {
    fn baseline_until(&self) -> String {
        self.params
            .get("BaselineUntil")
            .cloned()
            .unwrap_or_default()
    }

    fn stack_settled(&self) -> bool {
        self.deployed.is_some() && self.stack_changes.is_empty()
    }

    /// Nothing to do at all: the stack, Config, the subscription and the record are as install
    /// leaves them.
    fn settled(&self) -> bool {
        self.stack_settled()
            && self.config_steps.is_empty()
            && (self.adopted_topic.is_none() || self.subscription.is_some())
            && self.redrive.is_empty()
            && self.state.is_some()
    }
}

/// Whether the deployed stack can take an update change set; a stack that never finished being
/// created (`REVIEW_IN_PROGRESS` after an interrupted first install, `ROLLBACK_COMPLETE` after a
/// failed one) is deleted and created anew instead.
fn updatable(deployed: Option<&Stack>) -> bool {
    deployed
        .and_then(|s| s.stack_status())
        .is_some_and(stack::is_settled)
}

/// An SNS client in the topic's own region (an adopted channel's topic may live elsewhere).
fn sns_for(config: &SdkConfig, topic: &str) -> aws_sdk_sns::Client {
    let region = topic.split(':').nth(3).filter(|r| !r.is_empty());
    let mut builder = aws_sdk_sns::config::Builder::from(config);
    if let Some(region) = region {
        builder = builder.region(Region::new(region.to_owned()));
    }
    aws_sdk_sns::Client::from_conf(builder.build())
}

/// Which of the found recorder and channel are install's, for install and teardown alike: its
/// record says it created them, or (the record lost to an interrupted install) they point at this
/// stack's role and bucket, which nobody else uses.
pub fn owned(
    found: &recorder::Found,
    state: Option<&InstallState>,
    outputs: &BTreeMap<String, String>,
) -> Owned {
    let created =
        |how: &str, named: &str, actual: Option<&str>| how == "created" && Some(named) == actual;
    let output = |key: &str| outputs.get(key).map(String::as_str);
    let recorder = found.recorder.as_ref().is_some_and(|r| {
        state.is_some_and(|s| created(&s.recorder, &s.recorder_name, r.name()))
            || (r.role_arn().is_some() && r.role_arn() == output("ConfigRoleArn"))
    });
    let channel = found.channel.as_ref().is_some_and(|c| {
        state.is_some_and(|s| created(&s.channel, &s.channel_name, c.name()))
            || (c.s3_bucket_name().is_some() && c.s3_bucket_name() == output("ConfigBucketName"))
    });
    Owned { recorder, channel }
}

fn want(checked: &Checked, args: &InstallArgs, outputs: &BTreeMap<String, String>) -> Want {
    Want {
        types: checked.policy.resource_types.clone(),
        role_arn: outputs.get("ConfigRoleArn").cloned(),
        bucket: outputs.get("ConfigBucketName").cloned(),
        topic: outputs.get("TopicArn").cloned(),
        extend: args.extend_recorder,
    }
}

/// How notifications reach the handler: `--source` when given; otherwise eventbridge when an
/// adopted channel's topic belongs to another account (an AWS Control Tower channel sends to the
/// audit account's topic, which aggregates every account: a subscription there would be refused,
/// or would bring every account's changes), with the reason as a warning; sns otherwise.
fn source(
    args: &InstallArgs,
    found: &recorder::Found,
    owned: Owned,
    place: &Place,
) -> (Source, Option<String>) {
    if let Some(asked) = args.source {
        return (asked, None);
    }
    let foreign = found
        .channel
        .as_ref()
        .filter(|_| !owned.channel)
        .and_then(|c| c.sns_topic_arn())
        .filter(|topic| topic.split(':').nth(4).is_some_and(|a| a != place.account));
    match foreign {
        Some(topic) => (
            Source::Eventbridge,
            Some(format!(
                "the adopted delivery channel sends to {topic}, a topic of another account (as \
                 AWS Control Tower's does): using --source eventbridge, since subscribing there \
                 would be refused or bring every account's changes (pass --source sns to \
                 subscribe anyway)"
            )),
        ),
        None => (Source::Sns, None),
    }
}

/// The adopted channel's topic the handler must be subscribed to, if any.
fn adopted_topic(
    found: &recorder::Found,
    owned: Owned,
    source: Source,
    outputs: &BTreeMap<String, String>,
    place: &Place,
) -> Result<Option<String>, crate::Error> {
    let Some(channel) = found.channel.as_ref().filter(|_| !owned.channel) else {
        return Ok(None);
    };
    if source != Source::Sns {
        return Ok(None);
    }
    match channel.sns_topic_arn() {
        None => Err(InstallError::ChannelWithoutTopic {
            channel: channel.name().unwrap_or_default().to_owned(),
            place: place.clone(),
        }
        .into()),
        // Already our own topic (its inline subscription is the stack's).
        Some(topic) if outputs.get("TopicArn").map(String::as_str) == Some(topic) => Ok(None),
        Some(topic) => Ok(Some(topic.to_owned())),
    }
}

/// Reads everything install compares, with read-only calls; builds the handler (when no zip is
/// given) only after preflight has passed.
async fn prepare(args: &InstallArgs, config: &SdkConfig) -> Result<Prepared, crate::Error> {
    let checked = args.check()?;
    // A given zip is checked before any AWS call; a build waits until preflight has passed, so a
    // missing SES identity is reported in seconds rather than after minutes of compiling.
    let given = args
        .handler_zip
        .as_deref()
        .map(|zip| package::check_zip(zip, args.arch))
        .transpose()?;
    let place = crate::aws::place(config).await?;
    let ses = aws_sdk_sesv2::Client::new(config);
    let identity = preflight::sender_identity(&ses, &place, &checked.sender).await?;
    let mut warnings: Vec<String> = preflight::sandbox_warning(&ses, &place)
        .await
        .into_iter()
        .collect();
    let found = recorder::find(&aws_sdk_config::Client::new(config), &place).await?;
    let s3 = sgwatch_handler::aws::s3_client(config);
    let state = artifacts::read_state(&s3, &place, &checked.stack_name).await?;

    let cf = aws_sdk_cloudformation::Client::new(config);
    let deployed = stack::describe(&cf, &checked.stack_name, &place).await?;
    let outputs = match &deployed {
        Some(s) => stack::resolved_outputs(&cf, &checked.stack_name, s, &place).await?,
        None => BTreeMap::new(),
    };
    // Config is checked before the (possibly long) build: an adopted recorder that does not
    // record security groups stops install here.
    let owned = owned(&found, state.as_ref(), &outputs);
    let want = want(&checked, args, &outputs);
    let config_steps = recorder::steps(&found, owned, &want, &place)?;
    let (source, why) = source(args, &found, owned, &place);
    warnings.extend(why);
    let adopted_topic = adopted_topic(&found, owned, source, &outputs, &place)?;
    if let Some(topic) = adopted_topic
        .as_deref()
        .filter(|t| !topic::can_redrive(t, &place))
    {
        warnings.push(format!(
            "what SNS fails to deliver from {topic} to the handler cannot be parked in the \
             failure queue (a dead-letter queue must be in the subscription's account and \
             region, and this topic is not in {place}): such messages are dropped by SNS"
        ));
    }
    if found.recorder.is_some() && !owned.recorder && !found.recording {
        warnings.push(format!(
            "the adopted recorder {} in {place} is not recording: sgwatch never starts or stops a \
             recorder it did not create, so no change will be reported until its owner starts it",
            found.recorder_name().unwrap_or("?")
        ));
    }

    let artifact = match given {
        Some(zip) => zip,
        None => package::build(args.arch, Path::new("dist"))?,
    };
    // Recording that starts now makes AWS Config discover every existing group: those are the
    // baseline. Otherwise the deployed time stays, so a re-install with nothing to do changes
    // nothing.
    let baseline_until = if baseline::starts_recording(&config_steps) {
        baseline::until(std::time::SystemTime::now())
    } else {
        deployed
            .as_ref()
            .map(stack::deployed_parameters)
            .and_then(|p| p.get("BaselineUntil").cloned())
            .unwrap_or_default()
    };
    let params = stack::complete_parameters(&parameters(
        args,
        source,
        &checked,
        &identity,
        &place,
        &artifact,
        &baseline_until,
    ))?;
    let stack_changes = match &deployed {
        None => vec![format!("create stack {}", checked.stack_name)],
        Some(s) => {
            let status = s
                .stack_status()
                .cloned()
                .unwrap_or_else(|| StackStatus::from("UNKNOWN"));
            if status.as_str().ends_with("_IN_PROGRESS") && status != StackStatus::ReviewInProgress
            {
                return Err(StackError::Busy {
                    stack: checked.stack_name.clone(),
                    place: place.clone(),
                    status: status.as_str().to_owned(),
                }
                .into());
            }
            if stack::is_settled(&status) {
                // The comparison the no-op re-run rests on: the template body and the parameters
                // as deployed, against what we would deploy.
                let body = stack::deployed_template(&cf, &checked.stack_name, &place).await?;
                stack::differences(&body, &stack::deployed_parameters(s), &params)
            } else {
                vec![format!(
                    "stack {} is {}: it will be created anew",
                    checked.stack_name,
                    status.as_str()
                )]
            }
        }
    };
    let subscription = match (&adopted_topic, outputs.get("FunctionArn")) {
        (Some(topic), Some(function)) => {
            topic::subscription(&sns_for(config, topic), &place, topic, function).await?
        }
        _ => None,
    };
    let redrive = match (outputs.get("FunctionArn"), outputs.get("FailureQueueArn")) {
        (Some(function), Some(queue)) => {
            let mut missing = Vec::new();
            for topic in redriven_topics(source, &outputs, adopted_topic.as_deref(), &place) {
                let sns = sns_for(config, &topic);
                if !redrives(&sns, &place, &topic, function, queue).await? {
                    missing.push(topic);
                }
            }
            missing
        }
        // No stack yet: its topic's subscription will need one.
        _ if source == Source::Sns => vec![format!("stack {}'s topic", checked.stack_name)],
        _ => Vec::new(),
    };
    Ok(Prepared {
        place,
        artifact,
        params,
        deployed,
        stack_changes,
        want,
        config_steps,
        source,
        redrive,
        adopted_topic,
        subscription,
        state,
        warnings,
    })
}

/// The topics whose subscription of the handler gets a redrive policy: the stack's own (source
/// sns), and the adopted channel's when the failure queue can take its failures (same account
/// and region).
fn redriven_topics(
    source: Source,
    outputs: &BTreeMap<String, String>,
    adopted: Option<&str>,
    place: &Place,
) -> Vec<String> {
    let own = outputs.get("TopicArn").filter(|_| source == Source::Sns);
    own.map(String::as_str)
        .into_iter()
        .chain(adopted.filter(|t| topic::can_redrive(t, place)))
        .map(str::to_owned)
        .collect()
}

/// Whether the handler's subscription to `topic` parks undeliverable messages in `queue` (a
/// missing subscription does not).
async fn redrives(
    sns: &aws_sdk_sns::Client,
    place: &Place,
    topic: &str,
    function_arn: &str,
    queue: &str,
) -> Result<bool, crate::Error> {
    Ok(
        match topic::subscription(sns, place, topic, function_arn).await? {
            Some(sub) => topic::redrives_to(
                topic::redrive(sns, place, topic, &sub).await?.as_deref(),
                queue,
            ),
            None => false,
        },
    )
}

/// `sgwatch plan`: what install would do; changes nothing (a change set for an existing stack is
/// created, described and deleted).
pub async fn plan(args: &InstallArgs, config: &SdkConfig) -> Result<Report, crate::Error> {
    let p = prepare(args, config).await?;
    let baseline_until = p.baseline_until();
    let mut changes = Vec::new();
    let s3 = sgwatch_handler::aws::s3_client(config);
    let bucket = artifacts::bucket_name(&p.place);
    let bucket_exists = artifacts::bucket_exists(&s3, &bucket, &p.place).await?;
    if !bucket_exists {
        changes.push(format!("create artifacts bucket {bucket}"));
    }
    let uploaded = bucket_exists
        && artifacts::object_exists(&s3, &bucket, &p.artifact.key(), &p.place).await?;
    if !uploaded && !p.stack_settled() {
        changes.push(format!(
            "upload handler s3://{bucket}/{} ({} bytes)",
            p.artifact.key(),
            p.artifact.size
        ));
    }
    if !p.stack_settled() {
        let name = &args.stack_name;
        let cf = aws_sdk_cloudformation::Client::new(config);
        if p.deployed.is_some() {
            changes.extend(p.stack_changes.iter().map(|c| format!("stack {name}: {c}")));
        }
        if updatable(p.deployed.as_ref()) {
            // What CloudFormation would do about it: a change set, described and deleted
            // (emulators may list no resource change for a parameter change).
            let change_set = stack::create_change_set(&cf, name, &p.params, true, &p.place).await?;
            stack::delete_change_set(&cf, name, &change_set, &p.place).await?;
            changes.extend(
                change_set
                    .changes
                    .iter()
                    .map(|c| format!("stack {name}: {c}")),
            );
        } else {
            // A change set for a stack that does not exist would create the stack (in
            // REVIEW_IN_PROGRESS): list the template's resources instead.
            for (resource, kind) in stack::resources_to_create(&p.params)? {
                changes.push(format!("stack {name}: Add {resource} ({kind})"));
            }
        }
    }
    // Config as it would be after the stack: with today's outputs where the stack exists.
    changes.extend(p.config_steps.iter().map(|s| s.describe(&p.want)));
    if let Some(topic) = &p.adopted_topic {
        if p.subscription.is_none() {
            changes.push(format!(
                "subscribe the handler to the adopted channel's topic {topic} (and let it invoke the handler)"
            ));
        }
    }
    for topic in &p.redrive {
        changes.push(format!(
            "park what SNS cannot deliver from {topic} to the handler in the failure queue \
             (the subscription's redrive policy)"
        ));
    }
    if p.state.is_none() {
        changes.push(format!(
            "record what install created in s3://{bucket}/state/{}.json",
            args.stack_name
        ));
    }
    Ok(Report {
        verb: "plan",
        account: p.place.account,
        region: p.place.region,
        stack: args.stack_name.clone(),
        changes,
        baseline_until,
        warnings: p.warnings,
        baseline: Vec::new(),
    })
}

/// `sgwatch install`.
pub async fn install(
    args: &InstallArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Report, crate::Error> {
    let p = prepare(args, config).await?;
    let place = p.place.clone();
    let name = &args.stack_name;
    let mut changes = Vec::new();
    if p.settled() {
        return Ok(Report {
            verb: "install",
            account: place.account,
            region: place.region,
            stack: name.clone(),
            changes,
            baseline_until: p.baseline_until(),
            warnings: p.warnings,
            baseline: Vec::new(),
        });
    }
    let s3 = sgwatch_handler::aws::s3_client(config);
    let mut state = p.state.clone().unwrap_or_else(|| InstallState {
        stack_name: name.clone(),
        ..Default::default()
    });

    // 1. The artifact, by content hash.
    if artifacts::ensure_bucket(&s3, &place).await? {
        changes.push(format!(
            "created artifacts bucket {}",
            artifacts::bucket_name(&place)
        ));
    }
    if artifacts::upload(&s3, &place, &p.artifact).await? {
        changes.push(format!(
            "uploaded handler {} ({} bytes)",
            p.artifact.key(),
            p.artifact.size
        ));
    }

    // 2. The stack, through a change set.
    let cf = aws_sdk_cloudformation::Client::new(config);
    let deployed = if let Some(settled) = p.deployed.clone().filter(|_| p.stack_settled()) {
        settled
    } else {
        // A stack whose first creation failed cannot be updated, and blocks creating it again;
        // one under review (a first install interrupted before its change set ran) has nothing
        // in it: remove either, then create it anew.
        if let Some(s) = &p.deployed {
            if matches!(
                s.stack_status(),
                Some(
                    StackStatus::RollbackComplete
                        | StackStatus::RollbackFailed
                        | StackStatus::ReviewInProgress
                )
            ) {
                stack::delete(&cf, name, &place, progress).await?;
            }
        }
        let exists = updatable(p.deployed.as_ref());
        if progress {
            eprintln!(
                "{} stack {name} ({place})…",
                if exists { "updating" } else { "creating" }
            );
        }
        if exists {
            changes.extend(p.stack_changes.iter().map(|c| format!("stack {name}: {c}")));
        }
        let change_set = stack::create_change_set(&cf, name, &p.params, exists, &place).await?;
        changes.extend(
            change_set
                .changes
                .iter()
                .map(|c| format!("stack {name}: {c}")),
        );
        match (change_set.empty, p.deployed.clone()) {
            // CloudFormation sees nothing to do where the text comparison saw a difference (a
            // comment, say): nothing to execute.
            (true, Some(deployed)) => {
                stack::delete_change_set(&cf, name, &change_set, &place).await?;
                deployed
            }
            _ => stack::execute(&cf, name, &change_set, &place, progress).await?,
        }
    };
    let outputs = stack::resolved_outputs(&cf, name, &deployed, &place).await?;
    state.config_bucket = outputs.get("ConfigBucketName").cloned();

    // 3. Config, decided again now that the stack's outputs are known.
    let cfg = aws_sdk_config::Client::new(config);
    let found = recorder::find(&cfg, &place).await?;
    let owned = owned(&found, Some(&state), &outputs);
    let checked = args.check()?;
    let want = want(&checked, args, &outputs);
    if let (Some(r), false) = (found.recorder_name(), owned.recorder) {
        state.recorder = "adopted".into();
        state.recorder_name = r.to_owned();
    }
    if let (Some(c), false) = (found.channel_name(), owned.channel) {
        state.channel = "adopted".into();
        state.channel_name = c.to_owned();
    }
    let mut written = p.state.clone();
    for step in recorder::steps(&found, owned, &want, &place)? {
        // Recorded *before* it is made: a kill between the call and the record would otherwise
        // leave a recorder that teardown does not know is ours (deleting one that is not there,
        // or taking back a type that was never added, is harmless).
        match &step {
            Step::CreateRecorder => {
                state.recorder = "created".into();
                state.recorder_name = recorder::NAME.into();
            }
            Step::CreateChannel => {
                state.channel = "created".into();
                state.channel_name = recorder::NAME.into();
            }
            Step::ExtendRecorder { .. } => {
                state.extended_types = vec![recorder::SECURITY_GROUP.to_owned()];
            }
            _ => {}
        }
        if written.as_ref() != Some(&state) {
            artifacts::write_state(&s3, &place, &state).await?;
            written = Some(state.clone());
        }
        recorder::apply(&cfg, &place, &found, &step, &want).await?;
        changes.push(step.describe(&want));
    }

    // 4. The adopted channel's topic (`--source sns`), or no longer (`--source eventbridge`).
    let function_arn =
        outputs
            .get("FunctionArn")
            .cloned()
            .ok_or_else(|| InstallError::MissingOutput {
                stack: name.clone(),
                place: place.clone(),
                output: "FunctionArn",
            })?;
    let lambda = aws_sdk_lambda::Client::new(config);
    let topic = adopted_topic(&found, owned, p.source, &outputs, &place)?;
    if let (Some(old), Some(sub)) = (
        state.adopted_topic_arn.clone(),
        state.adopted_subscription_arn.clone(),
    ) {
        if topic.as_deref() != Some(old.as_str()) {
            topic::unsubscribe(
                &sns_for(config, &old),
                &lambda,
                &place,
                &old,
                &sub,
                Some(&function_arn),
            )
            .await?;
            changes.push(format!("unsubscribed the handler from {old}"));
            state.adopted_topic_arn = None;
            state.adopted_subscription_arn = None;
            state.adopted_permission_sid = None;
        }
    }
    if let Some(topic) = topic {
        let sns = sns_for(config, &topic);
        if topic::subscription(&sns, &place, &topic, &function_arn)
            .await?
            .is_none()
        {
            let sub = topic::subscribe(&sns, &lambda, &place, &topic, &function_arn).await?;
            changes.push(format!(
                "subscribed the handler to the adopted channel's topic {topic}"
            ));
            state.adopted_subscription_arn = Some(sub);
        }
        state.adopted_topic_arn = Some(topic);
        state.adopted_permission_sid = Some(topic::STATEMENT_ID.to_owned());
    }

    // 5. What SNS cannot deliver to the handler is parked in the failure queue. Set through the
    // API: the stack subscribes inline (an AWS::SNS::Topic Subscription carries no redrive
    // policy), and an adopted topic's subscription is not the stack's.
    let queue =
        outputs
            .get("FailureQueueArn")
            .cloned()
            .ok_or_else(|| InstallError::MissingOutput {
                stack: name.clone(),
                place: place.clone(),
                output: "FailureQueueArn",
            })?;
    let adopted = state.adopted_topic_arn.clone();
    for topic in redriven_topics(p.source, &outputs, adopted.as_deref(), &place) {
        let sns = sns_for(config, &topic);
        let Some(sub) = topic::subscription(&sns, &place, &topic, &function_arn).await? else {
            continue;
        };
        if !topic::redrives_to(
            topic::redrive(&sns, &place, &topic, &sub).await?.as_deref(),
            &queue,
        ) {
            topic::set_redrive(&sns, &place, &topic, &sub, &queue).await?;
            changes.push(format!(
                "parked what SNS cannot deliver from {topic} to the handler in the failure queue"
            ));
        }
    }

    // 6. The record of what install created versus adopted.
    if written.as_ref() != Some(&state) {
        artifacts::write_state(&s3, &place, &state).await?;
    }

    // 7. Recording started: the groups AWS Config now discovers are the baseline and send no
    // email, so what is already open is shown here, once.
    let baseline = if baseline::starts_recording(&p.config_steps) {
        let ec2 = aws_sdk_ec2::Client::new(config);
        baseline::read(&ec2, &place, &checked.policy.notify_tag).await?
    } else {
        Vec::new()
    };
    Ok(Report {
        verb: "install",
        account: place.account,
        region: place.region,
        stack: name.clone(),
        changes,
        baseline_until: p.baseline_until(),
        warnings: p.warnings,
        baseline,
    })
}
