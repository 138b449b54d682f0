//! One email per configuration state and recipient, though SNS and Lambda deliver at least once:
//! the store of the ledger ([`crate::ledger`] defines its keys, attributes and entries).
//!
//! A small DynamoDB record per (account, region, resource, `configurationStateId`) is the
//! delivery ledger of that state:
//! - `status` is `sending` while an attempt holds it and `sent` once every recipient was handled;
//!   `parked` when some recipients were rejected for good and parked in the failure queue: a
//!   replay of the parked event (or a late duplicate) may claim it again, and sends only to the
//!   destinations not in `delivered`, so a recipient fixed meanwhile gets the email;
//! - `owner` is the request id of the attempt holding it, so the SDK retrying our own claim (the
//!   first put succeeded, its answer was lost) reads as acquired, not as someone else's claim;
//! - `lease_until` ends the claim of an attempt that died; it is sized from the invocation's
//!   deadline, past which that attempt cannot be running;
//! - `delivered` is the set of destinations already emailed. A retry sends only to the others,
//!   and the record is never deleted once anything was sent: a failed attempt only gives its
//!   lease back. Records expire through the table's TTL.
//! - what `sgwatch verify` times, kept from the first attempt: `capture_time` (Config's
//!   `configurationItemCaptureTime`), `decided_at_ms` (when the handler claimed the state, epoch
//!   milliseconds), `accepted_at_ms` (when SES first accepted an email for it) and
//!   `ses_message_ids` (the ids SES answered with).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use crate::ledger::{attr, Item, Status};

/// The lease when the invocation's deadline is unknown: longer than the function's timeout.
pub const DEFAULT_LEASE_SECS: u64 = 120;
/// How long a record is kept (the table's TTL removes it). Longer than an event can still come
/// back: Lambda retries it for up to six hours (`MaximumEventAgeInSeconds`), then the failure
/// queue keeps it for fourteen days (`MessageRetentionPeriod`, SQS's maximum), and `redrive`
/// replays it from there. A record gone before that would let a replay email everyone again.
pub const KEEP_SECS: u64 = 15 * 24 * 3600;
/// Attempts at the writes that follow a send (on top of the SDK's own retries): losing one
/// would let a late duplicate send again.
const WRITE_ATTEMPTS: u32 = 3;
/// One of those attempts, the SDK's retries inside it included: a stalled table costs this much,
/// not the client's whole operation timeout.
const WRITE_ATTEMPT_LIMIT: Duration = Duration::from_secs(4);

/// The wait before attempt `n` (counted from 0) of a write that follows a send.
const fn write_backoff(n: u32) -> Duration {
    if n == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(100 << (2 * n))
    }
}

/// The longest a write that follows a send ([`Dedupe::record_sent`], [`Dedupe::mark_sent`]) can
/// take: every attempt at its limit, and the waits between them. A send starts only with at
/// least this much time kept for its record.
pub const RECORD_WORST_CASE: Duration = {
    let mut total = Duration::ZERO;
    let mut n = 0;
    while n < WRITE_ATTEMPTS {
        total = total
            .saturating_add(write_backoff(n))
            .saturating_add(WRITE_ATTEMPT_LIMIT);
        n += 1;
    }
    total
};

/// The outcome of claiming a configuration state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This attempt sends, to every destination not in `delivered`.
    Acquired { delivered: BTreeSet<String> },
    /// Every destination was handled by an earlier delivery.
    Duplicate,
    /// Another delivery holds the claim and its lease runs: retry later rather than skip, or a
    /// failed attempt would lose the email.
    InProgress,
    /// No state id to key on: send without deduplication.
    Unkeyed,
}

#[derive(Debug, thiserror::Error)]
#[error("the idempotency table {table} could not be used: {reason}")]
pub struct DedupeError {
    pub table: String,
    pub reason: String,
}

/// The idempotency table and its client.
#[derive(Debug, Clone)]
pub struct Dedupe {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

/// Seconds since the epoch.
pub fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Milliseconds since the epoch.
pub fn epoch_millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

fn now() -> u64 {
    epoch_secs(SystemTime::now())
}

/// Where a claim's lease ends: past the invocation's deadline (when it is dead for sure), with a
/// margin for clocks; without a deadline, a constant longer than the function's timeout.
pub fn lease_until(deadline: Option<SystemTime>) -> u64 {
    match deadline {
        Some(d) => epoch_secs(d) + 30,
        None => now() + DEFAULT_LEASE_SECS,
    }
}

fn string_set(
    item: Option<&std::collections::HashMap<String, AttributeValue>>,
) -> BTreeSet<String> {
    item.and_then(|i| i.get(attr::DELIVERED))
        .and_then(|d| d.as_ss().ok())
        .map(|ss| ss.iter().cloned().collect())
        .unwrap_or_default()
}

impl Dedupe {
    fn error(&self, reason: String) -> DedupeError {
        DedupeError {
            table: self.table.clone(),
            reason,
        }
    }

    /// Claims the state `key` for the attempt `owner` until `lease_until` (epoch seconds).
    pub async fn claim(
        &self,
        key: &str,
        owner: &str,
        lease_until: u64,
    ) -> Result<Claim, DedupeError> {
        self.claim_captured(key, owner, lease_until, None).await
    }

    /// [`Dedupe::claim`], noting when Config captured the state (`configurationItemCaptureTime`)
    /// and when the handler decided it, both kept from the first attempt.
    pub async fn claim_captured(
        &self,
        key: &str,
        owner: &str,
        lease_until: u64,
        capture_time: Option<&str>,
    ) -> Result<Claim, DedupeError> {
        let now = now();
        let now_ms = epoch_millis(SystemTime::now());
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .update_expression(
                "SET #s = :sending, #o = :owner, lease_until = :lease, expires_at = :expires, \
                 decided_at_ms = if_not_exists(decided_at_ms, :now_ms), \
                 capture_time = if_not_exists(capture_time, :capture)",
            )
            // Free, or a dead attempt's, or our own (the SDK retried a claim that had succeeded),
            // or parked (a replay: it sends only to what the ledger lacks).
            .condition_expression(
                "attribute_not_exists(pk) OR #s = :parked \
                 OR (#s = :sending AND (lease_until < :now OR #o = :owner))",
            )
            .expression_attribute_values(
                ":parked",
                AttributeValue::S(Status::Parked.as_str().into()),
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(
                ":sending",
                AttributeValue::S(Status::Sending.as_str().into()),
            )
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(":lease", AttributeValue::N(lease_until.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((now + KEEP_SECS).to_string()),
            )
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":now_ms", AttributeValue::N(now_ms.to_string()))
            .expression_attribute_values(
                ":capture",
                AttributeValue::S(capture_time.unwrap_or_default().to_owned()),
            )
            .return_values(ReturnValue::AllNew)
            // The record that stopped us comes back with the error: no second read.
            // https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_UpdateItem.html
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Claim::Acquired {
                delivered: string_set(out.attributes()),
            }),
            Err(SdkError::ServiceError(e)) => match e.err() {
                UpdateItemError::ConditionalCheckFailedException(c) => match c.item() {
                    Some(item) => Ok(claimed(item)),
                    None => self.existing(key).await,
                },
                _ => Err(self.error(DisplayErrorContext(SdkError::ServiceError(e)).to_string())),
            },
            Err(e) => Err(self.error(DisplayErrorContext(&e).to_string())),
        }
    }

    /// What the record of a claimed state says, read back (when the service did not return it).
    async fn existing(&self, key: &str) -> Result<Claim, DedupeError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(DisplayErrorContext(&e).to_string()))?;
        Ok(item.item().map(claimed).unwrap_or(Claim::InProgress))
    }

    /// Records that `destinations` were emailed. Retried: a lost record means a second email.
    pub async fn record(&self, key: &str, destinations: &[String]) -> Result<(), DedupeError> {
        self.record_sent(key, destinations, None).await
    }

    /// [`Dedupe::record`], with the message id SES accepted the email under (and when).
    pub async fn record_sent(
        &self,
        key: &str,
        destinations: &[String],
        ses_message_id: Option<&str>,
    ) -> Result<(), DedupeError> {
        if destinations.is_empty() {
            return Ok(());
        }
        let accepted_ms = epoch_millis(SystemTime::now()).to_string();
        self.retried(|| {
            let update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_owned()))
                .expression_attribute_values(":d", AttributeValue::Ss(destinations.to_vec()));
            match ses_message_id.filter(|id| !id.is_empty()) {
                None => update.update_expression("ADD delivered :d"),
                Some(id) => update
                    .update_expression(
                        "ADD delivered :d, ses_message_ids :m \
                         SET accepted_at_ms = if_not_exists(accepted_at_ms, :t)",
                    )
                    .expression_attribute_values(":m", AttributeValue::Ss(vec![id.to_owned()]))
                    .expression_attribute_values(":t", AttributeValue::N(accepted_ms.clone())),
            }
            .send()
        })
        .await
    }

    /// Marks the state as sent, for good. Retried within the invocation: a claim left in
    /// `sending` would be taken over by a late duplicate (which the ledger keeps from re-sending).
    pub async fn mark_sent(&self, key: &str) -> Result<(), DedupeError> {
        self.settle(key, Status::Sent).await
    }

    /// Marks the state as parked: some recipients were rejected for good and are in the failure
    /// queue. A replay may claim it again and send to them alone.
    pub async fn mark_parked(&self, key: &str) -> Result<(), DedupeError> {
        self.settle(key, Status::Parked).await
    }

    async fn settle(&self, key: &str, status: Status) -> Result<(), DedupeError> {
        let expires = (now() + KEEP_SECS).to_string();
        self.retried(|| {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(key.to_owned()))
                .update_expression("SET #s = :sent, expires_at = :expires REMOVE lease_until")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":sent", AttributeValue::S(status.as_str().to_owned()))
                .expression_attribute_values(":expires", AttributeValue::N(expires.clone()))
                .send()
        })
        .await
    }

    /// Gives the lease back after a failed attempt so the retry can claim at once; the record and
    /// its ledger stay. Only our own claim: a later owner's is left alone.
    pub async fn release(&self, key: &str, owner: &str) -> Result<(), DedupeError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key.to_owned()))
            .update_expression("SET lease_until = :zero")
            .condition_expression("#o = :owner AND #s = :sending")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_owned()))
            .expression_attribute_values(
                ":sending",
                AttributeValue::S(Status::Sending.as_str().into()),
            )
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(self.error(DisplayErrorContext(&e).to_string())),
        }
    }

    async fn retried<F, Fut, T, E>(&self, call: F) -> Result<(), DedupeError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<
            Output = Result<T, SdkError<E, aws_smithy_runtime_api::http::Response>>,
        >,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut last = String::new();
        for attempt in 0..WRITE_ATTEMPTS {
            tokio::time::sleep(write_backoff(attempt)).await;
            match tokio::time::timeout(WRITE_ATTEMPT_LIMIT, call()).await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => last = DisplayErrorContext(&e).to_string(),
                Err(_) => last = format!("no answer within {}s", WRITE_ATTEMPT_LIMIT.as_secs_f32()),
            }
        }
        Err(self.error(last))
    }
}

/// A record someone else holds: sent, or in progress.
fn claimed(item: &std::collections::HashMap<String, AttributeValue>) -> Claim {
    match Item::from_item(item).status {
        Some(Status::Sent) => Claim::Duplicate,
        _ => Claim::InProgress,
    }
}
