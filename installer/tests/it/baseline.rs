//! The discovery baseline and the served account against moto: install sets `BaselineUntil`
//! when it starts recording and leaves it alone on a re-install, passes its own account as
//! `Accounts`, and prints the tagged groups already open to the world.

use std::process::Output;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_smithy_types::date_time::{DateTime, Format};
use sgwatch_tests::cli::text;
use sgwatch_tests::emulator::{Moto, ACCOUNT};
use sgwatch_tests::fixture::{self, scratch, SENDER};
use sgwatch_tests::inventory::deployed_function_env;

fn sgwatch(moto: &Moto, args: &[&str]) -> Output {
    crate::sgwatch_at(&moto.endpoint)
        .args(args)
        .output()
        .unwrap()
}

async fn function_env(config: &SdkConfig) -> std::collections::BTreeMap<String, String> {
    deployed_function_env(config).await.unwrap()
}

/// A group tagged `NotifyOnChange=Yes` open to the world on `port`; returns its id.
async fn tagged_open_group(ec2: &aws_sdk_ec2::Client, name: &str, port: i32) -> String {
    let tags = [("NotifyOnChange", "Yes"), ("OwnerDL", "a@example.com")];
    let id = fixture::security_group(ec2, name, name, &tags)
        .await
        .unwrap();
    fixture::open(ec2, &id, port).await.unwrap();
    id
}

fn parse(time: &str) -> SystemTime {
    SystemTime::try_from(DateTime::from_str(time, Format::DateTime).unwrap()).unwrap()
}

#[tokio::test]
async fn install_sets_the_baseline_and_account_prints_exposed_groups_and_a_reinstall_keeps_it() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let rdp = tagged_open_group(&ec2, "rdp", 3389).await;
    let postgres = tagged_open_group(&ec2, "postgres", 5432).await;
    let web = tagged_open_group(&ec2, "web", 443).await;
    let dir = scratch("baseline");
    let zip = fixture::fake_handler_zip(&dir);
    let install = [
        "install",
        "--sender",
        SENDER,
        "--handler-zip",
        zip.to_str().unwrap(),
    ];

    let before = SystemTime::now() - Duration::from_secs(1);
    let out = sgwatch(&moto, &install);
    assert!(out.status.success(), "{}", text(&out));
    let after = SystemTime::now();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();

    let env = function_env(&config).await;
    assert_eq!(env["SGWATCH_ACCOUNTS"], ACCOUNT);
    let until = env["SGWATCH_BASELINE_UNTIL"].clone();
    let at = parse(&until);
    assert!(
        at >= before + Duration::from_secs(3600) && at <= after + Duration::from_secs(3600 + 60),
        "BaselineUntil {until} is not recording's start plus an hour"
    );
    assert!(
        shown.contains(&format!(
            "baseline: groups discovered before {until} are not emailed"
        )),
        "{shown}"
    );
    let line = |id: &str| shown.lines().find(|l| l.contains(id)).map(str::to_owned);
    assert!(
        line(&rdp).is_some_and(|l| l.contains("CRITICAL") && l.contains("tcp/3389")),
        "{shown}"
    );
    assert!(
        line(&postgres).is_some_and(|l| l.contains("HIGH") && l.contains("tcp/5432")),
        "{shown}"
    );
    assert_eq!(line(&web), None, "{shown}");

    // Nothing to do: the baseline stays where it was, and is not printed again.
    let out = sgwatch(&moto, &install);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(shown.contains("no changes"), "{shown}");
    assert!(!shown.contains(&rdp), "{shown}");
    assert_eq!(function_env(&config).await["SGWATCH_BASELINE_UNTIL"], until);

    let status = sgwatch(&moto, &["status"]);
    let shown = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        shown.lines().any(|l| l.contains("discovery baseline")
            && l.contains(&format!("groups discovered before {until}"))),
        "{}",
        text(&status)
    );

    // The JSON report carries the baseline for scripts.
    let plan = sgwatch(
        &moto,
        &[
            "--output",
            "json",
            "plan",
            "--sender",
            SENDER,
            "--handler-zip",
            zip.to_str().unwrap(),
        ],
    );
    assert!(plan.status.success(), "{}", text(&plan));
    let report: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(report["baseline_until"], until.as_str());
}

#[tokio::test]
async fn install_reports_the_baseline_groups_in_json() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let rdp = tagged_open_group(&ec2, "rdp", 3389).await;
    let dir = scratch("baseline-json");
    let zip = fixture::fake_handler_zip(&dir);
    let out = sgwatch(
        &moto,
        &[
            "--output",
            "json",
            "install",
            "--sender",
            SENDER,
            "--handler-zip",
            zip.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let baseline = report["baseline"].as_array().unwrap();
    assert_eq!(baseline.len(), 1, "{report}");
    assert_eq!(baseline[0]["group_id"], rdp.as_str());
    assert_eq!(baseline[0]["severity"], "critical");
}

#[tokio::test]
async fn starting_a_stopped_recorder_of_ours_starts_a_new_baseline() {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let ssh = tagged_open_group(&ec2, "ssh", 22).await;
    let dir = scratch("baseline-restart");
    let zip = fixture::fake_handler_zip(&dir);
    let install = [
        "install",
        "--sender",
        SENDER,
        "--handler-zip",
        zip.to_str().unwrap(),
    ];
    let out = sgwatch(&moto, &install);
    assert!(out.status.success(), "{}", text(&out));
    let first = function_env(&config).await["SGWATCH_BASELINE_UNTIL"].clone();

    aws_sdk_config::Client::new(&config)
        .stop_configuration_recorder()
        .configuration_recorder_name("sgwatch")
        .send()
        .await
        .unwrap();
    let mut plan = install;
    plan[0] = "plan";
    let out = sgwatch(&moto, &plan);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains("start recording with recorder sgwatch")
            && shown.contains("baseline: groups discovered before"),
        "plan shows the new baseline: {shown}"
    );

    let out = sgwatch(&moto, &install);
    assert!(out.status.success(), "{}", text(&out));
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        shown.contains("start recording with recorder sgwatch"),
        "{shown}"
    );
    assert!(
        shown
            .lines()
            .any(|l| l.contains(&ssh) && l.contains("CRITICAL")),
        "the baseline is printed again when recording starts again: {shown}"
    );
    let second = function_env(&config).await["SGWATCH_BASELINE_UNTIL"].clone();
    assert!(parse(&second) >= parse(&first), "{first} → {second}");
}
