//! The committed corpus of malformed notifications (`tests/fixtures/malformed/`): each one is
//! skipped with a log line by the real invocation path, none panics, none sends, none fails the
//! invocation (retrying would not make it readable).

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
async fn every_malformed_notification_is_skipped_without_sending() {
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
        let report = handle(&event, &settings, &services)
            .await
            .unwrap_or_else(|e| panic!("{name}: the invocation failed: {e}"));
        assert_eq!(report.sent, 0, "{name}");
        assert_eq!(report.failed, 0, "{name}");
        assert_eq!(report.skipped, report.records, "{name}");
        for explained in explain(&event, &Policy::default()) {
            match explained {
                Explained::Error { error } => assert!(!error.is_empty(), "{name}"),
                Explained::Decision(d) => assert_eq!(d.notify, Some(false), "{name}: {}", d.reason),
            }
        }
    }
}
