//! The hub's coverage map in the stack's table: when each account × region last sent a heartbeat
//! and a change ([`crate::core::spokes`] names the items and attributes).

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::core::spokes::{attribute, shard_key, Mark};
use crate::dedupe::{Dedupe, DedupeError};

/// Records that `account` × `region` was heard from at `secs` (seconds since the epoch): one
/// `UpdateItem` that only moves the time forward, so a late, redelivered record changes nothing.
pub async fn mark(
    table: &Dedupe,
    mark: Mark,
    account: &str,
    region: &str,
    secs: u64,
) -> Result<(), DedupeError> {
    let result = table
        .client
        .update_item()
        .table_name(&table.table)
        .key("pk", AttributeValue::S(shard_key(account)))
        .update_expression("SET #a = :t")
        .condition_expression("attribute_not_exists(#a) OR #a < :t")
        .expression_attribute_names("#a", attribute(mark, account, region))
        .expression_attribute_values(":t", AttributeValue::N(secs.to_string()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(DedupeError {
            table: table.table.clone(),
            reason: DisplayErrorContext(&e).to_string(),
        }),
    }
}
