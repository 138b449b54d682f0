//! One Lambda invocation: every record of the event is read, decided and, when it should be,
//! emailed. Records are isolated from each other; an unreadable one is logged with its message id
//! and skipped, a transient failure fails the invocation (after the others are done) so Lambda
//! retries it and finally parks it in the failure queue.

use aws_config::SdkConfig;
use serde::Serialize;
use serde_json::Value;
use tracing::{error, info, warn};

use crate::actor::ActorLookup;
use crate::decide::{analyze, decide, Decision};
use crate::dedupe::{Claim, Dedupe};
use crate::mail::{self, SendError};
use crate::message::{envelopes, ConfigMessage, Envelope, ItemChange};
use crate::render::{render, Email};
use crate::settings::Settings;
use crate::{actor, aws, oversized};

/// The AWS clients the handler uses, built once per cold start.
#[derive(Clone, Debug)]
pub struct Services {
    pub ses: aws_sdk_sesv2::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    /// Present when an idempotency table is configured.
    pub dedupe: Option<Dedupe>,
}

impl Services {
    pub fn new(config: &SdkConfig, settings: &Settings) -> Services {
        Services {
            ses: aws_sdk_sesv2::Client::new(config),
            s3: aws::s3_client(config),
            cloudtrail: aws_sdk_cloudtrail::Client::new(config),
            dedupe: settings.idempotency_table.as_ref().map(|table| Dedupe {
                client: aws_sdk_dynamodb::Client::new(config),
                table: table.clone(),
            }),
        }
    }
}

/// What an invocation did, returned to Lambda (and visible in `cargo lambda invoke`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub records: usize,
    pub sent: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// Some records could not be delivered; Lambda should retry the event.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {records} notifications could not be delivered and will be retried: {first}")]
pub struct InvocationError {
    pub records: usize,
    pub failed: usize,
    pub first: String,
}

enum Outcome {
    Sent,
    Skipped,
    Failed(String),
}

/// Handles one Lambda event.
pub async fn handle(
    event: &Value,
    settings: &Settings,
    services: &Services,
) -> Result<Report, InvocationError> {
    let mut report = Report::default();
    let mut first_failure = None;
    for envelope in envelopes(event) {
        report.records += 1;
        match process(envelope, settings, services).await {
            Outcome::Sent => report.sent += 1,
            Outcome::Skipped => report.skipped += 1,
            Outcome::Failed(why) => {
                report.failed += 1;
                first_failure.get_or_insert(why);
            }
        }
    }
    match first_failure {
        None => Ok(report),
        Some(first) => Err(InvocationError {
            records: report.records,
            failed: report.failed,
            first,
        }),
    }
}

async fn process(envelope: Envelope, settings: &Settings, services: &Services) -> Outcome {
    let message_id = envelope.message_id.as_deref().unwrap_or("-");
    let change = match envelope.message {
        Err(e) => {
            warn!(message_id, error = %e, "skipped: unreadable record");
            return Outcome::Skipped;
        }
        Ok(ConfigMessage::Other { message_type }) => {
            info!(
                message_id,
                message_type, "ignored: not a configuration item change"
            );
            return Outcome::Skipped;
        }
        Ok(ConfigMessage::ItemChange(change)) => change,
        Ok(ConfigMessage::Oversized(o)) => match oversized::fetch(&services.s3, &o).await {
            Ok(change) => change,
            Err(e) => {
                error!(message_id, resource_id = %o.configuration_item_summary.resource_id, error = %e, "oversized item not read");
                return Outcome::Failed(e.to_string());
            }
        },
    };
    process_change(message_id, &change, settings, services).await
}

async fn process_change(
    message_id: &str,
    change: &ItemChange,
    settings: &Settings,
    services: &Services,
) -> Outcome {
    let analysis = match analyze(change) {
        Ok(a) => a,
        Err(e) => {
            warn!(message_id, error = %e, "skipped: changes unreadable");
            return Outcome::Skipped;
        }
    };
    let d = decide(analysis, &settings.policy);
    let s = &d.analysis.subject;
    info!(
        message_id,
        resource_type = %s.resource_type,
        resource_id = %s.resource_id,
        account = %s.account,
        region = %s.region,
        change_type = %s.change_type,
        severity = %d.analysis.severity,
        changes = d.analysis.changes.len(),
        notify = d.notify,
        recipients = d.recipients.len(),
        reason = %d.reason,
        "decision"
    );
    if !d.notify {
        return Outcome::Skipped;
    }
    let claim = match &services.dedupe {
        None => Claim::Unkeyed,
        Some(dedupe) => match dedupe.claim(s).await {
            Ok(claim) => claim,
            Err(e) => {
                error!(message_id, resource_id = %s.resource_id, error = %e, "not sent");
                return Outcome::Failed(e.to_string());
            }
        },
    };
    match claim {
        Claim::Duplicate => {
            info!(message_id, resource_id = %s.resource_id, state_id = ?s.state_id, "duplicate delivery: this configuration state was already emailed");
            return Outcome::Skipped;
        }
        Claim::InProgress => {
            let why = "another delivery of this configuration state is in progress; retried later"
                .to_owned();
            warn!(message_id, resource_id = %s.resource_id, state_id = ?s.state_id, "{why}");
            return Outcome::Failed(why);
        }
        Claim::Acquired | Claim::Unkeyed => {}
    }
    let actor = if settings.lookup_actor {
        actor::lookup(
            &services.cloudtrail,
            &s.resource_id,
            s.capture_time.as_deref(),
        )
        .await
    } else {
        ActorLookup::Unknown("actor lookup is off (SGWATCH_LOOKUP_ACTOR=false)".to_owned())
    };
    let email = render(&d, &actor);
    match deliver(settings, services, &d, &email).await {
        Ok(ids) => {
            info!(message_id, resource_id = %s.resource_id, ses_message_ids = ?ids, subject = %email.subject, "sent");
            if let (Some(dedupe), Claim::Acquired) = (&services.dedupe, &claim) {
                // The email is out; a failure here only risks a duplicate after the lease.
                if let Err(e) = dedupe.mark_sent(s).await {
                    warn!(message_id, error = %e, "could not record the email as sent");
                }
            }
            Outcome::Sent
        }
        Err(e) => {
            error!(message_id, resource_id = %s.resource_id, error = %e, "not sent");
            if let (Some(dedupe), Claim::Acquired) = (&services.dedupe, &claim) {
                if let Err(e) = dedupe.release(s).await {
                    warn!(message_id, error = %e, "could not release the idempotency claim; the retry waits for its lease");
                }
            }
            Outcome::Failed(e.to_string())
        }
    }
}

/// Sends to the recipients; recipients SES rejects for good are reported to the fallback
/// recipient. Fails when nothing could be delivered or a failure is transient.
async fn deliver(
    settings: &Settings,
    services: &Services,
    d: &Decision,
    email: &Email,
) -> Result<Vec<String>, SendError> {
    let ses = &services.ses;
    let sender = &settings.sender;
    let first = match mail::send(ses, sender, &d.recipients, email).await {
        Ok(id) => return Ok(vec![id]),
        Err(e) if e.is_transient() => return Err(e),
        Err(e) => e,
    };
    // One address can spoil a multi-recipient send (e.g. unverified in the SES sandbox): try each.
    let mut sent = Vec::new();
    let mut rejected = Vec::new();
    if d.recipients.len() > 1 {
        for r in &d.recipients {
            match mail::send(ses, sender, std::slice::from_ref(r), email).await {
                Ok(id) => sent.push(id),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => rejected.push((r.clone(), e)),
            }
        }
    } else {
        rejected.push((d.recipients.join(", "), first.clone()));
    }
    for (r, e) in &rejected {
        error!(recipient = %r, error = %e, "SES rejected a recipient");
    }
    if rejected.is_empty() {
        return Ok(sent);
    }
    let fallback = settings
        .policy
        .fallback_recipient
        .as_ref()
        .filter(|f| !rejected.iter().any(|(r, _)| r.eq_ignore_ascii_case(f)));
    match fallback {
        Some(f) => {
            let why: Vec<String> = rejected.iter().map(|(r, e)| format!("{r}: {e}")).collect();
            let notice = format!(
                "SES rejected this email for {}. You receive it as sgwatch's fallback recipient.",
                why.join("; ")
            );
            let id = mail::send(
                ses,
                sender,
                std::slice::from_ref(f),
                &email.with_notice(&notice),
            )
            .await?;
            sent.push(id);
            Ok(sent)
        }
        // Delivered to some: retrying would duplicate theirs; the rejections are logged above.
        None if !sent.is_empty() => Ok(sent),
        None => Err(first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::operation::send_email::{SendEmailError, SendEmailOutput};
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
    use aws_sdk_sesv2::Client as Ses;
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};

    fn services(ses: aws_sdk_sesv2::Client) -> Services {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .build(),
        );
        let cloudtrail = mock_client!(aws_sdk_cloudtrail, []);
        Services {
            ses,
            s3,
            cloudtrail,
            dedupe: None,
        }
    }

    fn settings(fallback: Option<&str>) -> Settings {
        Settings::from_lookup(|k| match k {
            "SGWATCH_SENDER" => Some("alerts@example.com".into()),
            "SGWATCH_LOOKUP_ACTOR" => Some("false".into()),
            "SGWATCH_FALLBACK_RECIPIENT" => fallback.map(str::to_owned),
            _ => None,
        })
        .unwrap()
    }

    fn event(owners: &str) -> Value {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        v["configurationItem"]["tags"]["OwnerDL"] = owners.into();
        serde_json::json!({"Records": [{"Sns": {"MessageId": "m-1", "Message": v.to_string()}}]})
    }

    fn to(addresses: &'static [&'static str]) -> Rule {
        mock!(Ses::send_email)
            .match_requests(move |r| {
                r.destination().map(|d| d.to_addresses())
                    == Some(&addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>()[..])
            })
            .then_output(|| SendEmailOutput::builder().message_id("ok").build())
    }

    fn rejected() -> Rule {
        mock!(Ses::send_email).then_error(|| {
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Email address is not verified: b@corp.example")
                    .build(),
            )
        })
    }

    #[tokio::test]
    async fn a_rejected_owner_is_reported_to_the_fallback_recipient() {
        // Both owners at once: rejected; a alone: sent; b alone: rejected; fallback: sent.
        let (first, a, b, fallback) = (
            rejected(),
            to(&["a@corp.example"]),
            rejected(),
            to(&["secops@corp.example"]),
        );
        let ses = mock_client!(
            aws_sdk_sesv2,
            RuleMode::Sequential,
            [&first, &a, &b, &fallback]
        );
        let report = handle(
            &event("a@corp.example b@corp.example"),
            &settings(Some("secops@corp.example")),
            &services(ses),
        )
        .await
        .unwrap();
        assert_eq!(report.sent, 1);
        assert_eq!(
            (
                first.num_calls(),
                a.num_calls(),
                b.num_calls(),
                fallback.num_calls()
            ),
            (1, 1, 1, 1)
        );
    }

    #[tokio::test]
    async fn all_rejected_without_fallback_fails_the_invocation() {
        let only = rejected();
        let ses = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&only]);
        let err = handle(&event("b@corp.example"), &settings(None), &services(ses))
            .await
            .unwrap_err();
        assert_eq!(err.failed, 1);
        assert!(err.to_string().contains("SES rejected"), "{err}");
    }

    #[tokio::test]
    async fn throttling_fails_the_invocation_without_trying_the_fallback() {
        let throttled = mock!(Ses::send_email).then_error(|| {
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("Maximum sending rate exceeded.")
                    .build(),
            )
        });
        let ses = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&throttled]);
        let err = handle(
            &event("a@corp.example"),
            &settings(Some("secops@corp.example")),
            &services(ses),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("throttling"), "{err}");
        assert_eq!(throttled.num_calls(), 1);
    }
}
