//! End to end, as `make demo` shows it: the real installer deploys into moto, Department B opens
//! RDP on Department A's group, the notification AWS Config would send is built from the group's
//! real states, the real handler binary runs under cargo-lambda's Runtime API emulator, and
//! Department A's email arrives in moto's SES; an untagged group sends nothing; teardown leaves
//! nothing behind. The story is `sgwatch_tests::story`, the same code the demo runs.
//!
//! Needs moto and cargo-lambda from `.venv` (`scripts/setup.sh`): without them it fails, saying
//! what to run, rather than skipping.

use serde_json::json;
use sgwatch_tests::cli::Programs;
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture::SENDER;
use sgwatch_tests::story::{self, Install, OWNER};

#[tokio::test(flavor = "multi_thread")]
async fn department_a_is_told_when_department_b_opens_rdp_and_teardown_leaves_nothing() {
    let programs = Programs::build_for("e2e");
    let moto = Moto::start();

    let outcome = story::play(&moto, &programs).await.unwrap_or_else(|e| {
        panic!(
            "the story could not be played: {e:#}\nmoto's log:\n{}",
            moto.log()
        )
    });

    match &outcome.install {
        Install::Unavailable(why) => panic!(
            "installer not available: {why}; `sgwatch install` with --handler-zip is needed \
             (cargo test --workspace --no-run builds it)"
        ),
        Install::Ran(run) => assert!(
            run.success(),
            "`{}` failed ({}):\n{}\n{}",
            run.command,
            run.status,
            run.stdout,
            run.stderr
        ),
    }
    // The handler ran with what install deployed, not with settings of the test's own.
    assert_eq!(
        outcome
            .function_env
            .get("SGWATCH_SENDER")
            .map(String::as_str),
        Some(SENDER),
        "{:?}",
        outcome.function_env
    );

    // Department B's call reached the handler as CloudTrail's event before Config's notification:
    // install turned the actor feed on, so its early warning told Department A at once, and the
    // notification that followed had nothing new to say by email: it only posted the whole change
    // to Department A's Slack channel (the early warning goes by email only). Exactly one email.
    assert!(
        outcome.early_warning,
        "install did not turn the actor feed on though a trail logs: {:?}",
        outcome.function_env
    );
    assert_eq!(
        outcome.feed_invocation,
        json!({"records": 1, "sent": 1, "skipped": 0, "failed": 0, "parked": 0, "recorded": 1})
    );
    assert_eq!(
        outcome.rdp_invocation,
        json!({"records": 1, "sent": 1, "skipped": 0, "failed": 0, "parked": 0})
    );
    let [email] = outcome.emails.as_slice() else {
        panic!(
            "expected one email for the RDP change: {:#?}",
            outcome.emails
        )
    };
    assert_eq!(email.source, SENDER);
    assert_eq!(email.destinations, [OWNER]);
    let subject = email.subject.as_deref().unwrap_or_default();
    assert!(
        subject.starts_with(&format!(
            "[sgwatch CRITICAL] {} (dept-a-web) ",
            outcome.tagged_group
        )),
        "{subject}"
    );
    assert!(
        subject.ends_with(": +ingress tcp/3389 from 0.0.0.0/0"),
        "{subject}"
    );
    let text = email.text.as_deref().unwrap_or_default();
    assert!(
        text.contains("[critical] +ingress tcp/3389 from 0.0.0.0/0"),
        "{text}"
    );
    // Port 80 was there before the change: it is not news.
    assert!(!text.contains("tcp/80"), "{text}");
    assert!(
        text.contains(&format!(
            "Changed by: {} from 127.0.0.1 (AuthorizeSecurityGroupIngress at ",
            outcome.dept_b_arn
        )),
        "{text}"
    );
    assert!(
        outcome.dept_b_arn.ends_with(":user/dept-b-admin"),
        "{}",
        outcome.dept_b_arn
    );
    assert!(text.starts_with("NOTE: Early warning:"), "{text}");

    assert_eq!(
        outcome.untagged_invocation,
        json!({"records": 1, "sent": 0, "skipped": 1, "failed": 0, "parked": 0})
    );
    assert_eq!(
        outcome.mail_after_untagged, outcome.mail_before_untagged,
        "the untagged group's change sent mail"
    );

    // Department B strips the tags and opens SSH in one change: Department A still hears of it.
    assert_eq!(
        outcome.opt_out_invocation,
        json!({"records": 1, "sent": 1, "skipped": 0, "failed": 0, "parked": 0})
    );
    let [email] = outcome.opt_out_emails.as_slice() else {
        panic!(
            "expected one email for the change that strips the tags: {:#?}",
            outcome.opt_out_emails
        )
    };
    assert_eq!(email.destinations, [OWNER]);
    let subject = email.subject.as_deref().unwrap_or_default();
    assert!(
        subject.starts_with(&format!(
            "[sgwatch CRITICAL] {} (dept-a-web) ",
            outcome.tagged_group
        )),
        "{subject}"
    );
    assert!(
        subject.contains("+ingress tcp/22 from 0.0.0.0/0"),
        "{subject}"
    );
    let text = email.text.as_deref().unwrap_or_default();
    assert!(
        text.contains(
            "NotifyOnChange was removed: you will not be told of further changes to this group"
        ),
        "{text}"
    );
    assert!(
        text.contains("you were an owner before this change"),
        "{text}"
    );
    assert!(
        text.contains("[critical] +ingress tcp/22 from 0.0.0.0/0"),
        "{text}"
    );

    // The groups that existed before install are the baseline: install set its end and printed
    // the ones open to the world (every fifth is open on SSH), and their discovery sends nothing.
    assert!(
        outcome.baseline_from_install,
        "install did not set SGWATCH_BASELINE_UNTIL: {:?}",
        outcome.function_env
    );
    if let Install::Ran(run) = &outcome.install {
        let printed = run
            .stdout
            .lines()
            .filter(|l| l.contains("CRITICAL") && l.contains("ingress tcp/22 from 0.0.0.0/0"))
            .count();
        assert_eq!(printed, story::EXISTING_GROUPS / 5, "{}", run.stdout);
    }
    assert_eq!(outcome.discovery_invocations.len(), story::EXISTING_GROUPS);
    for response in &outcome.discovery_invocations {
        assert_eq!(
            response,
            &json!({"records": 1, "sent": 0, "skipped": 1, "failed": 0, "parked": 0})
        );
    }
    assert_eq!(
        outcome.mail_after_discovery, outcome.mail_before_discovery,
        "the discovery of existing groups sent mail"
    );

    // The demo ends with `sgwatch verify`, the story playing AWS Config.
    let verify = outcome.verify.as_ref().expect("verify ran");
    assert!(
        verify.run.success() && verify.run.stdout.contains("email accepted"),
        "`{}` ({}):\n{}\n{}",
        verify.run.command,
        verify.run.status,
        verify.run.stdout,
        verify.run.stderr
    );

    // Every link of the chain as the user reads it: one `ok` line per check, and nothing worse
    // than a warning where the emulator lacks the call or the resource (moto has no delivery
    // status, skips the stack's EventInvokeConfig, has no SES GetAccount, and answers IAM's
    // simulator with 500), and the alarms, which email no one since the story installs without
    // a fallback recipient (status says so, and how to fix it).
    let status = outcome.status.as_ref().expect("status ran");
    assert!(
        status.stdout.contains("actor feed"),
        "status says nothing of the actor feed: {}",
        status.stdout
    );
    let beyond_moto = [
        "last delivery to the topic",
        "failures go to the queue",
        "SES production access",
        "handler role may act",
        "config role may deliver",
        "act role may act",
        "act revokes only opted-in",
        "alarms on sgwatch failing",
    ];
    // The links are on, at the URL Lambda serves.
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("ok    owners' links")
                && l.contains("Revert and Keep links at https://")),
        "{}",
        status.stdout
    );
    // The daily digest and its schedule.
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("ok    daily digest")
                && l.contains("at 08:00 UTC by schedule sgwatch-DigestSchedule")),
        "{}",
        status.stdout
    );
    for line in status.stdout.lines().skip(1) {
        let line = line.trim_start();
        assert!(
            line.starts_with("ok")
                || (line.starts_with("warn")
                    && beyond_moto
                        .iter()
                        .any(|c| line[4..].trim_start().starts_with(c))),
            "`{}`: {line:?} is not ok:\n{}",
            status.command,
            status.stdout
        );
    }
    for check in [
        "stack",
        "config recorder exists",
        "records security groups",
        "recorder is recording",
        "delivery channel → bucket",
        "delivery channel → topic",
        "topic → subscription → function",
        "undeliverable → failure queue",
        "function permission",
        "function settings",
        "SES sender verified",
        "install record",
    ] {
        assert!(
            status.stdout.lines().any(|l| {
                let l = l.trim_start();
                l.starts_with("ok") && l[2..].trim_start().starts_with(&format!("{check} "))
            }),
            "`{}` ({}) has no ok line for {check:?}:\n{}{}",
            status.command,
            status.status,
            status.stdout,
            status.stderr
        );
    }
    let teardown = outcome.teardown.as_ref().expect("teardown ran");
    assert!(
        teardown.success(),
        "`{}` failed ({}):\n{}\n{}",
        teardown.command,
        teardown.status,
        teardown.stdout,
        teardown.stderr
    );
    assert_eq!(
        outcome.leftovers,
        Vec::<String>::new(),
        "teardown left what install created"
    );
    assert_eq!(outcome.problems(), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&outcome.work_dir);
}
