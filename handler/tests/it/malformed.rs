//! The committed corpus of malformed notifications (`tests/fixtures/malformed/`) through the real
//! invocation path: none panics and none sends. What is not a change notification of a watched
//! type is skipped with a log line; a change to a watched type that cannot be read is never
//! skipped: with no fallback recipient to tell, the invocation fails (so Lambda retries and then
//! parks it), naming the message. Nor is a notification whose message is not JSON or missing:
//! with no failure queue to park it in (`tests/it/unreadable.rs` parks it), the invocation fails.

use std::path::PathBuf;

use serde_json::Value;
use sgwatch_handler::explain::{explain, Explained};
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::settings::{Policy, Settings};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/malformed");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(files.len() >= 15, "the corpus is in {}", dir.display());
    files
}

#[tokio::test]
async fn every_malformed_notification_is_skipped_or_failed_never_sent() {
    // Clients aimed at a closed port: any AWS call would fail the invocation and this test.
    let config = sgwatch_handler::aws::config_loader()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(aws_sdk_sesv2::config::Credentials::new(
            "x", "x", None, None, "test",
        ))
        .load()
        .await;
    let settings =
        Settings::from_lookup(|k| (k == "SGWATCH_SENDER").then(|| "alerts@example.com".to_owned()))
            .unwrap();
    let services = Services::new(&config, &settings);

    let mut unreadable = Vec::new();
    for (name, bytes) in corpus() {
        // The Lambda runtime parses the bytes as we do here; what is not JSON (invalid UTF-8
        // included) never reaches the handler. `explain` reads files leniently and must cope.
        let Ok(event) = serde_json::from_slice::<Value>(&bytes) else {
            let _ = explain(
                &Value::String(String::from_utf8_lossy(&bytes).into_owned()),
                &Policy::default(),
            );
            continue;
        };
        match handle(&event, &settings, &services).await {
            Ok(report) => {
                assert_eq!(report.sent, 0, "{name}");
                assert_eq!(report.failed, 0, "{name}");
                assert_eq!(report.skipped, report.records, "{name}");
            }
            Err(e) => {
                let e = e.to_string();
                assert!(
                    e.contains("could not be read")
                        && (e.contains("no fallback recipient") || e.contains("no failure queue")),
                    "{name}: {e}"
                );
                unreadable.push(name.clone());
            }
        }
        for explained in explain(&event, &Policy::default()) {
            match explained {
                Explained::Error { error } => assert!(!error.is_empty(), "{name}"),
                Explained::Decision(d) => assert_eq!(d.notify, Some(false), "{name}: {}", d.reason),
            }
        }
    }
    // A security-group change whose diff has the wrong shape is a change we must not lose, nor
    // are notifications with nothing readable in them.
    for lost in [
        "changed-properties-array.json",
        "truncated.json",
        "deep-nesting.json",
        "no-message.json",
        "message-not-string.json",
    ] {
        assert!(
            unreadable.contains(&lost.to_owned()),
            "{lost}: {unreadable:?}"
        );
    }
}
