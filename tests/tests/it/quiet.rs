//! Quiet by design, against moto, in process: a trusted pipeline's small change waits for the
//! daily digest, its CRITICAL change does not; a group's quiet period holds changes until it
//! ends, and setting it is told at once; a digest that cannot be sent keeps every line for the
//! retry. Time is the handler's clock, set by the test.

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::operation::RequestId;
use aws_sdk_ec2::types::{IpPermission, IpRange};
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use sgwatch_handler::context::Clock;
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_synth::cloudtrail::{self, Call, Identity};
use sgwatch_synth::{self as synth, Capture};
use sgwatch_tests::emulator::{Moto, SentEmail, ACCOUNT, REGION};
use sgwatch_tests::fixture::{self, open, security_group, SENDER, TABLE};

const OWNER: &str = "dept-a@corp.example";
const DEPT_B: &str = "arn:aws:iam::123456789012:user/dept-b-admin";
const PIPELINE: &str = "arn:aws:iam::123456789012:role/deploy-pipeline";
const TRUSTED: &str = "arn:aws:iam::123456789012:role/deploy-*";

/// The scheduled event that sends the digests, as the stack's schedule gives it.
fn digest_due() -> Value {
    json!({"source": "sgwatch.digest", "detail-type": "sgwatch digest", "detail": {}})
}

struct World {
    moto: Moto,
    ec2: aws_sdk_ec2::Client,
    settings: Settings,
    services: Services,
    group: String,
    config: aws_config::SdkConfig,
    wake_url: String,
    /// Each notification given to the handler, to give it again as SNS may.
    notified: std::sync::Mutex<Vec<Value>>,
}

/// Now, as the handler's clock starts.
fn start() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn rfc3339(secs: u64) -> String {
    DateTime::from_secs(secs as i64)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap()
}

async fn world(verify_sender: bool, group_tags: &[(&str, &str)]) -> World {
    world_with(verify_sender, group_tags, &[]).await
}

async fn world_with(
    verify_sender: bool,
    group_tags: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> World {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    if verify_sender {
        moto.verify_sender(&config, SENDER).await;
    }
    fixture::idempotency_table(&config, TABLE).await;
    let wake_url = fixture::queue(&config, "sgwatch-wake").await;
    let mut vars = vec![
        ("SGWATCH_TRUSTED_PRINCIPALS", TRUSTED),
        ("SGWATCH_EARLY_WARNING", "off"),
    ];
    vars.extend_from_slice(extra);
    let with_wake: Vec<(&str, &str)> = vars
        .iter()
        .copied()
        .chain(
            extra
                .iter()
                .any(|(k, _)| {
                    *k == "SGWATCH_COALESCE_SECONDS" || *k == "SGWATCH_MAX_PER_GROUP_HOUR"
                })
                .then_some(("SGWATCH_WAKE_QUEUE_URL", wake_url.as_str())),
        )
        .collect();
    let settings = fixture::settings(&with_wake);
    let mut services = Services::new(&config, &settings);
    services.clock = Clock::fixed(start());
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let mut tags = vec![("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)];
    tags.extend_from_slice(group_tags);
    let group = security_group(&ec2, "dept-a-web", "Department A's web servers", &tags)
        .await
        .unwrap();
    open(&ec2, &group, 80).await.unwrap();
    World {
        moto,
        ec2,
        settings,
        services,
        group,
        config,
        wake_url,
        notified: std::sync::Mutex::new(Vec::new()),
    }
}

/// A rule from `cidr` on `port`.
fn rule(port: i32, cidr: &str) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip(cidr).build())
        .build()
}

impl World {
    /// `who` adds `permissions`; the handler gets the call's CloudTrail event (the actor feed),
    /// then AWS Config's notification of the change. The handler's report.
    async fn added_by(&self, who: &str, permissions: &[IpPermission], id: &str) -> Value {
        let before = synth::describe(&self.ec2, &self.group).await.unwrap();
        let at = DateTime::from(SystemTime::now());
        let out = self
            .ec2
            .authorize_security_group_ingress()
            .group_id(&self.group)
            .set_ip_permissions(Some(permissions.to_vec()))
            .send()
            .await
            .unwrap();
        let call = Call {
            event_name: "AuthorizeSecurityGroupIngress".into(),
            request_parameters: cloudtrail::authorize_ingress_parameters(&self.group, permissions),
            response_elements: json!({"_return": true}),
            request_id: out.request_id().unwrap_or("moto").to_owned(),
            region: REGION.into(),
            time: at,
        };
        let identity = Identity {
            arn: who.into(),
            account: ACCOUNT.into(),
            source_ip: "203.0.113.7".into(),
            user_agent: "aws-cli/2.15.30".into(),
        };
        let feed = cloudtrail::api_call_event(&call, &identity).unwrap();
        handle(&feed, &self.settings, &self.services).await.unwrap();
        let after = synth::describe(&self.ec2, &self.group).await.unwrap();
        self.notify(&before, &after, id).await
    }

    /// Tags the group `key=value` (a change AWS Config reports with no call in the feed).
    async fn tagged(&self, key: &str, value: &str, id: &str) -> Value {
        let before = synth::describe(&self.ec2, &self.group).await.unwrap();
        self.ec2
            .create_tags()
            .resources(&self.group)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let after = synth::describe(&self.ec2, &self.group).await.unwrap();
        self.notify(&before, &after, id).await
    }

    async fn notify(&self, before: &Value, after: &Value, id: &str) -> Value {
        let capture = Capture {
            account: ACCOUNT.into(),
            region: REGION.into(),
            time: DateTime::from(SystemTime::now() + Duration::from_secs(2)),
        };
        let item = synth::item_change(Some(before), Some(after), &capture).unwrap();
        let event = fixture::sns(&item, id);
        self.notified.lock().unwrap().push(event.clone());
        self.again(&event).await
    }

    /// `event` to the handler; its report.
    async fn again(&self, event: &Value) -> Value {
        let report = handle(event, &self.settings, &self.services)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        serde_json::to_value(report).unwrap()
    }

    /// The stack's daily schedule fires; the handler's report, or its error.
    async fn digest_due(&self) -> Result<Value, String> {
        handle(&digest_due(), &self.settings, &self.services)
            .await
            .map(|r| serde_json::to_value(r).unwrap())
            .map_err(|e| e.to_string())
    }

    async fn owner_mail(&self) -> Vec<SentEmail> {
        self.moto
            .ses_messages()
            .await
            .into_iter()
            .filter(|m| m.destinations == [OWNER])
            .collect()
    }

    /// The lines held for the owner, as stored.
    async fn held(&self) -> Vec<String> {
        let table = self.services.dedupe.as_ref().unwrap();
        sgwatch_handler::held::held(table, OWNER).await.unwrap()
    }
}

#[tokio::test]
async fn a_trusted_pipelines_small_change_waits_for_the_digest_and_its_critical_one_does_not() {
    let w = world(true, &[]).await;
    let report = w
        .added_by(PIPELINE, &[rule(22, "10.0.0.0/8")], "config-pipeline-ssh")
        .await;
    assert_eq!(report["held"], 1, "{report}");
    assert_eq!(report["sent"], 0, "{report}");
    assert!(w.owner_mail().await.is_empty());
    assert_eq!(w.held().await.len(), 1);

    // The same pipeline opens RDP to the world: CRITICAL is never delayed.
    let report = w
        .added_by(PIPELINE, &[rule(3389, "0.0.0.0/0")], "config-pipeline-rdp")
        .await;
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let text = mail[0].text.as_deref().unwrap();
    assert!(mail[0]
        .subject
        .as_deref()
        .unwrap()
        .starts_with("[sgwatch CRITICAL]"));
    assert!(
        text.contains(&format!("Made by a trusted principal (pattern {TRUSTED}).")),
        "{text}"
    );

    // A redelivery of the held change holds nothing twice.
    let first = w.notified.lock().unwrap()[0].clone();
    let report = w.again(&first).await;
    assert_eq!(report["skipped"], 1, "{report}");
    assert_eq!(w.held().await.len(), 1);

    // The schedule fires: one digest, with the held change's line.
    let report = w.digest_due().await.unwrap();
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 2, "{mail:#?}");
    let digest = &mail[1];
    assert_eq!(
        digest.subject.as_deref(),
        Some("[sgwatch digest] 1 change to 1 security group")
    );
    let text = digest.text.as_deref().unwrap();
    assert!(
        text.contains(&format!("{} (dept-a-web) in {ACCOUNT}/{REGION}", w.group)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "LOW +ingress tcp/22 from 10.0.0.0/8, by {PIPELINE}"
        )) && text.contains(&format!(
            "(made by a trusted principal (pattern {TRUSTED}) and below HIGH)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("#SecurityGroup:groupId={}", w.group)),
        "{text}"
    );
    // Sent, the lines are gone: the next day's schedule sends nothing.
    assert!(w.held().await.is_empty());
    let report = w.digest_due().await.unwrap();
    assert_eq!(report["sent"], 0, "{report}");
    assert_eq!(w.owner_mail().await.len(), 2);
}

#[tokio::test]
async fn a_quiet_period_holds_changes_until_it_ends_and_setting_it_is_told_at_once() {
    let w = world(true, &[]).await;
    let t0 = w.services.clock.now_secs();
    let until = rfc3339(t0 + 2 * 3600);
    // Department B quiets Department A's group: Department A hears of it at once.
    let report = w
        .tagged("sgwatch:quiet-until", &until, "config-quiet")
        .await;
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    let text = mail[0].text.as_deref().unwrap();
    assert!(
        text.contains(&format!("This group is quiet until {until} (sgwatch:quiet-until): changes below CRITICAL are held until then and sent as a digest.")),
        "{text}"
    );

    // During the quiet: MySQL open to the world (HIGH) is held; RDP (CRITICAL) is not.
    let report = w
        .added_by(DEPT_B, &[rule(3306, "0.0.0.0/0")], "config-mysql")
        .await;
    assert_eq!(report["held"], 1, "{report}");
    let report = w
        .added_by(DEPT_B, &[rule(3389, "0.0.0.0/0")], "config-rdp")
        .await;
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(w.owner_mail().await.len(), 2);

    // An hour in, the day's digest holds nothing due: the quiet has not ended.
    w.services.clock.set(t0 + 3600);
    let report = w.digest_due().await.unwrap();
    assert_eq!(report["sent"], 0, "{report}");
    assert_eq!(w.owner_mail().await.len(), 2);
    assert_eq!(w.held().await.len(), 1);

    // After it, the held change goes in the digest.
    w.services.clock.set(t0 + 3 * 3600);
    let report = w.digest_due().await.unwrap();
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 3, "{mail:#?}");
    let text = mail[2].text.as_deref().unwrap();
    assert!(
        text.contains(&format!(
            "HIGH +ingress tcp/3306 from 0.0.0.0/0, by {DEPT_B}"
        )) && text.contains(&format!(
            "(the group is quiet until {until} (sgwatch:quiet-until))"
        )),
        "{text}"
    );
    assert!(w.held().await.is_empty());
}

#[tokio::test]
async fn a_quiet_period_more_than_30_days_ahead_is_refused_and_told() {
    let w = world(true, &[]).await;
    let t0 = w.services.clock.now_secs();
    let until = rfc3339(t0 + 40 * 24 * 3600);
    w.tagged("sgwatch:quiet-until", &until, "config-quiet-far")
        .await;
    let report = w
        .added_by(DEPT_B, &[rule(3306, "0.0.0.0/0")], "config-mysql")
        .await;
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 2, "{mail:#?}");
    for m in &mail {
        let text = m.text.as_deref().unwrap();
        assert!(
            text.contains(&format!("sgwatch:quiet-until asks for quiet until {until}, more than 30 days ahead: refused, so every change is told as usual.")),
            "{text}"
        );
    }
    assert!(w.held().await.is_empty());
}

#[tokio::test]
async fn a_digest_that_cannot_be_sent_keeps_every_line_for_the_retry() {
    // SES refuses the sender until it is verified: holding needs no SES, the digest does.
    let w = world(false, &[]).await;
    w.added_by(PIPELINE, &[rule(22, "10.0.0.0/8")], "config-ssh")
        .await;
    w.added_by(PIPELINE, &[rule(8080, "10.1.0.0/16")], "config-8080")
        .await;
    assert_eq!(w.held().await.len(), 2);
    let err = w.digest_due().await.unwrap_err();
    assert!(
        err.contains("digests not sent, kept for the retry"),
        "{err}"
    );
    assert_eq!(
        w.held().await.len(),
        2,
        "nothing is lost when the digest fails"
    );
    assert!(w.owner_mail().await.is_empty());

    // Lambda's retry, once SES accepts the sender: one digest with both.
    w.moto.verify_sender(&w.config, SENDER).await;
    let report = w.digest_due().await.unwrap();
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(
        mail[0].subject.as_deref(),
        Some("[sgwatch digest] 2 changes to 1 security group")
    );
    assert!(w.held().await.is_empty());
}

/// `install --digest low --digest-at 18:30 --digest-timezone Europe/Paris` deploys the handler
/// with the digest level and a daily schedule at that time and zone that invokes it, through a
/// role that may invoke only it; a re-run without the flags keeps them; a time of day that is
/// none is refused before anything is deployed.
#[tokio::test(flavor = "multi_thread")]
async fn install_with_a_digest_deploys_its_daily_schedule_and_keeps_it() {
    use sgwatch_tests::cli::{sgwatch, Programs};
    use sgwatch_tests::inventory::deployed_function_env;

    let programs = Programs::build_for("quiet-install");
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let zip = programs.handler_zip().unwrap().display().to_string();
    let install = |extra: &[&str]| {
        let mut args = vec![
            "install",
            "--sender",
            SENDER,
            "--handler-zip",
            &zip,
            "--arch",
            "x86_64",
            "--yes",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| {
        let (programs, moto) = (&programs, &moto);
        async move {
            sgwatch(
                programs,
                moto,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await
            .unwrap()
        }
    };
    let refused = run(install(&["--coalesce", "20m"])).await;
    assert!(!refused.success());
    assert!(
        refused
            .stderr
            .contains("\"20m\" is not a window from 0 to 15m"),
        "{}",
        refused.stderr
    );
    let refused = run(install(&["--digest-at", "25:00"])).await;
    assert!(!refused.success());
    assert!(
        refused
            .stderr
            .contains("\"25:00\" is not a time of day as HH:MM, e.g. 08:00"),
        "{}",
        refused.stderr
    );
    let cf = aws_sdk_cloudformation::Client::new(&config);
    assert!(cf
        .describe_stacks()
        .send()
        .await
        .unwrap()
        .stacks()
        .is_empty());

    let first = run(install(&[
        "--coalesce",
        "2m",
        "--max-per-group-hour",
        "5",
        "--digest",
        "low",
        "--digest-at",
        "18:30",
        "--digest-timezone",
        "Europe/Paris",
    ]))
    .await;
    assert!(first.success(), "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.contains(
            "coalescing: a group's changes within 120 s go as one email (CRITICAL at once)"
        ),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("daily digest at 18:30 Europe/Paris: LOW and below, trusted principals' changes below HIGH, and quiet periods' below CRITICAL"),
        "{}",
        first.stdout
    );
    // Again without the flags: as deployed.
    let again = run(install(&[])).await;
    assert!(again.success(), "{}\n{}", again.stdout, again.stderr);
    assert!(
        again
            .stdout
            .contains("daily digest at 18:30 Europe/Paris: LOW and below"),
        "{}",
        again.stdout
    );

    let env = deployed_function_env(&config).await.unwrap();
    assert_eq!(env["SGWATCH_DIGEST"], "low");
    assert_eq!(env["SGWATCH_COALESCE_SECONDS"], "120");
    assert_eq!(env["SGWATCH_MAX_PER_GROUP_HOUR"], "5");
    // The wake queue exists, parks in the failure queue, and feeds the handler.
    let sqs = aws_sdk_sqs::Client::new(&config);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&env["SGWATCH_WAKE_QUEUE_URL"])
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    let redrive: Value =
        serde_json::from_str(&attributes[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy])
            .unwrap();
    assert!(
        redrive["deadLetterTargetArn"].as_str().is_some_and(
            |a| a.ends_with(env["SGWATCH_FAILURE_QUEUE_URL"].rsplit('/').next().unwrap())
        ),
        "{redrive}"
    );
    let queue_arn = &attributes[&aws_sdk_sqs::types::QueueAttributeName::QueueArn];
    let mappings = aws_sdk_lambda::Client::new(&config)
        .list_event_source_mappings()
        .event_source_arn(queue_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(mappings.event_source_mappings().len(), 1, "{mappings:?}");
    // moto answers no DescribeStackResource for this stack: the schedule is the account's one.
    let listed = moto.scheduler_get("/schedules").await;
    let names: Vec<&str> = listed["Schedules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["Name"].as_str())
        .collect();
    assert!(
        names.len() == 1 && names[0].contains("DigestSchedule"),
        "{listed}"
    );
    let schedule = moto
        .scheduler_get(&format!("/schedules/{}", names[0]))
        .await;
    assert_eq!(schedule["ScheduleExpression"], "cron(30 18 * * ? *)");
    assert_eq!(schedule["ScheduleExpressionTimezone"], "Europe/Paris");
    assert_eq!(schedule["State"], "ENABLED");
    let target = &schedule["Target"];
    let function = aws_sdk_lambda::Client::new(&config)
        .get_function_configuration()
        .function_name("sgwatch-handler")
        .send()
        .await
        .unwrap();
    assert_eq!(target["Arn"].as_str(), function.function_arn());
    assert!(sgwatch_handler::digest::is_due(
        &serde_json::from_str(target["Input"].as_str().unwrap()).unwrap()
    ));
    // Its role may invoke the handler and nothing else.
    let role = target["RoleArn"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let iam = aws_sdk_iam::Client::new(&config);
    let policy = iam
        .get_role_policy()
        .role_name(role)
        .policy_name("invoke-handler")
        .send()
        .await
        .unwrap();
    let doc: Value =
        serde_json::from_str(&crate::act::urlencoding_decode(policy.policy_document())).unwrap();
    let statements = doc["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{doc}");
    assert_eq!(statements[0]["Action"], "lambda:InvokeFunction");
    assert_eq!(statements[0]["Resource"].as_str(), function.function_arn());
}

impl World {
    /// The wake messages the handler queued, once SQS delivers them (after their delay), as the
    /// SQS event Lambda's event source mapping would give the handler.
    async fn wakes(&self, wait: Duration) -> Vec<Value> {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let deadline = std::time::Instant::now() + wait;
        let mut records = Vec::new();
        while std::time::Instant::now() < deadline {
            let got = sqs
                .receive_message()
                .queue_url(&self.wake_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for m in got.messages() {
                records.push(json!({"Records": [{
                    "messageId": m.message_id().unwrap(),
                    "eventSource": "aws:sqs",
                    "body": m.body().unwrap(),
                }]}));
                sqs.delete_message()
                    .queue_url(&self.wake_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
            if !records.is_empty() {
                break;
            }
        }
        records
    }

    /// The group's window, while it is open or holds changes.
    async fn window_item(&self) -> Option<Value> {
        let out = aws_sdk_dynamodb::Client::new(&self.config)
            .get_item()
            .table_name(TABLE)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!(
                    "window/{ACCOUNT}/{REGION}/{}",
                    self.group
                )),
            )
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        // A closed window's item stays, empty, until the table's TTL removes it.
        out.item()
            .filter(|i| i.contains_key("until") || i.contains_key("lines"))
            .map(|i| json!(format!("{i:?}")))
    }
}

#[tokio::test]
async fn a_burst_of_changes_goes_out_as_one_email_and_critical_is_not_delayed() {
    let w = world_with(true, &[], &[("SGWATCH_COALESCE_SECONDS", "2")]).await;
    let t0 = w.services.clock.now_secs();
    // Department B edits the group three times within the window, RDP among them.
    let report = w
        .added_by(DEPT_B, &[rule(8080, "0.0.0.0/0")], "config-8080")
        .await;
    assert_eq!(report["held"], 1, "{report}");
    w.added_by(DEPT_B, &[rule(3389, "0.0.0.0/0")], "config-rdp")
        .await;
    w.added_by(DEPT_B, &[rule(22, "10.0.0.0/8")], "config-ssh")
        .await;
    // CRITICAL went at once; the others wait for the window.
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert!(mail[0]
        .subject
        .as_deref()
        .unwrap()
        .starts_with("[sgwatch CRITICAL]"));
    assert!(w.window_item().await.is_some());

    // One wake, when the window ends (SQS delays it). Delivered before the handler's clock
    // reaches the end (as a clock skew would), it waits again.
    let wakes = w.wakes(Duration::from_secs(8)).await;
    assert_eq!(wakes.len(), 1, "{wakes:?}");
    let early = w.again(&wakes[0]).await;
    assert_eq!(early["skipped"], 1, "{early}");
    assert_eq!(w.owner_mail().await.len(), 1);

    w.services.clock.set(t0 + 3);
    let wakes = w.wakes(Duration::from_secs(8)).await;
    assert_eq!(wakes.len(), 1, "the early wake waits again: {wakes:?}");
    let report = w.again(&wakes[0]).await;
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 2, "{mail:#?}");
    let subject = mail[1].subject.as_deref().unwrap();
    assert_eq!(
        subject,
        format!(
            "[sgwatch CRITICAL] {} (dept-a-web) {ACCOUNT}/{REGION}: 3 changes within 2 s",
            w.group
        )
    );
    let text = mail[1].text.as_deref().unwrap();
    let (a, b, c) = (
        text.find("+ingress tcp/8080 from 0.0.0.0/0").unwrap(),
        text.find("+ingress tcp/3389 from 0.0.0.0/0").unwrap(),
        text.find("+ingress tcp/22 from 10.0.0.0/8").unwrap(),
    );
    assert!(a < b && b < c, "in the order they were made: {text}");
    let line = |rule: &str| text.lines().find(|l| l.contains(rule)).unwrap();
    assert!(
        line("tcp/3389").ends_with("(told at once: CRITICAL is never delayed)"),
        "{text}"
    );
    for rule in ["tcp/8080", "tcp/3389", "tcp/22"] {
        assert!(
            line(rule).contains(&format!(", by {DEPT_B} from 203.0.113.7")),
            "{text}"
        );
    }
    assert!(!line("tcp/8080").contains("told at once"), "{text}");
    // The window is closed; the same wake again sends nothing.
    assert!(w.window_item().await.is_none());
    let again = w.again(&wakes[0]).await;
    assert_eq!(again["sent"], 0, "{again}");
    assert_eq!(w.owner_mail().await.len(), 2);
}

#[tokio::test]
async fn a_coalesced_email_that_cannot_be_sent_keeps_its_changes_for_the_retry() {
    let w = world_with(false, &[], &[("SGWATCH_COALESCE_SECONDS", "1")]).await;
    let t0 = w.services.clock.now_secs();
    w.added_by(DEPT_B, &[rule(8080, "0.0.0.0/0")], "config-8080")
        .await;
    w.added_by(DEPT_B, &[rule(8443, "0.0.0.0/0")], "config-8443")
        .await;
    w.services.clock.set(t0 + 2);
    let wakes = w.wakes(Duration::from_secs(8)).await;
    assert_eq!(wakes.len(), 1, "{wakes:?}");
    // SES refuses the sender: the record fails, for the queue to deliver it again.
    let err = handle(&wakes[0], &w.settings, &w.services).await;
    let report = serde_json::to_value(err.unwrap()).unwrap();
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(
        report["batchItemFailures"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    assert!(
        w.window_item().await.is_some(),
        "nothing is lost when the send fails"
    );
    w.moto.verify_sender(&w.config, SENDER).await;
    let report = w.again(&wakes[0]).await;
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert!(mail[0]
        .subject
        .as_deref()
        .unwrap()
        .ends_with("2 changes within 1 s"));
}

#[tokio::test]
async fn past_the_rate_limit_changes_go_to_the_digest_and_the_hour_ends_with_a_summary() {
    let w = world_with(true, &[], &[("SGWATCH_MAX_PER_GROUP_HOUR", "2")]).await;
    // A minute into an hour.
    let hour = w.services.clock.now_secs() / 3600 * 3600;
    w.services.clock.set(hour + 60);
    let mut reports = Vec::new();
    for (i, port) in [8080, 8081, 8082, 8083].into_iter().enumerate() {
        let id = format!("config-{i}");
        reports.push(w.added_by(DEPT_B, &[rule(port, "0.0.0.0/0")], &id).await);
    }
    let sent: Vec<_> = reports
        .iter()
        .map(|r| (r["sent"].clone(), r["held"].clone()))
        .collect();
    assert_eq!(
        sent,
        [
            (json!(1), json!(null)),
            (json!(1), json!(null)),
            (json!(0), json!(1)),
            (json!(0), json!(1))
        ],
        "{reports:?}"
    );
    // CRITICAL is always sent.
    let rdp = w
        .added_by(DEPT_B, &[rule(3389, "0.0.0.0/0")], "config-rdp")
        .await;
    assert_eq!(rdp["sent"], 1, "{rdp}");
    assert_eq!(w.owner_mail().await.len(), 3);
    // The summary's wake waits on the queue for the end of the hour (SQS's 15 minutes at most,
    // then again).
    let attributes = aws_sdk_sqs::Client::new(&w.config)
        .get_queue_attributes()
        .queue_url(&w.wake_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attributes.attributes().unwrap()
            [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed],
        "1"
    );
    // The hour ends: one summary, with how many were held back.
    w.services.clock.set(hour + 3600);
    let wake = sgwatch_handler::digest::wake_event(&sgwatch_handler::digest::Wake {
        account: ACCOUNT.into(),
        region: REGION.into(),
        group: w.group.clone(),
        until: hour + 3600,
        summary_of_hour: Some(hour),
    });
    let report = w.again(&json!({"Records": [{"messageId": "wake-1", "eventSource": "aws:sqs", "body": wake.to_string()}]})).await;
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    assert_eq!(mail.len(), 4, "{mail:#?}");
    assert_eq!(
        mail[3].subject.as_deref(),
        Some(
            format!(
                "[sgwatch] {} {ACCOUNT}/{REGION}: 2 more changes held back for the digest",
                w.group
            )
            .as_str()
        )
    );
    let text = mail[3].text.as_deref().unwrap();
    assert!(
        text.contains("sgwatch emailed you 2 times about security group"),
        "{text}"
    );
    // And the held ones are in the digest.
    let report = w.digest_due().await.unwrap();
    assert_eq!(report["sent"], 1, "{report}");
    let mail = w.owner_mail().await;
    let digest = mail[4].text.as_deref().unwrap();
    assert!(
        digest.contains("+ingress tcp/8082 from 0.0.0.0/0")
            && digest.contains("+ingress tcp/8083 from 0.0.0.0/0")
            && digest.contains("the group passed 2 emails this hour"),
        "{digest}"
    );
}
