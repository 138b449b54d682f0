//! What to do: pure functions from what is there ([`Observed`], [`Installed`]) and what is wanted
//! ([`Wanted`]) to a list of steps. No AWS call is made here, so plan and install agree by
//! construction, and "a re-run with nothing to do does nothing" is a property of [`plan`].
//!
//! Ownership is decided once, by [`owned`]: install adopts what it did not create, and teardown
//! ([`undo`]) removes only what install created.

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::StackStatus;

use crate::aws::Place;
use crate::deploy::artifacts::{self, InstallState, Ownership};
use crate::deploy::baseline;
use crate::deploy::observe::{Installed, Observed, Topic};
use crate::deploy::recorder::{self, Found, Owned, Want};
use crate::deploy::stack::{self, Deployed, Source, StackError, StackOutputs};
use crate::deploy::topic;
use crate::deploy::wanted::{Checked, DigestLevel, InstallArgs, InstallError, Wanted};

/// The stack's change: created, or updated through a change set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStep {
    /// A stack that never finished being created (`ROLLBACK_COMPLETE`, `ROLLBACK_FAILED`, or
    /// `REVIEW_IN_PROGRESS` after an interrupted first install) is deleted and created anew.
    pub replace: bool,
    /// The stack exists and can take an update change set.
    pub update: bool,
    /// How the deployed stack differs from what install deploys, one line each.
    pub differences: Vec<String>,
}

impl StackStep {
    /// The change to the deployed stack (if any) that makes these differences.
    fn new(deployed: Option<&Deployed>, differences: Vec<String>) -> StackStep {
        let status = deployed.and_then(Deployed::status);
        StackStep {
            replace: matches!(
                status,
                Some(
                    StackStatus::RollbackComplete
                        | StackStatus::RollbackFailed
                        | StackStatus::ReviewInProgress
                )
            ),
            update: status.is_some_and(stack::is_settled),
            differences,
        }
    }
}

/// One change install makes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateArtifactsBucket,
    Upload,
    Stack(StackStep),
    Config(recorder::Step),
    /// The handler is subscribed to an adopted topic it should no longer be (the channel or the
    /// source changed).
    Unsubscribe {
        topic: String,
        subscription: String,
    },
    /// Subscribe the handler to the adopted channel's topic.
    Subscribe {
        topic: String,
    },
    /// Set the subscription's redrive policy to the failure queue.
    Redrive {
        topic: String,
    },
    /// Write the install record (there is none yet).
    Record,
}

/// What install would do.
#[derive(Debug, Clone)]
pub struct Plan {
    pub source: Source,
    /// The complete stack parameters.
    pub params: BTreeMap<String, String>,
    pub baseline_until: String,
    /// Config as it should be after the stack (the stack's outputs named while unknown).
    pub want: Want,
    pub warnings: Vec<String>,
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether the plan makes AWS Config start recording security groups.
    pub fn starts_recording(&self) -> bool {
        self.steps.iter().any(|s| match s {
            Step::Config(c) => baseline::starts_recording(std::slice::from_ref(c)),
            _ => false,
        })
    }

    /// The step as plan lists it (the stack's change set is described by `install::plan`).
    pub fn describe(&self, step: &Step, wanted: &Wanted, place: &Place) -> String {
        let bucket = artifacts::bucket_name(place);
        match step {
            Step::CreateArtifactsBucket => format!("create artifacts bucket {bucket}"),
            Step::Upload => format!(
                "upload handler s3://{bucket}/{} ({} bytes)",
                wanted.artifact.key(),
                wanted.artifact.size
            ),
            Step::Stack(s) => s
                .differences
                .iter()
                .map(|d| format!("stack {}: {d}", wanted.checked.stack_name))
                .collect::<Vec<_>>()
                .join("\n"),
            Step::Config(c) => c.describe(&self.want),
            Step::Unsubscribe { topic, .. } => format!("unsubscribe the handler from {topic}"),
            Step::Subscribe { topic } => format!(
                "subscribe the handler to the adopted channel's topic {topic} (and let it invoke the handler)"
            ),
            Step::Redrive { topic } => format!(
                "park what SNS cannot deliver from {topic} to the handler in the failure queue \
                 (the subscription's redrive policy)"
            ),
            Step::Record => format!(
                "record what install created in s3://{bucket}/state/{}.json",
                wanted.checked.stack_name
            ),
        }
    }
}

/// Which of the found recorder and channel are install's, for install and teardown alike: its
/// record says it created them, or (the record lost to an interrupted install) they point at this
/// stack's role and bucket, which nobody else uses.
pub fn owned(found: &Found, state: Option<&InstallState>, outputs: &StackOutputs) -> Owned {
    let created = |how: Ownership, named: &str, actual: Option<&str>| {
        how == Ownership::Created && Some(named) == actual
    };
    let recorder = found.recorder.as_ref().is_some_and(|r| {
        state.is_some_and(|s| created(s.recorder, &s.recorder_name, r.name()))
            || (r.role_arn().is_some() && r.role_arn() == outputs.config_role_arn.as_deref())
    });
    let channel = found.channel.as_ref().is_some_and(|c| {
        state.is_some_and(|s| created(s.channel, &s.channel_name, c.name()))
            || (c.s3_bucket_name().is_some()
                && c.s3_bucket_name() == outputs.config_bucket_name.as_deref())
    });
    Owned { recorder, channel }
}

/// Marks in the record what install found and did not create.
pub fn mark_adopted(state: &mut InstallState, found: &Found, owned: Owned) {
    if let (Some(r), false) = (found.recorder_name(), owned.recorder) {
        state.recorder = Ownership::Adopted;
        state.recorder_name = r.to_owned();
    }
    if let (Some(c), false) = (found.channel_name(), owned.channel) {
        state.channel = Ownership::Adopted;
        state.channel_name = c.to_owned();
    }
}

/// Config as install wants it, with the stack's outputs where the stack exists.
pub fn want(args: &InstallArgs, checked: &Checked, outputs: &StackOutputs) -> Want {
    Want {
        types: checked.policy.resource_types.clone(),
        role_arn: outputs.config_role_arn.clone(),
        bucket: outputs.config_bucket_name.clone(),
        topic: outputs.topic_arn.clone(),
        extend: args.extend_recorder,
        bucket_only: false,
    }
}

/// The Config steps; an adopted recorder that does not record security groups is an error here
/// (install checks it before the possibly long build).
pub fn config_steps(
    installed: &Installed,
    args: &InstallArgs,
    checked: &Checked,
) -> Result<Vec<recorder::Step>, crate::Error> {
    let owned = owned(
        &installed.found,
        installed.state.as_ref(),
        installed.outputs(),
    );
    let want = want(args, checked, installed.outputs());
    Ok(recorder::steps(
        &installed.found,
        owned,
        &want,
        &installed.place,
    )?)
}

/// How notifications reach the handler: `--source` when given; otherwise eventbridge when an
/// adopted channel's topic belongs to another account (an AWS Control Tower channel sends to the
/// audit account's topic, which aggregates every account: a subscription there would be refused,
/// or would bring every account's changes), with the reason as a warning; sns otherwise.
pub fn source(asked: Option<Source>, installed: &Installed) -> (Source, Option<String>) {
    if let Some(asked) = asked {
        return (asked, None);
    }
    let owned = owned(
        &installed.found,
        installed.state.as_ref(),
        installed.outputs(),
    );
    let foreign = installed
        .found
        .channel
        .as_ref()
        .filter(|_| !owned.channel)
        .and_then(|c| c.sns_topic_arn())
        .filter(|topic| {
            topic
                .split(':')
                .nth(4)
                .is_some_and(|a| a != installed.place.account)
        });
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
pub fn adopted_topic(
    installed: &Installed,
    source: Source,
) -> Result<Option<String>, crate::Error> {
    let owned = owned(
        &installed.found,
        installed.state.as_ref(),
        installed.outputs(),
    );
    let Some(channel) = installed.found.channel.as_ref().filter(|_| !owned.channel) else {
        return Ok(None);
    };
    if source != Source::Sns {
        return Ok(None);
    }
    match channel.sns_topic_arn() {
        None => Err(InstallError::ChannelWithoutTopic {
            channel: channel.name().unwrap_or_default().to_owned(),
            place: installed.place.clone(),
        }
        .into()),
        // Already our own topic (its inline subscription is the stack's).
        Some(topic) if installed.outputs().topic_arn.as_deref() == Some(topic) => Ok(None),
        Some(topic) => Ok(Some(topic.to_owned())),
    }
}

/// The topics whose subscription of the handler install reads: the stack's own (source sns) and
/// the adopted channel's. Each is redriven to the failure queue when the queue can take its
/// failures (same account and region).
pub fn topics(installed: &Installed, source: Source) -> Result<Vec<Topic>, crate::Error> {
    let own = (installed.outputs().topic_arn.as_ref())
        .filter(|_| source == Source::Sns)
        .map(|arn| Topic {
            arn: arn.clone(),
            redriven: true,
        });
    let adopted = adopted_topic(installed, source)?.map(|arn| Topic {
        redriven: topic::can_redrive(&arn, &installed.place),
        arn,
    });
    Ok(own.into_iter().chain(adopted).collect())
}

/// The stack parameters install deploys (before the template's defaults are filled in): the
/// handler's settings and how it is deployed.
fn parameters(
    wanted: &Wanted,
    source: Source,
    identity: &str,
    place: &Place,
    baseline_until: &str,
    adopted_topic: &str,
) -> BTreeMap<String, String> {
    let args = &wanted.args;
    let deployment = [
        ("Architecture", args.arch.as_str().to_owned()),
        ("ArtifactBucket", artifacts::bucket_name(place)),
        ("ArtifactKey", wanted.artifact.key()),
        ("EventSource", source.as_str().to_owned()),
        ("BaselineUntil", baseline_until.to_owned()),
        // The failure queue takes undelivered messages of this topic only, besides the stack's.
        ("AdoptedTopicArn", adopted_topic.to_owned()),
        // Only this account's changes: a channel's topic may aggregate many (AWS Control Tower).
        // A hub serves its organization (the bus lets in no one else) or its listed accounts.
        ("Accounts", served_accounts(args.hub.as_ref(), place)),
        ("Hub", args.hub.is_some().to_string()),
        (
            "HubOrganizationId",
            args.hub
                .as_ref()
                .and_then(|h| h.organization_id.clone())
                .unwrap_or_default(),
        ),
        (
            "HubAccounts",
            args.hub
                .as_ref()
                .map(|h| h.member_accounts.join(","))
                .unwrap_or_default(),
        ),
        (
            "ReservedConcurrency",
            args.reserved_concurrency
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
        (
            "ActorFeed",
            args.actor_feed
                .unwrap_or(stack::OnOff::Off)
                .as_str()
                .to_owned(),
        ),
    ];
    settings(wanted, identity)
        .into_iter()
        .chain(deployment)
        .chain(acting_parameters(args))
        .chain(quiet_parameters(args))
        .chain(security_parameters(args))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// What acts on alerts, as stack parameters: the owners' links, auto-revert and the principals
/// it trusts.
fn acting_parameters(args: &InstallArgs) -> [(&'static str, String); 6] {
    [
        (
            "ActLinks",
            args.act_links
                .unwrap_or(stack::OnOff::Off)
                .as_str()
                .to_owned(),
        ),
        (
            "ActLinkHours",
            args.link_hours
                .map_or(sgwatch_handler::link::DEFAULT_HOURS, u64::from)
                .to_string(),
        ),
        (
            "KeepDays",
            args.keep_days
                .map_or(sgwatch_handler::link::DEFAULT_KEEP_DAYS, u64::from)
                .to_string(),
        ),
        (
            "AutoRevert",
            args.auto_revert.map_or("off", |m| m.as_str()).to_owned(),
        ),
        (
            "AutoRevertAt",
            args.auto_revert_at
                .as_deref()
                .and_then(|v| v.parse::<sgwatch_handler::severity::Severity>().ok())
                .unwrap_or(sgwatch_handler::severity::Severity::Critical)
                .as_str()
                .to_owned(),
        ),
        (
            "TrustedPrincipals",
            args.trusted_principals
                .iter()
                .flatten()
                .flat_map(|p| p.split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]
}

/// The noise controls' stack parameters: coalescing, the rate limit and the daily digest.
fn quiet_parameters(args: &InstallArgs) -> [(&'static str, String); 6] {
    [
        ("CoalesceSeconds", args.coalesce.unwrap_or(60).to_string()),
        (
            "MaxPerGroupHour",
            args.max_per_group_hour.unwrap_or(10).to_string(),
        ),
        (
            "Digest",
            args.digest.map_or("off", DigestLevel::as_str).to_owned(),
        ),
        (
            "DigestHour",
            args.digest_at.map_or(8, |(h, _)| h).to_string(),
        ),
        (
            "DigestMinute",
            args.digest_at.map_or(0, |(_, m)| m).to_string(),
        ),
        (
            "DigestTimezone",
            args.digest_timezone
                .clone()
                .unwrap_or_else(|| "UTC".to_owned()),
        ),
    ]
}

/// Where security teams look: Security Hub findings, and PagerDuty's level and endpoint.
fn security_parameters(args: &InstallArgs) -> [(&'static str, String); 3] {
    [
        (
            "SecurityHub",
            args.security_hub
                .unwrap_or(stack::OnOff::Off)
                .as_str()
                .to_owned(),
        ),
        (
            "PageAt",
            args.page_at
                .as_deref()
                .and_then(|v| v.parse::<sgwatch_handler::severity::Severity>().ok())
                .unwrap_or(sgwatch_handler::severity::Severity::High)
                .as_str()
                .to_owned(),
        ),
        (
            "PagerDutyUrl",
            args.pagerduty_url
                .clone()
                .unwrap_or_else(|| sgwatch_handler::settings::PAGERDUTY_URL.to_owned()),
        ),
    ]
}

/// The accounts whose changes the function tells: this one; for a hub, its organization's (any
/// the bus admitted) or this one and its listed members.
fn served_accounts(hub: Option<&crate::deploy::wanted::Hub>, place: &Place) -> String {
    match hub {
        None => place.account.clone(),
        Some(h) if h.organization_id.is_some() => "*".to_owned(),
        Some(h) => std::iter::once(&place.account)
            .chain(h.member_accounts.iter().filter(|a| **a != place.account))
            .cloned()
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The parameters that become the handler's settings.
fn settings(wanted: &Wanted, identity: &str) -> Vec<(&'static str, String)> {
    let p = &wanted.checked.policy;
    // The handler always watches security groups; the parameter holds the others.
    let extra: Vec<&str> = p
        .resource_types
        .iter()
        .filter(|t| *t != recorder::SECURITY_GROUP)
        .map(String::as_str)
        .collect();
    vec![
        ("Sender", wanted.checked.sender.clone()),
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
        (
            "AllowPrivateDestinations",
            p.allow_private_destinations.to_string(),
        ),
        ("LookupActor", "true".to_owned()),
        (
            "Destinations",
            p.destinations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "DestinationParameters",
            crate::deploy::policy_args::destination_parameters(p).join(","),
        ),
        (
            "ChatbotTopics",
            crate::deploy::policy_args::chatbot_topics(p).join(","),
        ),
        (
            "DestinationKmsKeyArn",
            wanted
                .args
                .policy
                .destination_kms_key
                .clone()
                .unwrap_or_default(),
        ),
        ("ChannelsTag", p.channels_tag.clone()),
        (
            "FallbackDestination",
            p.fallback_destination.clone().unwrap_or_default(),
        ),
    ]
}

/// How the deployed stack differs from `params`; a stack busy with another operation is an error.
fn stack_differences(
    name: &str,
    deployed: Option<&Deployed>,
    template: Option<&str>,
    params: &BTreeMap<String, String>,
    place: &Place,
) -> Result<Vec<String>, StackError> {
    let Some(deployed) = deployed else {
        return Ok(vec![format!("create stack {name}")]);
    };
    let status = deployed
        .status()
        .cloned()
        .unwrap_or_else(|| StackStatus::from("UNKNOWN"));
    if stack::in_progress(&status) && status != StackStatus::ReviewInProgress {
        return Err(StackError::Busy {
            stack: name.to_owned(),
            place: place.clone(),
            status: status.as_str().to_owned(),
        });
    }
    Ok(match template.filter(|_| stack::is_settled(&status)) {
        // The comparison the no-op re-run rests on: the template body and the parameters as
        // deployed, against what we would deploy.
        Some(body) => stack::differences(body, &deployed.params.all, params),
        None => vec![format!(
            "stack {name} is {}: it will be created anew",
            status.as_str()
        )],
    })
}

/// What install cannot fix about what it adopts: a topic whose failures cannot be parked, a
/// recorder that is not recording or records groups only daily.
fn adoption_warnings(
    installed: &Installed,
    source: Source,
    owned: Owned,
) -> Result<Vec<String>, crate::Error> {
    let place = &installed.place;
    let mut warnings = Vec::new();
    if let Some(topic) = adopted_topic(installed, source)?.filter(|t| !topic::can_redrive(t, place))
    {
        warnings.push(format!(
            "what SNS fails to deliver from {topic} to the handler cannot be parked in the \
             failure queue (a dead-letter queue must be in the subscription's account and \
             region, and this topic is not in {place}): such messages are dropped by SNS"
        ));
    }
    if installed.found.recorder.is_some() && !owned.recorder && !installed.found.recording {
        warnings.push(format!(
            "the adopted recorder {} in {place} is not recording: sgwatch never starts or stops a \
             recorder it did not create, so no change will be reported until its owner starts it",
            installed.found.recorder_name().unwrap_or("?")
        ));
    }
    if let Some(daily) = installed.found.daily_security_groups() {
        warnings.push(format!(
            "{daily} in {place}: AWS Config reports a change to a group only at its next daily \
             capture, so owners hear of it up to 24 hours late. Set the recorder's recording \
             frequency to continuous (or a CONTINUOUS override for {})",
            recorder::SECURITY_GROUP
        ));
    }
    Ok(warnings)
}

/// Everything install would do, in order.
pub fn plan(observed: &Observed, wanted: &Wanted) -> Result<Plan, crate::Error> {
    let installed = &observed.installed;
    let place = &installed.place;
    let owned = owned(
        &installed.found,
        installed.state.as_ref(),
        installed.outputs(),
    );
    // A plain install over the hub would delete its bus and queue.
    if wanted.args.hub.is_none()
        && installed.params().all.get("Hub").map(String::as_str) == Some("true")
    {
        return Err(crate::deploy::wanted::InstallError::HubStack(
            wanted.checked.stack_name.clone(),
        )
        .into());
    }
    let config = config_steps(installed, &wanted.args, &wanted.checked)?;
    let (source, why) = source(wanted.args.source, installed);
    let mut warnings = observed.warnings.clone();
    warnings.extend(why);
    warnings.extend(adoption_warnings(installed, source, owned)?);
    // Recording that starts now makes AWS Config discover every existing group: those are the
    // baseline. Otherwise the deployed time stays, so a re-install with nothing to do changes
    // nothing.
    let baseline_until = if baseline::starts_recording(&config) {
        baseline::until(wanted.now)
    } else {
        installed
            .params()
            .baseline_until
            .clone()
            .unwrap_or_default()
    };
    // The adopted channel's topic redrives to the failure queue when it can (same account and
    // region): the queue's policy names it, and no other topic.
    let adopted = adopted_topic(installed, source)?
        .filter(|t| topic::can_redrive(t, place))
        .unwrap_or_default();
    let params = stack::complete_parameters(&parameters(
        wanted,
        source,
        &observed.identity,
        place,
        &baseline_until,
        &adopted,
    ))?;
    let name = &wanted.checked.stack_name;
    let differences = stack_differences(
        name,
        installed.deployed.as_ref(),
        observed.template.as_deref(),
        &params,
        place,
    )?;
    let stack_settled = installed.deployed.is_some() && differences.is_empty();

    let mut steps = Vec::new();
    if !observed.artifacts_bucket {
        steps.push(Step::CreateArtifactsBucket);
    }
    if !observed.uploaded && !stack_settled {
        steps.push(Step::Upload);
    }
    if !stack_settled {
        steps.push(Step::Stack(StackStep::new(
            installed.deployed.as_ref(),
            differences,
        )));
    }
    steps.extend(after_stack(observed, wanted, source)?);
    Ok(Plan {
        source,
        params,
        baseline_until,
        want: want(&wanted.args, &wanted.checked, installed.outputs()),
        warnings,
        steps,
    })
}

/// The steps that follow the stack, decided from the stack's outputs: `plan` calls it with the
/// outputs of the stack as it is, and install again once the stack is deployed (the Config
/// steps name its role, bucket and topic).
pub fn after_stack(
    observed: &Observed,
    wanted: &Wanted,
    source: Source,
) -> Result<Vec<Step>, crate::Error> {
    let installed = &observed.installed;
    let mut steps: Vec<Step> = config_steps(installed, &wanted.args, &wanted.checked)?
        .into_iter()
        .map(Step::Config)
        .collect();
    let adopted = adopted_topic(installed, source)?;
    if let Some(state) = &installed.state {
        if let (Some(old), Some(sub)) = (&state.adopted_topic_arn, &state.adopted_subscription_arn)
        {
            if adopted.as_ref() != Some(old) {
                steps.push(Step::Unsubscribe {
                    topic: old.clone(),
                    subscription: sub.clone(),
                });
            }
        }
    }
    let subscribed = |topic: &str| observed.subscriptions.get(topic).cloned().flatten();
    if let Some(topic) = adopted.as_ref().filter(|t| subscribed(t).is_none()) {
        steps.push(Step::Subscribe {
            topic: topic.clone(),
        });
    }
    let outputs = installed.outputs();
    match &outputs.failure_queue_arn {
        Some(queue) if outputs.function_arn.is_some() => {
            for t in topics(installed, source)?
                .into_iter()
                .filter(|t| t.redriven)
            {
                let redriven = subscribed(&t.arn)
                    .is_some_and(|s| topic::redrives_to(s.redrive.as_deref(), queue));
                if !redriven {
                    steps.push(Step::Redrive { topic: t.arn });
                }
            }
        }
        // No stack yet: its topic's subscription will need one.
        _ if source == Source::Sns => steps.push(Step::Redrive {
            topic: format!("stack {}'s topic", wanted.checked.stack_name),
        }),
        _ => {}
    }
    if installed.state.is_none() {
        steps.push(Step::Record);
    }
    Ok(steps)
}

/// One removal teardown makes, in order: outside the stack first, while the stack's outputs
/// still say what is ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    Unsubscribe {
        topic: String,
        subscription: String,
    },
    /// The recorder install created, with the channel when that is install's too.
    DeleteRecorder {
        name: String,
        channel: Option<String>,
    },
    DeleteChannel {
        name: String,
    },
    /// Take back the types `--extend-recorder` added to an adopted recorder.
    Unextend {
        recorder: String,
        types: Vec<String>,
    },
    DeleteStack,
    /// The Config bucket the stack retains on deletion: removed, or kept (`--keep-history`).
    ConfigBucket {
        bucket: String,
        keep: bool,
    },
    /// The install record, and the artifacts bucket with the last record.
    Record,
}

/// What teardown removes (in order) and the adopted resources it leaves, as lines.
pub fn undo(installed: &Installed, keep_history: bool) -> (Vec<Undo>, Vec<String>) {
    let (found, state) = (&installed.found, installed.state.as_ref());
    let owned = owned(found, state, installed.outputs());
    let mut steps = Vec::new();
    let mut kept = Vec::new();
    if let Some((topic, sub)) = state.and_then(|s| {
        s.adopted_topic_arn
            .clone()
            .zip(s.adopted_subscription_arn.clone())
    }) {
        steps.push(Undo::Unsubscribe {
            topic,
            subscription: sub,
        });
    }
    match (found.recorder_name(), found.channel_name()) {
        (Some(r), channel) if owned.recorder => steps.push(Undo::DeleteRecorder {
            name: r.to_owned(),
            channel: channel.filter(|_| owned.channel).map(str::to_owned),
        }),
        (_, Some(c)) if owned.channel => steps.push(Undo::DeleteChannel { name: c.to_owned() }),
        _ => {}
    }
    if let Some(s) =
        state.filter(|s| s.recorder == Ownership::Adopted && !s.extended_types.is_empty())
    {
        steps.push(Undo::Unextend {
            recorder: s.recorder_name.clone(),
            types: s.extended_types.clone(),
        });
    }
    // Worth saying only where there was an install of this stack to tear down.
    let was_installed = state.is_some() || installed.deployed.is_some();
    if let Some(r) = found
        .recorder_name()
        .filter(|_| was_installed && !owned.recorder)
    {
        kept.push(format!(
            "configuration recorder {r} (adopted, not created by this install)"
        ));
    }
    if let Some(c) = found
        .channel_name()
        .filter(|_| was_installed && !owned.channel)
    {
        kept.push(format!(
            "delivery channel {c} (adopted, not created by this install)"
        ));
    }
    steps.push(Undo::DeleteStack);
    let config_bucket = (installed.outputs().config_bucket_name.clone())
        .or_else(|| state.and_then(|s| s.config_bucket.clone()));
    if let Some(bucket) = config_bucket {
        steps.push(Undo::ConfigBucket {
            bucket,
            keep: keep_history,
        });
    }
    steps.push(Undo::Record);
    (steps, kept)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use aws_sdk_cloudformation::types::{Output, Parameter, Stack};
    use aws_sdk_config::types::{ConfigurationRecorder, DeliveryChannel, RecordingGroup};

    use super::*;
    use crate::deploy::observe::Subscribed;
    use crate::deploy::package::{Arch, Artifact};
    use crate::deploy::policy_args::PolicyArgs;

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "us-east-1";

    fn place() -> Place {
        Place {
            account: ACCOUNT.into(),
            region: REGION.into(),
        }
    }

    fn wanted() -> Wanted {
        let args = InstallArgs {
            sender: "alerts@example.com".into(),
            policy: PolicyArgs::default(),
            arch: Arch::Arm64,
            stack_name: "sgwatch".into(),
            handler_zip: None,
            source: None,
            extend_recorder: false,
            reserved_concurrency: None,
            actor_feed: None,
            act_links: None,
            link_hours: None,
            keep_days: None,
            auto_revert: None,
            auto_revert_at: None,
            trusted_principals: None,
            coalesce: None,
            max_per_group_hour: None,
            digest: None,
            digest_at: None,
            digest_timezone: None,
            security_hub: None,
            page_at: None,
            pagerduty_url: None,
            hub: None,
        };
        let checked = args.check().expect("valid flags");
        Wanted {
            args,
            checked,
            artifact: Artifact {
                path: "bootstrap.zip".into(),
                size: 1234,
                sha256: "ab".repeat(32),
            },
            now: SystemTime::UNIX_EPOCH,
        }
    }

    fn arn(service: &str, rest: &str) -> String {
        format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}")
    }

    fn outputs() -> BTreeMap<String, String> {
        [
            (
                "ConfigRoleArn",
                format!("arn:aws:iam::{ACCOUNT}:role/sgwatch-config"),
            ),
            ("ConfigBucketName", "sgwatch-config-bucket".to_owned()),
            ("TopicArn", arn("sns", "sgwatch-topic")),
            ("FunctionArn", arn("lambda", "function:sgwatch-handler")),
            ("FailureQueueArn", arn("sqs", "sgwatch-failures")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The account as a finished install leaves it: the stack deployed with exactly `params`,
    /// Config created and recording, the topic's subscription redriven, the record written.
    fn installed_with(params: &BTreeMap<String, String>) -> Observed {
        let outputs = outputs();
        let stack = Stack::builder()
            .stack_name("sgwatch")
            .stack_status(StackStatus::CreateComplete)
            .set_parameters(Some(
                params
                    .iter()
                    .map(|(k, v)| {
                        Parameter::builder()
                            .parameter_key(k)
                            .parameter_value(v)
                            .build()
                    })
                    .collect(),
            ))
            .set_outputs(Some(
                outputs
                    .iter()
                    .map(|(k, v)| Output::builder().output_key(k).output_value(v).build())
                    .collect(),
            ))
            .build();
        let recorder = ConfigurationRecorder::builder()
            .name(recorder::NAME)
            .role_arn(&outputs["ConfigRoleArn"])
            .recording_group(
                RecordingGroup::builder()
                    .all_supported(false)
                    .resource_types(recorder::SECURITY_GROUP.into())
                    .build(),
            )
            .build();
        let channel = DeliveryChannel::builder()
            .name(recorder::NAME)
            .s3_bucket_name(&outputs["ConfigBucketName"])
            .sns_topic_arn(&outputs["TopicArn"])
            .build();
        let state = InstallState {
            stack_name: "sgwatch".into(),
            recorder: Ownership::Created,
            recorder_name: recorder::NAME.into(),
            channel: Ownership::Created,
            channel_name: recorder::NAME.into(),
            config_bucket: Some(outputs["ConfigBucketName"].clone()),
            ..Default::default()
        };
        let topic = outputs["TopicArn"].clone();
        let queue = outputs["FailureQueueArn"].clone();
        Observed {
            installed: Installed {
                place: place(),
                stack_name: "sgwatch".into(),
                deployed: Some(Deployed {
                    stack,
                    params: stack::StackParams::from_map(params.clone()),
                    outputs: StackOutputs::from_map(outputs),
                }),
                state: Some(state),
                found: Found {
                    recorder: Some(recorder),
                    recording: true,
                    last_status: Some("SUCCESS".into()),
                    channel: Some(channel),
                },
            },
            identity: "alerts@example.com".into(),
            warnings: Vec::new(),
            template: Some(stack::TEMPLATE.to_owned()),
            artifacts_bucket: true,
            uploaded: true,
            subscriptions: [(
                topic,
                Some(Subscribed {
                    arn: format!("{}:sub-1", arn("sns", "sgwatch-topic")),
                    redrive: Some(topic::redrive_policy(&queue)),
                }),
            )]
            .into_iter()
            .collect(),
        }
    }

    /// The parameters a plan over `observed` deploys (what a finished install left).
    fn deployed_params() -> BTreeMap<String, String> {
        let fresh = installed_with(&BTreeMap::new());
        let plan = plan(&fresh, &wanted()).expect("plans");
        plan.params
    }

    #[test]
    fn a_finished_install_plans_nothing() {
        let observed = installed_with(&deployed_params());
        let plan = plan(&observed, &wanted()).expect("plans");
        assert_eq!(plan.steps, Vec::<Step>::new());
    }

    #[test]
    fn a_changed_setting_plans_only_the_stack_update() {
        let observed = installed_with(&deployed_params());
        let mut w = wanted();
        w.args.reserved_concurrency = Some(5);
        let plan = plan(&observed, &w).expect("plans");
        let [Step::Stack(s)] = plan.steps.as_slice() else {
            panic!("expected only the stack step, got {:?}", plan.steps);
        };
        assert!(s.update && !s.replace);
        assert_eq!(
            s.differences,
            vec![r#"parameter ReservedConcurrency: "" → "5""#.to_owned()]
        );
    }

    #[test]
    fn a_fresh_account_plans_every_step_in_order() {
        let mut observed = installed_with(&BTreeMap::new());
        observed.installed.deployed = None;
        observed.installed.state = None;
        observed.installed.found = Found::default();
        observed.template = None;
        observed.artifacts_bucket = false;
        observed.uploaded = false;
        observed.subscriptions.clear();
        let plan = plan(&observed, &wanted()).expect("plans");
        assert_eq!(
            plan.steps,
            vec![
                Step::CreateArtifactsBucket,
                Step::Upload,
                Step::Stack(StackStep {
                    replace: false,
                    update: false,
                    differences: vec!["create stack sgwatch".into()],
                }),
                Step::Config(recorder::Step::CreateRecorder),
                Step::Config(recorder::Step::CreateChannel),
                Step::Config(recorder::Step::StartRecorder {
                    name: recorder::NAME.into()
                }),
                Step::Redrive {
                    topic: "stack sgwatch's topic".into()
                },
                Step::Record,
            ]
        );
        assert_eq!(plan.baseline_until, "1970-01-01T01:00:00Z");
    }

    /// An adopted recorder with a DAILY override for security groups (the ConfigurationRecorder
    /// reference's `recordingMode`): install goes on and warns.
    #[test]
    fn a_recorder_that_records_groups_daily_is_a_warning() {
        use aws_sdk_config::types::{RecordingFrequency, RecordingMode, RecordingModeOverride};
        let mut observed = installed_with(&deployed_params());
        let plan_before = plan(&observed, &wanted()).expect("plans");
        assert!(
            !plan_before.warnings.iter().any(|w| w.contains("daily")),
            "{:?}",
            plan_before.warnings
        );
        let recorder = observed.installed.found.recorder.take().unwrap();
        let daily = RecordingMode::builder()
            .recording_frequency(RecordingFrequency::Continuous)
            .recording_mode_overrides(
                RecordingModeOverride::builder()
                    .resource_types(recorder::SECURITY_GROUP.into())
                    .recording_frequency(RecordingFrequency::Daily)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        observed.installed.found.recorder = Some(
            ConfigurationRecorder::builder()
                .set_name(recorder.name().map(str::to_owned))
                .set_role_arn(recorder.role_arn().map(str::to_owned))
                .set_recording_group(recorder.recording_group().cloned())
                .recording_mode(daily)
                .build(),
        );
        let plan = plan(&observed, &wanted()).expect("plans");
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        let warning = plan
            .warnings
            .iter()
            .find(|w| w.contains("daily"))
            .expect("a warning about daily recording");
        assert!(
            warning.contains("up to 24 hours late") && warning.contains("continuous"),
            "{warning}"
        );
    }

    #[test]
    fn teardown_removes_what_the_record_says_install_created_and_keeps_the_rest() {
        let mut observed = installed_with(&deployed_params());
        let (steps, kept) = undo(&observed, false);
        assert_eq!(
            steps,
            vec![
                Undo::DeleteRecorder {
                    name: recorder::NAME.into(),
                    channel: Some(recorder::NAME.into()),
                },
                Undo::DeleteStack,
                Undo::ConfigBucket {
                    bucket: "sgwatch-config-bucket".into(),
                    keep: false,
                },
                Undo::Record,
            ]
        );
        assert!(kept.is_empty());

        // An org's recorder, adopted: never removed, said to be kept.
        let state = observed.installed.state.as_mut().expect("record");
        state.recorder = Ownership::Adopted;
        state.channel = Ownership::Adopted;
        let outputs = &mut observed
            .installed
            .deployed
            .as_mut()
            .expect("a stack")
            .outputs;
        outputs.config_role_arn = None;
        outputs.config_bucket_name = None;
        let (steps, kept) = undo(&observed, true);
        assert_eq!(
            steps,
            vec![
                Undo::DeleteStack,
                Undo::ConfigBucket {
                    bucket: "sgwatch-config-bucket".into(),
                    keep: true,
                },
                Undo::Record,
            ]
        );
        assert_eq!(kept.len(), 2, "{kept:?}");
    }
}
