//! The rate limit (`SGWATCH_MAX_PER_GROUP_HOUR`): at most that many emails about one group in a
//! clock hour. A change past it (never a CRITICAL one, nor one to the tags that decide who is
//! told) goes to the recipients' digest instead, and when the hour ends one summary email says
//! how many were held back and where they are.
//!
//! `rate/ACCOUNT/REGION/GROUP/HOUR` counts the emails decided in that hour (`n`) and whom they
//! were for; the change that first passes the limit puts a wake on the wake queue for the end of
//! the hour, which sends the summary through the same claim and batches as an alert.

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use tracing::info;

use crate::context::{Invocation, Outcome, Services};
use crate::core::digest::{self, Wake};
use crate::core::settings::Settings;
use crate::dedupe::Dedupe;
use crate::deliver::{deliver, finish, Ledger};
use crate::ledger::{attr, Facts, Key};

const HOUR: u64 = 3600;
/// How long a count is kept: past its hour and the summary's wake.
const KEEP_SECS: u64 = 2 * 24 * HOUR;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Where one more email about a group stands against the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Within: the `n`th email of the hour.
    Within(u64),
    /// Past it: held back; `first` for the first held back this hour.
    Over { first: bool },
}

fn key(account: &str, region: &str, group: &str, hour: u64) -> Key {
    Key::Rate {
        account: account.to_owned(),
        region: region.to_owned(),
        group: group.to_owned(),
        hour,
    }
}

/// Counts one more email about `group` for `to` at `now`, against `max` an hour. The first held
/// back wakes the summary at the end of the hour.
pub async fn count(
    table: &Dedupe,
    services: &Services,
    (account, region, group): (&str, &str, &str),
    to: &[String],
    now: u64,
    max: u64,
) -> Result<Count, String> {
    let hour = now / HOUR * HOUR;
    let key = key(account, region, group, hour);
    let mut update = table
        .client
        .update_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .update_expression("ADD #n :one SET #expires = :expires")
        .expression_attribute_names("#n", attr::COUNT)
        .expression_attribute_names("#expires", attr::EXPIRES_AT)
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":expires", n(hour + KEEP_SECS))
        .return_values(ReturnValue::UpdatedNew);
    if !to.is_empty() {
        update = table
            .client
            .update_item()
            .table_name(&table.table)
            .key(attr::KEY, s(&key.to_string()))
            .update_expression("ADD #n :one, #to :to SET #expires = :expires")
            .expression_attribute_names("#n", attr::COUNT)
            .expression_attribute_names("#to", attr::RECIPIENTS)
            .expression_attribute_names("#expires", attr::EXPIRES_AT)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(
                ":to",
                AttributeValue::Ss(to.iter().map(|r| r.to_ascii_lowercase()).collect()),
            )
            .expression_attribute_values(":expires", n(hour + KEEP_SECS))
            .return_values(ReturnValue::UpdatedNew);
    }
    let out = update
        .send()
        .await
        .map_err(|e| format!("DynamoDB UpdateItem {key}: {}", DisplayErrorContext(&e)))?;
    let count = out
        .attributes()
        .and_then(|a| a.get(attr::COUNT))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    if count <= max {
        return Ok(Count::Within(count));
    }
    let first = count == max + 1;
    if first {
        let Some(queue) = &services.wake else {
            return Err(
                "no wake queue (SGWATCH_WAKE_QUEUE_URL) for the rate limit's summary".to_owned(),
            );
        };
        let w = Wake {
            account: account.to_owned(),
            region: region.to_owned(),
            group: group.to_owned(),
            until: hour + HOUR,
            summary_of_hour: Some(hour),
        };
        queue
            .send(digest::wake_event(&w).to_string(), hour + HOUR - now)
            .await
            .map_err(|e| format!("the wake of {group}'s rate-limit summary: {e}"))?;
    }
    Ok(Count::Over { first })
}

/// The hour's count and the recipients of its emails.
async fn read(table: &Dedupe, key: &Key) -> Result<(u64, Vec<String>), String> {
    let out = table
        .client
        .get_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("DynamoDB GetItem {key}: {}", DisplayErrorContext(&e)))?;
    let item = out.item().cloned().unwrap_or_default();
    let count = item
        .get(attr::COUNT)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let to = item
        .get(attr::RECIPIENTS)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    Ok((count, to))
}

/// At the end of the hour: each recipient of the group's emails that hour is told how many
/// changes were held back for the digest.
pub(crate) async fn summary(
    message_id: &str,
    w: &Wake,
    hour: u64,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    let Some(table) = services.dedupe.as_ref() else {
        return Outcome::Skipped;
    };
    // SQS delays a message 15 minutes at most: before the hour ends, wait again.
    let now = services.clock.now_secs();
    if now < w.until {
        let Some(queue) = &services.wake else {
            return Outcome::Skipped;
        };
        return match queue
            .send(digest::wake_event(w).to_string(), w.until - now)
            .await
        {
            Ok(()) => Outcome::Skipped,
            Err(e) => Outcome::Failed(format!("{message_id}: the rate-limit summary's wake: {e}")),
        };
    }
    let key = key(&w.account, &w.region, &w.group, hour);
    let (count, to) = match read(table, &key).await {
        Ok(found) => found,
        Err(e) => return Outcome::Failed(format!("{message_id}: {e}")),
    };
    let max = settings.quiet.max_per_group_hour;
    let held = count.saturating_sub(max);
    if held == 0 || to.is_empty() {
        return Outcome::Skipped;
    }
    let email = digest::rate_summary_email(w, hour, max, held);
    let claim = Key::RateSummary {
        account: w.account.clone(),
        region: w.region.clone(),
        group: w.group.clone(),
        hour,
    };
    let mut ledger = match Ledger::claim(services, Some(claim), None, invocation).await {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Outcome::Skipped,
        Err(why) => return Outcome::Failed(format!("{message_id}: {why}")),
    };
    let facts = Facts {
        message_id: message_id.to_owned(),
        resource_id: Some(w.group.clone()),
        account: Some(w.account.clone()),
        region: Some(w.region.clone()),
        ..Facts::default()
    };
    let result = deliver(settings, services, invocation, &to, &email, &mut ledger).await;
    let original = digest::wake_event(w);
    info!(message_id, group = %w.group, held, "rate-limit summary");
    finish(
        result,
        &facts,
        &email.subject,
        &original,
        ledger,
        services,
        invocation,
    )
    .await
}
