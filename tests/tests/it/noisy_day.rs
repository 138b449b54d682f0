//! A noisy day, for docs/BENCHMARKS.md (`cargo test --workspace --test it -- noisy_day
//! --include-ignored --nocapture`): the day `scripts/noisy-day.py` writes (300 groups of 60
//! teams, 2,000 changes, 70 % by the pipeline, bursts of console edits, 1 % CRITICAL) made for
//! real on moto's EC2 and given to the handler as the actor feed and AWS Config would, once with
//! no noise control and once with them (`--coalesce 60s`, `--trusted-principal` the pipeline,
//! `--digest low`, `--max-per-group-hour 10`). Time is the handler's clock, moved to each change's time; each coalescing
//! window's wake is given to the handler when its window ends, as SQS delivers it, and the
//! digest at 08:00 the next day. It prints the emails per recipient, the most any owner got in
//! one hour, and the CRITICAL changes delayed (not emailed in the invocation that decided them)
//! and lost (never emailed).

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_ec2::types::{IpPermission, IpRange};
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use sgwatch_handler::context::Clock;
use sgwatch_handler::process::{handle, Services};
use sgwatch_synth::cloudtrail::{self, Call, Identity};
use sgwatch_synth::{self as synth, Capture};
use sgwatch_tests::emulator::{Moto, ACCOUNT, REGION};
use sgwatch_tests::fixture::{self, security_group, SENDER, TABLE};

/// 2026-12-07T00:00:00Z: the day's midnight.
const MIDNIGHT: u64 = 1_796_601_600;
const PIPELINE: &str = "arn:aws:iam::123456789012:role/deploy-pipeline";

fn owner(team: usize) -> String {
    format!("team-{team:02}@corp.example")
}

/// The day, from `scripts/noisy-day.py` (its default seed).
fn day() -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/noisy-day.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("{script}: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[derive(Debug, Default)]
struct Figures {
    emails: usize,
    /// By recipient.
    per_recipient: BTreeMap<String, usize>,
    /// By recipient and hour of the day.
    per_hour: BTreeMap<(String, u64), usize>,
    critical: usize,
    critical_delayed: usize,
    critical_lost: usize,
    /// What moto's SES accepted, to check the count.
    ses_total: usize,
    seconds: f64,
}

impl Figures {
    fn told(&mut self, recipient: &str, at: u64) {
        self.emails += 1;
        *self.per_recipient.entry(recipient.to_owned()).or_default() += 1;
        *self
            .per_hour
            .entry((recipient.to_owned(), (at - MIDNIGHT) / 3600))
            .or_default() += 1;
    }
}

struct Change {
    t: u64,
    group: usize,
    by: String,
    add: bool,
    port: i32,
    cidr: String,
}

async fn replay(day: &Value, quiet: bool) -> Figures {
    let started = Instant::now();
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    fixture::idempotency_table(&config, TABLE).await;
    let wake_url = fixture::queue(&config, "sgwatch-wake").await;
    let mut vars = vec![("SGWATCH_EARLY_WARNING", "off")];
    if quiet {
        vars.extend([
            (
                "SGWATCH_TRUSTED_PRINCIPALS",
                "arn:aws:iam::123456789012:role/deploy-*",
            ),
            ("SGWATCH_DIGEST", "low"),
            ("SGWATCH_COALESCE_SECONDS", "60"),
            ("SGWATCH_MAX_PER_GROUP_HOUR", "10"),
            ("SGWATCH_WAKE_QUEUE_URL", wake_url.as_str()),
        ]);
    }
    let settings = fixture::settings(&vars);
    let mut services = Services::new(&config, &settings);
    services.clock = Clock::fixed(MIDNIGHT);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let groups = day["groups"].as_u64().unwrap() as usize;
    let owners = day["owners"].as_u64().unwrap() as usize;
    let mut ids = Vec::new();
    let mut states = Vec::new();
    for g in 0..groups {
        let to = owner(g % owners);
        let id = security_group(
            &ec2,
            &format!("app-{g:03}"),
            "an application's servers",
            &[("NotifyOnChange", "Yes"), ("OwnerDL", &to)],
        )
        .await
        .unwrap();
        states.push(synth::describe(&ec2, &id).await.unwrap());
        ids.push(id);
    }
    let changes: Vec<Change> = day["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Change {
            t: c["t"].as_u64().unwrap(),
            group: c["group"].as_u64().unwrap() as usize,
            by: c["by"].as_str().unwrap().to_owned(),
            add: c["op"] == "add",
            port: c["port"].as_i64().unwrap() as i32,
            cidr: c["cidr"].as_str().unwrap().to_owned(),
        })
        .collect();
    let mut f = Figures::default();
    // Open windows: group → when it ends.
    let mut windows: BTreeMap<usize, u64> = BTreeMap::new();
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let window_of = |g: usize| {
        let (dynamo, key) = (
            dynamo.clone(),
            format!("window/{ACCOUNT}/{REGION}/{}", ids[g]),
        );
        async move {
            let out = dynamo
                .get_item()
                .table_name(TABLE)
                .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key))
                .consistent_read(true)
                .send()
                .await
                .unwrap();
            out.item()
                .and_then(|i| i.get("until"))
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
        }
    };
    for (i, c) in changes.iter().enumerate() {
        let now = MIDNIGHT + c.t;
        // The windows that ended before this change: their wakes, at their end.
        let due: Vec<(usize, u64)> = windows
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(g, u)| (*g, *u))
            .collect();
        for (g, until) in due {
            services.clock.set(until);
            let wake = sgwatch_handler::digest::wake_event(&sgwatch_handler::digest::Wake {
                account: ACCOUNT.into(),
                region: REGION.into(),
                group: ids[g].clone(),
                until,
                summary_of_hour: None,
            });
            let report = handle(&wake, &settings, &services).await.unwrap();
            if report.sent > 0 {
                f.told(&owner(g % owners), until);
            }
            match window_of(g).await {
                Some(u) => windows.insert(g, u),
                None => windows.remove(&g),
            };
        }
        services.clock.set(now);
        let permission = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(c.port)
            .to_port(c.port)
            .ip_ranges(IpRange::builder().cidr_ip(&c.cidr).build())
            .build();
        let id = &ids[c.group];
        let request_id = if c.add {
            ec2.authorize_security_group_ingress()
                .group_id(id)
                .ip_permissions(permission.clone())
                .send()
                .await
                .map(|o| aws_sdk_ec2::operation::RequestId::request_id(&o).map(str::to_owned))
                .map_err(|e| format!("{e:?}"))
        } else {
            ec2.revoke_security_group_ingress()
                .group_id(id)
                .ip_permissions(permission.clone())
                .send()
                .await
                .map(|o| aws_sdk_ec2::operation::RequestId::request_id(&o).map(str::to_owned))
                .map_err(|e| format!("{e:?}"))
        }
        .unwrap_or_else(|e| panic!("change {i}: {e}"));
        let time = DateTime::from_secs(now as i64);
        let call = Call {
            event_name: if c.add {
                "AuthorizeSecurityGroupIngress"
            } else {
                "RevokeSecurityGroupIngress"
            }
            .into(),
            request_parameters: cloudtrail::authorize_ingress_parameters(id, &[permission]),
            response_elements: json!({"_return": true}),
            request_id: request_id.unwrap_or_else(|| format!("r-{i}")),
            region: REGION.into(),
            time,
        };
        let who = if c.by == "pipeline" {
            PIPELINE.to_owned()
        } else {
            format!("arn:aws:iam::{ACCOUNT}:user/{}", c.by)
        };
        let identity = Identity {
            arn: who,
            account: ACCOUNT.into(),
            source_ip: "203.0.113.7".into(),
            user_agent: "aws-cli/2.15.30".into(),
        };
        let feed = cloudtrail::api_call_event(&call, &identity).unwrap();
        handle(&feed, &settings, &services).await.unwrap();
        let after = synth::describe(&ec2, id).await.unwrap();
        let capture = Capture {
            account: ACCOUNT.into(),
            region: REGION.into(),
            time: DateTime::from_secs(now as i64 + 2),
        };
        let item = synth::item_change(Some(&states[c.group]), Some(&after), &capture).unwrap();
        states[c.group] = after;
        let critical = c.add && c.cidr == "0.0.0.0/0" && (c.port == 22 || c.port == 3389);
        let report = handle(
            &fixture::sns(&item, &format!("m-{i}")),
            &settings,
            &services,
        )
        .await
        .unwrap();
        if report.sent > 0 {
            f.told(&owner(c.group % owners), now);
        }
        if critical {
            f.critical += 1;
            if report.sent == 0 {
                f.critical_delayed += 1;
            }
        }
        if quiet && report.held > 0 && !windows.contains_key(&c.group) {
            if let Some(u) = window_of(c.group).await {
                windows.insert(c.group, u);
            }
        }
    }
    // The last windows end; the digest goes at 08:00 the next day.
    for (g, until) in std::mem::take(&mut windows) {
        services.clock.set(until);
        let wake = sgwatch_handler::digest::wake_event(&sgwatch_handler::digest::Wake {
            account: ACCOUNT.into(),
            region: REGION.into(),
            group: ids[g].clone(),
            until,
            summary_of_hour: None,
        });
        if handle(&wake, &settings, &services).await.unwrap().sent > 0 {
            f.told(&owner(g % owners), until);
        }
    }
    let digest_at = MIDNIGHT + 32 * 3600;
    services.clock.set(digest_at);
    let before = moto.ses_messages().await.len();
    let due = json!({"source": "sgwatch.digest", "detail-type": "sgwatch digest", "detail": {}});
    handle(&due, &settings, &services).await.unwrap();
    let mail = moto.ses_messages().await;
    for m in &mail[before..] {
        f.told(&m.destinations[0], digest_at);
    }
    f.ses_total = mail.len();
    // Lost: a CRITICAL change of which no alert (its own, not a digest) was ever sent.
    let critical_alerts = mail
        .iter()
        .filter(|m| {
            m.subject.as_deref().is_some_and(|s| {
                s.starts_with("[sgwatch CRITICAL]") && !s.contains("changes within")
            })
        })
        .count();
    f.critical_lost = f.critical.saturating_sub(critical_alerts);
    f.seconds = started.elapsed().as_secs_f64();
    f
}

fn print(name: &str, f: &Figures) {
    let recipients = f.per_recipient.len().max(1);
    let max = f.per_recipient.values().max().copied().unwrap_or(0);
    let hour = f.per_hour.values().max().copied().unwrap_or(0);
    println!(
        "{name}: {} emails ({} accepted by SES), {:.1} per recipient (most {max}), most in one hour {hour}; CRITICAL {}: delayed {}, lost {}; {:.0} s",
        f.emails,
        f.ses_total,
        f.emails as f64 / recipients as f64,
        f.critical,
        f.critical_delayed,
        f.critical_lost,
        f.seconds
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a long run for docs/BENCHMARKS.md"]
async fn noisy_day_with_and_without_the_noise_controls() {
    let day = day();
    let plain = replay(&day, false).await;
    print("no noise control", &plain);
    let quiet = replay(&day, true).await;
    print(
        "coalesce 60s, trusted pipeline, digest low, 10 per group an hour",
        &quiet,
    );
    println!(
        "{:.1}x fewer emails",
        plain.emails as f64 / quiet.emails.max(1) as f64
    );
    for f in [&plain, &quiet] {
        assert_eq!(f.emails, f.ses_total, "every email counted");
        assert_eq!(f.critical_delayed, 0);
        assert_eq!(f.critical_lost, 0);
    }
}
