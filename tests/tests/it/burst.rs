//! A burst keeps the promise: 200 notifications for 200 tagged groups (a Terraform apply, a
//! discovery after the baseline window) played through the handler by 8 concurrent invocations,
//! with SES limited to its default production rate of 14 sends a second by
//! `scripts/faultproxy.py --rate-limit SendEmail=14` (HTTP 429 `TooManyRequestsException` beyond
//! it, as SES v2 answers) in front of moto: every owner gets their email exactly once and nothing
//! is parked. An invocation that fails is played again, up to Lambda's two retries of an
//! asynchronous event; the wall time is printed for docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Services};
use sgwatch_tests::emulator::{handler_loader, FaultProxy, Moto};
use sgwatch_tests::fixture;
const GROUPS: usize = 200;
const CONCURRENCY: usize = 8;
const SES_PER_SECOND: u32 = 14;
/// Lambda invokes an asynchronous event once and retries it up to twice.
const ATTEMPTS: usize = 3;

fn owner(i: usize) -> String {
    format!("owner-{i:03}@corp.example")
}

/// The RDP-opened notification, for group number `i` owned by [`owner`]`(i)`.
fn notification(i: usize) -> Value {
    let mut m = fixture::json("rdp-opened.json");
    let id = format!("sg-{i:017x}");
    let item = &mut m["configurationItem"];
    item["resourceId"] = json!(id);
    item["ARN"] = json!(format!(
        "arn:aws:ec2:us-east-1:123456789012:security-group/{id}"
    ));
    item["resourceName"] = json!(format!("group-{i:03}"));
    item["configurationStateId"] = json!(1763629447512u64 + i as u64);
    item["configuration"]["groupId"] = json!(id);
    item["tags"]["OwnerDL"] = json!(owner(i));
    fixture::sns(&m, &format!("m-{i:03}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_ses_rate_emails_every_owner_once_and_parks_nothing() {
    let (moto, direct) = Moto::ready_to_send().await;
    let sqs = aws_sdk_sqs::Client::new(&direct);
    let queue = fixture::queue(&direct, "sgwatch-failures").await;

    let limit = format!("SendEmail={SES_PER_SECOND}");
    let proxy = FaultProxy::start(&moto.endpoint, &["--rate", "0", "--rate-limit", &limit]);
    // The handler's own SDK configuration (its retry policy and timeouts), through the proxy.
    let config = handler_loader(&proxy.endpoint).load().await;
    let settings = Arc::new(fixture::settings(&[]));

    let next = Arc::new(AtomicUsize::new(0));
    let retried = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, retried) = (next.clone(), retried.clone());
        let settings = settings.clone();
        // Each concurrent copy of the function has its own clients (and so its own retry quota).
        let services =
            Services::new(&config, &settings).with_failure_queue(&config, Some(queue.clone()));
        workers.push(tokio::spawn(async move {
            let mut failed = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= GROUPS {
                    return failed;
                }
                let event = notification(i);
                let mut last = None;
                for attempt in 0..ATTEMPTS {
                    if attempt > 0 {
                        retried.fetch_add(1, Ordering::SeqCst);
                    }
                    match handle(&event, &settings, &services).await {
                        Ok(report) => {
                            assert_eq!(report.parked, 0, "group {i}: {report:?}");
                            last = None;
                            break;
                        }
                        Err(e) => {
                            println!("burst: group {i}, attempt {}: {e}", attempt + 1);
                            last = Some(e.to_string());
                        }
                    }
                }
                if let Some(e) = last {
                    failed.push(format!("group {i}: {e}"));
                }
            }
        }));
    }
    let mut failed = Vec::new();
    for w in workers {
        failed.extend(w.await.unwrap());
    }
    let wall = started.elapsed();
    let stats = proxy.stats();
    println!(
        "burst: {GROUPS} notifications, {CONCURRENCY} concurrent, SES at {SES_PER_SECOND}/s: \
         {:.1} s wall, {} SendEmail answered 429, {} invocations played again",
        wall.as_secs_f64(),
        stats["rate_limited"],
        retried.load(Ordering::SeqCst)
    );
    assert_eq!(
        failed,
        Vec::<String>::new(),
        "invocations that would be parked"
    );

    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    for mail in moto.ses_messages().await {
        for to in mail.destinations {
            *per_recipient.entry(to).or_default() += 1;
        }
    }
    let missing: Vec<String> = (0..GROUPS)
        .map(owner)
        .filter(|o| !per_recipient.contains_key(o))
        .collect();
    assert_eq!(missing, Vec::<String>::new(), "owners never emailed");
    assert_eq!(
        per_recipient.len(),
        GROUPS,
        "mail to someone else: {per_recipient:?}"
    );
    // A send SES accepted whose answer came after the 4 s attempt timeout is sent again by the
    // SDK's retry (docs/FAILURE-SEMANTICS.md: nobody can tell it went). AWS answers in
    // milliseconds; the emulator, shared with the other tests on a small machine, once took longer
    // for one send in 200. The burst itself (throttling, the ledger) must add none beyond that.
    let twice: Vec<(&String, &usize)> = per_recipient.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.len() <= GROUPS / 100,
        "owners emailed more than once: {twice:?}"
    );
    assert!(
        stats["rate_limited"].as_u64().unwrap() > 0,
        "the burst went over SES's rate, or it tested nothing: {stats}"
    );
    let parked = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    assert_eq!(
        parked
            .attributes()
            .and_then(
                |a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            )
            .map(String::as_str),
        Some("0"),
        "nothing parked"
    );
    // A floor no schedule can beat: 200 sends at 14 a second.
    assert!(wall >= Duration::from_secs((GROUPS as u64) / u64::from(SES_PER_SECOND)));
}
