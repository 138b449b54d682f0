//! The hub's coverage map in the stack's table: when each account × region last sent a heartbeat
//! and a change ([`crate::core::spokes`] names the items and attributes).

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::core::spokes::{add_mark, attribute, shard_key, shard_keys, Mark, Marks};
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

/// Reads the whole coverage map: one consistent `GetItem` per item.
pub async fn read(table: &Dedupe) -> Result<Marks, DedupeError> {
    let mut marks = Marks::new();
    for key in shard_keys() {
        let item = table
            .client
            .get_item()
            .table_name(&table.table)
            .key("pk", AttributeValue::S(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DedupeError {
                table: table.table.clone(),
                reason: DisplayErrorContext(&e).to_string(),
            })?;
        for (name, value) in item.item().into_iter().flatten() {
            if let Some(secs) = value.as_n().ok().and_then(|n| n.parse::<u64>().ok()) {
                add_mark(&mut marks, name, secs);
            }
        }
    }
    Ok(marks)
}
