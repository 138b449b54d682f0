//! What the handler would decide and send for an event, as the JSON `sgwatch explain` prints.
//! Offline: no AWS call, so oversized items are not fetched and the actor comes only from
//! CloudTrail API call events given in the same input (a JSON array of events: the calls
//! first, as the actor feed would have recorded them, then the Config notification).

use serde::Serialize;

use crate::core::autorevert::{self, AutoRevert, Mode, Verdict};
use crate::core::quiet::{self, Quiet, Routed};
use crate::core::remedy::Remedy;
use crate::core::trust::{trusted_by, Pattern};
use serde_json::Value;

use crate::core::decide::{analyze, decide, Analysis, Decision, PropertyChange};
use crate::core::feed::ApiCall;
use crate::core::message::{envelopes, ChangeType, ConfigMessage, Oversized};
use crate::core::render::{actor_text, render, Email};
use crate::core::rules::Change;
use crate::core::settings::Policy;
use crate::core::severity::Severity;
use crate::core::who::ActorLookup;
use crate::core::who::{callers, Caller};

/// One entry of the `explain` output.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Explained {
    Decision(Box<ExplainedDecision>),
    Error { error: String },
}

/// The contract of DESIGN.md, section "`explain` output".
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExplainedDecision {
    pub message_type: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    pub change_type: Option<String>,
    /// `None` (JSON `null`) when the item must first be read from S3.
    pub notify: Option<bool>,
    pub reason: String,
    pub recipients: Vec<String>,
    /// The chat and webhook destinations (configured names) it is posted to besides the email.
    pub destinations: Vec<String>,
    /// What happened to the opt-in or the owners, as the email says it.
    pub notes: Vec<String>,
    pub severity: Option<Severity>,
    pub changes: Vec<Change>,
    pub properties: Vec<PropertyChange>,
    pub subject: Option<String>,
    pub text: Option<String>,
    /// Who made the change, as the email's "Changed by" line says it (`null` when not emailed).
    pub actor: Option<String>,
    /// The callers the actor feed names, each with the calls that made the change.
    pub callers: Vec<Caller>,
    /// For each rule added open to the internet, the command that removes it and nothing else.
    pub remedies: Vec<Remedy>,
    /// What auto-revert would do, when it is set (`--auto-revert shadow|on`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_revert: Option<ExplainedAutoRevert>,
    /// Where the email would go (`now`, `digest` or `held`) and why, for a change that notifies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Routed>,
    /// Each rule the change opens to the internet or closes, under the identity Security Hub's
    /// finding and PagerDuty's incident carry (see [`crate::core::finding`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exposed: Vec<ExplainedExposure>,
}

/// A rule a change opens to the internet or closes, as security teams' tools know it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedExposure {
    /// `opened` or `closed`.
    pub action: &'static str,
    /// The Security Hub finding's `Id` and PagerDuty's `dedup_key`.
    pub id: String,
    /// As the email writes it: `ingress tcp/3389 from 0.0.0.0/0`.
    pub rule: String,
    /// The rule's own severity: what the finding says and what `--page-at` compares.
    pub severity: Severity,
}

/// The rules `d` opens to the internet, then those it closes.
fn exposures(d: &Decision) -> Vec<ExplainedExposure> {
    let as_explained = |action, e: crate::core::finding::Exposed| ExplainedExposure {
        action,
        rule: e.rule.describe(),
        id: e.id,
        severity: e.severity,
    };
    let opened = crate::core::finding::opened(d).into_iter();
    let closed = crate::core::finding::closed(d).into_iter();
    opened
        .map(|e| as_explained("opened", e))
        .chain(closed.map(|e| as_explained("closed", e)))
        .collect()
}

/// What auto-revert would do with a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedAutoRevert {
    /// `shadow` or `on`.
    pub mode: String,
    /// The lowest severity it acts on.
    pub at: Severity,
    /// `revert` (on), `would revert` (shadow), `spared` or `nothing`.
    pub action: String,
    /// The rules it acts on or spares, as `ingress tcp/3389 from 0.0.0.0/0`.
    pub rules: Vec<String>,
    /// Why they are spared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// What acts on alerts, for `explain`: auto-revert and the principals it trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acting {
    pub auto_revert: AutoRevert,
    pub trusted: Vec<Pattern>,
    /// The noise controls: where each change would go.
    pub quiet: Quiet,
    /// The time quiet periods are judged at (epoch seconds); without it, no route is shown.
    pub now: Option<u64>,
}

/// The actor line `explain` renders, since it looks nothing up.
pub const OFFLINE_ACTOR: &str = "not looked up by sgwatch explain";

/// Explains every notification found in `event`: one event, or a JSON array of events.
pub fn explain(event: &Value, policy: &Policy) -> Vec<Explained> {
    explain_acting(event, policy, &Acting::default())
}

/// [`explain`], saying what auto-revert would do with each change. The actor is known only from
/// the API calls the input holds: without them it is unknown, and so never trusted.
pub fn explain_acting(event: &Value, policy: &Policy, acting: &Acting) -> Vec<Explained> {
    let found: Vec<_> = match event.as_array() {
        Some(events) => events.iter().flat_map(envelopes).collect(),
        None => envelopes(event),
    };
    let calls: Vec<ApiCall> = found
        .iter()
        .filter_map(|e| match &e.message {
            Ok(ConfigMessage::ApiCall(call)) => Some(ApiCall::clone(call)),
            _ => None,
        })
        .collect();
    found
        .into_iter()
        .map(|envelope| match envelope.message {
            Err(e) => Explained::Error {
                error: e.to_string(),
            },
            Ok(message) => explain_message(&message, policy, &calls, acting),
        })
        .collect()
}

/// A decision as `explain` prints it; the signed webhook posts the same object, with the email the
/// handler rendered (its actor looked up).
pub fn explained(message_type: &str, d: &Decision, email: Option<&Email>) -> ExplainedDecision {
    let s = &d.analysis.subject;
    ExplainedDecision {
        message_type: message_type.to_owned(),
        resource_type: Some(s.resource_type.clone()),
        resource_id: Some(s.resource_id.clone()),
        account: Some(s.account.clone()),
        region: Some(s.region.clone()),
        change_type: Some(s.change_type.to_string()),
        notify: Some(d.notify),
        reason: d.reason(),
        recipients: d.recipients.clone(),
        destinations: d.destinations.clone(),
        notes: d.notes.clone(),
        severity: Some(d.analysis.severity),
        changes: d.analysis.changes.clone(),
        properties: d.analysis.properties.clone(),
        subject: email.map(|e| e.subject.clone()),
        text: email.map(|e| e.text.clone()),
        remedies: crate::core::render::remedies(d),
        exposed: exposures(d),
        ..Default::default()
    }
}

/// One notification or API call explained.
fn explain_message(
    message: &ConfigMessage,
    policy: &Policy,
    calls: &[ApiCall],
    acting: &Acting,
) -> Explained {
    let message_type = message.message_type();
    match message {
        ConfigMessage::ApiCall(call) => explain_api_call(message_type, call),
        ConfigMessage::ItemChange(change) => match analyze(change) {
            Err(e) => Explained::Error {
                error: e.to_string(),
            },
            Ok(analysis) => explain_analysis(message_type, analysis, policy, calls, acting),
        },
        ConfigMessage::Oversized(o) => explain_oversized(message_type, o),
        ConfigMessage::Heartbeat(beat) => Explained::Decision(Box::new(ExplainedDecision {
            message_type: message_type.to_owned(),
            account: Some(beat.account.clone()),
            region: Some(beat.region.clone()),
            notify: Some(false),
            reason: format!(
                "a spoke's heartbeat from {}/{}: the hub records it in its coverage map",
                beat.account, beat.region
            ),
            ..Default::default()
        })),
        ConfigMessage::Wake(w) => Explained::Decision(Box::new(ExplainedDecision {
            message_type: message_type.to_owned(),
            resource_id: Some(w.group.clone()),
            account: Some(w.account.clone()),
            region: Some(w.region.clone()),
            notify: Some(false),
            reason: "the end of the group's coalescing window: each recipient is sent one email of the changes made in it"
                .to_owned(),
            ..Default::default()
        })),
        ConfigMessage::DigestDue(_) => Explained::Decision(Box::new(ExplainedDecision {
            message_type: message_type.to_owned(),
            notify: Some(false),
            reason: "the daily schedule: each recipient is sent the digest of the changes held for them and due"
                .to_owned(),
            ..Default::default()
        })),
        ConfigMessage::CoverageCheck => Explained::Decision(Box::new(ExplainedDecision {
            message_type: message_type.to_owned(),
            notify: Some(false),
            reason:
                "the hub's hourly look at its coverage map: spokes silent for 3 hours are told \
                     to the fallback recipient"
                    .to_owned(),
            ..Default::default()
        })),
        ConfigMessage::Other { message_type } => Explained::Decision(Box::new(ExplainedDecision {
            message_type: message_type.clone(),
            notify: Some(false),
            reason: format!(
                "message type {message_type} is not a configuration item change; ignored"
            ),
            ..Default::default()
        })),
    }
}

/// A CloudTrail API call: recorded for the Config notification that follows, and an early
/// warning when it opens the group to the world at critical.
fn explain_api_call(message_type: &str, call: &ApiCall) -> Explained {
    let alarming = crate::early::alarming(call, Severity::Critical);
    let mut reason = format!(
        "a CloudTrail API call: {} by {}{}; the actor feed records it for the Config notification that follows",
        call.event_name,
        call.caller(),
        if call.failed() { " (failed)" } else { "" }
    );
    if !alarming.is_empty() {
        reason.push_str("; it opens the group to the world at critical: with SGWATCH_EARLY_WARNING on, the owners its tags name are warned at once");
    }
    Explained::Decision(Box::new(ExplainedDecision {
        message_type: message_type.to_owned(),
        resource_type: Some(crate::core::settings::SECURITY_GROUP.to_owned()),
        resource_id: call.group_ids.first().cloned(),
        account: Some(call.account.clone()),
        region: Some(call.region.clone()),
        change_type: Some(call.event_name.clone()),
        // Whether the warning goes out depends on the group's tags, read from EC2 then.
        notify: if alarming.is_empty() {
            Some(false)
        } else {
            None
        },
        reason,
        severity: (!alarming.is_empty()).then(|| crate::core::severity::overall(&alarming)),
        changes: alarming,
        ..Default::default()
    }))
}

/// A configuration item change decided, with the email it would send and the callers the
/// given API calls name.
fn explain_analysis(
    message_type: &str,
    analysis: Analysis,
    policy: &Policy,
    calls: &[ApiCall],
    acting: &Acting,
) -> Explained {
    let d = decide(analysis, policy);
    let found = callers(calls, &d.analysis);
    let actor = if found.is_empty() {
        ActorLookup::Unknown(OFFLINE_ACTOR.to_owned())
    } else {
        ActorLookup::Feed(found.clone())
    };
    let route = acting.now.filter(|_| d.notify).map(|now| {
        let deciding = [policy.notify_tag.as_str(), policy.owner_tag.as_str()];
        let change = quiet::Change {
            severity: d.analysis.severity,
            tags: &d.analysis.tags,
            tags_before: &d.analysis.previous_tags,
            deciding_tags: &deciding,
            actor: &actor,
        };
        quiet::route(&acting.quiet, &acting.trusted, &change, now)
    });
    let mut d = d;
    if let Some(r) = &route {
        d.notes.extend(r.notes.iter().cloned());
    }
    let email = d.notify.then(|| render(&d, &actor));
    let auto = &acting.auto_revert;
    let auto_revert = (d.notify && auto.mode != Mode::Off).then(|| {
        let trusted = trusted_by(&acting.trusted, &actor);
        let names = |rules: &[crate::core::rules::Change]| {
            rules.iter().map(|c| c.rule.to_string()).collect::<Vec<_>>()
        };
        let (action, rules, why) = match autorevert::verdict(&d, auto, trusted) {
            Verdict::Nothing => ("nothing", Vec::new(), None),
            Verdict::Spared { rules, why } => ("spared", names(&rules), Some(why)),
            Verdict::Revert(rules) if auto.mode == Mode::Shadow => {
                ("would revert", names(&rules), None)
            }
            Verdict::Revert(rules) => ("revert", names(&rules), None),
        };
        ExplainedAutoRevert {
            mode: auto.mode.to_string(),
            at: auto.at,
            action: action.to_owned(),
            rules,
            why,
        }
    });
    Explained::Decision(Box::new(ExplainedDecision {
        actor: d.notify.then(|| actor_text(&actor)),
        callers: found,
        auto_revert,
        route,
        ..explained(message_type, &d, email.as_ref())
    }))
}

/// An oversized notification: undecided until the item is read from S3.
fn explain_oversized(message_type: &str, o: &Oversized) -> Explained {
    let s = &o.configuration_item_summary;
    let location = o
        .s3_delivery_summary
        .s3_bucket_location
        .as_deref()
        .unwrap_or("(no location given)");
    Explained::Decision(Box::new(ExplainedDecision {
        message_type: message_type.to_owned(),
        resource_type: Some(s.resource_type.clone()),
        resource_id: Some(s.resource_id.clone()),
        account: Some(s.aws_account_id.clone()),
        region: Some(s.aws_region.clone()),
        change_type: s.change_type.as_ref().map(ChangeType::to_string),
        notify: None,
        reason: format!(
            "the configuration item is too large for SNS; the handler reads it from s3://{location} and decides then"
        ),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn explain_says_what_auto_revert_would_do_and_an_unknown_actor_is_not_trusted() {
        let acting = Acting {
            auto_revert: AutoRevert {
                mode: Mode::Shadow,
                at: Severity::Critical,
            },
            trusted: crate::core::trust::parse("arn:aws:iam::123456789012:user/*").unwrap(),
            ..Acting::default()
        };
        let out = serde_json::to_value(explain_acting(
            &fixture("rdp-opened.json"),
            &Policy::default(),
            &acting,
        ))
        .unwrap();
        assert_eq!(
            out[0]["auto_revert"],
            json!({"mode": "shadow", "at": "critical", "action": "would revert",
                   "rules": ["ingress tcp/3389 from 0.0.0.0/0"]})
        );
        let off =
            serde_json::to_value(explain(&fixture("rdp-opened.json"), &Policy::default())).unwrap();
        assert!(off[0].get("auto_revert").is_none());
    }

    #[test]
    fn explain_names_each_rule_opened_as_the_finding_and_the_incident_will() {
        let out =
            serde_json::to_value(explain(&fixture("rdp-opened.json"), &Policy::default())).unwrap();
        assert_eq!(
            out[0]["exposed"],
            json!([{"action": "opened",
                    "id": "123456789012/us-east-1/sg-0123456789abcdef0/ingress/tcp:3389:3389:0.0.0.0/0",
                    "rule": "ingress tcp/3389 from 0.0.0.0/0", "severity": "critical"}])
        );
        // A change that opens nothing to the internet says nothing of it.
        let out = serde_json::to_value(explain(
            &fixture("owners-replaced.json"),
            &Policy::default(),
        ))
        .unwrap();
        assert!(out[0].get("exposed").is_none(), "{}", out[0]);
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn sns_fixture_explains_as_the_contract_says() {
        let out = serde_json::to_value(explain(
            &fixture("rdp-opened.sns-event.json"),
            &Policy::default(),
        ))
        .unwrap();
        let d = &out[0];
        assert_eq!(out.as_array().unwrap().len(), 1);
        assert_eq!(d["message_type"], "ConfigurationItemChangeNotification");
        assert_eq!(d["resource_type"], "AWS::EC2::SecurityGroup");
        assert_eq!(d["resource_id"], "sg-0123456789abcdef0");
        assert_eq!(d["account"], "123456789012");
        assert_eq!(d["region"], "us-east-1");
        assert_eq!(d["change_type"], "UPDATE");
        assert_eq!(d["notify"], true);
        assert_eq!(d["recipients"], json!(["platform-team@example.com"]));
        assert_eq!(d["destinations"], json!([]));
        assert_eq!(d["severity"], "critical");
        assert_eq!(
            d["changes"],
            json!([{"action": "added", "direction": "ingress", "protocol": "tcp", "from_port": 3389,
                    "to_port": 3389, "source": "0.0.0.0/0", "description": null}])
        );
        assert_eq!(d["properties"], json!([]));
        assert!(d["subject"]
            .as_str()
            .unwrap()
            .starts_with("[sgwatch CRITICAL] sg-0123456789abcdef0"));
        assert!(d["text"].as_str().unwrap().contains(OFFLINE_ACTOR));
    }

    #[test]
    fn calls_given_before_the_notification_name_the_actor() {
        let call = |name: &str| {
            let path = format!(
                "{}/../tests/fixtures/cloudtrail/{name}",
                env!("CARGO_MANIFEST_DIR")
            );
            serde_json::from_str::<Value>(&std::fs::read_to_string(path).unwrap()).unwrap()
        };
        let input = json!([
            call("authorize-ingress-iam-user.json"),
            call("authorize-ingress-failed.json"),
            fixture("rdp-opened.sns-event.json")
        ]);
        let out = serde_json::to_value(explain(&input, &Policy::default())).unwrap();
        assert_eq!(out.as_array().unwrap().len(), 3);
        assert_eq!(out[0]["message_type"], "AWS API Call via CloudTrail");
        assert_eq!(out[0]["resource_id"], "sg-0123456789abcdef0");
        assert_eq!(out[0]["notify"], Value::Null);
        assert_eq!(out[0]["severity"], "critical");
        assert_eq!(out[1]["notify"], false);
        let d = &out[2];
        assert_eq!(
            d["actor"],
            "arn:aws:iam::123456789012:user/dept-b-admin from 203.0.113.7 (AuthorizeSecurityGroupIngress at 09:13:58Z)"
        );
        assert_eq!(
            d["callers"][0]["calls"][0]["event_name"],
            "AuthorizeSecurityGroupIngress"
        );
        assert_eq!(d["callers"].as_array().unwrap().len(), 1);
        assert!(d["text"]
            .as_str()
            .unwrap()
            .contains("Changed by: arn:aws:iam::123456789012:user/dept-b-admin from 203.0.113.7 (AuthorizeSecurityGroupIngress at 09:13:58Z)"));
        // Alone, the notification's actor is not looked up.
        let out = serde_json::to_value(explain(
            &fixture("rdp-opened.sns-event.json"),
            &Policy::default(),
        ))
        .unwrap();
        assert_eq!(
            out[0]["actor"],
            format!("unknown ({OFFLINE_ACTOR})").as_str()
        );
    }

    #[test]
    fn oversized_is_null_notify_and_others_are_ignored() {
        let out =
            serde_json::to_value(explain(&fixture("oversized.json"), &Policy::default())).unwrap();
        assert_eq!(out[0]["notify"], Value::Null);
        assert!(out[0]["reason"]
            .as_str()
            .unwrap()
            .contains("s3://config-bucket-123456789012/"));
        let out = serde_json::to_value(explain(
            &fixture("snapshot-delivery.json"),
            &Policy::default(),
        ))
        .unwrap();
        assert_eq!(out[0]["notify"], false);
        assert_eq!(
            out[0]["message_type"],
            "ConfigurationSnapshotDeliveryCompleted"
        );
    }

    #[test]
    fn all_protocols_have_null_ports() {
        let mut v = fixture("rdp-opened.json");
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"] = json!({"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]});
        let out = serde_json::to_value(explain(&v, &Policy::default())).unwrap();
        let c = &out[0]["changes"][0];
        assert_eq!(
            (
                c["protocol"].clone(),
                c["from_port"].clone(),
                c["to_port"].clone()
            ),
            (json!("all"), Value::Null, Value::Null)
        );
    }

    #[test]
    fn unreadable_records_become_errors() {
        let out =
            serde_json::to_value(explain(&json!({"hello": "world"}), &Policy::default())).unwrap();
        assert!(out[0]["error"]
            .as_str()
            .unwrap()
            .contains("neither an SNS event"));
    }
}
