//! `sgwatch install` and `sgwatch plan`: checks, artifact, stack, Config. Idempotent: a re-run
//! with nothing changed makes no mutating call and says "no changes".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aws_config::SdkConfig;
use clap::{Args, ValueEnum};
use serde::Serialize;
use sgwatch_handler::recipients::parse_address;
use sgwatch_handler::settings::{Policy, RawPolicy};

use crate::artifacts::{self, InstallState};
use crate::aws::Place;
use crate::package::{self, Arch, Artifact};
use crate::{preflight, recorder, stack};
use aws_sdk_cloudformation::types::StackStatus;

/// How Config notifications reach the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
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
    /// Gets the email when a group has no valid owner, when SES rejects an owner, and changes at or above --always-notify-at
    #[arg(long, value_name = "EMAIL")]
    pub fallback_recipient: Option<String>,
    /// Changes at or above this severity reach the fallback recipient even for untagged groups
    #[arg(long, value_name = "SEVERITY")]
    pub always_notify_at: Option<String>,
    /// Tag that opts a group in (default NotifyOnChange)
    #[arg(long, value_name = "KEY")]
    pub notify_tag: Option<String>,
    /// Tag listing the owners' addresses (default OwnerDL)
    #[arg(long, value_name = "KEY")]
    pub owner_tag: Option<String>,
    /// Extra resource types to record and consider, comma-separated
    #[arg(long, value_name = "TYPE,...")]
    pub resource_types: Option<String>,
    /// Also notify when only attachments (instances, network interfaces) changed
    #[arg(long)]
    pub notify_on_relationship_changes: bool,
    /// CPU architecture of the Lambda
    #[arg(long, value_enum, default_value_t = Arch::Arm64)]
    pub arch: Arch,
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
    /// Use this handler zip instead of building one (must hold an executable `bootstrap`)
    #[arg(long, value_name = "PATH")]
    pub handler_zip: Option<PathBuf>,
    /// How notifications reach the handler; eventbridge suits an adopted delivery channel
    #[arg(long, value_enum, default_value_t = Source::Sns)]
    pub source: Source,
    /// Add AWS::EC2::SecurityGroup to an existing recorder that does not record it
    #[arg(long)]
    pub extend_recorder: bool,
}

/// Settings checked before any AWS call.
pub struct Checked {
    pub policy: Policy,
    pub sender: String,
    pub stack_name: String,
}

impl InstallArgs {
    pub fn check(&self) -> Result<Checked> {
        let policy = Policy::from_raw(&RawPolicy {
            notify_tag: self.notify_tag.clone(),
            owner_tag: self.owner_tag.clone(),
            resource_types: self.resource_types.clone(),
            fallback_recipient: self.fallback_recipient.clone(),
            always_notify_at: self.always_notify_at.clone(),
            notify_on_relationship_changes: Some(self.notify_on_relationship_changes.to_string()),
        })
        .map_err(|e| anyhow::anyhow!("invalid setting: {e}"))?;
        let sender = parse_address(&self.sender).map_err(|why| {
            anyhow::anyhow!("--sender {:?} is not an email address: {why}", self.sender)
        })?;
        let name = &self.stack_name;
        // The function is named `{stack}-handler`, and Lambda allows 64 characters.
        let valid = name.len() <= 56
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            bail!("--stack-name {name:?} is invalid: letters, digits and dashes, starting with a letter, at most 56 characters (the function is named STACK-handler, and Lambda allows 64)");
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
    pub account: String,
    pub region: String,
    pub stack: String,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn print(&self, verb: &str) {
        for w in &self.warnings {
            eprintln!("warning: {w}");
        }
        if self.changes.is_empty() {
            println!(
                "{verb} {} in {} ({}): no changes",
                self.stack, self.region, self.account
            );
        } else {
            println!(
                "{verb} {} in {} ({}):",
                self.stack, self.region, self.account
            );
            for c in &self.changes {
                println!("  {c}");
            }
        }
    }
}

fn parameters(
    args: &InstallArgs,
    checked: &Checked,
    identity: &str,
    place: &Place,
    artifact: &Artifact,
) -> BTreeMap<String, String> {
    let p = &checked.policy;
    let extra: Vec<&str> = p
        .resource_types
        .iter()
        .skip(1)
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
        ("EventSource", args.source.as_str().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Everything decided before changing anything.
struct Prepared {
    place: Place,
    artifact: Artifact,
    params: BTreeMap<String, String>,
    found: recorder::Found,
    deployed: Option<aws_sdk_cloudformation::types::Stack>,
    /// How the deployed stack differs from what install would deploy (template, parameters), one
    /// line each; empty when it is the same. Read before any change set exists.
    stack_changes: Vec<String>,
    state: Option<InstallState>,
    warnings: Vec<String>,
    extra_types: Vec<String>,
}

async fn prepare(args: &InstallArgs, config: &SdkConfig) -> Result<Prepared> {
    let checked = args.check()?;
    // A given zip is checked before any AWS call; a build waits until preflight has passed, so a
    // missing SES identity is reported in seconds rather than after minutes of compiling.
    let given = args
        .handler_zip
        .as_deref()
        .map(package::check_zip)
        .transpose()?;
    let place = crate::aws::place(config).await?;
    let ses = aws_sdk_sesv2::Client::new(config);
    let identity = preflight::sender_identity(&ses, &place, &checked.sender).await?;
    let warnings: Vec<String> = preflight::sandbox_warning(&ses, &place)
        .await
        .into_iter()
        .collect();
    let found = recorder::find(&aws_sdk_config::Client::new(config), &place).await?;
    if found.recorder.is_some() && !found.records_security_groups() && !args.extend_recorder {
        bail!(
            "the existing AWS Config recorder {:?} in {place} does not record AWS::EC2::SecurityGroup, so sgwatch would never hear of a change. Add the type to it yourself, or run install again with --extend-recorder to let sgwatch add it (the recorder is otherwise left as it is)",
            found.recorder.as_ref().and_then(|r| r.name()).unwrap_or_default()
        );
    }
    let artifact = match given {
        Some(zip) => zip,
        None => package::build(args.arch, Path::new("dist"))?,
    };
    let params =
        stack::complete_parameters(&parameters(args, &checked, &identity, &place, &artifact))?;
    let cf = aws_sdk_cloudformation::Client::new(config);
    let deployed = stack::describe(&cf, &checked.stack_name, &place).await?;
    let stack_changes = match &deployed {
        None => vec![format!("create stack {}", checked.stack_name)],
        Some(s) => {
            let status = s
                .stack_status()
                .cloned()
                .unwrap_or_else(|| StackStatus::from("UNKNOWN"));
            if status.as_str().ends_with("_IN_PROGRESS") && status != StackStatus::ReviewInProgress
            {
                return Err(stack::StackError::Busy {
                    stack: checked.stack_name.clone(),
                    place: place.clone(),
                    status: status.as_str().to_owned(),
                }
                .into());
            }
            if stack::is_settled(&status) {
                // The comparison the no-op re-run rests on: the template body and the parameters
                // (the artifact's hash is in ArtifactKey) as deployed, against what we would deploy.
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
    let s3 = sgwatch_handler::aws::s3_client(config);
    let state = artifacts::read_state(&s3, &place, &checked.stack_name).await?;
    let extra_types = checked
        .policy
        .resource_types
        .iter()
        .skip(1)
        .cloned()
        .collect();
    Ok(Prepared {
        place,
        artifact,
        params,
        found,
        deployed,
        stack_changes,
        state,
        warnings,
        extra_types,
    })
}

/// Whether Config is as install leaves it.
fn config_settled(p: &Prepared) -> bool {
    p.state.is_some()
        && p.found.recorder.is_some()
        && p.found.channel.is_some()
        && p.found.records_security_groups()
        && p.found.recording
}

fn stack_settled(p: &Prepared) -> bool {
    p.deployed.is_some() && p.stack_changes.is_empty()
}

/// Whether the deployed stack can take an update change set; a stack that never finished being
/// created (`REVIEW_IN_PROGRESS` after an interrupted first install, `ROLLBACK_COMPLETE` after a
/// failed one) is created anew instead.
fn updatable(deployed: Option<&aws_sdk_cloudformation::types::Stack>) -> bool {
    deployed
        .and_then(|s| s.stack_status())
        .is_some_and(stack::is_settled)
}

/// `sgwatch plan`: what install would do; changes nothing.
pub async fn plan(args: &InstallArgs, config: &SdkConfig) -> Result<Report> {
    let p = prepare(args, config).await?;
    let mut changes = Vec::new();
    let s3 = sgwatch_handler::aws::s3_client(config);
    let bucket = artifacts::bucket_name(&p.place);
    if !artifacts::bucket_exists(&s3, &bucket).await? {
        changes.push(format!("create artifacts bucket {bucket}"));
    }
    if !artifacts::object_exists(&s3, &bucket, &p.artifact.key())
        .await
        .unwrap_or(false)
    {
        changes.push(format!(
            "upload handler s3://{bucket}/{} ({} bytes)",
            p.artifact.key(),
            p.artifact.size
        ));
    }
    if !stack_settled(&p) {
        let cf = aws_sdk_cloudformation::Client::new(config);
        if updatable(p.deployed.as_ref()) {
            // What differs, then what CloudFormation would do about it: a change set, described
            // and deleted (emulators may list no resource change for a parameter change).
            changes.extend(
                p.stack_changes
                    .iter()
                    .map(|c| format!("stack {}: {c}", args.stack_name)),
            );
            let change_set =
                stack::create_change_set(&cf, &args.stack_name, &p.params, true, &p.place).await?;
            stack::delete_change_set(&cf, &args.stack_name, &change_set, &p.place).await?;
            changes.extend(
                change_set
                    .changes
                    .iter()
                    .map(|c| format!("stack {}: {c}", args.stack_name)),
            );
        } else {
            if p.deployed.is_some() {
                changes.extend(
                    p.stack_changes
                        .iter()
                        .map(|c| format!("stack {}: {c}", args.stack_name)),
                );
            }
            // A change set for a stack that does not exist would create the stack (in
            // REVIEW_IN_PROGRESS): list the template's resources instead.
            for (name, kind) in stack::resources_to_create(&p.params)? {
                changes.push(format!("stack {}: Add {name} ({kind})", args.stack_name));
            }
        }
    }
    match (&p.found.recorder, &p.found.channel) {
        (None, _) => changes.push(format!(
            "create configuration recorder {} recording {} and its delivery channel, start recording",
            recorder::NAME,
            std::iter::once(recorder::SECURITY_GROUP.to_owned()).chain(p.extra_types.clone()).collect::<Vec<_>>().join(", ")
        )),
        (Some(r), channel) => {
            if p.state.is_none() {
                changes.push(format!("adopt configuration recorder {} (left unchanged)", r.name().unwrap_or("?")));
            }
            if !p.found.records_security_groups() {
                changes.push(format!("add AWS::EC2::SecurityGroup to recorder {}", r.name().unwrap_or("?")));
            }
            match channel {
                None => changes.push(format!("create delivery channel {}", recorder::NAME)),
                Some(c) if p.state.is_none() && args.source == Source::Sns => changes.push(format!(
                    "subscribe the handler to the adopted channel's topic {}",
                    c.sns_topic_arn().unwrap_or("(none)")
                )),
                Some(_) => {}
            }
        }
    }
    if p.state.is_none() {
        changes.push(format!(
            "record what install created in s3://{bucket}/state/{}.json",
            args.stack_name
        ));
    }
    Ok(Report {
        account: p.place.account,
        region: p.place.region,
        stack: args.stack_name.clone(),
        changes,
        warnings: p.warnings,
    })
}

/// `sgwatch install`.
pub async fn install(args: &InstallArgs, config: &SdkConfig, progress: bool) -> Result<Report> {
    let p = prepare(args, config).await?;
    let place = p.place.clone();
    let mut changes = Vec::new();
    if stack_settled(&p) && config_settled(&p) {
        return Ok(Report {
            account: place.account,
            region: place.region,
            stack: args.stack_name.clone(),
            changes,
            warnings: p.warnings,
        });
    }
    let s3 = sgwatch_handler::aws::s3_client(config);
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

    let cf = aws_sdk_cloudformation::Client::new(config);
    let stack = if stack_settled(&p) {
        p.deployed.clone().context("stack vanished")?
    } else {
        // A stack whose first creation failed cannot be updated, and blocks creating it again:
        // remove it first. (REVIEW_IN_PROGRESS, left by an interrupted first install, takes a
        // create change set as it is.)
        if let Some(s) = &p.deployed {
            if matches!(
                s.stack_status(),
                Some(StackStatus::RollbackComplete | StackStatus::RollbackFailed)
            ) {
                stack::delete(&cf, &args.stack_name, &place, progress).await?;
            }
        }
        let exists = updatable(p.deployed.as_ref());
        if progress {
            eprintln!(
                "{} stack {} ({place})…",
                if exists { "updating" } else { "creating" },
                args.stack_name
            );
        }
        if exists {
            changes.extend(
                p.stack_changes
                    .iter()
                    .map(|c| format!("stack {}: {c}", args.stack_name)),
            );
        }
        let change_set =
            stack::create_change_set(&cf, &args.stack_name, &p.params, exists, &place).await?;
        changes.extend(
            change_set
                .changes
                .iter()
                .map(|l| format!("stack {}: {l}", args.stack_name)),
        );
        if change_set.empty {
            // CloudFormation sees nothing to do where the text comparison saw a difference (a
            // comment, say): nothing to execute.
            stack::delete_change_set(&cf, &args.stack_name, &change_set, &place).await?;
            p.deployed.clone().context("stack vanished")?
        } else {
            stack::execute(&cf, &args.stack_name, &change_set, &place, progress).await?
        }
    };
    let outputs = stack::resolved_outputs(&cf, &args.stack_name, &stack, &place).await?;
    let output = |k: &str| {
        outputs
            .get(k)
            .cloned()
            .with_context(|| format!("stack {} has no output {k}", args.stack_name))
    };

    let cfg = aws_sdk_config::Client::new(config);
    let mut state = p.state.clone().unwrap_or_else(|| InstallState {
        stack_name: args.stack_name.clone(),
        ..Default::default()
    });
    state.config_bucket = outputs.get("ConfigBucketName").cloned();
    let found = recorder::find(&cfg, &place).await?;
    match &found.recorder {
        None => {
            recorder::create(
                &cfg,
                &place,
                &output("ConfigRoleArn")?,
                &output("ConfigBucketName")?,
                &output("TopicArn")?,
                &p.extra_types,
            )
            .await?;
            changes.push(format!(
                "created configuration recorder {0} and delivery channel {0}; recording started",
                recorder::NAME
            ));
            state.recorder = "created".into();
            state.recorder_name = recorder::NAME.into();
            state.channel = "created".into();
            state.channel_name = recorder::NAME.into();
        }
        Some(r) => {
            let name = r.name().unwrap_or_default().to_owned();
            if state.recorder.is_empty() {
                state.recorder = "adopted".into();
                state.recorder_name = name.clone();
            }
            if !found.records_security_groups() {
                state.extended_types = recorder::extend(&cfg, &place, &found).await?;
                changes.push(format!("added AWS::EC2::SecurityGroup to recorder {name}"));
            }
            match &found.channel {
                None => {
                    recorder::put_channel(
                        &cfg,
                        &place,
                        &output("ConfigBucketName")?,
                        &output("TopicArn")?,
                    )
                    .await?;
                    state.channel = "created".into();
                    state.channel_name = recorder::NAME.into();
                    changes.push(format!("created delivery channel {}", recorder::NAME));
                }
                Some(c) => {
                    if state.channel.is_empty() {
                        state.channel = "adopted".into();
                        state.channel_name = c.name().unwrap_or_default().to_owned();
                    }
                    let topic = c.sns_topic_arn().map(str::to_owned);
                    if state.channel == "adopted"
                        && args.source == Source::Sns
                        && state.adopted_subscription_arn.is_none()
                    {
                        match topic {
                            Some(topic) if Some(&topic) != outputs.get("TopicArn") => {
                                let (sub, sid) = subscribe(config, &place, &topic, &output("FunctionArn")?).await?;
                                changes.push(format!("subscribed the handler to the adopted channel's topic {topic}"));
                                state.adopted_topic_arn = Some(topic);
                                state.adopted_subscription_arn = Some(sub);
                                state.adopted_permission_sid = Some(sid);
                            }
                            Some(_) => {}
                            None => p_warn(&mut changes, "the adopted delivery channel has no SNS topic: use --source eventbridge"),
                        }
                    }
                }
            }
            if !found.recording && state.recorder == "created" {
                recorder::start(&cfg, &place, &state.recorder_name).await?;
                changes.push(format!("started recorder {}", state.recorder_name));
            }
        }
    }
    if p.state.as_ref() != Some(&state) {
        artifacts::write_state(&s3, &place, &state).await?;
    }
    let mut warnings = p.warnings;
    if state.recorder == "adopted" && !found.recording {
        warnings.push(format!("the adopted recorder {} is not recording; sgwatch does not start or stop a recorder it did not create", state.recorder_name));
    }
    Ok(Report {
        account: place.account,
        region: place.region,
        stack: args.stack_name.clone(),
        changes,
        warnings,
    })
}

fn p_warn(changes: &mut Vec<String>, text: &str) {
    changes.push(format!("warning: {text}"));
}

/// Subscribes the function to an adopted topic, with the invoke permission scoped to it.
async fn subscribe(
    config: &SdkConfig,
    place: &Place,
    topic: &str,
    function_arn: &str,
) -> Result<(String, String)> {
    let sid = "sgwatch-adopted-topic".to_owned();
    let lambda = aws_sdk_lambda::Client::new(config);
    let added = lambda
        .add_permission()
        .function_name(function_arn)
        .statement_id(&sid)
        .action("lambda:InvokeFunction")
        .principal("sns.amazonaws.com")
        .source_arn(topic)
        .source_account(&place.account)
        .send()
        .await;
    if let Err(e) = added {
        let text = aws_sdk_lambda::error::DisplayErrorContext(&e).to_string();
        if !text.contains("already exists") && !text.contains("ResourceConflict") {
            return Err(anyhow::anyhow!(text))
                .with_context(|| format!("cannot let {topic} invoke the handler ({place})"));
        }
    }
    let sub = aws_sdk_sns::Client::new(config)
        .subscribe()
        .topic_arn(topic)
        .protocol("lambda")
        .endpoint(function_arn)
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sns::error::DisplayErrorContext(&e)))
        .with_context(|| format!("cannot subscribe the handler to {topic} ({place})"))?;
    Ok((sub.subscription_arn().unwrap_or_default().to_owned(), sid))
}
