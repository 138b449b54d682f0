//! `sgwatch redrive` against moto, as a user meets it: SES fails for a while, notifications end
//! in the stack's failure queue, SES is fixed, redrive replays them, and each owner gets exactly
//! one email.
//!
//! The real handler runs under cargo-lambda's emulator (moto's Lambda cannot run code). Neither
//! runs Lambda's asynchronous retries, so the test plays Lambda's part where the handler failed:
//! it writes the on-failure destination record Lambda writes after the last retry
//! (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html), with the
//! event and the error the handler really answered. It also parks what SNS writes when it cannot
//! deliver at all, and a record the handler parks itself, which redrive must list and keep.

use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_smithy_types::Blob;
use serde_json::{json, Value};
use sgwatch_tests::cli::{self, CommandRun, Programs};
use sgwatch_tests::emulator::{FaultProxy, LambdaEmulator, Moto, EMULATED_FUNCTION};
use sgwatch_tests::fixture;
use sgwatch_tests::inventory::stack_output;
use sgwatch_tests::story::installed;

/// AWS Config's notification that `group` (owned by `owner`) opened RDP to the world, as SNS
/// gives it to the function.
fn notification(group: &str, owner: &str, state: u64) -> Value {
    let mut message = fixture::json("rdp-opened.json");
    let item = &mut message["configurationItem"];
    item["resourceId"] = group.into();
    item["configurationStateId"] = state.into();
    item["tags"]["OwnerDL"] = owner.into();
    sgwatch_synth::sns_event(&message, &format!("sns-{group}"))
}

/// Invokes the function through the emulator; returns its error kind (if it failed) and answer.
async fn invoke(
    config: &SdkConfig,
    emulator: &LambdaEmulator,
    event: &Value,
) -> (Option<String>, Value) {
    let lambda = emulator.client(config);
    let result = lambda
        .invoke()
        .function_name(&emulator.function_name)
        .payload(Blob::new(event.to_string()))
        .send()
        .await;
    match result {
        Ok(out) => {
            let payload = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
            (out.function_error().map(str::to_owned), payload)
        }
        // The emulator answers a function error with HTTP 500 and the error as the body, where
        // Lambda answers 200 with X-Amz-Function-Error.
        Err(aws_sdk_lambda::error::SdkError::ServiceError(e)) => {
            let body = e.raw().body().bytes().unwrap_or_default();
            let payload = serde_json::from_slice(body).unwrap_or(Value::Null);
            (Some("Unhandled".to_owned()), payload)
        }
        Err(e) => panic!("invoking the emulated function: {e:?}"),
    }
}

/// The record Lambda's on-failure destination receives after the last retry of `event`.
fn lambda_failure_record(function_arn: &str, event: &Value, error: &Value) -> Value {
    json!({
        "version": "1.0",
        "timestamp": aws_smithy_types::DateTime::from(SystemTime::now())
            .fmt(aws_smithy_types::date_time::Format::DateTime).unwrap(),
        "requestContext": {
            "requestId": format!("req-{}", event["Records"][0]["Sns"]["MessageId"].as_str().unwrap()),
            "functionArn": format!("{function_arn}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": error
    })
}

async fn park(config: &SdkConfig, queue: &str, body: &Value) {
    aws_sdk_sqs::Client::new(config)
        .send_message()
        .queue_url(queue)
        .message_body(body.to_string())
        .send()
        .await
        .unwrap();
}

fn json_of(run: &CommandRun) -> Value {
    assert!(
        run.success(),
        "`{}` failed ({}):\n{}\n{}",
        run.command,
        run.status,
        run.stdout,
        run.stderr
    );
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}):\n{}", run.command, run.stdout))
}

/// Messages in the queue, visible or not.
async fn queue_depth(config: &SdkConfig, queue: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = aws_sdk_sqs::Client::new(config)
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let get = |a: A| -> u64 { attrs.attributes().unwrap()[&a].parse().unwrap() };
    get(A::ApproximateNumberOfMessages) + get(A::ApproximateNumberOfMessagesNotVisible)
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_replays_what_failed_once_ses_works_and_each_owner_gets_one_email() {
    let programs = Programs::build_for("redrive");
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    let env = installed(&moto, &programs).await;
    let function = env["AWS_LAMBDA_FUNCTION_NAME"].clone();
    let queue = env["SGWATCH_FAILURE_QUEUE_URL"].clone();
    let function_arn = format!("arn:aws:lambda:us-east-1:123456789012:function:{function}");

    // SES refuses every send for a while (HTTP 429, its answer over the sending rate).
    let broken_ses = FaultProxy::start(
        &moto.endpoint,
        &["--rate", "0", "--rate-limit", "SendEmail=0"],
    );
    let failing =
        LambdaEmulator::start_as(&programs, &broken_ses.endpoint, &env, EMULATED_FUNCTION)
            .await
            .unwrap();
    let a = notification(
        "sg-0aaaaaaaaaaaaaaa1",
        "dept-a@corp.example",
        1_800_000_000_001,
    );
    let b = notification(
        "sg-0bbbbbbbbbbbbbbb2",
        "dept-b@corp.example",
        1_800_000_000_002,
    );
    for event in [&a, &b] {
        let (error, answer) = invoke(&config, &failing, event).await;
        assert!(
            error.is_some(),
            "the handler should fail while SES does: {answer}\n{}",
            failing.log()
        );
        park(
            &config,
            &queue,
            &lambda_failure_record(&function_arn, event, &answer),
        )
        .await;
    }
    // SNS delivered `a` twice and both failed: it is parked twice.
    let (error, answer) = invoke(&config, &failing, &a).await;
    assert!(error.is_some(), "{answer}");
    park(
        &config,
        &queue,
        &lambda_failure_record(&function_arn, &a, &answer),
    )
    .await;
    failing.stop().await;
    drop(broken_ses);
    // What SNS could not deliver to the function at all: its message, as JSON.
    let c = notification(
        "sg-0ccccccccccccccc3",
        "dept-c@corp.example",
        1_800_000_000_003,
    );
    // SNS names the topic it could not deliver for: the stack's own.
    let topic = stack_output(&config, "TopicArn").await.unwrap();
    let mut undelivered = c["Records"][0]["Sns"].clone();
    undelivered["TopicArn"] = json!(topic);
    park(&config, &queue, &undelivered).await;
    // Records planted by someone who could send to the queue (the template's policy refuses
    // them on AWS; moto enforces no queue policy): a failure record of another function and a
    // message of another topic, each naming an owner of the planter's choice.
    let planted = notification(
        "sg-0eeeeeeeeeeeeeee5",
        "victim@elsewhere.example",
        1_800_000_000_005,
    );
    park(
        &config,
        &queue,
        &lambda_failure_record(
            "arn:aws:lambda:us-east-1:123456789012:function:not-sgwatch",
            &planted,
            &json!({"errorMessage": "planted"}),
        ),
    )
    .await;
    let mut other_topic = planted["Records"][0]["Sns"].clone();
    other_topic["TopicArn"] = json!("arn:aws:sns:us-east-1:123456789012:someone-elses");
    park(&config, &queue, &other_topic).await;
    // A record the handler parks itself: a recipient SES rejected for good.
    park(
        &config,
        &queue,
        &json!({"source": "sgwatch", "reason": "SES rejected these recipients for good and no fallback recipient could be told",
                "facts": {"messageId": "sns-x", "resourceId": "sg-0ddddddddddddddd4"}, "subject": "[sgwatch CRITICAL] sg-0ddddddddddddddd4",
                "rejected": [{"recipient": "typo@corp.example", "reason": "Email address is not verified"}], "delivered": []}),
    )
    .await;
    assert!(
        moto.ses_messages().await.is_empty(),
        "nothing was sent while SES failed"
    );

    // status tells how many are parked and what to run.
    let status = cli::sgwatch(&programs, &moto, &["status"]).await.unwrap();
    assert!(
        status
            .stdout
            .contains("7 events parked in the failure queue; replay with `sgwatch redrive --yes`"),
        "{}",
        status.stdout
    );

    // Listing changes nothing: every message is still there, visible, and nothing was sent.
    let listed = cli::sgwatch(&programs, &moto, &["redrive"]).await.unwrap();
    assert!(listed.success(), "{}\n{}", listed.stdout, listed.stderr);
    let text = &listed.stdout;
    assert!(
        text.contains("7 message(s) parked in the failure queue"),
        "{text}"
    );
    for group in [
        "sg-0aaaaaaaaaaaaaaa1",
        "sg-0bbbbbbbbbbbbbbb2",
        "sg-0ccccccccccccccc3",
        "sg-0ddddddddddddddd4",
    ] {
        assert!(text.contains(group), "{group} is not listed:\n{text}");
    }
    assert_eq!(
        text.matches("function failed every retry").count(),
        4,
        "{text}"
    );
    assert!(
        text.contains("untrusted: kept (it comes from arn:aws:lambda:us-east-1:123456789012:function:not-sgwatch:$LATEST, not the stack's function)"),
        "{text}"
    );
    assert!(
        text.contains("untrusted: kept (it comes from arn:aws:sns:us-east-1:123456789012:someone-elses, not the stack's topic or the adopted channel's)"),
        "{text}"
    );
    assert!(text.contains("SNS could not deliver"), "{text}");
    assert!(
        text.contains("typo@corp.example: Email address is not verified"),
        "{text}"
    );
    assert!(
        text.contains("could not be delivered and will be retried"),
        "the handler's error: {text}"
    );
    assert!(
        text.contains("4 can be replayed: run `sgwatch redrive --yes`"),
        "{text}"
    );
    assert_eq!(queue_depth(&config, &queue).await, 7);

    let two = json_of(
        &cli::sgwatch(
            &programs,
            &moto,
            &["redrive", "--max", "2", "--output", "json"],
        )
        .await
        .unwrap(),
    );
    assert_eq!(two["messages"].as_array().unwrap().len(), 2, "{two:#}");

    let dry = json_of(
        &cli::sgwatch(
            &programs,
            &moto,
            &["redrive", "--yes", "--dry-run", "--output", "json"],
        )
        .await
        .unwrap(),
    );
    assert_eq!(dry["replayed"], false);
    assert_eq!(dry["messages"].as_array().unwrap().len(), 7, "{dry:#}");
    assert!(moto.ses_messages().await.is_empty());
    assert_eq!(queue_depth(&config, &queue).await, 7);

    // SES works again: replay.
    let fixed = LambdaEmulator::start(&programs, &moto, &env).await.unwrap();
    let replay = cli::sgwatch(
        &programs,
        &moto,
        &[
            "redrive",
            "--yes",
            "--function-name",
            &fixed.function_name,
            "--lambda-endpoint-url",
            &fixed.endpoint,
            "--output",
            "json",
        ],
    )
    .await
    .unwrap();
    let replayed = json_of(&replay);
    let results: Vec<(&str, &str)> = replayed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["kind"].as_str().unwrap(), m["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results.iter().filter(|(_, r)| *r == "replayed").count(),
        4,
        "{replayed:#}\n{}",
        fixed.log()
    );
    assert!(
        results.contains(&("rejected-recipients", "kept: nothing to replay")),
        "{results:?}"
    );
    assert_eq!(
        results
            .iter()
            .filter(|(_, r)| r.starts_with("untrusted: kept"))
            .count(),
        2,
        "{results:?}"
    );

    let mut to: Vec<Vec<String>> = moto
        .ses_messages()
        .await
        .into_iter()
        .map(|m| m.destinations)
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            ["dept-a@corp.example"],
            ["dept-b@corp.example"],
            ["dept-c@corp.example"]
        ],
        "each owner is emailed once, though `a` was parked twice"
    );

    // The planted owner was never emailed.
    assert!(!to.iter().flatten().any(|a| a.contains("victim")), "{to:?}");
    // Only the record with nothing to replay and the planted ones are left; a second redrive
    // sends nothing more.
    assert_eq!(queue_depth(&config, &queue).await, 3);
    let again = cli::sgwatch(
        &programs,
        &moto,
        &[
            "redrive",
            "--yes",
            "--function-name",
            &fixed.function_name,
            "--lambda-endpoint-url",
            &fixed.endpoint,
        ],
    )
    .await
    .unwrap();
    assert!(again.success(), "{}\n{}", again.stdout, again.stderr);
    assert!(
        again.stdout.contains("3 message(s) parked"),
        "{}",
        again.stdout
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(moto.ses_messages().await.len(), 3);
    fixed.stop().await;
    let _ = std::fs::remove_dir_all(&programs.work_dir);
}
