//! `sgwatch redrive`: lists what is parked in the stack's failure queue and, when asked, replays
//! it: each original event is given to the function again, synchronously, and its message is
//! deleted only when the function succeeded. The handler's idempotency table keeps this safe: a
//! notification already emailed is not emailed twice.
//!
//! Four kinds of record land in the queue:
//! - Lambda's on-failure destination record, after the function failed every retry of an
//!   asynchronous event (SNS, EventBridge): `requestContext`, `responseContext`,
//!   `responsePayload` (the error) and `requestPayload`, the original event ("Capturing records
//!   of Lambda asynchronous invocations",
//!   <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html>);
//! - what SNS could not deliver to the function at all (the subscription's redrive policy): the
//!   SNS message itself, as JSON ("Amazon SNS dead-letter queues",
//!   <https://docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html>);
//! - what EventBridge could not deliver (the rule target's dead-letter queue): the event itself,
//!   with the error in message attributes ("Using dead-letter queues to process undelivered
//!   events", <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html>);
//! - in a hub, the events that failed their receives on the hub's queue and that SQS moved to its
//!   dead-letter queue (the queue's redrive policy): the spoke's event itself. Replayed as the
//!   event source mapping gives them to the function, one SQS record, and trusted as only the
//!   hub's queue moves messages there;
//! - the handler's own records (`"source": "sgwatch"`): recipients SES rejected for good, or a
//!   change every destination refused, with no one told. They carry the original event
//!   (`event`): once the fix is made (verify the recipient, leave the sandbox, fix the group's
//!   tags or the destination), a replay sends only to what the ledger lacks. A replay the
//!   handler parks again (still rejected) keeps the message; older records without an event are
//!   listed and kept.
//!
//! A replayed event makes the function email whomever its item's tags name, from the trusted
//! sender, so only a record whose origin redrive can show is replayed ([`Origins`]): a Lambda
//! failure record of the stack's function, an SNS message of one of the stack's topics, an
//! EventBridge event of one of the stack's rules, or the function's own record (the
//! queue's policy lets no one else send). Anything else (a planted record) is listed as
//! `untrusted: kept` with the reason. The queue's policy already refuses every other sender; this
//! is the second lock, for whatever got in before the policy or around it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageSystemAttributeName,
};
use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use sgwatch_handler::ledger::{self, ParkedRecord, PARKED_SOURCE};

use crate::aws::{error_text, Place};
use crate::deploy::stack::{self, Deployed};

/// How long the listed messages stay hidden from other readers while redrive works on them.
const VISIBILITY_SECS: i32 = 120;
/// SQS hands out at most 10 messages per receive.
const RECEIVE_BATCH: usize = 10;

#[derive(Debug, Clone, Args)]
pub struct RedriveArgs {
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
    /// Look at no more than this many parked messages
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub max: u32,
    /// Only list what is parked, even with --yes
    #[arg(long)]
    pub dry_run: bool,
    /// Invoke this function instead of the stack's
    #[arg(long)]
    pub function_name: Option<String>,
    /// Send the invocations to this endpoint (e.g. a local Lambda emulator such as `cargo lambda watch`)
    #[arg(long)]
    pub lambda_endpoint_url: Option<String>,
}

/// Why the failure queue could not be read or replayed; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("cannot read the failure queue {queue} ({place}): {detail}")]
    Queue {
        queue: String,
        place: Place,
        detail: String,
    },
}

/// What a parked message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Lambda's on-failure record: the function failed every retry.
    LambdaFailure,
    /// SNS could not deliver the notification to the function.
    SnsUndelivered,
    /// EventBridge could not deliver the event to the function.
    EventbridgeUndelivered,
    /// The hub's function failed the event on every receive from the hub's queue.
    HubUndelivered,
    /// The handler parked what no one could be told: recipients SES rejected for good, or a
    /// change every destination refused.
    RejectedRecipients,
    /// Something else.
    Unknown,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::LambdaFailure => "function failed every retry",
            Kind::SnsUndelivered => "SNS could not deliver",
            Kind::EventbridgeUndelivered => "EventBridge could not deliver",
            Kind::HubUndelivered => "failed every receive on the hub's queue",
            Kind::RejectedRecipients => "parked by the handler: no one could be told",
            Kind::Unknown => "not a record sgwatch knows",
        })
    }
}

/// A parked message, read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub kind: Kind,
    /// What the record says it came from: the function (a Lambda failure record's
    /// `requestContext.functionArn`, with its qualifier), topic or rule ARN.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The resources (security groups) its notifications are about.
    pub groups: Vec<String>,
    /// The error recorded with it.
    pub error: Option<String>,
    /// The event to give the function again; none when there is nothing to replay.
    #[serde(skip)]
    pub event: Option<Value>,
}

/// Reads a parked message's body (and its message attributes, where SNS and EventBridge put the
/// error). Pure.
pub fn read(body: &str, attributes: &HashMap<String, String>) -> Record {
    let attribute_error = || {
        ["ERROR_MESSAGE", "ErrorMessage", "ERROR_CODE", "ErrorCode"]
            .iter()
            .find_map(|k| attributes.get(*k).cloned())
    };
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Record::unknown();
    };
    // Keyed on `requestContext`: Lambda leaves `requestPayload` out of a record that would be too
    // large for the destination ("Capturing records of Lambda asynchronous invocations"), and
    // such a record still names the function and the error.
    if v["requestContext"].is_object() {
        return lambda_failure(&v);
    }
    if v["source"] == PARKED_SOURCE {
        return parked_by_the_handler(&v);
    }
    if v["Type"] == "Notification" && v["Message"].is_string() {
        // The SNS message as SNS delivers it to Lambda: one record in an SNS event.
        // https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html
        let event = json!({"Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": v["TopicArn"],
            "Sns": v,
        }]});
        return Record {
            kind: Kind::SnsUndelivered,
            origin: v["TopicArn"].as_str().map(str::to_owned),
            groups: groups(&event),
            error: attribute_error(),
            event: Some(event),
        };
    }
    if v.get("detail-type").is_some() && v.get("detail").is_some() {
        return Record {
            kind: Kind::EventbridgeUndelivered,
            // EventBridge names the rule in the message attributes of what it parks.
            origin: attributes.get("RULE_ARN").cloned(),
            groups: groups(&v),
            error: attribute_error(),
            event: Some(v),
        };
    }
    Record::unknown()
}

impl Record {
    /// A message sgwatch does not know: listed, never replayed.
    fn unknown() -> Record {
        Record {
            kind: Kind::Unknown,
            origin: None,
            groups: Vec::new(),
            error: None,
            event: None,
        }
    }
}

/// A message of the hub's dead-letter queue: the spoke's event, given to the function again as
/// the event source mapping gives it, one SQS record from the hub's queue
/// (<https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html>). Pure.
pub fn read_hub(message_id: &str, body: &str, hub_queue_arn: &str) -> Record {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return Record::unknown();
    };
    let region = hub_queue_arn.split(':').nth(3).unwrap_or_default();
    let event = json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": "redrive",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": hub_queue_arn,
        "awsRegion": region,
    }]});
    Record {
        kind: Kind::HubUndelivered,
        origin: Some(hub_queue_arn.to_owned()),
        groups: groups(&v),
        error: None,
        event: Some(event),
    }
}

/// Lambda's on-failure record: the function, its error, and the original event when Lambda kept
/// it.
fn lambda_failure(v: &Value) -> Record {
    let response = &v["responsePayload"];
    let error = match (
        response["errorType"].as_str(),
        response["errorMessage"].as_str(),
    ) {
        (Some(t), Some(m)) => Some(format!("{t}: {m}")),
        (None, Some(m)) => Some(m.to_owned()),
        _ => v["requestContext"]["condition"].as_str().map(|c| {
            format!(
                "{c} ({})",
                v["responseContext"]["functionError"]
                    .as_str()
                    .unwrap_or("no error recorded")
            )
        }),
    };
    let event = v["requestPayload"].clone();
    Record {
        kind: Kind::LambdaFailure,
        origin: v["requestContext"]["functionArn"]
            .as_str()
            .map(str::to_owned),
        groups: groups(&event),
        error,
        event: Some(event).filter(|e| !e.is_null()),
    }
}

/// The handler's own record: what no one could be told, with the original event, or a record
/// that could not be read at all.
fn parked_by_the_handler(v: &Value) -> Record {
    let Some(parked) = ParkedRecord::from_value(v) else {
        return Record::unknown();
    };
    let rejected: Vec<String> = match &parked.what {
        ledger::Parked::Change { rejected, .. } => rejected
            .iter()
            .map(|r| format!("{}: {}", r.recipient, r.reason))
            .collect(),
        ledger::Parked::Unreadable { .. } => Vec::new(),
    };
    let reason = &parked.reason;
    Record {
        kind: Kind::RejectedRecipients,
        origin: None,
        groups: parked.facts.resource_id.iter().cloned().collect(),
        error: Some(if rejected.is_empty() {
            reason.clone()
        } else {
            format!("{reason} ({})", rejected.join("; "))
        }),
        event: parked.event().cloned(),
    }
}

/// Where a record may come from to be replayed: the stack's function, topics and rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    pub function_arn: Option<String>,
    /// The stack's topic and the adopted delivery channel's.
    pub topics: Vec<String>,
    /// The stack's EventBridge rules.
    pub rules: Vec<String>,
}

impl Origins {
    /// Why a record with an event to replay may not be replayed; `None` when its origin is the
    /// stack's. A Lambda failure record names the function with a qualifier (`:$LATEST`, a
    /// version or alias): the function is what comes before it.
    pub fn distrust(&self, record: &Record) -> Option<String> {
        record.event.as_ref()?;
        let origin = record.origin.as_deref().unwrap_or_default();
        let (trusted, what) = match record.kind {
            Kind::LambdaFailure => {
                let function = self.function_arn.as_deref().unwrap_or_default();
                let same = !function.is_empty()
                    && (origin == function
                        || origin
                            .strip_prefix(function)
                            .is_some_and(|q| q.starts_with(':') && !q[1..].contains(':')));
                (same, "the stack's function")
            }
            Kind::SnsUndelivered => (
                self.topics.iter().any(|t| t == origin),
                "the stack's topic or the adopted channel's",
            ),
            Kind::EventbridgeUndelivered => (
                self.rules.iter().any(|r| r == origin),
                "one of the stack's rules",
            ),
            // Only the hub's queue moves messages to its dead-letter queue.
            Kind::HubUndelivered => (true, "the hub's queue"),
            // The function's own records: the queue's policy lets only its role send them.
            Kind::RejectedRecipients => (true, "the function's own records"),
            Kind::Unknown => (false, "a known source"),
        };
        (!trusted).then(|| {
            if origin.is_empty() {
                format!("it names no origin; only records from {what} are replayed")
            } else {
                format!("it comes from {}, not {what}", one_line(origin))
            }
        })
    }
}

/// The resource ids an event's notifications are about: SNS records, an EventBridge event, or a
/// bare Config message.
pub fn groups(event: &Value) -> Vec<String> {
    let mut messages: Vec<Value> = Vec::new();
    if let Some(records) = event["Records"].as_array() {
        for r in records {
            match &r["Sns"]["Message"] {
                Value::String(s) => messages.extend(serde_json::from_str::<Value>(s).ok()),
                other => messages.push(other.clone()),
            }
        }
    } else if event.get("detail").is_some() {
        messages.push(event["detail"].clone());
    } else {
        messages.push(event.clone());
    }
    let mut out: Vec<String> = messages
        .iter()
        .filter_map(|m| {
            m["configurationItem"]["resourceId"]
                .as_str()
                .or(m["configurationItemSummary"]["resourceId"].as_str())
                .map(str::to_owned)
        })
        .collect();
    out.dedup();
    out
}

/// One parked message, as listed and (with `--yes`) replayed.
#[derive(Debug, Clone, Serialize)]
pub struct Parked {
    /// SQS's id of the message.
    pub message_id: String,
    #[serde(flatten)]
    pub record: Record,
    /// Seconds since it was parked.
    pub age_secs: u64,
    pub replayable: bool,
    /// Why an event is not replayed although it holds one: its origin is not the stack's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untrusted: Option<String>,
    /// What replaying did: `replayed`, `failed: …`, `kept: …`; none when not replayed.
    pub result: Option<String>,
    /// What the function answered to the replayed event.
    pub answer: Option<Value>,
}

/// What redrive found and did.
#[derive(Debug, Clone, Serialize)]
pub struct Redrive {
    pub queue_url: String,
    /// A hub's dead-letter queue, read after the failure queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hub_dead_letter_queue_url: Option<String>,
    pub messages: Vec<Parked>,
    /// Whether the replayable events were given to the function again.
    pub replayed: bool,
}

impl Redrive {
    /// Some replay failed: the exit code says so.
    pub fn failed(&self) -> bool {
        self.messages
            .iter()
            .any(|m| m.result.as_deref().is_some_and(|r| r.starts_with("failed")))
    }
}

/// `2h 5m`, `3m 20s`, `12s`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s >= 86400 => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl std::fmt::Display for Redrive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queues = match &self.hub_dead_letter_queue_url {
            Some(dlq) => format!(
                "the failure queue ({}) or the hub's dead-letter queue ({dlq})",
                self.queue_url
            ),
            None => format!("the failure queue ({})", self.queue_url),
        };
        if self.messages.is_empty() {
            return writeln!(f, "nothing is parked in {queues}");
        }
        writeln!(f, "{} message(s) parked in {queues}:", self.messages.len())?;
        for m in &self.messages {
            write!(f, "{m}")?;
        }
        self.summary(f)
    }
}

impl Redrive {
    /// What can be replayed, what was, and what stays.
    fn summary(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let replayable = self.messages.iter().filter(|m| m.replayable).count();
        if self.replayed {
            let done = self
                .messages
                .iter()
                .filter(|m| m.result.as_deref() == Some("replayed"))
                .count();
            writeln!(
                f,
                "replayed {done} of {replayable} replayable message(s); each replayed one was deleted"
            )?;
        } else if replayable > 0 {
            writeln!(
                f,
                "{replayable} can be replayed: run `sgwatch redrive --yes` (already emailed \
                 notifications are not sent twice)"
            )?;
        }
        let untrusted = self
            .messages
            .iter()
            .filter(|m| m.untrusted.is_some())
            .count();
        if untrusted > 0 {
            writeln!(
                f,
                "{untrusted} untrusted: kept, never replayed (not from this stack's function,                  topics or rules: see each reason); look at them, then delete them from the queue"
            )?;
        }
        let kept = self.messages.len() - replayable - untrusted;
        if kept > 0 {
            writeln!(
                f,
                "{kept} hold(s) nothing to replay and stay(s) in the queue: fix what the error \
                 says (SES identities, the group's owner tag); delete them from the queue once done"
            )?;
        }
        Ok(())
    }
}

/// The message's lines: what it is, and what became of it.
impl std::fmt::Display for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups = if self.record.groups.is_empty() {
            "-".to_owned()
        } else {
            self.record.groups.join(",")
        };
        writeln!(
            f,
            "  {}  {}  {}  {} ago",
            self.message_id,
            groups,
            self.record.kind,
            age(self.age_secs)
        )?;
        if let (Kind::LambdaFailure, Some(function)) = (&self.record.kind, &self.record.origin) {
            writeln!(f, "      function: {function}")?;
        }
        if let Some(e) = &self.record.error {
            writeln!(f, "      error: {}", one_line(e))?;
        }
        if self.record.kind == Kind::LambdaFailure && self.record.event.is_none() {
            writeln!(
                f,
                "      the event itself is not in the record (Lambda leaves it out when the \
                 record would be too large): find it by the request id in the function's log"
            )?;
        }
        if let Some(why) = &self.untrusted {
            writeln!(f, "      untrusted: kept ({})", one_line(why))?;
        }
        if let Some(r) = &self.result {
            let answer = (self.answer.as_ref())
                .map(|a| format!(" {a}"))
                .unwrap_or_default();
            writeln!(f, "      {r}{answer}")?;
        }
        Ok(())
    }
}

fn one_line(s: &str) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// The line `status` shows when events are parked; none when the queue is empty.
pub fn parked_line(count: u64) -> Option<String> {
    (count > 0).then(|| {
        format!("{count} events parked in the failure queue; replay with `sgwatch redrive --yes`")
    })
}

/// Lists the failure queue (and a hub's dead-letter queue) and, when `replay`, gives each
/// replayable event to the function.
pub async fn run(
    args: &RedriveArgs,
    config: &SdkConfig,
    replay: bool,
) -> Result<Redrive, crate::Error> {
    let place = crate::aws::place(config).await?;
    let cf = crate::aws::cloudformation(config);
    let deployed = Deployed::require(&cf, &args.stack_name, &place).await?;
    let outputs = &deployed.outputs;
    let queue_url = stack::required(
        &outputs.failure_queue_url,
        &args.stack_name,
        "FailureQueueUrl",
    )?
    .to_owned();
    let origins = origins(&cf, &args.stack_name, &deployed, &place).await;
    let sqs = crate::aws::sqs(config);
    let mut queues = vec![(queue_url.clone(), None)];
    if let (Some(url), Some(arn)) = (&outputs.hub_dead_letter_queue_url, &outputs.hub_queue_arn) {
        queues.push((url.clone(), Some(arn.as_str())));
    }
    let replaying = if replay {
        let function = match &args.function_name {
            Some(f) => f.clone(),
            None => stack::required(&outputs.function_name, &args.stack_name, "FunctionName")?
                .to_owned(),
        };
        let mut lambda_config = aws_sdk_lambda::config::Builder::from(config);
        if let Some(url) = &args.lambda_endpoint_url {
            lambda_config = lambda_config.endpoint_url(url);
        }
        Some((
            aws_sdk_lambda::Client::from_conf(lambda_config.build()),
            function,
        ))
    } else {
        None
    };
    let now = SystemTime::now();
    let mut all = Vec::new();
    let mut left = args.max as usize;
    for (url, hub_queue_arn) in &queues {
        let received = receive(&sqs, url, left)
            .await
            .map_err(|detail| RedriveError::Queue {
                queue: url.clone(),
                place: place.clone(),
                detail,
            })?;
        left = left.saturating_sub(received.len());
        let mut messages: Vec<(Parked, String)> = received
            .iter()
            .map(|m| parked(m, &origins, *hub_queue_arn, now))
            .collect();
        if let Some((lambda, function)) = &replaying {
            let queue = Queue { sqs: &sqs, url };
            replay_all(&queue, lambda, function, &mut messages).await;
        }
        // What was not deleted is visible again at once, for status and the next redrive.
        hide(&sqs, url, &messages, 0).await;
        all.extend(messages.into_iter().map(|(p, _)| p));
    }
    Ok(Redrive {
        queue_url,
        hub_dead_letter_queue_url: outputs.hub_dead_letter_queue_url.clone(),
        messages: all,
        replayed: replay,
    })
}

/// A received message as listed, with its receipt handle (emptied once it is deleted).
fn parked(
    m: &Message,
    origins: &Origins,
    hub_queue_arn: Option<&str>,
    now: SystemTime,
) -> (Parked, String) {
    let attributes: HashMap<String, String> = m
        .message_attributes()
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.string_value()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let body = m.body().unwrap_or_default();
    let record = match hub_queue_arn {
        Some(arn) => read_hub(m.message_id().unwrap_or_default(), body, arn),
        None => read(body, &attributes),
    };
    let sent_ms = m
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|t| t.parse::<u64>().ok());
    let age_secs = sent_ms
        .map(|ms| {
            now.duration_since(UNIX_EPOCH + Duration::from_millis(ms))
                .unwrap_or_default()
                .as_secs()
        })
        .unwrap_or_default();
    let untrusted = origins.distrust(&record);
    let parked = Parked {
        message_id: m.message_id().unwrap_or_default().to_owned(),
        replayable: record.event.is_some() && untrusted.is_none(),
        untrusted,
        record,
        age_secs,
        result: None,
        answer: None,
    };
    (parked, m.receipt_handle().unwrap_or_default().to_owned())
}

/// The failure queue, as the replay deletes from it.
struct Queue<'a> {
    sqs: &'a aws_sdk_sqs::Client,
    url: &'a str,
}

/// Gives each replayable event to the function, in order, keeping the messages not yet reached
/// hidden from other readers.
async fn replay_all(
    queue: &Queue<'_>,
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    messages: &mut [(Parked, String)],
) {
    // The messages were hidden for VISIBILITY_SECS when received; a run of slow invocations
    // can outlast that (and any fixed time: SQS hides a message for 12 hours at most), so
    // as the run reaches each message, the ones still held are hidden again when little of
    // that time is left.
    let mut hidden_until = std::time::Instant::now() + Duration::from_secs(VISIBILITY_SECS as u64);
    for i in 0..messages.len() {
        let now = std::time::Instant::now();
        if extend_due(hidden_until, now) {
            hide(queue.sqs, queue.url, &messages[i..], VISIBILITY_SECS).await;
            hidden_until = now + Duration::from_secs(VISIBILITY_SECS as u64);
        }
        let (parked, receipt) = &mut messages[i];
        parked.result = Some(replay_one(queue, lambda, function, parked, receipt).await);
    }
}

/// Replays one parked message, deleting it from the queue once the function has taken it;
/// returns what happened, as [`Parked::result`] says it.
async fn replay_one(
    queue: &Queue<'_>,
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    parked: &mut Parked,
    receipt: &mut String,
) -> String {
    if let Some(why) = &parked.untrusted {
        return format!("untrusted: kept ({why})");
    }
    let Some(event) = &parked.record.event else {
        return "kept: nothing to replay".to_owned();
    };
    let answer = match invoke(lambda, function, event).await {
        Ok(answer) => answer,
        Err(why) => return format!("failed: {why}"),
    };
    // The handler parked it again (still rejected): this record stays the one.
    let parked_again = parked.record.kind == Kind::RejectedRecipients
        && answer["parked"].as_u64().unwrap_or(0) > 0;
    // An SQS record the function failed comes back in `batchItemFailures`, not as an error.
    let failed_again = answer["batchItemFailures"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    parked.answer = Some(answer);
    if parked_again {
        return "kept: replayed, and still not delivered; fix what the error says".to_owned();
    }
    if failed_again {
        return "failed: the function failed it again; kept in the queue".to_owned();
    }
    match queue
        .sqs
        .delete_message()
        .queue_url(queue.url)
        .receipt_handle(receipt.as_str())
        .send()
        .await
    {
        Ok(_) => {
            receipt.clear();
            "replayed".to_owned()
        }
        Err(e) => format!(
            "failed: replayed, but not deleted from the queue ({}); a second redrive is safe",
            error_text(&e)
        ),
    }
}

/// The stack's function, topics and rules, from its outputs, its `AdoptedTopicArn` parameter and
/// its `EventRule` resource.
async fn origins(
    cf: &aws_sdk_cloudformation::Client,
    stack_name: &str,
    deployed: &Deployed,
    place: &Place,
) -> Origins {
    let outputs = &deployed.outputs;
    let function_arn = outputs.function_arn.clone();
    let partition = function_arn
        .as_deref()
        .map(crate::aws::identity::partition_of)
        .unwrap_or("aws");
    let rule_arn = |name: &str| {
        format!(
            "arn:{partition}:events:{}:{}:rule/{name}",
            place.region, place.account
        )
    };
    let mut topics: Vec<String> = outputs.topic_arn.clone().into_iter().collect();
    topics.extend(deployed.params.adopted_topic_arn.clone());
    let mut rules: Vec<String> = (outputs.actor_feed_rule_name.as_ref())
        .map(|n| rule_arn(n))
        .into_iter()
        .collect();
    // The Config rule has no output: its name is the resource's physical id, when it exists.
    if let Some(name) = stack::physical_id(cf, stack_name, "EventRule").await {
        rules.push(rule_arn(name.rsplit('/').next().unwrap_or(&name)));
    }
    Origins {
        function_arn,
        topics,
        rules,
    }
}

/// Receives up to `max` messages, hiding each for [`VISIBILITY_SECS`]; nothing is deleted.
async fn receive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    max: usize,
) -> Result<Vec<Message>, String> {
    let mut out: Vec<Message> = Vec::new();
    while out.len() < max {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages((max - out.len()).min(RECEIVE_BATCH) as i32)
            .visibility_timeout(VISIBILITY_SECS)
            // A short long-poll asks every SQS server, so an empty answer means an empty queue
            // ("Amazon SQS short and long polling",
            // https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-short-and-long-polling.html).
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::SentTimestamp)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| error_text(&e))?;
        let messages = batch.messages();
        if messages.is_empty() {
            break;
        }
        out.extend(messages.iter().cloned());
    }
    Ok(out)
}

/// Whether the messages still held must be hidden again before the next invocation: less than
/// half of their hiding time is left (an invocation may take the function's whole timeout).
fn extend_due(hidden_until: std::time::Instant, now: std::time::Instant) -> bool {
    hidden_until.saturating_duration_since(now) < Duration::from_secs(VISIBILITY_SECS as u64 / 2)
}

/// Sets the visibility timeout of the messages still held (`ChangeMessageVisibilityBatch`): 0
/// makes them visible again at once; more keeps them hidden from other readers that long.
async fn hide(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[(Parked, String)],
    secs: i32,
) {
    let held: Vec<&String> = messages
        .iter()
        .map(|(_, r)| r)
        .filter(|r| !r.is_empty())
        .collect();
    for chunk in held.chunks(RECEIVE_BATCH) {
        let mut request = sqs.change_message_visibility_batch().queue_url(queue_url);
        for (i, receipt) in chunk.iter().enumerate() {
            if let Ok(entry) = ChangeMessageVisibilityBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt.as_str())
                .visibility_timeout(secs)
                .build()
            {
                request = request.entries(entry);
            }
        }
        if let Err(e) = request.send().await {
            tracing::warn!(error = %error_text(&e), secs, "could not change the visibility of the listed messages");
        }
    }
}

/// Gives `event` to the function and waits for its answer; a function error is an error.
async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    event: &Value,
) -> Result<Value, String> {
    let out = lambda
        .invoke()
        .function_name(function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| format!("cannot invoke {function}: {}", DisplayErrorContext(&e)))?;
    let payload: Value = out
        .payload()
        .map(|p| {
            serde_json::from_slice(p.as_ref())
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(p.as_ref()).into_owned()))
        })
        .unwrap_or(Value::Null);
    match out.function_error() {
        Some(kind) => Err(format!(
            "{function} failed again ({kind}): {}; kept in the queue",
            payload["errorMessage"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| payload.to_string())
        )),
        None => Ok(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_message(group: &str) -> Value {
        json!({"messageType": "ConfigurationItemChangeNotification",
               "configurationItem": {"resourceId": group, "resourceType": "AWS::EC2::SecurityGroup"}})
    }

    fn sns_event(group: &str) -> Value {
        json!({"Records": [{"EventSource": "aws:sns",
                            "Sns": {"Type": "Notification", "MessageId": "m-1",
                                    "Message": config_message(group).to_string()}}]})
    }

    #[test]
    fn a_lambda_failure_record_replays_its_request_payload() {
        let body = json!({
            "version": "1.0", "timestamp": "2026-11-28T10:00:00.000Z",
            "requestContext": {"requestId": "r-1", "functionArn": "arn:aws:lambda:us-east-1:1:function:f:$LATEST",
                               "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": sns_event("sg-0abc"),
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "InvocationError", "errorMessage": "1 of 1 notifications could not be delivered"}
        });
        let r = read(&body.to_string(), &HashMap::new());
        assert_eq!(r.kind, Kind::LambdaFailure);
        assert_eq!(r.groups, ["sg-0abc"]);
        assert_eq!(
            r.error.as_deref(),
            Some("InvocationError: 1 of 1 notifications could not be delivered")
        );
        assert_eq!(r.event, Some(sns_event("sg-0abc")));
    }

    /// A record too large for the destination comes without `requestPayload`: still a Lambda
    /// failure, with its function and error, kept (nothing to replay).
    #[test]
    fn a_lambda_failure_record_without_its_payload_names_the_function_and_error() {
        let body = json!({
            "version": "1.0", "timestamp": "2026-11-28T10:00:00.000Z",
            "requestContext": {"requestId": "r-2", "functionArn": "arn:aws:lambda:us-east-1:1:function:f:$LATEST",
                               "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": {"errorType": "InvocationError", "errorMessage": "SES throttled"}
        });
        let r = read(&body.to_string(), &HashMap::new());
        assert_eq!(r.kind, Kind::LambdaFailure);
        assert_eq!(r.error.as_deref(), Some("InvocationError: SES throttled"));
        assert_eq!(
            r.origin.as_deref(),
            Some("arn:aws:lambda:us-east-1:1:function:f:$LATEST")
        );
        assert_eq!(r.event, None);
        let shown = Redrive {
            queue_url: "q".into(),
            hub_dead_letter_queue_url: None,
            messages: vec![Parked {
                message_id: "m-1".into(),
                replayable: false,
                record: r,
                age_secs: 5,
                untrusted: None,
                result: None,
                answer: None,
            }],
            replayed: false,
        }
        .to_string();
        assert!(
            shown.contains("function failed every retry")
                && shown.contains("function: arn:aws:lambda:us-east-1:1:function:f:$LATEST")
                && shown.contains("error: InvocationError: SES throttled")
                && shown.contains("not in the record"),
            "{shown}"
        );
    }

    #[test]
    fn the_held_messages_are_hidden_again_before_their_time_runs_out() {
        let start = std::time::Instant::now();
        let until = start + Duration::from_secs(VISIBILITY_SECS as u64);
        assert!(!extend_due(until, start));
        assert!(!extend_due(until, start + Duration::from_secs(59)));
        assert!(extend_due(until, start + Duration::from_secs(61)));
        assert!(extend_due(until, start + Duration::from_secs(600)));
    }

    #[test]
    fn an_undelivered_sns_message_becomes_the_sns_event_lambda_receives() {
        let body = json!({"Type": "Notification", "MessageId": "m-2",
                          "TopicArn": "arn:aws:sns:us-east-1:1:t",
                          "Message": config_message("sg-0def").to_string(),
                          "Timestamp": "2026-11-28T10:00:00.000Z"});
        let attributes = HashMap::from([("ErrorMessage".to_owned(), "throttled".to_owned())]);
        let r = read(&body.to_string(), &attributes);
        assert_eq!(r.kind, Kind::SnsUndelivered);
        assert_eq!(r.groups, ["sg-0def"]);
        assert_eq!(r.error.as_deref(), Some("throttled"));
        let event = r.event.unwrap();
        assert_eq!(event["Records"][0]["Sns"]["MessageId"], "m-2");
        assert_eq!(event["Records"][0]["EventSource"], "aws:sns");
    }

    #[test]
    fn an_undelivered_eventbridge_event_is_replayed_as_it_is() {
        let body = json!({"source": "aws.config", "detail-type": "Config Configuration Item Change",
                          "detail": config_message("sg-0123")});
        let r = read(&body.to_string(), &HashMap::new());
        assert_eq!(r.kind, Kind::EventbridgeUndelivered);
        assert_eq!(r.groups, ["sg-0123"]);
        assert_eq!(r.event, Some(body));
    }

    #[test]
    fn the_handlers_own_record_is_listed_with_its_rejections_and_not_replayed() {
        let body = json!({"source": "sgwatch", "reason": "SES rejected these recipients for good",
                          "facts": {"messageId": "m-3", "resourceId": "sg-0999"}, "subject": "s",
                          "rejected": [{"recipient": "b@corp.example", "reason": "not verified"}],
                          "delivered": []});
        let r = read(&body.to_string(), &HashMap::new());
        assert_eq!(r.kind, Kind::RejectedRecipients);
        assert_eq!(r.groups, ["sg-0999"]);
        assert!(r.error.unwrap().contains("b@corp.example: not verified"));
        assert_eq!(r.event, None);
    }

    #[test]
    fn the_handlers_own_record_with_its_event_is_replayable() {
        let event = json!({"Records": [{"EventSource": "aws:sns", "Sns": {"MessageId": "m-4",
                           "Message": config_message("sg-0777").to_string()}}]});
        let body = json!({"source": "sgwatch", "reason": "SES rejected these recipients for good",
                          "facts": {"messageId": "m-4", "resourceId": "sg-0777"}, "subject": "s",
                          "rejected": [{"recipient": "b@corp.example", "reason": "not verified"}],
                          "delivered": ["a@corp.example"], "event": event});
        let r = read(&body.to_string(), &HashMap::new());
        assert_eq!(r.kind, Kind::RejectedRecipients);
        assert_eq!(r.groups, ["sg-0777"]);
        assert_eq!(r.event, Some(event));
    }

    #[test]
    fn anything_else_is_unknown_and_kept() {
        for body in ["not json", "{}", "[1,2]"] {
            let r = read(body, &HashMap::new());
            assert_eq!(r.kind, Kind::Unknown, "{body}");
            assert_eq!(r.event, None);
        }
    }

    #[test]
    fn a_hub_dead_letter_message_is_replayed_as_one_sqs_record_of_the_hub_queue() {
        let queue = "arn:aws:sqs:eu-west-1:123456789012:sgwatch-HubQueue-X";
        let event = json!({"version": "0", "id": "e-1", "detail-type": "Config Configuration Item Change",
                           "source": "aws.config", "account": "111111111111", "region": "eu-west-1",
                           "detail": config_message("sg-0123")});
        let body = event.to_string();
        let record = read_hub("m-7", &body, queue);
        assert_eq!(record.kind, Kind::HubUndelivered);
        assert_eq!(record.groups, ["sg-0123"]);
        assert_eq!(Origins::default().distrust(&record), None);
        let replayed = record.event.unwrap();
        let sqs = &replayed["Records"][0];
        assert_eq!(sqs["eventSource"], "aws:sqs");
        assert_eq!(sqs["eventSourceARN"], queue);
        assert_eq!(sqs["awsRegion"], "eu-west-1");
        assert_eq!(sqs["messageId"], "m-7");
        assert_eq!(sqs["body"], body.as_str());
        assert_eq!(read_hub("m-8", "{not json", queue).kind, Kind::Unknown);
    }

    #[test]
    fn only_records_from_the_stacks_function_topics_and_rules_are_trusted() {
        let origins = Origins {
            function_arn: Some("arn:aws:lambda:us-east-1:1:function:sgwatch-handler".into()),
            topics: vec!["arn:aws:sns:us-east-1:1:sgwatch-topic".into()],
            rules: vec!["arn:aws:events:us-east-1:1:rule/sgwatch-feed".into()],
        };
        let failure = |function_arn: &str| {
            json!({"requestContext": {"functionArn": function_arn, "condition": "RetriesExhausted"},
                   "requestPayload": sns_event("sg-0abc"), "responsePayload": {}})
            .to_string()
        };
        let none = HashMap::new();
        let ours = read(
            &failure("arn:aws:lambda:us-east-1:1:function:sgwatch-handler:$LATEST"),
            &none,
        );
        assert_eq!(origins.distrust(&ours), None);
        // A record planted by whoever could send to the queue: another function's, or ours with
        // a suffix that makes it another function.
        for planted in [
            "arn:aws:lambda:us-east-1:1:function:other",
            "arn:aws:lambda:us-east-1:1:function:sgwatch-handler-evil:$LATEST",
            "arn:aws:lambda:us-east-1:1:function:sgwatch-handler:1:x",
        ] {
            let r = read(&failure(planted), &none);
            let why = origins.distrust(&r).expect(planted);
            assert!(why.contains("not the stack's function"), "{why}");
        }
        let no_origin = read(
            &json!({"requestContext": {}, "requestPayload": sns_event("sg-0abc")}).to_string(),
            &none,
        );
        assert!(origins
            .distrust(&no_origin)
            .unwrap()
            .contains("names no origin"));
        let sns = |topic: &str| {
            json!({"Type": "Notification", "TopicArn": topic, "Message": config_message("sg-0def").to_string()})
                .to_string()
        };
        assert_eq!(
            origins.distrust(&read(&sns("arn:aws:sns:us-east-1:1:sgwatch-topic"), &none)),
            None
        );
        assert!(origins
            .distrust(&read(&sns("arn:aws:sns:us-east-1:1:attacker"), &none))
            .is_some());
        let event = json!({"detail-type": "Config Configuration Item Change", "detail": config_message("sg-1")}).to_string();
        let rule = |arn: &str| HashMap::from([("RULE_ARN".to_owned(), arn.to_owned())]);
        assert_eq!(
            origins.distrust(&read(
                &event,
                &rule("arn:aws:events:us-east-1:1:rule/sgwatch-feed")
            )),
            None
        );
        assert!(origins
            .distrust(&read(&event, &rule("arn:aws:events:us-east-1:1:rule/x")))
            .is_some());
        assert!(origins.distrust(&read(&event, &none)).is_some());
        // Records holding nothing to replay are not judged: they are kept anyway.
        assert_eq!(origins.distrust(&read("{}", &none)), None);
    }

    #[test]
    fn status_speaks_only_of_a_queue_that_holds_something() {
        assert_eq!(parked_line(0), None);
        assert_eq!(
            parked_line(3).unwrap(),
            "3 events parked in the failure queue; replay with `sgwatch redrive --yes`"
        );
        assert_eq!(age(59), "59s");
        assert_eq!(age(3700), "1h 1m");
    }
}
