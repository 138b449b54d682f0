//! Security Hub in a delivery (`SGWATCH_SECURITY_HUB`): the change's findings, imported once per
//! change (the ledger's `securityhub` entry), whatever became of the email, and never in its way.
//! A refusal (Security Hub not enabled, the import not permitted) is logged and blocks nothing:
//! `sgwatch status` says what is missing. A failure that may pass fails the invocation once the
//! email and the posts are done, so Lambda's retry imports only what this one did not.

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use tracing::{error, info};

use crate::context::{Outcome, Services};
use crate::core::decide::Decision;
use crate::core::finding::{closed, is_verify, opened, resolving, Exposed};
use crate::core::severity::Severity;
use crate::core::who::ActorLookup;
use crate::deliver::{pagerduty, DeliverError, Delivery, Ledger};
use crate::findings::{
    changed_at, finding, import, opened_at, record_closed, record_opened, ImportError,
};
use crate::ledger::Entry;

/// Security Hub's largest batch.
const BATCH: usize = 100;

fn rfc3339(secs: u64) -> String {
    DateTime::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))
        .fmt(Format::DateTime)
        .unwrap_or_default()
}

/// `sgwatch verify`'s finding: informational and archived from the start, so it proves the
/// import and clutters no one's list.
fn verify_finding(d: &Decision) -> Option<Exposed> {
    let s = &d.analysis.subject;
    let c = d.analysis.changes.first()?;
    let rule = crate::core::link::RuleRef::of_change(c, None);
    Some(Exposed {
        id: format!("{}/{}/{}/verify", s.account, s.region, s.resource_id),
        rule,
        severity: Severity::Info,
        command: None,
    })
}

/// Whether the change has findings to import: Security Hub is on and it opens or closes a rule
/// open to the internet.
pub(crate) fn has_findings(d: &Decision, settings: &crate::core::settings::Settings) -> bool {
    settings.security.security_hub && !(opened(d).is_empty() && closed(d).is_empty())
}

/// Imports the change's findings after the email and posts (`delivered`), whatever became of
/// them; a failure that may pass fails the delivery only once those were tried.
pub(crate) async fn tell_after(
    to: &Delivery<'_>,
    d: &Decision,
    actor: &ActorLookup,
    delivered: Result<crate::deliver::Delivered, DeliverError>,
    ledger: &mut Ledger,
) -> Result<crate::deliver::Delivered, DeliverError> {
    let imported = tell(to, d, actor, ledger).await;
    match (delivered, imported) {
        (Ok(_), Err(e)) => Err(e),
        (delivered, _) => delivered,
    }
}

/// Imports the change's findings: one per rule it opened, and the archiving of each rule it
/// closed that sgwatch recorded open.
pub(crate) async fn tell(
    to: &Delivery<'_>,
    d: &Decision,
    actor: &ActorLookup,
    ledger: &mut Ledger,
) -> Result<(), DeliverError> {
    if !to.settings.security.security_hub || ledger.has(&Entry::Findings) {
        return Ok(());
    }
    let services = to.services;
    let table = services.dedupe.as_ref();
    let now = rfc3339(services.clock.now_secs());
    let at = changed_at(d, &now);
    let mut findings = Vec::new();
    let mut closing = Vec::new();
    if is_verify(d) {
        if let Some(e) = verify_finding(d) {
            findings.push(finding(d, &e, actor, (&at, &at), false));
        }
    } else {
        for e in opened(d) {
            let created = match table {
                Some(t) => record_opened(t, &e.id, &at).await?,
                None => at.clone(),
            };
            findings.push(finding(d, &e, actor, (&created, &at), true));
        }
        for e in closed(d) {
            let created = match table {
                Some(t) => opened_at(t, &e.id).await?,
                None => None,
            };
            // Closed only where sgwatch opened it: a rule from before is no finding of ours.
            let Some(created) = created else { continue };
            // Security Hub takes an update only with a later UpdatedAt.
            let updated = if at > created {
                at.clone()
            } else {
                now.clone()
            };
            findings.push(finding(d, &e, actor, (&created, &updated), false));
            closing.push(e.id);
        }
    }
    if findings.is_empty() {
        return Ok(());
    }
    let s = &d.analysis.subject;
    let place = (s.account.as_str(), s.region.as_str());
    let client = services.securityhub_for().await;
    let count = findings.len();
    let mut batches = findings.into_iter().peekable();
    while batches.peek().is_some() {
        let batch: Vec<_> = batches.by_ref().take(BATCH).collect();
        match import(&client, place, batch).await {
            Ok(()) => {}
            Err(e @ ImportError::Refused { .. }) => {
                error!(resource_id = %s.resource_id, error = %e, "findings not imported, and retrying cannot help: run sgwatch status");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(t) = table {
        for id in &closing {
            record_closed(t, id, services.clock.now_secs()).await?;
        }
    }
    ledger.record(&[Entry::Findings], None).await?;
    info!(resource_id = %s.resource_id, findings = count, closed = closing.len(), "imported into Security Hub");
    Ok(())
}

/// A change nobody is told of (the group is not opted in, or the change is below what it
/// notifies) that removes rules open to the internet: the findings sgwatch recorded open are
/// archived and every pagerduty destination resolves its incident, so what opened with an alert
/// (through `--always-notify-at`, or before the opt-in went) does not stay open for ever.
/// Idempotent without the ledger: an archive with the same `UpdatedAt` is ignored, and a resolve
/// of a closed incident is nothing.
pub(crate) async fn close_untold(message_id: &str, d: &Decision, to: &Delivery<'_>) -> Outcome {
    let (settings, services) = (to.settings, to.services);
    let closing = closed(d);
    if closing.is_empty() || is_verify(d) {
        return Outcome::Skipped;
    }
    let mut failed: Vec<String> = Vec::new();
    if settings.security.security_hub {
        if let Err(e) = archive(d, &closing, services).await {
            if e.is_transient() {
                failed.push(e.to_string());
            } else {
                error!(message_id, error = %e, "findings not archived, and retrying cannot help: run sgwatch status");
            }
        }
    }
    let pagers = resolving(d, &settings.policy.destinations, settings.security.page_at);
    // Only the resolves: what this change opens is told to no one, PagerDuty included.
    let mut only_closing = d.clone();
    only_closing
        .analysis
        .changes
        .retain(|c| c.action == crate::core::rules::Action::Removed);
    if let (Some(poster), false) = (&services.poster, pagers.is_empty()) {
        let deadline = to
            .invocation
            .time_left()
            .map(|left| std::time::Instant::now() + left);
        for x in settings
            .policy
            .destinations
            .iter()
            .filter(|x| pagers.contains(&x.name))
        {
            let actor = ActorLookup::Unknown(String::new());
            match pagerduty::page(
                poster,
                x,
                &only_closing,
                &actor,
                &settings.security,
                deadline,
            )
            .await
            {
                Ok(n) => {
                    info!(message_id, destination = %x.name, resolved = n, "resolved in PagerDuty")
                }
                Err(e) if e.is_transient() => failed.push(e.to_string()),
                Err(e) => {
                    error!(message_id, destination = %x.name, error = %e, "not resolved, and retrying cannot help")
                }
            }
        }
    }
    match failed.is_empty() {
        true => Outcome::Skipped,
        false => Outcome::Failed(format!(
            "{}: {}",
            d.analysis.subject.facts(message_id).label(),
            failed.join("; ")
        )),
    }
}

/// Imports the archiving of each of `closing` that sgwatch recorded open, and records it closed.
async fn archive(
    d: &Decision,
    closing: &[Exposed],
    services: &Services,
) -> Result<(), ImportError> {
    let Some(table) = services.dedupe.as_ref() else {
        return Ok(());
    };
    let now = rfc3339(services.clock.now_secs());
    let at = changed_at(d, &now);
    let actor = ActorLookup::Unknown("not looked up: nobody is told of this change".to_owned());
    let mut findings = Vec::new();
    let mut ids = Vec::new();
    for e in closing {
        let Some(created) = opened_at(table, &e.id).await? else {
            continue;
        };
        let updated = if at > created {
            at.clone()
        } else {
            now.clone()
        };
        findings.push(finding(d, e, &actor, (&created, &updated), false));
        ids.push(e.id.clone());
    }
    if findings.is_empty() {
        return Ok(());
    }
    let s = &d.analysis.subject;
    let client = services.securityhub_for().await;
    import(&client, (&s.account, &s.region), findings).await?;
    for id in &ids {
        record_closed(table, id, services.clock.now_secs()).await?;
    }
    info!(resource_id = %s.resource_id, archived = ids.len(), "archived in Security Hub");
    Ok(())
}
