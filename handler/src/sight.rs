//! What a region lets sgwatch see: its configuration recorder (does it record security groups,
//! continuously, and is it on?) and its trails (does one log the write management events that
//! security-group calls are?). The hub looks on each spoke's heartbeat, through the account's
//! reader role ([`look`], kept as [`Sight`] in the coverage map); the installer judges the same
//! recorder and trails with these functions in `install`, `status` and `spoke install`.
//!
//! CloudTrail puts management events on the default bus only for calls some trail logs ("Events
//! from AWS services delivered via AWS CloudTrail", EventBridge user guide), so without such a
//! trail no call reaches the actor feed or the hub.

use aws_sdk_cloudtrail::error::DisplayErrorContext;
use aws_sdk_config::types::{ConfigurationRecorder, RecordingFrequency, RecordingStrategyType};

use crate::core::settings::SECURITY_GROUP;
pub use crate::core::spokes::Sight;
use crate::members::Reader;

/// Whether `recorder` records security groups: all supported types (less exclusions), or the
/// type listed.
pub fn records_security_groups(recorder: &ConfigurationRecorder) -> bool {
    let Some(group) = recorder.recording_group() else {
        return false;
    };
    let excluded = group.exclusion_by_resource_types().is_some_and(|x| {
        x.resource_types()
            .iter()
            .any(|t| t.as_str() == SECURITY_GROUP)
    });
    let strategy = group.recording_strategy().and_then(|s| s.use_only());
    match strategy {
        Some(RecordingStrategyType::ExclusionByResourceTypes) => !excluded,
        _ => {
            group.all_supported()
                || group
                    .resource_types()
                    .iter()
                    .any(|t| t.as_str() == SECURITY_GROUP)
        }
    }
}

/// Why security groups are recorded only once a day, if they are: the recorder's
/// `recordingMode` is DAILY with no CONTINUOUS override for the type, or an override sets the
/// type to DAILY. Daily recording reports a change only at the next daily capture, up to 24
/// hours later ("Recording frequency", AWS Config developer guide).
pub fn daily_security_groups(recorder: &ConfigurationRecorder) -> Option<String> {
    let name = recorder.name().unwrap_or("?");
    let mode = recorder.recording_mode()?;
    let override_for_groups = mode.recording_mode_overrides().iter().find(|o| {
        o.resource_types()
            .iter()
            .any(|t| t.as_str() == SECURITY_GROUP)
    });
    match override_for_groups {
        Some(o) if o.recording_frequency() == &RecordingFrequency::Daily => Some(format!(
            "recorder {name} has a recording-mode override{} that records \
             {SECURITY_GROUP} daily",
            o.description()
                .map(|d| format!(" ({d:?})"))
                .unwrap_or_default()
        )),
        Some(_) => None,
        None if mode.recording_frequency() == &RecordingFrequency::Daily => Some(format!(
            "recorder {name} records daily (recordingMode DAILY), {SECURITY_GROUP} included"
        )),
        None => None,
    }
}

/// One trail as `DescribeTrails`, `GetTrailStatus` and `GetEventSelectors` show it. A call that
/// failed for this trail is kept as its reason: one unreadable trail (an organization trail a
/// member account may not inspect, say) does not hide the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trail {
    pub name: String,
    pub home_region: String,
    pub multi_region: bool,
    /// Whether it is logging, or why `GetTrailStatus` could not tell.
    pub logging: Result<bool, String>,
    /// Whether its event selectors log write management events (security-group calls are
    /// those), or why `GetEventSelectors` could not tell.
    pub management_writes: Result<bool, String>,
}

impl Trail {
    /// Whether the trail logs `region`'s events.
    pub fn covers(&self, region: &str) -> bool {
        self.multi_region || self.home_region == region
    }

    /// Why this trail cannot be judged, if it cannot.
    pub fn unreadable(&self) -> Option<&str> {
        match (&self.logging, &self.management_writes) {
            (Err(e), _) => Some(e),
            (Ok(true), Err(e)) => Some(e),
            _ => None,
        }
    }

    /// Whether it puts `region`'s security-group calls on the default bus.
    pub fn feeds(&self, region: &str) -> bool {
        self.covers(region) && self.logging == Ok(true) && self.management_writes == Ok(true)
    }
}

/// Whether a trail's event selectors (`GetEventSelectors`) log the write management events that
/// EC2's security-group calls are. Advanced selectors, when the trail has them, replace the basic
/// ones ("Logging management events", CloudTrail user guide): a selector counts when its
/// `eventCategory` is `Management`, its `readOnly` field (if any) admits `false`, and it does not
/// leave out `ec2.amazonaws.com`. A basic selector counts when it includes management events
/// (the default) with `ReadWriteType` `All` or `WriteOnly`.
pub fn logs_management_writes(
    selectors: &aws_sdk_cloudtrail::operation::get_event_selectors::GetEventSelectorsOutput,
) -> bool {
    use aws_sdk_cloudtrail::types::ReadWriteType;
    const EC2: &str = "ec2.amazonaws.com";
    let advanced = selectors.advanced_event_selectors();
    if !advanced.is_empty() {
        return advanced.iter().any(|a| {
            let field = |name: &'static str| {
                a.field_selectors()
                    .iter()
                    .filter(move |f| f.field().eq_ignore_ascii_case(name))
            };
            let management =
                field("eventCategory").any(|f| f.equals().iter().any(|v| v == "Management"));
            let writes = field("readOnly").all(|f| {
                (f.equals().is_empty() || f.equals().iter().any(|v| v == "false"))
                    && !f.not_equals().iter().any(|v| v == "false")
            });
            let ec2 = field("eventSource").all(|f| {
                (f.equals().is_empty() || f.equals().iter().any(|v| v == EC2))
                    && !f.not_equals().iter().any(|v| v == EC2)
            });
            management && writes && ec2
        });
    }
    selectors.event_selectors().iter().any(|s| {
        s.include_management_events().unwrap_or(true)
            && matches!(
                s.read_write_type(),
                None | Some(ReadWriteType::All | ReadWriteType::WriteOnly)
            )
            && !s
                .exclude_management_event_sources()
                .iter()
                .any(|v| v == EC2)
    })
}

/// The account's trails that apply to the client's region (shadow trails included). Only a
/// failed `DescribeTrails` is an error; a failed call about one trail is kept in its [`Trail`].
pub async fn read_trails(ct: &aws_sdk_cloudtrail::Client) -> Result<Vec<Trail>, String> {
    let described = ct
        .describe_trails()
        .include_shadow_trails(true)
        .send()
        .await
        .map_err(|e| format!("cloudtrail:DescribeTrails: {}", DisplayErrorContext(&e)))?;
    let mut out = Vec::new();
    for t in described.trail_list() {
        let Some(arn) = t.trail_arn().or(t.name()) else {
            continue;
        };
        let logging = ct
            .get_trail_status()
            .name(arn)
            .send()
            .await
            .map(|s| s.is_logging().unwrap_or(false))
            .map_err(|e| {
                format!(
                    "cloudtrail:GetTrailStatus {arn}: {}",
                    DisplayErrorContext(&e)
                )
            });
        // Without custom selectors a trail logs every management event, read and write
        // (DescribeTrails' HasCustomEventSelectors).
        let management_writes = if t.has_custom_event_selectors() == Some(true) {
            ct.get_event_selectors()
                .trail_name(arn)
                .send()
                .await
                .map(|s| logs_management_writes(&s))
                .map_err(|e| {
                    format!(
                        "cloudtrail:GetEventSelectors {arn}: {}",
                        DisplayErrorContext(&e)
                    )
                })
        } else {
            Ok(true)
        };
        out.push(Trail {
            name: t.name().unwrap_or(arn).to_owned(),
            home_region: t.home_region().unwrap_or_default().to_owned(),
            multi_region: t.is_multi_region_trail().unwrap_or(false),
            logging,
            management_writes,
        });
    }
    Ok(out)
}

/// What the recorder of a region shows the hub: nothing amiss, or each reason it hides changes,
/// in [`Sight`]'s order (`spoke install` names the first).
pub fn recorder_sight(recorder: Option<&ConfigurationRecorder>, recording: bool) -> Vec<Sight> {
    let Some(recorder) = recorder else {
        return vec![Sight::NoRecorder];
    };
    let records_groups = records_security_groups(recorder);
    let mut sight = Vec::new();
    if !records_groups {
        sight.push(Sight::GroupsNotRecorded);
    }
    if !recording {
        sight.push(Sight::RecorderOff);
    }
    if records_groups && daily_security_groups(recorder).is_some() {
        sight.push(Sight::NotContinuous);
    }
    sight
}

/// What a region's trails show the hub: nothing amiss when one feeds the bus; else unreadable
/// when a covering trail cannot be judged (an organization trail a member account may not
/// inspect, say: not taken for a missing one), else no trail. Pure.
pub fn trail_sight(trails: &[Trail], region: &str) -> Option<Sight> {
    if trails.iter().any(|t| t.feeds(region)) {
        return None;
    }
    let unreadable = trails
        .iter()
        .any(|t| t.covers(region) && t.unreadable().is_some());
    Some(if unreadable {
        Sight::Unreadable
    } else {
        Sight::NoTrail
    })
}

/// Looks at `region` through `reader`: its recorder and status, and its trails. What cannot be
/// read is [`Sight::Unreadable`], logged with why; a trail that cannot be judged does not count
/// as one that feeds.
pub async fn look(reader: &Reader, account: &str, region: &str) -> Vec<Sight> {
    let mut sight = match recorder(&reader.config).await {
        Ok((found, recording)) => recorder_sight(found.as_ref(), recording),
        Err(e) => {
            tracing::warn!(account, region, error = %e, "the spoke's recorder cannot be read");
            vec![Sight::Unreadable]
        }
    };
    match read_trails(&reader.cloudtrail).await {
        Ok(trails) => {
            let seen = trail_sight(&trails, region);
            if seen == Some(Sight::Unreadable) {
                for t in trails.iter().filter(|t| t.covers(region)) {
                    if let Some(error) = t.unreadable() {
                        tracing::warn!(account, region, trail = %t.name, error, "the spoke's trail cannot be judged");
                    }
                }
            }
            sight.extend(seen);
        }
        Err(e) => {
            tracing::warn!(account, region, error = %e, "the spoke's trails cannot be read");
            sight.push(Sight::Unreadable);
        }
    }
    sight.sort();
    sight.dedup();
    sight
}

/// The region's first recorder and whether it is recording.
async fn recorder(
    config: &aws_sdk_config::Client,
) -> Result<(Option<ConfigurationRecorder>, bool), String> {
    let text = |e: &dyn std::error::Error| DisplayErrorContext(e).to_string();
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .map_err(|e| format!("config:DescribeConfigurationRecorders: {}", text(&e)))?;
    let Some(found) = recorders.configuration_recorders().first().cloned() else {
        return Ok((None, false));
    };
    let Some(name) = found.name() else {
        return Ok((Some(found), false));
    };
    let status = config
        .describe_configuration_recorder_status()
        .configuration_recorder_names(name)
        .send()
        .await
        .map_err(|e| format!("config:DescribeConfigurationRecorderStatus: {}", text(&e)))?;
    let recording = status
        .configuration_recorders_status()
        .first()
        .is_some_and(|s| s.recording());
    Ok((Some(found), recording))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_config::types::{
        RecordingGroup, RecordingMode, RecordingModeOverride, ResourceType,
    };

    fn recorder(group: RecordingGroup, mode: Option<RecordingMode>) -> ConfigurationRecorder {
        ConfigurationRecorder::builder()
            .name("default")
            .recording_group(group)
            .set_recording_mode(mode)
            .build()
    }

    #[test]
    fn a_recorder_hides_changes_when_off_without_groups_or_daily() {
        let all = RecordingGroup::builder().all_supported(true).build();
        let only_vpcs = RecordingGroup::builder()
            .all_supported(false)
            .resource_types(ResourceType::from("AWS::EC2::VPC"))
            .build();
        let daily = RecordingMode::builder()
            .recording_frequency(RecordingFrequency::Daily)
            .build()
            .unwrap();
        let groups_continuous = RecordingMode::builder()
            .recording_frequency(RecordingFrequency::Daily)
            .recording_mode_overrides(
                RecordingModeOverride::builder()
                    .resource_types(ResourceType::from(SECURITY_GROUP))
                    .recording_frequency(RecordingFrequency::Continuous)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert_eq!(recorder_sight(None, false), [Sight::NoRecorder]);
        assert_eq!(recorder_sight(Some(&recorder(all.clone(), None)), true), []);
        assert_eq!(
            recorder_sight(Some(&recorder(all.clone(), None)), false),
            [Sight::RecorderOff]
        );
        assert_eq!(
            recorder_sight(Some(&recorder(only_vpcs, None)), true),
            [Sight::GroupsNotRecorded]
        );
        assert_eq!(
            recorder_sight(Some(&recorder(all.clone(), Some(daily))), true),
            [Sight::NotContinuous]
        );
        assert_eq!(
            recorder_sight(Some(&recorder(all, Some(groups_continuous))), true),
            []
        );
    }

    #[test]
    fn a_trail_feeds_a_region_it_covers_while_logging_management_writes() {
        let trail = |multi: bool, logging: Result<bool, String>| Trail {
            name: "t".into(),
            home_region: "us-east-1".into(),
            multi_region: multi,
            logging,
            management_writes: Ok(true),
        };
        assert!(trail(true, Ok(true)).feeds("eu-west-1"));
        assert!(trail(false, Ok(true)).feeds("us-east-1"));
        assert!(!trail(false, Ok(true)).feeds("eu-west-1"));
        assert!(!trail(true, Ok(false)).feeds("eu-west-1"));
        assert!(!trail(true, Err("denied".into())).feeds("eu-west-1"));
    }

    #[test]
    fn a_trail_that_cannot_be_judged_is_unreadable_not_missing() {
        let trail = |name: &str, home: &str, logging: Result<bool, String>| Trail {
            name: name.into(),
            home_region: home.into(),
            multi_region: false,
            logging,
            management_writes: Ok(true),
        };
        let org = trail("org-trail", "eu-west-1", Err("AccessDenied".into()));
        let here = trail("local", "eu-west-1", Ok(true));
        let elsewhere = trail("far", "us-east-1", Ok(true));
        assert_eq!(
            trail_sight(std::slice::from_ref(&org), "eu-west-1"),
            Some(Sight::Unreadable)
        );
        assert_eq!(trail_sight(&[org, here], "eu-west-1"), None);
        assert_eq!(trail_sight(&[elsewhere], "eu-west-1"), Some(Sight::NoTrail));
        assert_eq!(trail_sight(&[], "eu-west-1"), Some(Sight::NoTrail));
    }
}
