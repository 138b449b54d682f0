//! The installer under IAM enforcement: moto checks every request against the caller's policies
//! (`Moto::enforce_iam`), and the real `sgwatch` binary runs `install`, a second `install`,
//! `plan`, `status`, `test-event` and `teardown` with the credentials of an IAM user holding only
//! `docs/iam-installer-policy.json`. Every call the installer makes itself must be allowed by it.
//! Where moto authorises differently from AWS (it checks most calls against the resource "*"),
//! `scripts/moto.py` authorises as AWS does; each such bridge is named there.

use std::path::Path;
use std::process::Output;

use aws_config::SdkConfig;
use sgwatch_tests::cli::text;
use sgwatch_tests::emulator::{iam_user, AccessKey, Moto};
use sgwatch_tests::fixture::{self, scratch, SENDER};

use crate::install::WATCHED;

const STACK: &str = "sgwatch";
/// The SecureString a Slack destination's URL is kept in: status checks it exists without
/// reading its value.
const SLACK_PARAMETER: &str = "/sgwatch/ops-slack";

/// The installer's policy, as a user attaches it.
fn installer_policy() -> String {
    let path = sgwatch_tests::repo_root().join("docs/iam-installer-policy.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A new IAM user holding only `policy` inline; its access key.
async fn user_with(admin: &SdkConfig, name: &str, policy: &str) -> AccessKey {
    iam_user(admin, name, Some(policy)).await.unwrap()
}

/// Runs `sgwatch` against `moto` as the user with `key`.
fn sgwatch(moto: &Moto, key: &AccessKey, args: &[&str]) -> Output {
    crate::sgwatch_at(&moto.endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap()
}

/// Panics with the command's output and moto's log unless it exited 0.
fn succeeded(moto: &Moto, what: &str, out: &Output) -> String {
    let shown = text(out);
    assert!(
        out.status.success(),
        "`sgwatch {what}` under the installer policy failed ({}):\n{shown}\nmoto:\n{}",
        out.status,
        moto.log()
    );
    shown
}

fn install_args<'a>(verb: &'a str, zip: &'a Path) -> Vec<&'a str> {
    vec![
        verb,
        "--sender",
        SENDER,
        "--handler-zip",
        zip.to_str().unwrap(),
        "--destination",
        "ops=slack:/sgwatch/ops-slack",
    ]
}

/// The stack's status as the admin sees it, `None` when there is none (or it is deleted).
async fn stack_status(admin: &SdkConfig) -> Option<String> {
    aws_sdk_cloudformation::Client::new(admin)
        .list_stacks()
        .send()
        .await
        .unwrap()
        .stack_summaries()
        .iter()
        .filter(|s| s.stack_name() == Some(STACK))
        .filter_map(|s| s.stack_status().map(|s| s.as_str().to_owned()))
        .find(|s| s != "DELETE_COMPLETE")
}

async fn function_names(admin: &SdkConfig) -> Vec<String> {
    aws_sdk_lambda::Client::new(admin)
        .list_functions()
        .send()
        .await
        .unwrap()
        .functions()
        .iter()
        .filter_map(|f| f.function_name().map(str::to_owned))
        .collect()
}

async fn recorders(admin: &SdkConfig) -> usize {
    aws_sdk_config::Client::new(admin)
        .describe_configuration_recorders()
        .send()
        .await
        .unwrap()
        .configuration_recorders()
        .len()
}

async fn sgwatch_buckets(admin: &SdkConfig) -> Vec<String> {
    sgwatch_handler::aws::s3_client(admin)
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name())
        .filter(|n| n.starts_with("sgwatch-"))
        .map(str::to_owned)
        .collect()
}

/// A security group tagged for watching; its id.
async fn watched_group(admin: &SdkConfig) -> String {
    let ec2 = aws_sdk_ec2::Client::new(admin);
    fixture::security_group(&ec2, "dept-a-web", "web servers", WATCHED)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_installer_policy_allows_install_plan_status_test_event_and_teardown() {
    let moto = Moto::start();
    let setup = moto.sdk_config(None).await;
    moto.verify_sender(&setup, SENDER).await;
    // With IAM enforced only IAM users' keys work: the checks below act as an administrator.
    let admin = user_with(
        &setup,
        "admin",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    )
    .await;
    let admin = moto.sdk_config_as(&admin).await;
    let installer = user_with(&setup, "installer", &installer_policy()).await;
    // A user without the policy: proves that enforcement is on for the binary's calls.
    let nobody = user_with(
        &setup,
        "nobody",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#,
    )
    .await;
    // The policy with its stack statement scoped to another stack's name: the stack calls are
    // checked against our stack's ARN, as AWS checks them, not against "*".
    let other_stack = installer_policy().replace("stack/sgwatch*/*", "stack/other*/*");
    assert_ne!(other_stack, installer_policy());
    let other_stack = user_with(&setup, "other-stack", &other_stack).await;
    let group = watched_group(&setup).await;
    aws_sdk_ssm::Client::new(&setup)
        .put_parameter()
        .name(SLACK_PARAMETER)
        .value("https://hooks.slack.com/services/T0/B0/secret")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    moto.enforce_iam().await;
    let dir = scratch("iam");
    let zip = fixture::fake_handler_zip(&dir);

    let denied = sgwatch(&moto, &nobody, &install_args("install", &zip));
    assert!(
        !denied.status.success(),
        "install succeeded without the installer policy"
    );
    assert_eq!(stack_status(&admin).await, None);
    let denied = sgwatch(&moto, &other_stack, &install_args("install", &zip));
    assert!(
        !denied.status.success(),
        "install succeeded with the stack statement scoped to another stack"
    );
    let shown = String::from_utf8_lossy(&denied.stderr);
    assert!(shown.contains("stack sgwatch"), "{shown}");
    assert_eq!(stack_status(&admin).await, None);

    let shown = succeeded(
        &moto,
        "install",
        &sgwatch(&moto, &installer, &install_args("install", &zip)),
    );
    assert!(shown.contains("CREATE_COMPLETE"), "{shown}");
    assert_eq!(
        stack_status(&admin).await.as_deref(),
        Some("CREATE_COMPLETE")
    );
    assert_eq!(function_names(&admin).await.len(), 1);
    assert_eq!(recorders(&admin).await, 1);
    assert!(!sgwatch_buckets(&admin).await.is_empty());

    let out = sgwatch(&moto, &installer, &install_args("install", &zip));
    let shown = succeeded(&moto, "install (again)", &out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no changes"),
        "{shown}"
    );

    succeeded(
        &moto,
        "plan",
        &sgwatch(&moto, &installer, &install_args("plan", &zip)),
    );
    let shown = succeeded(&moto, "status", &sgwatch(&moto, &installer, &["status"]));
    assert!(!shown.contains("FAIL"), "{shown}");
    // The destination's parameter is found by its metadata (ssm:DescribeParameters), its value
    // never read.
    assert!(
        shown.contains(&format!("{SLACK_PARAMETER} (SecureString)")),
        "{shown}"
    );
    // moto has no policy simulator (HTTP 500, as without enforcement); a 403 would be the policy.
    assert!(
        !shown.contains("HTTP 403") && !shown.contains("AccessDenied"),
        "{shown}"
    );

    // test-event reads the group and the stack as the installer, then invokes the function: here
    // a stand-in endpoint, since moto's Lambda cannot run the handler, so the invocation itself is
    // not checked (the policy grants lambda:InvokeFunction).
    let (lambda, invoked) = crate::install::fake_lambda();
    let args = [
        "test-event",
        "--group-id",
        &group,
        "--lambda-endpoint-url",
        &lambda,
    ];
    succeeded(&moto, "test-event", &sgwatch(&moto, &installer, &args));
    let (path, _) = invoked
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    assert_eq!(path, "/2015-03-31/functions/sgwatch-handler/invocations");

    succeeded(
        &moto,
        "teardown --yes",
        &sgwatch(&moto, &installer, &["teardown", "--yes"]),
    );
    assert_eq!(stack_status(&admin).await, None);
    assert_eq!(function_names(&admin).await, Vec::<String>::new());
    assert_eq!(recorders(&admin).await, 0);
    assert_eq!(sgwatch_buckets(&admin).await, Vec::<String>::new());
}
