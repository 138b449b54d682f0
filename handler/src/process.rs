//! One Lambda invocation: every record of the event is read, decided and, when it should be,
//! emailed. Records are isolated from each other.
//!
//! What may happen to a record, and nothing else:
//! - skipped: not a message we handle (another Config message type, not a Config message), or a
//!   change the policy says not to email;
//! - sent: each destination (owner, fallback notice) emailed once, recorded in the delivery
//!   ledger ([`crate::dedupe`]) as it goes, so a retry sends only to the rest;
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

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use tracing::{debug, error, info, warn};

use crate::actor::ActorLookup;
use crate::decide::{analyze, decide, Decision, PropertyChange, Subject};
use crate::dedupe::{self, Claim, Dedupe, DedupeError};
use crate::destination::{Destination, Kind};
use crate::feed::ApiCall;
use crate::feed_store::{Feed, Warning};
use crate::mail::{self, SendError};
use crate::message::{
    envelopes, ConfigMessage, Envelope, ItemChange, ParseError, ITEM_CHANGE, OVERSIZED_ITEM_CHANGE,
};
use crate::post::{Payload, PostError, Poster};
use crate::render::{render, Email};
use crate::settings::Settings;
use crate::visible::{stripped, visible};
use crate::{
    actor, aws, early, feed, feed_store, groups, logs, oversized, prefix_lists, slack, teams,
    webhook,
};

/// No send starts with less than this left before the invocation's deadline: one SES call at its
/// operation timeout and the ledger write after it, at its worst, must fit, or Lambda could end
/// the invocation between the send and its record (and a retry would send it again).
pub const SEND_MARGIN: Duration = mail::OPERATION_TIMEOUT
    .saturating_add(dedupe::RECORD_WORST_CASE)
    .saturating_add(Duration::from_secs(1));

/// The AWS clients the handler uses, built once per cold start.
#[derive(Clone, Debug)]
pub struct Services {
    pub ses: aws_sdk_sesv2::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    /// Reads an oversized item through AWS Config when its bucket is not ours or cannot be read.
    pub config: aws_sdk_config::Client,
    /// Reads a group's tags for an early warning (its HTTPS client, like every client's, is set
    /// up at the first request: a Config notification never pays for it).
    pub ec2: aws_sdk_ec2::Client,
    /// Present when an idempotency table is configured.
    pub dedupe: Option<Dedupe>,
    /// Where the handler parks what it cannot deliver and retrying cannot fix.
    pub failure_queue: Option<FailureQueue>,
    /// The stack's own Config bucket; an oversized item elsewhere is read through AWS Config.
    pub config_bucket: Option<String>,
    /// Posts to the chat and webhook destinations; present when any is configured.
    pub poster: Option<Arc<Poster>>,
}

/// The stack's failure queue (`SGWATCH_FAILURE_QUEUE_URL`).
#[derive(Clone, Debug)]
pub struct FailureQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Services {
    /// Clients with the handler's time limits ([`aws::handler_timeouts`]).
    pub fn new(config: &SdkConfig, settings: &Settings) -> Services {
        let config = config
            .to_builder()
            .timeout_config(aws::handler_timeouts())
            .build();
        let config = &config;
        Services {
            ses: mail::client(config),
            s3: aws::s3_client(config),
            cloudtrail: aws_sdk_cloudtrail::Client::new(config),
            config: aws_sdk_config::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            dedupe: settings.idempotency_table.as_ref().map(|table| Dedupe {
                client: aws_sdk_dynamodb::Client::new(config),
                table: table.clone(),
            }),
            failure_queue: None,
            config_bucket: None,
            poster: (!settings.policy.destinations.is_empty())
                .then(|| Arc::new(Poster::new(config).with_reach(settings.reach()))),
        }
    }

    /// Parks undeliverable notifications in the queue at `url` (none: they fail the invocation).
    pub fn with_failure_queue(mut self, config: &SdkConfig, url: Option<String>) -> Services {
        self.failure_queue = url.filter(|u| !u.is_empty()).map(|url| FailureQueue {
            client: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(config)
                    .timeout_config(aws::handler_timeouts())
                    .build(),
            ),
            url,
        });
        self
    }

    /// The stack's Config bucket (none: every oversized item is read from S3 first).
    pub fn with_config_bucket(mut self, bucket: Option<String>) -> Services {
        self.config_bucket = bucket.filter(|b| !b.is_empty());
        self
    }
}

/// The invocation: who is sending (the owner of the claims it takes) and until when.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda's request id; it is the owner token of the claims this invocation takes.
    pub request_id: String,
    /// When Lambda ends the invocation.
    pub deadline: Option<SystemTime>,
}

/// The invocation's deadline when it is one Lambda could have given: in the future and within
/// Lambda's longest timeout (15 minutes). Anything else (zero, or a constant such as the 600000 ms
/// cargo-lambda's emulator sends) is unknown rather than "already passed", which would refuse
/// every send.
fn plausible_deadline(deadline_ms: u64, now: SystemTime) -> Option<SystemTime> {
    let deadline = UNIX_EPOCH.checked_add(Duration::from_millis(deadline_ms))?;
    let longest = now + Duration::from_secs(15 * 60 + 60);
    (deadline > now && deadline <= longest).then_some(deadline)
}

impl Invocation {
    /// An invocation outside Lambda: a unique owner token, no deadline.
    pub fn local() -> Invocation {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Invocation {
            request_id: format!(
                "local-{}-{nanos}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
            deadline: None,
        }
    }

    /// From Lambda's context: the request id and the deadline in milliseconds since the epoch.
    pub fn lambda(request_id: &str, deadline_ms: u64) -> Invocation {
        Invocation {
            request_id: request_id.to_owned(),
            deadline: plausible_deadline(deadline_ms, SystemTime::now()),
        }
    }

    fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// Fails when less than `margin` is left: the work is left to Lambda's retry.
    fn ensure(&self, margin: Duration) -> Result<(), DeliverError> {
        match self.time_left() {
            Some(left) if left < margin => Err(DeliverError::Deadline(left)),
            _ => Ok(()),
        }
    }
}

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

/// What identifies a notification in logs and parked records, even without its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    pub message_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_type: Option<String>,
}

impl Facts {
    fn of(message_id: &str, s: &Subject) -> Facts {
        Facts {
            message_id: message_id.to_owned(),
            resource_type: Some(s.resource_type.clone()),
            resource_id: Some(s.resource_id.clone()),
            account: Some(s.account.clone()),
            region: Some(s.region.clone()),
            state_id: s.state_id.clone(),
            capture_time: s.capture_time.clone(),
            change_type: Some(s.change_type.clone()),
        }
    }

    fn of_change(message_id: &str, c: &ItemChange) -> Facts {
        let i = &c.configuration_item;
        Facts {
            message_id: message_id.to_owned(),
            resource_type: Some(i.resource_type.clone()),
            resource_id: Some(i.resource_id.clone()),
            account: Some(i.aws_account_id.clone()),
            region: Some(i.aws_region.clone()),
            state_id: i.configuration_state_id.as_ref().map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            capture_time: i.configuration_item_capture_time.clone(),
            change_type: c
                .configuration_item_diff
                .as_ref()
                .and_then(|d| d.change_type.clone()),
        }
    }

    /// `m-1 AWS::EC2::SecurityGroup sg-1 (state 17)`
    fn label(&self) -> String {
        let mut out = self.message_id.clone();
        for part in [&self.resource_type, &self.resource_id]
            .into_iter()
            .flatten()
        {
            out.push(' ');
            out.push_str(part);
        }
        if let Some(state) = &self.state_id {
            out.push_str(&format!(" (state {state})"));
        }
        out
    }
}

enum Outcome {
    Sent,
    Skipped,
    Parked,
    Failed(String),
    /// A call from the actor feed: whether it was recorded, and what its early warning did.
    Feed {
        recorded: bool,
        warning: Option<Box<Outcome>>,
    },
}

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
    for (i, envelope) in envelopes(event).into_iter().enumerate() {
        report.records += 1;
        let original = originals.get(i).cloned().unwrap_or_else(|| event.clone());
        let outcome = if invocation.ensure(SEND_MARGIN).is_err() {
            let message_id = envelope.message_id.as_deref().unwrap_or("-");
            let why = format!("{message_id}: not started, the invocation's deadline is near");
            warn!(message_id, "{why}");
            Outcome::Failed(why)
        } else {
            process(envelope, &original, invocation, settings, services).await
        };
        count(&mut report, &mut failures, outcome);
    }
    if failures.is_empty() {
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
    let (change, note) = match envelope.message {
        // A change to a resource type we do not watch is none of our business, readable or not.
        Err(ParseError::Malformed {
            message_type,
            detail,
            resource_type: Some(resource_type),
            ..
        }) if !settings.policy.resource_types.contains(&resource_type) => {
            info!(message_id, message_type, resource_type, reason = %detail, "ignored: a malformed item of a resource type not watched");
            return Outcome::Skipped;
        }
        // A change notification we cannot read: never skipped when it may be a watched resource.
        Err(ParseError::Malformed {
            message_type,
            detail,
            resource_type,
            resource_id,
        }) if message_type == ITEM_CHANGE || message_type == OVERSIZED_ITEM_CHANGE => {
            let facts = Facts {
                message_id: message_id.to_owned(),
                resource_type,
                resource_id,
                ..Facts::default()
            };
            let why = format!("the {message_type} could not be read: {detail}");
            return unreadable(facts, why, original, invocation, settings, services).await;
        }
        // A record of the Config topic with nothing readable in it could be any change: parked
        // with what there is of it.
        Err(e @ (ParseError::MessageNotJson(_) | ParseError::MissingSnsMessage)) => {
            let excerpt = envelope.excerpt.as_deref().unwrap_or_default();
            return park_unreadable(message_id, &e, excerpt, invocation, services).await;
        }
        Err(e @ ParseError::ApiCall(_)) => {
            info!(message_id, reason = %e, "skipped: not a call the actor feed records");
            return Outcome::Skipped;
        }
        Err(e) => {
            warn!(message_id, error = %e, "skipped: not a Config message sgwatch handles");
            return Outcome::Skipped;
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
        Ok(ConfigMessage::ItemChange(change)) => (change, None),
        Ok(ConfigMessage::Oversized(o)) => {
            let summary = &o.configuration_item_summary;
            if !settings
                .policy
                .resource_types
                .contains(&summary.resource_type)
            {
                info!(message_id, resource_type = %summary.resource_type, "ignored: resource type not watched");
                return Outcome::Skipped;
            }
            // A topic that carries every account's changes (AWS Control Tower's) brings items this
            // function does not serve, in buckets it may not read: the summary names the account,
            // so such an item is skipped before it is read (and not parked as unreadable).
            let account = &summary.aws_account_id;
            if !account.is_empty() && !settings.policy.accounts.serves(account) {
                info!(message_id, account = %account, "skipped: account not served (SGWATCH_ACCOUNTS); its oversized item is not read");
                return Outcome::Skipped;
            }
            // The history walk stops in time for the send that follows.
            let read_until = invocation
                .deadline
                .and_then(|d| d.checked_sub(SEND_MARGIN + SEND_MARGIN));
            match oversized::resolve(services, &o, read_until).await {
                Ok(resolved) => (resolved.change, resolved.details_unavailable),
                Err(e) => {
                    let facts = Facts {
                        message_id: message_id.to_owned(),
                        resource_type: Some(summary.resource_type.clone()),
                        resource_id: Some(summary.resource_id.clone()),
                        account: Some(summary.aws_account_id.clone()),
                        region: Some(summary.aws_region.clone()),
                        state_id: summary.configuration_state_id.as_ref().map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        }),
                        change_type: summary.change_type.clone(),
                        ..Facts::default()
                    };
                    error!(facts = ?facts, error = %e, "oversized item not read");
                    return Outcome::Failed(format!("{}: {e}", facts.label()));
                }
            }
        }
    };
    process_change(
        message_id, &change, note, original, invocation, settings, services,
    )
    .await
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
    let mut analysis = match analyze(change) {
        Ok(a) => a,
        Err(e) => {
            let facts = Facts::of_change(message_id, change);
            if !settings
                .policy
                .resource_types
                .contains(&change.configuration_item.resource_type)
            {
                info!(facts = ?facts, error = %e, "ignored: resource type not watched");
                return Outcome::Skipped;
            }
            let why = format!("its changes could not be read: {e}");
            return unreadable(facts, why, original, invocation, settings, services).await;
        }
    };
    // A rule from a prefix list opens the group as far as the list's widest entry.
    let lists = prefix_lists::wanted(&analysis.changes);
    if !lists.is_empty() {
        let found = prefix_lists::container()
            .resolve(&services.ec2, &lists)
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
    let d = decide(analysis, &settings.policy);
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
        reason = %d.reason,
        "decision"
    );
    if !d.notify {
        return Outcome::Skipped;
    }
    let facts = Facts::of(message_id, s);
    let feed = read_feed(services, &d).await;
    let warnings: &[Warning] = feed.as_ref().map(|f| &f.warnings[..]).unwrap_or_default();
    let calls: &[ApiCall] = feed.as_ref().map(|f| &f.calls[..]).unwrap_or_default();
    let parts = early::subtract(&d, warnings, calls);
    // The early warning goes by email only: destinations always get the whole change.
    if parts.is_empty() && d.destinations.is_empty() {
        info!(facts = ?facts, "skipped: the early warning told every recipient all of this change");
        return Outcome::Skipped;
    }
    let claim = Ledger::claim(
        services,
        Some(dedupe::key_of(s, change)),
        s.capture_time.as_deref(),
        invocation,
    );
    let mut ledger = match claim.await {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Outcome::Skipped,
        Err(why) => return Outcome::Failed(format!("{}: {why}", facts.label())),
    };
    let actor = resolve_actor(feed.as_ref(), &d, settings, services).await;
    let mut subject = String::new();
    let mut result = Ok(Delivered::default());
    for part in &parts {
        let mut email = render(&part.decision, &actor);
        if !part.told.is_empty() {
            email = email.with_notice(&format!(
                "sgwatch's early warning told you already: {}. This email says what is new.",
                part.told.join(", ")
            ));
        }
        if subject.is_empty() {
            subject = email.subject.clone();
        }
        let delivered = deliver(
            settings,
            services,
            invocation,
            &part.decision.recipients,
            &email,
            &mut ledger,
        )
        .await;
        result = match (result, delivered) {
            (Ok(mut all), Ok(more)) => {
                all.merge(more);
                Ok(all)
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        if result.is_err() {
            break;
        }
    }
    // The destinations are told whatever became of the email, and the email never waits on them.
    if !d.destinations.is_empty() {
        let whole = render(&d, &actor);
        if subject.is_empty() {
            subject = whole.subject.clone();
        }
        let posted = post_destinations(
            settings,
            services,
            invocation,
            &d,
            &actor,
            &whole,
            &mut ledger,
        )
        .await;
        result = match (result, posted) {
            // No owner is emailed and every destination refused the change for good: the
            // fallback recipient is told, and the change is parked.
            (Ok(mut delivered), Ok(refused))
                if d.recipients.is_empty() && refused.len() == d.destinations.len() =>
            {
                let told = tell_fallback_of_refusals(
                    settings,
                    services,
                    invocation,
                    &whole,
                    &refused,
                    &mut ledger,
                )
                .await;
                match told {
                    Ok(more) => {
                        delivered.merge(more);
                        delivered.unposted = refused;
                        Ok(delivered)
                    }
                    Err(e) => Err(e),
                }
            }
            (Ok(delivered), Ok(_)) => Ok(delivered),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        };
    }
    finish(
        result, &facts, &subject, original, ledger, services, invocation,
    )
    .await
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
        capture - feed::LOOK_BACK_SECS,
        capture + feed::LOOK_AHEAD_SECS,
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
        let callers = feed::callers(&feed.calls, &d.analysis);
        if !callers.is_empty() {
            return ActorLookup::Feed(callers);
        }
        why_not_feed = Some(format!(
            "the actor feed has no call on this group in the {} minutes before the change",
            feed::LOOK_BACK_SECS / 60
        ));
    }
    let fallback = if settings.lookup_actor {
        actor::lookup(
            &services.cloudtrail,
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
    let recorded = match &services.dedupe {
        None => {
            warn!(
                message_id,
                "the actor feed needs SGWATCH_IDEMPOTENCY_TABLE; the call is not kept"
            );
            false
        }
        // A lost record costs only the actor's name (LookupEvents is the fallback): never an error.
        Some(table) => match feed_store::record(table, call).await {
            Ok(_) => true,
            Err(e) => {
                warn!(message_id, event_id = %call.event_id, error = %e, "the call could not be recorded in the actor feed");
                false
            }
        },
    };
    // A rewritten rule (ModifySecurityGroupRules) opens something only if it is ingress, which
    // the call does not say: read from the rule itself, and only when a warning may follow.
    let resolved;
    let call = match settings.early_warning {
        Some(_) if !call.modified.is_empty() && !call.failed() => {
            resolved = modified_ingress(message_id, call, services).await;
            &resolved
        }
        _ => call,
    };
    // The rules the call asks for from a prefix list are rated by what the list holds.
    let listed;
    let lists = prefix_lists::wanted(&call.requested);
    let call = if settings.early_warning.is_some() && !lists.is_empty() {
        let found = prefix_lists::container()
            .resolve(&services.ec2, &lists)
            .await;
        let mut c = call.clone();
        prefix_lists::apply(&mut c.requested, &found);
        listed = c;
        &listed
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

/// `call` with the rules it rewrote that are ingress among its requested rules; as it was when
/// their direction cannot be read (the Config notification still tells, minutes later).
async fn modified_ingress(message_id: &str, call: &ApiCall, services: &Services) -> ApiCall {
    let ids: Vec<String> = call.modified.iter().map(|m| m.rule_id.clone()).collect();
    let mut is_egress = std::collections::BTreeMap::new();
    for group in &call.group_ids {
        match groups::rule_directions(&services.ec2, group, &ids).await {
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
    let now = match groups::describe(&services.ec2, group).await {
        Ok(Some(now)) => now,
        Ok(None) => {
            info!(message_id, group, "no early warning: the group is gone");
            return Outcome::Skipped;
        }
        // The Config notification still tells, minutes later.
        Err(e) => {
            warn!(message_id, group, error = %e, "no early warning: the group's tags could not be read");
            return Outcome::Skipped;
        }
    };
    let Some(d) = early::decide_warning(call, group, &now, level, &settings.policy) else {
        return Outcome::Skipped;
    };
    info!(
        message_id,
        resource_id = group,
        severity = %d.analysis.severity,
        notify = d.notify,
        recipients = d.recipients.len(),
        reason = %d.reason,
        "early warning decision"
    );
    if !d.notify {
        return Outcome::Skipped;
    }
    let facts = Facts {
        message_id: message_id.to_owned(),
        resource_type: Some(d.analysis.subject.resource_type.clone()),
        resource_id: Some(group.to_owned()),
        account: Some(call.account.clone()),
        region: Some(call.region.clone()),
        state_id: Some(format!("early warning {}", call.event_id)),
        capture_time: Some(call.event_time.clone()),
        change_type: Some(call.event_name.clone()),
    };
    // Keyed by the call: a redelivered event warns no one twice. `early/` keys cannot be a
    // configuration state's (those start with the account id).
    let key = format!(
        "early/{}/{}/{group}/{}",
        call.account, call.region, call.event_id
    );
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
    let actor = ActorLookup::Feed(feed::callers(std::slice::from_ref(call), &d.analysis));
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
    if let (Ok(_), Some(table)) = (&result, &services.dedupe) {
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
                .filter(|r| ledger.has(r))
                .map(|r| r.to_ascii_lowercase())
                .collect(),
        };
        if let Err(e) = feed_store::record_warning(table, call, group, &warning).await {
            warn!(message_id, group, error = %e, "the early warning could not be recorded; the Config notification will tell it again");
        }
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

/// Settles a delivery: marks the ledger sent, parks what was rejected for good (with the event,
/// for a replay once it is fixed), or gives the claim's lease back for Lambda's retry.
async fn finish(
    result: Result<Delivered, DeliverError>,
    facts: &Facts,
    subject: &str,
    original: &Value,
    mut ledger: Ledger,
    services: &Services,
    invocation: &Invocation,
) -> Outcome {
    let message_id = facts.message_id.as_str();
    let delivered = match result {
        Ok(delivered) => delivered,
        Err(e) => {
            error!(facts = ?facts, error = %e, "not sent");
            ledger.release(invocation).await;
            return Outcome::Failed(format!("{}: {e}", facts.label()));
        }
    };
    info!(message_id, resource_id = ?facts.resource_id, ses_message_ids = ?delivered.ids, subject, "sent");
    let mut outcome = Outcome::Sent;
    if !delivered.unreported.is_empty() || !delivered.unposted.is_empty() {
        match park(services, facts, subject, original, &delivered, &mut ledger).await {
            Ok(true) => outcome = Outcome::Parked,
            Ok(false) if delivered.ids.is_empty() && ledger.delivered.is_empty() => {
                // Nothing delivered and nowhere to park: Lambda's retries end in its failure queue.
                ledger.release(invocation).await;
                let first = match (delivered.unreported.first(), delivered.unposted.first()) {
                    (Some((_, e)), _) => e.to_string(),
                    (None, Some((_, e))) => e.to_string(),
                    (None, None) => "nothing delivered".to_owned(),
                };
                return Outcome::Failed(format!("{}: {first}", facts.label()));
            }
            Ok(false) => {}
            Err(e) => {
                error!(facts = ?facts, error = %e, "could not park the rejected recipients");
                ledger.release(invocation).await;
                return Outcome::Failed(format!("{}: {e}", facts.label()));
            }
        }
    }
    let settled = match outcome {
        // A replay of the parked event may claim the state again, for what the ledger lacks.
        Outcome::Parked => ledger.mark_parked().await,
        _ => ledger.mark_sent().await,
    };
    if let Err(e) = settled {
        // Every destination is in the ledger: a late duplicate finds nothing left to send.
        warn!(message_id, error = %e, "could not record the notification as sent");
    }
    outcome
}

/// The delivery ledger of one configuration state, claimed for this invocation.
struct Ledger {
    dedupe: Option<Dedupe>,
    key: Option<String>,
    /// Destinations already emailed (lower case), by this attempt or an earlier one.
    delivered: BTreeSet<String>,
}

impl Ledger {
    /// Claims `key`; `Ok(None)` when an earlier delivery handled everything.
    async fn claim(
        services: &Services,
        key: Option<String>,
        capture_time: Option<&str>,
        invocation: &Invocation,
    ) -> Result<Option<Ledger>, String> {
        let unkeyed = Ledger {
            dedupe: None,
            key: None,
            delivered: BTreeSet::new(),
        };
        let (Some(dedupe), Some(key)) = (&services.dedupe, key) else {
            return Ok(Some(unkeyed));
        };
        let lease = dedupe::lease_until(invocation.deadline);
        match dedupe
            .claim_captured(&key, &invocation.request_id, lease, capture_time)
            .await
        {
            Ok(Claim::Acquired { delivered }) => {
                if !delivered.is_empty() {
                    info!(
                        key,
                        delivered = delivered.len(),
                        "resuming a partial delivery: some were emailed already"
                    );
                    debug!(key, delivered = ?delivered, "emailed already");
                }
                Ok(Some(Ledger {
                    dedupe: Some(dedupe.clone()),
                    key: Some(key),
                    delivered,
                }))
            }
            Ok(Claim::Unkeyed) => Ok(Some(unkeyed)),
            Ok(Claim::Duplicate) => {
                info!(
                    key,
                    "duplicate delivery: this configuration state was already emailed"
                );
                Ok(None)
            }
            Ok(Claim::InProgress) => {
                let why =
                    "another delivery of this configuration state is in progress; retried later";
                warn!(key, "{why}");
                Err(why.to_owned())
            }
            Err(e) => {
                error!(key, error = %e, "not sent");
                Err(e.to_string())
            }
        }
    }

    fn has(&self, destination: &str) -> bool {
        self.delivered.contains(&destination.to_ascii_lowercase())
    }

    /// Records `destinations` as emailed, under SES's `message_id` when one was sent.
    async fn record(
        &mut self,
        destinations: &[String],
        message_id: Option<&str>,
    ) -> Result<(), DedupeError> {
        // A string set holds no duplicates; "A@x" and "a@x" are one mailbox to SES.
        let lower: Vec<String> = destinations
            .iter()
            .map(|d| d.to_ascii_lowercase())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if let (Some(dedupe), Some(key)) = (&self.dedupe, &self.key) {
            dedupe.record_sent(key, &lower, message_id).await?;
        }
        self.delivered.extend(lower);
        Ok(())
    }

    async fn mark_sent(&self) -> Result<(), DedupeError> {
        match (&self.dedupe, &self.key) {
            (Some(dedupe), Some(key)) => dedupe.mark_sent(key).await,
            _ => Ok(()),
        }
    }

    async fn mark_parked(&self) -> Result<(), DedupeError> {
        match (&self.dedupe, &self.key) {
            (Some(dedupe), Some(key)) => dedupe.mark_parked(key).await,
            _ => Ok(()),
        }
    }

    async fn release(&self, invocation: &Invocation) {
        if let (Some(dedupe), Some(key)) = (&self.dedupe, &self.key) {
            if let Err(e) = dedupe.release(key, &invocation.request_id).await {
                warn!(key, error = %e, "could not give the claim back; the retry waits for its lease");
            }
        }
    }
}

/// Why a delivery stopped; every case is retried by Lambda, which resumes from the ledger.
#[derive(Debug, thiserror::Error)]
enum DeliverError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("{0}; the email went out but its record did not, so the retry may send it again")]
    Ledger(#[from] DedupeError),
    #[error("{}s left before the invocation's deadline, too little to start a send; Lambda's retry resumes it", .0.as_secs())]
    Deadline(Duration),
    #[error(transparent)]
    Post(#[from] PostError),
}

/// Ledger name of a destination: destinations and email addresses share the ledger.
fn destination_entry(name: &str) -> String {
    format!("destination:{name}")
}

/// Tells the fallback recipient (when there is one) of a change no owner is emailed and every
/// destination refused: the email with the refusals in a notice. Once: the ledger remembers.
async fn tell_fallback_of_refusals(
    settings: &Settings,
    services: &Services,
    invocation: &Invocation,
    email: &Email,
    refused: &[(String, PostError)],
    ledger: &mut Ledger,
) -> Result<Delivered, DeliverError> {
    let Some(fallback) = &settings.policy.fallback_recipient else {
        return Ok(Delivered::default());
    };
    let why: Vec<String> = refused.iter().map(|(_, e)| e.to_string()).collect();
    let notice = format!(
        "No owner is emailed for this group and every destination refused the post: {}. You \
         receive it as sgwatch's fallback recipient.",
        why.join("; ")
    );
    deliver(
        settings,
        services,
        invocation,
        std::slice::from_ref(fallback),
        &email.with_notice(&notice),
        ledger,
    )
    .await
}

/// Posts to every destination of the decision not yet in the ledger, recording each. A failure
/// retrying cannot fix (a missing parameter, a refused post) is logged and the others go on, and
/// returned with its destination; a failure that may pass fails the invocation once all were
/// tried, and Lambda's retry posts only where this one did not.
async fn post_destinations(
    settings: &Settings,
    services: &Services,
    invocation: &Invocation,
    d: &Decision,
    actor: &ActorLookup,
    email: &Email,
    ledger: &mut Ledger,
) -> Result<Vec<(String, PostError)>, DeliverError> {
    let pending: Vec<&Destination> = d
        .destinations
        .iter()
        .filter(|name| !ledger.has(&destination_entry(name)))
        .filter_map(|name| {
            settings
                .policy
                .destinations
                .iter()
                .find(|x| &x.name == name)
        })
        .collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let Some(poster) = &services.poster else {
        error!(destinations = ?d.destinations, "destinations chosen but none configured to post with");
        return Ok(Vec::new());
    };
    let mut retry: Option<PostError> = None;
    let mut refused: Vec<(String, PostError)> = Vec::new();
    for destination in pending {
        invocation.ensure(SEND_MARGIN)?;
        let name = destination.name.as_str();
        // The post, its SSM reads included, ends in time for the ledger write after it.
        let deadline = invocation
            .time_left()
            .map(|left| std::time::Instant::now() + left.saturating_sub(dedupe::RECORD_WORST_CASE));
        let delivery = webhook::delivery(ledger.key.as_deref().unwrap_or("-"), name);
        let post = || async {
            let payload =
                payload(poster, destination, d, actor, email, deadline, &delivery).await?;
            poster.post(destination, &payload, deadline).await
        };
        let mut posted = post().await;
        // A rotated URL or key: read the parameters again, and post once more if one changed.
        if let Err(PostError::Refused {
            status: 401 | 403 | 404,
            ..
        }) = &posted
        {
            if poster.refresh(destination, deadline).await {
                info!(
                    destination = name,
                    "refused, and its parameters changed: posting once more"
                );
                posted = post().await;
            }
        }
        match posted {
            Ok(()) => {
                ledger.record(&[destination_entry(name)], None).await?;
                info!(destination = name, kind = %destination.kind, "posted");
            }
            Err(e) if e.is_transient() => {
                error!(destination = name, error = %e, "not posted; the invocation fails so Lambda retries it");
                retry.get_or_insert(e);
            }
            Err(e) => {
                error!(destination = name, error = %e, "not posted, and retrying cannot help; the other destinations and the email go on");
                refused.push((name.to_owned(), e));
            }
        }
    }
    match retry {
        Some(e) => Err(e.into()),
        None => Ok(refused),
    }
}

/// What `destination` is sent: its kind's rendering of the decision.
async fn payload(
    poster: &Poster,
    destination: &Destination,
    d: &Decision,
    actor: &ActorLookup,
    email: &Email,
    deadline: Option<std::time::Instant>,
    delivery: &str,
) -> Result<Payload, PostError> {
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
    Ok(match destination.kind {
        Kind::Slack => Payload {
            body: json(slack::message(d, actor)),
            headers: Vec::new(),
        },
        Kind::Teams => Payload {
            body: json(teams::message(d, actor)),
            headers: Vec::new(),
        },
        Kind::Webhook => {
            let body = webhook::body(d, email);
            let key_parameter = destination.key_parameter.as_deref().unwrap_or_default();
            let key = poster
                .parameter_until(&destination.name, key_parameter, deadline)
                .await?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let headers =
                webhook::headers(key.as_bytes(), now, delivery, &body).ok_or_else(|| {
                    PostError::Parameter {
                        destination: destination.name.clone(),
                        parameter: key_parameter.to_owned(),
                        reason: "the key cannot key an HMAC".to_owned(),
                        transient: false,
                    }
                })?;
            Payload { body, headers }
        }
    })
}

/// What a delivery did.
#[derive(Debug, Default)]
struct Delivered {
    ids: Vec<String>,
    /// Rejected for good, each with its reason.
    rejected: Vec<(String, SendError)>,
    /// Rejected recipients no one was told about (no fallback, or the fallback was rejected too).
    unreported: Vec<(String, SendError)>,
    /// Destinations of a change emailed to no owner that all refused it for good (a 4xx).
    unposted: Vec<(String, PostError)>,
}

impl Delivered {
    fn merge(&mut self, other: Delivered) {
        self.ids.extend(other.ids);
        self.rejected.extend(other.rejected);
        self.unreported.extend(other.unreported);
        self.unposted.extend(other.unposted);
    }
}

/// Ledger name of the notice that tells the fallback recipient that SES rejected `rejected`.
fn notice_destination(fallback: &str, rejected: &str) -> String {
    format!("notice:{fallback}:{rejected}")
}

/// Sends to the recipients not yet in the ledger, in batches of at most SES's 50 recipients,
/// recording each batch as it goes; recipients SES rejects for good (it names them) are taken out
/// and the rest of their batch is sent again, and they are reported to the fallback recipient.
/// Anything else (sender, account, throttling, a lost answer) stops the delivery: the invocation
/// fails, and Lambda's retry sends what the ledger lacks.
async fn deliver(
    settings: &Settings,
    services: &Services,
    invocation: &Invocation,
    recipients: &[String],
    email: &Email,
    ledger: &mut Ledger,
) -> Result<Delivered, DeliverError> {
    let ses = &services.ses;
    let sender = &settings.sender;
    let mut out = Delivered::default();
    let mut pending: Vec<String> = Vec::new();
    for r in recipients {
        if !ledger.has(r) && !pending.iter().any(|p| p.eq_ignore_ascii_case(r)) {
            pending.push(r.clone());
        }
    }
    let mut batches: std::collections::VecDeque<Vec<String>> = pending
        .chunks(mail::MAX_RECIPIENTS)
        .map(<[String]>::to_vec)
        .collect();
    while let Some(batch) = batches.pop_front() {
        invocation.ensure(SEND_MARGIN)?;
        match mail::send(ses, sender, &batch, email).await {
            Ok(id) => {
                ledger.record(&batch, Some(&id)).await?;
                out.ids.push(id);
            }
            // SES names whom it rejects (each is in this batch): they are out, and the others
            // go again together. Every round sends or takes someone out, so this ends.
            Err(SendError::Rejected {
                recipients: named,
                reason,
            }) => {
                let rest: Vec<String> = batch
                    .into_iter()
                    .filter(|r| !named.iter().any(|n| n.eq_ignore_ascii_case(r)))
                    .collect();
                for r in named {
                    let e = SendError::Rejected {
                        recipients: vec![r.clone()],
                        reason: reason.clone(),
                    };
                    out.rejected.push((r, e));
                }
                if !rest.is_empty() {
                    batches.push_front(rest);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    for (r, e) in &out.rejected {
        error!(recipient_domain = %logs::domains([r]), reason = %e, "SES rejected a recipient for good; telling the fallback recipient");
        debug!(recipient = %r, "rejected for good");
    }
    if out.rejected.is_empty() {
        return Ok(out);
    }
    let fallback = settings
        .policy
        .fallback_recipient
        .as_ref()
        .filter(|f| !out.rejected.iter().any(|(r, _)| r.eq_ignore_ascii_case(f)));
    let Some(f) = fallback else {
        out.unreported = out.rejected.clone();
        return Ok(out);
    };
    // Each rejected recipient is reported once per notification, in the version of the email
    // they were sent: the versions an early warning splits the email into report each their own.
    let untold: Vec<&(String, SendError)> = out
        .rejected
        .iter()
        .filter(|(r, _)| !ledger.has(&notice_destination(f, r)))
        .collect();
    if untold.is_empty() {
        return Ok(out);
    }
    let notice_to: Vec<String> = untold
        .iter()
        .map(|(r, _)| notice_destination(f, r))
        .collect();
    let why: Vec<String> = untold.iter().map(|(r, e)| format!("{r}: {e}")).collect();
    let notice = format!(
        "SES rejected this email for {}. You receive it as sgwatch's fallback recipient.",
        why.join("; ")
    );
    invocation.ensure(SEND_MARGIN)?;
    match mail::send(
        ses,
        sender,
        std::slice::from_ref(f),
        &email.with_notice(&notice),
    )
    .await
    {
        Ok(id) => {
            ledger.record(&notice_to, Some(&id)).await?;
            out.ids.push(id);
        }
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            error!(recipient_domain = %logs::domains([f]), reason = %e, "SES rejected the fallback recipient too");
            debug!(recipient = %f, "the fallback recipient, rejected for good");
            out.unreported = out.rejected.clone();
            out.unreported.push((f.clone(), e));
        }
    }
    Ok(out)
}

/// A record the handler parks itself, in the failure queue.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Parked<'a> {
    source: &'static str,
    reason: String,
    facts: &'a Facts,
    subject: &'a str,
    rejected: Vec<RejectedRecipient>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    refused: Vec<RefusedDestination>,
    delivered: Vec<String>,
    /// The original event (this record alone): `sgwatch redrive` gives it to the function again.
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'a Value>,
    /// Why the event is not here (it did not fit the queue's message size).
    #[serde(skip_serializing_if = "Option::is_none")]
    event_omitted: Option<String>,
}

#[derive(Debug, Serialize)]
struct RejectedRecipient {
    recipient: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct RefusedDestination {
    destination: String,
    reason: String,
}

/// SQS accepts at most 256 KiB; the facts and reasons stay far below it. Long reasons and long
/// lists are cut so the key facts always fit.
const REASON_MAX_CHARS: usize = 1000;
const PARKED_MAX_RECIPIENTS: usize = 100;
/// SQS's largest message body (256 KiB), less room for SQS's own attributes.
const QUEUE_MAX_BYTES: usize = 256 * 1024 - 1024;

/// Parks what nobody could be told of a notification in the failure queue, with its event
/// (once: the ledger remembers). `Ok(false)` when no queue is configured.
async fn park(
    services: &Services,
    facts: &Facts,
    subject: &str,
    original: &Value,
    delivered: &Delivered,
    ledger: &mut Ledger,
) -> Result<bool, String> {
    let Some(queue) = &services.failure_queue else {
        return Ok(false);
    };
    const PARKED: &str = "failure-queue";
    if ledger.has(PARKED) {
        return Ok(true);
    }
    let cut = |s: String| match s.char_indices().nth(REASON_MAX_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    };
    let reason = match (
        delivered.unreported.is_empty(),
        delivered.unposted.is_empty(),
    ) {
        (false, true) => {
            "SES rejected these recipients for good and no fallback recipient could be told"
        }
        (true, false) => "every destination of the change refused it for good",
        _ => "SES rejected these recipients and every destination refused the change, for good",
    };
    let mut record = Parked {
        source: "sgwatch",
        reason: reason.to_owned(),
        facts,
        subject,
        rejected: delivered
            .unreported
            .iter()
            .take(PARKED_MAX_RECIPIENTS)
            .map(|(r, e)| RejectedRecipient {
                recipient: r.clone(),
                reason: cut(e.to_string()),
            })
            .collect(),
        refused: delivered
            .unposted
            .iter()
            .take(PARKED_MAX_RECIPIENTS)
            .map(|(d, e)| RefusedDestination {
                destination: d.clone(),
                reason: cut(e.to_string()),
            })
            .collect(),
        delivered: ledger
            .delivered
            .iter()
            .take(PARKED_MAX_RECIPIENTS)
            .cloned()
            .collect(),
        event: Some(original),
        event_omitted: None,
    };
    let mut body = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    if body.len() > QUEUE_MAX_BYTES {
        // The facts still say which change it was; its Config history holds the item.
        record.event = None;
        record.event_omitted = Some(format!(
            "the event ({} bytes) does not fit a queue message",
            original.to_string().len()
        ));
        body = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    }
    queue
        .client
        .send_message()
        .queue_url(&queue.url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| {
            format!(
                "could not park in the failure queue: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            )
        })?;
    warn!(facts = ?facts, rejected = record.rejected.len(), refused = record.refused.len(), "parked in the failure queue: {reason}");
    ledger
        .record(&[PARKED.to_owned()], None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// A record parked by the handler because nothing in it could be read: what identifies it and the
/// start of its body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ParkedUnreadable<'a> {
    source: &'static str,
    reason: String,
    facts: &'a Facts,
    /// The first [`crate::message::BODY_EXCERPT_BYTES`] of the SNS message (or, without one,
    /// of the record).
    body: &'a str,
}

/// Parks a record that cannot be read at all (not JSON, no message) in the failure queue, once
/// per message id. Without a queue the invocation fails, so Lambda retries it and then keeps
/// the whole event in its on-failure destination.
async fn park_unreadable(
    message_id: &str,
    why: &ParseError,
    excerpt: &str,
    invocation: &Invocation,
    services: &Services,
) -> Outcome {
    let facts = Facts {
        message_id: message_id.to_owned(),
        ..Facts::default()
    };
    error!(message_id, reason = %why, "a record sgwatch could not read");
    let Some(queue) = &services.failure_queue else {
        return Outcome::Failed(format!(
            "{message_id}: {why} (the record could not be read, and there is no failure queue to park it in)"
        ));
    };
    let key = Some(format!("unreadable/{message_id}")).filter(|_| message_id != "-");
    let mut ledger = match Ledger::claim(services, key, None, invocation).await {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Outcome::Skipped,
        Err(e) => return Outcome::Failed(format!("{message_id}: {e}")),
    };
    const PARKED: &str = "failure-queue";
    if ledger.has(PARKED) {
        return Outcome::Parked;
    }
    let record = ParkedUnreadable {
        source: "sgwatch",
        reason: format!("the record could not be read: {why}"),
        facts: &facts,
        body: excerpt,
    };
    let sent = match serde_json::to_string(&record) {
        Ok(body) => queue
            .client
            .send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        ledger.release(invocation).await;
        return Outcome::Failed(format!(
            "{message_id}: {why}; could not park it in the failure queue: {e}"
        ));
    }
    warn!(
        message_id,
        "parked in the failure queue: a record that could not be read"
    );
    // A lost record costs at most a second parked copy.
    if let Err(e) = ledger.record(&[PARKED.to_owned()], None).await {
        warn!(message_id, error = %e, "could not record the parked record");
    } else if let Err(e) = ledger.mark_sent().await {
        warn!(message_id, error = %e, "could not record the parked record");
    }
    Outcome::Parked
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
    let key = Some(format!("unreadable/{}", facts.message_id)).filter(|_| facts.message_id != "-");
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

/// "A change we could not read fully", with everything that identifies it.
fn degraded_email(facts: &Facts, why: &str) -> Email {
    let what = [&facts.resource_type, &facts.resource_id]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let what = if what.is_empty() {
        "a resource".to_owned()
    } else {
        what
    };
    // The subject drops what it cannot show; the body shows it ([`crate::visible`]).
    let one = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let subject: String = one(&stripped(&format!(
        "[sgwatch] a change to {what} could not be read"
    )))
    .chars()
    .take(200)
    .collect();
    let mut lines = vec![
        format!("AWS Config reported a change to {what} that sgwatch could not read fully."),
        format!("Why: {why}"),
        format!("Notification: {}", facts.message_id),
    ];
    for (label, value) in [
        ("Account", &facts.account),
        ("Region", &facts.region),
        ("Configuration state", &facts.state_id),
    ] {
        if let Some(v) = value {
            lines.push(format!("{label}: {v}"));
        }
    }
    lines.push(
        "The full item is in the resource's AWS Config history (Resource timeline in the console)."
            .to_owned(),
    );
    let lines: Vec<String> = lines.iter().map(|l| one(&visible(l))).collect();
    let html = format!(
        "<html><body style=\"font-family:sans-serif\">{}</body></html>",
        lines
            .iter()
            .map(|l| format!("<p>{}</p>", html_escape::encode_text(l)))
            .collect::<String>()
    );
    Email {
        subject,
        text: lines.join("\n") + "\n",
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailOutput};
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
    use aws_sdk_sesv2::Client as Ses;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    #[test]
    fn only_a_deadline_lambda_could_give_bounds_the_sends() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let in_a_minute = now + Duration::from_secs(60);
        assert_eq!(plausible_deadline(ms(in_a_minute), now), Some(in_a_minute));
        // cargo-lambda's emulator: a constant, long past.
        assert_eq!(plausible_deadline(600_000, now), None);
        assert_eq!(plausible_deadline(0, now), None);
        assert_eq!(
            plausible_deadline(ms(now - Duration::from_secs(1)), now),
            None
        );
        assert_eq!(
            plausible_deadline(ms(now + Duration::from_secs(3600)), now),
            None
        );
        assert_eq!(plausible_deadline(u64::MAX, now), None);
    }

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

    #[test]
    fn the_degraded_email_hides_no_character_and_its_subject_carries_none() {
        let facts = Facts {
            message_id: "m-1".into(),
            resource_type: Some("AWS::EC2::SecurityGroup".into()),
            resource_id: Some("sg-1\u{0}\u{1b}[2J\u{202e}exe.\u{2028}Bcc: x".into()),
            account: Some("123456789012\u{200b}".into()),
            ..Facts::default()
        };
        let email = degraded_email(&facts, "not JSON");
        for c in ['\u{0}', '\u{1b}', '\u{202e}', '\u{2028}', '\u{200b}', '\r'] {
            assert!(!email.subject.contains(c), "{:?}", email.subject);
            assert!(!email.text.contains(c), "{:?}", email.text);
            assert!(!email.html.contains(c), "{:?}", email.html);
        }
        assert!(!email.subject.contains('\n'), "{:?}", email.subject);
        assert!(
            !email.text.lines().any(|l| l.starts_with("Bcc:")),
            "{:?}",
            email.text
        );
        assert!(!email.subject.contains("<U+"), "{}", email.subject);
        assert!(
            email.subject.contains("sg-1[2Jexe. Bcc: x"),
            "{}",
            email.subject
        );
        assert!(
            email
                .text
                .contains("sg-1<U+0000><U+001B>[2J<U+202E>exe.<U+2028>Bcc: x"),
            "{}",
            email.text
        );
        assert!(
            email.text.contains("Account: 123456789012<U+200B>\n"),
            "{}",
            email.text
        );
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
}
