//! What the delivery ledger must hold on to, against a real moto server: a notification without a
//! `configurationStateId` is still sent once however often it is delivered, and a record outlives
//! every way its event can come back (Lambda's retries, then the failure queue, whose events
//! `redrive` replays).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use sgwatch_handler::process::{handle, Services};
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture::{self, settings, sns, TABLE};

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/sgwatch.yaml");

#[tokio::test]
async fn a_notification_without_a_state_id_is_emailed_once_however_often_it_comes() {
    let (moto, config) = Moto::ready_to_send().await;
    let settings = settings(&[]);
    let services = Services::new(&config, &settings);
    let mut message = fixture::json("rdp-opened.json");
    message["configurationItem"]
        .as_object_mut()
        .unwrap()
        .remove("configurationStateId");

    for attempt in ["m-1", "m-1", "m-2"] {
        handle(&sns(&message, attempt), &settings, &services)
            .await
            .unwrap();
    }
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, ["platform-team@example.com"]);

    // Another change of the same group, also without a state id, is its own notification.
    message["configurationItem"]["configurationItemCaptureTime"] =
        json!("2026-11-20T09:20:00.000Z");
    handle(&sns(&message, "m-3"), &settings, &services)
        .await
        .unwrap();
    assert_eq!(moto.ses_messages().await.len(), 2);
}

/// A top-level value of the stack template, by path (resource, then property).
fn template_number(path: &[&str]) -> u64 {
    let template: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(TEMPLATE).unwrap()).unwrap();
    let mut v = &template["Resources"];
    for key in path {
        v = &v[*key];
    }
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is not a number: {v:?}"))
}

#[tokio::test]
async fn a_ledger_record_outlives_the_failure_queue_it_may_be_replayed_from() {
    let (_moto, config) = Moto::ready_to_send().await;
    let settings = settings(&[]);
    let services = Services::new(&config, &settings);
    handle(
        &fixture::json("rdp-opened.sns-event.json"),
        &settings,
        &services,
    )
    .await
    .unwrap();
    let sent_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let record = aws_sdk_dynamodb::Client::new(&config)
        .get_item()
        .table_name(TABLE)
        .key(
            "pk",
            AttributeValue::S("123456789012/us-east-1/sg-0123456789abcdef0/1763629447512".into()),
        )
        .send()
        .await
        .unwrap();
    let item = record.item().expect("the ledger record");
    assert_eq!(item["status"].as_s().unwrap(), "sent");
    let expires: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
    // The longest an event can come back after it was first handled: Lambda retries it until it
    // is this old, then the failure queue keeps it this long.
    let retried = template_number(&["InvokeConfig", "Properties", "MaximumEventAgeInSeconds"]);
    let queued = template_number(&["FailureQueue", "Properties", "MessageRetentionPeriod"]);
    assert!(
        expires >= sent_at + retried + queued,
        "the record expires {} days after the send; a redrive can come {} days after it",
        (expires - sent_at) / 86400,
        (retried + queued) as f64 / 86400.0
    );
}
