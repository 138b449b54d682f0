//! Early warning: a call that itself opens a watched group to the world at the configured
//! severity is told to the owners at once, from the actor feed, seconds after the call; the AWS
//! Config notification that follows minutes later tells each of them only what is new.
//!
//! Pure: the decision for the call is the ordinary [`decide`] over an analysis made from the
//! call's requested rules and the group's tags read at that moment, so every routing rule (the
//! opt-in, the owners, the fallback, `SGWATCH_ACCOUNTS`) holds for the warning too.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::decide::{decide, Analysis, Decision, Subject};
use crate::core::feed::ApiCall;
use crate::core::message::ChangeType;
use crate::core::rules::Action;
use crate::core::settings::{Policy, SECURITY_GROUP};
use crate::core::severity::{classify, overall, Severity};
use crate::core::who;
use crate::feed_store::Warning;

/// A group as `DescribeSecurityGroups` shows it when the call arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupNow {
    pub name: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// The rules `call` asks for on `group_id` that are at or above `level`; empty for a failed
/// call (it changed nothing).
pub fn alarming(call: &ApiCall, level: Severity) -> Vec<crate::core::rules::Change> {
    if call.failed() {
        return Vec::new();
    }
    call.requested
        .iter()
        .filter(|c| c.action == Action::Added && classify(c) >= level)
        .cloned()
        .collect()
}

/// What the handler would decide for an early warning about `call` on `group_id`, when the call
/// opens something at or above `level`.
pub fn decide_warning(
    call: &ApiCall,
    group_id: &str,
    group: &GroupNow,
    level: Severity,
    policy: &Policy,
) -> Option<Decision> {
    let changes = alarming(call, level);
    if changes.is_empty() {
        return None;
    }
    let analysis = Analysis {
        subject: Subject {
            resource_type: SECURITY_GROUP.to_owned(),
            resource_id: group_id.to_owned(),
            name: group.name.clone(),
            account: call.account.clone(),
            account_name: None,
            region: call.region.clone(),
            change_type: ChangeType::Update,
            capture_time: Some(call.event_time.clone()),
            state_id: None,
            status: None,
        },
        severity: overall(&changes),
        changes,
        properties: Vec::new(),
        relationship_only: false,
        tags: group.tags.clone(),
        previous_tags: group.tags.clone(),
        test: false,
        known_rules: Vec::new(),
        links: Vec::new(),
        reverted: Vec::new(),
        exposure: None,
    };
    Some(decide(analysis, policy))
}

/// How old a call may be and still be warned about. The warning says the call was made seconds
/// ago; one delivered later than this (a replayed or long-delayed event) would mislead, and AWS
/// Config's notification, which follows every change, tells it instead.
pub const WARNING_MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// True when `call` was made more than [`WARNING_MAX_AGE`] before `now`, or when its time cannot
/// be read.
pub fn too_late(call: &ApiCall, now: SystemTime) -> bool {
    let now = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    call.time_secs()
        .is_none_or(|at| now - at > WARNING_MAX_AGE.as_secs() as i64)
}

/// The notice on top of an early warning.
pub fn warning_notice(call: &ApiCall) -> String {
    format!(
        "Early warning: CloudTrail reported this {} call seconds ago. AWS Config's record of the \
         change follows within minutes; sgwatch then emails you only what this message did not say.",
        call.event_name
    )
}

/// The recipients of a Config notification who get one version of its email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub recipients: Vec<String>,
    /// The decision to render for them: the whole change, or what the warnings did not tell.
    pub decision: Decision,
    /// The rules an early warning told them already, for a line in the email.
    pub told: Vec<String>,
}

/// The warnings that told the change `d` describes, each with the rules it told that still
/// stand. A warning counts only when its call is one of the calls tied to this change
/// ([`who::tied`]): one about an earlier call told an earlier change, even of the same rule (a
/// rule opened, revoked and opened again). A rule a later revoke on the group took back was not
/// what this change added, whatever the warning said.
pub fn standing(d: &Decision, warnings: &[Warning], calls: &[ApiCall]) -> Vec<Warning> {
    let group = &d.analysis.subject.resource_id;
    let tied: BTreeSet<&str> = who::tied(calls, &d.analysis)
        .into_iter()
        .map(|c| c.event_id.as_str())
        .collect();
    let revoked_after = |rule: &str, warned: &Warning| {
        let at = calls
            .iter()
            .find(|c| c.event_id == warned.event_id)
            .and_then(ApiCall::time_secs);
        calls.iter().any(|c| {
            c.event_id != warned.event_id
                && !c.failed()
                && c.event_name.starts_with("Revoke")
                && c.group_ids.contains(group)
                && c.rules.iter().any(|r| r == rule)
                // Same second or unknown: taken as after, so the owners are told again.
                && match (c.time_secs(), at) {
                    (Some(revoked), Some(warned)) => revoked >= warned,
                    _ => true,
                }
        })
    };
    warnings
        .iter()
        .filter(|w| tied.contains(w.event_id.as_str()))
        .map(|w| {
            let mut w = w.clone();
            let rules = std::mem::take(&mut w.rules);
            w.rules = rules
                .into_iter()
                .filter(|rule| !revoked_after(rule, &w))
                .collect();
            w
        })
        .collect()
}

/// Splits the recipients of `d` by what early warnings told them: those told nothing get the
/// whole change; those told some of its added rules get the rest, and nothing at all when the
/// rest is empty (no other rule, property or note). Only the warnings that still stand for this
/// change count ([`standing`]); `calls` are the feed's calls on the group around it.
pub fn subtract(d: &Decision, warnings: &[Warning], calls: &[ApiCall]) -> Vec<Part> {
    let warnings = standing(d, warnings, calls);
    let mut by_told: BTreeMap<BTreeSet<String>, Vec<String>> = BTreeMap::new();
    for r in &d.recipients {
        let told: BTreeSet<String> = warnings
            .iter()
            .filter(|w| w.recipients.iter().any(|x| x.eq_ignore_ascii_case(r)))
            .flat_map(|w| w.rules.iter().cloned())
            .collect();
        by_told.entry(told).or_default().push(r.clone());
    }
    let mut parts = Vec::new();
    for (told, recipients) in by_told {
        let mut decision = d.clone();
        decision.recipients = recipients.clone();
        let before = decision.analysis.changes.len();
        decision
            .analysis
            .changes
            .retain(|c| !(c.action == Action::Added && told.contains(&c.rule.to_string())));
        let told_here = before - decision.analysis.changes.len();
        if told_here == 0 {
            parts.push(Part {
                recipients,
                decision,
                told: Vec::new(),
            });
            continue;
        }
        let a = &decision.analysis;
        if a.changes.is_empty() && a.properties.is_empty() && decision.notes.is_empty() {
            continue;
        }
        decision.analysis.severity = if decision.analysis.changes.is_empty() {
            Severity::Info
        } else {
            overall(&decision.analysis.changes)
        };
        let told = d
            .analysis
            .changes
            .iter()
            .filter(|c| c.action == Action::Added && told.contains(&c.rule.to_string()))
            .map(|c| format!("+{}", c.rule))
            .collect();
        parts.push(Part {
            recipients,
            decision,
            told,
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::analyze;
    use crate::core::feed::parse_event;
    use crate::core::message::{parse_message, ConfigMessage};
    use serde_json::Value;

    fn read(path: &str) -> Value {
        let path = format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn owners() -> GroupNow {
        GroupNow {
            name: Some("shared-http".into()),
            tags: BTreeMap::from([
                ("NotifyOnChange".into(), "Yes".into()),
                ("OwnerDL".into(), "platform-team@example.com".into()),
            ]),
        }
    }

    fn rdp_decision() -> Decision {
        let ConfigMessage::ItemChange(c) = parse_message(&read("rdp-opened.json")).unwrap() else {
            panic!()
        };
        decide(analyze(&c).unwrap(), &Policy::default())
    }

    #[test]
    fn rdp_from_the_world_warns_the_owners_at_critical() {
        let call = parse_event(&read("cloudtrail/authorize-ingress-iam-user.json")).unwrap();
        let d = decide_warning(
            &call,
            "sg-0123456789abcdef0",
            &owners(),
            Severity::Critical,
            &Policy::default(),
        )
        .unwrap();
        assert!(d.notify);
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert_eq!(d.analysis.severity, Severity::Critical);
        // Untagged: no warning, as no email.
        let d = decide_warning(
            &call,
            "sg-0123456789abcdef0",
            &GroupNow::default(),
            Severity::Critical,
            &Policy::default(),
        )
        .unwrap();
        assert!(!d.notify);
    }

    #[test]
    fn below_the_level_or_failed_there_is_no_warning() {
        let mut call = parse_event(&read("cloudtrail/authorize-ingress-iam-user.json")).unwrap();
        let g = owners();
        call.requested[0].rule.from_port = Some(3306);
        call.requested[0].rule.to_port = Some(3306);
        let p = Policy::default();
        assert!(decide_warning(&call, "sg-1", &g, Severity::Critical, &p).is_none());
        assert!(decide_warning(&call, "sg-1", &g, Severity::High, &p).is_some());
        let failed = parse_event(&read("cloudtrail/authorize-ingress-failed.json")).unwrap();
        assert!(decide_warning(&failed, "sg-1", &g, Severity::High, &p).is_none());
    }

    #[test]
    fn a_call_opening_half_the_internet_warns_like_one_opening_all_of_it() {
        let mut call = parse_event(&read("cloudtrail/authorize-ingress-iam-user.json")).unwrap();
        call.requested[0].rule.source = crate::core::rules::Source::parse_cidr("0.0.0.0/1");
        let d = decide_warning(
            &call,
            "sg-0123456789abcdef0",
            &owners(),
            Severity::Critical,
            &Policy::default(),
        )
        .expect("0.0.0.0/1 on RDP is the world: a warning");
        assert!(d.notify);
        assert_eq!(d.analysis.severity, Severity::Critical);
    }

    /// The call that opened RDP (09:13:58, captured by Config at 09:14:07) and the warning that
    /// told the owners of it.
    fn rdp_call_and_warning() -> (ApiCall, Warning) {
        let call = parse_event(&read("cloudtrail/authorize-ingress-iam-user.json")).unwrap();
        let warning = Warning {
            event_id: call.event_id.clone(),
            event_time: call.event_time.clone(),
            rules: vec!["ingress tcp/3389 from 0.0.0.0/0".into()],
            recipients: vec!["Platform-Team@example.com".into()],
        };
        (call, warning)
    }

    /// `call` made again at `time` with another event id (and, for a revoke, the other name).
    fn again(call: &ApiCall, id: &str, name: &str, time: &str) -> ApiCall {
        ApiCall {
            event_id: id.into(),
            event_name: name.into(),
            event_time: time.into(),
            ..call.clone()
        }
    }

    #[test]
    fn what_was_told_is_not_told_again() {
        let d = rdp_decision();
        let (call, warning) = rdp_call_and_warning();
        let calls = std::slice::from_ref(&call);
        assert!(subtract(&d, std::slice::from_ref(&warning), calls).is_empty());
        // Told nothing: the whole change.
        let parts = subtract(&d, &[], calls);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].decision, d);
        // Something new besides: only that, with what was told.
        let mut more = d.clone();
        more.analysis
            .properties
            .push(crate::core::decide::PropertyChange {
                name: "Description".into(),
                previous: Some("a".into()),
                updated: Some("b".into()),
            });
        let parts = subtract(&more, &[warning], calls);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].decision.analysis.changes.is_empty());
        assert_eq!(parts[0].decision.analysis.severity, Severity::Info);
        assert_eq!(parts[0].told, ["+ingress tcp/3389 from 0.0.0.0/0"]);
    }

    #[test]
    fn a_warning_about_a_call_not_tied_to_this_change_tells_nothing_of_it() {
        // Opened (warned) half an hour before, revoked since, and opened again by a call whose own
        // warning did not go out: the reopening is told in full.
        let d = rdp_decision();
        let (call, warning) = rdp_call_and_warning();
        let earlier = again(&call, "e-earlier", &call.event_name, "2026-11-20T08:43:58Z");
        let warning = Warning {
            event_id: earlier.event_id.clone(),
            event_time: earlier.event_time.clone(),
            ..warning
        };
        let revoke = again(
            &call,
            "e-revoke",
            "RevokeSecurityGroupIngress",
            "2026-11-20T08:50:00Z",
        );
        let parts = subtract(&d, &[warning], &[earlier, revoke]);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].decision, d);
        assert!(parts[0].told.is_empty());
    }

    #[test]
    fn a_warning_followed_by_a_revoke_of_its_rule_no_longer_counts() {
        // All within minutes: warned at 09:05, revoked at 09:08, opened again at 09:13:58 (its
        // call never reached the feed).
        let d = rdp_decision();
        let (call, warning) = rdp_call_and_warning();
        let first = again(&call, "e-first", &call.event_name, "2026-11-20T09:05:00Z");
        let warning = Warning {
            event_id: first.event_id.clone(),
            event_time: first.event_time.clone(),
            ..warning
        };
        let revoke = again(
            &call,
            "e-revoke",
            "RevokeSecurityGroupIngress",
            "2026-11-20T09:08:00Z",
        );
        let parts = subtract(&d, std::slice::from_ref(&warning), &[first.clone(), revoke]);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].decision, d);
        // Without the revoke, the warning told it all.
        assert!(subtract(&d, &[warning], &[first]).is_empty());
    }

    #[test]
    fn a_call_more_than_fifteen_minutes_old_is_not_warned_about() {
        let (call, _) = rdp_call_and_warning();
        let at = UNIX_EPOCH + Duration::from_secs(call.time_secs().unwrap() as u64);
        assert!(!too_late(&call, at + Duration::from_secs(14 * 60)));
        assert!(too_late(&call, at + Duration::from_secs(16 * 60)));
        let unreadable = ApiCall {
            event_time: "yesterday".into(),
            ..call
        };
        assert!(too_late(&unreadable, at));
    }
}
