//! The handler's AWS edges against a real moto server: SES sends what a user receives, an
//! oversized notification is resolved from a real S3 object, CloudTrail's absence (moto has no
//! `LookupEvents`) yields an email that says the actor is unknown, and failures fail the invocation.

use serde_json::json;
use sgwatch_handler::process::{handle, Report, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture::{self, sns, SENDER, TABLE};

/// The sender, with the actor lookup on, then `extra`.
fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![("SGWATCH_SENDER", SENDER)];
    vars.extend_from_slice(extra);
    fixture::settings_from(&vars)
}

#[tokio::test]
async fn sns_event_sends_the_owner_an_email_through_ses() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let services = Services::new(&config, &settings(&[]));

    let report = handle(
        &fixture::json("rdp-opened.sns-event.json"),
        &settings(&[]),
        &services,
    )
    .await
    .expect("delivered");
    assert_eq!(
        report,
        Report {
            records: 1,
            sent: 1,
            skipped: 0,
            parked: 0,
            failed: 0,
            recorded: 0,
            heartbeats: 0,
            held: 0,
            batch_item_failures: Vec::new(),
        }
    );

    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let m = &mail[0];
    assert_eq!(m.source, SENDER);
    assert_eq!(m.destinations, ["platform-team@example.com"]);
    assert_eq!(
        m.subject.as_deref(),
        Some("[sgwatch CRITICAL] sg-0123456789abcdef0 (shared-http) 123456789012/us-east-1: +ingress tcp/3389 from 0.0.0.0/0")
    );
    let text = m.text.as_deref().unwrap();
    assert!(
        text.contains("[critical] +ingress tcp/3389 from 0.0.0.0/0"),
        "{text}"
    );
    // CloudTrail has no event for this made-up change (scripts/moto.py answers LookupEvents as
    // CloudTrail does before it has delivered a call): the email still goes out, saying so.
    assert!(
        text.contains("Changed by: unknown (CloudTrail has no matching security-group event yet)"),
        "{text}"
    );
    assert!(m.html.as_deref().unwrap().contains("<td>0.0.0.0/0</td>"));
}

#[tokio::test]
async fn untagged_group_and_other_message_types_send_nothing() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let services = Services::new(&config, &settings(&[]));

    let mut untagged = fixture::json("rdp-opened.json");
    untagged["configurationItem"]["tags"] = json!({});
    untagged["configurationItem"]["configuration"]["tags"] = json!([]);
    // (A message that is not JSON is parked, not skipped: tests/it/unreadable.rs.)
    let event = json!({"Records": [
        sns(&untagged, "m-1")["Records"][0],
        sns(&fixture::json("snapshot-delivery.json"), "m-2")["Records"][0],
    ]});
    let report = handle(&event, &settings(&[]), &services).await.unwrap();
    assert_eq!(
        report,
        Report {
            records: 2,
            sent: 0,
            skipped: 2,
            parked: 0,
            failed: 0,
            recorded: 0,
            heartbeats: 0,
            held: 0,
            batch_item_failures: Vec::new(),
        }
    );
    assert!(moto.ses_messages().await.is_empty());
}

#[tokio::test]
async fn oversized_notification_is_read_from_the_config_bucket() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let services = Services::new(&config, &settings(&[]));
    let oversized = fixture::json("oversized.json");
    let location = oversized["s3DeliverySummary"]["s3BucketLocation"]
        .as_str()
        .unwrap();
    let (bucket, key) = location.split_once('/').unwrap();

    // Before the object exists the invocation fails, so Lambda retries it: never dropped.
    let s3 = sgwatch_handler::aws::s3_client(&config);
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let err = handle(&sns(&oversized, "m-big"), &settings(&[]), &services)
        .await
        .unwrap_err();
    assert_eq!((err.records, err.failed), (1, 1));
    assert!(err.to_string().contains("s3:GetObject"), "{err}");

    let mut item = fixture::json("rdp-opened.json");
    item["configurationItem"]["configuration"]["description"] = json!("big group");
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(item.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    let report = handle(&sns(&oversized, "m-big"), &settings(&[]), &services)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1);
    assert!(mail[0]
        .subject
        .as_deref()
        .unwrap()
        .starts_with("[sgwatch CRITICAL] sg-0123456789abcdef0"));
}

#[tokio::test]
async fn unverified_sender_fails_the_invocation_so_lambda_retries() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    // No identity for the sender: SES rejects, no fallback, nothing delivered → an error.
    let services = Services::new(&config, &settings(&[]));
    let err = handle(
        &fixture::json("rdp-opened.sns-event.json"),
        &settings(&[]),
        &services,
    )
    .await
    .unwrap_err();
    assert_eq!(err.failed, 1);
    // The sender is at fault, not a recipient: nothing is parked, Lambda retries the event.
    assert!(
        err.to_string().contains("SES refused to send from"),
        "{err}"
    );
    assert!(moto.ses_messages().await.is_empty());
}

#[tokio::test]
async fn a_repeated_delivery_of_the_same_state_sends_one_email() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    fixture::idempotency_table(&config, TABLE).await;
    let settings = settings(&[("SGWATCH_IDEMPOTENCY_TABLE", TABLE)]);
    let services = Services::new(&config, &settings);

    let event = fixture::json("rdp-opened.sns-event.json");
    let first = handle(&event, &settings, &services).await.unwrap();
    let again = handle(&event, &settings, &services).await.unwrap();
    assert_eq!((first.sent, again.sent, again.skipped), (1, 0, 1));
    assert_eq!(moto.ses_messages().await.len(), 1);

    // A new configuration state of the same group is a new email.
    let mut next = fixture::json("rdp-opened.json");
    next["configurationItem"]["configurationStateId"] = json!(1763629447999u64);
    let report = handle(&sns(&next, "m-next"), &settings, &services)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    assert_eq!(moto.ses_messages().await.len(), 2);

    let item = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(
                "123456789012/us-east-1/sg-0123456789abcdef0/1763629447512".into(),
            ),
        )
        .send()
        .await
        .unwrap();
    let status = item
        .item()
        .and_then(|i| i.get("status"))
        .and_then(|s| s.as_s().ok())
        .cloned();
    assert_eq!(status.as_deref(), Some("sent"));
}

#[tokio::test]
async fn a_failed_send_releases_its_claim_so_the_retry_sends() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    fixture::idempotency_table(&config, TABLE).await;
    let settings = settings(&[("SGWATCH_IDEMPOTENCY_TABLE", TABLE)]);
    let services = Services::new(&config, &settings);
    let event = fixture::json("rdp-opened.sns-event.json");
    // The sender is not verified yet: SES rejects, the claim is released.
    assert!(handle(&event, &settings, &services).await.is_err());
    moto.verify_sender(&config, SENDER).await;
    let retry = handle(&event, &settings, &services).await.unwrap();
    assert_eq!(retry.sent, 1);
    assert_eq!(moto.ses_messages().await.len(), 1);
}

#[tokio::test]
async fn a_claim_left_by_a_crashed_attempt_is_retried_not_skipped() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    fixture::idempotency_table(&config, TABLE).await;
    let settings = settings(&[("SGWATCH_IDEMPOTENCY_TABLE", TABLE)]);
    let services = Services::new(&config, &settings);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claim = |lease_until: u64| {
        aws_sdk_dynamodb::Client::new(&config)
            .put_item()
            .table_name(TABLE)
            .item(
                "pk",
                AttributeValue::S(
                    "123456789012/us-east-1/sg-0123456789abcdef0/1763629447512".into(),
                ),
            )
            .item("status", AttributeValue::S("sending".into()))
            .item("lease_until", AttributeValue::N(lease_until.to_string()))
            .send()
    };
    // An attempt claimed the state and died: within its lease the event fails (Lambda retries it).
    claim(now + 100).await.unwrap();
    let event = fixture::json("rdp-opened.sns-event.json");
    let err = handle(&event, &settings, &services).await.unwrap_err();
    assert!(err.to_string().contains("in progress"), "{err}");
    assert!(moto.ses_messages().await.is_empty());
    // Once the lease has run out, the retry takes the claim over and sends.
    claim(now - 1).await.unwrap();
    assert_eq!(handle(&event, &settings, &services).await.unwrap().sent, 1);
    assert_eq!(moto.ses_messages().await.len(), 1);
}
