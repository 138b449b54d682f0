//! The discovery baseline: when recording starts, AWS Config reports every existing security
//! group as discovered. The handler stays silent about the ones discovered before
//! `SGWATCH_BASELINE_UNTIL` (stack parameter `BaselineUntil`); install sets that time and prints,
//! once, the tagged groups already open to the world on a critical or high port, so the team
//! sees what it starts from instead of a burst of "created" emails.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_ec2::error::SdkError;
use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsError;
use aws_sdk_ec2::types::SecurityGroup;
use aws_smithy_types::date_time::{DateTime, Format};
use serde::Serialize;
use sgwatch_handler::decide::opt_in;
use sgwatch_handler::rules::{Action, Change, RuleSet};
use sgwatch_handler::severity::{self, Severity};

use crate::aws::Place;
use crate::deploy::recorder::Step;

/// How long after recording starts a discovered group still counts as baseline. AWS Config
/// discovers the existing resources of a recorded type asynchronously after the recorder starts
/// (one configuration item per resource, see
/// <https://docs.aws.amazon.com/config/latest/developerguide/config-concepts.html>), and in an
/// account with thousands of groups the `ResourceDiscovered` notifications keep arriving for many
/// minutes. The time is also fixed before the stack is deployed, which itself takes minutes. An
/// hour covers both with room to spare. The cost: a group created within that hour is not
/// announced as new (its discovery is taken for baseline), while every later change to it is
/// reported as usual.
pub const MARGIN: Duration = Duration::from_secs(3600);

/// Why the baseline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("listing security groups in {place}: {}", crate::aws::error_text(.source))]
    Describe {
        place: Place,
        #[source]
        source: Box<SdkError<DescribeSecurityGroupsError>>,
    },
}

/// Whether these Config steps make AWS Config start recording security groups (and so discover
/// every existing one): creating our recorder, extending an adopted one, or starting ours.
pub fn starts_recording(steps: &[Step]) -> bool {
    steps.iter().any(|s| {
        matches!(
            s,
            Step::CreateRecorder | Step::ExtendRecorder { .. } | Step::StartRecorder { .. }
        )
    })
}

/// `BaselineUntil` for recording that starts at `now`: `now` plus [`MARGIN`], in whole seconds,
/// as the stack parameter's pattern wants it (`2026-11-28T10:00:00Z`).
pub fn until(now: SystemTime) -> String {
    let secs = DateTime::from(now + MARGIN).secs();
    DateTime::from_secs(secs)
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

/// A tagged group open to the world on a critical or high port when recording started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposed {
    pub group_id: String,
    pub group_name: String,
    pub severity: Severity,
    /// The world-open rules at that severity, as the email shows them (`ingress tcp/3389 from
    /// 0.0.0.0/0`).
    pub rules: Vec<String>,
}

impl std::fmt::Display for Exposed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({}): {}",
            self.severity.as_str().to_uppercase(),
            self.group_id,
            self.group_name,
            self.rules.join(", ")
        )
    }
}

/// The group, when it is opted in by `notify_tag` (the handler's own rule, [`opt_in`]) and its
/// rules, each rated as if just added (the handler's own severity), reach high or critical.
pub fn exposed(group: &SecurityGroup, notify_tag: &str) -> Option<Exposed> {
    let tags: BTreeMap<String, String> = group
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_owned(),
                t.value().unwrap_or_default().to_owned(),
            ))
        })
        .collect();
    opt_in(&tags, notify_tag).ok()?;
    let mut rules = RuleSet::default();
    // Config's shape, so the rules are read exactly as the handler reads a discovered group.
    rules
        .add_configuration(&sgwatch_synth::ec2::configuration_from_ec2(group))
        .ok()?;
    let rated: Vec<(Severity, String)> = rules
        .rules()
        .map(|rule| {
            let text = rule.to_string();
            let change = Change {
                action: Action::Added,
                rule,
            };
            (severity::classify(&change), text)
        })
        .collect();
    let worst = rated.iter().map(|(s, _)| *s).max()?;
    if worst < Severity::High {
        return None;
    }
    Some(Exposed {
        group_id: group.group_id().unwrap_or_default().to_owned(),
        group_name: group.group_name().unwrap_or_default().to_owned(),
        severity: worst,
        rules: rated
            .into_iter()
            .filter(|(s, _)| *s == worst)
            .map(|(_, r)| r)
            .collect(),
    })
}

/// Every tagged group open to the world on a critical or high port, worst first.
pub async fn read(
    ec2: &aws_sdk_ec2::Client,
    place: &Place,
    notify_tag: &str,
) -> Result<Vec<Exposed>, BaselineError> {
    let mut out = Vec::new();
    let mut pages = ec2.describe_security_groups().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| BaselineError::Describe {
            place: place.clone(),
            source: Box::new(e),
        })?;
        out.extend(
            page.security_groups()
                .iter()
                .filter_map(|g| exposed(g, notify_tag)),
        );
    }
    out.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.group_id.cmp(&b.group_id))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::{IpPermission, IpRange, Tag};

    fn group(tag: Option<&str>, port: i32) -> SecurityGroup {
        group_from(tag, port, "0.0.0.0/0")
    }

    fn group_from(tag: Option<&str>, port: i32, cidr: &str) -> SecurityGroup {
        let mut g = SecurityGroup::builder()
            .group_id("sg-1")
            .group_name("web")
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(port)
                    .to_port(port)
                    .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
                    .build(),
            );
        if let Some(v) = tag {
            g = g.tags(Tag::builder().key("NotifyOnChange").value(v).build());
        }
        g.build()
    }

    #[test]
    fn only_tagged_groups_open_on_critical_or_high_ports_are_baseline() {
        let rdp = exposed(&group(Some("Yes"), 3389), "NotifyOnChange").unwrap();
        assert_eq!(rdp.severity, Severity::Critical);
        assert_eq!(rdp.rules, ["ingress tcp/3389 from 0.0.0.0/0"]);
        let pg = exposed(&group(Some("true"), 5432), "NotifyOnChange").unwrap();
        assert_eq!(pg.severity, Severity::High);
        assert_eq!(exposed(&group(Some("Yes"), 443), "NotifyOnChange"), None);
        assert_eq!(exposed(&group(None, 3389), "NotifyOnChange"), None);
        assert_eq!(exposed(&group(Some("No"), 3389), "NotifyOnChange"), None);
    }

    #[test]
    fn half_of_the_internet_is_listed_like_all_of_it() {
        let half = exposed(
            &group_from(Some("Yes"), 3389, "128.0.0.0/1"),
            "NotifyOnChange",
        )
        .expect("128.0.0.0/1 on RDP is open to the world");
        assert_eq!(half.severity, Severity::Critical);
        assert_eq!(half.rules, ["ingress tcp/3389 from 128.0.0.0/1"]);
        assert_eq!(
            exposed(
                &group_from(Some("Yes"), 3389, "10.0.0.0/8"),
                "NotifyOnChange"
            ),
            None
        );
    }

    #[test]
    fn until_is_whole_seconds_utc_an_hour_on() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_860_000_500);
        assert_eq!(until(now), "2026-11-28T11:00:00Z");
    }

    #[test]
    fn only_steps_that_start_recording_move_the_baseline() {
        assert!(starts_recording(&[
            Step::CreateChannel,
            Step::CreateRecorder
        ]));
        assert!(starts_recording(&[Step::StartRecorder {
            name: "x".into()
        }]));
        assert!(starts_recording(&[Step::ExtendRecorder {
            name: "x".into()
        }]));
        assert!(!starts_recording(&[Step::UpdateRecorder {
            name: "x".into()
        }]));
        assert!(!starts_recording(&[]));
    }
}
