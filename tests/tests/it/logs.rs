//! What a run's logs say: never a destination's secret URL or signing key, and an owner's address
//! only as its domain at INFO and above (in full at DEBUG), however the address got into a line.

use aws_sdk_ssm::types::ParameterType;
use serde_json::{json, Value};
use sgwatch_handler::logs;
use sgwatch_handler::process::{handle, Services};
use sgwatch_tests::capture::{Answer, CaptureServer};
use sgwatch_tests::emulator::{handler_loader, FaultProxy, Moto};
use sgwatch_tests::fixture;

const OWNER: &str = "web-owners@corp.example";
const REJECTED: &str = "departed.admin@corp.example";
const FALLBACK: &str = "secops@sec.example";
const SLACK_SECRET: &str = "/services/T0LOGS/B0LOGS/slack-secret-token";
const KEY: &str = "the-signing-key-nobody-logs";

/// Set in the process of its own that [`a_run_with_the_lambda_logs`] runs in.
const CHILD: &str = "SGWATCH_LOGS_TEST_RUN";

/// The JSON log lines of [`a_run_with_the_lambda_logs`], run in a process of its own with the logs
/// set up as the function sets them up in Lambda (`logs::init`, JSON lines, DEBUG). A process of
/// its own: `tracing` keeps one global subscriber, and the other tests of this binary log too.
fn lambda_log_lines() -> Vec<Value> {
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "logs::a_run_with_the_lambda_logs",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "DEBUG")
        .output()
        .expect("running the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l.get("level").is_some())
        .collect()
}

async fn put(config: &aws_config::SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(config)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

/// One change to a group owned by two addresses, one of which SES rejects for good, posted to a
/// Slack channel that refuses it (its answer naming the owner) and a signed webhook; the run's
/// logs at DEBUG, as Lambda's JSON lines: run by [`the_logs_hold_no_secret_and_addresses_only_as_domains`]
/// in a process of its own.
#[tokio::test]
#[ignore = "run in a process of its own by the_logs_hold_no_secret_and_addresses_only_as_domains"]
async fn a_run_with_the_lambda_logs() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    logs::init();
    let (moto, config) = Moto::ready_to_send().await;
    let slack = CaptureServer::start(vec![
        Answer::status(404).body(&format!("no such channel for {OWNER}"))
    ]);
    let siem = CaptureServer::start(vec![]);
    put(
        &config,
        "/sgwatch/slack",
        &format!("{}{SLACK_SECRET}", slack.url),
    )
    .await;
    put(
        &config,
        "/sgwatch/siem-url",
        &format!("{}/ingest", siem.url),
    )
    .await;
    put(&config, "/sgwatch/siem-key", KEY).await;
    let proxy = FaultProxy::start(
        &moto.endpoint,
        &["--rate", "0", "--reject-recipient", REJECTED],
    );
    let rejecting = handler_loader(&proxy.endpoint).load().await;
    let settings = fixture::settings(&[
        ("SGWATCH_FALLBACK_RECIPIENT", FALLBACK),
        (
            "SGWATCH_DESTINATIONS",
            "secops=slack:/sgwatch/slack,siem=webhook:/sgwatch/siem-url:/sgwatch/siem-key",
        ),
        ("SGWATCH_TEST_LOOPBACK_DESTINATIONS", "true"),
    ]);
    let services = Services::new(&rejecting, &settings);
    let mut message = fixture::json("rdp-opened.json");
    message["configurationItem"]["tags"]["OwnerDL"] = json!(format!("{OWNER} {REJECTED}"));
    message["configurationItem"]["tags"]["NotifyChannels"] = json!("secops, siem");
    let event = fixture::sns(&message, "m-logs");

    let report = handle(&event, &settings, &services).await.unwrap();
    // The run did what the lines tell: the owner and the fallback emailed, the webhook posted.
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(siem.requests().len(), 1);
    assert_eq!(slack.requests().len(), 1);
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 2, "{mail:#?}");
}

#[test]
fn the_logs_hold_no_secret_and_addresses_only_as_domains() {
    let lines = lambda_log_lines();
    let level = |l: &Value| l["level"].as_str().unwrap_or_default().to_owned();
    let told: Vec<&Value> = lines
        .iter()
        .filter(|l| ["INFO", "WARN", "ERROR"].contains(&level(l).as_str()))
        .collect();
    assert!(
        told.iter().any(|l| l["fields"]["message"] == "sent"),
        "{told:#?}"
    );
    let rejected: Vec<&&Value> = told
        .iter()
        .filter(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("SES rejected a recipient"))
        })
        .collect();
    assert_eq!(rejected.len(), 1, "{told:#?}");
    assert_eq!(rejected[0]["fields"]["recipient_domain"], "corp.example");
    let refused = told
        .iter()
        .find(|l| l["fields"]["destination"] == "secops")
        .expect("the refused post is logged");
    assert!(
        refused
            .to_string()
            .contains("no such channel for …@corp.example"),
        "{refused}"
    );

    for line in &told {
        let text = line.to_string();
        for secret in [
            OWNER,
            REJECTED,
            FALLBACK,
            SLACK_SECRET,
            "slack-secret-token",
            KEY,
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // At DEBUG, the handler's own lines name the address in full.
    assert!(
        lines
            .iter()
            .any(|l| level(l) == "DEBUG" && l["fields"]["recipient"] == REJECTED),
        "{lines:#?}"
    );
    for line in &lines {
        let text = line.to_string();
        assert!(
            !text.contains("slack-secret-token") && !text.contains(KEY),
            "{text}"
        );
    }
}
