//! The organization: a hub in the security account and spokes in member accounts, on one moto
//! server with several accounts through STS. The helpers serve the hub's test; [`play`] is the
//! demo's act "the organization".
//!
//! moto cannot run the hub queue's event source mapping (that needs Docker), so the queue is read
//! here and each batch given to the handler's SQS entry point in-process, with the settings the
//! hub's function was deployed with. AWS Config and the spokes' heartbeat schedule are stood in
//! for by putting their events on the member's bus, as they would.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;
use aws_sdk_config::types::RecordingGroup;
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Report, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_synth::{self as synth, cloudtrail, Capture};

use crate::cli::{sgwatch_as, CommandRun, Programs};
use crate::emulator::{role_arn, Keys, Moto, SentEmail, REGION};
use crate::fixture::{self, open, open_to_the_world, SENDER};

/// Makes AWS Config record security groups in `account` × `region` (the account's own recorder,
/// as Control Tower's would be).
pub async fn recording(moto: &Moto, account: &str, region: &str) {
    let config = moto.sdk_config_in_account(account, region).await;
    let recorder = "default";
    fixture::recorder(
        &config,
        recorder,
        &role_arn(account, "config-recorder"),
        RecordingGroup::builder().all_supported(true).build(),
    )
    .await;
    let topic = aws_sdk_sns::Client::new(&config)
        .create_topic()
        .name("config-topic")
        .send()
        .await
        .expect("creating the Config topic")
        .topic_arn()
        .unwrap_or_default()
        .to_owned();
    fixture::delivery_channel(
        &config,
        recorder,
        "default",
        &format!("config-{account}-{region}"),
        &topic,
    )
    .await;
}

/// Puts an event of `source` and `kind` on a bus of `account` × `region` (its default bus, or
/// `bus`), at `time` (now when none), as AWS or a schedule would.
pub async fn put(
    moto: &Moto,
    place: (&str, &str),
    source: &str,
    kind: &str,
    detail: &Value,
    bus: Option<&str>,
    time: Option<SystemTime>,
) {
    let (account, region) = place;
    let config = moto.sdk_config_in_account(account, region).await;
    let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
        .source(source)
        .detail_type(kind)
        .detail(detail.to_string())
        .set_event_bus_name(bus.map(str::to_owned))
        .set_time(time.map(DateTime::from))
        .build();
    let out = aws_sdk_eventbridge::Client::new(&config)
        .put_events()
        .entries(entry)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutEvents in {account}/{region}: {e:?}"));
    assert_eq!(out.failed_entry_count(), 0, "{out:?}");
}

/// The hub's queue: its URL and ARN.
pub struct HubQueue {
    pub sqs: aws_sdk_sqs::Client,
    pub url: String,
    pub arn: String,
}

impl HubQueue {
    /// The queue the hub stack made.
    pub async fn find(hub: &SdkConfig) -> Result<HubQueue> {
        let sqs = aws_sdk_sqs::Client::new(hub);
        let url = sqs
            .list_queues()
            .send()
            .await?
            .queue_urls()
            .iter()
            .find(|u| u.contains("HubQueue"))
            .ok_or_else(|| anyhow!("the hub stack made no queue"))?
            .clone();
        let name = url.rsplit('/').next().unwrap_or_default();
        let arn = format!("arn:aws:sqs:{REGION}:{}:{name}", crate::emulator::ACCOUNT);
        Ok(HubQueue { sqs, url, arn })
    }

    /// Every message, as the SQS record an event source mapping would give the function, and
    /// deleted from the queue.
    pub async fn drain(&self) -> Vec<Value> {
        let mut records = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .expect("receiving from the hub's queue");
            if got.messages().is_empty() {
                return records;
            }
            for m in got.messages() {
                records.push(json!({
                    "messageId": m.message_id(), "receiptHandle": m.receipt_handle(),
                    "body": m.body(), "attributes": {}, "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(), "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn, "awsRegion": REGION,
                }));
                self.sqs
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("deleting from the hub's queue");
            }
        }
    }
}

/// The queued events' bodies.
pub fn bodies(records: &[Value]) -> Vec<Value> {
    records
        .iter()
        .filter_map(|r| serde_json::from_str(r["body"].as_str()?).ok())
        .collect()
}

/// An output of the hub's stack `sgwatch`.
pub async fn output(hub: &SdkConfig, key: &str) -> Result<String> {
    let stacks = aws_sdk_cloudformation::Client::new(hub)
        .describe_stacks()
        .stack_name("sgwatch")
        .send()
        .await?;
    stacks
        .stacks()
        .first()
        .and_then(|s| s.outputs().iter().find(|o| o.output_key() == Some(key)))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the hub stack has no output {key}"))
}

/// The hub's function as deployed: its settings, read from its environment.
pub async fn deployed_settings(hub: &SdkConfig) -> Result<Settings> {
    let function = output(hub, "FunctionName").await?;
    let f = aws_sdk_lambda::Client::new(hub)
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await?;
    let env: BTreeMap<String, String> = f
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    // The tests drain the hub's queue themselves, not the wake queue, whose messages wait out a
    // coalescing window (60 s): each change goes alone here (tests/it/quiet.rs drains the wake
    // queue to test coalescing).
    Settings::from_lookup(|name| match name {
        "SGWATCH_COALESCE_SECONDS" => Some("0".to_owned()),
        _ => env.get(name).cloned(),
    })
    .map_err(|e| anyhow!("the deployed settings are invalid: {e}"))
}

/// Gives `records` to the handler's SQS entry point as one batch.
pub async fn batch(records: Vec<Value>, settings: &Settings, services: &Services) -> Report {
    handle(&json!({ "Records": records }), settings, services)
        .await
        .expect("an SQS batch reports its failed records, never fails whole")
}

/// A change in a member account: Department B opens RDP on `group`, CloudTrail's event of the
/// call and AWS Config's item of the change put on the member's bus, as AWS would.
pub async fn rdp_opened(moto: &Moto, place: (&str, &str), group: &str) -> Result<Value> {
    let (account, region) = place;
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config_in_account(account, region).await);
    let before = synth::describe(&ec2, group).await?;
    let called_at = DateTime::from(SystemTime::now());
    let request_id = open(&ec2, group, 3389).await?;
    let after = synth::describe(&ec2, group).await?;
    let call = cloudtrail::Call {
        event_name: "AuthorizeSecurityGroupIngress".into(),
        request_parameters: cloudtrail::authorize_ingress_parameters(
            group,
            &[open_to_the_world(3389)],
        ),
        response_elements: json!({"_return": true}),
        request_id,
        region: region.into(),
        time: called_at,
    };
    let who = cloudtrail::Identity {
        arn: dept_b(account),
        account: account.into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "aws-cli/2.15.30".into(),
    };
    let feed_event = cloudtrail::api_call_event(&call, &who)?;
    let call_kind = "AWS API Call via CloudTrail";
    put(
        moto,
        place,
        "aws.ec2",
        call_kind,
        &feed_event["detail"],
        None,
        None,
    )
    .await;
    let capture = Capture {
        account: account.into(),
        region: region.into(),
        time: DateTime::from(SystemTime::now() + Duration::from_secs(2)),
    };
    let item = synth::item_change(Some(&before), Some(&after), &capture)?;
    let config_kind = "Config Configuration Item Change";
    put(moto, place, "aws.config", config_kind, &item, None, None).await;
    Ok(item)
}

/// Who opens RDP in a member account.
pub fn dept_b(account: &str) -> String {
    format!("arn:aws:iam::{account}:user/dept-b")
}

/// What the act showed.
#[derive(Debug)]
pub struct Organization {
    pub hub_bus: String,
    pub spokes: usize,
    pub emails: Vec<SentEmail>,
    pub status: Option<CommandRun>,
}

impl Organization {
    /// What went wrong, for the demo's summary (empty when the act showed what it should).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.emails.as_slice() {
            [email] if email.destinations == [MEMBER_OWNER] => {}
            other => problems.push(format!(
                "the member account's owner should get one email from the hub, got {other:?}"
            )),
        }
        if self.status.as_ref().is_none_or(|s| !s.success()) {
            problems.push("hub status found the organization's spokes blind or broken".into());
        }
        problems
    }
}

/// The member accounts of the act.
pub const MEMBERS: [&str; 2] = ["111111111111", "222222222222"];
/// The owner of the group that changes in the second member account.
pub const MEMBER_OWNER: &str = "team-b@corp.example";

/// The act "the organization": a hub in the security account, spokes in two member accounts,
/// and an email from the hub about a change in a member account.
pub async fn play(moto: &Moto, programs: &Programs) -> Result<Organization> {
    let say = |line: &str| println!("    {line}");
    let hub = moto.sdk_config(None).await;
    moto.verify_sender(&hub, SENDER).await;
    let zip = programs.handler_zip()?;
    let zip = zip.to_str().context("the handler zip's path")?;
    println!("\n A. The organization: one hub in the security account, a spoke in each member");
    let members = MEMBERS.join(",");
    let args = [
        "hub",
        "install",
        "--sender",
        SENDER,
        "--handler-zip",
        zip,
        "--arch",
        "x86_64",
        "--actor-feed",
        "off",
        "--member-accounts",
        &members,
        "--output",
        "json",
    ];
    let installed = sgwatch_as(programs, moto, REGION, None, &args).await?;
    if !installed.success() {
        return Err(anyhow!(
            "`{}` failed:\n{}",
            installed.command,
            installed.stderr
        ));
    }
    let report: Value = serde_json::from_str(&installed.stdout)?;
    let bus = report["hub_bus_arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let role = report["hub_role_arn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    say(&format!("$ {}", installed.command));
    say(&format!("hub bus {bus}"));
    let mut keys: BTreeMap<&str, Keys> = BTreeMap::new();
    for account in MEMBERS {
        keys.insert(account, moto.keys_in(account).await);
        recording(moto, account, REGION).await;
        let there = moto.sdk_config_in_account(account, REGION).await;
        fixture::logging_trail(&there, account).await?;
        let args = ["spoke", "install", "--hub", &bus, "--hub-role", &role];
        let run = sgwatch_as(programs, moto, REGION, Some(&keys[account]), &args).await?;
        if !run.success() {
            return Err(anyhow!("`{}` failed:\n{}", run.command, run.stderr));
        }
        say(&format!("account {account}: $ {}", run.command));
        for line in run.stdout.lines() {
            say(&format!("│ {line}"));
        }
    }

    println!(
        "\n B. In member account {}, Department B opens RDP on team B's group",
        MEMBERS[1]
    );
    let place = (MEMBERS[1], REGION);
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config_in_account(MEMBERS[1], REGION).await);
    let tags = [("NotifyOnChange", "Yes"), ("OwnerDL", MEMBER_OWNER)];
    let group = fixture::security_group(&ec2, "team-b-web", "team B's web servers", &tags).await?;
    rdp_opened(moto, place, &group).await?;
    for account in MEMBERS {
        let beat = json!({"account": account, "region": REGION, "stack": "sgwatch-spoke"});
        let source = sgwatch_handler::spokes::HEARTBEAT_SOURCE;
        let kind = sgwatch_handler::spokes::HEARTBEAT_DETAIL_TYPE;
        put(
            moto,
            (account, REGION),
            source,
            kind,
            &beat,
            Some(&bus),
            None,
        )
        .await;
    }
    let queue = HubQueue::find(&hub).await?;
    let records = queue.drain().await;
    say(&format!(
        "the hub's queue holds {} events: the call, the Config item and the spokes' heartbeats",
        records.len()
    ));
    let settings = deployed_settings(&hub).await?;
    let services = Services::new(&hub, &settings);
    let report = batch(records, &settings, &services).await;
    say(&format!(
        "the hub's handler: {}",
        serde_json::to_string(&report)?
    ));
    let emails = moto.ses_messages().await;
    for e in &emails {
        say(&format!(
            "email to {}: {}",
            e.destinations.join(", "),
            e.subject.as_deref().unwrap_or_default()
        ));
    }
    let status = sgwatch_as(programs, moto, REGION, None, &["hub", "status"]).await?;
    say(&format!("$ {}", status.command));
    for line in status
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("coverage"))
    {
        say(&format!("│ {line}"));
    }
    Ok(Organization {
        hub_bus: bus,
        spokes: MEMBERS.len(),
        emails,
        status: Some(status),
    })
}
