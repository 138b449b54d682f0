//! `sgwatch spoke install|plan|status|teardown`: a member account × region that tells the
//! organization's hub ([`templates/sgwatch-spoke.yaml`](../../../templates/sgwatch-spoke.yaml)):
//! two EventBridge rules forwarding security-group changes and calls to the hub's bus, an hourly
//! heartbeat, and (in one region per account) the read-only role the hub assumes.
//!
//! Like install, each is observe → plan → apply: [`observe`] reads the account (the stack, the
//! recorder, the reader role, a full sgwatch stack), [`plan`] is pure, and install applies the
//! stack change and then the recorder's steps. A region with no AWS Config recorder gets one, as
//! `install` makes it: the stack adds its bucket and role (`CreateRecorder`), and the recorder
//! `sgwatch` records security groups continuously into a bucket-only delivery channel. An existing
//! recorder is adopted and never changed. A re-run changes nothing; teardown removes what the spoke
//! made (its stack, and the recorder and channel it created) and keeps the history bucket.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::Capability;
use clap::{Args, Subcommand};
use serde::Serialize;

use sgwatch_handler::handover::{Marker, KEPT_FOR_SECS, PARAMETER};
use sgwatch_handler::members::READER_ROLE;
use sgwatch_handler::spokes::{self, Sight};

use crate::aws::Place;
use crate::cmd::teardown::{self as full_teardown, TeardownArgs};
use crate::cmd::verify::parse_duration;
use crate::deploy::handover::{self, FullStack};
use crate::deploy::recorder::{self, Found};
use crate::deploy::stack::{self, Body, Deployed};

/// The spoke's template, embedded.
pub const TEMPLATE: &str = include_str!("../../../templates/sgwatch-spoke.yaml");

#[derive(Debug, Clone, Subcommand)]
pub enum SpokeCommand {
    /// Installs or updates the spoke in this account and region (idempotent)
    Install(SpokeArgs),
    /// Shows what spoke install would change; changes nothing
    Plan(SpokeArgs),
    /// Checks the spoke, one line per check
    Status(SpokeNameArgs),
    /// Removes the spoke's stack and the recorder it made, and nothing else
    Teardown(SpokeNameArgs),
}

/// What a spoke needs to know of its hub.
#[derive(Debug, Clone, Args)]
pub struct SpokeArgs {
    /// The hub's event bus (`sgwatch hub install` prints it)
    #[arg(long = "hub", value_name = "BUS_ARN")]
    pub hub_bus: String,
    /// The hub handler's role, the only principal the reader role trusts (`sgwatch hub install`
    /// prints it)
    #[arg(long, value_name = "ROLE_ARN")]
    pub hub_role: String,
    /// The organization (o-…): the reader role then also requires the hub to be in it
    #[arg(long, value_name = "ORG_ID")]
    pub organization_id: Option<String>,
    #[command(flatten)]
    pub name: SpokeNameArgs,
    #[command(flatten)]
    pub replace: ReplaceArgs,
}

/// Moving a region from its full stack to the hub (`--replace-stack`).
#[derive(Debug, Clone, Args)]
pub struct ReplaceArgs {
    /// Take this region over from the full sgwatch stack that runs here, with no change told
    /// twice or missed, and remove that stack (keeping its configuration history)
    #[arg(long)]
    pub replace_stack: bool,
    /// How far ahead the handover time is set: before it the full stack tells, from it the hub.
    /// At least 60s, so that every function has read it in time
    #[arg(long, default_value = "90s", value_name = "DURATION", value_parser = parse_duration)]
    pub handover_in: Duration,
    /// How long after the handover time the full stack is kept, for its notifications still on
    /// their way (Lambda retries a failed one twice within about three minutes)
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = parse_duration)]
    pub handover_wait: Duration,
}

impl Default for ReplaceArgs {
    fn default() -> ReplaceArgs {
        ReplaceArgs {
            replace_stack: false,
            handover_in: Duration::from_secs(90),
            handover_wait: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SpokeNameArgs {
    /// The spoke's CloudFormation stack name
    #[arg(long, default_value = "sgwatch-spoke")]
    pub stack_name: String,
    /// The full stack whose presence means this account already has its own sgwatch
    #[arg(long, default_value = "sgwatch", value_name = "NAME")]
    pub full_stack_name: String,
}

/// Why a spoke command stopped; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SpokeError {
    #[error(
        "--hub {0:?} is not an event bus ARN (arn:PARTITION:events:REGION:ACCOUNT:event-bus/NAME): \
         `sgwatch hub install` prints the hub's"
    )]
    Bus(String),
    #[error(
        "--hub-role {0:?} is not an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME): `sgwatch \
         hub install` prints the hub handler's"
    )]
    Role(String),
    #[error(
        "--organization-id {0:?} is not an organization id (o- and 10 to 32 letters or digits)"
    )]
    Organization(String),
    #[error(
        "--stack-name {0:?} must start with \"sgwatch\" and hold only letters, digits and dashes \
         (the installer's IAM policy grants stacks under that prefix)"
    )]
    StackName(String),
    #[error(
        "{place} already runs the full sgwatch stack {stack}, which emails this account's owners \
         itself: a spoke beside it would tell them twice. Keep the full stack, or let the spoke \
         take the region over (`sgwatch spoke install --replace-stack`), which removes it with no \
         change told twice or missed"
    )]
    FullStack { stack: String, place: Place },
    #[error("--handover-in and --handover-wait must each be at most an hour; got {0:?}")]
    HandoverTiming(Duration),
    #[error(
        "{place} has no AWS Config recorder that records AWS::EC2::SecurityGroup{why}: the spoke \
         would forward nothing. Record security groups (continuous recording) with the account's \
         recorder, or install the full stack here, then run spoke install again"
    )]
    NotRecorded { place: Place, why: String },
    #[error("the spoke's role {role} in {place} cannot be read: {detail}")]
    Iam {
        role: String,
        place: Place,
        detail: String,
    },
}

fn valid_stack_name(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with("sgwatch")
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// An ARN's parts: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
fn arn_parts(arn: &str) -> Option<[&str; 6]> {
    let mut p = arn.splitn(6, ':');
    let parts = [
        p.next()?,
        p.next()?,
        p.next()?,
        p.next()?,
        p.next()?,
        p.next()?,
    ];
    (parts[0] == "arn" && parts[1].starts_with("aws")).then_some(parts)
}

/// The flags, checked before any AWS call.
pub fn check(args: &SpokeArgs) -> Result<BTreeMap<String, String>, SpokeError> {
    arn_parts(&args.hub_bus)
        .filter(|[_, _, service, region, account, resource]| {
            *service == "events"
                && !region.is_empty()
                && spokes::is_account(account)
                && resource
                    .strip_prefix("event-bus/")
                    .is_some_and(|n| !n.is_empty() && !n.contains('/'))
        })
        .ok_or_else(|| SpokeError::Bus(args.hub_bus.clone()))?;
    arn_parts(&args.hub_role)
        .filter(|[_, _, service, region, account, resource]| {
            *service == "iam"
                && region.is_empty()
                && spokes::is_account(account)
                && resource
                    .strip_prefix("role/")
                    .is_some_and(|n| !n.is_empty())
        })
        .ok_or_else(|| SpokeError::Role(args.hub_role.clone()))?;
    let org = args.organization_id.clone().unwrap_or_default();
    if !org.is_empty() && !spokes::is_organization_id(&org) {
        return Err(SpokeError::Organization(org));
    }
    if !valid_stack_name(&args.name.stack_name) {
        return Err(SpokeError::StackName(args.name.stack_name.clone()));
    }
    for d in [args.replace.handover_in, args.replace.handover_wait] {
        if d > Duration::from_secs(3600) {
            return Err(SpokeError::HandoverTiming(d));
        }
    }
    Ok(BTreeMap::from([
        ("HubBusArn".to_owned(), args.hub_bus.clone()),
        ("HubHandlerRoleArn".to_owned(), args.hub_role.clone()),
        ("OrganizationId".to_owned(), org),
    ]))
}

/// What spoke install reads before deciding.
#[derive(Debug, Clone)]
pub struct Observed {
    pub place: Place,
    pub stack: Option<Deployed>,
    /// The deployed template's body, when the stack exists.
    pub template: Option<String>,
    /// The full stack's name, when it runs here.
    pub full_stack: Option<String>,
    pub recorder: Found,
    /// The reader role exists (made by this stack or by the spoke of another region).
    pub reader_role: bool,
    /// The region's handover marker.
    pub marker: Marker,
    /// The full stack this spoke replaces (`--replace-stack`, where one runs).
    pub replaced: Option<FullStack>,
}

/// Reads the account: read-only calls. `replace`: the full stack, where one runs, is read whole.
pub async fn observe(
    config: &SdkConfig,
    names: &SpokeNameArgs,
    replace: bool,
) -> Result<Observed, crate::Error> {
    let place = crate::aws::place(config).await?;
    let cf = crate::aws::cloudformation(config);
    let stack = Deployed::find(&cf, &names.stack_name, &place).await?;
    let template = match &stack {
        Some(_) => Some(stack::deployed_template(&cf, &names.stack_name, &place).await?),
        None => None,
    };
    let full_stack = stack::describe(&cf, &names.full_stack_name, &place)
        .await?
        .map(|_| names.full_stack_name.clone());
    let recorder = recorder::find(&crate::aws::configservice(config), &place).await?;
    let role = READER_ROLE;
    let reader_role = match crate::aws::iam(config)
        .get_role()
        .role_name(role)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_entity_exception()) =>
        {
            false
        }
        Err(e) => {
            return Err(SpokeError::Iam {
                role: role.to_owned(),
                place,
                detail: crate::aws::error_text(&e),
            }
            .into())
        }
    };
    let marker = handover::read(&crate::aws::ssm(config), &place).await?;
    let replaced = match &full_stack {
        Some(name) if replace => Some(handover::full_stack(config, &place, name).await?),
        _ => None,
    };
    Ok(Observed {
        place,
        stack,
        template,
        full_stack,
        recorder,
        reader_role,
        marker,
        replaced,
    })
}

/// What spoke install would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The parameters the stack gets.
    pub params: BTreeMap<String, String>,
    /// Create the stack (`Some(false)`), update it (`Some(true)`), or leave it (`None`).
    pub stack: Option<bool>,
    /// One line per difference, for plan's report.
    pub differences: Vec<String>,
    pub warnings: Vec<String>,
    /// The spoke makes (or already made) the region's recorder: its steps follow the stack's.
    pub makes_recorder: bool,
    /// The recorder's steps, one line each (after the stack's change, or after the handover).
    pub config_steps: Vec<String>,
    /// The handover's steps, one line each (`--replace-stack`).
    pub handover_steps: Vec<String>,
}

/// Decides, from what is there and what is wanted. Pure.
pub fn plan(
    observed: &Observed,
    mut wanted: BTreeMap<String, String>,
    replace: &ReplaceArgs,
) -> Result<Plan, SpokeError> {
    if let (Some(stack), None) = (&observed.full_stack, &observed.replaced) {
        return Err(SpokeError::FullStack {
            stack: stack.clone(),
            place: observed.place.clone(),
        });
    }
    let deployed_params: BTreeMap<String, String> = observed
        .stack
        .as_ref()
        .map(|d| d.params.all.clone())
        .unwrap_or_default();
    // A region with no recorder gets the spoke's; once made, the spoke keeps it (and its bucket).
    // The recorder a replaced full stack made becomes the spoke's.
    let takes_over = observed
        .replaced
        .as_ref()
        .is_some_and(|f| f.owned().recorder);
    let makes_recorder = deployed_params.get("CreateRecorder").map(String::as_str) == Some("true")
        || observed.recorder.recorder.is_none()
        || takes_over;
    if !owned(observed, makes_recorder).recorder {
        recorded(&observed.recorder, &observed.place)?;
    }
    wanted.insert("CreateRecorder".into(), makes_recorder.to_string());
    // IAM is global: the first region's spoke makes the reader role, and keeps it.
    let makes_reader = deployed_params.get("CreateReaderRole").map(String::as_str) == Some("true")
        || !observed.reader_role;
    wanted.insert("CreateReaderRole".into(), makes_reader.to_string());
    let mut warnings = Vec::new();
    if !makes_reader {
        warnings.push(format!(
            "the reader role {} already exists in account {} (another region's spoke made it): \
             this spoke uses it",
            READER_ROLE, observed.place.account
        ));
    }
    let config_steps: Vec<String> = if makes_recorder {
        let want = want(observed.stack.as_ref().map(|d| &d.outputs));
        let owned = owned(observed, makes_recorder);
        recorder::steps(&observed.recorder, owned, &want, &observed.place)
            .map_err(|e| SpokeError::NotRecorded {
                place: observed.place.clone(),
                why: format!(" ({e})"),
            })?
            .iter()
            .map(|step| step.describe(&want))
            .collect()
    } else {
        Vec::new()
    };
    let handover_steps = handover_steps(observed, replace, &mut warnings);
    let Some(_) = &observed.stack else {
        return Ok(Plan {
            params: wanted,
            stack: Some(false),
            differences: vec!["create the spoke's stack".to_owned()],
            warnings,
            makes_recorder,
            config_steps,
            handover_steps,
        });
    };
    let mut differences: Vec<String> = wanted
        .iter()
        .filter(|(k, v)| deployed_params.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "parameter {k}: {:?} -> {v:?}",
                deployed_params.get(k).map(String::as_str).unwrap_or("")
            )
        })
        .collect();
    if observed.template.as_deref() != Some(TEMPLATE) {
        differences.push("template: a newer spoke template".into());
    }
    Ok(Plan {
        stack: (!differences.is_empty()).then_some(true),
        params: wanted,
        differences,
        warnings,
        makes_recorder,
        config_steps,
        handover_steps,
    })
}

/// The handover's steps, where the spoke replaces a full stack; the marker's cleanup where a
/// handover was left pending with no full stack any more (the hub would otherwise leave the
/// region's changes to no one).
fn handover_steps(
    observed: &Observed,
    replace: &ReplaceArgs,
    warnings: &mut Vec<String>,
) -> Vec<String> {
    let Some(full) = &observed.replaced else {
        return match observed.marker {
            Marker::Pending => vec![format!(
                "remove the handover marker {PARAMETER}: it says pending, and no full stack runs \
                 here"
            )],
            _ => Vec::new(),
        };
    };
    let name = full.name();
    let mut steps = Vec::new();
    if observed.marker == Marker::Absent {
        steps.push(format!(
            "set the handover marker {PARAMETER} to pending: {name} tells every change until the \
             handover time"
        ));
    }
    let sets_time = !matches!(observed.marker, Marker::At(_));
    if sets_time && replace.handover_in < Duration::from_secs(KEPT_FOR_SECS) {
        warnings.push(format!(
            "--handover-in {}s is less than the {KEPT_FOR_SECS}s a function keeps its reading of \
             the marker: a change just after the handover time may be told twice",
            replace.handover_in.as_secs()
        ));
    }
    match observed.marker {
        Marker::At(t) => steps.push(format!(
            "the handover time is {} (set by an earlier run): before it {name} tells, from it the \
             hub",
            handover::time_text(t)
        )),
        _ => steps.push(format!(
            "set the handover time to {}s from then: before it {name} tells, from it the hub",
            replace.handover_in.as_secs()
        )),
    }
    steps.push(format!(
        "wait {}s past the handover time for {name}'s notifications on their way, then check \
         its failure queue is empty",
        replace.handover_wait.as_secs()
    ));
    if full.owned().recorder {
        steps.push(format!(
            "take over the recorder and channel {name} made (below), recording throughout"
        ));
    }
    steps.push(format!(
        "remove {name} and what it made, keeping its configuration history bucket"
    ));
    steps
}

/// What the spoke wants of the recorder it makes: security groups, continuously, as the stack's
/// role, into the stack's bucket (no topic: the hub hears Config through EventBridge).
fn want(outputs: Option<&stack::StackOutputs>) -> recorder::Want {
    recorder::Want {
        types: vec![recorder::SECURITY_GROUP.to_owned()],
        role_arn: outputs.and_then(|o| o.config_role_arn.clone()),
        bucket: outputs.and_then(|o| o.config_bucket_name.clone()),
        topic: None,
        extend: false,
        bucket_only: true,
    }
}

/// The recorder and channel the spoke made: named `sgwatch`, in a region whose spoke makes one.
fn owned(observed: &Observed, makes_recorder: bool) -> recorder::Owned {
    let found = &observed.recorder;
    recorder::Owned {
        recorder: makes_recorder && found.recorder_name().is_none_or(|n| n == recorder::NAME),
        channel: makes_recorder && found.channel_name().is_none_or(|n| n == recorder::NAME),
    }
}

/// The recorder must record security groups, and continuously, or the spoke forwards nothing
/// (or a day late).
fn recorded(found: &Found, place: &Place) -> Result<(), SpokeError> {
    let sight = sgwatch_handler::sight::recorder_sight(found.recorder.as_ref(), found.recording);
    let Some(first) = sight.first() else {
        return Ok(());
    };
    let why = match first {
        Sight::NoRecorder => " (there is no recorder)".to_owned(),
        Sight::GroupsNotRecorded => String::new(),
        Sight::RecorderOff => " that is recording (the recorder is stopped)".to_owned(),
        _ => format!(
            " continuously ({})",
            found.daily_security_groups().unwrap_or_default()
        ),
    };
    Err(SpokeError::NotRecorded {
        place: place.clone(),
        why,
    })
}

/// What a spoke command did, or would do.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(skip)]
    pub verb: &'static str,
    pub account: String,
    pub region: String,
    pub stack: String,
    pub changes: Vec<String>,
    pub warnings: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (verb, stack, region, account) = (self.verb, &self.stack, &self.region, &self.account);
        if self.changes.is_empty() {
            return writeln!(f, "{verb} {stack} in {region} ({account}): no changes");
        }
        writeln!(f, "{verb} {stack} in {region} ({account}):")?;
        for c in &self.changes {
            writeln!(f, "  {c}")?;
        }
        Ok(())
    }
}

/// `sgwatch spoke plan`.
pub async fn plan_only(args: &SpokeArgs, config: &SdkConfig) -> Result<Report, crate::Error> {
    let wanted = check(args)?;
    let observed = observe(config, &args.name, args.replace.replace_stack).await?;
    let mut p = plan(&observed, wanted, &args.replace)?;
    if let Some(full) = &observed.replaced {
        if let Err(e) = full.ready() {
            p.warnings.push(format!("install would stop here: {e}"));
        }
    }
    let mut changes = p.differences;
    changes.extend(p.handover_steps);
    changes.extend(p.config_steps);
    Ok(report(
        "spoke plan",
        &observed.place,
        args,
        changes,
        p.warnings,
    ))
}

/// `sgwatch spoke install`.
pub async fn install(
    args: &SpokeArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Report, crate::Error> {
    let wanted = check(args)?;
    let observed = observe(config, &args.name, args.replace.replace_stack).await?;
    let mut p = plan(&observed, wanted, &args.replace)?;
    let cf = crate::aws::cloudformation(config);
    let ssm = crate::aws::ssm(config);
    let place = &observed.place;
    let name = &args.name.stack_name;
    let mut changes = Vec::new();
    if let Some(full) = &observed.replaced {
        full.ready()?;
        if observed.marker == Marker::Absent {
            handover::write(&ssm, place, Marker::Pending).await?;
            changes.push(format!(
                "handover marker {PARAMETER}: pending ({} tells every change)",
                full.name()
            ));
        }
    } else if observed.marker == Marker::Pending {
        handover::remove(&ssm, place).await?;
        changes.push(format!(
            "removed the handover marker {PARAMETER}: it said pending, and no full stack runs here"
        ));
    }
    if let Some(exists) = p.stack {
        let body = Body {
            template: TEMPLATE,
            // The reader role has a fixed name, which the hub assumes.
            capability: Capability::CapabilityNamedIam,
        };
        let change_set =
            stack::create_change_set_of(&cf, name, body, &p.params, exists, &observed.place)
                .await?;
        if change_set.empty {
            stack::delete_change_set(&cf, name, &change_set, &observed.place).await?;
        } else {
            stack::execute(&cf, name, &change_set, &observed.place, progress).await?;
            changes.extend(p.differences);
        }
    }
    if let Some(full) = &observed.replaced {
        let t = match observed.marker {
            Marker::At(t) => t,
            _ => {
                let t = handover::now_secs() + args.replace.handover_in.as_secs() as i64;
                handover::write(&ssm, place, Marker::At(t)).await?;
                changes.push(format!(
                    "handover time {}: before it {} tells, from it the hub",
                    handover::time_text(t),
                    full.name()
                ));
                t
            }
        };
        if progress {
            eprintln!(
                "handover at {}: changes before it are {}'s to tell, from it the hub's",
                handover::time_text(t),
                full.name()
            );
        }
        let wait = args.replace.handover_wait.as_secs() as i64;
        let why = format!("{}'s notifications still on their way", full.name());
        handover::wait_until(t + wait, &why, progress).await;
        let parked = handover::parked(config, &full.installed).await?;
        let done = FullStack {
            parked,
            ..full.clone()
        };
        done.ready()?;
        if p.makes_recorder {
            changes.extend(make_recorder(config, &cf, name, &observed).await?);
        }
        handover::hand_over_record(config, &full.installed).await?;
        let gone = TeardownArgs {
            stack_name: full.name().to_owned(),
            keep_history: true,
        };
        let removed = full_teardown::teardown(&gone, config, progress).await?;
        changes.push(format!(
            "removed the full stack {}: {}",
            full.name(),
            removed.removed.join(", ")
        ));
        p.warnings.extend(
            removed
                .kept
                .iter()
                .map(|k| format!("{}: kept {k}", full.name())),
        );
    } else if p.makes_recorder {
        changes.extend(make_recorder(config, &cf, name, &observed).await?);
    }
    Ok(report(
        "spoke install",
        &observed.place,
        args,
        changes,
        p.warnings,
    ))
}

/// The recorder's steps, with the bucket and role the stack now has; what was done.
async fn make_recorder(
    config: &SdkConfig,
    cf: &aws_sdk_cloudformation::Client,
    name: &str,
    observed: &Observed,
) -> Result<Vec<String>, crate::Error> {
    let place = &observed.place;
    let deployed = Deployed::require(cf, name, place).await?;
    let want = want(Some(&deployed.outputs));
    let owned = owned(observed, true);
    let steps = recorder::steps(&observed.recorder, owned, &want, place)?;
    let configservice = crate::aws::configservice(config);
    let mut done = Vec::new();
    for step in &steps {
        recorder::apply(&configservice, place, &observed.recorder, step, &want).await?;
        done.push(step.describe(&want));
    }
    Ok(done)
}

fn report(
    verb: &'static str,
    place: &Place,
    args: &SpokeArgs,
    changes: Vec<String>,
    warnings: Vec<String>,
) -> Report {
    Report {
        verb,
        account: place.account.clone(),
        region: place.region.clone(),
        stack: args.name.stack_name.clone(),
        changes,
        warnings,
    }
}

/// `sgwatch spoke teardown`: the spoke's stack, and the recorder and channel it made (an adopted
/// recorder is the account's and stays). The history bucket is kept and named.
pub async fn teardown(
    names: &SpokeNameArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Report, crate::Error> {
    if !valid_stack_name(&names.stack_name) {
        return Err(SpokeError::StackName(names.stack_name.clone()).into());
    }
    let place = crate::aws::place(config).await?;
    let cf = crate::aws::cloudformation(config);
    let mut changes = Vec::new();
    let mut warnings = Vec::new();
    if let Some(deployed) = Deployed::find(&cf, &names.stack_name, &place).await? {
        if deployed
            .params
            .all
            .get("CreateRecorder")
            .map(String::as_str)
            == Some("true")
        {
            let configservice = crate::aws::configservice(config);
            let found = recorder::find(&configservice, &place).await?;
            if found.recorder_name() == Some(recorder::NAME) {
                let channel = found.channel_name().filter(|c| *c == recorder::NAME);
                recorder::delete_created(&configservice, &place, recorder::NAME, channel).await?;
                changes.push(format!(
                    "removed configuration recorder {}{}",
                    recorder::NAME,
                    channel
                        .map(|c| format!(" and delivery channel {c}"))
                        .unwrap_or_default()
                ));
            }
            if let Some(bucket) = &deployed.outputs.config_bucket_name {
                warnings.push(format!(
                    "kept bucket {bucket}: it holds this region's configuration history; delete it \
                     when no longer needed"
                ));
            }
        }
    }
    if stack::delete(&cf, &names.stack_name, &place, progress).await? {
        changes.push(format!("removed stack {}", names.stack_name));
    }
    // With no spoke, a marker would leave changes to a hub that no longer hears them.
    if handover::remove(&crate::aws::ssm(config), &place).await? {
        changes.push(format!("removed the handover marker {PARAMETER}"));
    }
    Ok(Report {
        verb: "spoke teardown",
        account: place.account,
        region: place.region,
        stack: names.stack_name.clone(),
        changes,
        warnings,
    })
}

/// One line of `spoke status`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub ok: bool,
    pub what: String,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub account: String,
    pub region: String,
    pub stack: String,
    pub checks: Vec<Check>,
}

impl Status {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| !c.ok)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "spoke {} in {} ({}):",
            self.stack, self.region, self.account
        )?;
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            writeln!(f, "  {mark} {}: {}", c.what, c.detail)?;
        }
        Ok(())
    }
}

/// `sgwatch spoke status`: the stack, the recorder, the reader role.
pub async fn status(names: &SpokeNameArgs, config: &SdkConfig) -> Result<Status, crate::Error> {
    let observed = observe(config, names, false).await?;
    let mut checks = Vec::new();
    checks.push(match &observed.stack {
        None => Check {
            ok: false,
            what: "stack".into(),
            detail: "not installed: run `sgwatch spoke install`".into(),
        },
        Some(d) => {
            let status = d.status().map(|s| s.as_str()).unwrap_or("?").to_owned();
            let settled = matches!(status.as_str(), "CREATE_COMPLETE" | "UPDATE_COMPLETE");
            let hub = (d.params.all).get("HubBusArn").cloned().unwrap_or_default();
            Check {
                ok: settled,
                what: "stack".into(),
                detail: format!("{status}, forwarding to {hub}"),
            }
        }
    });
    checks.push(match recorded(&observed.recorder, &observed.place) {
        Ok(()) => Check {
            ok: true,
            what: "recorder".into(),
            detail: format!(
                "{} records AWS::EC2::SecurityGroup continuously",
                observed.recorder.recorder_name().unwrap_or("?")
            ),
        },
        Err(e) => Check {
            ok: false,
            what: "recorder".into(),
            detail: e.to_string(),
        },
    });
    checks.push(Check {
        ok: observed.reader_role,
        what: "reader role".into(),
        detail: if observed.reader_role {
            format!("{} exists", READER_ROLE)
        } else {
            format!(
                "{} is missing: the hub cannot read this account's oversized items",
                READER_ROLE
            )
        },
    });
    match (observed.marker, &observed.full_stack) {
        (Marker::Absent, _) => {}
        (Marker::Pending, None) => checks.push(Check {
            ok: false,
            what: "handover".into(),
            detail: format!(
                "{PARAMETER} says pending, so the hub leaves this region's changes to a full stack, \
                 and none runs here: run `sgwatch spoke install`"
            ),
        }),
        (Marker::Pending, Some(full)) => checks.push(Check {
            ok: true,
            what: "handover".into(),
            detail: format!(
                "pending: {full} tells every change until `sgwatch spoke install \
                 --replace-stack` sets the handover time"
            ),
        }),
        (Marker::At(t), _) => checks.push(Check {
            ok: true,
            what: "handover".into(),
            detail: format!(
                "the hub tells changes from {} on",
                handover::time_text(t)
            ),
        }),
    }
    if observed.full_stack.is_some() && observed.marker == Marker::Absent {
        checks.push(Check {
            ok: false,
            what: "full stack".into(),
            detail: format!(
                "{} runs here too: owners are told twice",
                names.full_stack_name
            ),
        });
    }
    Ok(Status {
        account: observed.place.account,
        region: observed.place.region,
        stack: names.stack_name.clone(),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(bus: &str, role: &str, org: Option<&str>) -> SpokeArgs {
        SpokeArgs {
            hub_bus: bus.into(),
            hub_role: role.into(),
            organization_id: org.map(str::to_owned),
            name: SpokeNameArgs {
                stack_name: "sgwatch-spoke".into(),
                full_stack_name: "sgwatch".into(),
            },
            replace: ReplaceArgs::default(),
        }
    }

    const BUS: &str = "arn:aws:events:eu-west-1:999988887777:event-bus/sgwatch-hub";
    const ROLE: &str = "arn:aws:iam::999988887777:role/sgwatch-HandlerRole-ABC";

    #[test]
    fn the_hub_flags_are_checked_before_any_call() {
        assert!(check(&args(BUS, ROLE, None)).is_ok());
        assert!(check(&args(BUS, ROLE, Some("o-a1b2c3d4e5"))).is_ok());
        for bad in [
            "sgwatch-hub",
            "arn:aws:events:eu-west-1:999988887777:rule/x",
            "arn:aws:events:eu-west-1:9999:event-bus/x",
            "arn:aws:sqs:eu-west-1:999988887777:event-bus/x",
        ] {
            assert!(
                matches!(check(&args(bad, ROLE, None)), Err(SpokeError::Bus(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            check(&args(BUS, "arn:aws:iam::999988887777:user/x", None)),
            Err(SpokeError::Role(_))
        ));
        assert!(matches!(
            check(&args(BUS, ROLE, Some("org-1"))),
            Err(SpokeError::Organization(_))
        ));
        let mut named = args(BUS, ROLE, None);
        named.name.stack_name = "spoke".into();
        assert!(matches!(check(&named), Err(SpokeError::StackName(_))));
    }

    fn observed(recorder: Found) -> Observed {
        Observed {
            place: Place {
                account: "111122223333".into(),
                region: "eu-west-1".into(),
            },
            stack: None,
            template: None,
            full_stack: None,
            recorder,
            reader_role: false,
            marker: Marker::Absent,
            replaced: None,
        }
    }

    #[test]
    fn a_region_without_a_recorder_gets_one_and_an_adopted_one_is_left_alone() {
        use aws_sdk_config::types::{ConfigurationRecorder, RecordingGroup, ResourceType};
        let wanted = check(&args(BUS, ROLE, None)).unwrap();
        let none = plan(
            &observed(Found::default()),
            wanted.clone(),
            &ReplaceArgs::default(),
        )
        .unwrap();
        assert!(none.makes_recorder);
        assert_eq!(none.params["CreateRecorder"], "true");
        assert_eq!(
            none.config_steps,
            [
                "create configuration recorder sgwatch recording AWS::EC2::SecurityGroup (role \
                 the stack's ConfigRole)",
                "create delivery channel sgwatch → s3://the stack's ConfigBucket and no topic",
                "start recording with recorder sgwatch",
            ]
        );
        let adopted = |group: RecordingGroup, recording: bool| Found {
            recorder: Some(
                ConfigurationRecorder::builder()
                    .name("default")
                    .recording_group(group)
                    .build(),
            ),
            recording,
            ..Found::default()
        };
        let all = RecordingGroup::builder().all_supported(true).build();
        let kept = plan(
            &observed(adopted(all.clone(), true)),
            wanted.clone(),
            &ReplaceArgs::default(),
        )
        .unwrap();
        assert!(!kept.makes_recorder);
        assert_eq!(kept.params["CreateRecorder"], "false");
        assert!(kept.config_steps.is_empty());
        // An adopted recorder that is stopped, or leaves out security groups, is never changed.
        assert!(matches!(
            plan(
                &observed(adopted(all, false)),
                wanted.clone(),
                &ReplaceArgs::default()
            ),
            Err(SpokeError::NotRecorded { .. })
        ));
        let vpcs = RecordingGroup::builder()
            .all_supported(false)
            .resource_types(ResourceType::from("AWS::EC2::VPC"))
            .build();
        assert!(matches!(
            plan(
                &observed(adopted(vpcs, true)),
                wanted,
                &ReplaceArgs::default()
            ),
            Err(SpokeError::NotRecorded { .. })
        ));
    }

    /// The full stack `sgwatch`, which made the recorder `sgwatch` and its channel.
    fn replaced(found: &Found, parked: u64, reads_marker: bool) -> FullStack {
        use crate::deploy::artifacts::{InstallState, Ownership};
        use crate::deploy::observe::Installed;
        FullStack {
            installed: Installed {
                place: observed(Found::default()).place,
                stack_name: "sgwatch".into(),
                deployed: None,
                state: Some(InstallState {
                    stack_name: "sgwatch".into(),
                    recorder: Ownership::Created,
                    recorder_name: recorder::NAME.into(),
                    channel: Ownership::Created,
                    channel_name: recorder::NAME.into(),
                    ..InstallState::default()
                }),
                found: found.clone(),
            },
            reads_marker,
            parked,
        }
    }

    #[test]
    fn a_spoke_replaces_a_full_stack_only_when_asked_and_takes_over_what_it_made() {
        use aws_sdk_config::types::{ConfigurationRecorder, DeliveryChannel, RecordingGroup};
        let found = Found {
            recorder: Some(
                ConfigurationRecorder::builder()
                    .name("sgwatch")
                    .role_arn("arn:aws:iam::111122223333:role/sgwatch-ConfigRole-A")
                    .recording_group(RecordingGroup::builder().all_supported(true).build())
                    .build(),
            ),
            channel: Some(
                DeliveryChannel::builder()
                    .name("sgwatch")
                    .s3_bucket_name("sgwatch-configbucket-a")
                    .sns_topic_arn("arn:aws:sns:eu-west-1:111122223333:sgwatch-Topic-A")
                    .build(),
            ),
            recording: true,
            ..Found::default()
        };
        let wanted = check(&args(BUS, ROLE, None)).unwrap();
        let mut beside = observed(found.clone());
        beside.full_stack = Some("sgwatch".into());
        let refused = plan(&beside, wanted.clone(), &ReplaceArgs::default());
        assert!(matches!(refused, Err(SpokeError::FullStack { .. })));
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("--replace-stack"), "{message}");

        let mut replacing = beside.clone();
        replacing.replaced = Some(replaced(&found, 0, true));
        let p = plan(&replacing, wanted.clone(), &ReplaceArgs::default()).unwrap();
        assert!(p.makes_recorder);
        assert_eq!(p.params["CreateRecorder"], "true");
        assert_eq!(
            p.handover_steps,
            [
                "set the handover marker /sgwatch/handover to pending: sgwatch tells every change \
                 until the handover time",
                "set the handover time to 90s from then: before it sgwatch tells, from it the hub",
                "wait 300s past the handover time for sgwatch's notifications on their way, then \
                 check its failure queue is empty",
                "take over the recorder and channel sgwatch made (below), recording throughout",
                "remove sgwatch and what it made, keeping its configuration history bucket",
            ]
        );
        assert_eq!(
            p.config_steps,
            [
                "update configuration recorder sgwatch: record AWS::EC2::SecurityGroup (role the \
                 stack's ConfigRole)",
                "point delivery channel sgwatch at s3://the stack's ConfigBucket and no topic",
            ]
        );
        // A run that stopped after setting T resumes with it, and warns of nothing.
        replacing.marker = Marker::At(1_796_472_000);
        let quick = ReplaceArgs {
            handover_in: Duration::from_secs(5),
            ..ReplaceArgs::default()
        };
        let resumed = plan(&replacing, wanted.clone(), &quick).unwrap();
        assert!(resumed.handover_steps[0]
            .starts_with("the handover time is 2026-12-05T12:00:00Z (set by an earlier run)"));
        assert!(resumed
            .warnings
            .iter()
            .all(|w| !w.contains("--handover-in")));
        replacing.marker = Marker::Absent;
        let hurried = plan(&replacing, wanted, &quick).unwrap();
        assert!(hurried
            .warnings
            .iter()
            .any(|w| w.contains("--handover-in 5s")));

        // A full stack that would tell on after T, or whose parked notifications would be lost,
        // stops the switch before anything is done.
        assert!(matches!(
            replaced(&found, 0, false).ready(),
            Err(handover::HandoverError::TooOld { .. })
        ));
        assert!(matches!(
            replaced(&found, 2, true).ready(),
            Err(handover::HandoverError::Parked { count: 2, .. })
        ));
        assert!(replaced(&found, 0, true).ready().is_ok());
    }

    #[test]
    fn a_pending_marker_with_no_full_stack_is_removed() {
        let wanted = check(&args(BUS, ROLE, None)).unwrap();
        let mut left = observed(Found::default());
        left.marker = Marker::Pending;
        let p = plan(&left, wanted, &ReplaceArgs::default()).unwrap();
        assert_eq!(p.handover_steps.len(), 1);
        assert!(p.handover_steps[0].starts_with("remove the handover marker"));
    }
}
