//! `sgwatch install` and `sgwatch plan`: observe the account ([`crate::deploy::observe`], read-only
//! calls), decide ([`crate::deploy::plan`], pure), and for install apply ([`crate::deploy::apply`]).
//!
//! Plan lists exactly what install would do, and install with nothing to do makes no mutating
//! call and says "no changes". The comparison covers the stack's template body and parameters
//! (the artifact's sha256 is in ArtifactKey), the Config recorder and channel, the subscription to
//! an adopted channel's topic, the subscriptions' redrive policies, and the install record.

use std::path::Path;

use aws_config::SdkConfig;
use clap::ValueEnum;
use serde::Serialize;

use crate::aws::Place;
use crate::deploy::baseline::{self, Exposed};
use crate::deploy::observe::{self, Observed};
use crate::deploy::plan::{self, Plan, Step};
pub use crate::deploy::wanted::InstallArgs;
use crate::deploy::wanted::{AutoRevertMode, DigestLevel, Wanted};
use crate::deploy::{actor_feed, apply, package, stack};

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
    /// What acts on alerts: the owners' links and auto-revert.
    pub acting: Acting,
    /// The noise controls: the daily digest and when it goes.
    pub quiet: Quiet,
    /// Where security teams look: Security Hub, and what pages.
    pub security: Security,
}

/// Security Hub findings and PagerDuty's paging level, as install deploys them.
#[derive(Debug, Clone, Serialize)]
pub struct Security {
    /// `on` or `off`.
    pub security_hub: &'static str,
    /// The lowest severity that pages.
    pub page_at: String,
    /// The pagerduty and chatbot destinations, as `NAME (KIND)`.
    pub destinations: Vec<String>,
}

impl Security {
    fn of(wanted: &Wanted) -> Security {
        use sgwatch_handler::destination::Kind;
        let args = &wanted.args;
        Security {
            security_hub: args.security_hub.unwrap_or(stack::OnOff::Off).as_str(),
            page_at: args
                .page_at
                .clone()
                .unwrap_or_else(|| "high".to_owned())
                .to_ascii_lowercase(),
            destinations: wanted
                .checked
                .policy
                .destinations
                .iter()
                .filter(|d| matches!(d.kind, Kind::PagerDuty | Kind::Chatbot))
                .map(|d| format!("{} ({})", d.name, d.kind))
                .collect(),
        }
    }
}

impl std::fmt::Display for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.security_hub {
            "on" => write!(
                f,
                "Security Hub: a finding per rule opened to the internet, archived when it goes"
            )?,
            _ => write!(f, "Security Hub: off")?,
        }
        if !self.destinations.is_empty() {
            write!(
                f,
                "\nsecurity destinations: {}; PagerDuty pages at {} and above",
                self.destinations.join(", "),
                self.page_at.to_ascii_uppercase()
            )?;
        }
        Ok(())
    }
}

/// The daily digest, as install deploys it.
#[derive(Debug, Clone, Serialize)]
pub struct Quiet {
    /// Seconds a group's changes are gathered into one email; 0 when off.
    pub coalesce_seconds: u64,
    /// Most emails about one group in an hour; 0 for no limit.
    pub max_per_group_hour: u16,
    /// `off`, `info` or `low`.
    pub digest: &'static str,
    /// `HH:MM`.
    pub digest_at: String,
    pub digest_timezone: String,
}

impl Quiet {
    fn of(args: &InstallArgs) -> Quiet {
        let (h, m) = args.digest_at.unwrap_or((8, 0));
        Quiet {
            coalesce_seconds: args.coalesce.unwrap_or(60),
            max_per_group_hour: args.max_per_group_hour.unwrap_or(10),
            digest: args.digest.map_or("off", DigestLevel::as_str),
            digest_at: format!("{h:02}:{m:02}"),
            digest_timezone: args
                .digest_timezone
                .clone()
                .unwrap_or_else(|| "UTC".to_owned()),
        }
    }
}

impl std::fmt::Display for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.digest {
            "off" => String::new(),
            level => format!("{} and below, ", level.to_ascii_uppercase()),
        };
        match self.coalesce_seconds {
            0 => writeln!(f, "coalescing: off, each change goes alone")?,
            s => writeln!(
                f,
                "coalescing: a group's changes within {s} s go as one email (CRITICAL at once)"
            )?,
        }
        match self.max_per_group_hour {
            0 => writeln!(f, "rate limit: none")?,
            n => writeln!(
                f,
                "rate limit: {n} emails per group an hour, then the digest and a summary (CRITICAL always sent)"
            )?,
        }
        write!(
            f,
            "daily digest at {} {}: {level}trusted principals' changes below HIGH, and quiet periods' below CRITICAL",
            self.digest_at, self.digest_timezone
        )
    }
}

/// The owners' links and auto-revert, as install deploys them.
#[derive(Debug, Clone, Serialize)]
pub struct Acting {
    /// `on` or `off`.
    pub links: &'static str,
    /// `off`, `shadow` or `on`.
    pub auto_revert: &'static str,
    pub auto_revert_at: String,
    pub trusted_principals: Vec<String>,
}

impl Acting {
    fn of(args: &InstallArgs) -> Acting {
        Acting {
            links: args.act_links.unwrap_or(stack::OnOff::Off).as_str(),
            auto_revert: args.auto_revert.map_or("off", |m| m.as_str()),
            auto_revert_at: args
                .auto_revert_at
                .clone()
                .unwrap_or_else(|| "critical".to_owned())
                .to_ascii_lowercase(),
            trusted_principals: args
                .trusted_principals
                .iter()
                .flatten()
                .flat_map(|p| p.split(','))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }
}

impl std::fmt::Display for Acting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "acting on alerts: links {}; auto-revert {}",
            self.links, self.auto_revert
        )?;
        if self.auto_revert != "off" {
            write!(f, " at {} and above", self.auto_revert_at)?;
        }
        if self.trusted_principals.is_empty() {
            write!(f, "; no trusted principals")
        } else {
            write!(f, "; trusted: {}", self.trusted_principals.join(", "))
        }
    }
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
        writeln!(f, "{}", self.acting)?;
        writeln!(f, "{}", self.quiet)?;
        writeln!(f, "{}", self.security)?;
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

/// The settings acting on alerts and the noise controls stay as deployed unless the flags say
/// otherwise.
fn keep_as_deployed(args: &mut InstallArgs, deployed: &std::collections::BTreeMap<String, String>) {
    // Auto-revert and the principals it trusts stay as deployed unless the flags say otherwise:
    // a re-run without them must not start reverting a pipeline's changes.
    if args.auto_revert.is_none() {
        args.auto_revert = deployed
            .get("AutoRevert")
            .and_then(|v| AutoRevertMode::from_str(v, true).ok());
    }
    if args.auto_revert_at.is_none() {
        args.auto_revert_at = deployed.get("AutoRevertAt").cloned();
    }
    if args.trusted_principals.is_none() {
        args.trusted_principals = deployed.get("TrustedPrincipals").cloned().map(|v| vec![v]);
    }
    // Coalescing and the digest stay as deployed unless the flags say otherwise.
    if args.coalesce.is_none() {
        args.coalesce = deployed.get("CoalesceSeconds").and_then(|v| v.parse().ok());
    }
    if args.max_per_group_hour.is_none() {
        args.max_per_group_hour = deployed.get("MaxPerGroupHour").and_then(|v| v.parse().ok());
    }
    if args.digest.is_none() {
        args.digest = deployed
            .get("Digest")
            .and_then(|v| DigestLevel::from_str(v, true).ok());
    }
    if args.digest_at.is_none() {
        let part = |name: &str| deployed.get(name).and_then(|v| v.parse::<u8>().ok());
        if let (Some(h), Some(m)) = (part("DigestHour"), part("DigestMinute")) {
            args.digest_at = Some((h, m));
        }
    }
    if args.digest_timezone.is_none() {
        args.digest_timezone = deployed.get("DigestTimezone").cloned();
    }
    // So do Security Hub findings and PagerDuty's level and endpoint.
    if args.security_hub.is_none() {
        args.security_hub = deployed
            .get("SecurityHub")
            .and_then(|v| stack::OnOff::from_str(v, true).ok());
    }
    if args.page_at.is_none() {
        args.page_at = deployed.get("PageAt").cloned();
    }
    if args.pagerduty_url.is_none() {
        args.pagerduty_url = deployed.get("PagerDutyUrl").cloned();
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
    // Asked after preflight and the zip check, so those fail before any CloudTrail call.
    let mut args = args.clone();
    let feed_default = match args.actor_feed {
        Some(_) => None,
        None => {
            let (on, why) = actor_feed_default(config, &observed).await;
            args.actor_feed = Some(on);
            Some(why)
        }
    };
    // The links stay as deployed unless the flag says otherwise.
    if args.act_links.is_none() {
        args.act_links = observed
            .params()
            .all
            .get("ActLinks")
            .and_then(|v| stack::OnOff::from_str(v, true).ok());
    }
    if args.act_links == Some(stack::OnOff::On) {
        package::check_act(&artifact.path)?;
    }
    keep_as_deployed(&mut args, &observed.params().all);
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

/// Without the flag, the feed is on when a trail logs here (see [`actor_feed`]); and why.
async fn actor_feed_default(config: &SdkConfig, observed: &Observed) -> (stack::OnOff, String) {
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    // When the trails cannot be read, the deployed value stays (as BaselineUntil does).
    let deployed = observed.params().actor_feed;
    actor_feed::default_for(&actor_feed::trails(config).await, &region, deployed)
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
        acting: Acting::of(&wanted.args),
        quiet: Quiet::of(&wanted.args),
        security: Security::of(wanted),
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
        if observed.deployed.is_some() {
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
