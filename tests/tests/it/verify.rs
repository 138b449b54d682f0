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
