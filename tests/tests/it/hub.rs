//! One handler for the organization: a hub in the security account, spokes in three member
//! accounts × two regions, all installed by the real installer into moto (one server, several
//! accounts through STS).
//!
//! moto forwards events between accounts' buses (the spokes' rules to the hub's bus, the hub's
//! rule to its queue), keeping the source's account and region through the named bridge
//! "forwarded origin" in `scripts/moto.py`. It cannot run an SQS event source mapping (that needs
//! Docker), so the test reads the hub's queue and gives each batch to the handler's SQS entry
//! point in-process, with the settings the hub's function was deployed with. AWS Config and the
//! heartbeat schedule are stood in for by putting their events on the member's bus, as they would.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Services};
use sgwatch_tests::cli::{sgwatch_as, CommandRun, Programs};
use sgwatch_tests::emulator::{copies, Keys, Moto, ACCOUNT, REGION};
use sgwatch_tests::fixture::{self, SENDER};
use sgwatch_tests::organization::{self, batch, bodies, recording, HubQueue};

const MEMBERS: [&str; 3] = ["111111111111", "222222222222", "333333333333"];
const REGIONS: [&str; 2] = [REGION, "eu-west-1"];
const OWNER: &str = "team-3@corp.example";
const OUTSIDER: &str = "444444444444";
const SECOPS: &str = "secops@corp.example";

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

async fn put(moto: &Moto, account: &str, region: &str, source: &str, kind: &str, detail: &Value) {
    organization::put(moto, (account, region), source, kind, detail, None, None).await
}

#[allow(clippy::too_many_arguments)]
async fn put_at(
    moto: &Moto,
    account: &str,
    region: &str,
    source: &str,
    kind: &str,
    detail: &Value,
    bus: Option<&str>,
    time: Option<SystemTime>,
) {
    organization::put(moto, (account, region), source, kind, detail, bus, time).await
}

async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, arn: &str) -> Vec<Value> {
    let queue = HubQueue {
        sqs: sqs.clone(),
        url: url.to_owned(),
        arn: arn.to_owned(),
    };
    queue.drain().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_a_member_account_reaches_its_owners_once_from_the_hub() {
    let programs = Programs::build_for("hub");
    let moto = Moto::start();
    let hub = moto.sdk_config(None).await;
    moto.verify_sender(&hub, SENDER).await;
    let zip = programs.handler_zip().unwrap();
    let zip = zip.to_str().unwrap();

    // The hub, in the security account (moto's default account), for the three members.
    let members = MEMBERS.join(",");
    let installed = sgwatch_as(
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
            "--fallback-recipient",
            SECOPS,
            "--member-accounts",
            &members,
            "--output",
            "json",
        ],
    )
    .await
    .unwrap();
    ok(&installed);
    let report: Value = serde_json::from_str(&installed.stdout).unwrap();
    let bus = report["hub_bus_arn"].as_str().unwrap().to_owned();
    let role = report["hub_role_arn"].as_str().unwrap().to_owned();
    assert!(
        bus.starts_with(&format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/")),
        "{bus}"
    );
    assert!(
        report["spoke_command"]
            .as_str()
            .unwrap()
            .contains(&format!("--hub {bus} --hub-role {role}")),
        "{report}"
    );

    // A spoke in every member account × region; the first region's makes the reader role.
    // Accounts 2 and 3 have a logging trail for every region; account 1 has none.
    let mut keys: BTreeMap<&str, Keys> = BTreeMap::new();
    for account in MEMBERS {
        keys.insert(account, moto.keys_in(account).await);
        if account != MEMBERS[0] {
            let there = moto.sdk_config_in_account(account, REGIONS[0]).await;
            fixture::logging_trail(&there, account).await.unwrap();
        }
        for region in REGIONS {
            recording(&moto, account, region).await;
            let run = sgwatch_as(
                &programs,
                &moto,
                region,
                Some(&keys[account]),
                &["spoke", "install", "--hub", &bus, "--hub-role", &role],
            )
            .await
            .unwrap();
            ok(&run);
            // A second run changes nothing.
            let again = sgwatch_as(
                &programs,
                &moto,
                region,
                Some(&keys[account]),
                &["spoke", "install", "--hub", &bus, "--hub-role", &role],
            )
            .await
            .unwrap();
            ok(&again);
            assert!(again.stdout.contains("no changes"), "{}", again.stdout);
        }
        // The reader role exists once per account, and only the hub's role may assume it.
        let iam = aws_sdk_iam::Client::new(&moto.sdk_config_in_account(account, REGION).await);
        let reader = iam
            .get_role()
            .role_name("sgwatch-reader")
            .send()
            .await
            .unwrap();
        let trust = urlencoding_decode(
            reader
                .role()
                .unwrap()
                .assume_role_policy_document()
                .unwrap(),
        );
        assert!(trust.contains(&role), "{trust}");
    }
    // The spokes' rules forward to the hub's bus, through their forwarding role.
    let member = moto.sdk_config_in_account(MEMBERS[2], REGIONS[1]).await;
    let events = aws_sdk_eventbridge::Client::new(&member);
    let rules = events.list_rules().send().await.unwrap();
    let forwarding: Vec<_> = rules
        .rules()
        .iter()
        .filter(|r| r.name().unwrap_or_default().starts_with("sgwatch-spoke"))
        .collect();
    assert_eq!(forwarding.len(), 2, "{rules:?}");
    for r in forwarding {
        let targets = events
            .list_targets_by_rule()
            .rule(r.name().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(targets.targets().len(), 1);
        assert_eq!(targets.targets()[0].arn(), bus);
    }

    // Department B opens RDP on team 3's group, in account 3 / region 2.
    let (account, region) = (MEMBERS[2], REGIONS[1]);
    let ec2 = aws_sdk_ec2::Client::new(&member);
    let group = fixture::security_group(
        &ec2,
        "team-3-web",
        "team 3's web servers",
        &[("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)],
    )
    .await
    .unwrap();
    let item = organization::rdp_opened(&moto, (account, region), &group)
        .await
        .unwrap();
    let who_arn = organization::dept_b(account);

    // Both reached the hub's queue, from account 3 / region 2.
    let sqs = aws_sdk_sqs::Client::new(&hub);
    let queue_url = sqs
        .list_queues()
        .send()
        .await
        .unwrap()
        .queue_urls()
        .iter()
        .find(|u| u.contains("HubQueue"))
        .expect("the hub's queue")
        .clone();
    let queue_arn = format!(
        "arn:aws:sqs:{REGION}:{ACCOUNT}:{}",
        queue_url.rsplit('/').next().unwrap()
    );
    let records = drain(&sqs, &queue_url, &queue_arn).await;
    let origins: Vec<(String, String, String)> = bodies(&records)
        .iter()
        .map(|b| {
            (
                b["source"].as_str().unwrap().to_owned(),
                b["account"].as_str().unwrap().to_owned(),
                b["region"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        vec![
            ("aws.ec2".into(), account.into(), region.into()),
            ("aws.config".into(), account.into(), region.into()),
        ]
    );

    // The hub's handler, as deployed, takes the batch: the call warns team 3 at once (their
    // group's tags read through account 3's reader role); the Config item adds nothing new.
    let settings = organization::deployed_settings(&hub).await.unwrap();
    assert!(settings.hub);
    let services = Services::new(&hub, &settings);
    let first = batch(records, &settings, &services).await;
    assert_eq!(
        (first.records, first.failed, first.recorded),
        (2, 0, 1),
        "{first:?}\n{}",
        moto.log()
    );
    let mail = moto.ses_messages().await;
    assert_eq!(
        copies(&mail),
        BTreeMap::from([(
            (
                OWNER.to_owned(),
                mail[0].subject.clone().unwrap_or_default()
            ),
            1
        )]),
        "{mail:#?}"
    );
    let email = &mail[0];
    assert_eq!(email.source, SENDER);
    let text = email.text.as_deref().unwrap_or_default();
    assert!(text.contains(&format!("Account:    {account}")), "{text}");
    assert!(text.contains(&format!("Region:     {region}")), "{text}");
    assert!(
        text.contains(&who_arn),
        "the email names who did it: {text}"
    );
    assert!(text.contains("3389"), "{text}");

    // Delivered again (the queue's at-least-once), nothing more is sent.
    put(
        &moto,
        account,
        region,
        "aws.config",
        "Config Configuration Item Change",
        &item,
    )
    .await;
    let again = drain(&sqs, &queue_url, &queue_arn).await;
    batch(again, &settings, &services).await;
    assert_eq!(moto.ses_messages().await.len(), 1);

    // An account outside the list: its events are refused by the handler, heartbeat and change.
    let mut foreign = item.clone();
    foreign["configurationItem"]["awsAccountId"] = json!(OUTSIDER);
    foreign["configurationItem"]["awsRegion"] = json!(REGION);
    let outsider = json!({
        "version": "0", "id": "outsider-1", "detail-type": "Config Configuration Item Change",
        "source": "aws.config", "account": OUTSIDER, "region": REGION, "time": "2026-12-05T10:00:00Z",
        "resources": [], "detail": foreign,
    });
    let beat = json!({
        "version": "0", "id": "outsider-2", "detail-type": sgwatch_handler::spokes::HEARTBEAT_DETAIL_TYPE,
        "source": sgwatch_handler::spokes::HEARTBEAT_SOURCE, "account": OUTSIDER, "region": REGION,
        "time": "2026-12-05T10:00:00Z", "resources": [],
        "detail": {"account": OUTSIDER, "region": REGION, "stack": "sgwatch-spoke"},
    });
    let refused = batch(
        [outsider, beat]
            .iter()
            .enumerate()
            .map(|(i, b)| json!({"messageId": format!("o-{i}"), "body": b.to_string(), "eventSource": "aws:sqs"}))
            .collect(),
        &settings,
        &services,
    )
    .await;
    assert_eq!(
        (refused.skipped, refused.heartbeats, refused.failed),
        (2, 0, 0),
        "{refused:?}"
    );
    assert_eq!(moto.ses_messages().await.len(), 1);

    // Account 3 / region 1's recorder is stopped.
    aws_sdk_config::Client::new(&moto.sdk_config_in_account(MEMBERS[2], REGIONS[0]).await)
        .stop_configuration_recorder()
        .configuration_recorder_name("default")
        .send()
        .await
        .unwrap();

    // Heartbeats: every spoke beats (the schedule's PutEvents, put straight on the hub's bus),
    // and the hub looks at what each region shows it through the account's reader role.
    // Account 2 / region 1's last beat was four hours ago, and then its spoke is torn down.
    for m in MEMBERS {
        for r in REGIONS {
            let when = (m == MEMBERS[1] && r == REGIONS[0])
                .then(|| SystemTime::now() - Duration::from_secs(4 * 3600));
            let detail = json!({"account": m, "region": r, "stack": "sgwatch-spoke"});
            put_at(
                &moto,
                m,
                r,
                sgwatch_handler::spokes::HEARTBEAT_SOURCE,
                sgwatch_handler::spokes::HEARTBEAT_DETAIL_TYPE,
                &detail,
                Some(&bus),
                when,
            )
            .await;
        }
    }
    let beats = drain(&sqs, &queue_url, &queue_arn).await;
    let r = batch(beats, &settings, &services).await;
    assert_eq!((r.heartbeats, r.failed), (6, 0), "{r:?}");
    let down = sgwatch_as(
        &programs,
        &moto,
        REGIONS[0],
        Some(&keys[MEMBERS[1]]),
        &["spoke", "teardown", "--yes"],
    )
    .await
    .unwrap();
    ok(&down);

    // The others still reach the hub.
    put(
        &moto,
        MEMBERS[0],
        REGIONS[1],
        "aws.config",
        "Config Configuration Item Change",
        &item,
    )
    .await;
    assert_eq!(drain(&sqs, &queue_url, &queue_arn).await.len(), 1);
    put(
        &moto,
        MEMBERS[1],
        REGIONS[0],
        "aws.config",
        "Config Configuration Item Change",
        &item,
    )
    .await;
    assert!(
        drain(&sqs, &queue_url, &queue_arn).await.is_empty(),
        "the torn-down spoke still forwards"
    );

    // hub status names account 2 / region 1 as blind first (silent), then account 3 / region 1
    // (its recorder is off), then both regions of account 1 (no trail feeds the actor feed), each
    // reason's in the order of account and region.
    let status = sgwatch_as(
        &programs,
        &moto,
        REGION,
        None,
        &["hub", "status", "--output", "json"],
    )
    .await
    .unwrap();
    let s: Value = serde_json::from_str(&status.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", status.stdout, status.stderr));
    let spokes = s["coverage"]["spokes"].as_array().unwrap();
    let blind: Vec<(&str, &str, &str)> = spokes
        .iter()
        .filter(|c| !c["blind"].is_null())
        .map(|c| {
            (
                c["account"].as_str().unwrap(),
                c["region"].as_str().unwrap(),
                c["blind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        blind,
        vec![
            (MEMBERS[1], REGIONS[0], "no heartbeat for 4 h"),
            (MEMBERS[2], REGIONS[0], "recorder off"),
            (
                MEMBERS[0],
                REGIONS[1],
                "no logging trail for the actor feed"
            ),
            (
                MEMBERS[0],
                REGIONS[0],
                "no logging trail for the actor feed"
            ),
        ],
        "{s:#}"
    );
    assert_eq!(s["coverage"]["blind"], 4, "{s:#}");
    assert_eq!(spokes.len(), 6, "{s:#}");
    // moto's account is in no organization (its ListAccounts answers none): the accounts are the
    // hub's members.
    assert_eq!(s["coverage"]["accounts_from"], "member-accounts", "{s:#}");
    assert!(!status.success(), "a blind spoke fails hub status");
    let text = sgwatch_as(&programs, &moto, REGION, None, &["hub", "status"])
        .await
        .unwrap();
    assert!(
        text.stdout
            .contains(&format!("{} {}", MEMBERS[1], REGIONS[0]))
            && text.stdout.contains("BLIND (no heartbeat for 4 h)")
            && text.stdout.contains("BLIND (recorder off)")
            && text
                .stdout
                .contains("coverage of the hub's member accounts: 6 account/region(s), 4 blind"),
        "{}",
        text.stdout
    );

    // The hub's hourly look tells the fallback recipient of the silent spoke, once.
    let check =
        json!({"source": "sgwatch.hub", "detail-type": "sgwatch coverage check", "detail": {}});
    let told = handle(&check, &settings, &services).await.unwrap();
    assert_eq!(told.sent, 1, "{told:?}");
    let again = handle(&check, &settings, &services).await.unwrap();
    assert_eq!((again.sent, again.skipped), (0, 1), "{again:?}");
    let mail = moto.ses_messages().await;
    let silent: Vec<_> = mail.iter().filter(|m| m.destinations == [SECOPS]).collect();
    assert_eq!(silent.len(), 1, "{mail:#?}");
    assert_eq!(
        silent[0].subject.as_deref(),
        Some(format!(
            "[sgwatch] spoke {}/{} silent for 4 h: its changes reach no one",
            MEMBERS[1], REGIONS[0]
        ))
        .as_deref()
    );
}

/// An event the hub's function failed on every receive waits in the hub's dead-letter queue;
/// `redrive` lists it as such, trusts it, and replays it to the function as the event source
/// mapping would, one SQS record of the hub's queue: the owners get their email once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_replays_what_failed_every_receive_on_the_hub_queue() {
    let programs = Programs::build_for("hub-redrive");
    let moto = Moto::start();
    let hub = moto.sdk_config(None).await;
    moto.verify_sender(&hub, SENDER).await;
    let zip = programs.handler_zip().unwrap();
    let installed = sgwatch_as(
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
            zip.to_str().unwrap(),
            "--arch",
            "x86_64",
            "--actor-feed",
            "off",
            "--member-accounts",
            MEMBERS[0],
            "--output",
            "json",
        ],
    )
    .await
    .unwrap();
    ok(&installed);
    let report: Value = serde_json::from_str(&installed.stdout).unwrap();
    let bus = report["hub_bus_arn"].as_str().unwrap().to_owned();

    // Department B opens RDP on team 1's group; the Config item reaches the hub's queue (put on
    // the hub's bus as account 1's spoke forwards it).
    let (account, region) = (MEMBERS[0], REGION);
    let member = moto.sdk_config_in_account(account, region).await;
    let tags = [("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)];
    let ec2 = aws_sdk_ec2::Client::new(&member);
    let group = fixture::security_group(&ec2, "team-1-web", "team 1's web servers", &tags)
        .await
        .unwrap();
    let item = organization::rdp_opened(&moto, (account, region), &group)
        .await
        .unwrap();
    let kind = "Config Configuration Item Change";
    put_at(
        &moto,
        account,
        region,
        "aws.config",
        kind,
        &item,
        Some(&bus),
        None,
    )
    .await;

    // The function fails it on each of the queue's five receives (maxReceiveCount): SQS moves it
    // to the dead-letter queue on the next.
    let queue = HubQueue::find(&hub).await.unwrap();
    for _ in 0..5 {
        let got = queue
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let message = got
            .messages()
            .first()
            .expect("the event is in the hub's queue");
        queue
            .sqs
            .change_message_visibility()
            .queue_url(&queue.url)
            .receipt_handle(message.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let sixth = queue
        .sqs
        .receive_message()
        .queue_url(&queue.url)
        .send()
        .await
        .unwrap();
    assert!(sixth.messages().is_empty(), "{sixth:?}");

    // status counts it with what waits to be replayed.
    let status = sgwatch_as(&programs, &moto, REGION, None, &["status"])
        .await
        .unwrap();
    assert!(
        status
            .stdout
            .contains("1 events parked in the failure queue; replay with `sgwatch redrive --yes`"),
        "{}",
        status.stdout
    );
    let listed = sgwatch_as(&programs, &moto, REGION, None, &["redrive"])
        .await
        .unwrap();
    ok(&listed);
    assert!(
        listed
            .stdout
            .contains("1 message(s) parked in the failure queue")
            && listed.stdout.contains("or the hub's dead-letter queue"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains(&group)
            && listed
                .stdout
                .contains("failed every receive on the hub's queue"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("1 can be replayed"),
        "{}",
        listed.stdout
    );
    assert!(moto.ses_messages().await.is_empty());

    let env = sgwatch_tests::inventory::deployed_function_env(&hub)
        .await
        .unwrap();
    let function = sgwatch_tests::emulator::LambdaEmulator::start(&programs, &moto, &env)
        .await
        .unwrap();
    let replay = sgwatch_as(
        &programs,
        &moto,
        REGION,
        None,
        &[
            "redrive",
            "--yes",
            "--function-name",
            &function.function_name,
            "--lambda-endpoint-url",
            &function.endpoint,
            "--output",
            "json",
        ],
    )
    .await
    .unwrap();
    ok(&replay);
    let replayed: Value = serde_json::from_str(&replay.stdout).unwrap();
    let messages = replayed["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{replayed:#}");
    assert_eq!(messages[0]["kind"], "hub-undelivered", "{replayed:#}");
    assert_eq!(
        messages[0]["result"],
        "replayed",
        "{replayed:#}\n{}",
        function.log()
    );
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, [OWNER]);
    let text = mail[0].text.as_deref().unwrap_or_default();
    assert!(text.contains(&format!("Account:    {account}")), "{text}");
    assert!(text.contains("3389"), "{text}");

    // The dead-letter queue is empty, and a second redrive finds nothing and sends nothing.
    let again = sgwatch_as(&programs, &moto, REGION, None, &["redrive", "--yes"])
        .await
        .unwrap();
    ok(&again);
    assert!(
        again.stdout.contains("nothing is parked"),
        "{}",
        again.stdout
    );
    assert_eq!(moto.ses_messages().await.len(), 1);
}

/// A member region with no AWS Config recorder: `spoke install` makes one as `install` does
/// (security groups, continuously, into the spoke's own bucket), a re-run changes nothing, and
/// teardown removes the recorder and channel it made and keeps the history bucket.
#[tokio::test]
async fn spoke_install_makes_the_recorder_a_region_lacks_and_teardown_removes_it() {
    let programs = Programs::build_for("spoke-recorder");
    let moto = Moto::start();
    let (account, region) = (MEMBERS[0], REGION);
    let keys = moto.keys_in(account).await;
    let member = moto.sdk_config_in_account(account, region).await;
    let bus = format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/sgwatch-hub");
    let role = format!("arn:aws:iam::{ACCOUNT}:role/sgwatch-HandlerRole-HUB");
    let spoke = ["spoke", "install", "--hub", &bus, "--hub-role", &role];
    let config = aws_sdk_config::Client::new(&member);
    assert!(config
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap()
        .configuration_recorders()
        .is_empty());

    let plan = sgwatch_as(
        &programs,
        &moto,
        region,
        Some(&keys),
        &["spoke", "plan", "--hub", &bus, "--hub-role", &role],
    )
    .await
    .unwrap();
    ok(&plan);
    assert!(
        plan.stdout
            .contains("create configuration recorder sgwatch recording AWS::EC2::SecurityGroup"),
        "{}",
        plan.stdout
    );
    let installed = sgwatch_as(&programs, &moto, region, Some(&keys), &spoke)
        .await
        .unwrap();
    ok(&installed);
    for line in [
        "create the spoke's stack",
        "create configuration recorder sgwatch recording AWS::EC2::SecurityGroup",
        "create delivery channel sgwatch → s3://",
        "start recording with recorder sgwatch",
    ] {
        assert!(
            installed.stdout.contains(line),
            "{line}:\n{}",
            installed.stdout
        );
    }

    // What Config shows: the recorder records security groups as the stack's role, continuously,
    // into the stack's bucket, with no topic.
    let cf = aws_sdk_cloudformation::Client::new(&member);
    let outputs: BTreeMap<String, String> = cf
        .describe_stacks()
        .stack_name("sgwatch-spoke")
        .send()
        .await
        .unwrap()
        .stacks()[0]
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap().to_owned(),
                o.output_value().unwrap().to_owned(),
            )
        })
        .collect();
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap();
    let recorder = &recorders.configuration_recorders()[0];
    assert_eq!(recorder.name(), Some("sgwatch"));
    assert_eq!(
        recorder.role_arn(),
        outputs.get("ConfigRoleArn").map(String::as_str)
    );
    let types: Vec<&str> = recorder
        .recording_group()
        .unwrap()
        .resource_types()
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(types, ["AWS::EC2::SecurityGroup"]);
    let status = config
        .describe_configuration_recorder_status()
        .send()
        .await
        .unwrap();
    assert!(status.configuration_recorders_status()[0].recording());
    let channels = config.describe_delivery_channels().send().await.unwrap();
    let channel = &channels.delivery_channels()[0];
    assert_eq!(channel.name(), Some("sgwatch"));
    assert_eq!(
        channel.s3_bucket_name(),
        outputs.get("ConfigBucketName").map(String::as_str)
    );
    assert_eq!(channel.sns_topic_arn(), None);

    let again = sgwatch_as(&programs, &moto, region, Some(&keys), &spoke)
        .await
        .unwrap();
    ok(&again);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
    let checked = sgwatch_as(&programs, &moto, region, Some(&keys), &["spoke", "status"])
        .await
        .unwrap();
    ok(&checked);

    let down = sgwatch_as(
        &programs,
        &moto,
        region,
        Some(&keys),
        &["spoke", "teardown", "--yes"],
    )
    .await
    .unwrap();
    ok(&down);
    assert!(
        down.stdout
            .contains("removed configuration recorder sgwatch and delivery channel sgwatch"),
        "{}",
        down.stdout
    );
    let bucket = outputs["ConfigBucketName"].clone();
    assert!(
        down.stderr.contains(&format!("kept bucket {bucket}")),
        "{}",
        down.stderr
    );
    assert!(config
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap()
        .configuration_recorders()
        .is_empty());
    assert!(config
        .describe_delivery_channels()
        .send()
        .await
        .unwrap()
        .delivery_channels()
        .is_empty());
    sgwatch_handler::aws::s3_client(&member)
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the history bucket {bucket} is gone: {e:?}"));
}

/// IAM returns policy documents URL-encoded.
fn urlencoding_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
