//! `sgwatch verify` against moto, as a user runs it: the real installer makes the throwaway group
//! and waits; the test plays AWS Config (moto has none): it builds the notification from the
//! group's state in EC2 and publishes it to the stack's topic, and the real handler, under
//! cargo-lambda's emulator, emails through moto's SES. verify must report each step's time and
//! SES's message id, exit 0, and leave no group behind; without Config it must time out clearly
//! and still delete its group.

use serde_json::Value;
use sgwatch_tests::cli::{self, Programs, VERIFY_MARKER};
use sgwatch_tests::emulator::{LambdaEmulator, Moto};
use sgwatch_tests::story::installed;

const RECIPIENT: &str = "secops@corp.example";

/// Groups carrying verify's marker tag, through EC2's own API.
async fn marked_groups(moto: &Moto) -> Vec<String> {
    let config = moto.sdk_config(None).await;
    aws_sdk_ec2::Client::new(&config)
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
        .iter()
        .filter(|g| g.tags().iter().any(|t| t.key() == Some(VERIFY_MARKER)))
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_times_each_step_of_a_real_change_and_deletes_its_group() {
    let programs = Programs::build_for("verify");
    let moto = Moto::start();
    let env = installed(&moto, &programs).await;
    let emulator = LambdaEmulator::start(&programs, &moto, &env).await.unwrap();

    let v = cli::verify(
        &programs,
        &moto,
        &emulator,
        &[
            "--recipient",
            RECIPIENT,
            "--timeout",
            "120s",
            "--output",
            "json",
        ],
    )
    .await
    .unwrap();
    let run = &v.run;
    assert!(
        run.success(),
        "`{}` failed ({}):\n{}\n{}\nhandler: {}",
        run.command,
        run.status,
        run.stdout,
        run.stderr,
        emulator.log()
    );
    let group = v
        .group
        .clone()
        .expect("verify made a marked group with a rule");
    assert_eq!(
        v.invocation.as_ref().unwrap()["sent"],
        1,
        "{:?}",
        v.invocation
    );
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["group_id"], group.as_str());
    assert_eq!(report["recipient"], RECIPIENT);
    assert_eq!(report["email_accepted"], true);
    assert_eq!(report["group_deleted"], true);
    // It names the alarms that tell someone when sgwatch itself fails.
    assert_eq!(
        report["alarms"],
        serde_json::json!([
            "sgwatch-failures-parked",
            "sgwatch-function-errors",
            "sgwatch-function-throttles"
        ])
    );
    let steps = report["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "change made",
            "Config captured it",
            "handler decided",
            "email accepted"
        ],
        "{report:#}"
    );
    let mut previous = -1.0;
    for s in steps {
        assert!(s["at"].as_str().unwrap().ends_with('Z'), "{s}");
        let after = s["after_secs"].as_f64().unwrap();
        assert!(
            after >= previous && after < 120.0,
            "steps in order: {report:#}"
        );
        previous = after;
    }
    // The message id SES gave the email it accepted.
    let sent = moto.ses_messages().await;
    let [email] = sent.as_slice() else {
        panic!("one email expected: {sent:#?}")
    };
    assert_eq!(email.destinations, [RECIPIENT]);
    assert_eq!(report["ses_message_ids"], serde_json::json!([email.id]));
    assert!(steps[3]["detail"].as_str().unwrap().contains(&email.id));
    assert!(
        run.stderr.contains("waiting for AWS Config"),
        "a progress line on stderr: {}",
        run.stderr
    );
    assert!(
        marked_groups(&moto).await.is_empty(),
        "the group is deleted"
    );
    println!("verify under moto: {report:#}");
    emulator.stop().await;
    let _ = std::fs::remove_dir_all(&programs.work_dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_without_config_times_out_clearly_and_still_deletes_its_group() {
    let programs = Programs::build_for("verify-timeout");
    let moto = Moto::start();
    installed(&moto, &programs).await;
    let run = cli::sgwatch(
        &programs,
        &moto,
        &["verify", "--recipient", RECIPIENT, "--timeout", "5s"],
    )
    .await
    .unwrap();
    assert!(!run.success(), "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("no email within 5 s")
            && run.stderr.contains("the throwaway group was deleted"),
        "{}",
        run.stderr
    );
    assert!(
        marked_groups(&moto).await.is_empty(),
        "the group is deleted"
    );

    // A stack with no fallback recipient and no --recipient: told what to pass, nothing made.
    let run = cli::sgwatch(&programs, &moto, &["verify"]).await.unwrap();
    assert!(!run.success());
    assert!(run.stderr.contains("pass --recipient"), "{}", run.stderr);
    let _ = std::fs::remove_dir_all(&programs.work_dir);
}

/// Installs with Security Hub on, a pagerduty and a chatbot destination, then: `status` checks
/// each, and `verify --destination` shows each in its timeline.
#[tokio::test(flavor = "multi_thread")]
async fn status_checks_and_verify_shows_where_security_teams_look() {
    use sgwatch_tests::capture::CaptureServer;
    use sgwatch_tests::fixture;

    let programs = Programs::build_for("verify-security");
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, sgwatch_tests::fixture::SENDER)
        .await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns
        .create_topic()
        .name("secops-chat")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let copy = fixture::queue(&config, "chat-copy").await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint("arn:aws:sqs:us-east-1:123456789012:chat-copy")
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name("/sgwatch/pagerduty-key")
        .value("R0UT1NGKEY0F32CHARACTERS00000000")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let zip = programs.handler_zip().unwrap().display().to_string();
    let chat = format!("chat={}", format_args!("chatbot:{topic}"));
    let installed = cli::sgwatch(
        &programs,
        &moto,
        &[
            "install",
            "--sender",
            sgwatch_tests::fixture::SENDER,
            "--handler-zip",
            &zip,
            "--arch",
            "x86_64",
            "--coalesce",
            "0",
            "--security-hub",
            "on",
            "--destination",
            "oncall=pagerduty:/sgwatch/pagerduty-key",
            "--destination",
            &chat,
            "--page-at",
            "critical",
            "--yes",
        ],
    )
    .await
    .unwrap();
    assert!(
        installed.success(),
        "{}\n{}",
        installed.stdout,
        installed.stderr
    );
    assert!(
        installed
            .stdout
            .contains("security destinations: oncall (pagerduty), chat (chatbot); PagerDuty pages at CRITICAL and above"),
        "{}",
        installed.stdout
    );

    // status, before Security Hub is enabled and before a chat configuration subscribes.
    let status = cli::sgwatch(&programs, &moto, &["status", "--output", "json"])
        .await
        .unwrap();
    let report: Value = serde_json::from_str(&status.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", status.stdout, status.stderr));
    let line = |report: &Value, check: &str| -> (String, String) {
        let c = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == check)
            .unwrap_or_else(|| panic!("no {check} line: {report:#}"));
        (
            c["level"].as_str().unwrap().to_owned(),
            c["detail"].as_str().unwrap().to_owned(),
        )
    };
    let (level, detail) = line(&report, "Security Hub");
    assert_eq!(level, "fail", "{detail}");
    assert!(
        detail.contains("aws securityhub enable-security-hub"),
        "{detail}"
    );
    let (level, detail) = line(&report, "chat topic");
    assert_eq!(level, "warn", "{detail}");
    assert!(detail.contains("no chat subscription"), "{detail}");
    let (level, detail) = line(&report, "destination parameter");
    assert_eq!(
        (level.as_str(), detail.as_str()),
        ("ok", "/sgwatch/pagerduty-key (SecureString)")
    );
    aws_sdk_securityhub::Client::new(&config)
        .enable_security_hub()
        .send()
        .await
        .unwrap();
    let chatbot = sns
        .subscribe()
        .topic_arn(&topic)
        .protocol("https")
        .endpoint("https://global.sns-api.chatbot.amazonaws.com")
        .send()
        .await
        .unwrap();
    let status = cli::sgwatch(&programs, &moto, &["status", "--output", "json"])
        .await
        .unwrap();
    let report: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(line(&report, "Security Hub").0, "ok");
    assert_eq!(line(&report, "chat topic").0, "ok");
    // moto would post each message to that endpoint, which is not reachable from here: the
    // queue subscribed above stands in for the chat configuration from now on.
    sns.unsubscribe()
        .subscription_arn(chatbot.subscription_arn().unwrap())
        .send()
        .await
        .unwrap();

    // verify, with both destinations; the handler's PagerDuty endpoint is a capture server.
    let pager = CaptureServer::start(vec![]);
    let mut env = sgwatch_tests::inventory::deployed_function_env(&config)
        .await
        .unwrap();
    assert_eq!(
        env.get("SGWATCH_SECURITY_HUB").map(String::as_str),
        Some("on")
    );
    env.insert(
        "SGWATCH_PAGERDUTY_URL".into(),
        format!("{}/v2/enqueue", pager.url),
    );
    env.insert("SGWATCH_TEST_LOOPBACK_DESTINATIONS".into(), "true".into());
    let emulator = LambdaEmulator::start(&programs, &moto, &env).await.unwrap();
    let v = cli::verify(
        &programs,
        &moto,
        &emulator,
        &[
            "--recipient",
            RECIPIENT,
            "--destination",
            "oncall",
            "--destination",
            "chat",
            "--timeout",
            "120s",
            "--output",
            "json",
        ],
    )
    .await
    .unwrap();
    assert!(
        v.run.success(),
        "{}\n{}\nhandler: {}",
        v.run.stdout,
        v.run.stderr,
        emulator.log()
    );
    let report: Value = serde_json::from_str(&v.run.stdout).unwrap();
    let steps: Vec<(String, String)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_owned(),
                s["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (step, detail) in [
        ("posted", "to destination oncall"),
        ("posted", "to destination chat"),
        (
            "finding imported",
            "into Security Hub: a test finding, archived from the start",
        ),
    ] {
        assert!(
            steps.contains(&(step.to_owned(), detail.to_owned())),
            "{step} {detail}: {report:#}"
        );
    }
    // What each one got: a change event (no incident), the chat message, an archived finding.
    let posts = pager.requests();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/v2/change/enqueue");
    assert!(posts[0].json()["payload"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("sgwatch verify: "));
    let chat = fixture::queued(&config, &copy).await;
    assert_eq!(chat.len(), 1, "{chat:#?}");
    assert_eq!(chat[0]["source"], "custom");
    let found = fixture::security_hub_findings(&config).await;
    let f = &found[0];
    assert!(f.id().unwrap().ends_with("/verify"), "{f:?}");
    assert_eq!(
        f.record_state(),
        Some(&aws_sdk_securityhub::types::RecordState::Archived)
    );
}
