//! The actor feed: whether the stack gets the EventBridge rule that sends CloudTrail's
//! security-group API calls to the handler (`--actor-feed on|off`, template parameter
//! `ActorFeed`), what it defaults to, and the `status` line about it.
//!
//! CloudTrail puts management events on the default bus only for calls some trail logs
//! ("Events from AWS services delivered via AWS CloudTrail", EventBridge user guide): without a
//! logging trail covering the region the rule would match nothing, so the default is on only
//! when `DescribeTrails` and `GetTrailStatus` show one.

use aws_config::SdkConfig;
use clap::ValueEnum;

use crate::aws::error_text;
use crate::status::{Check, Level, Seen};

/// `--actor-feed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn as_str(self) -> &'static str {
        match self {
            OnOff::On => "on",
            OnOff::Off => "off",
        }
    }
}

/// One trail as `DescribeTrails` and `GetTrailStatus` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trail {
    pub name: String,
    pub home_region: String,
    pub multi_region: bool,
    pub logging: bool,
}

/// The default when the flag is not given, and why.
pub fn default_for(trails: &Result<Vec<Trail>, String>, region: &str) -> (OnOff, String) {
    let trails = match trails {
        Ok(t) => t,
        Err(e) => {
            return (
                OnOff::Off,
                format!("actor feed off: the trails could not be read ({e}); pass --actor-feed on if a trail logs management events in {region}"),
            )
        }
    };
    let covering = trails
        .iter()
        .find(|t| t.logging && (t.multi_region || t.home_region == region));
    match covering {
        Some(t) => (
            OnOff::On,
            format!("actor feed on: trail {} logs in {region}", t.name),
        ),
        None if trails.is_empty() => (
            OnOff::Off,
            format!("actor feed off: no CloudTrail trail in this account covers {region}; who changed a group comes from LookupEvents (minutes later). Create a trail, or pass --actor-feed on"),
        ),
        None => (
            OnOff::Off,
            format!("actor feed off: no trail covering {region} is logging; who changed a group comes from LookupEvents (minutes later). Start logging, or pass --actor-feed on"),
        ),
    }
}

/// The account's trails that apply to the caller's region (shadow trails included).
pub async fn trails(config: &SdkConfig) -> Result<Vec<Trail>, String> {
    let ct = crate::aws::cloudtrail(config);
    let described = ct
        .describe_trails()
        .include_shadow_trails(true)
        .send()
        .await
        .map_err(|e| format!("cloudtrail:DescribeTrails: {}", error_text(&e)))?;
    let mut out = Vec::new();
    for t in described.trail_list() {
        let Some(arn) = t.trail_arn().or(t.name()) else {
            continue;
        };
        let status = ct
            .get_trail_status()
            .name(arn)
            .send()
            .await
            .map_err(|e| format!("cloudtrail:GetTrailStatus {arn}: {}", error_text(&e)))?;
        out.push(Trail {
            name: t.name().unwrap_or(arn).to_owned(),
            home_region: t.home_region().unwrap_or_default().to_owned(),
            multi_region: t.is_multi_region_trail().unwrap_or(false),
            logging: status.is_logging().unwrap_or(false),
        });
    }
    Ok(out)
}

/// The `status` line of the actor feed: on (its rule exists, is enabled and targets the
/// function), or off and why.
pub async fn check(config: &SdkConfig, seen: &Seen) -> Vec<Check> {
    const NAME: &str = "actor feed";
    let check = |level, detail: String| Check {
        level,
        check: NAME.to_owned(),
        detail,
    };
    if seen.stack.is_none() {
        return Vec::new();
    }
    let region = &seen.place.region;
    if seen.params.get("ActorFeed").map(String::as_str) != Some("on") {
        let (_, why) = default_for(&trails(config).await, region);
        let why = why.strip_prefix("actor feed off: ").unwrap_or(&why);
        return vec![check(Level::Warn, format!("off: {why}"))];
    }
    let Some(rule) = seen.output("ActorFeedRuleName") else {
        return vec![check(
            Level::Fail,
            "on, but the stack has no ActorFeedRuleName output: run `sgwatch install` again"
                .to_owned(),
        )];
    };
    let events = crate::aws::eventbridge(config);
    let described = match events.describe_rule().name(rule).send().await {
        Ok(d) => d,
        Err(e) => {
            return vec![check(
                Level::Fail,
                format!("cannot read rule {rule}: {}", error_text(&e)),
            )]
        }
    };
    if described.state() != Some(&aws_sdk_eventbridge::types::RuleState::Enabled) {
        return vec![check(
            Level::Fail,
            format!("rule {rule} is disabled: `aws events enable-rule --name {rule}`"),
        )];
    }
    let function = seen.output("FunctionArn").unwrap_or_default();
    let targets = events.list_targets_by_rule().rule(rule).send().await;
    let targeted = targets
        .as_ref()
        .map(|t| t.targets().iter().any(|t| t.arn() == function))
        .unwrap_or(false);
    if !targeted {
        return vec![check(
            Level::Fail,
            format!("rule {rule} does not target the function: run `sgwatch install` again"),
        )];
    }
    let (logging, trail) = default_for(&trails(config).await, region);
    if logging == OnOff::Off {
        let why = trail.strip_prefix("actor feed off: ").unwrap_or(&trail);
        let why = why.split(';').next().unwrap_or(why);
        return vec![check(
            Level::Warn,
            format!("rule {rule} is on, but CloudTrail sends it nothing: {why}; create a trail that logs management events here (or start its logging)"),
        )];
    }
    vec![check(
        Level::Ok,
        format!(
            "rule {rule} sends CloudTrail's security-group calls to the function ({})",
            trail.trim_start_matches("actor feed on: ")
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(home: &str, multi: bool, logging: bool) -> Trail {
        Trail {
            name: "org-trail".into(),
            home_region: home.into(),
            multi_region: multi,
            logging,
        }
    }

    #[test]
    fn on_only_when_a_logging_trail_covers_the_region() {
        let region = "eu-west-1";
        assert_eq!(default_for(&Ok(vec![]), region).0, OnOff::Off);
        assert!(default_for(&Ok(vec![]), region)
            .1
            .contains("no CloudTrail trail"));
        assert_eq!(
            default_for(&Ok(vec![trail("us-east-1", true, true)]), region).0,
            OnOff::On
        );
        assert_eq!(
            default_for(&Ok(vec![trail("us-east-1", false, true)]), region).0,
            OnOff::Off
        );
        let (on, why) = default_for(&Ok(vec![trail(region, false, false)]), region);
        assert_eq!(on, OnOff::Off);
        assert!(why.contains("is logging"), "{why}");
        let (on, why) = default_for(&Err("AccessDenied".into()), region);
        assert_eq!(on, OnOff::Off);
        assert!(why.contains("AccessDenied"), "{why}");
    }
}
