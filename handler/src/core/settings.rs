//! The handler's settings: read once from the Lambda environment and validated at start, so a
//! wrong setting stops the function with one clear error instead of failing at the first event.

use std::fmt;
use std::str::FromStr;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use crate::core::autorevert::AutoRevert;
use crate::core::destination::{parse_destinations, Destination, Reach};
use crate::core::quiet::Quiet;
use crate::core::recipients::parse_address;
use crate::core::severity::Severity;
use crate::core::trust::{self, Pattern};

/// The default resource type sgwatch watches.
pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";

/// What the pure decision logic needs: which resources, which tags, who else to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Tag whose value `Yes` (or `true`) opts a group in.
    pub notify_tag: String,
    /// Tag listing the owners' addresses.
    pub owner_tag: String,
    /// Resource types considered; always contains `AWS::EC2::SecurityGroup`.
    pub resource_types: Vec<String>,
    /// Gets the email when the owner tag has no valid address, and every change at or above
    /// `always_notify_at`.
    pub fallback_recipient: Option<String>,
    pub always_notify_at: Option<Severity>,
    /// Attach/detach of instances and ENIs notifies only when this is on.
    pub notify_on_relationship_changes: bool,
    /// Groups discovered (`ResourceDiscovered`) before this moment existed when recording
    /// started: they are the baseline, not news.
    pub baseline_until: Option<DateTime>,
    /// The accounts whose changes this function handles; others are skipped.
    pub accounts: Accounts,
    /// Tag naming the destinations (besides the owners' email) a group's changes are posted to.
    pub channels_tag: String,
    /// The configured chat and webhook destinations.
    pub destinations: Vec<Destination>,
    /// A destination (one of `destinations`) told wherever the fallback recipient is.
    pub fallback_destination: Option<String>,
    /// Destinations may resolve to private addresses (a receiver inside the VPC); off, a URL
    /// naming or resolving to one is refused.
    pub allow_private_destinations: bool,
}

/// Which accounts a function serves: a topic that aggregates many accounts (AWS Control Tower's
/// audit account) would otherwise have every installed copy email about every account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Accounts {
    /// `*`, or the setting absent.
    #[default]
    Any,
    /// Only these 12-digit account ids.
    Only(Vec<String>),
}

impl Accounts {
    pub fn serves(&self, account: &str) -> bool {
        match self {
            Accounts::Any => true,
            Accounts::Only(ids) => ids.iter().any(|id| id == account),
        }
    }
}

impl fmt::Display for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Accounts::Any => f.write_str("*"),
            Accounts::Only(ids) => f.write_str(&ids.join(",")),
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            notify_tag: "NotifyOnChange".to_owned(),
            owner_tag: "OwnerDL".to_owned(),
            resource_types: vec![SECURITY_GROUP.to_owned()],
            fallback_recipient: None,
            always_notify_at: None,
            notify_on_relationship_changes: false,
            baseline_until: None,
            accounts: Accounts::Any,
            channels_tag: "NotifyChannels".to_owned(),
            destinations: Vec::new(),
            fallback_destination: None,
            allow_private_destinations: false,
        }
    }
}

/// Everything the running handler needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub policy: Policy,
    /// The SES identity the email is sent from.
    pub sender: String,
    /// Look up who made the change in CloudTrail.
    pub lookup_actor: bool,
    /// DynamoDB table that makes repeated deliveries send one email; the actor feed lives there too.
    pub idempotency_table: Option<String>,
    /// The severity at which a call from the actor feed is told to the owners at once
    /// (`SGWATCH_EARLY_WARNING`: `critical`, the default, or `high`); `None` when `off`.
    pub early_warning: Option<Severity>,
    /// The stack's failure queue, where what cannot be delivered is parked (`SGWATCH_FAILURE_QUEUE_URL`).
    pub failure_queue_url: Option<String>,
    /// The stack's Config bucket (`SGWATCH_CONFIG_BUCKET`): oversized items anywhere else are read
    /// through AWS Config.
    pub config_bucket: Option<String>,
    /// Destinations on this machine's loopback, over plain HTTP too
    /// (`SGWATCH_TEST_LOOPBACK_DESTINATIONS`): for local receivers in tests and the demo only. The
    /// template never sets it: in Lambda, loopback is where the Runtime API answers.
    pub loopback_destinations: bool,
    /// This function is the organization's hub (`SGWATCH_HUB`): it keeps the coverage map of its
    /// spokes and reads member accounts through their `sgwatch-reader` role.
    pub hub: bool,
    /// The handover marker this full stack reads (`SGWATCH_HANDOVER_PARAMETER`): once a spoke
    /// takes the region over for the hub, changes from its time on are left to the hub.
    pub handover_parameter: Option<String>,
    /// The owners' Revert and Keep links (`SGWATCH_ACT_URL`, `SGWATCH_ACT_KEY`,
    /// `SGWATCH_ACT_LINK_HOURS`, `SGWATCH_ACT_KEEP_DAYS`); see [`crate::core::link`].
    pub act: ActSettings,
    /// Auto-revert (`SGWATCH_AUTO_REVERT`, `SGWATCH_AUTO_REVERT_AT`); see
    /// [`crate::core::autorevert`].
    pub auto_revert: AutoRevert,
    /// The principals whose changes auto-revert never undoes (`SGWATCH_TRUSTED_PRINCIPALS`); see
    /// [`crate::core::trust`].
    pub trusted_principals: Vec<Pattern>,
    /// The noise controls (`SGWATCH_DIGEST`, `SGWATCH_COALESCE_SECONDS`); see
    /// [`crate::core::quiet`].
    pub quiet: Quiet,
    /// The queue whose delayed message ends a group's coalescing window
    /// (`SGWATCH_WAKE_QUEUE_URL`); without it, changes are not coalesced.
    pub wake_queue_url: Option<String>,
    /// Where security teams look (`SGWATCH_SECURITY_HUB`, `SGWATCH_PAGE_AT`,
    /// `SGWATCH_PAGERDUTY_URL`); see [`crate::core::finding`].
    pub security: SecuritySettings,
}

/// Security Hub findings and PagerDuty pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    /// Import a Security Hub finding per rule opened to the internet (`SGWATCH_SECURITY_HUB`).
    pub security_hub: bool,
    /// The lowest severity of an opened rule that pages (`SGWATCH_PAGE_AT`, default `high`).
    pub page_at: Severity,
    /// PagerDuty's Events API v2 endpoint (`SGWATCH_PAGERDUTY_URL`): the US service region's by
    /// default, `https://events.eu.pagerduty.com/v2/enqueue` for an account in the EU one.
    pub pagerduty_url: String,
}

/// PagerDuty's Events API v2 endpoint in its US service region.
pub const PAGERDUTY_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            security_hub: false,
            page_at: Severity::High,
            pagerduty_url: PAGERDUTY_URL.to_owned(),
        }
    }
}

impl SecuritySettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut out = SecuritySettings::default();
        if let Some(v) = non_empty(&get("SGWATCH_SECURITY_HUB")) {
            out.security_hub = parse_bool("SGWATCH_SECURITY_HUB", v)?;
        }
        if let Some(v) = non_empty(&get("SGWATCH_PAGE_AT")) {
            out.page_at = v.parse().map_err(|why| SettingsError::Invalid {
                name: "SGWATCH_PAGE_AT",
                value: v.to_owned(),
                why,
            })?;
        }
        if let Some(url) = non_empty(&get("SGWATCH_PAGERDUTY_URL")) {
            let plain = url
                .chars()
                .all(|c| c.is_ascii_graphic() && !"\"'<>`\\".contains(c));
            if !(plain && (url.starts_with("https://") || url.starts_with("http://"))) {
                return Err(SettingsError::Invalid {
                    name: "SGWATCH_PAGERDUTY_URL",
                    value: url.to_owned(),
                    why: "expected PagerDuty's Events API v2 URL, https://events.pagerduty.com/v2/enqueue or https://events.eu.pagerduty.com/v2/enqueue".to_owned(),
                });
            }
            out.pagerduty_url = url.to_owned();
        }
        Ok(out)
    }
}

/// The longest coalescing window: SQS delays a message at most 15 minutes.
pub const MAX_COALESCE_SECONDS: u64 = 900;

/// The links' settings. The handler signs links when both the act function's URL and the key
/// are set; the act function needs the key (it cannot know its own URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActSettings {
    /// The act function's URL (`https://…`).
    pub url: Option<String>,
    /// The KMS HMAC key the links are signed with (its id or ARN).
    pub key: Option<String>,
    /// How long a link acts.
    pub link_hours: u64,
    /// How long a Keep stands.
    pub keep_days: u64,
}

impl Default for ActSettings {
    fn default() -> Self {
        ActSettings {
            url: None,
            key: None,
            link_hours: crate::core::link::DEFAULT_HOURS,
            keep_days: crate::core::link::DEFAULT_KEEP_DAYS,
        }
    }
}

impl ActSettings {
    fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<ActSettings, SettingsError> {
        let mut act = ActSettings::default();
        if let Some(url) = non_empty(&get("SGWATCH_ACT_URL")) {
            let plain = url
                .chars()
                .all(|c| c.is_ascii_graphic() && !"\"'<>`\\".contains(c));
            if !(url.starts_with("https://") && plain) {
                return Err(SettingsError::Invalid {
                    name: "SGWATCH_ACT_URL",
                    value: url.to_owned(),
                    why: "expected the act function's URL, https://…".to_owned(),
                });
            }
            act.url = Some(url.to_owned());
        }
        if let Some(key) = non_empty(&get("SGWATCH_ACT_KEY")) {
            if key.contains(char::is_whitespace) {
                return Err(SettingsError::Invalid {
                    name: "SGWATCH_ACT_KEY",
                    value: key.to_owned(),
                    why: "expected a KMS key id or ARN".to_owned(),
                });
            }
            act.key = Some(key.to_owned());
        }
        let count = |name: &'static str, max: u64| -> Result<Option<u64>, SettingsError> {
            let value = get(name);
            let Some(v) = non_empty(&value) else {
                return Ok(None);
            };
            match v.trim().parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
                _ => Err(SettingsError::Invalid {
                    name,
                    value: v.to_owned(),
                    why: format!("expected a whole number from 1 to {max}"),
                }),
            }
        };
        if let Some(hours) = count("SGWATCH_ACT_LINK_HOURS", 24 * 7)? {
            act.link_hours = hours;
        }
        if let Some(days) = count("SGWATCH_ACT_KEEP_DAYS", 365)? {
            act.keep_days = days;
        }
        Ok(act)
    }

    /// Whether alerts carry links: the URL and the key are both set.
    pub fn links(&self) -> bool {
        self.url.is_some() && self.key.is_some()
    }
}

/// A setting that is missing or has a value the handler cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("{0} is not set; set it to the verified SES identity the email is sent from")]
    Missing(&'static str),
    #[error("{name}={value:?} is invalid: {why}")]
    Invalid {
        name: &'static str,
        value: String,
        why: String,
    },
}

impl Policy {
    /// Builds a policy from optional raw values (environment variables or CLI flags), checking
    /// each one.
    pub fn from_raw(raw: &RawPolicy) -> Result<Policy, SettingsError> {
        let mut policy = Policy::default();
        if let Some(tag) = non_empty(&raw.notify_tag) {
            policy.notify_tag = tag_key("SGWATCH_NOTIFY_TAG", tag)?;
        }
        if let Some(tag) = non_empty(&raw.owner_tag) {
            policy.owner_tag = tag_key("SGWATCH_OWNER_TAG", tag)?;
        }
        if let Some(types) = non_empty(&raw.resource_types) {
            add_resource_types(&mut policy.resource_types, types)?;
        }
        if let Some(fallback) = non_empty(&raw.fallback_recipient) {
            let address = parse_address(fallback).map_err(|why| SettingsError::Invalid {
                name: "SGWATCH_FALLBACK_RECIPIENT",
                value: fallback.to_owned(),
                why,
            })?;
            policy.fallback_recipient = Some(address);
        }
        if let Some(tag) = non_empty(&raw.channels_tag) {
            policy.channels_tag = tag_key("SGWATCH_CHANNELS_TAG", tag)?;
        }
        if let Some(list) = non_empty(&raw.destinations) {
            policy.destinations =
                parse_destinations(list).map_err(|why| SettingsError::Invalid {
                    name: "SGWATCH_DESTINATIONS",
                    value: list.to_owned(),
                    why,
                })?;
        }
        if let Some(name) = non_empty(&raw.fallback_destination) {
            policy.fallback_destination = Some(fallback_destination(&policy.destinations, name)?);
        }
        if let Some(level) = non_empty(&raw.always_notify_at) {
            policy.always_notify_at = Some(always_notify_at(&policy, level)?);
        }
        if let Some(flag) = non_empty(&raw.notify_on_relationship_changes) {
            policy.notify_on_relationship_changes =
                parse_bool("SGWATCH_NOTIFY_ON_RELATIONSHIP_CHANGES", flag)?;
        }
        if let Some(until) = non_empty(&raw.baseline_until) {
            policy.baseline_until = Some(parse_time("SGWATCH_BASELINE_UNTIL", until)?);
        }
        if let Some(accounts) = non_empty(&raw.accounts) {
            policy.accounts = parse_accounts(accounts)?;
        }
        if let Some(flag) = non_empty(&raw.allow_private_destinations) {
            policy.allow_private_destinations =
                parse_bool("SGWATCH_ALLOW_PRIVATE_DESTINATIONS", flag)?;
        }
        Ok(policy)
    }
}

/// Adds the comma-separated resource types of `value` to `types`, each once.
fn add_resource_types(types: &mut Vec<String>, value: &str) -> Result<(), SettingsError> {
    for t in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !is_resource_type(t) {
            return Err(SettingsError::Invalid {
                name: "SGWATCH_RESOURCE_TYPES",
                value: value.to_owned(),
                why: format!(
                    "{t:?} is not a CloudFormation type name like AWS::EC2::SecurityGroup"
                ),
            });
        }
        if !types.iter().any(|x| x == t) {
            types.push(t.to_owned());
        }
    }
    Ok(())
}

/// The configured name of the destination `name` means, compared without regard to case.
fn fallback_destination(destinations: &[Destination], name: &str) -> Result<String, SettingsError> {
    destinations
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(name))
        .map(|d| d.name.clone())
        .ok_or_else(|| SettingsError::Invalid {
            name: "SGWATCH_FALLBACK_DESTINATION",
            value: name.to_owned(),
            why: "it must name one of SGWATCH_DESTINATIONS".to_owned(),
        })
}

/// The severity `level` names, usable only when `policy` has a fallback to tell.
fn always_notify_at(policy: &Policy, level: &str) -> Result<Severity, SettingsError> {
    let severity = Severity::from_str(level).map_err(|why| SettingsError::Invalid {
        name: "SGWATCH_ALWAYS_NOTIFY_AT",
        value: level.to_owned(),
        why,
    })?;
    if policy.fallback_recipient.is_none() && policy.fallback_destination.is_none() {
        return Err(SettingsError::Invalid {
            name: "SGWATCH_ALWAYS_NOTIFY_AT",
            value: level.to_owned(),
            why: "it tells the fallback recipient or destination; set \
                  SGWATCH_FALLBACK_RECIPIENT or SGWATCH_FALLBACK_DESTINATION too"
                .to_owned(),
        });
    }
    Ok(severity)
}

/// Raw values of the policy settings, before validation.
#[derive(Debug, Clone, Default)]
pub struct RawPolicy {
    pub notify_tag: Option<String>,
    pub owner_tag: Option<String>,
    pub resource_types: Option<String>,
    pub fallback_recipient: Option<String>,
    pub always_notify_at: Option<String>,
    pub notify_on_relationship_changes: Option<String>,
    /// RFC 3339 time, e.g. `2026-11-20T09:30:00Z`.
    pub baseline_until: Option<String>,
    /// Comma-separated account ids, or `*`.
    pub accounts: Option<String>,
    pub channels_tag: Option<String>,
    /// `name=kind:/parameter[:/key-parameter]`, comma-separated.
    pub destinations: Option<String>,
    pub fallback_destination: Option<String>,
    pub allow_private_destinations: Option<String>,
}

impl Settings {
    /// Reads `SGWATCH_*` variables through `get` (the process environment in the Lambda).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, SettingsError> {
        let raw = RawPolicy {
            notify_tag: get("SGWATCH_NOTIFY_TAG"),
            owner_tag: get("SGWATCH_OWNER_TAG"),
            resource_types: get("SGWATCH_RESOURCE_TYPES"),
            fallback_recipient: get("SGWATCH_FALLBACK_RECIPIENT"),
            always_notify_at: get("SGWATCH_ALWAYS_NOTIFY_AT"),
            notify_on_relationship_changes: get("SGWATCH_NOTIFY_ON_RELATIONSHIP_CHANGES"),
            baseline_until: get("SGWATCH_BASELINE_UNTIL"),
            accounts: get("SGWATCH_ACCOUNTS"),
            channels_tag: get("SGWATCH_CHANNELS_TAG"),
            destinations: get("SGWATCH_DESTINATIONS"),
            fallback_destination: get("SGWATCH_FALLBACK_DESTINATION"),
            allow_private_destinations: get("SGWATCH_ALLOW_PRIVATE_DESTINATIONS"),
        };
        let policy = Policy::from_raw(&raw)?;
        let sender = get("SGWATCH_SENDER");
        let sender = non_empty(&sender).ok_or(SettingsError::Missing("SGWATCH_SENDER"))?;
        let sender = parse_address(sender).map_err(|why| SettingsError::Invalid {
            name: "SGWATCH_SENDER",
            value: sender.to_owned(),
            why,
        })?;
        let lookup_actor = match non_empty(&get("SGWATCH_LOOKUP_ACTOR")) {
            Some(v) => parse_bool("SGWATCH_LOOKUP_ACTOR", v)?,
            None => true,
        };
        let idempotency_table = non_empty(&get("SGWATCH_IDEMPOTENCY_TABLE")).map(str::to_owned);
        let early_warning = match non_empty(&get("SGWATCH_EARLY_WARNING")) {
            None => Some(Severity::Critical),
            Some(v) => parse_early_warning(v)?,
        };
        let loopback_destinations = match non_empty(&get("SGWATCH_TEST_LOOPBACK_DESTINATIONS")) {
            Some(v) => parse_bool("SGWATCH_TEST_LOOPBACK_DESTINATIONS", v)?,
            None => false,
        };
        let hub = match non_empty(&get("SGWATCH_HUB")) {
            Some(v) => parse_bool("SGWATCH_HUB", v)?,
            None => false,
        };
        let handover_parameter = match non_empty(&get("SGWATCH_HANDOVER_PARAMETER")) {
            Some(name) if name.starts_with('/') && !name.contains(char::is_whitespace) => {
                Some(name.to_owned())
            }
            Some(name) => {
                return Err(SettingsError::Invalid {
                    name: "SGWATCH_HANDOVER_PARAMETER",
                    value: name.to_owned(),
                    why: "expected an SSM parameter name such as /sgwatch/handover".to_owned(),
                })
            }
            None => None,
        };
        let act = ActSettings::from_lookup(&get)?;
        let (auto_revert, trusted_principals) = acting_from(&get)?;
        let wake_queue_url = non_empty(&get("SGWATCH_WAKE_QUEUE_URL")).map(str::to_owned);
        let quiet = quiet_from(&get, wake_queue_url.is_some())?;
        let security = SecuritySettings::from_lookup(&get)?;
        Ok(Settings {
            policy,
            security,
            act,
            quiet,
            wake_queue_url,
            auto_revert,
            trusted_principals,
            hub,
            handover_parameter,
            loopback_destinations,
            sender,
            lookup_actor,
            idempotency_table,
            early_warning,
            failure_queue_url: non_empty(&get("SGWATCH_FAILURE_QUEUE_URL")).map(str::to_owned),
            config_bucket: non_empty(&get("SGWATCH_CONFIG_BUCKET")).map(str::to_owned),
        })
    }

    /// Where destinations may be besides public addresses.
    pub fn reach(&self) -> Reach {
        Reach {
            private: self.policy.allow_private_destinations,
            loopback: self.loopback_destinations,
        }
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Settings, SettingsError> {
        Settings::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Auto-revert and the principals it (and the digest) trusts (`SGWATCH_AUTO_REVERT`,
/// `SGWATCH_AUTO_REVERT_AT`, `SGWATCH_TRUSTED_PRINCIPALS`).
fn acting_from(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(AutoRevert, Vec<Pattern>), SettingsError> {
    let mut auto_revert = AutoRevert::default();
    if let Some(v) = non_empty(&get("SGWATCH_AUTO_REVERT")) {
        auto_revert.mode = v.parse().map_err(|why| SettingsError::Invalid {
            name: "SGWATCH_AUTO_REVERT",
            value: v.to_owned(),
            why,
        })?;
    }
    if let Some(v) = non_empty(&get("SGWATCH_AUTO_REVERT_AT")) {
        auto_revert.at = v.parse().map_err(|why| SettingsError::Invalid {
            name: "SGWATCH_AUTO_REVERT_AT",
            value: v.to_owned(),
            why,
        })?;
    }
    let trusted_principals = match non_empty(&get("SGWATCH_TRUSTED_PRINCIPALS")) {
        Some(v) => trust::parse(v).map_err(|why| SettingsError::Invalid {
            name: "SGWATCH_TRUSTED_PRINCIPALS",
            value: v.to_owned(),
            why,
        })?,
        None => Vec::new(),
    };
    Ok((auto_revert, trusted_principals))
}

/// The noise controls (`SGWATCH_DIGEST`, `SGWATCH_COALESCE_SECONDS`,
/// `SGWATCH_MAX_PER_GROUP_HOUR`); `wakes` when a wake queue is set.
fn quiet_from(get: &impl Fn(&str) -> Option<String>, wakes: bool) -> Result<Quiet, SettingsError> {
    let mut quiet = Quiet::default();
    if let Some(v) = non_empty(&get("SGWATCH_DIGEST")) {
        quiet.digest = match v.to_ascii_lowercase().as_str() {
            "off" => None,
            "low" => Some(Severity::Low),
            "info" => Some(Severity::Info),
            _ => {
                return Err(SettingsError::Invalid {
                    name: "SGWATCH_DIGEST",
                    value: v.to_owned(),
                    why: "expected low, info or off".to_owned(),
                })
            }
        };
    }
    if let Some(v) = non_empty(&get("SGWATCH_COALESCE_SECONDS")) {
        quiet.coalesce = v
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= MAX_COALESCE_SECONDS)
            .ok_or_else(|| SettingsError::Invalid {
                name: "SGWATCH_COALESCE_SECONDS",
                value: v.to_owned(),
                why: format!("expected seconds from 0 (off) to {MAX_COALESCE_SECONDS}"),
            })?;
    }
    if let Some(v) = non_empty(&get("SGWATCH_MAX_PER_GROUP_HOUR")) {
        quiet.max_per_group_hour =
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= 1000)
                .ok_or_else(|| SettingsError::Invalid {
                    name: "SGWATCH_MAX_PER_GROUP_HOUR",
                    value: v.to_owned(),
                    why: "expected emails from 0 (no limit) to 1000".to_owned(),
                })?;
    }
    if !wakes {
        // Nothing would wake the window, nor the rate limit's summary: each change goes
        // alone, and none is held back.
        quiet.coalesce = 0;
        quiet.max_per_group_hour = 0;
    }
    Ok(quiet)
}

/// `critical`, `high` or `off`: lower levels would email for every medium-risk port the moment it
/// is opened, which the Config notification minutes later does well enough.
fn parse_early_warning(value: &str) -> Result<Option<Severity>, SettingsError> {
    match value.to_ascii_lowercase().as_str() {
        "critical" => Ok(Some(Severity::Critical)),
        "high" => Ok(Some(Severity::High)),
        "off" | "false" | "no" => Ok(None),
        _ => Err(SettingsError::Invalid {
            name: "SGWATCH_EARLY_WARNING",
            value: value.to_owned(),
            why: "expected critical, high or off".to_owned(),
        }),
    }
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn parse_bool(name: &'static str, value: &str) -> Result<bool, SettingsError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err(SettingsError::Invalid {
            name,
            value: value.to_owned(),
            why: "expected true or false".to_owned(),
        }),
    }
}

/// An RFC 3339 time (`2026-11-20T09:30:00Z`, `2026-11-20T10:30:00+01:00`), as AWS Config writes
/// capture times; the SDK's own parser, so no date crate is needed.
pub fn parse_time(name: &'static str, value: &str) -> Result<DateTime, SettingsError> {
    DateTime::from_str(value.trim(), Format::DateTimeWithOffset).map_err(|e| {
        SettingsError::Invalid {
            name,
            value: value.to_owned(),
            why: format!("expected an RFC 3339 time like 2026-11-20T09:30:00Z ({e})"),
        }
    })
}

fn parse_accounts(value: &str) -> Result<Accounts, SettingsError> {
    let invalid = |why: String| SettingsError::Invalid {
        name: "SGWATCH_ACCOUNTS",
        value: value.to_owned(),
        why,
    };
    let parts: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.contains(&"*") {
        return if parts.len() == 1 {
            Ok(Accounts::Any)
        } else {
            Err(invalid(
                "`*` (any account) cannot be combined with account ids".to_owned(),
            ))
        };
    }
    let mut ids: Vec<String> = Vec::new();
    for part in parts {
        // AWS account ids are exactly 12 digits (leading zeros are significant).
        if part.len() != 12 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!(
                "{part:?} is not a 12-digit AWS account id"
            )));
        }
        if !ids.iter().any(|id| id == part) {
            ids.push(part.to_owned());
        }
    }
    Ok(Accounts::Only(ids))
}

fn tag_key(name: &'static str, value: &str) -> Result<String, SettingsError> {
    // AWS tag keys: up to 128 characters, no control characters, not starting with aws:.
    if value.chars().count() > 128
        || value.chars().any(char::is_control)
        || value.starts_with("aws:")
    {
        return Err(SettingsError::Invalid {
            name,
            value: value.to_owned(),
            why: "a tag key has at most 128 printable characters and does not start with aws:"
                .to_owned(),
        });
    }
    Ok(value.to_owned())
}

fn is_resource_type(t: &str) -> bool {
    let parts: Vec<&str> = t.split("::").collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_only_a_sender() {
        let s = settings(&[("SGWATCH_SENDER", "alerts@example.com")]).unwrap();
        assert_eq!(s.sender, "alerts@example.com");
        assert_eq!(s.policy, Policy::default());
        assert!(s.lookup_actor);
        assert_eq!(s.early_warning, Some(Severity::Critical));
    }

    #[test]
    fn early_warning_is_critical_high_or_off() {
        let with = |v: &str| {
            settings(&[
                ("SGWATCH_SENDER", "alerts@example.com"),
                ("SGWATCH_EARLY_WARNING", v),
            ])
        };
        assert_eq!(with("HIGH").unwrap().early_warning, Some(Severity::High));
        assert_eq!(with("off").unwrap().early_warning, None);
        let err = with("medium").unwrap_err();
        assert!(err.to_string().contains("SGWATCH_EARLY_WARNING"), "{err}");
    }

    #[test]
    fn missing_sender_is_one_clear_error() {
        let err = settings(&[]).unwrap_err();
        assert_eq!(err, SettingsError::Missing("SGWATCH_SENDER"));
        assert!(err.to_string().contains("SGWATCH_SENDER is not set"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("SGWATCH_SENDER", "not-an-address"),
            ("SGWATCH_FALLBACK_RECIPIENT", "nope"),
            ("SGWATCH_ALWAYS_NOTIFY_AT", "severe"),
            ("SGWATCH_NOTIFY_ON_RELATIONSHIP_CHANGES", "maybe"),
            ("SGWATCH_LOOKUP_ACTOR", "perhaps"),
            ("SGWATCH_EARLY_WARNING", "always"),
            ("SGWATCH_RESOURCE_TYPES", "SecurityGroup"),
            ("SGWATCH_NOTIFY_TAG", "aws:reserved"),
            ("SGWATCH_BASELINE_UNTIL", "yesterday"),
            ("SGWATCH_BASELINE_UNTIL", "2026-11-20 09:30:00"),
            ("SGWATCH_ACCOUNTS", "12345"),
            ("SGWATCH_ACCOUNTS", "*,111122223333"),
            ("SGWATCH_DESTINATIONS", "secops=slack:secops"),
            ("SGWATCH_FALLBACK_DESTINATION", "secops"),
            ("SGWATCH_CHANNELS_TAG", "aws:channels"),
        ];
        for (name, value) in cases {
            let mut vars = vec![("SGWATCH_SENDER", "alerts@example.com")];
            vars.retain(|(k, _)| *k != name);
            vars.push((name, value));
            let err = settings(&vars).unwrap_err();
            assert!(err.to_string().starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn always_notify_at_needs_a_fallback() {
        let err = settings(&[
            ("SGWATCH_SENDER", "a@example.com"),
            ("SGWATCH_ALWAYS_NOTIFY_AT", "high"),
        ])
        .unwrap_err();
        assert!(
            err.to_string().contains("SGWATCH_FALLBACK_RECIPIENT"),
            "{err}"
        );
        let ok = settings(&[
            ("SGWATCH_SENDER", "a@example.com"),
            ("SGWATCH_ALWAYS_NOTIFY_AT", "HIGH"),
            ("SGWATCH_FALLBACK_RECIPIENT", "secops@example.com"),
            (
                "SGWATCH_RESOURCE_TYPES",
                "AWS::EC2::NetworkAcl, AWS::EC2::SecurityGroup",
            ),
            ("SGWATCH_NOTIFY_ON_RELATIONSHIP_CHANGES", "true"),
            ("SGWATCH_LOOKUP_ACTOR", "false"),
        ])
        .unwrap();
        assert_eq!(ok.policy.always_notify_at, Some(Severity::High));
        assert_eq!(
            ok.policy.resource_types,
            vec![SECURITY_GROUP, "AWS::EC2::NetworkAcl"]
        );
        assert!(ok.policy.notify_on_relationship_changes);
        assert!(!ok.lookup_actor);
    }

    #[test]
    fn destinations_channels_tag_and_fallback_destination() {
        let s = settings(&[
            ("SGWATCH_SENDER", "a@example.com"),
            (
                "SGWATCH_DESTINATIONS",
                "secops=slack:/sgwatch/secops,siem=webhook:/sgwatch/siem-url:/sgwatch/siem-key",
            ),
            ("SGWATCH_FALLBACK_DESTINATION", "SecOps"),
            ("SGWATCH_CHANNELS_TAG", "Channels"),
            ("SGWATCH_ALWAYS_NOTIFY_AT", "critical"),
        ])
        .unwrap();
        assert_eq!(s.policy.destinations.len(), 2);
        assert_eq!(s.policy.fallback_destination.as_deref(), Some("secops"));
        assert_eq!(s.policy.channels_tag, "Channels");
        assert_eq!(s.policy.always_notify_at, Some(Severity::Critical));
        let err = settings(&[
            ("SGWATCH_SENDER", "a@example.com"),
            ("SGWATCH_DESTINATIONS", "secops=slack:/sgwatch/secops"),
            ("SGWATCH_FALLBACK_DESTINATION", "team-a"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("must name one of SGWATCH_DESTINATIONS"),
            "{err}"
        );
    }

    #[test]
    fn baseline_until_is_rfc_3339_with_or_without_offset() {
        let at = |value: &str| {
            settings(&[
                ("SGWATCH_SENDER", "a@example.com"),
                ("SGWATCH_BASELINE_UNTIL", value),
            ])
            .unwrap()
            .policy
            .baseline_until
            .unwrap()
            .secs()
        };
        // 2026-11-20T09:30:00Z
        assert_eq!(at("2026-11-20T09:30:00Z"), 1_795_167_000);
        assert_eq!(at("2026-11-20T10:30:00+01:00"), 1_795_167_000);
        assert_eq!(at(" 2026-11-20T09:30:00.250Z "), 1_795_167_000);
        assert_eq!(at("2026-11-20t09:30:00z"), 1_795_167_000);
    }

    #[test]
    fn accounts_are_ids_or_any() {
        let accounts = |value: &str| {
            settings(&[
                ("SGWATCH_SENDER", "a@example.com"),
                ("SGWATCH_ACCOUNTS", value),
            ])
            .unwrap()
            .policy
            .accounts
        };
        assert_eq!(accounts("*"), Accounts::Any);
        assert_eq!(accounts(""), Accounts::Any, "empty means unset");
        let only = accounts("111122223333, 012345678901,111122223333");
        assert_eq!(
            only,
            Accounts::Only(vec!["111122223333".into(), "012345678901".into()])
        );
        assert!(only.serves("012345678901"));
        assert!(!only.serves("999999999999"));
        assert!(Accounts::Any.serves("999999999999"));
        assert_eq!(only.to_string(), "111122223333,012345678901");
    }
}
