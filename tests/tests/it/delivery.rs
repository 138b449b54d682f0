//! Nothing lost, nothing sent twice, against a real moto server: the delivery ledger resumes a
//! partial delivery without repeating it, the claim recognises its own owner, a late duplicate
//! finds nothing left to send, a change that cannot be read is never skipped silently, no send
//! starts past the deadline, a stalled answer costs a bounded time, and oversized items are read through AWS
//! Config when their bucket is not ours (moto has no Config history for security groups: that
//! path is served a response in the documented `GetResourceConfigHistory` shape).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::{json, Value};
use sgwatch_handler::dedupe::{Claim, Dedupe};
use sgwatch_handler::process::{handle, handle_invocation, Invocation, Services};
use sgwatch_tests::emulator::{copies, handler_loader, stalled_endpoint, FaultProxy, Moto};
use sgwatch_tests::fixture::{self, settings, sns, TABLE};
const KEY: &str = "123456789012/us-east-1/sg-0123456789abcdef0/1763629447512";

fn owners(list: &str) -> Value {
    let mut m = fixture::json("rdp-opened.json");
    m["configurationItem"]["tags"]["OwnerDL"] = json!(list);
    m
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The ledger record of the fixture's state, as a dead attempt left it.
async fn left_behind(config: &aws_config::SdkConfig, delivered: &[&str]) {
    let mut put = aws_sdk_dynamodb::Client::new(config)
        .put_item()
        .table_name(TABLE)
        .item("pk", AttributeValue::S(KEY.into()))
        .item("status", AttributeValue::S("sending".into()))
        .item("owner", AttributeValue::S("a-dead-attempt".into()))
        .item("lease_until", AttributeValue::N((now() - 1).to_string()));
    if !delivered.is_empty() {
        put = put.item(
            "delivered",
            AttributeValue::Ss(delivered.iter().map(|s| s.to_string()).collect()),
        );
    }
    put.send().await.unwrap();
}

async fn record(config: &aws_config::SdkConfig) -> (Option<String>, Vec<String>) {
    let out = aws_sdk_dynamodb::Client::new(config)
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(KEY.into()))
        .send()
        .await
        .unwrap();
    let item = out.item().cloned().unwrap_or_default();
    let status = item.get("status").and_then(|s| s.as_s().ok()).cloned();
    let mut delivered: Vec<String> = item
        .get("delivered")
        .and_then(|d| d.as_ss().ok())
        .cloned()
        .unwrap_or_default();
    delivered.sort();
    (status, delivered)
}

#[tokio::test]
async fn a_retry_after_a_partial_delivery_emails_only_the_rest() {
    let (moto, config) = Moto::ready_to_send().await;
    // The attempt before emailed a, then died (a transient failure, a timeout).
    left_behind(&config, &["a@corp.example"]).await;
    let settings = settings(&[]);
    let services = Services::new(&config, &settings);
    let event = sns(
        &owners("a@corp.example b@corp.example c@corp.example"),
        "m-1",
    );
    let report = handle(&event, &settings, &services).await.unwrap();
    assert_eq!(report.sent, 1);
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, ["b@corp.example", "c@corp.example"]);
    assert_eq!(
        record(&config).await,
        (
            Some("sent".to_owned()),
            vec![
                "a@corp.example".to_owned(),
                "b@corp.example".to_owned(),
                "c@corp.example".to_owned()
            ]
        )
    );
    // Another delivery of the same state: nothing more.
    assert_eq!(
        handle(&event, &settings, &services).await.unwrap().skipped,
        1
    );
    assert_eq!(moto.ses_messages().await.len(), 1);
}

#[tokio::test]
async fn a_late_duplicate_after_a_lost_mark_sent_sends_nothing() {
    let (moto, config) = Moto::ready_to_send().await;
    // Everyone was emailed, but the record stayed "sending" and its lease ran out.
    left_behind(&config, &["platform-team@example.com"]).await;
    let settings = settings(&[]);
    let services = Services::new(&config, &settings);
    let report = handle(
        &fixture::json("rdp-opened.sns-event.json"),
        &settings,
        &services,
    )
    .await
    .unwrap();
    assert_eq!(report.failed, 0);
    assert!(moto.ses_messages().await.is_empty());
    assert_eq!(record(&config).await.0.as_deref(), Some("sent"));
}

#[tokio::test]
async fn the_claim_is_its_owners_when_the_sdk_repeats_it() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    fixture::idempotency_table(&config, TABLE).await;
    let dedupe = Dedupe {
        client: aws_sdk_dynamodb::Client::new(&config),
        table: TABLE.to_owned(),
    };
    let lease = now() + 60;
    let first = dedupe.claim(KEY, "req-1", lease).await.unwrap();
    assert_eq!(
        first,
        Claim::Acquired {
            delivered: Default::default()
        }
    );
    // The SDK's retry of a put that had succeeded: the same owner, so still ours.
    let again = dedupe.claim(KEY, "req-1", lease).await.unwrap();
    assert!(matches!(again, Claim::Acquired { .. }), "{again:?}");
    // Someone else within the lease: in progress (read from the failed condition's return).
    assert_eq!(
        dedupe.claim(KEY, "req-2", lease).await.unwrap(),
        Claim::InProgress
    );
    dedupe
        .record(KEY, &["a@corp.example".to_owned()])
        .await
        .unwrap();
    dedupe.mark_sent(KEY).await.unwrap();
    assert_eq!(
        dedupe.claim(KEY, "req-3", lease).await.unwrap(),
        Claim::Duplicate
    );
}

/// A security-group change whose resource id is not a string: it cannot be read.
fn unreadable() -> Value {
    let mut m = fixture::json("rdp-opened.json");
    m["configurationItem"]["resourceId"] = json!(42);
    sns(&m, "m-odd")
}

#[tokio::test]
async fn an_unreadable_change_is_emailed_degraded_to_the_fallback_or_fails() {
    let (moto, config) = Moto::ready_to_send().await;

    let without = settings(&[]);
    let err = handle(&unreadable(), &without, &Services::new(&config, &without))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("m-odd"), "{err}");
    assert!(moto.ses_messages().await.is_empty());

    let with = settings(&[("SGWATCH_FALLBACK_RECIPIENT", "secops@corp.example")]);
    let services = Services::new(&config, &with);
    let report = handle(&unreadable(), &with, &services).await.unwrap();
    assert_eq!(report.sent, 1);
    // Delivered again (a retried event): one degraded email all the same.
    handle(&unreadable(), &with, &services).await.unwrap();
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, ["secops@corp.example"]);
    assert_eq!(
        mail[0].subject.as_deref(),
        Some("[sgwatch] a change to AWS::EC2::SecurityGroup could not be read")
    );
    let text = mail[0].text.as_deref().unwrap();
    assert!(text.contains("Notification: m-odd"), "{text}");
}

#[tokio::test]
async fn no_send_starts_too_close_to_the_deadline() {
    let (moto, config) = Moto::ready_to_send().await;
    let settings = settings(&[]);
    let services = Services::new(&config, &settings);
    let soon = Invocation {
        request_id: "req-late".to_owned(),
        deadline: Some(SystemTime::now() + Duration::from_secs(5)),
    };
    let event = fixture::json("rdp-opened.sns-event.json");
    let err = handle_invocation(&event, &soon, &settings, &services)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(moto.ses_messages().await.is_empty());
    // Lambda's retry, with time: sent once.
    assert_eq!(handle(&event, &settings, &services).await.unwrap().sent, 1);
    assert_eq!(moto.ses_messages().await.len(), 1);
}

/// An endpoint that answers every request with `body` (an AWS JSON 1.1 response).
fn canned(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    endpoint
}

#[tokio::test]
async fn a_stalled_answer_fails_the_send_within_the_time_limits() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    let settings = settings(&[]);
    let mut services = Services::new(&config, &settings);
    services.dedupe = None;
    let stalled_ses = config
        .to_builder()
        .endpoint_url(stalled_endpoint())
        .timeout_config(sgwatch_handler::aws::handler_timeouts())
        .build();
    services.ses = aws_sdk_sesv2::Client::new(&stalled_ses);
    let started = Instant::now();
    let err = handle(
        &fixture::json("rdp-opened.sns-event.json"),
        &settings,
        &services,
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    eprintln!("a stalled SES answer failed the send in {took:?}: {err}");
    assert!(err.to_string().contains("could not be reached"), "{err}");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// `GetResourceConfigHistory`'s answer for the fixture's group: the notified state (RDP open to
/// the world) and the one before it (without that rule), newest first, configuration as JSON text.
fn history() -> String {
    let item = fixture::json("rdp-opened.json")["configurationItem"].clone();
    let current = item["configuration"].clone();
    let mut previous = current.clone();
    previous["ipPermissions"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["fromPort"] != json!(3389));
    let entry = |configuration: &Value, state: &str, time: f64| {
        json!({
            "version": "1.3",
            "accountId": "123456789012",
            "configurationItemCaptureTime": time,
            "configurationItemStatus": "OK",
            "configurationStateId": state,
            "arn": "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123456789abcdef0",
            "resourceType": "AWS::EC2::SecurityGroup",
            "resourceId": "sg-0123456789abcdef0",
            "resourceName": "shared-http",
            "awsRegion": "us-east-1",
            "tags": item["tags"],
            "configuration": configuration.to_string(),
        })
    };
    json!({"configurationItems": [
        entry(&current, "1767225600000", 1767225600.0),
        entry(&previous, "1767225500000", 1767225500.0),
    ]})
    .to_string()
}

#[tokio::test]
async fn an_oversized_item_in_a_bucket_not_ours_is_read_through_aws_config() {
    let (moto, config) = Moto::ready_to_send().await;
    let settings = settings(&[]);
    let event = sns(&fixture::json("oversized.json"), "m-big");

    // moto keeps no Config history for security groups: the read fails, the event is retried.
    let services = Services::new(&config, &settings).with_config_bucket(Some("ours".to_owned()));
    let err = handle(&event, &settings, &services).await.unwrap_err();
    assert!(
        err.to_string().contains("config:GetResourceConfigHistory"),
        "{err}"
    );

    // AWS Config answers: the two latest items are compared, as a notification's diff would be.
    let mut services = services;
    services.config = aws_sdk_config::Client::from_conf(
        aws_sdk_config::config::Builder::from(&config)
            .endpoint_url(canned(history()))
            .build(),
    );
    let report = handle(&event, &settings, &services).await.unwrap();
    assert_eq!(report.sent, 1);
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(
        mail[0].subject.as_deref(),
        Some("[sgwatch CRITICAL] sg-0123456789abcdef0 (shared-http) 123456789012/us-east-1: +ingress tcp/3389 from 0.0.0.0/0")
    );
}

#[tokio::test]
async fn an_oversized_bare_item_is_emailed_with_its_details_unavailable() {
    let (moto, config) = Moto::ready_to_send().await;
    let settings = settings(&[]);
    let services = Services::new(&config, &settings);
    let oversized = fixture::json("oversized.json");
    let location = oversized["s3DeliverySummary"]["s3BucketLocation"]
        .as_str()
        .unwrap();
    let (bucket, key) = location.split_once('/').unwrap();
    let s3 = sgwatch_handler::aws::s3_client(&config);
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    // An older delivery: the bare item, no diff; AWS Config (moto) has no history to compare.
    let bare = fixture::json("rdp-opened.json")["configurationItem"].clone();
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(bare.to_string().into_bytes().into())
        .send()
        .await
        .unwrap();
    let report = handle(&sns(&oversized, "m-bare"), &settings, &services)
        .await
        .unwrap();
    assert_eq!(report.sent, 1);
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1);
    let text = mail[0].text.as_deref().unwrap();
    assert!(text.contains("unavailable"), "{text}");
}

/// A batch of notifications, each to three owners (and a fallback), under 30 % injected faults
/// on every call (SES, DynamoDB): Lambda's three invocations per event, each resuming from the
/// ledger. Every address gets each email exactly once, or the event is parked (and then has
/// sent nothing twice). Answers lost after SES accepted a send (`drop-after`) are left out: no
/// one can tell whether that email went, and sgwatch then prefers a second copy to none.
#[tokio::test]
async fn three_owners_each_under_thirty_percent_faults_get_each_email_exactly_once() {
    const NOTIFICATIONS: usize = 10;
    let (moto, _) = Moto::ready_to_send().await;
    let settings = settings(&[("SGWATCH_FALLBACK_RECIPIENT", "secops@corp.example")]);
    let (mut runs, mut parked) = (0usize, Vec::new());
    let seeds = 4;
    let mut delivered_events: Vec<(usize, String)> = Vec::new();
    // The SDK's 5 attempts absorb most faults; with 2, the ledger's resume does the work.
    for (seed, attempts) in [(1u64, 5u32), (2, 5), (3, 2), (4, 2)] {
        let proxy = FaultProxy::start(
            &moto.endpoint,
            &[
                "--rate",
                "0.3",
                "--seed",
                &seed.to_string(),
                "--faults",
                "503,500,throttle,drop-before",
            ],
        );
        let faulty = handler_loader(&proxy.endpoint)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(attempts))
            .load()
            .await;
        let services = Services::new(&faulty, &settings);
        for n in 0..NOTIFICATIONS {
            let mut m = owners(&format!(
                "a{n}@corp.example b{n}@corp.example c{n}@corp.example"
            ));
            m["configurationItem"]["resourceId"] = json!(format!("sg-{seed:02}{n:015x}"));
            m["configurationItem"]["resourceName"] = json!(format!("group-{seed}-{n}"));
            let event = sns(&m, &format!("m-{seed}-{n}"));
            // Lambda: the invocation and two retries with the same request id, then parked.
            let invocation = Invocation {
                request_id: format!("req-{seed}-{n}"),
                deadline: None,
            };
            let mut delivered = false;
            for _ in 0..3 {
                runs += 1;
                if handle_invocation(&event, &invocation, &settings, &services)
                    .await
                    .is_ok()
                {
                    delivered = true;
                    break;
                }
            }
            if !delivered {
                parked.push(format!("group-{seed}-{n}"));
            } else {
                delivered_events.push((n, format!("group-{seed}-{n}")));
            }
        }
    }
    // Per address and email: how many copies arrived.
    let mail = moto.ses_messages().await;
    let copies = copies(&mail);
    let duplicates: usize = copies.values().map(|c| c - 1).sum();
    // Every event not parked reached each of its owners.
    let mut lost = 0;
    for (n, group) in &delivered_events {
        for owner in ["a", "b", "c"] {
            let to = format!("{owner}{n}@corp.example");
            if !copies
                .keys()
                .any(|(address, subject)| *address == to && subject.contains(&format!("({group})")))
            {
                lost += 1;
            }
        }
    }
    eprintln!(
        "recipient faults: {} notifications x 3 owners, {runs} invocations, {} emails, {} deliveries, \
         duplicates {duplicates}, parked {}, lost {lost}",
        seeds * NOTIFICATIONS,
        mail.len(),
        copies.len(),
        parked.len(),
    );
    assert_eq!(duplicates, 0, "{copies:#?}");
    assert_eq!(lost, 0, "parked: {parked:?}");
    assert!(copies.keys().all(|(to, _)| !to.starts_with("secops")));
}
