//! Who made a change, pure: the callers the actor feed recorded, tied to the change they made
//! ([`callers`]), and what the email says of them ([`ActorLookup`]). The lookups themselves
//! (the actor feed's table, CloudTrail's `LookupEvents`) are at the edge, in
//! [`crate::feed_store`] and [`crate::actor`].

use std::collections::BTreeSet;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::Serialize;

use crate::core::decide::Analysis;
use crate::core::feed::{ApiCall, CALLERS_LOOK_AHEAD_SECS, CALLERS_LOOK_BACK_SECS};
use crate::core::message::ChangeType;

/// Who made the change, from CloudTrail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actor {
    pub arn: Option<String>,
    pub source_ip: Option<String>,
    pub time: Option<String>,
    pub event_name: Option<String>,
    /// CloudTrail's `eventID`: the email links the event in the console.
    pub event_id: Option<String>,
    /// `userIdentity.invokedBy`: the AWS service that made the call on the principal's behalf.
    pub invoked_by: Option<String>,
}

/// The outcome of looking up the actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorLookup {
    /// From the actor feed: every caller of the calls that made the change, with those calls.
    Feed(Vec<Caller>),
    /// From CloudTrail's `LookupEvents`.
    Found(Actor),
    /// Not found or not looked up; the text says why.
    Unknown(String),
}

impl ActorLookup {
    /// CloudTrail's ids of the calls that made the change, where they are known.
    pub fn event_ids(&self) -> Vec<&str> {
        match self {
            ActorLookup::Feed(callers) => callers
                .iter()
                .flat_map(|c| c.calls.iter().map(|call| call.event_id.as_str()))
                .collect(),
            ActorLookup::Found(actor) => actor.event_id.as_deref().into_iter().collect(),
            ActorLookup::Unknown(_) => Vec::new(),
        }
    }
}

/// One caller of the calls that made a change, with those calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    /// The principal ARN (see [`ApiCall::caller`]).
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// `userIdentity.invokedBy`: the AWS service that made the calls on the principal's behalf.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    pub calls: Vec<CallRef>,
}

/// One call of a [`Caller`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRef {
    pub event_name: String,
    pub event_time: String,
    /// CloudTrail's `eventID`: the email links the event in the console.
    pub event_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// The calls that made the change `analysis` describes, grouped by caller (principal and source
/// IP) in the order they called (see [`tied`]). Empty when the feed has none.
pub fn callers(calls: &[ApiCall], analysis: &Analysis) -> Vec<Caller> {
    let mut out: Vec<Caller> = Vec::new();
    for c in tied(calls, analysis) {
        let principal = c.caller();
        let call = CallRef {
            event_name: c.event_name.clone(),
            event_time: c.event_time.clone(),
            event_id: c.event_id.clone(),
            request_id: c.request_id.clone(),
            user_agent: c.user_agent.clone(),
        };
        match out
            .iter_mut()
            .find(|k| k.principal == principal && k.source_ip == c.source_ip)
        {
            Some(k) => k.calls.push(call),
            None => out.push(Caller {
                principal,
                session_issuer: c.session_issuer.clone(),
                session_name: c.session_name.clone(),
                source_ip: c.source_ip.clone(),
                invoked_by: c.invoked_by.clone(),
                calls: vec![call],
            }),
        }
    }
    out
}

/// The calls tied to the change `analysis` describes: the successful calls on the group in the
/// [`CALLERS_LOOK_BACK_SECS`] before the capture time, narrowed to the kinds of call that make such a
/// change when any of those are there; each once, in the order they were made.
pub fn tied<'a>(calls: &'a [ApiCall], analysis: &Analysis) -> Vec<&'a ApiCall> {
    let s = &analysis.subject;
    let capture = s
        .capture_time
        .as_deref()
        .and_then(|t| DateTime::from_str(t, Format::DateTimeWithOffset).ok())
        .map(|t| t.secs());
    let changed: BTreeSet<String> = analysis
        .changes
        .iter()
        .map(|c| c.rule.to_string())
        .collect();
    let mut in_window: Vec<(i64, &ApiCall)> = calls
        .iter()
        .filter(|c| !c.failed() && c.group_ids.contains(&s.resource_id))
        // A rule call whose rules this change neither added nor removed made another change.
        .filter(|c| c.rules.is_empty() || c.rules.iter().any(|r| changed.contains(r)))
        .filter_map(|c| Some((c.time_secs()?, c)))
        .filter(|(t, _)| match capture {
            Some(capture) => {
                *t > capture - CALLERS_LOOK_BACK_SECS && *t <= capture + CALLERS_LOOK_AHEAD_SECS
            }
            None => true,
        })
        .collect();
    in_window.sort_by(|a, b| (a.0, &a.1.event_id).cmp(&(b.0, &b.1.event_id)));
    let kinds = kinds_of(analysis);
    let fitting: Vec<&ApiCall> = in_window
        .iter()
        .map(|(_, c)| *c)
        .filter(|c| kinds.contains(&c.event_name.as_str()))
        .collect();
    let chosen: Vec<&ApiCall> = if fitting.is_empty() {
        in_window.iter().map(|(_, c)| *c).collect()
    } else {
        fitting
    };
    let mut seen = BTreeSet::new();
    chosen
        .into_iter()
        .filter(|c| seen.insert(&c.event_id))
        .collect()
}

/// The calls that make the kind of change `analysis` describes.
fn kinds_of(analysis: &Analysis) -> Vec<&'static str> {
    match analysis.subject.change_type {
        ChangeType::Create => return vec!["CreateSecurityGroup"],
        ChangeType::Delete => return vec!["DeleteSecurityGroup"],
        _ => {}
    }
    let mut kinds = Vec::new();
    if !analysis.changes.is_empty() {
        kinds.extend([
            "AuthorizeSecurityGroupIngress",
            "AuthorizeSecurityGroupEgress",
            "RevokeSecurityGroupIngress",
            "RevokeSecurityGroupEgress",
            "ModifySecurityGroupRules",
        ]);
    }
    for p in &analysis.properties {
        if p.name.starts_with("Tags") {
            kinds.extend(["CreateTags", "DeleteTags"]);
        } else {
            kinds.extend([
                "UpdateSecurityGroupRuleDescriptionsIngress",
                "UpdateSecurityGroupRuleDescriptionsEgress",
                "ModifySecurityGroupRules",
            ]);
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::{analyze, decide};
    use crate::core::feed::parse_event;
    use crate::core::message::{parse_message, ConfigMessage};
    use crate::core::settings::Policy;
    use serde_json::Value;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../tests/fixtures/cloudtrail/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    fn rdp_analysis(capture: &str) -> Analysis {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["configurationItem"]["configurationItemCaptureTime"] = capture.into();
        let ConfigMessage::ItemChange(c) = parse_message(&v).unwrap() else {
            panic!()
        };
        decide(analyze(&c).unwrap(), &Policy::default()).analysis
    }

    #[test]
    fn callers_are_the_successful_calls_before_the_capture_all_named() {
        let user = parse_event(&fixture("authorize-ingress-iam-user.json")).unwrap();
        let mut sso = parse_event(&fixture("authorize-ingress-sso-role.json")).unwrap();
        sso.event_time = "2026-11-20T09:14:02Z".into();
        // Alice's own rules are not this change's: she is not named for it.
        assert!(callers(
            std::slice::from_ref(&sso),
            &rdp_analysis("2026-11-20T09:14:07.512Z")
        )
        .is_empty());
        // With the change's rule among hers (both asked for it), both are named.
        sso.rules.push("ingress tcp/3389 from 0.0.0.0/0".into());
        let failed = parse_event(&fixture("authorize-ingress-failed.json")).unwrap();
        let tags = parse_event(&fixture("create-tags.json")).unwrap();
        let mut old = user.clone();
        old.event_id = "old".into();
        old.event_time = "2026-11-20T08:30:00Z".into();
        let calls = [tags, failed, sso, old, user.clone(), user.clone()];
        let found = callers(&calls, &rdp_analysis("2026-11-20T09:14:07.512Z"));
        let named: Vec<(&str, usize)> = found
            .iter()
            .map(|c| (c.principal.as_str(), c.calls.len()))
            .collect();
        assert_eq!(
            named,
            [
                ("arn:aws:iam::123456789012:user/dept-b-admin", 1),
                ("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0a1b2c3d4e5f6789/alice@corp.example", 1),
            ]
        );
        // A rule change is not a tag call's doing; with only the tag call, it is named anyway.
        let tags = parse_event(&fixture("create-tags.json")).unwrap();
        let found = callers(&[tags], &rdp_analysis("2026-11-20T09:14:07.512Z"));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].calls[0].event_name, "CreateTags");
        // Nothing in the window: nobody.
        assert!(callers(&[user], &rdp_analysis("2026-11-20T11:00:00Z")).is_empty());
    }
}
