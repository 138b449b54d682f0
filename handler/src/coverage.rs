//! The hub's coverage map in the stack's table: when each account × region last sent a heartbeat
//! and a change ([`crate::core::spokes`] names the items and attributes).

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::core::spokes::{
    add_mark, add_sight, attribute, shard_key, shard_keys, Mark, Marks, Sight,
};
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

/// Records what `account` × `region` let the hub see at its heartbeat of `secs`: one
/// `UpdateItem`, which a later heartbeat's look replaces.
pub async fn mark_sight(
    table: &Dedupe,
    account: &str,
    region: &str,
    sight: &[Sight],
) -> Result<(), DedupeError> {
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key("pk", AttributeValue::S(shard_key(account)))
        .update_expression("SET #a = :s")
        .expression_attribute_names("#a", attribute(Mark::Sight, account, region))
        .expression_attribute_values(":s", AttributeValue::S(Sight::codes(sight)))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| DedupeError {
            table: table.table.clone(),
            reason: DisplayErrorContext(&e).to_string(),
        })
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
            add_attribute(&mut marks, name, value);
        }
    }
    Ok(marks)
}

/// Adds one attribute of a coverage item to `marks`: a time, or what a region let the hub see.
pub fn add_attribute(marks: &mut Marks, name: &str, value: &AttributeValue) {
    match value {
        AttributeValue::N(n) => {
            if let Ok(secs) = n.parse::<u64>() {
                add_mark(marks, name, secs);
            }
        }
        AttributeValue::S(codes) => add_sight(marks, name, codes),
        _ => {}
    }
}
