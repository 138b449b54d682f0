//! Moving a member account's region from its own full stack to the organization's hub
//! (`sgwatch spoke install --replace-stack`), with changes made while the switch runs: each is
//! told once, by the full stack before the handover time and by the hub from it, and none after
//! the switch is lost.
//!
//! The hub and the full stack are both installed into moto by the real installer. Neither
//! function can run in moto (that needs Docker): the full stack's is given each change as the SNS
//! event its Config topic would deliver, and the hub's each batch of its queue, both in-process
//! with the settings they were deployed with, as in the hub's test.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_smithy_types::DateTime;
use serde_json::Value;
use sgwatch_handler::process::{handle, Services};
use sgwatch_synth::{self as synth, Capture};
use sgwatch_tests::cli::{sgwatch_as, spawn_as, CommandRun, Programs};
use sgwatch_tests::emulator::{Moto, SentEmail, ACCOUNT, REGION};
use sgwatch_tests::fixture::{self, open, SENDER};
use sgwatch_tests::organization::{self, batch, deployed_settings, HubQueue};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const MEMBER: &str = "111111111111";
const OWNER: &str = "team-a@corp.example";

fn ok(run: &CommandRun) {
    assert!(
        run.success(),
        "`{}` failed ({}):\n{}\n{}",
        run.command,
        run.status,
        run.stdout,
        run.stderr
    );
}

/// A change in the member account: `port` opened to the world on `group`, captured now. Its
/// AWS Config notification goes where Config sends it: to the full stack's function (when it
/// still runs) as its topic's SNS event, and onto the account's bus, which the spoke's rule
/// forwards to the hub. Returns the notification.
async fn change(moto: &Moto, group: &str, port: i32, full: Option<&Services>) -> Value {
    let member = moto.sdk_config_in_account(MEMBER, REGION).await;
    let ec2 = aws_sdk_ec2::Client::new(&member);
    let before = synth::describe(&ec2, group).await.unwrap();
    open(&ec2, group, port).await.unwrap();
    let after = synth::describe(&ec2, group).await.unwrap();
    let capture = Capture {
        account: MEMBER.into(),
        region: REGION.into(),
        time: DateTime::from(SystemTime::now()),
    };
    let item = synth::item_change(Some(&before), Some(&after), &capture).unwrap();
    if let Some(services) = full {
        let settings = deployed_settings(&member).await.unwrap();
        let event = fixture::sns(&item, &format!("sns-{port}"));
        handle(&event, &settings, services)
            .await
            .unwrap_or_else(|e| panic!("the full stack's function failed on port {port}: {e}"));
    }
    let kind = "Config Configuration Item Change";
    organization::put(
        moto,
        (MEMBER, REGION),
        "aws.config",
        kind,
        &item,
        None,
        None,
    )
    .await;
    item
}

/// The emails to the group's owner, by the port they tell of: (account that sent it, subject).
fn told(mail: &[SentEmail]) -> BTreeMap<i32, Vec<(String, String)>> {
    let mut told: BTreeMap<i32, Vec<(String, String)>> = BTreeMap::new();
    for m in mail.iter().filter(|m| m.destinations == [OWNER]) {
        let text = m.text.clone().unwrap_or_default();
        for port in [3389, 22, 5432] {
            if text.contains(&format!("tcp/{port}")) || text.contains(&format!("port {port}")) {
                let subject = m.subject.clone().unwrap_or_default();
                told.entry(port)
                    .or_default()
                    .push((m.account.clone(), subject));
            }
        }
    }
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_stack_hands_the_region_to_the_hub_and_a_change_during_it_is_told_once() {
    let programs = Programs::build_for("handover");
    let moto = Moto::start();
    let hub = moto.sdk_config(None).await;
    moto.verify_sender(&hub, SENDER).await;
    let zip = programs.handler_zip().unwrap();
    let zip = zip.to_str().unwrap();
    let hub_install = sgwatch_as(
        &programs,
        &moto,
        REGION,
        None,
        &[
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
            MEMBER,
            "--output",
            "json",
        ],
    )
    .await
    .unwrap();
    ok(&hub_install);
    let report: Value = serde_json::from_str(&hub_install.stdout).unwrap();
    let bus = report["hub_bus_arn"].as_str().unwrap().to_owned();
    let role = report["hub_role_arn"].as_str().unwrap().to_owned();

    // The member account runs its own full stack, which made the region's recorder.
    let keys = moto.keys_in(MEMBER).await;
    let member = moto.sdk_config_in_account(MEMBER, REGION).await;
    moto.verify_sender(&member, SENDER).await;
    let full = sgwatch_as(
        &programs,
        &moto,
        REGION,
        Some(&keys),
        &[
            "install",
            "--sender",
            SENDER,
            "--handler-zip",
            zip,
            "--arch",
            "x86_64",
            "--actor-feed",
            "off",
            "--yes",
        ],
    )
    .await
    .unwrap();
    ok(&full);
    let full_outputs = outputs(&member, "sgwatch").await;
    let ec2 = aws_sdk_ec2::Client::new(&member);
    let tags = [("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)];
    let group = fixture::security_group(&ec2, "team-a-web", "team A's web servers", &tags)
        .await
        .unwrap();
    let (_, public_ip) = fixture::public_interface(&ec2, &group).await.unwrap();

    // A spoke beside the full stack is refused, and says how to switch.
    let spoke = ["spoke", "install", "--hub", &bus, "--hub-role", &role];
    let refused = sgwatch_as(&programs, &moto, REGION, Some(&keys), &spoke)
        .await
        .unwrap();
    assert!(!refused.success(), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("--replace-stack"),
        "{}",
        refused.stderr
    );

    // The switch, with a change before the handover time and one after it, made while it runs.
    let mut switch = spoke.to_vec();
    switch.extend([
        "--replace-stack",
        "--handover-in",
        "6s",
        "--handover-wait",
        "8s",
    ]);
    let (mut child, shown) = spawn_as(&programs, &moto, REGION, Some(&keys), &switch).unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = Vec::new();
    let handover_at = loop {
        let line = tokio::time::timeout(Duration::from_secs(120), stderr.next_line())
            .await
            .unwrap_or_else(|_| panic!("`{shown}` named no handover time: {said:#?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("`{shown}` ended naming no handover time: {said:#?}"));
        said.push(line.clone());
        if let Some(rest) = line.strip_prefix("handover at ") {
            let t = rest.split(':').take(3).collect::<Vec<_>>().join(":");
            break DateTime::from_str(&t, aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_else(|e| panic!("{line}: {e}"));
        }
    };
    let t = SystemTime::try_from(handover_at).unwrap();
    // The full stack's function as deployed, with the marker it reads.
    let full_settings = deployed_settings(&member).await.unwrap();
    assert_eq!(
        full_settings.handover_parameter.as_deref(),
        Some("/sgwatch/handover")
    );
    let full_services = Services::new(&member, &full_settings);
    // Before T: the full stack tells it, the hub leaves it.
    assert!(SystemTime::now() < t, "the handover time came too soon");
    change(&moto, &group, 3389, Some(&full_services)).await;
    // After T, while the full stack still runs: the hub tells it, the full stack leaves it.
    if let Ok(left) = t.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
    change(
        &moto,
        &group,
        22,
        Some(&Services::new(&member, &full_settings)),
    )
    .await;

    let hub_settings = deployed_settings(&hub).await.unwrap();
    let hub_services = Services::new(&hub, &hub_settings);
    let queue = HubQueue::find(&hub).await.unwrap();
    let report = batch(queue.drain().await, &hub_settings, &hub_services).await;
    assert_eq!((report.records, report.failed), (2, 0), "{report:?}");

    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .unwrap_or_else(|_| panic!("`{shown}` did not finish"))
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    while let Ok(Some(line)) = stderr.next_line().await {
        said.push(line);
    }
    assert!(status.success(), "`{shown}` failed:\n{out}\n{said:#?}");
    for line in [
        "handover marker /sgwatch/handover: pending",
        "create the spoke's stack",
        "handover time ",
        "point delivery channel sgwatch at s3://",
        "removed the full stack sgwatch",
    ] {
        assert!(out.contains(line), "{line}:\n{out}");
    }

    // Each change told once: the one before T by the full stack, in the member account; the one
    // after it by the hub, in the security account.
    let mail = moto.ses_messages().await;
    let by_port = told(&mail);
    assert_eq!(by_port[&3389].len(), 1, "{by_port:#?}");
    assert_eq!(by_port[&3389][0].0, MEMBER, "{by_port:#?}");
    assert_eq!(by_port[&22].len(), 1, "{by_port:#?}");
    assert_eq!(by_port[&22][0].0, ACCOUNT, "{by_port:#?}");

    // Each alert gives the command that removes its rule, by the id EC2 gave the rule: read by
    // the full stack with its own role, and by the hub through the member's reader role.
    let listed = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(&group)
                .build(),
        )
        .send()
        .await
        .unwrap();
    for port in [3389, 22] {
        let id = listed
            .security_group_rules()
            .iter()
            .find(|r| r.from_port() == Some(port) && r.is_egress() == Some(false))
            .and_then(|r| r.security_group_rule_id())
            .unwrap_or_else(|| panic!("moto lists no rule for port {port}"));
        let command = format!(
            "aws ec2 revoke-security-group-ingress --region {REGION} --group-id {group} \
             --security-group-rule-ids {id}"
        );
        let told: Vec<&SentEmail> = mail
            .iter()
            .filter(|m| {
                m.text
                    .as_deref()
                    .unwrap_or_default()
                    .contains(&format!("tcp/{port}"))
            })
            .collect();
        assert_eq!(told.len(), 1, "{told:#?}");
        // And what the group is attached to, as EC2 lists it: a public interface.
        let attached =
            format!("Attached to: 1 network interface, 1 with a public IP address ({public_ip})\n");
        assert!(
            told[0]
                .text
                .as_deref()
                .unwrap_or_default()
                .contains(&attached),
            "{attached}: {told:#?}"
        );
        assert!(
            told.iter()
                .all(|m| m.text.as_deref().unwrap_or_default().contains(&command)),
            "{command}: {told:#?}"
        );
    }

    // The full stack is gone; the recorder it made records on, now the spoke's: its role, its
    // bucket, no topic. The full stack's history stays.
    let cf = aws_sdk_cloudformation::Client::new(&member);
    let gone = cf.describe_stacks().stack_name("sgwatch").send().await;
    let gone = match gone {
        Err(_) => true,
        Ok(out) => out.stacks().iter().all(|s| {
            s.stack_status() == Some(&aws_sdk_cloudformation::types::StackStatus::DeleteComplete)
        }),
    };
    assert!(gone, "the full stack is still there");
    let spoke_outputs = outputs(&member, "sgwatch-spoke").await;
    let config = aws_sdk_config::Client::new(&member);
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap();
    let recorder = &recorders.configuration_recorders()[0];
    assert_eq!(recorder.name(), Some("sgwatch"));
    assert_eq!(
        recorder.role_arn(),
        Some(spoke_outputs["ConfigRoleArn"].as_str())
    );
    let recording = config
        .describe_configuration_recorder_status()
        .send()
        .await
        .unwrap();
    assert!(recording.configuration_recorders_status()[0].recording());
    let channels = config.describe_delivery_channels().send().await.unwrap();
    let channel = &channels.delivery_channels()[0];
    assert_eq!(
        channel.s3_bucket_name(),
        Some(spoke_outputs["ConfigBucketName"].as_str())
    );
    assert_eq!(channel.sns_topic_arn(), None);
    let history = &full_outputs["ConfigBucketName"];
    sgwatch_handler::aws::s3_client(&member)
        .head_bucket()
        .bucket(history)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the full stack's history {history} is gone: {e:?}"));
    let marker = aws_sdk_ssm::Client::new(&member)
        .get_parameter()
        .name("/sgwatch/handover")
        .send()
        .await
        .unwrap();
    let value = marker
        .parameter()
        .and_then(|p| p.value())
        .unwrap_or_default();
    assert!(value.ends_with(&format!(" {MEMBER} {REGION}")), "{value}");

    // After the switch the hub alone tells the region; a re-run changes nothing.
    change(&moto, &group, 5432, None).await;
    let report = batch(queue.drain().await, &hub_settings, &hub_services).await;
    assert_eq!((report.records, report.failed), (1, 0), "{report:?}");
    let by_port = told(&moto.ses_messages().await);
    assert_eq!(
        by_port[&5432],
        [(ACCOUNT.to_owned(), by_port[&5432][0].1.clone())]
    );
    assert_eq!(by_port[&3389].len() + by_port[&22].len(), 2);
    let again = sgwatch_as(&programs, &moto, REGION, Some(&keys), &switch)
        .await
        .unwrap();
    ok(&again);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
}

/// A stack's outputs by key.
async fn outputs(config: &aws_config::SdkConfig, stack: &str) -> BTreeMap<String, String> {
    aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .stacks()[0]
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap_or_default().to_owned(),
                o.output_value().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
