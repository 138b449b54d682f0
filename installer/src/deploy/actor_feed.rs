//! The actor feed: whether the stack gets the EventBridge rule that sends CloudTrail's
//! security-group API calls to the handler (`--actor-feed on|off`, template parameter
//! `ActorFeed`), what it defaults to, and the `status` line about it.
//!
//! CloudTrail puts management events on the default bus only for calls some trail logs
//! ("Events from AWS services delivered via AWS CloudTrail", EventBridge user guide): without a
//! logging trail covering the region whose event selectors take in write management events, the
//! rule would match nothing, so the default is on only when `DescribeTrails`, `GetTrailStatus`
//! and `GetEventSelectors` show one.

use aws_config::SdkConfig;

use crate::aws::error_text;
use crate::deploy::check::{Check, Level};
use crate::deploy::observe::Installed;
use crate::deploy::stack::OnOff;

pub use sgwatch_handler::sight::{logs_management_writes, read_trails, Trail};

/// The default when the flag is not given, and why. `deployed` is the stack's value, kept when
/// the trails cannot be read (a re-install then changes nothing it cannot judge).
pub fn default_for(
    trails: &Result<Vec<Trail>, String>,
    region: &str,
    deployed: Option<OnOff>,
) -> (OnOff, String) {
    let kept = |on: OnOff, why: &str| {
        (
            on,
            format!("actor feed kept {}: {why}; the deployed value stays (pass --actor-feed on|off to choose)", on.as_str()),
        )
    };
    let trails = match trails {
        Ok(t) => t,
        Err(e) => {
            let why = format!("the trails could not be read ({e})");
            return match deployed {
                Some(on) => kept(on, &why),
                None => (
                    OnOff::Off,
                    format!("actor feed off: {why}; pass --actor-feed on if a trail logs management events in {region}"),
                ),
            };
        }
    };
    let covering: Vec<&Trail> = trails.iter().filter(|t| t.covers(region)).collect();
    if let Some(t) = covering
        .iter()
        .find(|t| t.logging == Ok(true) && t.management_writes == Ok(true))
    {
        return (
            OnOff::On,
            format!(
                "actor feed on: trail {} logs management events in {region}",
                t.name
            ),
        );
    }
    if let Some((t, e)) = covering.iter().find_map(|t| t.unreadable().map(|e| (t, e))) {
        let why = format!("trail {} could not be read ({e})", t.name);
        return match deployed {
            Some(on) => kept(on, &why),
            None => (
                OnOff::Off,
                format!("actor feed off: {why}; pass --actor-feed on if it logs management events in {region}"),
            ),
        };
    }
    let lookup = "who changed a group comes from LookupEvents (minutes later)";
    if covering.is_empty() {
        return (
            OnOff::Off,
            format!("actor feed off: no CloudTrail trail in this account covers {region}; {lookup}. Create a trail, or pass --actor-feed on"),
        );
    }
    match covering.iter().find(|t| t.logging == Ok(true)) {
        Some(t) => (
            OnOff::Off,
            format!("actor feed off: trail {} logs no write management events (its event selectors leave them out); {lookup}. Log management events with read/write type All or WriteOnly on it, or pass --actor-feed on", t.name),
        ),
        None => (
            OnOff::Off,
            format!("actor feed off: no trail covering {region} is logging; {lookup}. Start logging, or pass --actor-feed on"),
        ),
    }
}

/// The account's trails that apply to the caller's region (shadow trails included). Only a
/// failed `DescribeTrails` is an error; a failed call about one trail is kept in its [`Trail`].
pub async fn trails(config: &SdkConfig) -> Result<Vec<Trail>, String> {
    read_trails(&crate::aws::cloudtrail(config)).await
}

/// The `status` line of the actor feed: on (its rule exists, is enabled and targets the
/// function), or off and why.
pub async fn check(config: &SdkConfig, installed: &Installed) -> Vec<Check> {
    const NAME: &str = "actor feed";
    let check = |level, detail: String| Check {
        level,
        check: NAME.to_owned(),
        detail,
    };
    let Some(deployed) = &installed.deployed else {
        return Vec::new();
    };
    let region = &installed.place.region;
    if deployed.params.actor_feed != Some(OnOff::On) {
        let (_, why) = default_for(&trails(config).await, region, None);
        let why = why.strip_prefix("actor feed off: ").unwrap_or(&why);
        return vec![check(Level::Warn, format!("off: {why}"))];
    }
    let Some(rule) = &deployed.outputs.actor_feed_rule_name else {
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
    let function = deployed.outputs.function_arn.as_deref().unwrap_or_default();
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
    let (logging, trail) = default_for(&trails(config).await, region, None);
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
    use aws_sdk_cloudtrail::operation::describe_trails::DescribeTrailsOutput;
    use aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput;
    use aws_sdk_cloudtrail::operation::get_trail_status::{
        GetTrailStatusError, GetTrailStatusOutput,
    };
    use aws_sdk_cloudtrail::types::{
        AdvancedEventSelector, AdvancedFieldSelector, EventSelector, ReadWriteType,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn trail(home: &str, multi: bool, logging: bool) -> Trail {
        Trail {
            name: "org-trail".into(),
            home_region: home.into(),
            multi_region: multi,
            logging: Ok(logging),
            management_writes: Ok(true),
        }
    }

    #[test]
    fn on_only_when_a_logging_trail_covers_the_region() {
        let region = "eu-west-1";
        assert_eq!(default_for(&Ok(vec![]), region, None).0, OnOff::Off);
        assert!(default_for(&Ok(vec![]), region, None)
            .1
            .contains("no CloudTrail trail"));
        assert_eq!(
            default_for(&Ok(vec![trail("us-east-1", true, true)]), region, None).0,
            OnOff::On
        );
        assert_eq!(
            default_for(&Ok(vec![trail("us-east-1", false, true)]), region, None).0,
            OnOff::Off
        );
        let (on, why) = default_for(&Ok(vec![trail(region, false, false)]), region, None);
        assert_eq!(on, OnOff::Off);
        assert!(why.contains("is logging"), "{why}");
        let (on, why) = default_for(&Err("AccessDenied".into()), region, None);
        assert_eq!(on, OnOff::Off);
        assert!(why.contains("AccessDenied"), "{why}");
    }

    #[test]
    fn a_trail_that_logs_no_write_management_events_does_not_feed_the_rule() {
        let region = "eu-west-1";
        let mut read_only = trail(region, false, true);
        read_only.management_writes = Ok(false);
        let (on, why) = default_for(&Ok(vec![read_only]), region, None);
        assert_eq!(on, OnOff::Off);
        assert!(why.contains("logs no write management events"), "{why}");
    }

    #[test]
    fn one_unreadable_trail_does_not_turn_the_default_off() {
        let region = "eu-west-1";
        let mut org = trail("us-east-1", true, true);
        org.name = "org-trail".into();
        org.logging = Err("cloudtrail:GetTrailStatus org-trail: AccessDenied".into());
        let mut own = trail(region, false, true);
        own.name = "own-trail".into();
        let (on, why) = default_for(&Ok(vec![org.clone(), own]), region, None);
        assert_eq!(
            (on, why.as_str()),
            (
                OnOff::On,
                "actor feed on: trail own-trail logs management events in eu-west-1"
            )
        );
        // Alone, it is said rather than taken for "not logging".
        let (on, why) = default_for(&Ok(vec![org]), region, None);
        assert_eq!(on, OnOff::Off);
        assert!(
            why.contains("trail org-trail could not be read") && why.contains("AccessDenied"),
            "{why}"
        );
    }

    #[test]
    fn a_reinstall_keeps_the_deployed_value_when_the_trails_cannot_be_read() {
        let region = "eu-west-1";
        let (on, why) = default_for(&Err("Throttling".into()), region, Some(OnOff::On));
        assert_eq!(on, OnOff::On);
        assert!(
            why.starts_with("actor feed kept on: the trails could not be read (Throttling)"),
            "{why}"
        );
        let mut org = trail(region, false, true);
        org.management_writes = Err("AccessDenied".into());
        assert_eq!(
            default_for(&Ok(vec![org]), region, Some(OnOff::Off)).0,
            OnOff::Off
        );
        // What can be read decides, deployed or not.
        assert_eq!(
            default_for(&Ok(vec![]), region, Some(OnOff::On)).0,
            OnOff::Off
        );
    }

    fn field(name: &str, equals: &[&str], not_equals: &[&str]) -> AdvancedFieldSelector {
        AdvancedFieldSelector::builder()
            .field(name)
            .set_equals(Some(equals.iter().map(|s| s.to_string()).collect()))
            .set_not_equals(
                (!not_equals.is_empty())
                    .then(|| not_equals.iter().map(|s| s.to_string()).collect()),
            )
            .build()
            .unwrap()
    }

    fn advanced(fields: Vec<AdvancedFieldSelector>) -> GetEventSelectorsOutput {
        GetEventSelectorsOutput::builder()
            .advanced_event_selectors(
                AdvancedEventSelector::builder()
                    .name("Management events")
                    .set_field_selectors(Some(fields))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn basic(rw: ReadWriteType, management: bool) -> GetEventSelectorsOutput {
        GetEventSelectorsOutput::builder()
            .event_selectors(
                EventSelector::builder()
                    .read_write_type(rw)
                    .include_management_events(management)
                    .build(),
            )
            .build()
    }

    /// Selectors as the GetEventSelectors reference and "Logging management events" show them.
    #[test]
    fn event_selectors_basic_and_advanced_are_read() {
        assert!(logs_management_writes(&basic(ReadWriteType::All, true)));
        assert!(logs_management_writes(&basic(
            ReadWriteType::WriteOnly,
            true
        )));
        assert!(!logs_management_writes(&basic(
            ReadWriteType::ReadOnly,
            true
        )));
        assert!(!logs_management_writes(&basic(ReadWriteType::All, false)));
        let management = || field("eventCategory", &["Management"], &[]);
        assert!(logs_management_writes(&advanced(vec![management()])));
        assert!(logs_management_writes(&advanced(vec![
            management(),
            field("readOnly", &["false"], &[])
        ])));
        assert!(!logs_management_writes(&advanced(vec![
            management(),
            field("readOnly", &["true"], &[])
        ])));
        assert!(!logs_management_writes(&advanced(vec![
            management(),
            field("eventSource", &[], &["ec2.amazonaws.com"])
        ])));
        assert!(logs_management_writes(&advanced(vec![
            management(),
            field("eventSource", &[], &["kms.amazonaws.com"])
        ])));
        // Data events only.
        assert!(!logs_management_writes(&advanced(vec![
            field("eventCategory", &["Data"], &[]),
            field("resources.type", &["AWS::S3::Object"], &[])
        ])));
    }

    #[tokio::test]
    async fn each_trail_is_read_on_its_own() {
        let described = mock!(aws_sdk_cloudtrail::Client::describe_trails).then_output(|| {
            DescribeTrailsOutput::builder()
                .trail_list(
                    aws_sdk_cloudtrail::types::Trail::builder()
                        .name("org-trail")
                        .trail_arn("arn:aws:cloudtrail:us-east-1:999999999999:trail/org-trail")
                        .home_region("us-east-1")
                        .is_multi_region_trail(true)
                        .has_custom_event_selectors(false)
                        .build(),
                )
                .trail_list(
                    aws_sdk_cloudtrail::types::Trail::builder()
                        .name("reads")
                        .trail_arn("arn:aws:cloudtrail:eu-west-1:123456789012:trail/reads")
                        .home_region("eu-west-1")
                        .is_multi_region_trail(false)
                        .has_custom_event_selectors(true)
                        .build(),
                )
                .build()
        });
        let denied = mock!(aws_sdk_cloudtrail::Client::get_trail_status)
            .match_requests(|r| r.name().is_some_and(|n| n.ends_with("org-trail")))
            .then_error(|| {
                GetTrailStatusError::generic(
                    aws_sdk_cloudtrail::error::ErrorMetadata::builder()
                        .code("AccessDeniedException")
                        .message("not authorized")
                        .build(),
                )
            });
        let logging = mock!(aws_sdk_cloudtrail::Client::get_trail_status)
            .then_output(|| GetTrailStatusOutput::builder().is_logging(true).build());
        let selectors = mock!(aws_sdk_cloudtrail::Client::get_event_selectors)
            .then_output(|| basic(ReadWriteType::ReadOnly, true));
        let ct = mock_client!(
            aws_sdk_cloudtrail,
            RuleMode::MatchAny,
            [&described, &denied, &logging, &selectors]
        );
        let trails = read_trails(&ct).await.unwrap();
        assert_eq!(trails.len(), 2);
        assert!(trails[0]
            .logging
            .as_ref()
            .unwrap_err()
            .contains("AccessDeniedException"));
        assert_eq!(trails[0].management_writes, Ok(true));
        assert_eq!(trails[1].logging, Ok(true));
        assert_eq!(trails[1].management_writes, Ok(false));
        assert_eq!(
            selectors.num_calls(),
            1,
            "only the trail with custom selectors"
        );
        let (on, why) = default_for(&Ok(trails), "eu-west-1", None);
        assert_eq!(on, OnOff::Off);
        assert!(why.contains("org-trail could not be read"), "{why}");
    }
}
