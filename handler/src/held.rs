//! The changes held for the daily digest ([`crate::core::quiet`]) and the digest that sends
//! them ([`crate::core::digest`]), in the ledger's table:
//! - `held/RECIPIENT` holds the recipient's lines, a string set: a retried hold adds nothing new,
//!   and a sent line is deleted by its exact value, so a line held meanwhile stays;
//! - `held` lists the recipients that have had lines held, so the digest reads no more than them
//!   (a recipient stays listed: taking one off could race a hold and strand its line);
//! - each digest is a ledger item of its own, `digest/RECIPIENT/HASH` of its lines, claimed and
//!   settled as an alert's: a retry after the send finds it told and only deletes the lines.
//!
//! A line is deleted only once its digest was sent: a failed digest keeps them for the retry,
//! and for the next day's digest.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::context::{Invocation, Outcome, Services};
use crate::core::digest::{self, Due, Line};
use crate::core::settings::Settings;
use crate::dedupe::Dedupe;
use crate::deliver::{deliver, finish, Ledger};
use crate::ledger::{attr, Facts, Key};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// Holds `line` for each of `recipients`' next digest.
pub async fn hold(table: &Dedupe, recipients: &[String], line: &Line) -> Result<(), String> {
    let stored = line.stored();
    for r in recipients {
        let r = r.to_ascii_lowercase();
        add(
            table,
            &Key::Held {
                recipient: r.clone(),
            },
            attr::LINES,
            &stored,
        )
        .await?;
        add(table, &Key::HeldIndex, attr::RECIPIENTS, &r).await?;
    }
    Ok(())
}

async fn add(table: &Dedupe, key: &Key, set: &str, value: &str) -> Result<(), String> {
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .update_expression("ADD #set :v")
        .expression_attribute_names("#set", set)
        .expression_attribute_values(":v", AttributeValue::Ss(vec![value.to_owned()]))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("DynamoDB UpdateItem {key}: {}", DisplayErrorContext(&e)))
}

async fn set_of(table: &Dedupe, key: &Key, set: &str) -> Result<Vec<String>, String> {
    let out = table
        .client
        .get_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("DynamoDB GetItem {key}: {}", DisplayErrorContext(&e)))?;
    let item: HashMap<String, AttributeValue> = out.item().cloned().unwrap_or_default();
    Ok(item
        .get(set)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default())
}

/// The lines held for `recipient`, due or not, as stored.
pub async fn held(table: &Dedupe, recipient: &str) -> Result<Vec<String>, String> {
    let key = Key::Held {
        recipient: recipient.to_ascii_lowercase(),
    };
    set_of(table, &key, attr::LINES).await
}

/// The recipients that have had lines held.
pub async fn recipients(table: &Dedupe) -> Result<Vec<String>, String> {
    set_of(table, &Key::HeldIndex, attr::RECIPIENTS).await
}

async fn remove(table: &Dedupe, recipient: &str, sent: &[String]) -> Result<(), String> {
    let key = Key::Held {
        recipient: recipient.to_owned(),
    };
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .update_expression("DELETE #set :v")
        .expression_attribute_names("#set", attr::LINES)
        .expression_attribute_values(":v", AttributeValue::Ss(sent.to_vec()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("DynamoDB UpdateItem {key}: {}", DisplayErrorContext(&e)))
}

/// The ledger key of the digest of `lines` (as stored) for `recipient`.
fn digest_key(recipient: &str, lines: &[String]) -> Key {
    let mut sorted: Vec<&String> = lines.iter().collect();
    sorted.sort();
    let mut hash = Sha256::new();
    for l in sorted {
        hash.update(l.as_bytes());
        hash.update([0]);
    }
    Key::Digest {
        recipient: recipient.to_owned(),
        hash: hex::encode(&hash.finalize()[..16]),
    }
}

/// Sends each recipient the digest of their lines due at the clock's time (or, for a replayed
/// digest, holds its lines again and sends that recipient's). A recipient whose digest fails
/// keeps its lines, and the invocation fails for Lambda's retry.
pub(crate) async fn send_digests(
    message_id: &str,
    due: &Due,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    let Some(table) = services.dedupe.as_ref() else {
        warn!(
            message_id,
            "skipped: a digest was due but there is no ledger table to hold changes in"
        );
        return Outcome::Skipped;
    };
    let now = services.clock.now_secs();
    let recipients = match &due.recipient {
        Some(r) => {
            let r = r.to_ascii_lowercase();
            for line in &due.lines {
                let held = add(
                    table,
                    &Key::Held {
                        recipient: r.clone(),
                    },
                    attr::LINES,
                    line,
                )
                .await;
                if let Err(e) = held.and(add(table, &Key::HeldIndex, attr::RECIPIENTS, &r).await) {
                    return Outcome::Failed(format!(
                        "{message_id}: the replayed digest's lines: {e}"
                    ));
                }
            }
            vec![r]
        }
        None => match recipients(table).await {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Failed(format!("{message_id}: the digest's recipients: {e}"))
            }
        },
    };
    let (mut sent, mut failed) = (0usize, Vec::new());
    for r in &recipients {
        match digest_for(message_id, r, now, table, invocation, settings, services).await {
            Ok(true) => sent += 1,
            Ok(false) => {}
            Err(e) => failed.push(e),
        }
    }
    info!(
        message_id,
        recipients = recipients.len(),
        sent,
        failed = failed.len(),
        "digests sent"
    );
    match failed.first() {
        Some(first) => Outcome::Failed(format!(
            "{message_id}: {} of {} digests not sent, kept for the retry: {first}",
            failed.len(),
            recipients.len()
        )),
        None if sent > 0 => Outcome::Sent,
        None => Outcome::Skipped,
    }
}

/// One recipient's digest: whether one was sent.
#[allow(clippy::too_many_arguments)]
async fn digest_for(
    message_id: &str,
    recipient: &str,
    now: u64,
    table: &Dedupe,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Result<bool, String> {
    let stored = held(table, recipient).await?;
    let due: Vec<(String, Line)> = stored
        .into_iter()
        .filter_map(|s| Line::parse(&s).map(|l| (s, l)))
        .filter(|(_, l)| l.due(now))
        .collect();
    if due.is_empty() {
        return Ok(false);
    }
    let stored: Vec<String> = due.iter().map(|(s, _)| s.clone()).collect();
    let lines: Vec<Line> = due.into_iter().map(|(_, l)| l).collect();
    let key = digest_key(recipient, &stored);
    let facts = Facts {
        message_id: message_id.to_owned(),
        resource_id: Some(format!("the digest for {recipient}")),
        ..Facts::default()
    };
    let email = digest::email(&lines);
    // Parked, it is the event that holds these lines again and sends this digest.
    let original = digest::due_event(recipient, &stored);
    let ledger = Ledger::claim(services, Some(key), None, invocation).await?;
    let outcome = match ledger {
        // Told by an earlier attempt whose lines stayed: they go now.
        None => Outcome::Sent,
        Some(mut ledger) => {
            let to = [recipient.to_owned()];
            let result = deliver(settings, services, invocation, &to, &email, &mut ledger).await;
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
    };
    match outcome {
        Outcome::Sent | Outcome::Parked => {
            remove(table, recipient, &stored).await?;
            Ok(true)
        }
        Outcome::Failed(why) => Err(why),
        _ => Ok(false),
    }
}
