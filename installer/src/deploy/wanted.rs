//! What install wants: the settings flags of `install` and `plan` ([`InstallArgs`], also the keys
//! of a rollout target), checked before any AWS call ([`Checked`]), with the handler artifact
//! ([`Wanted`]).

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;
use sgwatch_handler::recipients::parse_address;
use sgwatch_handler::settings::Policy;

use crate::aws::Place;
use crate::deploy::package::{Arch, Artifact};
use crate::deploy::policy_args::PolicyArgs;
use crate::deploy::stack::{OnOff, Source};

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
    pub actor_feed: Option<OnOff>,
    /// Give each alert Revert and Keep links for each rule it added open to the internet: the
    /// act function behind a public function URL, and a KMS HMAC key that signs the links
    /// (default: as deployed, else off)
    #[arg(long, value_enum, value_name = "on|off")]
    pub act_links: Option<OnOff>,
    /// Hours an alert's links act (1-168; default 24)
    #[arg(long, value_name = "HOURS", value_parser = clap::value_parser!(u16).range(1..=168))]
    pub link_hours: Option<u16>,
    /// Days a Keep stands, during which no alert repeats for the rule kept (1-365; default 30)
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u16).range(1..=365))]
    pub keep_days: Option<u16>,
    /// Auto-revert: off; shadow (the alert says what it would have reverted); on (the handler
    /// removes each internet-open ingress rule a change added at --auto-revert-at, then alerts
    /// with how to restore it). Default: as deployed, else off
    #[arg(long, value_enum, value_name = "off|shadow|on")]
    pub auto_revert: Option<AutoRevertMode>,
    /// The lowest severity auto-revert acts on (default critical)
    #[arg(long, value_name = "SEVERITY")]
    pub auto_revert_at: Option<String>,
    /// A principal whose changes auto-revert never undoes (repeatable): an IAM ARN pattern with
    /// `*` (arn:aws:iam::111122223333:role/deploy-*), or invokedBy:SERVICE. Default: as deployed;
    /// an empty value clears the list
    #[arg(long = "trusted-principal", value_name = "PATTERN")]
    pub trusted_principals: Option<Vec<String>>,
    /// A group's changes within this window go out as one email per recipient; CRITICAL still
    /// goes at once (`60s`, `2m`, up to `15m`; `0` sends each alone). Default: as deployed, else
    /// 60s
    #[arg(long, value_name = "DURATION", value_parser = parse_window)]
    pub coalesce: Option<u64>,
    /// Most emails about one group in an hour (0-1000, 0 for no limit); the changes past it go
    /// to the daily digest, and a summary says how many when the hour ends. CRITICAL is always
    /// sent. Default: as deployed, else 10
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub max_per_group_hour: Option<u16>,
    /// Changes at or below this severity go to each recipient's daily digest instead of an
    /// email each (default: as deployed, else off). A trusted principal's changes below HIGH
    /// and a group's changes during its sgwatch:quiet-until period below CRITICAL go to the
    /// digest whatever this says
    #[arg(long, value_enum, value_name = "off|info|low")]
    pub digest: Option<DigestLevel>,
    /// When the daily digest is sent, as HH:MM in --digest-timezone (default: as deployed, else
    /// 08:00)
    #[arg(long, value_name = "HH:MM", value_parser = parse_time_of_day)]
    pub digest_at: Option<(u8, u8)>,
    /// The time zone of --digest-at, an IANA name such as Europe/Paris (default: as deployed,
    /// else UTC)
    #[arg(long, value_name = "ZONE", value_parser = parse_time_zone)]
    pub digest_timezone: Option<String>,
    /// Import an AWS Security Hub finding per rule opened to the internet, archived when a later
    /// change removes it (Security Hub must be enabled in the account and region). Default: as
    /// deployed, else off
    #[arg(long, value_enum, value_name = "on|off")]
    pub security_hub: Option<OnOff>,
    /// The lowest severity of a rule opened to the internet that pagerduty destinations page
    /// (critical, high, medium, low, info). Default: as deployed, else high
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub page_at: Option<String>,
    /// PagerDuty's Events API v2 endpoint; `https://events.eu.pagerduty.com/v2/enqueue` for an
    /// account in PagerDuty's EU service region. Default: as deployed, else the US endpoint
    #[arg(long, value_name = "URL", value_parser = parse_pagerduty_url)]
    pub pagerduty_url: Option<String>,
    /// Set by `sgwatch hub install`: this stack is the organization's hub.
    #[arg(skip)]
    pub hub: Option<Hub>,
}

/// `--auto-revert`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AutoRevertMode {
    Off,
    Shadow,
    On,
}

impl AutoRevertMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AutoRevertMode::Off => "off",
            AutoRevertMode::Shadow => "shadow",
            AutoRevertMode::On => "on",
        }
    }
}

/// `--digest`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DigestLevel {
    Off,
    Info,
    Low,
}

impl DigestLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestLevel::Off => "off",
            DigestLevel::Info => "info",
            DigestLevel::Low => "low",
        }
    }
}

/// `--coalesce`: `90`, `90s` or `2m`, at most 15 minutes (SQS's longest delay); seconds.
pub fn parse_window(v: &str) -> Result<u64, String> {
    let (digits, unit) = match v.strip_suffix('m') {
        Some(d) => (d, 60),
        None => (v.strip_suffix('s').unwrap_or(v), 1),
    };
    let secs = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|s| *s <= sgwatch_handler::settings::MAX_COALESCE_SECONDS);
    secs.ok_or_else(|| {
        format!("{v:?} is not a window from 0 to 15m: give seconds (60s) or minutes (2m); 0 turns coalescing off")
    })
}

/// `HH:MM`, 00:00 to 23:59.
pub fn parse_time_of_day(v: &str) -> Result<(u8, u8), String> {
    let parsed = v.split_once(':').and_then(|(h, m)| {
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        (two_digits(h) && two_digits(m)).then_some(())?;
        Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?))
    });
    match parsed {
        Some((h, m)) if h < 24 && m < 60 => Ok((h, m)),
        _ => Err(format!("{v:?} is not a time of day as HH:MM, e.g. 08:00")),
    }
}

/// An IANA time zone name as EventBridge Scheduler takes it (its shape: the zone itself is
/// checked by Scheduler when the stack is deployed).
pub fn parse_time_zone(v: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-/".contains(c));
    if ok {
        Ok(v.to_owned())
    } else {
        Err(format!(
            "{v:?} is not a time zone name: give an IANA name such as UTC, Europe/Paris or America/New_York"
        ))
    }
}

/// Who may put events on a hub's bus: an organization, listed accounts, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct Hub {
    /// The organization (o-…) whose accounts' spokes may send to the hub
    #[arg(long, value_name = "ORG_ID")]
    pub organization_id: Option<String>,
    /// Member accounts whose spokes may send to the hub, comma-separated (besides or instead of
    /// --organization-id)
    #[arg(long, value_name = "ACCOUNT,...", value_delimiter = ',')]
    pub member_accounts: Vec<String>,
}

impl Hub {
    /// The flags, checked: at least one way in, each well formed.
    pub fn check(&self) -> Result<(), InstallError> {
        let org = self.organization_id.as_deref().unwrap_or_default();
        if !org.is_empty() && !sgwatch_handler::spokes::is_organization_id(org) {
            return Err(InstallError::HubOrganization(org.to_owned()));
        }
        if let Some(bad) = self
            .member_accounts
            .iter()
            .find(|a| !sgwatch_handler::spokes::is_account(a))
        {
            return Err(InstallError::HubAccount(bad.clone()));
        }
        if org.is_empty() && self.member_accounts.is_empty() {
            return Err(InstallError::HubNobody);
        }
        Ok(())
    }
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
        "--organization-id {0:?} is not an organization id (o- and 10 to 32 letters or digits)"
    )]
    HubOrganization(String),
    #[error("--member-accounts holds {0:?}, which is not a 12-digit account id")]
    HubAccount(String),
    #[error(
        "a hub needs spokes it lets in: give --organization-id (every account of the \
         organization) or --member-accounts (a list), or both"
    )]
    HubNobody,
    #[error(
        "stack {0} is the organization's hub: update it with `sgwatch hub install` (a plain \
         install would remove its bus and queue, and every spoke would go unheard)"
    )]
    HubStack(String),
    #[error(
        "the existing delivery channel {channel:?} in {place} has no SNS topic to subscribe the \
         handler to: run install with --source eventbridge"
    )]
    ChannelWithoutTopic { channel: String, place: Place },
    #[error(
        "--act-links on needs the opt-in tag NotifyOnChange, not {0:?}: the act function's IAM \
         policy may revoke only on groups carrying the tag, and a policy's condition key cannot \
         come from a setting. Install without --notify-tag, or with --act-links off"
    )]
    ActLinksTag(String),
    #[error(
        "--auto-revert on needs the opt-in tag NotifyOnChange, not {0:?}: the handler's IAM \
         policy may revoke only on groups carrying the tag, and a policy's condition key cannot \
         come from a setting. Install without --notify-tag, or with --auto-revert shadow or off"
    )]
    AutoRevertTag(String),
    #[error(
        "--auto-revert is a full stack's setting: a hub's roles may not change member accounts' \
         groups. Install it with each member's own stack, or leave it off"
    )]
    AutoRevertHub,
    #[error("--auto-revert-at {value:?} is invalid: {why}")]
    AutoRevertAt { value: String, why: String },
    #[error("--trusted-principal {0}")]
    TrustedPrincipal(String),
    #[error(
        "--act-links is a full stack's setting: a hub's links would act in member accounts, \
         which the hub's roles may not do. Install the links with each member's own stack, or \
         leave them off"
    )]
    ActLinksHub,
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
        if let Some(hub) = &self.hub {
            hub.check()?;
        }
        if let Some(at) = &self.auto_revert_at {
            at.parse::<sgwatch_handler::severity::Severity>()
                .map_err(|why| InstallError::AutoRevertAt {
                    value: at.clone(),
                    why,
                })?;
        }
        for p in self.trusted_principals.iter().flatten() {
            sgwatch_handler::trust::parse(p).map_err(InstallError::TrustedPrincipal)?;
        }
        if self.auto_revert.is_some_and(|m| m != AutoRevertMode::Off) && self.hub.is_some() {
            return Err(InstallError::AutoRevertHub.into());
        }
        if self.auto_revert == Some(AutoRevertMode::On)
            && policy.notify_tag != Policy::default().notify_tag
        {
            return Err(InstallError::AutoRevertTag(policy.notify_tag.clone()).into());
        }
        if self.act_links == Some(OnOff::On) {
            if self.hub.is_some() {
                return Err(InstallError::ActLinksHub.into());
            }
            if policy.notify_tag != Policy::default().notify_tag {
                return Err(InstallError::ActLinksTag(policy.notify_tag.clone()).into());
            }
        }
        Ok(Checked {
            policy,
            sender,
            stack_name: name.clone(),
        })
    }
}

/// What install wants: the checked flags and the handler artifact.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub args: InstallArgs,
    pub checked: Checked,
    pub artifact: Artifact,
    /// When the plan is made: recording that starts now makes its baseline end an hour later.
    pub now: SystemTime,
}

/// `--page-at`: a severity, checked before AWS is called.
fn parse_severity(value: &str) -> Result<String, String> {
    value
        .parse::<sgwatch_handler::severity::Severity>()
        .map(|s| s.as_str().to_owned())
}

/// `--pagerduty-url`: an `https://` URL the stack's parameter accepts.
fn parse_pagerduty_url(value: &str) -> Result<String, String> {
    let rest = value.strip_prefix("https://").unwrap_or_default();
    let host = rest.split('/').next().unwrap_or_default();
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(format!(
            "expected PagerDuty's Events API v2 URL, {} or https://events.eu.pagerduty.com/v2/enqueue",
            sgwatch_handler::settings::PAGERDUTY_URL
        ))
    }
}
