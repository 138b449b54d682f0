//! Coalescing: a group's changes within its window (`SGWATCH_COALESCE_SECONDS`) go out as one
//! email per recipient when the window ends ([`crate::core::digest::coalesced_email`]).
//!
//! - The first change opens the window: `window/ACCOUNT/REGION/GROUP` gets its end (`until`),
//!   and a message to the wake queue, delayed until then, will end it. Each change of the window
//!   adds its line (with whom it is for) to the same item's string set, so a retried change adds
//!   nothing new.
//! - CRITICAL is never delayed: it is emailed at once and, while a window is open, joins it
//!   marked as told, so the email that follows says so.
//! - The wake sends each recipient one email through the same claim and batches as an alert
//!   (`coalesced/RECIPIENT/HASH`), then deletes the lines it sent. A send that fails keeps the
//!   lines and fails the record: the queue delivers it again, and after its last receive it is
//!   parked in the failure queue, whence `redrive` replays it; the lines wait in the table
//!   meanwhile, and the group's next window sends them too.
//! - Lines added while the window was being sent are not lost: the wake opens a new window for
//!   them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest as _, Sha256};
use tracing::{info, warn};

use crate::context::{Invocation, Outcome, Services};
use crate::core::digest::{self, Line, Wake};
use crate::core::settings::Settings;
use crate::dedupe::Dedupe;
use crate::deliver::{deliver, finish, Ledger};
use crate::ledger::{attr, Facts, Key};

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// How long a closed window's empty item is kept before the table's TTL removes it.
const CLOSED_KEEP_SECS: u64 = 24 * 3600;

fn window_key(account: &str, region: &str, group: &str) -> Key {
    Key::Window {
        account: account.to_owned(),
        region: region.to_owned(),
        group: group.to_owned(),
    }
}

/// How a change joined its group's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// It opened the window, which ends then (epoch seconds).
    Opened(u64),
    /// The window was open.
    Open,
    /// No window was open (a CRITICAL change, told at once, opens none).
    NoWindow,
}

/// Adds `line` to its group's window, opening one that ends `window_secs` from `now` when none
/// is open and `open` is set, and waking it then.
pub async fn join(
    table: &Dedupe,
    services: &Services,
    line: &Line,
    now: u64,
    window_secs: u64,
    open: bool,
) -> Result<Joined, String> {
    let key = window_key(&line.account, &line.region, &line.group);
    let stored = line.stored();
    let until = now + window_secs;
    let opened = if open {
        table
            .client
            .update_item()
            .table_name(&table.table)
            .key(attr::KEY, s(&key.to_string()))
            .update_expression("SET #until = :until ADD #lines :line")
            .condition_expression("attribute_not_exists(#until) OR #until < :now")
            .expression_attribute_names("#until", attr::UNTIL)
            .expression_attribute_names("#lines", attr::LINES)
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":line", AttributeValue::Ss(vec![stored.clone()]))
            .send()
            .await
    } else {
        // Only into an open window.
        table
            .client
            .update_item()
            .table_name(&table.table)
            .key(attr::KEY, s(&key.to_string()))
            .update_expression("ADD #lines :line")
            .condition_expression("#until >= :now")
            .expression_attribute_names("#until", attr::UNTIL)
            .expression_attribute_names("#lines", attr::LINES)
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":line", AttributeValue::Ss(vec![stored.clone()]))
            .send()
            .await
    };
    match opened {
        Ok(_) if open => {
            wake(services, line, until, window_secs).await?;
            Ok(Joined::Opened(until))
        }
        Ok(_) => Ok(Joined::Open),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            if !open {
                return Ok(Joined::NoWindow);
            }
            // Open already: the line joins it, and its wake is on its way.
            table
                .client
                .update_item()
                .table_name(&table.table)
                .key(attr::KEY, s(&key.to_string()))
                .update_expression("ADD #lines :line")
                .expression_attribute_names("#lines", attr::LINES)
                .expression_attribute_values(":line", AttributeValue::Ss(vec![stored]))
                .send()
                .await
                .map_err(|e| format!("DynamoDB UpdateItem {key}: {}", DisplayErrorContext(&e)))?;
            Ok(Joined::Open)
        }
        Err(e) => Err(format!(
            "DynamoDB UpdateItem {key}: {}",
            DisplayErrorContext(&e)
        )),
    }
}

/// Whether `group`'s window is open at `now`.
pub async fn is_open(
    table: &Dedupe,
    (account, region, group): (&str, &str, &str),
    now: u64,
) -> Result<bool, String> {
    let (until, _) = window(table, &window_key(account, region, group)).await?;
    Ok(until.is_some_and(|u| u >= now))
}

/// Sends the message that ends `line`'s group's window at `until`.
async fn wake(services: &Services, line: &Line, until: u64, delay: u64) -> Result<(), String> {
    let Some(queue) = &services.wake else {
        return Err("no wake queue (SGWATCH_WAKE_QUEUE_URL) to end the window".to_owned());
    };
    let w = Wake {
        account: line.account.clone(),
        region: line.region.clone(),
        group: line.group.clone(),
        until,
        summary_of_hour: None,
    };
    queue
        .send(digest::wake_event(&w).to_string(), delay)
        .await
        .map_err(|e| format!("the wake of {}'s window: {e}", line.group))
}

/// The window's end and lines, as stored.
async fn window(table: &Dedupe, key: &Key) -> Result<(Option<u64>, Vec<String>), String> {
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
    let until = item
        .get(attr::UNTIL)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok());
    let lines = item
        .get(attr::LINES)
        .and_then(|v| v.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    Ok((until, lines))
}

/// Ends a group's window: each recipient gets one email of the changes made in it. Early (the
/// clock before its end), it waits again for the rest.
pub(crate) async fn wake_up(
    message_id: &str,
    w: &Wake,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    if let Some(hour) = w.summary_of_hour {
        return crate::rate::summary(message_id, w, hour, invocation, settings, services).await;
    }
    let Some(table) = services.dedupe.as_ref() else {
        warn!(
            message_id,
            "skipped: a coalescing window ended but there is no ledger table"
        );
        return Outcome::Skipped;
    };
    let now = services.clock.now_secs();
    let key = window_key(&w.account, &w.region, &w.group);
    let failed = |e: String| Outcome::Failed(format!("{message_id}: {key}: {e}"));
    let (until, stored) = match window(table, &key).await {
        Ok(found) => found,
        Err(e) => return failed(e),
    };
    let until = until.unwrap_or(w.until);
    if now < until {
        // Early (a clock skew): it waits again for the rest.
        return match wake(services, &group_of(w), until, until - now).await {
            Ok(()) => Outcome::Skipped,
            Err(e) => failed(e),
        };
    }
    let lines: Vec<(String, Line)> = stored
        .into_iter()
        .filter_map(|s| Line::parse(&s).map(|l| (s, l)))
        .collect();
    let by_recipient = by_recipient(&lines);
    let window_secs = settings.quiet.coalesce;
    let (mut sent, mut outcome) = (BTreeSet::new(), Outcome::Skipped);
    for (recipient, mine) in &by_recipient {
        // Each told at once already: nothing new for this recipient.
        if mine.iter().all(|(_, l)| l.told) {
            sent.extend(mine.iter().map(|(s, _)| s.clone()));
            continue;
        }
        let stored: Vec<String> = mine.iter().map(|(s, _)| s.clone()).collect();
        let ls: Vec<Line> = mine.iter().map(|(_, l)| l.clone()).collect();
        match send(
            message_id,
            recipient,
            &stored,
            &ls,
            window_secs,
            invocation,
            settings,
            services,
        )
        .await
        {
            Ok(()) => {
                sent.extend(stored);
                outcome = Outcome::Sent;
            }
            Err(e) => return failed(e),
        }
    }
    // Lines no recipient is named for are dropped with the rest.
    sent.extend(
        lines
            .iter()
            .filter(|(_, l)| l.to.is_empty())
            .map(|(s, _)| s.clone()),
    );
    if let Err(e) = settle(table, &key, &sent, services, w, now, window_secs).await {
        return failed(e);
    }
    info!(message_id, group = %w.group, changes = lines.len(), recipients = by_recipient.len(), "coalesced email sent");
    outcome
}

/// A line that names only `w`'s group, for [`wake`].
fn group_of(w: &Wake) -> Line {
    Line {
        account: w.account.clone(),
        region: w.region.clone(),
        group: w.group.clone(),
        ..Line::default()
    }
}

/// The window's lines (as stored, and read) by the recipients each is for.
fn by_recipient(lines: &[(String, Line)]) -> BTreeMap<String, Vec<&(String, Line)>> {
    let mut out: BTreeMap<String, Vec<&(String, Line)>> = BTreeMap::new();
    for pair in lines {
        for r in &pair.1.to {
            out.entry(r.to_ascii_lowercase()).or_default().push(pair);
        }
    }
    out
}

/// One recipient's email of the window's `lines`.
#[allow(clippy::too_many_arguments)]
async fn send(
    message_id: &str,
    recipient: &str,
    stored: &[String],
    lines: &[Line],
    window_secs: u64,
    invocation: &Invocation,
    settings: &Settings,
    services: &Services,
) -> Result<(), String> {
    let mut sorted: Vec<&String> = stored.iter().collect();
    sorted.sort();
    let mut hash = Sha256::new();
    for l in sorted {
        hash.update(l.as_bytes());
        hash.update([0]);
    }
    let key = Key::Coalesced {
        recipient: recipient.to_owned(),
        hash: hex::encode(&hash.finalize()[..16]),
    };
    let email = digest::coalesced_email(lines, window_secs);
    let Some(mut ledger) = Ledger::claim(services, Some(key), None, invocation).await? else {
        return Ok(());
    };
    let facts = Facts {
        message_id: message_id.to_owned(),
        resource_id: lines.first().map(|l| l.group.clone()),
        account: lines.first().map(|l| l.account.clone()),
        region: lines.first().map(|l| l.region.clone()),
        ..Facts::default()
    };
    let to = [recipient.to_owned()];
    let result = deliver(settings, services, invocation, &to, &email, &mut ledger).await;
    // Parked (rejected for good, and no fallback told), it is the event that holds these
    // changes for the recipient's digest and sends it, when `redrive` replays it.
    let original = digest::due_event(recipient, stored);
    match finish(
        result,
        &facts,
        &email.subject,
        &original,
        ledger,
        services,
        invocation,
    )
    .await
    {
        Outcome::Failed(why) => Err(why),
        _ => Ok(()),
    }
}

/// Deletes the lines sent; closes the window, or opens a new one for lines added meanwhile.
async fn settle(
    table: &Dedupe,
    key: &Key,
    sent: &BTreeSet<String>,
    services: &Services,
    w: &Wake,
    now: u64,
    window_secs: u64,
) -> Result<(), String> {
    let update = |expression: &'static str| {
        table
            .client
            .update_item()
            .table_name(&table.table)
            .key(attr::KEY, s(&key.to_string()))
            .update_expression(expression)
            .expression_attribute_names("#lines", attr::LINES)
    };
    if !sent.is_empty() {
        update("DELETE #lines :sent")
            .expression_attribute_values(
                ":sent",
                AttributeValue::Ss(sent.iter().cloned().collect()),
            )
            .send()
            .await
            .map_err(|e| format!("DynamoDB UpdateItem {key}: {}", DisplayErrorContext(&e)))?;
    }
    // Closed by removing its end, only if no line joined meanwhile (an UpdateItem: the
    // handler's role may not delete items); the empty item expires through the table's TTL.
    let closed = table
        .client
        .update_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .update_expression("REMOVE #until SET #expires = :expires")
        .condition_expression("attribute_not_exists(#lines)")
        .expression_attribute_names("#lines", attr::LINES)
        .expression_attribute_names("#until", attr::UNTIL)
        .expression_attribute_names("#expires", attr::EXPIRES_AT)
        .expression_attribute_values(":expires", n(now + CLOSED_KEEP_SECS))
        .send()
        .await;
    match closed {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            // Changes joined while this window was sent: they get a window of their own.
            let until = now + window_secs;
            update("SET #until = :until")
                .expression_attribute_names("#until", attr::UNTIL)
                .expression_attribute_values(":until", n(until))
                .send()
                .await
                .map_err(|e| format!("DynamoDB UpdateItem {key}: {}", DisplayErrorContext(&e)))?;
            wake(services, &group_of(w), until, window_secs).await
        }
        Err(e) => Err(format!(
            "DynamoDB UpdateItem {key}: {}",
            DisplayErrorContext(&e)
        )),
    }
}
