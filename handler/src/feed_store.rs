//! The actor feed in the stack's DynamoDB table, beside the delivery ledger.
//!
//! One item per group and hour, keyed `feed/ACCOUNT/REGION/GROUP/HOUR` (HOUR in hours since the
//! epoch). The ledger's keys are `ACCOUNT/REGION/…` (an account id is twelve digits) or
//! `unreadable/…` and `early/…`, so a feed key can never be a claim. Each call is one attribute of
//! its hour's item, `call:EVENTID`, set by one `UpdateItem`: a redelivered event rewrites the
//! same attribute, and no read comes first. What an early warning told is `warn:EVENTID` in the
//! same item, so the Config notification that follows reads calls and warnings together: one
//! consistent `GetItem` per hour its window touches (one, or two across the hour).
//! Items expire a day after their last write (the table's TTL, `expires_at`).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::core::feed::ApiCall;
use crate::dedupe::{epoch_secs, Dedupe, DedupeError};

/// How long the feed keeps a group's calls after the last one.
const KEEP_SECS: u64 = 24 * 3600;
const CALL_PREFIX: &str = "call:";
const WARN_PREFIX: &str = "warn:";

/// What an early warning told, and whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The call it warned about.
    pub event_id: String,
    pub event_time: String,
    /// The rules it named, as `ingress tcp/3389 from 0.0.0.0/0`.
    pub rules: Vec<String>,
    /// Who got it (lower case).
    pub recipients: Vec<String>,
}

/// What the feed holds for one group in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feed {
    pub calls: Vec<ApiCall>,
    pub warnings: Vec<Warning>,
}

/// The item key of `group`'s calls in the hour of `secs`.
pub fn key(account: &str, region: &str, group: &str, secs: i64) -> String {
    format!("feed/{account}/{region}/{group}/{}", secs.div_euclid(3600))
}

fn expires() -> AttributeValue {
    AttributeValue::N((epoch_secs(std::time::SystemTime::now()) + KEEP_SECS).to_string())
}

fn error(table: &Dedupe, e: impl std::fmt::Display) -> DedupeError {
    DedupeError {
        table: table.table.clone(),
        reason: e.to_string(),
    }
}

async fn set(
    table: &Dedupe,
    key: String,
    attribute: String,
    value: String,
) -> Result<(), DedupeError> {
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key("pk", AttributeValue::S(key))
        .update_expression("SET #a = :v, expires_at = :e")
        .expression_attribute_names("#a", attribute)
        .expression_attribute_values(":v", AttributeValue::S(value))
        .expression_attribute_values(":e", expires())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| error(table, DisplayErrorContext(&e)))
}

/// Records `call` under each group it names: one write per group (one, for all but tag calls
/// on several groups).
pub async fn record(table: &Dedupe, call: &ApiCall) -> Result<usize, DedupeError> {
    let secs = call
        .time_secs()
        .ok_or_else(|| error(table, "the call's time is unreadable"))?;
    let value = serde_json::to_string(call).map_err(|e| error(table, e))?;
    for group in &call.group_ids {
        let key = key(&call.account, &call.region, group, secs);
        set(
            table,
            key,
            format!("{CALL_PREFIX}{}", call.event_id),
            value.clone(),
        )
        .await?;
    }
    Ok(call.group_ids.len())
}

/// Records what an early warning about `call` told, for `group`.
pub async fn record_warning(
    table: &Dedupe,
    call: &ApiCall,
    group: &str,
    warning: &Warning,
) -> Result<(), DedupeError> {
    let secs = call
        .time_secs()
        .ok_or_else(|| error(table, "the call's time is unreadable"))?;
    let value = serde_json::to_string(warning).map_err(|e| error(table, e))?;
    set(
        table,
        key(&call.account, &call.region, group, secs),
        format!("{WARN_PREFIX}{}", call.event_id),
        value,
    )
    .await
}

/// The calls and warnings recorded for `group` in the hours `from..=to` (epoch seconds) touch.
pub async fn window(
    table: &Dedupe,
    account: &str,
    region: &str,
    group: &str,
    from: i64,
    to: i64,
) -> Result<Feed, DedupeError> {
    let mut feed = Feed::default();
    for hour in from.div_euclid(3600)..=to.div_euclid(3600) {
        let out = table
            .client
            .get_item()
            .table_name(&table.table)
            .key(
                "pk",
                AttributeValue::S(key(account, region, group, hour * 3600)),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| error(table, DisplayErrorContext(&e)))?;
        if let Some(item) = out.item() {
            read_item(item, &mut feed);
        }
    }
    Ok(feed)
}

/// The calls and warnings of one item; an attribute that does not read is skipped.
fn read_item(item: &HashMap<String, AttributeValue>, feed: &mut Feed) {
    for (name, value) in item {
        let Ok(text) = value.as_s() else { continue };
        if name.starts_with(CALL_PREFIX) {
            match serde_json::from_str::<ApiCall>(text) {
                Ok(call) => feed.calls.push(call),
                Err(e) => {
                    tracing::warn!(attribute = %name, error = %e, "a feed record could not be read")
                }
            }
        } else if name.starts_with(WARN_PREFIX) {
            match serde_json::from_str::<Warning>(text) {
                Ok(w) => feed.warnings.push(w),
                Err(e) => {
                    tracing::warn!(attribute = %name, error = %e, "a warning record could not be read")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hourly_and_never_a_claim() {
        assert_eq!(
            key("123456789012", "us-east-1", "sg-1", 7200),
            "feed/123456789012/us-east-1/sg-1/2"
        );
        assert_eq!(
            key("123456789012", "us-east-1", "sg-1", 7199),
            "feed/123456789012/us-east-1/sg-1/1"
        );
        assert!(!key("1", "r", "g", 0).starts_with(char::is_numeric));
    }

    #[test]
    fn unreadable_attributes_are_skipped() {
        let warning = Warning {
            event_id: "e".into(),
            event_time: "2026-11-20T09:13:58Z".into(),
            rules: vec!["ingress tcp/22 from 0.0.0.0/0".into()],
            recipients: vec!["a@corp.example".into()],
        };
        let item = HashMap::from([
            ("pk".to_owned(), AttributeValue::S("feed/…".into())),
            ("call:x".to_owned(), AttributeValue::S("{not json".into())),
            ("call:y".to_owned(), AttributeValue::N("1".into())),
            (
                "warn:e".to_owned(),
                AttributeValue::S(serde_json::to_string(&warning).unwrap()),
            ),
        ]);
        let mut feed = Feed::default();
        read_item(&item, &mut feed);
        assert!(feed.calls.is_empty());
        assert_eq!(feed.warnings, [warning]);
    }
}
