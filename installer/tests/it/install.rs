//! `sgwatch install`, `status` and `teardown` against a moto server, as a user runs them: the
//! real binary, checked through each service's own API (moto's CloudFormation reports types it
//! skips as created, so the stack status alone proves nothing).

use std::path::Path;
use std::process::Output;

use aws_config::SdkConfig;
use aws_sdk_config::types::RecordingGroup;
use sgwatch_tests::cli::{logged, text, writes};
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture::{self, scratch, SENDER};
use sgwatch_tests::inventory::{deployed_function_env, stack_output, Inventory};

/// Runs `sgwatch` against `endpoint`; returns its output and the calls it made.
fn sgwatch(endpoint: &str, dir: &Path, args: &[&str]) -> (Output, Vec<String>) {
    let log = dir.join(format!(
        "calls-{}.log",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let mut command = crate::sgwatch_at(endpoint);
    command.args(args);
    logged(command, &log)
}

fn install_args(zip: &Path) -> Vec<String> {
    [
        "install",
        "--sender",
        SENDER,
        "--handler-zip",
        zip.to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn run(moto: &Moto, dir: &Path, args: &[String]) -> (Output, Vec<String>) {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sgwatch(&moto.endpoint, dir, &refs)
}

/// Everything install could create.
async fn census(config: &SdkConfig) -> Inventory {
    Inventory::take(config).await.unwrap()
}

/// The tags of a group whose owners are told of its changes.
pub(crate) const WATCHED: &[(&str, &str)] =
    &[("NotifyOnChange", "Yes"), ("OwnerDL", "dept-a@example.com")];

/// The role an organisation's own Config recorder acts as.
const ORG_CONFIG_ROLE: &str = "arn:aws:iam::123456789012:role/org-config";

/// The account's Config recorders and delivery channels, as AWS Config describes them.
async fn recorders_and_channels(cfg: &aws_sdk_config::Client) -> (String, String) {
    let recorders = cfg.describe_configuration_recorders().send().await.unwrap();
    let channels = cfg.describe_delivery_channels().send().await.unwrap();
    (
        format!("{:?}", recorders.configuration_recorders()),
        format!("{:?}", channels.delivery_channels()),
    )
}

/// The organisation's own topic for Config's notifications, `org-config`; its ARN.
async fn org_topic(config: &SdkConfig) -> String {
    aws_sdk_sns::Client::new(config)
        .create_topic()
        .name("org-config")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn fresh_install_wires_every_resource_and_a_second_install_changes_nothing() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("fresh");
    let zip = fixture::fake_handler_zip(&dir);

    let (out, calls) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert!(!writes(&calls).is_empty());
    let shown = text(&out);
    assert!(
        shown.contains("CREATE_COMPLETE"),
        "stack events are shown: {shown}"
    );

    // The function, its settings and its role.
    let lambda = aws_sdk_lambda::Client::new(&config);
    let f = lambda
        .get_function_configuration()
        .function_name("sgwatch-handler")
        .send()
        .await
        .unwrap();
    assert_eq!(f.runtime().map(|r| r.as_str()), Some("provided.al2023"));
    assert_eq!(f.handler(), Some("bootstrap"));
    let env = f.environment().unwrap().variables().unwrap();
    assert_eq!(env["SGWATCH_SENDER"], SENDER);
    let function_arn = f.function_arn().unwrap().to_owned();
    let role_name = f.role().unwrap().rsplit('/').next().unwrap().to_owned();
    let iam = aws_sdk_iam::Client::new(&config);
    let policies = iam
        .list_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    let mut documents = String::new();
    for p in policies.policy_names() {
        let doc = iam
            .get_role_policy()
            .role_name(&role_name)
            .policy_name(p)
            .send()
            .await
            .unwrap();
        documents.push_str(doc.policy_document());
    }
    let documents = documents
        .replace("%3A", ":")
        .replace("%2A", "*")
        .replace("%22", "\"");
    assert!(
        documents.contains("ses:SendEmail") && documents.contains("ses:FromAddress"),
        "{documents}"
    );
    assert!(documents.contains("cloudtrail:LookupEvents"));

    // Config: recorder records security groups and records; channel → bucket and topic.
    let cfg = aws_sdk_config::Client::new(&config);
    let recorders = cfg.describe_configuration_recorders().send().await.unwrap();
    let recorder = &recorders.configuration_recorders()[0];
    let types: Vec<&str> = recorder
        .recording_group()
        .unwrap()
        .resource_types()
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(types, ["AWS::EC2::SecurityGroup"]);
    let status = cfg
        .describe_configuration_recorder_status()
        .send()
        .await
        .unwrap();
    assert!(status.configuration_recorders_status()[0].recording());
    let channels = cfg.describe_delivery_channels().send().await.unwrap();
    let channel = &channels.delivery_channels()[0];
    let bucket = channel.s3_bucket_name().unwrap();
    let topic = channel.sns_topic_arn().unwrap();
    let s3 = sgwatch_handler::aws::s3_client(&config);
    s3.head_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("the Config bucket exists");

    // Topic → subscription → function.
    let subs = aws_sdk_sns::Client::new(&config)
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
        .unwrap();
    assert!(
        subs.subscriptions()
            .iter()
            .any(|s| s.protocol() == Some("lambda") && s.endpoint() == Some(function_arn.as_str())),
        "{subs:?}"
    );
    // What SNS cannot deliver to the function is parked in the stack's failure queue.
    let sns = aws_sdk_sns::Client::new(&config);
    let queue_arn = failure_queue_arn(&config).await;
    assert_eq!(
        redrive_policy(&sns, topic, &function_arn).await,
        Some(format!(r#"{{"deadLetterTargetArn":"{queue_arn}"}}"#))
    );
    // The handler zip, by content hash.
    let listed = s3
        .list_objects_v2()
        .bucket("sgwatch-artifacts-123456789012-us-east-1")
        .prefix("handler/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1);

    // Again: "no changes" and not a single mutating call.
    let before = census(&config).await;
    let (out, calls) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "{}",
        text(&out)
    );
    assert_eq!(
        writes(&calls),
        Vec::<&String>::new(),
        "a no-op install made mutating calls"
    );
    assert_eq!(census(&config).await, before);

    // status: all ok, exit 0.
    let (out, _) = run(&moto, &dir, &["status".to_owned()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("FAIL"));
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l
            .starts_with("  ok    undeliverable → failure queue")
            && l.ends_with(&format!(
                "the subscription's redrive policy names {queue_arn}"
            ))),
        "{}",
        text(&out)
    );

    // The alarms on sgwatch failing are there; with no fallback recipient they email no one.
    assert!(
        String::from_utf8_lossy(&out.stdout).lines().any(|l| l
            .starts_with("  warn  alarms on sgwatch failing")
            && l.contains("sgwatch-failures-parked (an event parked in the failure queue)")
            && l.contains("sgwatch-function-errors")
            && l.contains("sgwatch-function-throttles")
            && l.contains("emails no one")),
        "{}",
        text(&out)
    );

    // moto has no policy simulator: status says it could not ask, and fails for nothing else.
    for role in ["handler role may act", "config role may deliver"] {
        assert!(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.starts_with(&format!("  warn  {role}"))
                    && l.ends_with("could not simulate: iam:SimulatePrincipalPolicy: HTTP 500")),
            "{}",
            text(&out)
        );
    }

    // The redrive policy removed by hand: status fails and says what to do; plan lists it;
    // install puts it back, and only it.
    let sub = subscription_arn(&sns, topic, &function_arn).await;
    sns.set_subscription_attributes()
        .subscription_arn(&sub)
        .attribute_name("RedrivePolicy")
        .attribute_value("")
        .send()
        .await
        .unwrap();
    let (out, _) = run(&moto, &dir, &["status".to_owned()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown
            .lines()
            .any(|l| l.contains("FAIL  undeliverable → failure queue")
                && l.contains("no redrive policy")
                && l.contains("run `sgwatch install`")),
        "{shown}"
    );
    let mut plan = install_args(&zip);
    plan[0] = "plan".to_owned();
    let (out, calls) = run(&moto, &dir, &plan);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "park what SNS cannot deliver from {topic} to the handler in the failure queue"
        )),
        "{}",
        text(&out)
    );
    assert!(!calls.iter().any(|c| c == "WRITE SetSubscriptionAttributes"));
    let (out, calls) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        writes(&calls),
        [&"WRITE SetSubscriptionAttributes".to_owned()],
        "{}",
        text(&out)
    );
    assert_eq!(
        redrive_policy(&sns, topic, &function_arn).await,
        Some(format!(r#"{{"deadLetterTargetArn":"{queue_arn}"}}"#))
    );
}

/// The stack's failure queue's ARN, from its output.
async fn failure_queue_arn(config: &SdkConfig) -> String {
    stack_output(config, "FailureQueueArn").await.unwrap()
}

async fn subscription_arn(sns: &aws_sdk_sns::Client, topic: &str, function_arn: &str) -> String {
    sns.list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await
        .unwrap()
        .subscriptions()
        .iter()
        .find(|s| s.endpoint() == Some(function_arn))
        .and_then(|s| s.subscription_arn())
        .expect("the handler's subscription")
        .to_owned()
}

/// The RedrivePolicy attribute of the function's subscription to `topic`, as SNS holds it.
async fn redrive_policy(
    sns: &aws_sdk_sns::Client,
    topic: &str,
    function_arn: &str,
) -> Option<String> {
    let sub = subscription_arn(sns, topic, function_arn).await;
    sns.get_subscription_attributes()
        .subscription_arn(sub)
        .send()
        .await
        .unwrap()
        .attributes()
        .and_then(|a| a.get("RedrivePolicy"))
        .filter(|p| !p.is_empty())
        .cloned()
}

#[tokio::test]
async fn teardown_leaves_the_account_as_it_found_it_and_is_safe_twice() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("census");
    let zip = fixture::fake_handler_zip(&dir);
    let before = census(&config).await;
    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(census(&config).await, before);

    let (out, _) = run(&moto, &dir, &["teardown".to_owned()]);
    assert!(
        !out.status.success(),
        "teardown without --yes on a pipe must refuse"
    );
    assert!(text(&out).contains("--yes"));
    let (out, _) = run(&moto, &dir, &["teardown".to_owned(), "--yes".to_owned()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(census(&config).await, before);
    let (out, calls) = run(&moto, &dir, &["teardown".to_owned(), "--yes".to_owned()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to remove"));
    assert_eq!(writes(&calls), Vec::<&String>::new());
    // status now says what is missing and fails.
    let (out, _) = run(&moto, &dir, &["status".to_owned()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("run `sgwatch install`"));
}

#[tokio::test]
async fn an_existing_recorder_and_channel_are_adopted_and_survive_teardown() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("adopt");
    let zip = fixture::fake_handler_zip(&dir);
    // An organisation baseline: its own bucket, topic, recorder and channel.
    let topic = org_topic(&config).await;
    let everything = RecordingGroup::builder()
        .all_supported(true)
        .include_global_resource_types(true)
        .build();
    fixture::recorder(&config, "org-baseline", ORG_CONFIG_ROLE, everything).await;
    fixture::delivery_channel(
        &config,
        "org-baseline",
        "org-channel",
        "org-config-history",
        &topic,
    )
    .await;
    let cfg = aws_sdk_config::Client::new(&config);
    let s3 = sgwatch_handler::aws::s3_client(&config);
    let config_before = recorders_and_channels(&cfg).await;

    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "subscribed the handler to the adopted channel's topic {topic}"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(recorders_and_channels(&cfg).await, config_before);
    let status = cfg
        .describe_configuration_recorder_status()
        .send()
        .await
        .unwrap();
    assert!(
        status.configuration_recorders_status()[0].recording(),
        "install never stops an adopted recorder"
    );
    let subs = aws_sdk_sns::Client::new(&config)
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    assert!(subs.subscriptions().iter().any(|s| s
        .endpoint()
        .is_some_and(|e| e.ends_with(":function:sgwatch-handler"))));
    // Its failures are parked in the stack's failure queue too.
    let function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sgwatch-handler";
    assert_eq!(
        redrive_policy(&aws_sdk_sns::Client::new(&config), &topic, function_arn).await,
        Some(format!(
            r#"{{"deadLetterTargetArn":"{}"}}"#,
            failure_queue_arn(&config).await
        ))
    );
    let (out, _) = run(&moto, &dir, &["status".to_owned()]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.contains("ok    undeliverable → failure queue")),
        "{}",
        text(&out)
    );

    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "{}",
        text(&out)
    );

    let (out, _) = run(&moto, &dir, &["teardown".to_owned(), "--yes".to_owned()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("kept configuration recorder org-baseline"));
    assert_eq!(recorders_and_channels(&cfg).await, config_before);
    s3.head_bucket()
        .bucket("org-config-history")
        .send()
        .await
        .expect("the organisation's bucket is untouched");
    let subs = aws_sdk_sns::Client::new(&config)
        .list_subscriptions_by_topic()
        .topic_arn(&topic)
        .send()
        .await
        .unwrap();
    assert!(
        subs.subscriptions().is_empty(),
        "the handler's subscription is gone: {subs:?}"
    );
}

#[tokio::test]
async fn a_recorder_without_security_groups_stops_install_unless_extend_is_asked() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("extend");
    let zip = fixture::fake_handler_zip(&dir);
    let instances = RecordingGroup::builder()
        .all_supported(false)
        .resource_types(aws_sdk_config::types::ResourceType::from(
            "AWS::EC2::Instance",
        ))
        .build();
    fixture::recorder(&config, "org-baseline", ORG_CONFIG_ROLE, instances).await;
    let cfg = aws_sdk_config::Client::new(&config);
    let before = census(&config).await;
    let (out, calls) = run(&moto, &dir, &install_args(&zip));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("does not record AWS::EC2::SecurityGroup")
            && text(&out).contains("--extend-recorder"),
        "{}",
        text(&out)
    );
    assert_eq!(writes(&calls), Vec::<&String>::new());
    assert_eq!(census(&config).await, before);

    let mut args = install_args(&zip);
    args.push("--extend-recorder".into());
    let (out, _) = run(&moto, &dir, &args);
    assert!(out.status.success(), "{}", text(&out));
    let r = cfg.describe_configuration_recorders().send().await.unwrap();
    let types: Vec<&str> = r.configuration_recorders()[0]
        .recording_group()
        .unwrap()
        .resource_types()
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(types, ["AWS::EC2::Instance", "AWS::EC2::SecurityGroup"]);
    // Extending starts recording security groups: their discovery is the baseline.
    let env = deployed_function_env(&config).await.unwrap();
    let until = &env["SGWATCH_BASELINE_UNTIL"];
    assert!(
        !until.is_empty()
            && text(&out).contains(&format!(
                "baseline: groups discovered before {until} are not emailed"
            )),
        "{}",
        text(&out)
    );

    // Teardown takes back what --extend-recorder added, and leaves the recorder.
    let (out, _) = run(&moto, &dir, &["teardown".to_owned(), "--yes".to_owned()]);
    assert!(out.status.success(), "{}", text(&out));
    let r = cfg.describe_configuration_recorders().send().await.unwrap();
    let types: Vec<&str> = r.configuration_recorders()[0]
        .recording_group()
        .unwrap()
        .resource_types()
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(types, ["AWS::EC2::Instance"]);
    assert_eq!(census(&config).await, before);
}

#[tokio::test]
async fn an_unverified_sender_stops_install_before_anything_is_created() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    let dir = scratch("unverified");
    let zip = fixture::fake_handler_zip(&dir);
    let before = census(&config).await;
    let (out, calls) = run(&moto, &dir, &install_args(&zip));
    assert_eq!(out.status.code(), Some(2));
    let t = text(&out);
    assert!(t.contains("the SES sender alerts@example.com is not verified in account 123456789012 in us-east-1"), "{t}");
    assert!(
        t.contains("aws sesv2 create-email-identity --email-identity alerts@example.com"),
        "{t}"
    );
    assert_eq!(writes(&calls), Vec::<&String>::new());
    assert_eq!(census(&config).await, before);
}

#[test]
fn bad_flags_and_a_bad_zip_fail_before_any_aws_call() {
    let dir = scratch("flags");
    let zip = fixture::fake_handler_zip(&dir);
    std::fs::write(dir.join("not.zip"), b"PK? no").unwrap();
    let zip = zip.to_str().unwrap().to_owned();
    let notzip = dir.join("not.zip").to_str().unwrap().to_owned();
    // A closed port: any AWS call would show in the call log.
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "install",
                "--sender",
                "not-an-address",
                "--handler-zip",
                &zip,
            ],
            "--sender \"not-an-address\" is not an email address",
        ),
        (
            vec!["install", "--sender", SENDER, "--handler-zip", &notzip],
            "is not a zip file",
        ),
        (
            vec![
                "install",
                "--sender",
                SENDER,
                "--handler-zip",
                "/nonexistent.zip",
            ],
            "cannot read the handler zip /nonexistent.zip",
        ),
        (
            vec![
                "install",
                "--sender",
                SENDER,
                "--handler-zip",
                &zip,
                "--always-notify-at",
                "severe",
                "--fallback-recipient",
                "a@example.com",
            ],
            "--always-notify-at \"severe\" is invalid",
        ),
        (
            vec![
                "install",
                "--sender",
                SENDER,
                "--handler-zip",
                &zip,
                "--stack-name",
                "9 bad",
            ],
            "--stack-name \"9 bad\" is invalid",
        ),
        (
            vec![
                "install",
                "--sender",
                SENDER,
                "--handler-zip",
                &zip,
                "--stack-name",
                "alerts",
            ],
            "--stack-name \"alerts\" must start with \"sgwatch\"",
        ),
        (
            vec![
                "plan",
                "--sender",
                SENDER,
                "--handler-zip",
                &zip,
                "--fallback-recipient",
                "nope",
            ],
            "--fallback-recipient \"nope\" is invalid",
        ),
        (
            vec!["install", "--sender", SENDER, "--arch", "sparc"],
            "invalid value 'sparc'",
        ),
        (
            vec!["install", "--sender", SENDER, "--reserved-concurrency", "0"],
            "0 is not in 1..=1000",
        ),
        (
            vec!["plan", "--sender", SENDER, "--reserved-concurrency", "1001"],
            "1001 is not in 1..=1000",
        ),
    ];
    for (args, expected) in cases {
        let (out, calls) = sgwatch("http://127.0.0.1:9", &dir, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
        // A command-line user sets flags, not the handler's environment variables.
        assert!(!text(&out).contains("SGWATCH_"), "{args:?}: {}", text(&out));
        assert!(calls.is_empty(), "{args:?} called AWS: {calls:?}");
    }
}

#[tokio::test]
async fn reserved_concurrency_reaches_the_function_and_unset_clears_the_parameter() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("reserved");
    let zip = fixture::fake_handler_zip(&dir);
    let lambda = aws_sdk_lambda::Client::new(&config);
    let reserved = || async {
        lambda
            .get_function_concurrency()
            .function_name("sgwatch-handler")
            .send()
            .await
            .unwrap()
            .reserved_concurrent_executions()
    };

    let mut args = install_args(&zip);
    args.extend(["--reserved-concurrency", "5"].map(str::to_owned));
    let (out, _) = run(&moto, &dir, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(reserved().await, Some(5));

    // The same flags again: settled.
    let (out, calls) = run(&moto, &dir, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(writes(&calls), Vec::<&String>::new());

    // Without the flag the reservation goes. moto's CloudFormation applies
    // ReservedConcurrentExecutions only when it creates a function, not on update, so the
    // stack's parameter is checked here; the template test checks that empty means no property.
    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(r#"parameter ReservedConcurrency: "5" → """#),
        "{}",
        text(&out)
    );
    let stack = aws_sdk_cloudformation::Client::new(&config)
        .describe_stacks()
        .stack_name("sgwatch")
        .send()
        .await
        .unwrap();
    let value = stack.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("ReservedConcurrency"))
        .and_then(|p| p.parameter_value());
    assert_eq!(value, Some(""));
}

#[tokio::test]
async fn plan_lists_what_install_would_do_and_changes_nothing() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("plan");
    let zip = fixture::fake_handler_zip(&dir);
    let zip = zip.to_str().unwrap();
    let plan = |extra: &[&str]| {
        let mut args = vec!["plan", "--sender", SENDER, "--handler-zip", zip];
        args.extend(extra);
        sgwatch(&moto.endpoint, &dir, &args)
    };

    // A fresh account: the template's resources and the Config changes; no call changes anything.
    let before = census(&config).await;
    let (out, calls) = plan(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for expected in [
        "create artifacts bucket sgwatch-artifacts-123456789012-us-east-1",
        "stack sgwatch: Add Function (AWS::Lambda::Function)",
        "stack sgwatch: Add SnsPermission (AWS::Lambda::Permission)",
        "create configuration recorder sgwatch recording AWS::EC2::SecurityGroup",
        "create delivery channel sgwatch",
        "start recording with recorder sgwatch",
    ] {
        assert!(
            shown.contains(expected),
            "{expected:?} missing from:\n{shown}"
        );
    }
    assert!(
        !shown.contains("EventRule"),
        "the SNS source needs no rule:\n{shown}"
    );
    assert_eq!(writes(&calls), Vec::<&String>::new());
    assert_eq!(census(&config).await, before);

    // Installed, then a changed setting: the parameter, through a change set that is deleted.
    let (out, _) = run(&moto, &dir, &install_args(Path::new(zip)));
    assert!(out.status.success(), "{}", text(&out));
    let installed = census(&config).await;
    let (out, calls) = plan(&["--notify-tag", "Team"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains(r#"stack sgwatch: parameter NotifyTag: "NotifyOnChange" → "Team""#),
        "{shown}"
    );
    assert!(!shown.contains("recorder"), "Config is as wanted:\n{shown}");
    let mutating: Vec<&String> = writes(&calls);
    assert_eq!(
        mutating,
        ["WRITE CreateChangeSet", "WRITE DeleteChangeSet"]
            .iter()
            .collect::<Vec<_>>(),
        "plan only makes and deletes its change set"
    );
    assert_eq!(census(&config).await, installed);
    let (out, _) = plan(&[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "{}",
        text(&out)
    );

    // --output json: one document on stdout, for scripts.
    let (out, _) = plan(&["--notify-tag", "Team", "--output", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(report["account"], "123456789012");
    assert_eq!(report["region"], "us-east-1");
    assert!(report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c.as_str().unwrap().contains("parameter NotifyTag")));
}

#[tokio::test]
async fn changed_settings_reach_the_function_and_the_recorder_then_settle() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("update");
    let zip = fixture::fake_handler_zip(&dir);
    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));

    let mut args = install_args(&zip);
    args.extend(
        [
            "--resource-types",
            "AWS::EC2::NetworkAcl",
            "--owner-tag",
            "Owners",
        ]
        .map(str::to_owned),
    );
    let (out, calls) = run(&moto, &dir, &args);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(r#"parameter OwnerTag: "OwnerDL" → "Owners""#),
        "{shown}"
    );
    assert!(
        shown.contains("update configuration recorder sgwatch"),
        "{shown}"
    );
    assert!(
        calls.iter().any(|c| c == "WRITE ExecuteChangeSet"),
        "the stack is updated through a change set: {calls:?}"
    );
    let f = aws_sdk_lambda::Client::new(&config)
        .get_function_configuration()
        .function_name("sgwatch-handler")
        .send()
        .await
        .unwrap();
    let env = f.environment().unwrap().variables().unwrap();
    assert_eq!(env["SGWATCH_OWNER_TAG"], "Owners");
    assert_eq!(env["SGWATCH_RESOURCE_TYPES"], "AWS::EC2::NetworkAcl");
    let r = aws_sdk_config::Client::new(&config)
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap();
    let types: Vec<&str> = r.configuration_recorders()[0]
        .recording_group()
        .unwrap()
        .resource_types()
        .iter()
        .map(|t| t.as_str())
        .collect();
    assert_eq!(types, ["AWS::EC2::SecurityGroup", "AWS::EC2::NetworkAcl"]);

    // The same flags again: settled.
    let (out, calls) = run(&moto, &dir, &args);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "{}",
        text(&out)
    );
    assert_eq!(writes(&calls), Vec::<&String>::new());
}

#[tokio::test]
async fn eventbridge_source_uses_the_stack_rule_and_switching_source_moves_the_subscription() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("eventbridge");
    let zip = fixture::fake_handler_zip(&dir);
    // A baseline recorder and channel whose topic is not ours.
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = org_topic(&config).await;
    let all = RecordingGroup::builder().all_supported(true).build();
    fixture::recorder(&config, "org-baseline", ORG_CONFIG_ROLE, all).await;
    fixture::delivery_channel(
        &config,
        "org-baseline",
        "org-channel",
        "org-config-history",
        &topic,
    )
    .await;
    let subscribed = || async {
        sns.list_subscriptions_by_topic()
            .topic_arn(&topic)
            .send()
            .await
            .unwrap()
            .subscriptions()
            .iter()
            .any(|s| {
                s.endpoint()
                    .is_some_and(|e| e.ends_with(":function:sgwatch-handler"))
            })
    };
    let events = aws_sdk_eventbridge::Client::new(&config);
    let rules = || async {
        events
            .list_rules()
            .send()
            .await
            .unwrap()
            .rules()
            .iter()
            .filter_map(|r| r.name().map(str::to_owned))
            .collect::<Vec<_>>()
    };
    let mut eventbridge = install_args(&zip);
    eventbridge.extend(["--source", "eventbridge"].map(str::to_owned));

    // EventBridge: the stack's rule targets the function; the adopted topic is left alone.
    let (out, _) = run(&moto, &dir, &eventbridge);
    assert!(out.status.success(), "{}", text(&out));
    let names = rules().await;
    assert_eq!(names.len(), 1, "{names:?}");
    let targets = events
        .list_targets_by_rule()
        .rule(&names[0])
        .send()
        .await
        .unwrap();
    assert!(
        targets.targets()[0]
            .arn()
            .ends_with(":function:sgwatch-handler"),
        "{targets:?}"
    );
    assert!(!subscribed().await);
    let (out, _) = run(&moto, &dir, &["status".to_owned()]);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        shown.contains("ok    EventBridge rule → function"),
        "{shown}"
    );

    // SNS: the stack's source becomes sns (on AWS its rule goes with the update; moto keeps a
    // resource whose condition turned false), the handler subscribes to the adopted topic.
    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert!(subscribed().await, "{}", text(&out));
    let stack = aws_sdk_cloudformation::Client::new(&config)
        .describe_stacks()
        .stack_name("sgwatch")
        .send()
        .await
        .unwrap();
    assert!(stack.stacks()[0]
        .parameters()
        .iter()
        .any(|p| p.parameter_key() == Some("EventSource") && p.parameter_value() == Some("sns")));

    // And back: unsubscribed again.
    let (out, _) = run(&moto, &dir, &eventbridge);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("unsubscribed the handler from {topic}")),
        "{}",
        text(&out)
    );
    assert!(!subscribed().await);

    let (out, _) = run(&moto, &dir, &["teardown".to_owned(), "--yes".to_owned()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(rules().await.is_empty());
    assert!(!subscribed().await);
}

/// A stand-in for the Lambda Invoke endpoint (moto's Lambda cannot run code): answers one request
/// with `{}` and hands back its path and body.
pub(crate) fn fake_lambda() -> (String, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
        tx.send((path, body)).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            .unwrap();
    });
    (endpoint, rx)
}

#[tokio::test]
async fn test_event_sends_the_groups_current_state_as_a_marked_notification() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("test-event");
    let zip = fixture::fake_handler_zip(&dir);
    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));

    let ec2 = aws_sdk_ec2::Client::new(&config);
    let group = fixture::security_group(&ec2, "dept-a-web", "web servers", WATCHED)
        .await
        .unwrap();
    fixture::open(&ec2, &group, 3389).await.unwrap();

    let (lambda, invoked) = fake_lambda();
    let (out, calls) = sgwatch(
        &moto.endpoint,
        &dir,
        &[
            "test-event",
            "--group-id",
            &group,
            "--lambda-endpoint-url",
            &lambda,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        writes(&calls),
        ["WRITE Invoke"].iter().collect::<Vec<_>>(),
        "test-event only invokes the function"
    );
    let (path, body) = invoked
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(path, "/2015-03-31/functions/sgwatch-handler/invocations");
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let message: serde_json::Value =
        serde_json::from_str(event["Records"][0]["Sns"]["Message"].as_str().unwrap()).unwrap();
    assert_eq!(
        message["messageType"],
        "ConfigurationItemChangeNotification"
    );
    assert_eq!(message["sgwatchTest"], true);
    let item = &message["configurationItem"];
    assert_eq!(item["resourceId"], group.as_str());
    assert_eq!(item["awsAccountId"], "123456789012");
    assert_eq!(item["tags"]["OwnerDL"], "dept-a@example.com");
    let rules = item["configuration"]["ipPermissions"].to_string();
    assert!(
        rules.contains("3389") && rules.contains("0.0.0.0/0"),
        "{rules}"
    );
}

#[tokio::test]
async fn a_channel_sending_to_another_accounts_topic_gets_eventbridge_unless_sns_is_asked() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("controltower");
    let zip = fixture::fake_handler_zip(&dir);
    // As AWS Control Tower sets an enrolled account up: its channel sends to the audit account's
    // topic, which aggregates every account.
    let topic = "arn:aws:sns:us-east-1:999999999999:aws-controltower-AllConfigNotifications";
    let recorder = "aws-controltower-BaselineConfigRecorder";
    fixture::recorder(
        &config,
        recorder,
        "arn:aws:iam::123456789012:role/aws-controltower-ConfigRecorderRole",
        RecordingGroup::builder().all_supported(true).build(),
    )
    .await;
    fixture::delivery_channel(
        &config,
        recorder,
        "aws-controltower-BaselineConfigDeliveryChannel",
        "aws-controltower-logs",
        topic,
    )
    .await;
    let why = format!(
        "the adopted delivery channel sends to {topic}, a topic of another account (as AWS \
         Control Tower's does): using --source eventbridge"
    );

    // plan says so, and would add the rule.
    let mut plan = install_args(&zip);
    plan[0] = "plan".to_owned();
    let (out, _) = run(&moto, &dir, &plan);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&why),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Add EventRule"),
        "{}",
        text(&out)
    );

    // install deploys the EventBridge source and never subscribes to the other account's topic.
    let (out, calls) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&why),
        "{}",
        text(&out)
    );
    assert!(!calls.iter().any(|c| c == "WRITE Subscribe"), "{calls:?}");
    let stack = aws_sdk_cloudformation::Client::new(&config)
        .describe_stacks()
        .stack_name("sgwatch")
        .send()
        .await
        .unwrap();
    assert!(stack.stacks()[0].parameters().iter().any(|p| {
        p.parameter_key() == Some("EventSource") && p.parameter_value() == Some("eventbridge")
    }));
    let rules = aws_sdk_eventbridge::Client::new(&config)
        .list_rules()
        .send()
        .await
        .unwrap();
    assert_eq!(rules.rules().len(), 1, "{rules:?}");
    let (out, _) = run(&moto, &dir, &["status".to_owned()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok    EventBridge rule → function"),
        "{}",
        text(&out)
    );

    // Settled: a re-run changes nothing. An explicit --source sns is honoured, so the decision
    // is only the default's: plan then reads the other account's topic, which here (as on AWS
    // without that account's leave) it may not.
    let (out, calls) = run(&moto, &dir, &install_args(&zip));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "{}",
        text(&out)
    );
    assert_eq!(writes(&calls), Vec::<&String>::new());
    let mut sns = plan.clone();
    sns.extend(["--source", "sns"].map(str::to_owned));
    let (out, _) = run(&moto, &dir, &sns);
    assert!(!text(&out).contains(&why), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("listing the subscriptions of {topic}")),
        "{}",
        text(&out)
    );
}

/// `test-event --via topic` publishes the marked notification to the stack's topic, as AWS Config
/// would, so the subscription is exercised too: a queue subscribed to the topic receives it.
#[tokio::test]
async fn test_event_via_topic_publishes_the_marked_notification_to_the_stacks_topic() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let dir = scratch("test-event-topic");
    let zip = fixture::fake_handler_zip(&dir);
    let (out, _) = run(&moto, &dir, &install_args(&zip));
    assert!(out.status.success(), "{}", text(&out));

    let ec2 = aws_sdk_ec2::Client::new(&config);
    let group = fixture::security_group(&ec2, "dept-a-web", "web servers", &[])
        .await
        .unwrap();
    // A queue listening on the stack's topic, beside the function.
    let topic = stack_output(&config, "TopicArn").await.unwrap();
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue_url = sqs
        .create_queue()
        .queue_name("listener")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let queue_arn = "arn:aws:sqs:us-east-1:123456789012:listener";
    aws_sdk_sns::Client::new(&config)
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();

    let (out, calls) = sgwatch(
        &moto.endpoint,
        &dir,
        &["test-event", "--group-id", &group, "--via", "topic"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        writes(&calls),
        ["WRITE Publish"].iter().collect::<Vec<_>>(),
        "test-event --via topic only publishes"
    );
    assert!(text(&out).contains(&topic), "{}", text(&out));

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let [m] = received.messages() else {
        panic!("expected one message on the topic: {received:?}");
    };
    let envelope: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
    assert_eq!(envelope["TopicArn"], topic.as_str());
    let message: serde_json::Value =
        serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(
        message["messageType"],
        "ConfigurationItemChangeNotification"
    );
    assert_eq!(message["sgwatchTest"], true);
    assert_eq!(message["configurationItem"]["resourceId"], group.as_str());
}
