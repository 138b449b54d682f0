//! The hub at scale, for docs/BENCHMARKS.md (`cargo test --workspace --test it --
//! hub_scale --include-ignored --nocapture`): 10,000 changes from 500 synthetic member accounts
//! × 17 regions, queued as the hub's rule would queue them, drained through the handler's SQS
//! entry point in one process (8 batches of 10 at a time, as the event source mapping's
//! concurrent invocations would), with SES limited to 200 sends a second by
//! `scripts/faultproxy.py`. Every owner must get their email exactly once; the run prints the
//! changes per second, the peak memory of the process and the DynamoDB calls per change.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Services};
use sgwatch_tests::emulator::{handler_loader, FaultProxy, Moto};
use sgwatch_tests::fixture;

const CHANGES: usize = 10_000;
/// `SGWATCH_SCALE_CHANGES` runs fewer, for a quick look.
fn changes() -> usize {
    std::env::var("SGWATCH_SCALE_CHANGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CHANGES)
}
const ACCOUNTS: usize = 500;
const REGIONS: [&str; 17] = [
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-north-1",
    "ap-south-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "sa-east-1",
];
const BATCH: usize = 10;
const CONCURRENCY: usize = 8;
const SES_PER_SECOND: u32 = 200;

fn owner(i: usize) -> String {
    format!("owner-{i:05}@corp.example")
}

/// Change `i`: RDP opened on a group of its own, in one of the synthetic accounts and regions,
/// as the hub's queue holds it (the EventBridge event in an SQS record).
fn record(i: usize) -> Value {
    let account = format!("{:012}", 100_000_000_000u64 + (i % ACCOUNTS) as u64);
    let region = REGIONS[(i / ACCOUNTS) % REGIONS.len()];
    let mut m = fixture::json("rdp-opened.json");
    let id = format!("sg-{i:017x}");
    let item = &mut m["configurationItem"];
    item["resourceId"] = json!(id);
    item["awsAccountId"] = json!(account);
    item["awsRegion"] = json!(region);
    item["ARN"] = json!(format!(
        "arn:aws:ec2:{region}:{account}:security-group/{id}"
    ));
    item["configurationStateId"] = json!(1763629447512u64 + i as u64);
    item["configuration"]["groupId"] = json!(id);
    item["tags"]["OwnerDL"] = json!(owner(i));
    let event = json!({
        "version": "0", "id": format!("e-{i}"), "detail-type": "Config Configuration Item Change",
        "source": "aws.config", "account": account, "region": region,
        "time": "2026-12-05T10:00:00Z", "resources": [], "detail": m,
    });
    json!({
        "messageId": format!("m-{i:05}"), "receiptHandle": format!("r-{i}"),
        "body": event.to_string(), "attributes": {}, "messageAttributes": {},
        "eventSource": "aws:sqs", "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:sgwatch-HubQueue",
    })
}

/// The process's peak resident memory (`VmHWM`), in MiB.
fn peak_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a long run for docs/BENCHMARKS.md"]
async fn figures_ten_thousand_changes_from_five_hundred_accounts() {
    let (moto, _) = Moto::ready_to_send().await;
    let limit = format!("SendEmail={SES_PER_SECOND}");
    let proxy = FaultProxy::start(&moto.endpoint, &["--rate", "0", "--rate-limit", &limit]);
    let config = handler_loader(&proxy.endpoint).load().await;
    let settings = Arc::new(fixture::settings(&[
        ("SGWATCH_HUB", "true"),
        ("SGWATCH_ACCOUNTS", "*"),
        // The actor comes from the forwarded calls; without them LookupEvents would be asked in
        // each member account.
        ("SGWATCH_LOOKUP_ACTOR", "false"),
    ]));
    let services = Services::new(&config, &settings);
    let batches: Arc<Vec<Value>> = Arc::new(
        (0..changes())
            .map(record)
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(|c| json!({ "Records": c }))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let redelivered = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (next, redelivered, batches) = (next.clone(), redelivered.clone(), batches.clone());
        let (settings, services) = (settings.clone(), services.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let b = next.fetch_add(1, Ordering::SeqCst);
                let Some(batch) = batches.get(b) else {
                    return;
                };
                let mut event = batch.clone();
                // The mapping delivers the failed records again, alone, until they pass.
                for _ in 0..5 {
                    let report = handle(&event, &settings, &services)
                        .await
                        .expect("a batch reports its failures, never fails whole");
                    if report.batch_item_failures.is_empty() {
                        break;
                    }
                    redelivered.fetch_add(report.batch_item_failures.len(), Ordering::SeqCst);
                    let failed: Vec<&str> = report
                        .batch_item_failures
                        .iter()
                        .map(|f| f.item_identifier.as_str())
                        .collect();
                    let again: Vec<Value> = event["Records"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|r| failed.contains(&r["messageId"].as_str().unwrap()))
                        .cloned()
                        .collect();
                    event = json!({ "Records": again });
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let wall = started.elapsed().as_secs_f64();
    let stats = proxy.stats();
    let dynamodb: u64 = stats["by_operation"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(op, _)| {
            ["GetItem", "UpdateItem", "PutItem", "Query", "BatchGetItem"].contains(&op.as_str())
        })
        .map(|(_, s)| s["forwarded"].as_u64().unwrap_or_default())
        .sum();
    let mut per_owner: BTreeMap<String, usize> = BTreeMap::new();
    for mail in moto.ses_messages().await {
        for to in mail.destinations {
            *per_owner.entry(to).or_default() += 1;
        }
    }
    let lost = (0..changes())
        .filter(|i| !per_owner.contains_key(&owner(*i)))
        .count();
    let duplicated = per_owner.values().filter(|n| **n > 1).count();
    println!(
        "hub scale: {} changes from {ACCOUNTS} accounts x {} regions, SES at \
         {SES_PER_SECOND}/s: {wall:.1} s, {:.0} changes/s, peak {:.0} MiB, {:.2} DynamoDB calls \
         per change ({dynamodb} in all), {} SendEmail answered 429, {} records delivered again, \
         {lost} lost, {duplicated} duplicated",
        changes(),
        REGIONS.len(),
        changes() as f64 / wall,
        peak_mib(),
        dynamodb as f64 / changes() as f64,
        stats["rate_limited"],
        redelivered.load(Ordering::SeqCst),
    );
    println!("hub scale: by operation {}", stats["by_operation"]);
    assert_eq!((lost, duplicated), (0, 0));
    assert_eq!(per_owner.len(), changes());
}
