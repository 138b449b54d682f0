//! Records that cannot be read at all, against a real moto server: a notification whose message is
//! not JSON, or that has no message, is parked in the failure queue with its message id and the
//! start of its body, never skipped; a malformed item of a resource type sgwatch does not watch is
//! skipped quietly, mailing no one.

use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture::{self, idempotency_table, queued, TABLE};

const FALLBACK: &str = "secops@corp.example";

fn settings() -> Settings {
    fixture::settings(&[("SGWATCH_FALLBACK_RECIPIENT", FALLBACK)])
}

/// The corpus file `name`, an SNS event, read as the Lambda runtime reads it.
fn corpus(name: &str) -> Value {
    fixture::json(&format!("malformed/{name}"))
}

#[tokio::test]
async fn a_notification_that_is_not_json_or_has_no_message_is_parked_with_the_start_of_its_body() {
    let (moto, config) = Moto::ready_to_send().await;
    let url = fixture::queue(&config, "failures").await;
    let settings = settings();
    let services = Services::new(&config, &settings).with_failure_queue(&config, Some(url.clone()));

    let truncated = corpus("truncated.json");
    let deep = corpus("deep-nesting.json");
    let event = json!({"Records": [
        truncated["Records"][0],
        deep["Records"][0],
        corpus("no-message.json")["Records"][0],
    ]});
    let report = handle(&event, &settings, &services).await.unwrap();
    assert_eq!(
        (report.parked, report.failed, report.skipped),
        (3, 0, 0),
        "{report:?}"
    );
    // Lambda delivers the event again: nothing is parked twice.
    handle(&event, &settings, &services).await.unwrap();

    let mut parked = queued(&config, &url).await;
    parked.sort_by_key(|p| p["facts"]["messageId"].as_str().unwrap().to_owned());
    let ids: Vec<&str> = parked
        .iter()
        .map(|p| p["facts"]["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["m-deep", "m-nomessage", "m-truncated"], "{parked:#?}");
    let message = |e: &Value| {
        e["Records"][0]["Sns"]["Message"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // The first 2 KB of a long message; a short one whole.
    let deep_message = message(&deep);
    assert!(deep_message.len() > 2048);
    assert_eq!(parked[0]["body"], json!(deep_message[..2048]));
    assert_eq!(parked[2]["body"], json!(message(&truncated)));
    assert_eq!(
        parked[1]["body"],
        json!(r#"{"EventSource":"aws:sns","Sns":{"MessageId":"m-nomessage"}}"#)
    );
    for p in &parked {
        assert_eq!(p["source"], "sgwatch");
        assert!(
            p["reason"].as_str().unwrap().contains("could not be read"),
            "{p}"
        );
    }
    assert!(moto.ses_messages().await.is_empty());
}

#[tokio::test]
async fn without_a_failure_queue_an_unreadable_notification_fails_the_invocation() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    idempotency_table(&config, TABLE).await;
    let settings = settings();
    let services = Services::new(&config, &settings);
    let err = handle(&corpus("truncated.json"), &settings, &services)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("m-truncated"), "{err}");
    assert!(moto.ses_messages().await.is_empty());
}

#[tokio::test]
async fn a_malformed_item_of_a_type_not_watched_is_skipped_quietly() {
    let (moto, config) = Moto::ready_to_send().await;
    let settings = settings();
    let services = Services::new(&config, &settings);
    let mut message = fixture::json("rdp-opened.json");
    message["configurationItem"]["resourceType"] = json!("AWS::EC2::Instance");
    message["configurationItem"]["resourceId"] = json!(42);
    let event = fixture::sns(&message, "m-instance");
    let report = handle(&event, &settings, &services)
        .await
        .expect("never fails the invocation");
    assert_eq!(
        (report.skipped, report.sent, report.failed),
        (1, 0, 0),
        "{report:?}"
    );
    assert!(
        moto.ses_messages().await.is_empty(),
        "the fallback is not mailed"
    );
}
