//! Delivery: the email (`mail`, SES), the posts (`post`, in the `slack`, `teams` and `webhook`
//! formats) and what ties them together here: the email to each recipient not yet in the ledger (in SES-sized batches, the
//! rejected ones reported to the fallback recipient), the posts to chat and webhook
//! destinations, and what becomes of it all (`finish`): the ledger settled, what nobody could
//! be told parked in the failure queue, or the claim given back for Lambda's retry.

pub mod chatbot;
pub mod mail;
pub mod pagerduty;
pub mod post;
pub mod security_hub;
pub mod slack;
pub mod teams;
pub mod webhook;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tracing::{debug, error, info, warn};

use crate::context::{Invocation, Outcome, Services, TooLate};
use crate::core::decide::Decision;
use crate::core::destination::{Destination, Kind};
use crate::core::message::ParseError;
use crate::core::render::{render, Email};
use crate::core::settings::Settings;
use crate::core::who::ActorLookup;
use crate::dedupe::{self, Claim, Dedupe, DedupeError};
use crate::early::Part;
use crate::ledger::{
    Entry, Facts, Key, Parked, ParkedRecord, RefusedDestination, RejectedRecipient, PARKED_SOURCE,
};
use crate::logs;
use mail::SendError;
use post::{Payload, PostError, Poster};

/// No send starts with less than this left before the invocation's deadline: one SES call at its
/// operation timeout and the ledger write after it, at its worst, must fit, or Lambda could end
/// the invocation between the send and its record (and a retry would send it again).
pub const SEND_MARGIN: Duration = mail::OPERATION_TIMEOUT
    .saturating_add(dedupe::RECORD_WORST_CASE)
    .saturating_add(Duration::from_secs(1));

/// Where a delivery runs: the settings, the clients and the invocation it must end within.
pub(crate) struct Delivery<'a> {
    pub settings: &'a Settings,
    pub services: &'a Services,
    pub invocation: &'a Invocation,
}

/// Emails each part of a change (the whole change, or what an early warning did not tell) to its
/// recipients, until one fails; the subject of the first part's email.
pub(crate) async fn email_parts(
    to: &Delivery<'_>,
    parts: &[Part],
    actor: &ActorLookup,
    ledger: &mut Ledger,
) -> (String, Result<Delivered, DeliverError>) {
    let mut subject = String::new();
    let mut all = Delivered::default();
    for part in parts {
        let mut email = render(&part.decision, actor);
        if !part.told.is_empty() {
            email = email.with_notice(&format!(
                "sgwatch's early warning told you already: {}. This email says what is new.",
                part.told.join(", ")
            ));
        }
        if subject.is_empty() {
            subject = email.subject.clone();
        }
        let recipients = &part.decision.recipients;
        match deliver(
            to.settings,
            to.services,
            to.invocation,
            recipients,
            &email,
            ledger,
        )
        .await
        {
            Ok(more) => all.merge(more),
            Err(e) => return (subject, Err(e)),
        }
    }
    (subject, Ok(all))
}

/// Posts the whole change (`whole`, its email) to its destinations, whatever became of the
/// email (`emailed`). When no owner is emailed and every destination refused the change for good,
/// the fallback recipient is told, and the change is parked.
pub(crate) async fn post_and_report(
    to: &Delivery<'_>,
    d: &Decision,
    actor: &ActorLookup,
    whole: &Email,
    emailed: Result<Delivered, DeliverError>,
    ledger: &mut Ledger,
) -> Result<Delivered, DeliverError> {
    let (settings, services, invocation) = (to.settings, to.services, to.invocation);
    let posted = post_destinations(settings, services, invocation, d, actor, whole, ledger).await;
    match (emailed, posted) {
        (Ok(mut delivered), Ok(refused))
            if d.recipients.is_empty() && refused.len() == d.destinations.len() =>
        {
            let more =
                tell_fallback_of_refusals(settings, services, invocation, whole, &refused, ledger)
                    .await?;
            delivered.merge(more);
            delivered.unposted = refused;
            Ok(delivered)
        }
        (Ok(delivered), Ok(_)) => Ok(delivered),
        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
    }
}

/// Settles a delivery: marks the ledger sent, parks what was rejected for good (with the event,
/// for a replay once it is fixed), or gives the claim's lease back for Lambda's retry.
pub(crate) async fn finish(
    result: Result<Delivered, DeliverError>,
    facts: &Facts,
    subject: &str,
    original: &Value,
    mut ledger: Ledger,
    services: &Services,
    invocation: &Invocation,
) -> Outcome {
    let message_id = facts.message_id.as_str();
    let delivered = match result {
        Ok(delivered) => delivered,
        Err(e) => {
            error!(facts = ?facts, error = %e, "not sent");
            ledger.release(invocation).await;
            return Outcome::Failed(format!("{}: {e}", facts.label()));
        }
    };
    info!(message_id, resource_id = ?facts.resource_id, ses_message_ids = ?delivered.ids, subject, "sent");
    let mut outcome = Outcome::Sent;
    if !delivered.unreported.is_empty() || !delivered.unposted.is_empty() {
        match park(services, facts, subject, original, &delivered, &mut ledger).await {
            Ok(true) => outcome = Outcome::Parked,
            Ok(false) if delivered.ids.is_empty() && ledger.delivered.is_empty() => {
                // Nothing delivered and nowhere to park: Lambda's retries end in its failure queue.
                ledger.release(invocation).await;
                let first = match (delivered.unreported.first(), delivered.unposted.first()) {
                    (Some((_, e)), _) => e.to_string(),
                    (None, Some((_, e))) => e.to_string(),
                    (None, None) => "nothing delivered".to_owned(),
                };
                return Outcome::Failed(format!("{}: {first}", facts.label()));
            }
            Ok(false) => {}
            Err(e) => {
                error!(facts = ?facts, error = %e, "could not park the rejected recipients");
                ledger.release(invocation).await;
                return Outcome::Failed(format!("{}: {e}", facts.label()));
            }
        }
    }
    let settled = match outcome {
        // A replay of the parked event may claim the state again, for what the ledger lacks.
        Outcome::Parked => ledger.mark_parked().await,
        _ => ledger.mark_sent().await,
    };
    if let Err(e) = settled {
        // Every destination is in the ledger: a late duplicate finds nothing left to send.
        warn!(message_id, error = %e, "could not record the notification as sent");
    }
    outcome
}

/// The ledger of one thing told (a configuration state, an early warning, an unreadable
/// record), claimed for this invocation.
pub(crate) struct Ledger {
    dedupe: Option<Dedupe>,
    /// The stored key; none when there is no table or nothing to key on.
    pub(crate) key: Option<String>,
    /// Who and what was told already, by this attempt or an earlier one.
    delivered: BTreeSet<Entry>,
}

impl Ledger {
    /// Claims `key`; `Ok(None)` when an earlier delivery handled everything.
    pub(crate) async fn claim(
        services: &Services,
        key: Option<Key>,
        capture_time: Option<&str>,
        invocation: &Invocation,
    ) -> Result<Option<Ledger>, String> {
        let unkeyed = Ledger {
            dedupe: None,
            key: None,
            delivered: BTreeSet::new(),
        };
        let (Some(dedupe), Some(key)) = (&services.dedupe, key) else {
            return Ok(Some(unkeyed));
        };
        let key = key.to_string();
        let lease = dedupe::lease_until(invocation.deadline);
        match dedupe
            .claim_captured(&key, &invocation.request_id, lease, capture_time)
            .await
        {
            Ok(Claim::Acquired { delivered }) => {
                if !delivered.is_empty() {
                    info!(
                        key,
                        delivered = delivered.len(),
                        "resuming a partial delivery: some were emailed already"
                    );
                    debug!(key, delivered = ?delivered, "emailed already");
                }
                Ok(Some(Ledger {
                    dedupe: Some(dedupe.clone()),
                    key: Some(key),
                    delivered: delivered.iter().map(|e| Entry::parse(e)).collect(),
                }))
            }
            Ok(Claim::Unkeyed) => Ok(Some(unkeyed)),
            Ok(Claim::Duplicate) => {
                info!(
                    key,
                    "duplicate delivery: this configuration state was already emailed"
                );
                Ok(None)
            }
            Ok(Claim::InProgress) => {
                let why =
                    "another delivery of this configuration state is in progress; retried later";
                warn!(key, "{why}");
                Err(why.to_owned())
            }
            Err(e) => {
                error!(key, error = %e, "not sent");
                Err(e.to_string())
            }
        }
    }

    pub(crate) fn has(&self, entry: &Entry) -> bool {
        self.delivered.contains(entry)
    }

    /// Records `entries` as told, under SES's `message_id` when an email was sent.
    pub(crate) async fn record(
        &mut self,
        entries: &[Entry],
        message_id: Option<&str>,
    ) -> Result<(), DedupeError> {
        // A string set holds no duplicates; entries are in lower case ("A@x" and "a@x" are one
        // mailbox to SES).
        let entries: BTreeSet<Entry> = entries.iter().cloned().collect();
        let stored: Vec<String> = entries.iter().map(Entry::to_string).collect();
        if let (Some(dedupe), Some(key)) = (&self.dedupe, &self.key) {
            dedupe.record_sent(key, &stored, message_id).await?;
        }
        self.delivered.extend(entries);
        Ok(())
    }

    pub(crate) async fn mark_sent(&self) -> Result<(), DedupeError> {
        match (&self.dedupe, &self.key) {
            (Some(dedupe), Some(key)) => dedupe.mark_sent(key).await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn mark_parked(&self) -> Result<(), DedupeError> {
        match (&self.dedupe, &self.key) {
            (Some(dedupe), Some(key)) => dedupe.mark_parked(key).await,
            _ => Ok(()),
        }
    }

    pub(crate) async fn release(&self, invocation: &Invocation) {
        if let (Some(dedupe), Some(key)) = (&self.dedupe, &self.key) {
            if let Err(e) = dedupe.release(key, &invocation.request_id).await {
                warn!(key, error = %e, "could not give the claim back; the retry waits for its lease");
            }
        }
    }
}

impl From<TooLate> for DeliverError {
    fn from(TooLate(left): TooLate) -> DeliverError {
        DeliverError::Deadline(left)
    }
}

/// Why a delivery stopped; every case is retried by Lambda, which resumes from the ledger.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeliverError {
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("{0}; the email went out but its record did not, so the retry may send it again")]
    Ledger(#[from] DedupeError),
    #[error("{}s left before the invocation's deadline, too little to start a send; Lambda's retry resumes it", .0.as_secs())]
    Deadline(Duration),
    #[error(transparent)]
    Post(#[from] PostError),
    #[error("the change could not be held for the digest: {0}")]
    Hold(String),
    #[error(transparent)]
    Findings(#[from] crate::findings::ImportError),
}

/// Tells the fallback recipient (when there is one) of a change no owner is emailed and every
/// destination refused: the email with the refusals in a notice. Once: the ledger remembers.
pub(crate) async fn tell_fallback_of_refusals(
    settings: &Settings,
    services: &Services,
    invocation: &Invocation,
    email: &Email,
    refused: &[(String, PostError)],
    ledger: &mut Ledger,
) -> Result<Delivered, DeliverError> {
    let Some(fallback) = &settings.policy.fallback_recipient else {
        return Ok(Delivered::default());
    };
    let why: Vec<String> = refused.iter().map(|(_, e)| e.to_string()).collect();
    let notice = format!(
        "No owner is emailed for this group and every destination refused the post: {}. You \
         receive it as sgwatch's fallback recipient.",
        why.join("; ")
    );
    deliver(
        settings,
        services,
        invocation,
        std::slice::from_ref(fallback),
        &email.with_notice(&notice),
        ledger,
    )
    .await
}

/// Posts to every destination of the decision not yet in the ledger, recording each. A failure
/// retrying cannot fix (a missing parameter, a refused post) is logged and the others go on, and
/// returned with its destination; a failure that may pass fails the invocation once all were
/// tried, and Lambda's retry posts only where this one did not.
pub(crate) async fn post_destinations(
    settings: &Settings,
    services: &Services,
    invocation: &Invocation,
    d: &Decision,
    actor: &ActorLookup,
    email: &Email,
    ledger: &mut Ledger,
) -> Result<Vec<(String, PostError)>, DeliverError> {
    let pending: Vec<&Destination> = d
        .destinations
        .iter()
        .filter(|name| !ledger.has(&Entry::destination(name)))
        .filter_map(|name| {
            settings
                .policy
                .destinations
                .iter()
                .find(|x| &x.name == name)
        })
        .collect();
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let Some(poster) = &services.poster else {
        error!(destinations = ?d.destinations, "destinations chosen but none configured to post with");
        return Ok(Vec::new());
    };
    let mut retry: Option<PostError> = None;
    let mut refused: Vec<(String, PostError)> = Vec::new();
    for destination in pending {
        invocation.ensure(SEND_MARGIN)?;
        let name = destination.name.as_str();
        // The post, its SSM reads included, ends in time for the ledger write after it.
        let deadline = invocation
            .time_left()
            .map(|left| std::time::Instant::now() + left.saturating_sub(dedupe::RECORD_WORST_CASE));
        let delivery = webhook::delivery(ledger.key.as_deref().unwrap_or("-"), name);
        let post = Post {
            poster,
            destination,
            deadline,
            delivery: &delivery,
        };
        let posted = post.send_kind(settings, services, d, actor, email).await;
        match posted {
            Ok(0) => info!(
                destination = name,
                "nothing to page at or above the paging level"
            ),
            Ok(_) => {
                ledger.record(&[Entry::destination(name)], None).await?;
                info!(destination = name, kind = %destination.kind, "posted");
            }
            Err(e) if e.is_transient() => {
                error!(destination = name, error = %e, "not posted; the invocation fails so Lambda retries it");
                retry.get_or_insert(e);
            }
            Err(e) => {
                error!(destination = name, error = %e, "not posted, and retrying cannot help; the other destinations and the email go on");
                refused.push((name.to_owned(), e));
            }
        }
    }
    match retry {
        Some(e) => Err(e.into()),
        None => Ok(refused),
    }
}

/// One post over HTTPS to a Slack, Teams or webhook destination.
struct Post<'a> {
    poster: &'a Poster,
    destination: &'a Destination,
    deadline: Option<std::time::Instant>,
    delivery: &'a str,
}

impl Post<'_> {
    /// Tells the destination in its kind's way: how many posts it took (0: nothing to page).
    async fn send_kind(
        &self,
        settings: &Settings,
        services: &Services,
        d: &Decision,
        actor: &ActorLookup,
        email: &Email,
    ) -> Result<usize, PostError> {
        let destination = self.destination;
        match destination.kind {
            Kind::Chatbot => {
                let message = chatbot::message(d, actor, self.delivery);
                chatbot::publish(&services.sns, destination, &message)
                    .await
                    .map(|()| 1)
            }
            Kind::PagerDuty => {
                let security = &settings.security;
                pagerduty::page(self.poster, destination, d, actor, security, self.deadline).await
            }
            Kind::Slack | Kind::Teams | Kind::Webhook => {
                self.send(d, actor, email).await.map(|()| 1)
            }
        }
    }

    /// Posts the decision; after a 401, 403 or 404, once more if the destination's parameters
    /// changed (a rotated URL or key).
    async fn send(
        &self,
        d: &Decision,
        actor: &ActorLookup,
        email: &Email,
    ) -> Result<(), PostError> {
        let (poster, destination, deadline) = (self.poster, self.destination, self.deadline);
        let post = || async {
            let payload = payload(
                poster,
                destination,
                d,
                actor,
                email,
                deadline,
                self.delivery,
            )
            .await?;
            poster.post(destination, &payload, deadline).await
        };
        let posted = post().await;
        if let Err(PostError::Refused {
            status: 401 | 403 | 404,
            ..
        }) = &posted
        {
            if poster.refresh(destination, deadline).await {
                info!(
                    destination = %destination.name,
                    "refused, and its parameters changed: posting once more"
                );
                return post().await;
            }
        }
        posted
    }
}

/// What `destination` is sent: its kind's rendering of the decision.
async fn payload(
    poster: &Poster,
    destination: &Destination,
    d: &Decision,
    actor: &ActorLookup,
    email: &Email,
    deadline: Option<std::time::Instant>,
    delivery: &str,
) -> Result<Payload, PostError> {
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap_or_default();
    Ok(match destination.kind {
        Kind::Slack => Payload {
            body: json(slack::message(d, actor)),
            headers: Vec::new(),
        },
        Kind::Teams => Payload {
            body: json(teams::message(d, actor)),
            headers: Vec::new(),
        },
        Kind::Webhook => {
            let body = webhook::body(d, email);
            let key_parameter = destination.key_parameter.as_deref().unwrap_or_default();
            let key = poster
                .parameter_until(&destination.name, key_parameter, deadline)
                .await?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let headers =
                webhook::headers(key.as_bytes(), now, delivery, &body).ok_or_else(|| {
                    PostError::Parameter {
                        destination: destination.name.clone(),
                        parameter: key_parameter.to_owned(),
                        reason: "the key cannot key an HMAC".to_owned(),
                        transient: false,
                    }
                })?;
            Payload { body, headers }
        }
        Kind::PagerDuty | Kind::Chatbot => {
            return Err(PostError::Url {
                destination: destination.name.clone(),
                parameter: destination.parameter.clone(),
                reason: format!("a {} destination is not posted to a URL", destination.kind),
            })
        }
    })
}

/// What a delivery did.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    pub(crate) ids: Vec<String>,
    /// Rejected for good, each with its reason.
    pub(crate) rejected: Vec<(String, SendError)>,
    /// Rejected recipients no one was told about (no fallback, or the fallback was rejected too).
    pub(crate) unreported: Vec<(String, SendError)>,
    /// Destinations of a change emailed to no owner that all refused it for good (a 4xx).
    pub(crate) unposted: Vec<(String, PostError)>,
}

impl Delivered {
    pub(crate) fn merge(&mut self, other: Delivered) {
        self.ids.extend(other.ids);
        self.rejected.extend(other.rejected);
        self.unreported.extend(other.unreported);
        self.unposted.extend(other.unposted);
    }
}

/// Sends to the recipients not yet in the ledger, in batches of at most SES's 50 recipients,
/// recording each batch as it goes; recipients SES rejects for good (it names them) are taken out
/// and the rest of their batch is sent again, and they are reported to the fallback recipient.
/// Anything else (sender, account, throttling, a lost answer) stops the delivery: the invocation
/// fails, and Lambda's retry sends what the ledger lacks.
pub(crate) async fn deliver(
    settings: &Settings,
    services: &Services,
    invocation: &Invocation,
    recipients: &[String],
    email: &Email,
    ledger: &mut Ledger,
) -> Result<Delivered, DeliverError> {
    let mut out = Delivered::default();
    let mut pending: Vec<String> = Vec::new();
    for r in recipients {
        if !ledger.has(&Entry::email(r)) && !pending.iter().any(|p| p.eq_ignore_ascii_case(r)) {
            pending.push(r.clone());
        }
    }
    let mut batches: std::collections::VecDeque<Vec<String>> = pending
        .chunks(mail::MAX_RECIPIENTS)
        .map(<[String]>::to_vec)
        .collect();
    while let Some(batch) = batches.pop_front() {
        invocation.ensure(SEND_MARGIN)?;
        match mail::send(&services.ses, &settings.sender, &batch, email).await {
            Ok(id) => {
                let emailed: Vec<Entry> = batch.iter().map(|r| Entry::email(r)).collect();
                ledger.record(&emailed, Some(&id)).await?;
                out.ids.push(id);
            }
            // SES names whom it rejects (each is in this batch): they are out, and the others
            // go again together. Every round sends or takes someone out, so this ends.
            Err(SendError::Rejected {
                recipients: named,
                reason,
            }) => {
                let rest: Vec<String> = batch
                    .into_iter()
                    .filter(|r| !named.iter().any(|n| n.eq_ignore_ascii_case(r)))
                    .collect();
                for r in named {
                    let e = SendError::Rejected {
                        recipients: vec![r.clone()],
                        reason: reason.clone(),
                    };
                    out.rejected.push((r, e));
                }
                if !rest.is_empty() {
                    batches.push_front(rest);
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    for (r, e) in &out.rejected {
        error!(recipient_domain = %logs::domains([r]), reason = %e, "SES rejected a recipient for good; telling the fallback recipient");
        debug!(recipient = %r, "rejected for good");
    }
    if !out.rejected.is_empty() {
        report_rejected(settings, services, invocation, email, ledger, &mut out).await?;
    }
    Ok(out)
}

/// Tells the fallback recipient, once per notification, whom SES rejected for good (in the
/// version of the email they were sent: the versions an early warning splits the email into
/// report each their own). Without a fallback, or when SES rejects it too, the rejected are
/// unreported.
async fn report_rejected(
    settings: &Settings,
    services: &Services,
    invocation: &Invocation,
    email: &Email,
    ledger: &mut Ledger,
    out: &mut Delivered,
) -> Result<(), DeliverError> {
    let fallback = settings
        .policy
        .fallback_recipient
        .as_ref()
        .filter(|f| !out.rejected.iter().any(|(r, _)| r.eq_ignore_ascii_case(f)));
    let Some(f) = fallback else {
        out.unreported = out.rejected.clone();
        return Ok(());
    };
    let untold: Vec<&(String, SendError)> = out
        .rejected
        .iter()
        .filter(|(r, _)| !ledger.has(&Entry::notice(f, r)))
        .collect();
    if untold.is_empty() {
        return Ok(());
    }
    let notice_to: Vec<Entry> = untold.iter().map(|(r, _)| Entry::notice(f, r)).collect();
    let why: Vec<String> = untold.iter().map(|(r, e)| format!("{r}: {e}")).collect();
    let notice = format!(
        "SES rejected this email for {}. You receive it as sgwatch's fallback recipient.",
        why.join("; ")
    );
    invocation.ensure(SEND_MARGIN)?;
    let to = std::slice::from_ref(f);
    match mail::send(
        &services.ses,
        &settings.sender,
        to,
        &email.with_notice(&notice),
    )
    .await
    {
        Ok(id) => {
            ledger.record(&notice_to, Some(&id)).await?;
            out.ids.push(id);
        }
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            error!(recipient_domain = %logs::domains([f]), reason = %e, "SES rejected the fallback recipient too");
            debug!(recipient = %f, "the fallback recipient, rejected for good");
            out.unreported = out.rejected.clone();
            out.unreported.push((f.clone(), e));
        }
    }
    Ok(())
}

/// SQS accepts at most 256 KiB; the facts and reasons stay far below it. Long reasons and long
/// lists are cut so the key facts always fit.
const REASON_MAX_CHARS: usize = 1000;
const PARKED_MAX_RECIPIENTS: usize = 100;
/// SQS's largest message body (256 KiB), less room for SQS's own attributes.
const QUEUE_MAX_BYTES: usize = 256 * 1024 - 1024;

/// `reason` cut to [`REASON_MAX_CHARS`].
fn cut(reason: String) -> String {
    match reason.char_indices().nth(REASON_MAX_CHARS) {
        Some((i, _)) => format!("{}…", &reason[..i]),
        None => reason,
    }
}

/// The record of what nobody could be told of a change, with its event.
fn parked_change(
    facts: &Facts,
    subject: &str,
    original: &Value,
    delivered: &Delivered,
    ledger: &Ledger,
) -> ParkedRecord {
    let reason = match (
        delivered.unreported.is_empty(),
        delivered.unposted.is_empty(),
    ) {
        (false, true) => {
            "SES rejected these recipients for good and no fallback recipient could be told"
        }
        (true, false) => "every destination of the change refused it for good",
        _ => "SES rejected these recipients and every destination refused the change, for good",
    };
    let rejected = delivered.unreported.iter().take(PARKED_MAX_RECIPIENTS);
    let refused = delivered.unposted.iter().take(PARKED_MAX_RECIPIENTS);
    ParkedRecord {
        source: PARKED_SOURCE.to_owned(),
        reason: reason.to_owned(),
        facts: facts.clone(),
        what: Parked::Change {
            subject: subject.to_owned(),
            rejected: rejected
                .map(|(r, e)| RejectedRecipient {
                    recipient: r.clone(),
                    reason: cut(e.to_string()),
                })
                .collect(),
            refused: refused
                .map(|(d, e)| RefusedDestination {
                    destination: d.clone(),
                    reason: cut(e.to_string()),
                })
                .collect(),
            delivered: ledger
                .delivered
                .iter()
                .take(PARKED_MAX_RECIPIENTS)
                .map(Entry::to_string)
                .collect(),
            event: Some(original.clone()),
            event_omitted: None,
        },
    }
}

/// The record as a queue message: without its event when the event does not fit (the facts
/// still say which change it was; its Config history holds the item).
fn queue_body(mut record: ParkedRecord, original: &Value) -> Result<String, String> {
    let body = serde_json::to_string(&record).map_err(|e| e.to_string())?;
    if body.len() <= QUEUE_MAX_BYTES {
        return Ok(body);
    }
    if let Parked::Change {
        event,
        event_omitted,
        ..
    } = &mut record.what
    {
        *event = None;
        *event_omitted = Some(format!(
            "the event ({} bytes) does not fit a queue message",
            original.to_string().len()
        ));
    }
    serde_json::to_string(&record).map_err(|e| e.to_string())
}

/// Parks what nobody could be told of a notification in the failure queue, with its event
/// (once: the ledger remembers). `Ok(false)` when no queue is configured.
async fn park(
    services: &Services,
    facts: &Facts,
    subject: &str,
    original: &Value,
    delivered: &Delivered,
    ledger: &mut Ledger,
) -> Result<bool, String> {
    let Some(queue) = &services.failure_queue else {
        return Ok(false);
    };
    if ledger.has(&Entry::Parked) {
        return Ok(true);
    }
    let record = parked_change(facts, subject, original, delivered, ledger);
    let reason = record.reason.clone();
    let body = queue_body(record, original)?;
    queue
        .send(body)
        .await
        .map_err(|e| format!("could not park in the failure queue: {e}"))?;
    warn!(facts = ?facts, rejected = delivered.unreported.len().min(PARKED_MAX_RECIPIENTS), refused = delivered.unposted.len().min(PARKED_MAX_RECIPIENTS), "parked in the failure queue: {reason}");
    ledger
        .record(&[Entry::Parked], None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Parks a record that cannot be read at all (not JSON, no message) in the failure queue, once
/// per message id. Without a queue the invocation fails, so Lambda retries it and then keeps
/// the whole event in its on-failure destination.
pub(crate) async fn park_unreadable(
    message_id: &str,
    why: &ParseError,
    excerpt: &str,
    invocation: &Invocation,
    services: &Services,
) -> Outcome {
    error!(message_id, reason = %why, "a record sgwatch could not read");
    let Some(queue) = &services.failure_queue else {
        return Outcome::Failed(format!(
            "{message_id}: {why} (the record could not be read, and there is no failure queue to park it in)"
        ));
    };
    let key = Key::unreadable(message_id);
    let mut ledger = match Ledger::claim(services, key, None, invocation).await {
        Ok(Some(ledger)) => ledger,
        Ok(None) => return Outcome::Skipped,
        Err(e) => return Outcome::Failed(format!("{message_id}: {e}")),
    };
    if ledger.has(&Entry::Parked) {
        return Outcome::Parked;
    }
    let record = ParkedRecord {
        source: PARKED_SOURCE.to_owned(),
        reason: format!("the record could not be read: {why}"),
        facts: Facts {
            message_id: message_id.to_owned(),
            ..Facts::default()
        },
        what: Parked::Unreadable {
            body: excerpt.to_owned(),
        },
    };
    let sent = match serde_json::to_string(&record) {
        Ok(body) => queue.send(body).await,
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = sent {
        ledger.release(invocation).await;
        return Outcome::Failed(format!(
            "{message_id}: {why}; could not park it in the failure queue: {e}"
        ));
    }
    warn!(
        message_id,
        "parked in the failure queue: a record that could not be read"
    );
    // A lost record costs at most a second parked copy.
    if let Err(e) = ledger.record(&[Entry::Parked], None).await {
        warn!(message_id, error = %e, "could not record the parked record");
    } else if let Err(e) = ledger.mark_sent().await {
        warn!(message_id, error = %e, "could not record the parked record");
    }
    Outcome::Parked
}
