//! One email per configuration state, though SNS and Lambda deliver at least once.
//!
//! A small DynamoDB record per (account, region, resource, `configurationStateId`) is claimed with
//! a conditional put before sending and marked sent afterwards. A claim left by a crashed attempt
//! expires after a lease, so the retry sends instead of losing the email; a failed send releases
//! the claim. Records expire through the table's TTL.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::decide::Subject;

/// Longer than the function's timeout: a claim older than this belongs to a dead attempt.
const LEASE_SECS: u64 = 120;
/// How long a sent record is kept (the table's TTL removes it).
const KEEP_SECS: u64 = 7 * 24 * 3600;

/// The outcome of claiming a configuration state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This attempt sends the email.
    Acquired,
    /// Another delivery sent it.
    Duplicate,
    /// Another delivery claimed it and has not finished (or died before its lease ends): retry
    /// later rather than skip, or a failed attempt would lose the email.
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

/// The record key of a configuration state, when it has one.
pub fn key(subject: &Subject) -> Option<String> {
    let state = subject.state_id.as_deref().filter(|s| !s.is_empty())?;
    Some(format!(
        "{}/{}/{}/{}",
        subject.account, subject.region, subject.resource_id, state
    ))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl Dedupe {
    fn error(&self, reason: String) -> DedupeError {
        DedupeError {
            table: self.table.clone(),
            reason,
        }
    }

    /// Claims the configuration state for sending.
    pub async fn claim(&self, subject: &Subject) -> Result<Claim, DedupeError> {
        let Some(pk) = key(subject) else {
            return Ok(Claim::Unkeyed);
        };
        let now = now();
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk))
            .item("status", AttributeValue::S("sending".into()))
            .item(
                "lease_until",
                AttributeValue::N((now + LEASE_SECS).to_string()),
            )
            .item(
                "expires_at",
                AttributeValue::N((now + KEEP_SECS).to_string()),
            )
            .condition_expression(
                "attribute_not_exists(pk) OR (#s = :sending AND lease_until < :now)",
            )
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":sending", AttributeValue::S("sending".into()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Claim::Acquired),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                self.existing(subject).await
            }
            Err(e) => Err(self.error(DisplayErrorContext(&e).to_string())),
        }
    }

    /// What the record of a claimed state says: sent, or still being sent.
    async fn existing(&self, subject: &Subject) -> Result<Claim, DedupeError> {
        let Some(pk) = key(subject) else {
            return Ok(Claim::Unkeyed);
        };
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error(DisplayErrorContext(&e).to_string()))?;
        let status = item
            .item()
            .and_then(|i| i.get("status"))
            .and_then(|s| s.as_s().ok());
        Ok(match status.map(String::as_str) {
            Some("sent") => Claim::Duplicate,
            // Gone between the two calls (released): the retry will claim it.
            _ => Claim::InProgress,
        })
    }

    /// Marks the state as sent, for good.
    pub async fn mark_sent(&self, subject: &Subject) -> Result<(), DedupeError> {
        let Some(pk) = key(subject) else {
            return Ok(());
        };
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk))
            .item("status", AttributeValue::S("sent".into()))
            .item(
                "expires_at",
                AttributeValue::N((now() + KEEP_SECS).to_string()),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(DisplayErrorContext(&e).to_string()))
    }

    /// Releases a claim after a failed send, so the retry can send.
    pub async fn release(&self, subject: &Subject) -> Result<(), DedupeError> {
        let Some(pk) = key(subject) else {
            return Ok(());
        };
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(DisplayErrorContext(&e).to_string()))
    }
}
