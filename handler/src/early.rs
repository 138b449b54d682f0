//! Early warning: a call that itself opens a watched group to the world at the configured
//! severity is told to the owners at once, from the actor feed, seconds after the call; the AWS
//! Config notification that follows minutes later tells each of them only what is new.
//!
//! Pure: the decision for the call is the ordinary [`decide`] over an analysis made from the
//! call's requested rules and the group's tags read at that moment, so every routing rule (the
//! opt-in, the owners, the fallback, `SGWATCH_ACCOUNTS`) holds for the warning too.

use std::collections::{BTreeMap, BTreeSet};

use crate::decide::{decide, Analysis, Decision, Subject};
use crate::feed::ApiCall;
use crate::feed_store::Warning;
use crate::rules::Action;
use crate::settings::{Policy, SECURITY_GROUP};
use crate::severity::{classify, overall, Severity};

/// A group as `DescribeSecurityGroups` shows it when the call arrives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupNow {
    pub name: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// The rules `call` asks for on `group_id` that are at or above `level`; empty for a failed
/// call (it changed nothing).
pub fn alarming(call: &ApiCall, level: Severity) -> Vec<crate::rules::Change> {
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
            region: call.region.clone(),
            change_type: "UPDATE".to_owned(),
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
    };
    Some(decide(analysis, policy))
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

/// Splits the recipients of `d` by what early warnings told them: those told nothing get the
/// whole change; those told some of its added rules get the rest, and nothing at all when the
/// rest is empty (no other rule, property or note).
pub fn subtract(d: &Decision, warnings: &[Warning]) -> Vec<Part> {
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
    use crate::decide::analyze;
    use crate::feed::parse_event;
    use crate::message::{parse_message, ConfigMessage};
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
        call.requested[0].rule.source = crate::rules::Source::parse_cidr("0.0.0.0/1");
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

    #[test]
    fn what_was_told_is_not_told_again() {
        let d = rdp_decision();
        let warning = Warning {
            event_id: "e".into(),
            event_time: "2026-11-20T09:13:58Z".into(),
            rules: vec!["ingress tcp/3389 from 0.0.0.0/0".into()],
            recipients: vec!["Platform-Team@example.com".into()],
        };
        assert!(subtract(&d, std::slice::from_ref(&warning)).is_empty());
        // Told nothing: the whole change.
        let parts = subtract(&d, &[]);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].decision, d);
        // Something new besides: only that, with what was told.
        let mut more = d.clone();
        more.analysis
            .properties
            .push(crate::decide::PropertyChange {
                name: "Description".into(),
                previous: Some("a".into()),
                updated: Some("b".into()),
            });
        let parts = subtract(&more, &[warning]);
        assert_eq!(parts.len(), 1);
        assert!(parts[0].decision.analysis.changes.is_empty());
        assert_eq!(parts[0].decision.analysis.severity, Severity::Info);
        assert_eq!(parts[0].told, ["+ingress tcp/3389 from 0.0.0.0/0"]);
    }
}
