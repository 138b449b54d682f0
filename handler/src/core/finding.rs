//! What security teams' tools are told of a rule open to the internet: one AWS Security Hub
//! finding and one PagerDuty incident per rule, both under the rule's identity
//! (`ACCOUNT/REGION/GROUP/ingress/PROTOCOL:FROM:TO:SOURCE`), so the change that later removes the
//! rule archives the same finding and resolves the same incident, and a retry never opens a
//! second one. Pure: which rules, their identity, their words and PagerDuty's events; the finding
//! is assembled and imported at the edge ([`crate::findings`]).

use serde_json::{json, Value};

use crate::core::decide::{Decision, Subject};
use crate::core::destination::{Destination, Kind};
use crate::core::link::RuleRef;
use crate::core::message::ChangeType;
use crate::core::remedy::{revoke_command, rule_id};
use crate::core::render::{actor_text, console_link, subject};
use crate::core::rules::{Action, Change, Direction};
use crate::core::severity::{classify, Severity};
use crate::core::text::one_line;
use crate::core::who::ActorLookup;

/// A rule a change opened to the internet or closed: ingress from the world (or from a prefix
/// list known to hold it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    /// The finding's `Id` and PagerDuty's `dedup_key`.
    pub id: String,
    pub rule: RuleRef,
    /// The rule's own severity (not the change's, which may hold others).
    pub severity: Severity,
    /// `aws ec2 revoke-security-group-ingress …` that removes just this rule, while it is open.
    pub command: Option<String>,
}

/// The identity of `rule` of the group `subject` is about.
pub fn id(subject: &Subject, rule: &RuleRef) -> String {
    format!(
        "{}/{}/{}/ingress/{}",
        subject.account,
        subject.region,
        subject.resource_id,
        rule.key()
    )
}

fn exposed(d: &Decision, action: Action) -> Vec<Exposed> {
    let a = &d.analysis;
    let s = &a.subject;
    a.changes
        .iter()
        .filter(|c| {
            c.action == action && c.rule.direction == Direction::Ingress && c.rule.is_world()
        })
        .map(|c: &Change| {
            let known = rule_id(c, &a.known_rules);
            let rule = RuleRef::of_change(c, known);
            let command = (action == Action::Added && s.change_type != ChangeType::Delete)
                .then(|| revoke_command(&s.region, &s.resource_id, c, known))
                .flatten();
            let mut severity = classify(c);
            if action == Action::Removed {
                // A rule closed is rated as it was while open, for the record it closes.
                let mut opened = c.clone();
                opened.action = Action::Added;
                severity = classify(&opened);
            }
            Exposed {
                id: id(s, &rule),
                rule,
                severity,
                command,
            }
        })
        .collect()
}

/// The rules the change opened to the internet.
pub fn opened(d: &Decision) -> Vec<Exposed> {
    exposed(d, Action::Added)
}

/// The rules open to the internet the change removed (a deleted group's included).
pub fn closed(d: &Decision) -> Vec<Exposed> {
    exposed(d, Action::Removed)
}

/// `sgwatch verify`'s group: a change to it imports and pages nothing.
pub fn is_verify(d: &Decision) -> bool {
    d.analysis
        .tags
        .contains_key(crate::core::decide::VERIFY_TAG)
}

/// The partition of a region.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The account's own product in Security Hub, where a finding the account itself imports goes:
/// `arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`.
pub fn product_arn(account: &str, region: &str) -> String {
    format!(
        "arn:{}:securityhub:{region}:{account}:product/{account}/default",
        partition(region)
    )
}

/// The group's ARN, the finding's resource.
pub fn group_arn(subject: &Subject) -> String {
    format!(
        "arn:{}:ec2:{}:{}:security-group/{}",
        partition(&subject.region),
        subject.region,
        subject.account,
        subject.resource_id
    )
}

/// `value` on one line, cut to `max` characters (with `…`).
pub fn cut(value: &str, max: usize) -> String {
    let line = one_line(value);
    if line.chars().count() <= max {
        return line;
    }
    let mut out: String = line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `sg-0abc (web-public)`, the group as the findings and pages name it.
pub fn group_label(subject: &Subject) -> String {
    match subject.name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => format!("{} ({})", subject.resource_id, one_line(name)),
        None => subject.resource_id.clone(),
    }
}

/// The finding's and the incident's title: what is open, where.
pub fn title(d: &Decision, e: &Exposed, open: bool) -> String {
    let s = &d.analysis.subject;
    if is_verify(d) {
        return cut(
            &format!("sgwatch verify: a test finding for {}", group_label(s)),
            256,
        );
    }
    let verb = if open {
        "open to the internet"
    } else {
        "closed"
    };
    cut(
        &format!(
            "{} {verb} on {} in {}/{}",
            e.rule.describe(),
            group_label(s),
            s.account,
            s.region
        ),
        256,
    )
}

/// The finding's description: what the rule allows, who added (or removed) it, and why it
/// matters.
pub fn description(d: &Decision, e: &Exposed, actor: &ActorLookup, open: bool) -> String {
    let s = &d.analysis.subject;
    if is_verify(d) {
        return cut(
            &format!(
                "sgwatch verify made a test change to {} in {}/{} ({}): this finding proves that \
                 the handler can import findings here. It is archived from the start.",
                group_label(s),
                s.account,
                s.region,
                e.rule.describe()
            ),
            1024,
        );
    }
    let done = if open { "added" } else { "removed" };
    let by = actor_text(actor);
    cut(
        &format!(
            "Security group {} in account {} ({}) {} {}: it was {done} by {by}. sgwatch rates it {}.",
            group_label(s),
            s.account,
            s.region,
            if open { "now allows" } else { "no longer allows" },
            e.rule.describe(),
            e.severity.as_str().to_ascii_uppercase(),
        ),
        1024,
    )
}

/// PagerDuty's severity for ours.
fn pager_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

/// The Events API v2 `trigger` of the incident for `e`, routed by `routing_key`: one incident
/// per rule (`dedup_key`), whatever the retries.
pub fn trigger(d: &Decision, e: &Exposed, actor: &ActorLookup, routing_key: &str) -> Value {
    let s = &d.analysis.subject;
    let console = console_link(&s.region, &s.resource_id);
    let mut details = json!({
        "rule": e.rule.describe(),
        "group": group_label(s),
        "account": s.account,
        "region": s.region,
        "changed by": cut(&actor_text(actor), 2000),
        "why": cut(&d.reason(), 2000),
        "alert": cut(&subject(d), 300),
    });
    if let Some(command) = &e.command {
        details["remove it"] = json!(command);
    }
    let mut event = json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": e.id,
        "payload": {
            "summary": cut(
                &format!(
                    "[sgwatch {}] {}",
                    e.severity.as_str().to_ascii_uppercase(),
                    title(d, e, true)
                ),
                1024
            ),
            "source": group_arn(s),
            "severity": pager_severity(e.severity),
            "component": s.resource_id,
            "group": format!("{}/{}", s.account, s.region),
            "class": "security group rule open to the internet",
            "custom_details": details,
        },
        "client": "sgwatch",
    });
    if let Some(time) = s.capture_time.as_deref().filter(|t| !t.is_empty()) {
        event["payload"]["timestamp"] = json!(time);
    }
    if let Some(url) = console {
        event["client_url"] = json!(url);
        event["links"] = json!([{"href": url, "text": "The group in the AWS console"}]);
    }
    event
}

/// The Events API v2 `resolve` of the incident for `e`.
pub fn resolve(e: &Exposed, routing_key: &str) -> Value {
    json!({
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": e.id,
    })
}

/// PagerDuty's events for the change, at or above `page_at`: a trigger per rule opened, a resolve
/// per rule closed (each closes an incident only where one is open; resolving none is nothing).
pub fn pager_events(
    d: &Decision,
    actor: &ActorLookup,
    routing_key: &str,
    page_at: Severity,
) -> Vec<Value> {
    if is_verify(d) {
        return Vec::new();
    }
    let opened = opened(d);
    let closed = closed(d);
    let triggers = opened
        .iter()
        .filter(|e| e.severity >= page_at)
        .map(|e| trigger(d, e, actor, routing_key));
    let resolves = closed
        .iter()
        .filter(|e| e.severity >= page_at)
        .map(|e| resolve(e, routing_key));
    triggers.chain(resolves).collect()
}

/// The pagerduty destinations that hear of the rules a change closes: every one configured,
/// whatever the group's tags say now (the incident may have been raised through the fallback
/// destination, or before the tags changed); resolving an incident that is not open is nothing.
pub fn resolving(d: &Decision, destinations: &[Destination], page_at: Severity) -> Vec<String> {
    if is_verify(d) || !closed(d).iter().any(|e| e.severity >= page_at) {
        return Vec::new();
    }
    destinations
        .iter()
        .filter(|x| x.kind == Kind::PagerDuty)
        .map(|x| x.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::{analyze, decide};
    use crate::core::message::{parse_message, ConfigMessage};
    use crate::core::settings::Policy;

    fn decision(fixture: &str) -> Decision {
        let path = format!("{}/../tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let v: Value = serde_json::from_str(&text).unwrap();
        let ConfigMessage::ItemChange(c) = parse_message(&v).unwrap() else {
            panic!("an item change")
        };
        decide(analyze(&c).unwrap(), &Policy::default())
    }

    #[test]
    fn rdp_opened_is_one_rule_keyed_by_what_it_allows() {
        let d = decision("rdp-opened.json");
        let opened = opened(&d);
        assert_eq!(opened.len(), 1, "{opened:?}");
        let e = &opened[0];
        let s = &d.analysis.subject;
        assert_eq!(
            e.id,
            format!(
                "{}/{}/{}/ingress/tcp:3389:3389:0.0.0.0/0",
                s.account, s.region, s.resource_id
            )
        );
        assert_eq!(e.severity, Severity::Critical);
        assert!(e
            .command
            .as_deref()
            .unwrap()
            .contains("revoke-security-group-ingress"));
        assert!(closed(&d).is_empty());
    }

    #[test]
    fn the_trigger_and_the_resolve_share_the_dedup_key() {
        let d = decision("rdp-opened.json");
        let actor = ActorLookup::Unknown("not looked up".into());
        let events = pager_events(&d, &actor, "R0UTINGKEY", Severity::High);
        assert_eq!(events.len(), 1);
        let t = &events[0];
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["routing_key"], "R0UTINGKEY");
        assert_eq!(t["payload"]["severity"], "critical");
        let summary = t["payload"]["summary"].as_str().unwrap();
        assert!(
            summary.starts_with(
                "[sgwatch CRITICAL] ingress tcp/3389 from 0.0.0.0/0 open to the internet"
            ),
            "{summary}"
        );
        let r = resolve(&opened(&d)[0], "R0UTINGKEY");
        assert_eq!(r["dedup_key"], t["dedup_key"]);
        assert_eq!(r["event_action"], "resolve");
        // Below the paging level, nothing is paged.
        assert!(pager_events(&d, &actor, "K", Severity::Critical).len() == 1);
        let mut quiet = d.clone();
        quiet.analysis.changes[0].rule.from_port = Some(49152);
        quiet.analysis.changes[0].rule.to_port = Some(49152);
        let medium = opened(&quiet)[0].severity;
        assert!(medium < Severity::High, "{medium}");
        assert!(pager_events(&quiet, &actor, "K", Severity::High).is_empty());
    }

    #[test]
    fn a_hostile_group_name_stays_on_one_line_and_within_the_limits() {
        let mut d = decision("rdp-opened.json");
        d.analysis.subject.name = Some(format!("web\n\u{202e}evil{}", "x".repeat(3000)));
        let e = &opened(&d)[0];
        let t = title(&d, e, true);
        assert!(t.chars().count() <= 256 && !t.contains('\n') && t.contains("<U+202E>"));
        let actor = ActorLookup::Unknown("x".into());
        assert!(description(&d, e, &actor, true).chars().count() <= 1024);
    }
}
