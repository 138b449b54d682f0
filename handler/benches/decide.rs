//! decide + render per notification: the fixtures, and a group with 500 rules.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Value};
use sgwatch_handler::actor::ActorLookup;
use sgwatch_handler::decide::{analyze, decide};
use sgwatch_handler::early::alarming;
use sgwatch_handler::feed::parse_event;
use sgwatch_handler::message::{envelopes, ConfigMessage};
use sgwatch_handler::render::render;
use sgwatch_handler::settings::Policy;
use sgwatch_handler::severity::Severity;

fn fixture(name: &str) -> Value {
    let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A group with `n` ingress rules whose first one was removed: every position shifts.
fn large_group(n: usize) -> Value {
    let rule = |i: usize| {
        json!({"ipProtocol": "tcp", "fromPort": 1000 + i, "toPort": 1000 + i,
               "ipv4Ranges": [{"cidrIp": format!("10.{}.{}.0/24", i / 256, i % 256), "description": format!("rule {i}")}],
               "ipRanges": [format!("10.{}.{}.0/24", i / 256, i % 256)],
               "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": []})
    };
    let mut message = fixture("rdp-opened.json");
    let mut changed = serde_json::Map::new();
    for i in 0..n {
        let updated = if i + 1 < n { rule(i + 1) } else { Value::Null };
        changed.insert(
            format!("Configuration.IpPermissions.{i}"),
            json!({"previousValue": rule(i), "updatedValue": updated, "changeType": if i + 1 < n { "UPDATE" } else { "DELETE" }}),
        );
    }
    // One world-open rule added too, so the email has a critical line.
    changed.insert(
        format!("Configuration.IpPermissions.{n}"),
        json!({"previousValue": null, "updatedValue": {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}, "changeType": "CREATE"}),
    );
    message["configurationItemDiff"]["changedProperties"] = Value::Object(changed);
    message["configurationItem"]["configuration"]["ipPermissions"] =
        Value::Array((1..n).map(rule).collect());
    message
}

/// The whole pure path the Lambda runs per record: read, diff, decide, render.
fn decide_and_render(event: &Value, policy: &Policy) -> usize {
    let mut bytes = 0;
    for envelope in envelopes(event) {
        if let Ok(ConfigMessage::ItemChange(change)) = envelope.message {
            let d = decide(analyze(&change).unwrap(), policy);
            if d.notify {
                let email = render(&d, &ActorLookup::Unknown("benchmark".into()));
                bytes += email.text.len() + email.html.len();
            }
        }
    }
    bytes
}

fn bench(c: &mut Criterion) {
    let policy = Policy::default();
    let mut group = c.benchmark_group("decide_render");
    group.throughput(Throughput::Elements(1));
    for name in [
        "rdp-opened.sns-event.json",
        "rdp-opened.json",
        "oversized.json",
        "snapshot-delivery.json",
    ] {
        let event = fixture(name);
        assert!(name.starts_with("rdp") == (decide_and_render(&event, &policy) > 0));
        group.bench_with_input(BenchmarkId::new("fixture", name), &event, |b, e| {
            b.iter(|| decide_and_render(std::hint::black_box(e), &policy))
        });
    }
    // As the Lambda gets it: an SNS envelope whose message is the 500-rule notification's text.
    let large = json!({"Records": [{"Sns": {"MessageId": "m-1", "Message": large_group(500).to_string()}}]});
    assert!(decide_and_render(&large, &policy) > 0);
    group.bench_with_input(
        BenchmarkId::new("group", "500-rules-sns"),
        &large,
        |b, e| b.iter(|| decide_and_render(std::hint::black_box(e), &policy)),
    );
    // The SNS path includes parsing the message string, as the Lambda does.
    let sns_text = serde_json::to_string(&fixture("rdp-opened.sns-event.json")).unwrap();
    group.bench_function("sns-from-bytes", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_str(std::hint::black_box(&sns_text)).unwrap();
            decide_and_render(&v, &policy)
        })
    });
    group.finish();

    // The actor feed's pure part per CloudTrail event: read the event from its text, check it
    // for an early warning, and the item the feed stores (the DynamoDB write is not included).
    let mut feed = c.benchmark_group("feed");
    feed.throughput(Throughput::Elements(1));
    let path = format!(
        "{}/../tests/fixtures/cloudtrail/authorize-ingress-iam-user.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let call_text = std::fs::read_to_string(path).unwrap();
    feed.bench_function("api-call-from-bytes", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_str(std::hint::black_box(&call_text)).unwrap();
            let call = parse_event(&v).unwrap();
            let alarming = alarming(&call, Severity::Critical).len();
            serde_json::to_string(&call).unwrap().len() + alarming
        })
    });
    feed.finish();

    // The act function's own work per click, AWS calls aside: read the token, and write the page.
    let mut act = c.benchmark_group("act");
    let grant = sgwatch_handler::link::Grant {
        account: "123456789012".into(),
        region: "us-east-1".into(),
        group: "sg-0123456789abcdef0".into(),
        rule: sgwatch_handler::link::RuleRef {
            id: Some("sgr-0bbbbbbbbbbbbbbbb".into()),
            protocol: "tcp".into(),
            from_port: Some(3389),
            to_port: Some(3389),
            source: "0.0.0.0/0".into(),
        },
        state: "123456789012/us-east-1/sg-0123456789abcdef0/1764900000000".into(),
        expires: 1_800_000_000,
    };
    let token = sgwatch_handler::link::token(&grant.signed_text(), &[7u8; 32]);
    act.bench_function("read-token-and-confirm-page", |b| {
        b.iter(|| {
            let read = sgwatch_handler::link::read(std::hint::black_box(&token)).unwrap();
            sgwatch_handler::page::Page::Confirm {
                act: sgwatch_handler::link::Act::Revert,
                grant: read.grant,
                now: sgwatch_handler::page::RuleNow::Gone,
                token: token.clone(),
                keep_days: 30,
            }
            .html()
            .len()
        })
    });
    act.finish();

    // What security teams' tools get for RDP opened, besides the email: the Security Hub
    // finding (built as the SDK sends it), PagerDuty's trigger and Q Developer's message.
    let mut security = c.benchmark_group("security");
    let d = {
        let message = fixture("rdp-opened.json");
        let envelope = envelopes(&message).into_iter().next().unwrap();
        let Ok(ConfigMessage::ItemChange(change)) = envelope.message else {
            panic!("an item change")
        };
        decide(analyze(&change).unwrap(), &Policy::default())
    };
    let actor = ActorLookup::Unknown("benchmark".into());
    security.bench_function("finding-trigger-and-chat-message", |b| {
        b.iter(|| {
            let d = std::hint::black_box(&d);
            let opened = sgwatch_handler::finding::opened(d);
            let t = "2026-11-20T09:14:07.512Z";
            let findings: Vec<_> = opened
                .iter()
                .map(|e| sgwatch_handler::findings::finding(d, e, &actor, (t, t), true))
                .collect();
            let pages = sgwatch_handler::finding::pager_events(d, &actor, "KEY", Severity::High);
            let chat = sgwatch_handler::chatbot::message(d, &actor, "key/chat");
            findings.len() + pages.len() + chat.to_string().len()
        })
    });
    security.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
