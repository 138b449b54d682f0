//! `sgwatch install` and `sgwatch plan`: observe the account ([`crate::deploy::observe`], read-only
//! calls), decide ([`crate::deploy::plan`], pure), and for install apply ([`crate::deploy::apply`]).
//!
//! Plan lists exactly what install would do, and install with nothing to do makes no mutating
//! call and says "no changes". The comparison covers the stack's template body and parameters
//! (the artifact's sha256 is in ArtifactKey), the Config recorder and channel, the subscription to
//! an adopted channel's topic, the subscriptions' redrive policies, and the install record.

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use sgwatch_handler::recipients::parse_address;
use sgwatch_handler::settings::Policy;

use crate::aws::Place;
use crate::deploy::apply;
use crate::deploy::baseline::{self, Exposed};
use crate::deploy::observe::{self, Observed};
use crate::deploy::package::{self, Arch};
use crate::deploy::plan::{self, Plan, Step, Wanted};
use crate::deploy::policy_args::PolicyArgs;
use crate::deploy::stack;

/// How Config notifications reach the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Sns,
    Eventbridge,
}

impl Source {
    pub fn as_str(self) -> &'static str {
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
    /// Send CloudTrail's security-group API calls to the handler, which then names who changed
    /// a group at once and warns of the worst changes early (default: on when a CloudTrail trail
    /// logs in the region)
    #[arg(long, value_enum, value_name = "on|off")]
    pub actor_feed: Option<crate::deploy::actor_feed::OnOff>,
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
#[derive(Debug, Clone)]
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

/// Observes the account and plans; builds the handler (when no zip is given) only after
/// preflight and the Config check have passed, so a missing SES identity or a recorder that
/// cannot be adopted is reported in seconds rather than after minutes of compiling.
async fn observe_and_plan(
    args: &InstallArgs,
    config: &SdkConfig,
) -> Result<(Observed, Wanted, Plan), crate::Error> {
    let checked = args.check()?;
    let given = args
        .handler_zip
        .as_deref()
        .map(|zip| package::check_zip(zip, args.arch))
        .transpose()?;
    let mut observed = observe::observe(config, &checked.stack_name, &checked.sender).await?;
    plan::config_steps(&observed.installed, args, &checked)?;
    let artifact = match given {
        Some(zip) => zip,
        None => package::build(args.arch, Path::new("dist"))?,
    };
    let (source, _) = plan::source(args.source, &observed.installed);
    let topics = plan::topics(&observed.installed, source)?;
    observed.subscriptions = observe::subscriptions(config, &observed.installed, &topics).await?;
    observed.uploaded = observe::uploaded(config, &observed, &artifact).await?;
    // Without the flag, the feed is on when a trail logs here (see actor_feed); why is reported.
    // Asked after preflight and the zip check, so those fail before any CloudTrail call.
    let mut args = args.clone();
    let feed_default = match args.actor_feed {
        Some(_) => None,
        None => {
            let region = config.region().map(|r| r.to_string()).unwrap_or_default();
            // When the trails cannot be read, the deployed value stays (as BaselineUntil does).
            let deployed = observed
                .installed
                .stack
                .as_ref()
                .map(crate::deploy::stack::deployed_parameters)
                .and_then(|p| p.get("ActorFeed").cloned())
                .and_then(|v| crate::deploy::actor_feed::OnOff::from_str(&v, true).ok());
            let (on, why) = crate::deploy::actor_feed::default_for(
                &crate::deploy::actor_feed::trails(config).await,
                &region,
                deployed,
            );
            args.actor_feed = Some(on);
            Some(why)
        }
    };
    let wanted = Wanted {
        args,
        checked,
        artifact,
        now: std::time::SystemTime::now(),
    };
    let mut plan = plan::plan(&observed, &wanted)?;
    plan.warnings
        .extend(feed_default.filter(|w| !w.starts_with("actor feed on")));
    Ok((observed, wanted, plan))
}

fn report(verb: &'static str, place: &Place, wanted: &Wanted, plan: Plan) -> Report {
    Report {
        verb,
        account: place.account.clone(),
        region: place.region.clone(),
        stack: wanted.checked.stack_name.clone(),
        changes: Vec::new(),
        baseline_until: plan.baseline_until,
        warnings: plan.warnings,
        baseline: Vec::new(),
    }
}

/// `sgwatch plan`: what install would do; changes nothing (a change set for an existing stack is
/// created, described and deleted).
pub async fn plan(args: &InstallArgs, config: &SdkConfig) -> Result<Report, crate::Error> {
    let (observed, wanted, plan) = observe_and_plan(args, config).await?;
    let place = &observed.place;
    let name = &wanted.checked.stack_name;
    let mut changes = Vec::new();
    for step in &plan.steps {
        let Step::Stack(s) = step else {
            changes.push(plan.describe(step, &wanted, place));
            continue;
        };
        if observed.stack.is_some() {
            changes.extend(s.differences.iter().map(|c| format!("stack {name}: {c}")));
        }
        let listed = if s.update {
            // What CloudFormation would do about it: a change set, described and deleted
            // (emulators may list no resource change for a parameter change).
            let cf = crate::aws::cloudformation(config);
            let change_set = stack::create_change_set(&cf, name, &plan.params, true, place).await?;
            stack::delete_change_set(&cf, name, &change_set, place).await?;
            change_set.changes
        } else {
            // A change set for a stack that does not exist would create the stack (in
            // REVIEW_IN_PROGRESS): list the template's resources instead.
            stack::resources_to_create(&plan.params)?
                .into_iter()
                .map(|(resource, kind)| format!("Add {resource} ({kind})"))
                .collect()
        };
        changes.extend(listed.into_iter().map(|c| format!("stack {name}: {c}")));
    }
    let place = observed.place.clone();
    Ok(Report {
        changes,
        ..report("plan", &place, &wanted, plan)
    })
}

/// `sgwatch install`.
pub async fn install(
    args: &InstallArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Report, crate::Error> {
    let (observed, wanted, plan) = observe_and_plan(args, config).await?;
    let place = observed.place.clone();
    if plan.steps.is_empty() {
        return Ok(report("install", &place, &wanted, plan));
    }
    // Recording started: the groups AWS Config now discovers are the baseline and send no
    // email, so what is already open is shown here, once.
    let starts_recording = plan.starts_recording();
    let done = report("install", &place, &wanted, plan.clone());
    let changes = apply::install(config, observed, &wanted, plan, progress).await?;
    let baseline = if starts_recording {
        let ec2 = crate::aws::ec2(config);
        baseline::read(&ec2, &place, &wanted.checked.policy.notify_tag).await?
    } else {
        Vec::new()
    };
    Ok(Report {
        changes,
        baseline,
        ..done
    })
}
