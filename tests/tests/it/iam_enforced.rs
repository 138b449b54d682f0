//! The handler's role under IAM enforcement: moto checks every request against the policies of
//! the caller (`Moto::enforce_iam`), and an IAM user holding exactly HandlerRole's policy from
//! the template (its `${…}` resolved to this server's resources) makes the handler's calls.
//! moto authorises non-S3 calls against "*" without condition keys; `scripts/moto.py` makes it
//! authorise DynamoDB item calls on the table and SES sends on the sender's and each
//! recipient's identity with `ses:FromAddress`, as AWS does in the SES sandbox.

use aws_config::SdkConfig;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use sgwatch_tests::emulator::{iam_user, Moto, ACCOUNT, REGION};
use sgwatch_tests::fixture::{idempotency_table, SENDER};

use crate::templates::Resolver;

const OWNER: &str = "dept-a@corp.example";
const BUCKET: &str = "sgwatch-configbucket-abc123";
const TABLE: &str = "sgwatch-IdempotencyTable-ABC123";

/// HandlerRole's policy as deployed for this server's resources.
fn handler_policy() -> String {
    handler_policy_with(&[])
}

/// HandlerRole's policy as deployed with the stack parameters `extra` too.
fn handler_policy_with(extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("Sender", SENDER),
        ("SenderIdentity", "example.com"),
        // With the actor feed, the role reads groups' tags for early warnings.
        ("ActorFeed", "on"),
    ];
    params.extend_from_slice(extra);
    let r = Resolver::new("sgwatch", &params);
    serde_json::json!({"Version": "2012-10-17", "Statement": r.resolved_statements("HandlerRole")})
        .to_string()
        .replace("<ConfigBucket.Arn>", &format!("arn:aws:s3:::{BUCKET}"))
        .replace(
            "<IdempotencyTable.Arn>",
            &format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE}"),
        )
        .replace(
            "<FailureQueue.Arn>",
            &format!("arn:aws:sqs:{REGION}:{ACCOUNT}:sgwatch-FailureQueue"),
        )
        .replace(
            "<WakeQueue.Arn>",
            &format!("arn:aws:sqs:{REGION}:{ACCOUNT}:sgwatch-WakeQueue"),
        )
        .replace("<LogGroup>", "/aws/lambda/sgwatch-handler")
}

/// SDK configuration acting as a new IAM user holding only `policy`.
async fn user_with(moto: &Moto, admin: &SdkConfig, name: &str, policy: &str) -> SdkConfig {
    assert!(!policy.contains('<'), "unresolved placeholder in {policy}");
    let key = iam_user(admin, name, Some(policy)).await.unwrap();
    moto.sdk_config_as(&key).await
}

async fn send(config: &SdkConfig, from: &str) -> Result<(), String> {
    let text = Content::builder().data("body").build().unwrap();
    aws_sdk_sesv2::Client::new(config)
        .send_email()
        .from_email_address(from)
        .destination(Destination::builder().to_addresses(OWNER).build())
        .content(
            EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(Content::builder().data("s").build().unwrap())
                        .body(Body::builder().text(text).build())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[tokio::test]
async fn the_handler_role_allows_the_handlers_calls_and_nothing_beside() {
    let moto = Moto::start();
    let admin = moto.sdk_config(None).await;
    moto.verify_sender(&admin, SENDER).await;
    let s3 = sgwatch_handler::aws::s3_client(&admin);
    let oversized = format!("AWSLogs/{ACCOUNT}/Config/{REGION}/item.json");
    for bucket in [BUCKET, "someone-elses-bucket"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
        s3.put_object()
            .bucket(bucket)
            .key(&oversized)
            .body(b"{}".to_vec().into())
            .send()
            .await
            .unwrap();
    }
    for table in [TABLE, "other-table"] {
        idempotency_table(&admin, table).await;
    }
    let policy = handler_policy();
    let handler = user_with(&moto, &admin, "handler", &policy).await;
    // The policy before the SES fix: the sender's identity only.
    let sender_only = policy.replace("identity/*", "identity/example.com");
    assert_ne!(sender_only, policy);
    let old = user_with(&moto, &admin, "sender-only", &sender_only).await;
    moto.enforce_iam().await;

    send(&handler, SENDER)
        .await
        .unwrap_or_else(|e| panic!("the handler could not send: {e}\n{}", moto.log()));
    assert!(
        send(&handler, "other@example.com").await.is_err(),
        "sent as another address"
    );
    let denied = send(&old, SENDER)
        .await
        .expect_err("the recipient's identity is not covered");
    assert!(
        denied.contains("403") || denied.contains("AccessDenied"),
        "{denied}"
    );
    assert_eq!(moto.ses_messages().await.len(), 1);

    // The actor feed: the call recorded, read back for a notification, the group's tags read for
    // an early warning; and no write to EC2.
    use sgwatch_handler::feed::ApiCall;
    let ec2 = aws_sdk_ec2::Client::new(&handler);
    let group = sgwatch_handler::groups::describe(&ec2, "sg-0123456789abcdef0").await;
    assert!(matches!(group, Ok(None)), "{group:?}");
    assert!(
        ec2.create_security_group()
            .group_name("x")
            .description("x")
            .send()
            .await
            .is_err(),
        "the handler only reads EC2"
    );
    let feed_table = sgwatch_handler::dedupe::Dedupe {
        client: aws_sdk_dynamodb::Client::new(&handler),
        table: TABLE.to_owned(),
    };
    let call: ApiCall = serde_json::from_value(serde_json::json!({
        "event_id": "e-1", "event_name": "AuthorizeSecurityGroupIngress",
        "event_time": "2026-11-20T09:13:58Z", "account": ACCOUNT, "region": REGION,
        "principal_arn": "arn:aws:iam::123456789012:user/dept-b-admin",
        "group_ids": ["sg-0123456789abcdef0"]
    }))
    .unwrap();
    sgwatch_handler::feed_store::record(&feed_table, &call)
        .await
        .unwrap_or_else(|e| panic!("the handler could not record the call: {e}"));
    let t = call.time_secs().unwrap();
    let feed = sgwatch_handler::feed_store::window(
        &feed_table,
        ACCOUNT,
        REGION,
        "sg-0123456789abcdef0",
        t - 60,
        t + 60,
    )
    .await
    .unwrap();
    assert_eq!(feed.calls, [call]);

    // The idempotency table through the handler's own calls (claim, ledger, sent, release).
    use sgwatch_handler::dedupe::{Claim, Dedupe};
    let dedupe = |table: &str| Dedupe {
        client: aws_sdk_dynamodb::Client::new(&handler),
        table: table.to_owned(),
    };
    let ours = dedupe(TABLE);
    let lease = sgwatch_handler::dedupe::lease_until(None);
    let claim = ours.claim("n-1", "owner-1", lease).await.unwrap();
    assert!(matches!(claim, Claim::Acquired { .. }), "{claim:?}");
    ours.record("n-1", &[OWNER.to_owned()]).await.unwrap();
    ours.mark_sent("n-1").await.unwrap();
    assert_eq!(
        ours.claim("n-1", "owner-2", lease).await.unwrap(),
        Claim::Duplicate
    );
    let other = ours.claim("n-2", "owner-1", lease).await.unwrap();
    assert!(matches!(other, Claim::Acquired { .. }), "{other:?}");
    ours.release("n-2", "owner-1").await.unwrap();
    assert!(dedupe("other-table")
        .claim("n-1", "owner-1", lease)
        .await
        .is_err());

    let as_handler = sgwatch_handler::aws::s3_client(&handler);
    as_handler
        .get_object()
        .bucket(BUCKET)
        .key(&oversized)
        .send()
        .await
        .unwrap();
    assert!(as_handler
        .get_object()
        .bucket("someone-elses-bucket")
        .key(&oversized)
        .send()
        .await
        .is_err());
    assert!(
        as_handler
            .delete_object()
            .bucket(BUCKET)
            .key(&oversized)
            .send()
            .await
            .is_err(),
        "the handler only reads the Config bucket"
    );
}

/// The noise controls under the handler's role: a coalescing window opened (its item and its
/// delayed wake) and sent, a change held for the digest and the digest sent, an email counted
/// against the rate limit. A window is closed by an update: the role may not delete items.
#[tokio::test]
async fn the_handler_role_may_coalesce_hold_and_count_but_not_delete() {
    use sgwatch_handler::context::Clock;
    use sgwatch_handler::digest::{wake_event, Line, Wake};
    use sgwatch_handler::process::{handle, Services};

    let moto = Moto::start();
    let admin = moto.sdk_config(None).await;
    moto.verify_sender(&admin, SENDER).await;
    idempotency_table(&admin, TABLE).await;
    let wake_url = sgwatch_tests::fixture::queue(&admin, "sgwatch-WakeQueue").await;
    let handler = user_with(&moto, &admin, "handler", &handler_policy()).await;
    moto.enforce_iam().await;

    let settings = sgwatch_tests::fixture::settings_from(&[
        ("SGWATCH_SENDER", SENDER),
        ("SGWATCH_LOOKUP_ACTOR", "false"),
        ("SGWATCH_IDEMPOTENCY_TABLE", TABLE),
        ("SGWATCH_COALESCE_SECONDS", "60"),
        ("SGWATCH_MAX_PER_GROUP_HOUR", "10"),
        ("SGWATCH_WAKE_QUEUE_URL", &wake_url),
    ]);
    let mut services = Services::new(&handler, &settings);
    let t0 = 1_796_601_600;
    services.clock = Clock::fixed(t0);
    let table = services.dedupe.clone().unwrap();
    let line = Line {
        at: "2026-12-07T00:00:00Z".into(),
        key: format!("{ACCOUNT}/{REGION}/sg-0123456789abcdef0/1"),
        account: ACCOUNT.into(),
        region: REGION.into(),
        group: "sg-0123456789abcdef0".into(),
        severity: "MEDIUM".into(),
        gist: "+ingress tcp/8080 from 0.0.0.0/0".into(),
        by: "arn:aws:iam::123456789012:user/dept-b-admin".into(),
        why: "gathered".into(),
        to: vec![OWNER.into()],
        ..Line::default()
    };
    let joined = sgwatch_handler::coalesce::join(&table, &services, &line, t0, 60, true)
        .await
        .unwrap_or_else(|e| panic!("the handler could not open a window: {e}\n{}", moto.log()));
    assert_eq!(joined, sgwatch_handler::coalesce::Joined::Opened(t0 + 60));
    services.clock.set(t0 + 60);
    let wake = wake_event(&Wake {
        account: ACCOUNT.into(),
        region: REGION.into(),
        group: line.group.clone(),
        until: t0 + 60,
        summary_of_hour: None,
    });
    let report = handle(&wake, &settings, &services)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", moto.log()));
    assert_eq!(report.sent, 1, "{report:?}");
    assert!(
        !sgwatch_handler::coalesce::is_open(&table, (ACCOUNT, REGION, &line.group), t0 + 60)
            .await
            .unwrap()
    );

    sgwatch_handler::held::hold(&table, &[OWNER.to_owned()], &line)
        .await
        .unwrap_or_else(|e| panic!("the handler could not hold a change: {e}"));
    let due = serde_json::json!({"source": "sgwatch.digest", "detail-type": "sgwatch digest", "detail": {}});
    let report = handle(&due, &settings, &services).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(moto.ses_messages().await.len(), 2);

    let counted = sgwatch_handler::rate::count(
        &table,
        &services,
        (ACCOUNT, REGION, &line.group),
        &[OWNER.to_owned()],
        t0,
        10,
    )
    .await
    .unwrap();
    assert_eq!(counted, sgwatch_handler::rate::Count::Within(1));

    let deleted = table
        .client
        .delete_item()
        .table_name(TABLE)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!(
                "window/{ACCOUNT}/{REGION}/{}",
                line.group
            )),
        )
        .send()
        .await;
    assert!(deleted.is_err(), "the handler's role may delete items");
}

#[tokio::test]
async fn the_handler_role_imports_its_own_findings_and_publishes_only_to_its_chat_topics() {
    use sgwatch_handler::ledger::{Entry, Item};
    use sgwatch_handler::process::{handle, Services};

    let moto = Moto::start();
    let admin = moto.sdk_config(None).await;
    moto.verify_sender(&admin, SENDER).await;
    idempotency_table(&admin, TABLE).await;
    let sns = aws_sdk_sns::Client::new(&admin);
    let mut topics = Vec::new();
    for name in ["secops-chat", "someone-elses"] {
        let out = sns.create_topic().name(name).send().await.unwrap();
        topics.push(out.topic_arn().unwrap().to_owned());
    }
    let policy = handler_policy_with(&[("SecurityHub", "on"), ("ChatbotTopics", &topics[0])]);
    let handler = user_with(&moto, &admin, "handler", &policy).await;
    moto.enforce_iam().await;

    let destinations = format!("chat=chatbot:{}", topics[0]);
    let settings = sgwatch_tests::fixture::settings_from(&[
        ("SGWATCH_SENDER", SENDER),
        ("SGWATCH_LOOKUP_ACTOR", "false"),
        ("SGWATCH_IDEMPOTENCY_TABLE", TABLE),
        ("SGWATCH_SECURITY_HUB", "on"),
        ("SGWATCH_DESTINATIONS", &destinations),
    ]);
    let services = Services::new(&handler, &settings);
    let mut m = sgwatch_tests::fixture::json("rdp-opened.json");
    m["configurationItem"]["tags"]["NotifyChannels"] = serde_json::json!("chat");
    m["configurationItem"]["tags"]["OwnerDL"] = serde_json::json!(OWNER);
    let report = handle(
        &sgwatch_tests::fixture::sns(&m, "m-1"),
        &settings,
        &services,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", moto.log()));
    assert_eq!(
        (report.sent, report.failed),
        (1, 0),
        "{report:?}\n{}",
        moto.log()
    );
    // Both took it, as the ledger (read as the handler, which may) says.
    let key = format!("{ACCOUNT}/{REGION}/sg-0123456789abcdef0/1763629447512");
    let got = aws_sdk_dynamodb::Client::new(&handler)
        .get_item()
        .table_name(TABLE)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key))
        .send()
        .await
        .unwrap();
    let item = Item::from_item(got.item().unwrap());
    assert!(item.delivered.contains(&Entry::Findings), "{item:?}");
    assert!(
        item.delivered.contains(&Entry::destination("chat")),
        "{item:?}"
    );

    // Another topic is refused.
    let denied = aws_sdk_sns::Client::new(&handler)
        .publish()
        .topic_arn(&topics[1])
        .message("not allowed")
        .send()
        .await;
    assert!(denied.is_err(), "{denied:?}");
}
