//! One Lambda invocation: every record of the event is read, decided and, when it should be,
//! emailed. Records are isolated from each other.
//!
//! What may happen to a record, and nothing else:
//! - skipped: not a message we handle (another Config message type, not a Config message), or a
//!   change the policy says not to email;
//! - sent: each destination (owner, fallback notice) emailed once, recorded in the delivery
//!   ledger ([`crate::ledger`]) as it goes, so a retry sends only to the rest;
//! - sent degraded: a change to a watched resource we cannot read goes to the fallback recipient
//!   as "a change we could not read";
//! - parked by us: recipients SES rejects for good with no usable fallback are written to the
//!   failure queue with the reason (retrying cannot help);
//! - failed: anything transient, or unreadable without a fallback, fails the invocation (after
//!   the other records) so Lambda retries it and finally parks it in the failure queue. The error
//!   names each failed record's message id and resource, so a parked event whose payload did not
//!   fit can still be identified.
//!
//! A CloudTrail API call from the actor feed is recorded (one write; a failed write is logged,
//! never an error) and, when it opens a watched group to the world at `SGWATCH_EARLY_WARNING`,
//! told to the owners at once through the same ledger and delivery as a Config notification.
//!
//! The shared clients and the invocation are in [`crate::context`], delivery and parking in
//! [`crate::deliver`].

use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::core::decide::{analyze, decide, Analysis, Decision, PropertyChange};
use crate::core::who::ActorLookup;
use std::time::SystemTime;

use crate::core::autorevert::{self, Verdict};
use crate::core::digest::Line;
use crate::core::exposure::Exposure;
use crate::core::feed::ApiCall;
use crate::core::handover::{self, Marker};
use crate::core::link;
use crate::core::message::{
    envelopes, is_sqs_batch, ChangeType, ConfigMessage, Envelope, ItemChange, Oversized,
    ParseError, StateId, ITEM_CHANGE, OVERSIZED_ITEM_CHANGE,
};
use crate::core::quiet::{self, Route};
use crate::core::remedy::{self, KnownRule};
use crate::core::render::{degraded_email, render, silent_spoke_email};
use crate::core::settings::Settings;
use crate::core::spokes::{self, Heartbeat, Mark, Sight};
use crate::core::trust;
use crate::core::{feed, who};
use crate::dedupe::Dedupe;
use crate::deliver::{
    deliver, email_parts, finish, park_unreadable, post_and_report, DeliverError, Delivered,
    Delivery, Ledger,
};
use crate::feed_store::{Feed, Warning};
use crate::ledger::{Entry, Facts, Key};
use crate::{
    actor, coverage, dedupe, early, feed_store, groups, links, oversized, prefix_lists, sight,
};

use crate::context::Outcome;
pub use crate::context::{FailureQueue, Invocation, Services};
pub use crate::deliver::SEND_MARGIN;

/// What an invocation did, returned to Lambda (and visible in `cargo lambda invoke`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub records: usize,
    pub sent: usize,
    pub skipped: usize,
    /// Written to the failure queue by the handler itself (rejected for good).
    pub parked: usize,
    pub failed: usize,
    /// CloudTrail API calls recorded in the actor feed (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub recorded: usize,
    /// Spokes' heartbeats recorded in the hub's coverage map (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub heartbeats: usize,
    /// Changes held for their recipients' digest instead of emailed now (absent when none).
    #[serde(skip_serializing_if = "is_zero")]
    pub held: usize,
    /// The records of an SQS batch that failed, for the event source mapping to deliver again
    /// (`ReportBatchItemFailures`): the rest of the batch is done and deleted.
    #[serde(rename = "batchItemFailures", skip_serializing_if = "Vec::is_empty")]
    pub batch_item_failures: Vec<BatchItemFailure>,
}

/// One failed record of an SQS batch, by its `messageId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Some records could not be delivered; Lambda should retry the event.
///
/// The message names each failed record (message id, resource, state) and stays short: it is the
/// part of Lambda's failure record that survives when the event itself is too large for it.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {records} notifications could not be delivered and will be retried: {first}")]
pub struct InvocationError {
    pub records: usize,
    pub failed: usize,
    pub first: String,
}

/// Longest failure description kept in the invocation's error.
const ERROR_MAX_CHARS: usize = 2000;

/// Adds one record's outcome to the report.
fn count(report: &mut Report, failures: &mut Vec<String>, outcome: Outcome) {
    match outcome {
        Outcome::Sent => report.sent += 1,
        Outcome::Skipped => report.skipped += 1,
        Outcome::Parked => report.parked += 1,
        Outcome::Failed(why) => {
            report.failed += 1;
            failures.push(why);
        }
        Outcome::Heartbeat => report.heartbeats += 1,
        Outcome::Held => report.held += 1,
        Outcome::Feed { recorded, warning } => {
            if recorded {
                report.recorded += 1;
            }
            match warning {
                Some(w) => count(report, failures, *w),
                None if !recorded => report.skipped += 1,
                None => {}
            }
        }
    }
}

/// Handles one Lambda event outside Lambda: no deadline, a fresh owner token.
pub async fn handle(
    event: &Value,
    settings: &Settings,
    services: &Services,
) -> Result<Report, InvocationError> {
    handle_invocation(event, &Invocation::local(), settings, services).await
}

/// Handles one Lambda event.
pub async fn handle_invocation(
    event: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Result<Report, InvocationError> {
    let mut report = Report::default();
    let mut failures: Vec<String> = Vec::new();
    let originals = replayable(event);
    // An SQS batch reports its failed records one by one; a record without an id cannot be
    // reported so, and fails the whole batch instead.
    let mut unreported = false;
    for (i, envelope) in envelopes(event).into_iter().enumerate() {
        report.records += 1;
        let original = originals.get(i).cloned().unwrap_or_else(|| event.clone());
        let id = envelope.message_id.clone();
        let outcome = if invocation.ensure(SEND_MARGIN).is_err() {
            let message_id = envelope.message_id.as_deref().unwrap_or("-");
            let why = format!("{message_id}: not started, the invocation's deadline is near");
            warn!(message_id, "{why}");
            Outcome::Failed(why)
        } else {
            process(envelope, &original, invocation, settings, services).await
        };
        let failed_before = report.failed;
        count(&mut report, &mut failures, outcome);
        if report.failed > failed_before {
            match id {
                Some(item_identifier) => report
                    .batch_item_failures
                    .push(BatchItemFailure { item_identifier }),
                None => unreported = true,
            }
        }
    }
    if failures.is_empty() || (is_sqs_batch(event) && !unreported) {
        if !failures.is_empty() {
            warn!(failed = report.failed, first = %failures.join("; "), "records of the batch failed; the queue delivers them again");
        }
        return Ok(report);
    }
    let mut first = failures.join("; ");
    if first.chars().count() > ERROR_MAX_CHARS {
        first = first.chars().take(ERROR_MAX_CHARS).collect::<String>() + "…";
    }
    Err(InvocationError {
        records: report.records,
        failed: report.failed,
        first,
    })
}

/// Each record of `event` as an event of its own, in the order [`envelopes`] reads them: what a
/// parked record carries so that `sgwatch redrive` can give it to the function again.
fn replayable(event: &Value) -> Vec<Value> {
    match event.get("Records").and_then(Value::as_array) {
        Some(records) => records
            .iter()
            .map(|r| serde_json::json!({ "Records": [r] }))
            .collect(),
        None => vec![event.clone()],
    }
}

async fn process(
    envelope: Envelope,
    original: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    let message_id = envelope.message_id.as_deref().unwrap_or("-");
    // In a hub, what a record lacks is read in the account and region it came from.
    let member;
    let services = match envelope.message.as_ref().ok().and_then(origin) {
        Some((account, region))
            if services.members.is_some() && settings.policy.accounts.serves(account) =>
        {
            member = services.reading(account, region);
            &member
        }
        _ => services,
    };
    let (change, note) = match envelope.message {
        Err(e) => {
            let excerpt = envelope.excerpt.as_deref().unwrap_or_default();
            return unparsed(
                message_id, e, excerpt, original, invocation, settings, services,
            )
            .await;
        }
        Ok(ConfigMessage::Other { message_type }) => {
            info!(
                message_id,
                message_type, "ignored: not a configuration item change"
            );
            return Outcome::Skipped;
        }
        Ok(ConfigMessage::ApiCall(call)) => {
            return process_api_call(message_id, &call, original, invocation, settings, services)
                .await
        }
        Ok(ConfigMessage::Heartbeat(beat)) => {
            return heartbeat(message_id, &beat, settings, services).await
        }
        Ok(ConfigMessage::Wake(w)) => {
            return crate::coalesce::wake_up(message_id, &w, invocation, settings, services).await
        }
        Ok(ConfigMessage::DigestDue(due)) => {
            return crate::held::send_digests(message_id, &due, invocation, settings, services)
                .await
        }
        Ok(ConfigMessage::CoverageCheck) => {
            return silent_spokes(message_id, original, invocation, settings, services).await
        }
        Ok(ConfigMessage::ItemChange(change)) => {
            let item = &change.configuration_item;
            let at = item.configuration_item_capture_time.as_deref();
            let (account, region) = (&item.aws_account_id, &item.aws_region);
            if handed_over(message_id, account, region, at, settings, services).await {
                return Outcome::Skipped;
            }
            (change, None)
        }
        Ok(ConfigMessage::Oversized(o)) => {
            let summary = &o.configuration_item_summary;
            let at = summary.configuration_item_capture_time.as_deref();
            let (account, region) = (&summary.aws_account_id, &summary.aws_region);
            if handed_over(message_id, account, region, at, settings, services).await {
                return Outcome::Skipped;
            }
            match read_oversized(message_id, &o, invocation, settings, services).await {
                Ok(read) => read,
                Err(outcome) => return outcome,
            }
        }
    };
    process_change(
        message_id, &change, note, original, invocation, settings, services,
    )
    .await
}

/// Whether a handover leaves this change of `account` × `region` at `at` to the other side: to
/// the hub from the full stack once T has come, to the full stack from the hub before T (or while
/// the handover is pending). See [`crate::core::handover`].
async fn handed_over(
    message_id: &str,
    account: &str,
    region: &str,
    at: Option<&str>,
    settings: &Settings,
    services: &Services,
) -> bool {
    let Some(marker) = handover_marker(account, region, settings, services).await else {
        return false;
    };
    let tells = if settings.hub {
        marker.hub_tells(at)
    } else {
        marker.full_stack_tells(at)
    };
    if !tells {
        info!(
            message_id,
            account,
            region,
            at,
            "skipped: {}",
            marker.left_to(settings.hub)
        );
    }
    !tells
}

/// The handover marker of `account` × `region`, where this function reads one.
async fn handover_marker(
    account: &str,
    region: &str,
    settings: &Settings,
    services: &Services,
) -> Option<Marker> {
    let handovers = services.handovers.as_ref()?;
    let parameter = match &settings.handover_parameter {
        _ if settings.hub => handover::PARAMETER,
        Some(p) => p.as_str(),
        None => return None,
    };
    let ssm = services.ssm_reader().await;
    Some(handovers.marker(&ssm, parameter, account, region).await)
}

/// The group's rules with their ids, when the alert gives a command to remove one (a rule added
/// open to the internet): first as the calls that made them answered (CloudTrail's
/// `responseElements`), else as EC2 lists them now; none when they cannot be read (the command
/// then names the rule by its permission).
async fn known_rules(
    message_id: &str,
    d: &Decision,
    calls: &[ApiCall],
    services: &Services,
) -> Vec<KnownRule> {
    let a = &d.analysis;
    if a.subject.change_type == ChangeType::Delete || !a.changes.iter().any(remedy::wanted) {
        return Vec::new();
    }
    let made: Vec<KnownRule> = calls
        .iter()
        .flat_map(|c| &c.made)
        .filter(|m| m.group_id == a.subject.resource_id)
        .map(|m| m.known())
        .collect();
    let wanted = a.changes.iter().filter(|c| remedy::wanted(c));
    if wanted.clone().all(|c| remedy::rule_id(c, &made).is_some()) {
        return made;
    }
    let ec2 = services.ec2_reader().await;
    match groups::rules(&ec2, &a.subject.resource_id).await {
        Ok(known) => known,
        Err(e) => {
            warn!(message_id, error = %e, "the group's rule ids could not be read: the alert names the rule by its permission");
            Vec::new()
        }
    }
}

/// Leaves out of `a` each rule its owners keep (a Keep link): no alert repeats for it while the
/// exception stands, whatever its severity. When what they keep cannot be read, the change is
/// told whole.
async fn not_kept(message_id: &str, a: &mut Analysis, services: &Services) {
    let Some(table) = &services.dedupe else {
        return;
    };
    if !a.changes.iter().any(remedy::wanted) {
        return;
    }
    let s = &a.subject;
    let place = (
        s.account.as_str(),
        s.region.as_str(),
        s.resource_id.as_str(),
    );
    let now = dedupe::epoch_secs(SystemTime::now());
    match links::kept(table, place, &a.changes, now).await {
        Ok(kept) if !kept.is_empty() => {
            for k in &kept {
                info!(message_id, rule = %k.rule, kept_at = %k.at, until = %link::rfc3339(k.until), "not told: the owners keep this rule");
            }
            a.changes.retain(|c| {
                !(remedy::wanted(c) && kept.iter().any(|k| k.rule == c.rule.to_string()))
            });
            a.rate();
        }
        Ok(_) => {}
        Err(e) => {
            warn!(message_id, error = %e, "the rules the owners keep could not be read: the change is told whole");
        }
    }
}

/// Says, of each rule the change removed through a Revert link, that it was reverted so, and
/// tells a change that is nothing else at INFO.
async fn told_as_reverted(message_id: &str, d: &mut Decision, services: &Services) {
    let Some(table) = &services.dedupe else {
        return;
    };
    let s = &d.analysis.subject;
    let place = (
        s.account.as_str(),
        s.region.as_str(),
        s.resource_id.as_str(),
    );
    let now = dedupe::epoch_secs(SystemTime::now());
    let reverted = match links::reverted(table, place, &d.analysis.changes, now).await {
        Ok(reverted) => reverted,
        Err(e) => {
            warn!(message_id, error = %e, "the reverts could not be read: the change is told as any other");
            return;
        }
    };
    for r in &reverted {
        d.notes.push(r.note());
    }
    let only_reverts = d.analysis.properties.is_empty()
        && d.analysis.changes.iter().all(|c| {
            c.action == crate::core::rules::Action::Removed
                && reverted.iter().any(|r| r.rule == c.rule.to_string())
        });
    if !reverted.is_empty() && only_reverts {
        d.analysis.severity = crate::core::severity::Severity::Info;
    }
}

/// Auto-revert, where it is on: removes each rule the change added that qualifies (see
/// [`autorevert::verdict`]) after reading the group's rules now, or in shadow mode says it would
/// have; the alert says what was done and how to undo it. A rule already gone (an earlier attempt
/// of this invocation reverted it) is told as reverted when the ledger says so.
async fn auto_revert(
    message_id: &str,
    d: &mut Decision,
    actor: &ActorLookup,
    settings: &Settings,
    services: &Services,
) {
    let trusted = trust::trusted_by(&settings.trusted_principals, actor);
    let rules = match autorevert::verdict(d, &settings.auto_revert, trusted) {
        Verdict::Nothing => return,
        Verdict::Spared { rules, why } => {
            info!(message_id, reason = %why, "auto-revert: not reverted");
            d.notes.push(autorevert::spared_note(&rules, &why));
            return;
        }
        Verdict::Revert(rules) if settings.auto_revert.mode == autorevert::Mode::Shadow => {
            for c in &rules {
                info!(message_id, rule = %c.rule, "auto-revert (shadow): would revert");
                d.notes.push(autorevert::shadow_note(c));
            }
            return;
        }
        Verdict::Revert(rules) => rules,
    };
    let s = &d.analysis.subject;
    let (account, region, group) = (s.account.clone(), s.region.clone(), s.resource_id.clone());
    let place = (account.as_str(), region.as_str(), group.as_str());
    let ec2 = services.ec2_reader().await;
    let now_rules = match groups::rules(&ec2, &group).await {
        Ok(r) => r,
        Err(e) => {
            warn!(message_id, error = %e, "auto-revert: the group's rules could not be read; nothing reverted");
            let rules: Vec<String> = rules.iter().map(|c| c.rule.to_string()).collect();
            d.notes.push(format!(
                "not reverted: {} (the group's rules could not be read: {e})",
                rules.join(", ")
            ));
            return;
        }
    };
    let now = dedupe::epoch_secs(SystemTime::now());
    for c in rules {
        let (note, reverted) =
            revert_rule(message_id, services, &ec2, place, &now_rules, &c, now).await;
        if reverted {
            d.analysis.reverted.push(c.rule.to_string());
        }
        d.notes.push(note);
    }
}

/// Removes the rule `c` added, as `now_rules` name it, and records it; what the alert says of
/// it, and whether it is gone (removed now, or before by sgwatch or someone else).
async fn revert_rule(
    message_id: &str,
    services: &Services,
    ec2: &aws_sdk_ec2::Client,
    (account, region, group): (&str, &str, &str),
    now_rules: &[KnownRule],
    c: &crate::core::rules::Change,
    now: u64,
) -> (String, bool) {
    let place = (account, region, group);
    let at = link::rfc3339(now);
    let wanted = link::RuleRef::of_change(c, None);
    let Some(rule) = now_rules.iter().find(|r| wanted.allows_the_same(r)) else {
        let record = match &services.dedupe {
            Some(table) => links::reverted_rule(table, place, &wanted, now)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let note = match record {
            Some(r) => autorevert::reverted_note(region, group, c, &r.at),
            None => format!("{} was gone by the time sgwatch went to revert it", c.rule),
        };
        return (note, true);
    };
    let revoked = ec2
        .revoke_security_group_ingress()
        .group_id(group)
        .security_group_rule_ids(&rule.id)
        .send()
        .await;
    if let Err(e) = revoked {
        let why = aws_sdk_ec2::error::DisplayErrorContext(&e).to_string();
        warn!(message_id, group = %group, rule = %rule.id, error = %why, "auto-revert: the rule could not be removed");
        return (format!("{} could not be reverted: {why}", c.rule), false);
    }
    info!(message_id, group = %group, rule = %rule.id, "auto-revert: reverted");
    if let Some(table) = &services.dedupe {
        if let Err(e) = links::record_auto_reverted(table, place, &wanted, &at, now).await {
            warn!(message_id, error = %e, "auto-revert: the revert could not be recorded");
        }
    }
    (autorevert::reverted_note(region, group, c, &at), true)
}

/// Signs the alert's Revert and Keep links, where the stack has them; an alert whose links
/// cannot be signed goes without them (its commands still say what to run).
async fn sign_links(message_id: &str, d: &mut Decision, alert: &Key, services: &Services) {
    let Some(signer) = &services.signer else {
        return;
    };
    if d.analysis.subject.change_type == ChangeType::Delete
        || !d.analysis.changes.iter().any(remedy::wanted)
    {
        return;
    }
    let now = dedupe::epoch_secs(SystemTime::now());
    match signer.links(d, alert, now).await {
        Ok(links) => d.analysis.links = links,
        Err(e) => {
            warn!(message_id, error = %e, "the alert's links could not be signed: it goes without them");
        }
    }
}

/// What the group is attached to, read from EC2 for an alert about a group that still exists;
/// AWS Config's relationships stay where EC2 cannot be read.
async fn exposure(message_id: &str, d: &mut Decision, services: &Services) {
    let a = &d.analysis;
    if a.subject.change_type == ChangeType::Delete {
        return;
    }
    let ec2 = services.ec2_reader().await;
    match groups::attached(&ec2, &a.subject.resource_id).await {
        Ok(interfaces) => d.analysis.exposure = Some(Exposure::Ec2 { interfaces }),
        Err(e) => {
            warn!(message_id, error = %e, "what the group is attached to could not be read: the alert says what AWS Config records");
        }
    }
}

/// The account and region a message is about.
fn origin(message: &ConfigMessage) -> Option<(&str, &str)> {
    match message {
        ConfigMessage::ItemChange(c) => Some((
            &c.configuration_item.aws_account_id,
            &c.configuration_item.aws_region,
        )),
        ConfigMessage::Oversized(o) => Some((
            &o.configuration_item_summary.aws_account_id,
            &o.configuration_item_summary.aws_region,
        )),
        ConfigMessage::ApiCall(call) => Some((&call.account, &call.region)),
        ConfigMessage::Heartbeat(_)
        | ConfigMessage::CoverageCheck
        | ConfigMessage::DigestDue(_)
        | ConfigMessage::Wake(_)
        | ConfigMessage::Other { .. } => None,
    }
}

/// A record that is no message sgwatch can read: skipped when it is none of our business, else
/// told to the fallback recipient as a change that could not be read, or parked.
async fn unparsed(
    message_id: &str,
    error: ParseError,
    excerpt: &str,
    original: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    match error {
        // A change to a resource type we do not watch is none of our business, readable or not.
        ParseError::Malformed {
            message_type,
            detail,
            resource_type: Some(resource_type),
            ..
        } if !settings.policy.resource_types.contains(&resource_type) => {
            info!(message_id, message_type, resource_type, reason = %detail, "ignored: a malformed item of a resource type not watched");
            Outcome::Skipped
        }
        // A change notification we cannot read: never skipped when it may be a watched resource.
        ParseError::Malformed {
            message_type,
            detail,
            resource_type,
            resource_id,
        } if message_type == ITEM_CHANGE || message_type == OVERSIZED_ITEM_CHANGE => {
            let facts = Facts {
                message_id: message_id.to_owned(),
                resource_type,
                resource_id,
                ..Facts::default()
            };
            let why = format!("the {message_type} could not be read: {detail}");
            unreadable(facts, why, original, invocation, settings, services).await
        }
        // A record of the Config topic with nothing readable in it could be any change: parked
        // with what there is of it.
        e @ (ParseError::MessageNotJson(_)
        | ParseError::MissingSnsMessage
        | ParseError::MissingSqsBody) => {
            park_unreadable(message_id, &e, excerpt, invocation, services).await
        }
        e @ ParseError::ApiCall(_) => {
            info!(message_id, reason = %e, "skipped: not a call the actor feed records");
            Outcome::Skipped
        }
        e => {
            warn!(message_id, error = %e, "skipped: not a Config message sgwatch handles");
            Outcome::Skipped
        }
    }
}

/// The item an oversized notification points to, read from S3 or Config's history, with why its
/// details are unavailable when they are; the outcome instead when it is not read.
async fn read_oversized(
    message_id: &str,
    o: &Oversized,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Result<(ItemChange, Option<String>), Outcome> {
    let summary = &o.configuration_item_summary;
    if !settings
        .policy
        .resource_types
        .contains(&summary.resource_type)
    {
        info!(message_id, resource_type = %summary.resource_type, "ignored: resource type not watched");
        return Err(Outcome::Skipped);
    }
    // A topic that carries every account's changes (AWS Control Tower's) brings items this
    // function does not serve, in buckets it may not read: the summary names the account, so
    // such an item is skipped before it is read (and not parked as unreadable).
    let account = &summary.aws_account_id;
    if !account.is_empty() && !settings.policy.accounts.serves(account) {
        info!(message_id, account = %account, "skipped: account not served (SGWATCH_ACCOUNTS); its oversized item is not read");
        return Err(Outcome::Skipped);
    }
    // The history walk stops in time for the send that follows.
    let read_until = invocation
        .deadline
        .and_then(|d| d.checked_sub(SEND_MARGIN + SEND_MARGIN));
    match oversized::resolve(services, o, read_until).await {
        Ok(resolved) => Ok((resolved.change, resolved.details_unavailable)),
        Err(e) => {
            let facts = Facts {
                message_id: message_id.to_owned(),
                resource_type: Some(summary.resource_type.clone()),
                resource_id: Some(summary.resource_id.clone()),
                account: Some(summary.aws_account_id.clone()),
                region: Some(summary.aws_region.clone()),
                state_id: summary
                    .configuration_state_id
                    .as_ref()
                    .map(StateId::to_string),
                change_type: summary.change_type.as_ref().map(ChangeType::to_string),
                ..Facts::default()
            };
            error!(facts = ?facts, error = %e, "oversized item not read");
            Err(Outcome::Failed(format!("{}: {e}", facts.label())))
        }
    }
}

async fn process_change(
    message_id: &str,
    change: &ItemChange,
    details_unavailable: Option<String>,
    original: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    let item = &change.configuration_item;
    // Only the accounts the hub serves are on its map: another's change is refused below.
    if settings.hub && settings.policy.accounts.serves(&item.aws_account_id) {
        let (account, region) = (&item.aws_account_id, &item.aws_region);
        mark_coverage(message_id, Mark::Change, account, region, services).await;
    }
    let analysis =
        match analysis_of(message_id, change, details_unavailable, settings, services).await {
            Ok(analysis) => analysis,
            Err(Unanalysed::NotWatched) => return Outcome::Skipped,
            Err(Unanalysed::Unreadable(facts, why)) => {
                return unreadable(*facts, why, original, invocation, settings, services).await
            }
        };
    let mut analysis = analysis;
    analysis.subject.account_name = account_name(&analysis.subject.account, services).await;
    not_kept(message_id, &mut analysis, services).await;
    let mut d = decide(analysis, &settings.policy);
    log_decision(message_id, &d);
    let to = Delivery {
        settings,
        services,
        invocation,
    };
    if !d.notify {
        // Nobody is told of it, but what it closes is closed where security teams look.
        return crate::deliver::security_hub::close_untold(message_id, &d, &to).await;
    }
    let security = &settings.security;
    for name in crate::core::finding::resolving(&d, &settings.policy.destinations, security.page_at)
    {
        if !d.destinations.contains(&name) {
            d.destinations.push(name);
        }
    }
    told_as_reverted(message_id, &mut d, services).await;
    let feed = read_feed(services, &d).await;
    let calls: &[ApiCall] = feed.as_ref().map(|f| &f.calls[..]).unwrap_or_default();
    d.analysis.known_rules = known_rules(message_id, &d, calls, services).await;
    exposure(message_id, &mut d, services).await;
    let actor = resolve_actor(feed.as_ref(), &d, settings, services).await;
    auto_revert(message_id, &mut d, &actor, settings, services).await;
    let alert = Key::of_change(&d.analysis.subject, change);
    tell_change(message_id, alert, d, &actor, feed.as_ref(), original, &to).await
}

/// Tells a decided change: routed (now, coalesced, to the digest, held), its links signed when it
/// goes now, claimed in the ledger, emailed or held, posted to its destinations, and settled.
async fn tell_change(
    message_id: &str,
    alert: Key,
    mut d: Decision,
    actor: &ActorLookup,
    feed: Option<&Feed>,
    original: &Value,
    to: &Delivery<'_>,
) -> Outcome {
    let (settings, services, invocation) = (to.settings, to.services, to.invocation);
    let warnings: &[Warning] = feed.map(|f| &f.warnings[..]).unwrap_or_default();
    let calls: &[ApiCall] = feed.map(|f| &f.calls[..]).unwrap_or_default();
    let mut routed = route(message_id, &mut d, actor, settings, services);
    if let Err(why) = rate_limit(&mut routed, &d, services, settings).await {
        let facts = d.analysis.subject.facts(message_id);
        return Outcome::Failed(format!("{}: {why}", facts.label()));
    }
    if routed.route == Route::Now {
        sign_links(message_id, &mut d, &alert, services).await;
    }
    let s = &d.analysis.subject;
    let facts = s.facts(message_id);
    let parts = early::subtract(&d, warnings, calls);
    // The early warning goes by email only: destinations and findings always get the whole change.
    if parts.is_empty() && !told_beyond_email(&d, settings) {
        info!(facts = ?facts, "skipped: the early warning told every recipient all of this change");
        return Outcome::Skipped;
    }
    let line = Line::of(
        &d,
        actor,
        &alert.to_string(),
        &routed.why,
        routed.not_before,
        services.clock.now_secs(),
    );
    let claim = Ledger::claim(services, Some(alert), s.capture_time.as_deref(), invocation);
    let mut ledger = match claim.await {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Outcome::Skipped,
        Err(why) => return Outcome::Failed(format!("{}: {why}", facts.label())),
    };
    let (mut subject, emailed) = match routed.route {
        Route::Now => {
            let emailed = email_parts(to, &parts, actor, &mut ledger).await;
            if d.analysis.severity == crate::core::severity::Severity::Critical && emailed.1.is_ok()
            {
                told_in_window(message_id, &parts, &line, settings, services).await;
            }
            emailed
        }
        Route::Coalesce => {
            let joined = coalesce(&facts, &parts, &line, settings, services, &mut ledger).await;
            (render(&d, actor).subject, joined)
        }
        Route::Digest | Route::Held => {
            let held = hold(&facts, &parts, &line, services, &mut ledger).await;
            (render(&d, actor).subject, held)
        }
    };
    // The destinations are told whatever became of the email, and the email never waits on them.
    let result = if d.destinations.is_empty() {
        emailed
    } else {
        let whole = render(&d, actor);
        if subject.is_empty() {
            subject = whole.subject.clone();
        }
        post_and_report(to, &d, actor, &whole, emailed, &mut ledger).await
    };
    let result = crate::deliver::security_hub::tell_after(to, &d, actor, result, &mut ledger).await;
    match finish(
        result, &facts, &subject, original, ledger, services, invocation,
    )
    .await
    {
        Outcome::Sent if routed.route != Route::Now => Outcome::Held,
        outcome => outcome,
    }
}

/// Whether the change goes anywhere besides the owners' email: destinations, or findings.
fn told_beyond_email(d: &Decision, settings: &Settings) -> bool {
    !d.destinations.is_empty() || crate::deliver::security_hub::has_findings(d, settings)
}

/// Where the change goes ([`quiet::route`]), with what its email or digest line says of it. Without
/// a table to hold it in, it goes now.
fn route(
    message_id: &str,
    d: &mut Decision,
    actor: &ActorLookup,
    settings: &Settings,
    services: &Services,
) -> quiet::Routed {
    let a = &d.analysis;
    let deciding = [
        settings.policy.notify_tag.as_str(),
        settings.policy.owner_tag.as_str(),
    ];
    let change = quiet::Change {
        severity: a.severity,
        tags: &a.tags,
        tags_before: &a.previous_tags,
        deciding_tags: &deciding,
        actor,
    };
    let now = services.clock.now_secs();
    let mut routed = quiet::route(&settings.quiet, &settings.trusted_principals, &change, now);
    if routed.route == Route::Coalesce && services.wake.is_none() {
        routed.route = Route::Now;
    }
    if routed.route != Route::Now && services.dedupe.is_none() {
        warn!(message_id, route = %routed.route, why = %routed.why, "sent now: there is no ledger table to hold it in");
        routed.route = Route::Now;
    }
    info!(message_id, route = %routed.route, why = %routed.why, "routed");
    d.notes.extend(routed.notes.iter().cloned());
    routed
}

/// Past the rate limit, an email that would go now (or open a coalescing window) goes to the
/// digest instead; the first held back in the hour wakes its summary.
async fn rate_limit(
    routed: &mut quiet::Routed,
    d: &Decision,
    services: &Services,
    settings: &Settings,
) -> Result<(), String> {
    let max = settings.quiet.max_per_group_hour;
    let (Some(table), true) = (services.dedupe.as_ref(), routed.limited && max > 0) else {
        return Ok(());
    };
    let s = &d.analysis.subject;
    let now = services.clock.now_secs();
    let group = (
        s.account.as_str(),
        s.region.as_str(),
        s.resource_id.as_str(),
    );
    // A change joining an open window adds no email.
    if routed.route == Route::Coalesce && crate::coalesce::is_open(table, group, now).await? {
        return Ok(());
    }
    let count = crate::rate::count(table, services, group, &d.recipients, now, max).await?;
    if let crate::rate::Count::Over { .. } = count {
        routed.route = Route::Digest;
        routed.why = format!(
            "the group passed {max} emails this hour (the rate limit): the hour's summary says so"
        );
    }
    Ok(())
}

/// The recipients of `parts` not yet told of the change (by email, hold or window).
fn untold(parts: &[early::Part], ledger: &Ledger) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in parts.iter().flat_map(|p| &p.decision.recipients) {
        let told = ledger.has(&Entry::email(r)) || ledger.has(&Entry::held(r));
        if !told && !out.iter().any(|o| o.eq_ignore_ascii_case(r)) {
            out.push(r.clone());
        }
    }
    out
}

/// Adds the change to its group's coalescing window for the recipients of `parts` not yet told
/// of it, and records them in the change's ledger, so a retry adds no one twice.
async fn coalesce(
    facts: &Facts,
    parts: &[early::Part],
    line: &Line,
    settings: &Settings,
    services: &Services,
    ledger: &mut Ledger,
) -> Result<Delivered, DeliverError> {
    let (Some(table), to) = (services.dedupe.as_ref(), untold(parts, ledger)) else {
        return Ok(Delivered::default());
    };
    if to.is_empty() {
        return Ok(Delivered::default());
    }
    let line = Line {
        to: to.clone(),
        ..line.clone()
    };
    let now = services.clock.now_secs();
    crate::coalesce::join(table, services, &line, now, settings.quiet.coalesce, true)
        .await
        .map_err(|why| DeliverError::Hold(format!("{}: {why}", facts.label())))?;
    let entries: Vec<Entry> = to.iter().map(|r| Entry::held(r)).collect();
    ledger.record(&entries, None).await?;
    Ok(Delivered::default())
}

/// A CRITICAL change emailed at once joins its group's open window, marked as told, so the
/// coalesced email that follows says so; it opens none.
async fn told_in_window(
    message_id: &str,
    parts: &[early::Part],
    line: &Line,
    settings: &Settings,
    services: &Services,
) {
    let Some(table) = services
        .dedupe
        .as_ref()
        .filter(|_| settings.quiet.coalesce > 0)
    else {
        return;
    };
    let mut to: Vec<String> = Vec::new();
    for r in parts.iter().flat_map(|p| &p.decision.recipients) {
        if !to.iter().any(|o| o.eq_ignore_ascii_case(r)) {
            to.push(r.clone());
        }
    }
    let line = Line {
        to,
        told: true,
        ..line.clone()
    };
    let now = services.clock.now_secs();
    if let Err(e) = crate::coalesce::join(table, services, &line, now, 0, false).await {
        warn!(message_id, error = %e, "the CRITICAL change told at once could not join its group's window");
    }
}

/// Holds the change's line for each recipient of `parts` not yet told of it, and records each
/// in the change's ledger, so a retry holds no one twice.
async fn hold(
    facts: &Facts,
    parts: &[early::Part],
    line: &Line,
    services: &Services,
    ledger: &mut Ledger,
) -> Result<Delivered, DeliverError> {
    let Some(table) = services.dedupe.as_ref() else {
        return Ok(Delivered::default());
    };
    for r in &untold(parts, ledger) {
        crate::held::hold(table, std::slice::from_ref(r), line)
            .await
            .map_err(|why| DeliverError::Hold(format!("{}: {why}", facts.label())))?;
        ledger.record(&[Entry::held(r)], None).await?;
    }
    Ok(Delivered::default())
}

/// A spoke's heartbeat: the hub marks its account × region as heard from now. A served-accounts
/// list refuses the others; a heartbeat that cannot be recorded is retried by the queue.
async fn heartbeat(
    message_id: &str,
    beat: &Heartbeat,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    if !settings.policy.accounts.serves(&beat.account) {
        warn!(message_id, account = %beat.account, "refused: a heartbeat from an account this hub does not serve (SGWATCH_ACCOUNTS)");
        return Outcome::Skipped;
    }
    let Some(table) = services.dedupe.as_ref().filter(|_| settings.hub) else {
        info!(message_id, account = %beat.account, region = %beat.region, "skipped: a spoke's heartbeat reached a function that is no hub");
        return Outcome::Skipped;
    };
    let now = dedupe::epoch_secs(SystemTime::now());
    let sent = beat
        .sent
        .as_deref()
        .and_then(|t| {
            aws_smithy_types::DateTime::from_str(
                t,
                aws_smithy_types::date_time::Format::DateTimeWithOffset,
            )
            .ok()
        })
        .and_then(|t| u64::try_from(t.secs()).ok())
        .map_or(now, |t| t.min(now));
    match coverage::mark(table, Mark::Heartbeat, &beat.account, &beat.region, sent).await {
        Ok(()) => {
            info!(message_id, account = %beat.account, region = %beat.region, stack = %beat.stack, "heartbeat recorded");
            look_at_spoke(message_id, beat, table, services).await;
            Outcome::Heartbeat
        }
        Err(e) => Outcome::Failed(format!(
            "{message_id}: the heartbeat of {}/{} could not be recorded: {e}",
            beat.account, beat.region
        )),
    }
}

/// On a heartbeat, the hub looks at what the spoke's region lets it see (its recorder and
/// trails, through the account's reader role) and keeps it in the coverage map for `hub status`.
/// A look that fails is logged; the heartbeat stands.
async fn look_at_spoke(message_id: &str, beat: &Heartbeat, table: &Dedupe, services: &Services) {
    let Some(members) = &services.members else {
        return;
    };
    let sight = match members.reader(&beat.account, &beat.region).await {
        Ok(reader) => sight::look(&reader, &beat.account, &beat.region).await,
        Err(e) => {
            warn!(message_id, account = %beat.account, region = %beat.region, error = %e, "the spoke's region cannot be read");
            vec![Sight::Unreadable]
        }
    };
    if !sight.is_empty() {
        warn!(message_id, account = %beat.account, region = %beat.region, sight = %Sight::codes(&sight), "the spoke's region hides changes from the hub");
    }
    if let Err(e) = coverage::mark_sight(table, &beat.account, &beat.region, &sight).await {
        warn!(message_id, account = %beat.account, region = %beat.region, error = %e, "what the spoke's region shows could not be recorded");
    }
}

/// The hub's hourly look: each spoke silent for [`spokes::SILENT_AFTER_SECS`] is told to the
/// fallback recipient, once per silence (the ledger keys it by the last heartbeat).
async fn silent_spokes(
    message_id: &str,
    original: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    let (Some(table), true) = (&services.dedupe, settings.hub) else {
        info!(
            message_id,
            "skipped: a coverage check reached a function that is no hub"
        );
        return Outcome::Skipped;
    };
    let Some(fallback) = settings.policy.fallback_recipient.clone() else {
        warn!(
            message_id,
            "spokes gone silent are told to no one: the hub has no fallback recipient"
        );
        return Outcome::Skipped;
    };
    let marks = match coverage::read(table).await {
        Ok(marks) => marks,
        Err(e) => return Outcome::Failed(format!("{message_id}: the coverage map: {e}")),
    };
    let now = dedupe::epoch_secs(SystemTime::now());
    let mut outcome = Outcome::Skipped;
    for ((account, region), seen) in &marks {
        let (Some(spokes::Blind::Silent { hours }), Some(last_heartbeat)) =
            (spokes::blind(Some(seen), now), seen.last_heartbeat)
        else {
            continue;
        };
        warn!(message_id, account, region, hours, "a spoke is silent");
        let key = Key::Silent {
            account: account.clone(),
            region: region.clone(),
            last_heartbeat,
        };
        let mut ledger = match Ledger::claim(services, Some(key), None, invocation).await {
            Ok(Some(ledger)) => ledger,
            Ok(None) => continue,
            Err(e) => return Outcome::Failed(format!("{message_id}: {e}")),
        };
        let email = silent_spoke_email(account, region, hours);
        let facts = Facts {
            message_id: message_id.to_owned(),
            account: Some(account.clone()),
            region: Some(region.clone()),
            ..Facts::default()
        };
        let result = deliver(
            settings,
            services,
            invocation,
            std::slice::from_ref(&fallback),
            &email,
            &mut ledger,
        )
        .await;
        match finish(
            result,
            &facts,
            &email.subject,
            original,
            ledger,
            services,
            invocation,
        )
        .await
        {
            Outcome::Sent => outcome = Outcome::Sent,
            Outcome::Skipped => {}
            other => return other,
        }
    }
    outcome
}

/// A member account's name, in a hub (where Organizations tells it).
async fn account_name(account: &str, services: &Services) -> Option<String> {
    services.members.as_ref()?.account_name(account).await
}

/// Marks the coverage map; a failed write is logged, never an error (the next change or
/// heartbeat marks it again).
async fn mark_coverage(
    message_id: &str,
    mark: Mark,
    account: &str,
    region: &str,
    services: &Services,
) {
    let Some(table) = &services.dedupe else {
        return;
    };
    if !spokes::is_account(account) || !spokes::is_region(region) {
        return;
    }
    let now = dedupe::epoch_secs(SystemTime::now());
    if let Err(e) = coverage::mark(table, mark, account, region, now).await {
        warn!(message_id, account, region, error = %e, "the coverage map could not be marked");
    }
}

/// Why a change has no analysis to decide on.
enum Unanalysed {
    /// Its changes cannot be read, and its resource type is not watched: none of our business.
    NotWatched,
    /// Its changes cannot be read (the facts that identify it, and why).
    Unreadable(Box<Facts>, String),
}

/// What changed, with what the prefix lists hold looked up and, when the details could not be
/// read (`details_unavailable`), a line that says so.
async fn analysis_of(
    message_id: &str,
    change: &ItemChange,
    details_unavailable: Option<String>,
    settings: &Settings,
    services: &Services,
) -> Result<Analysis, Unanalysed> {
    let mut analysis = analyze(change).map_err(|e| {
        let facts = Facts::of_change(message_id, change);
        let watched = &settings.policy.resource_types;
        if watched.contains(&change.configuration_item.resource_type) {
            Unanalysed::Unreadable(
                Box::new(facts),
                format!("its changes could not be read: {e}"),
            )
        } else {
            info!(facts = ?facts, error = %e, "ignored: resource type not watched");
            Unanalysed::NotWatched
        }
    })?;
    // A rule from a prefix list opens the group as far as the list's widest entry.
    let lists = prefix_lists::wanted(&analysis.changes);
    if !lists.is_empty() {
        let found = prefix_lists::container()
            .resolve(&services.ec2_reader().await, &lists)
            .await;
        prefix_lists::apply(&mut analysis.changes, &found);
        analysis.rate();
    }
    if let Some(why) = details_unavailable {
        // The change is real though we cannot say what it was: the email says so.
        if analysis.changes.is_empty() && analysis.properties.is_empty() {
            analysis.properties.push(PropertyChange {
                name: "Details".to_owned(),
                previous: None,
                updated: Some(format!("unavailable ({why})")),
            });
        }
    }
    Ok(analysis)
}

/// The one `decision` line per notification that docs/FAILURE-SEMANTICS.md documents.
fn log_decision(message_id: &str, d: &Decision) {
    let s = &d.analysis.subject;
    info!(
        message_id,
        resource_type = %s.resource_type,
        resource_id = %s.resource_id,
        account = %s.account,
        region = %s.region,
        change_type = %s.change_type,
        severity = %d.analysis.severity,
        changes = d.analysis.changes.len(),
        notify = d.notify,
        recipients = d.recipients.len(),
        destinations = d.destinations.len(),
        reason = %d.reason(),
        "decision"
    );
}

/// What the actor feed holds for the group of `d` around its capture time; `None` without a
/// table or when it cannot be read (the actor then comes from `LookupEvents`, and every
/// recipient gets the whole change).
async fn read_feed(services: &Services, d: &Decision) -> Option<Feed> {
    let table = services.dedupe.as_ref()?;
    let s = &d.analysis.subject;
    let capture = s
        .capture_time
        .as_deref()
        .and_then(|t| {
            aws_smithy_types::DateTime::from_str(
                t,
                aws_smithy_types::date_time::Format::DateTimeWithOffset,
            )
            .ok()
        })
        .map(|t| t.secs())
        .unwrap_or_else(|| dedupe::epoch_secs(SystemTime::now()) as i64);
    match feed_store::window(
        table,
        &s.account,
        &s.region,
        &s.resource_id,
        capture - feed::CALLERS_LOOK_BACK_SECS,
        capture + feed::CALLERS_LOOK_AHEAD_SECS,
    )
    .await
    {
        Ok(feed) => Some(feed),
        Err(e) => {
            warn!(resource_id = %s.resource_id, error = %e, "the actor feed could not be read");
            None
        }
    }
}

/// Who made the change: the feed's callers, else CloudTrail's `LookupEvents`, else unknown with
/// the reasons.
async fn resolve_actor(
    feed: Option<&Feed>,
    d: &Decision,
    settings: &Settings,
    services: &Services,
) -> ActorLookup {
    let s = &d.analysis.subject;
    let mut why_not_feed = None;
    if let Some(feed) = feed {
        let callers = who::callers(&feed.calls, &d.analysis);
        if !callers.is_empty() {
            return ActorLookup::Feed(callers);
        }
        why_not_feed = Some(format!(
            "the actor feed has no call on this group in the {} minutes before the change",
            feed::CALLERS_LOOK_BACK_SECS / 60
        ));
    }
    let fallback = if settings.lookup_actor {
        actor::lookup(
            &services.cloudtrail_reader().await,
            &s.resource_id,
            s.capture_time.as_deref(),
        )
        .await
    } else {
        ActorLookup::Unknown("actor lookup is off (SGWATCH_LOOKUP_ACTOR=false)".to_owned())
    };
    match (fallback, why_not_feed) {
        (ActorLookup::Unknown(why), Some(first)) => ActorLookup::Unknown(format!("{first}; {why}")),
        (other, _) => other,
    }
}

/// A CloudTrail API call from the actor feed: recorded for the Config notification that will
/// follow, and told at once when it opens a watched group at the early-warning level.
async fn process_api_call(
    message_id: &str,
    call: &ApiCall,
    original: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    info!(
        message_id,
        event_id = %call.event_id,
        event_name = %call.event_name,
        groups = ?call.group_ids,
        principal = %call.caller(),
        failed = call.failed(),
        "api call"
    );
    if !settings.policy.accounts.serves(&call.account) {
        info!(message_id, account = %call.account, "skipped: account not served (SGWATCH_ACCOUNTS)");
        return Outcome::Skipped;
    }
    let recorded = record_call(message_id, call, services).await;
    // The call is kept for the actor either way; its early warning is one side's (a handover).
    let warns = match handover_marker(&call.account, &call.region, settings, services).await {
        Some(m) if settings.hub => m.hub_tells(Some(&call.event_time)),
        Some(m) => m.full_stack_warns(),
        None => true,
    };
    if !warns {
        info!(message_id, event_id = %call.event_id, "no early warning: a handover leaves this call's warning to the other side");
        return Outcome::Feed {
            recorded,
            warning: None,
        };
    }
    let rated;
    let call = if settings.early_warning.is_some() {
        rated = rated_call(message_id, call, services).await;
        &rated
    } else {
        call
    };
    let warning = match settings.early_warning {
        Some(level)
            if !early::alarming(call, level).is_empty()
                && early::too_late(call, SystemTime::now()) =>
        {
            info!(
                message_id,
                event_id = %call.event_id,
                event_time = %call.event_time,
                "no early warning: the call is more than {} minutes old; AWS Config's notification tells it",
                early::WARNING_MAX_AGE.as_secs() / 60
            );
            None
        }
        Some(level) if !early::alarming(call, level).is_empty() => {
            let mut worst = Outcome::Skipped;
            for group in &call.group_ids {
                let outcome = early_warning(
                    message_id, call, group, original, invocation, settings, services,
                )
                .await;
                worst = match (worst, outcome) {
                    (f @ Outcome::Failed(_), _) | (_, f @ Outcome::Failed(_)) => f,
                    (Outcome::Parked, _) | (_, Outcome::Parked) => Outcome::Parked,
                    (Outcome::Sent, _) | (_, Outcome::Sent) => Outcome::Sent,
                    _ => Outcome::Skipped,
                };
            }
            Some(Box::new(worst))
        }
        _ => None,
    };
    Outcome::Feed { recorded, warning }
}

/// Keeps `call` in the actor feed; whether it was kept. A lost record costs only the actor's name
/// (LookupEvents is the fallback): never an error.
async fn record_call(message_id: &str, call: &ApiCall, services: &Services) -> bool {
    let Some(table) = &services.dedupe else {
        warn!(
            message_id,
            "the actor feed needs SGWATCH_IDEMPOTENCY_TABLE; the call is not kept"
        );
        return false;
    };
    match feed_store::record(table, call).await {
        Ok(_) => true,
        Err(e) => {
            warn!(message_id, event_id = %call.event_id, error = %e, "the call could not be recorded in the actor feed");
            false
        }
    }
}

/// `call` as an early warning rates it: a rewritten rule (ModifySecurityGroupRules) opens
/// something only if it is ingress, which the call does not say, so it is read from the rule
/// itself; the rules asked for from a prefix list are rated by what the list holds.
async fn rated_call(message_id: &str, call: &ApiCall, services: &Services) -> ApiCall {
    let mut call = if !call.modified.is_empty() && !call.failed() {
        modified_ingress(message_id, call, services).await
    } else {
        call.clone()
    };
    let lists = prefix_lists::wanted(&call.requested);
    if !lists.is_empty() {
        let found = prefix_lists::container()
            .resolve(&services.ec2_reader().await, &lists)
            .await;
        prefix_lists::apply(&mut call.requested, &found);
    }
    call
}

/// `call` with the rules it rewrote that are ingress among its requested rules; as it was when
/// their direction cannot be read (the Config notification still tells, minutes later).
async fn modified_ingress(message_id: &str, call: &ApiCall, services: &Services) -> ApiCall {
    let ids: Vec<String> = call.modified.iter().map(|m| m.rule_id.clone()).collect();
    let mut is_egress = std::collections::BTreeMap::new();
    for group in &call.group_ids {
        match groups::rule_directions(&services.ec2_reader().await, group, &ids).await {
            Ok(found) => is_egress.extend(found),
            Err(e) => {
                warn!(message_id, group = %group, error = %e, "the direction of the rewritten rules could not be read");
            }
        }
    }
    call.clone().with_modified_ingress(&is_egress)
}

/// The early warning about `call` on `group`: the owners (as the group's tags say now) are told
/// at once; what they were told is recorded in the feed so the Config notification leaves it out.
async fn early_warning(
    message_id: &str,
    call: &ApiCall,
    group: &str,
    original: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    let Some(level) = settings.early_warning else {
        return Outcome::Skipped;
    };
    let Some(now) = group_now(message_id, group, services).await else {
        return Outcome::Skipped;
    };
    let Some(mut d) = early::decide_warning(call, group, &now, level, &settings.policy) else {
        return Outcome::Skipped;
    };
    d.analysis.subject.account_name = account_name(&call.account, services).await;
    log_warning(message_id, group, &d);
    if !d.notify {
        return Outcome::Skipped;
    }
    not_kept(message_id, &mut d.analysis, services).await;
    if d.analysis.changes.is_empty() {
        return Outcome::Skipped;
    }
    d.analysis.known_rules =
        known_rules(message_id, &d, std::slice::from_ref(call), services).await;
    exposure(message_id, &mut d, services).await;
    let actor = ActorLookup::Feed(who::callers(std::slice::from_ref(call), &d.analysis));
    auto_revert(message_id, &mut d, &actor, settings, services).await;
    let facts = warning_facts(message_id, call, group, &d);
    // Keyed by the call: a redelivered event warns no one twice.
    let key = Key::early(&call.account, &call.region, group, &call.event_id);
    sign_links(message_id, &mut d, &key, services).await;
    let mut ledger = match Ledger::claim(
        services,
        Some(key),
        Some(call.event_time.as_str()),
        invocation,
    )
    .await
    {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Outcome::Skipped,
        Err(why) => return Outcome::Failed(format!("{}: {why}", facts.label())),
    };
    let email = render(&d, &actor).with_notice(&early::warning_notice(call));
    let result = deliver(
        settings,
        services,
        invocation,
        &d.recipients,
        &email,
        &mut ledger,
    )
    .await;
    // Recorded after the send, for whoever the ledger says was told: a warning that did not go
    // out must not keep the Config notification from telling.
    if result.is_ok() {
        record_warning(message_id, call, group, &d, &ledger, services).await;
    }
    finish(
        result,
        &facts,
        &email.subject,
        original,
        ledger,
        services,
        invocation,
    )
    .await
}

/// The early warning's decision, one log line.
fn log_warning(message_id: &str, group: &str, d: &Decision) {
    info!(
        message_id,
        resource_id = group,
        severity = %d.analysis.severity,
        notify = d.notify,
        recipients = d.recipients.len(),
        reason = %d.reason(),
        "early warning decision"
    );
}

/// What identifies an early warning in logs and parked records: the call stands for the state.
fn warning_facts(message_id: &str, call: &ApiCall, group: &str, d: &Decision) -> Facts {
    Facts {
        message_id: message_id.to_owned(),
        resource_type: Some(d.analysis.subject.resource_type.clone()),
        resource_id: Some(group.to_owned()),
        account: Some(call.account.clone()),
        region: Some(call.region.clone()),
        state_id: Some(format!("early warning {}", call.event_id)),
        capture_time: Some(call.event_time.clone()),
        change_type: Some(call.event_name.clone()),
    }
}

/// The group as it is now, for an early warning; none when it is gone or cannot be read (the
/// Config notification still tells, minutes later).
async fn group_now(message_id: &str, group: &str, services: &Services) -> Option<early::GroupNow> {
    match groups::describe(&services.ec2_reader().await, group).await {
        Ok(now) => {
            if now.is_none() {
                info!(message_id, group, "no early warning: the group is gone");
            }
            now
        }
        Err(e) => {
            warn!(message_id, group, error = %e, "no early warning: the group's tags could not be read");
            None
        }
    }
}

/// Records in the feed what the early warning `d` told, and whom the ledger says it told, so the
/// Config notification leaves it out.
async fn record_warning(
    message_id: &str,
    call: &ApiCall,
    group: &str,
    d: &Decision,
    ledger: &Ledger,
    services: &Services,
) {
    let Some(table) = &services.dedupe else {
        return;
    };
    let warning = Warning {
        event_id: call.event_id.clone(),
        event_time: call.event_time.clone(),
        rules: d
            .analysis
            .changes
            .iter()
            .map(|c| c.rule.to_string())
            .collect(),
        recipients: d
            .recipients
            .iter()
            .filter(|r| ledger.has(&Entry::email(r)))
            .map(|r| r.to_ascii_lowercase())
            .collect(),
    };
    if let Err(e) = feed_store::record_warning(table, call, group, &warning).await {
        warn!(message_id, group, error = %e, "the early warning could not be recorded; the Config notification will tell it again");
    }
}

/// A change to a (possibly) watched resource that cannot be read: the fallback recipient gets
/// a degraded email saying so; without one the invocation fails, so the event is parked.
async fn unreadable(
    facts: Facts,
    why: String,
    original: &Value,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    error!(facts = ?facts, reason = %why, "a change sgwatch could not read");
    let Some(fallback) = settings.policy.fallback_recipient.clone() else {
        return Outcome::Failed(format!(
            "{}: {why} (no fallback recipient to tell)",
            facts.label()
        ));
    };
    // Keyed by message id: a retried event does not send the degraded email twice.
    let key = Key::unreadable(&facts.message_id);
    let capture_time = facts.capture_time.as_deref();
    let mut ledger = match Ledger::claim(services, key, capture_time, invocation).await {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Outcome::Skipped,
        Err(e) => return Outcome::Failed(format!("{}: {e}", facts.label())),
    };
    let email = degraded_email(&facts, &why);
    let result = deliver(
        settings,
        services,
        invocation,
        std::slice::from_ref(&fallback),
        &email,
        &mut ledger,
    )
    .await;
    finish(
        result,
        &facts,
        &email.subject,
        original,
        ledger,
        services,
        invocation,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailOutput};
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
    use aws_sdk_sesv2::Client as Ses;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    fn services(ses: aws_sdk_sesv2::Client) -> Services {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        );
        let cloudtrail = mock_client!(aws_sdk_cloudtrail, []);
        let config = aws_sdk_config::Client::from_conf(
            aws_sdk_config::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_config::config::Region::new("us-east-1"))
                .build(),
        );
        Services {
            ses,
            s3,
            cloudtrail,
            config,
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::Config::builder()
                    .behavior_version_latest()
                    .region(aws_sdk_ec2::config::Region::new("us-east-1"))
                    .build(),
            ),
            dedupe: None,
            failure_queue: None,
            config_bucket: None,
            poster: None,
            members: None,
            origin: None,
            ssm: aws_sdk_ssm::Client::from_conf(
                aws_sdk_ssm::Config::builder()
                    .behavior_version_latest()
                    .region(aws_sdk_ssm::config::Region::new("us-east-1"))
                    .build(),
            ),
            handovers: None,
            signer: None,
            clock: crate::context::Clock::default(),
            wake: None,
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::Config::builder()
                    .behavior_version_latest()
                    .region(aws_sdk_sns::config::Region::new("us-east-1"))
                    .build(),
            ),
            securityhub: aws_sdk_securityhub::Client::from_conf(
                aws_sdk_securityhub::Config::builder()
                    .behavior_version_latest()
                    .region(aws_sdk_securityhub::config::Region::new("us-east-1"))
                    .build(),
            ),
        }
    }

    fn settings(fallback: Option<&str>) -> Settings {
        Settings::from_lookup(|k| match k {
            "SGWATCH_SENDER" => Some("alerts@example.com".into()),
            "SGWATCH_LOOKUP_ACTOR" => Some("false".into()),
            "SGWATCH_FALLBACK_RECIPIENT" => fallback.map(str::to_owned),
            _ => None,
        })
        .unwrap()
    }

    fn event(owners: &str) -> Value {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["configurationItem"]["tags"]["OwnerDL"] = owners.into();
        serde_json::json!({"Records": [{"Sns": {"MessageId": "m-1", "Message": v.to_string()}}]})
    }

    fn to(addresses: &'static [&'static str]) -> Rule {
        mock!(Ses::send_email)
            .match_requests(move |r| {
                r.destination().map(|d| d.to_addresses())
                    == Some(&addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>()[..])
            })
            .then_output(|| SendEmailOutput::builder().message_id("ok").build())
    }

    fn rejected() -> Rule {
        mock!(Ses::send_email).then_error(|| {
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Email address is not verified: b@corp.example")
                    .build(),
            )
        })
    }

    #[tokio::test]
    async fn a_rejected_owner_is_reported_to_the_fallback_recipient() {
        // Both owners at once: SES names b; a is sent again alone; the fallback is told of b.
        let (first, a, fallback) = (
            rejected(),
            to(&["a@corp.example"]),
            to(&["secops@corp.example"]),
        );
        let ses = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&first, &a, &fallback]);
        let report = handle(
            &event("a@corp.example b@corp.example"),
            &settings(Some("secops@corp.example")),
            &services(ses),
        )
        .await
        .unwrap();
        assert_eq!(report.sent, 1);
        assert_eq!(
            (first.num_calls(), a.num_calls(), fallback.num_calls()),
            (1, 1, 1)
        );
    }

    /// An oversized item of another account, on a topic that carries every account's changes:
    /// skipped before any read (its bucket is another account's), not failed and parked.
    #[tokio::test]
    async fn another_accounts_oversized_item_is_skipped_unread() {
        let path = format!(
            "{}/../tests/fixtures/oversized.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let item = std::fs::read_to_string(path).unwrap();
        let event =
            serde_json::json!({"Records": [{"Sns": {"MessageId": "m-1", "Message": item}}]});
        let settings = Settings::from_lookup(|k| match k {
            "SGWATCH_SENDER" => Some("alerts@example.com".into()),
            "SGWATCH_LOOKUP_ACTOR" => Some("false".into()),
            "SGWATCH_ACCOUNTS" => Some("111122223333".into()),
            _ => None,
        })
        .unwrap();
        let ses = mock_client!(aws_sdk_sesv2, []);
        let report = handle(&event, &settings, &services(ses)).await.unwrap();
        assert_eq!((report.skipped, report.failed, report.sent), (1, 0, 0));
    }

    #[tokio::test]
    async fn all_rejected_without_fallback_fails_the_invocation() {
        let only = rejected();
        let ses = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&only]);
        let err = handle(&event("b@corp.example"), &settings(None), &services(ses))
            .await
            .unwrap_err();
        assert_eq!(err.failed, 1);
        assert!(err.to_string().contains("SES rejected"), "{err}");
    }

    #[tokio::test]
    async fn throttling_fails_the_invocation_without_trying_the_fallback() {
        let throttled = mock!(Ses::send_email).then_error(|| {
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Maximum sending rate exceeded.")
                    .build(),
            )
        });
        let ses = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&throttled]);
        let err = handle(
            &event("a@corp.example"),
            &settings(Some("secops@corp.example")),
            &services(ses),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("throttling"), "{err}");
        assert_eq!(throttled.num_calls(), 1);
    }

    /// An SQS batch of the hub's queue: each body an EventBridge event of AWS Config for the
    /// fixture's group, owned by the given addresses.
    fn sqs_batch(records: &[(&str, &str)]) -> Value {
        let records: Vec<Value> = records
            .iter()
            .map(|(id, owners)| {
                let sns = event(owners);
                let message: Value =
                    serde_json::from_str(sns["Records"][0]["Sns"]["Message"].as_str().unwrap())
                        .unwrap();
                let bridged = serde_json::json!({
                    "version": "0", "id": format!("eb-{id}"),
                    "detail-type": "Config Configuration Item Change", "source": "aws.config",
                    "account": "123456789012", "region": "us-east-1",
                    "time": "2026-11-20T09:14:07Z", "resources": [], "detail": message,
                });
                serde_json::json!({"messageId": id, "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:111122223333:sgwatch-hub",
                    "body": bridged.to_string()})
            })
            .collect();
        serde_json::json!({ "Records": records })
    }

    #[tokio::test]
    async fn a_failed_record_of_an_sqs_batch_is_reported_alone() {
        let (a, throttled) = (
            to(&["a@corp.example"]),
            mock!(Ses::send_email).then_error(|| {
                SendEmailError::TooManyRequestsException(
                    TooManyRequestsException::builder()
                        .message("Maximum sending rate exceeded.")
                        .build(),
                )
            }),
        );
        let ses = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&a, &throttled]);
        let batch = sqs_batch(&[("q-1", "a@corp.example"), ("q-2", "b@corp.example")]);
        let report = handle(&batch, &settings(None), &services(ses))
            .await
            .expect("an SQS batch reports its failed records, not an error");
        assert_eq!((report.records, report.sent, report.failed), (2, 1, 1));
        assert_eq!(
            report.batch_item_failures,
            [BatchItemFailure {
                item_identifier: "q-2".into()
            }]
        );
        let shown = serde_json::to_value(&report).unwrap();
        assert_eq!(
            shown["batchItemFailures"],
            serde_json::json!([{"itemIdentifier": "q-2"}])
        );
    }

    #[test]
    fn an_sqs_record_without_a_readable_body_is_parked_not_skipped() {
        let batch = serde_json::json!({"Records": [
            {"messageId": "q-1", "eventSource": "aws:sqs", "body": "{not json"},
            {"messageId": "q-2", "eventSource": "aws:sqs"},
        ]});
        let found = envelopes(&batch);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].message_id.as_deref(), Some("q-1"));
        assert!(matches!(
            found[0].message,
            Err(ParseError::MessageNotJson(_))
        ));
        assert_eq!(found[0].excerpt.as_deref(), Some("{not json"));
        assert!(matches!(found[1].message, Err(ParseError::MissingSqsBody)));
    }
}
