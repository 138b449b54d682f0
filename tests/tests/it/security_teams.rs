//! Where security teams look, against moto and a PagerDuty capture server on loopback: a
//! Security Hub finding imported for RDP opened and archived when the rule goes; the Amazon Q
//! Developer custom notification on an SNS topic, with every documented field; a PagerDuty
//! trigger and its resolve under one dedup key (the finding's Id); and each one's failure retried,
//! recorded in the ledger, and never in the email's way.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_securityhub::types::{ComplianceStatus, RecordState, SeverityLabel};
use aws_sdk_ssm::types::ParameterType;
use serde_json::{json, Value};
use sgwatch_handler::ledger::{Entry, Item};
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_tests::capture::{Answer, CaptureServer};
use sgwatch_tests::emulator::Moto;
use sgwatch_tests::fixture::{self, TABLE};

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const GROUP: &str = "sg-0123456789abcdef0";
/// The identity of the rule the fixture opens: the finding's Id and PagerDuty's dedup key.
const RDP: &str = "123456789012/us-east-1/sg-0123456789abcdef0/ingress/tcp:3389:3389:0.0.0.0/0";
const ROUTING_KEY: &str = "R0UT1NGKEY0F32CHARACTERS00000000";
const OWNER: &str = "platform-team@example.com";

/// RDP opened on the fixture's group, which names `channels` in its channels tag.
fn opened(channels: &str) -> Value {
    let mut m = fixture::json("rdp-opened.json");
    if !channels.is_empty() {
        m["configurationItem"]["tags"]["NotifyChannels"] = json!(channels);
    }
    m
}

/// The change that removes the RDP rule again, 48 minutes later.
fn removed(channels: &str) -> Value {
    let mut m = opened(channels);
    let diff =
        &mut m["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"];
    let rule = diff["updatedValue"].take();
    diff["previousValue"] = rule;
    diff["changeType"] = json!("DELETE");
    let item = &mut m["configurationItem"];
    item["configuration"]["ipPermissions"]
        .as_array_mut()
        .unwrap()
        .truncate(1);
    item["configurationItemCaptureTime"] = json!("2026-11-20T10:02:00.000Z");
    item["configurationStateId"] = json!(1763632920000_u64);
    m
}

fn sns(message: &Value, id: &str) -> Value {
    fixture::sns(message, id)
}

async fn put_parameter(config: &aws_config::SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(config)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("putting {name}: {e:?}"));
}

/// The ledger record of the change with state id `state`.
async fn ledger(config: &aws_config::SdkConfig, state: u64) -> Item {
    let key = format!("{ACCOUNT}/{REGION}/{GROUP}/{state}");
    let got = aws_sdk_dynamodb::Client::new(config)
        .get_item()
        .table_name(TABLE)
        .key("pk", AttributeValue::S(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    Item::from_item(
        got.item()
            .unwrap_or_else(|| panic!("no ledger record {key}")),
    )
}

async fn findings(
    config: &aws_config::SdkConfig,
) -> Vec<aws_sdk_securityhub::types::AwsSecurityFinding> {
    fixture::security_hub_findings(config).await
}

const OPENED_STATE: u64 = 1763629447512;
const REMOVED_STATE: u64 = 1763632920000;

#[tokio::test]
async fn a_finding_is_imported_for_rdp_and_archived_when_the_rule_goes() {
    let (moto, config) = Moto::ready_to_send().await;
    aws_sdk_securityhub::Client::new(&config)
        .enable_security_hub()
        .send()
        .await
        .unwrap();
    let settings = fixture::settings(&[("SGWATCH_SECURITY_HUB", "on")]);
    let services = Services::new(&config, &settings);

    let report = handle(&sns(&opened(""), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(
        moto.ses_messages().await.len(),
        1,
        "the owner is emailed too"
    );
    let found = findings(&config).await;
    assert_eq!(found.len(), 1, "{found:#?}");
    let f = &found[0];
    // Every attribute the ASFF requires, as Security Hub stored them.
    assert_eq!(f.schema_version(), Some("2018-10-08"));
    assert_eq!(f.id(), Some(RDP));
    assert_eq!(
        f.product_arn(),
        Some("arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default")
    );
    assert_eq!(f.aws_account_id(), Some(ACCOUNT));
    assert_eq!(f.generator_id(), Some("sgwatch/internet-open-ingress"));
    assert_eq!(
        f.types(),
        ["Software and Configuration Checks/AWS Security Best Practices/Network Reachability"]
    );
    // Created when Config captured the change; a first import's UpdatedAt is its CreatedAt.
    assert_eq!(f.created_at(), Some("2026-11-20T09:14:07.512Z"));
    assert_eq!(f.updated_at(), f.created_at());
    assert_eq!(
        f.severity().and_then(|s| s.label()),
        Some(&SeverityLabel::Critical)
    );
    assert_eq!(
        f.finding_provider_fields()
            .and_then(|p| p.severity())
            .and_then(|s| s.label()),
        Some(&SeverityLabel::Critical)
    );
    assert_eq!(
        f.title(),
        Some("ingress tcp/3389 from 0.0.0.0/0 open to the internet on sg-0123456789abcdef0 (shared-http) in 123456789012/us-east-1")
    );
    assert!(f
        .description()
        .unwrap()
        .contains("now allows ingress tcp/3389 from 0.0.0.0/0"));
    let r = &f.resources()[0];
    assert_eq!(r.r#type(), Some("AwsEc2SecurityGroup"));
    assert_eq!(
        r.id(),
        Some("arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123456789abcdef0")
    );
    let group = r.details().unwrap().aws_ec2_security_group().unwrap();
    assert_eq!(
        (group.group_id(), group.group_name()),
        (Some(GROUP), Some("shared-http"))
    );
    assert_eq!(
        group.ip_permissions()[0].ip_ranges()[0].cidr_ip(),
        Some("0.0.0.0/0")
    );
    assert_eq!(
        f.product_fields().unwrap().get("sgwatch/actor").map(String::as_str),
        Some("unknown (the actor feed has no call on this group in the 15 minutes before the change; actor lookup is off (SGWATCH_LOOKUP_ACTOR=false))")
    );
    let remedy = f.remediation().unwrap().recommendation().unwrap();
    assert!(
        remedy.text().unwrap().contains(
            "aws ec2 revoke-security-group-ingress --region us-east-1 --group-id sg-0123456789abcdef0"
        ),
        "{remedy:?}"
    );
    assert_eq!(f.record_state(), Some(&RecordState::Active));
    assert_eq!(
        f.compliance().and_then(|c| c.status()),
        Some(&ComplianceStatus::Failed)
    );
    assert!(ledger(&config, OPENED_STATE)
        .await
        .delivered
        .contains(&Entry::Findings));

    // A retry of the same notification imports nothing again.
    handle(&sns(&opened(""), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!(findings(&config).await.len(), 1);

    // The rule goes: the same finding, archived and passed, with a later UpdatedAt and the
    // CreatedAt of its opening.
    let report = handle(&sns(&removed(""), "m-2"), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let found = findings(&config).await;
    assert_eq!(found.len(), 1, "one finding, updated: {found:#?}");
    let f = &found[0];
    assert_eq!(f.id(), Some(RDP));
    assert_eq!(f.record_state(), Some(&RecordState::Archived));
    assert_eq!(
        f.compliance().and_then(|c| c.status()),
        Some(&ComplianceStatus::Passed)
    );
    assert_eq!(f.created_at(), Some("2026-11-20T09:14:07.512Z"));
    assert_eq!(f.updated_at(), Some("2026-11-20T10:02:00.000Z"));
    assert!(f
        .title()
        .unwrap()
        .contains("closed on sg-0123456789abcdef0"));
    assert!(ledger(&config, REMOVED_STATE)
        .await
        .delivered
        .contains(&Entry::Findings));
}

#[tokio::test]
async fn pagerduty_triggers_and_resolves_one_incident_under_the_finding_s_id() {
    let pager = CaptureServer::start(vec![]);
    let (moto, config) = Moto::ready_to_send().await;
    put_parameter(&config, "/sgwatch/pagerduty-key", ROUTING_KEY).await;
    let url = format!("{}/v2/enqueue", pager.url);
    let settings = fixture::settings(&[
        (
            "SGWATCH_DESTINATIONS",
            "oncall=pagerduty:/sgwatch/pagerduty-key",
        ),
        ("SGWATCH_PAGERDUTY_URL", &url),
        ("SGWATCH_TEST_LOOPBACK_DESTINATIONS", "true"),
    ]);
    let services = Services::new(&config, &settings);

    let report = handle(&sns(&opened("oncall"), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let posts = pager.requests();
    assert_eq!(posts.len(), 1, "one rule opened, one trigger");
    assert_eq!(posts[0].path, "/v2/enqueue");
    let trigger = posts[0].json();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    assert_eq!(trigger["dedup_key"], RDP);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["source"],
        "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123456789abcdef0"
    );
    assert_eq!(trigger["payload"]["timestamp"], "2026-11-20T09:14:07.512Z");
    assert!(trigger["payload"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("[sgwatch CRITICAL] ingress tcp/3389 from 0.0.0.0/0 open to the internet"));
    assert!(trigger["payload"]["custom_details"]["remove it"]
        .as_str()
        .unwrap()
        .starts_with("aws ec2 revoke-security-group-ingress"));
    assert!(ledger(&config, OPENED_STATE)
        .await
        .delivered
        .contains(&Entry::destination("oncall")));
    assert_eq!(moto.ses_messages().await.len(), 1);

    // A retry pages no one again: the ledger has the destination.
    handle(&sns(&opened("oncall"), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!(pager.requests().len(), 1);

    handle(&sns(&removed("oncall"), "m-2"), &settings, &services)
        .await
        .unwrap();
    let posts = pager.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[1].json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": RDP})
    );
}

#[tokio::test]
async fn below_the_paging_level_nothing_pages_and_nothing_is_recorded_as_paged() {
    let pager = CaptureServer::start(vec![]);
    let (_moto, config) = Moto::ready_to_send().await;
    put_parameter(&config, "/sgwatch/pagerduty-key", ROUTING_KEY).await;
    let url = format!("{}/v2/enqueue", pager.url);
    let settings = fixture::settings(&[
        (
            "SGWATCH_DESTINATIONS",
            "oncall=pagerduty:/sgwatch/pagerduty-key",
        ),
        ("SGWATCH_PAGERDUTY_URL", &url),
        ("SGWATCH_TEST_LOOPBACK_DESTINATIONS", "true"),
        ("SGWATCH_PAGE_AT", "critical"),
    ]);
    let services = Services::new(&config, &settings);
    // HTTP from the internet: told to the owner, below the paging level.
    let mut m = opened("oncall");
    let rule = &mut m["configurationItemDiff"]["changedProperties"]
        ["Configuration.IpPermissions.1"]["updatedValue"];
    rule["fromPort"] = json!(8443);
    rule["toPort"] = json!(8443);
    m["configurationItem"]["configuration"]["ipPermissions"][1]["fromPort"] = json!(8443);
    m["configurationItem"]["configuration"]["ipPermissions"][1]["toPort"] = json!(8443);
    let report = handle(&sns(&m, "m-1"), &settings, &services).await.unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert!(pager.requests().is_empty());
    assert!(!ledger(&config, OPENED_STATE)
        .await
        .delivered
        .contains(&Entry::destination("oncall")));
}

#[tokio::test]
async fn q_developer_gets_a_custom_notification_with_every_documented_field() {
    let (moto, config) = Moto::ready_to_send().await;
    let sns_client = aws_sdk_sns::Client::new(&config);
    let topic = sns_client
        .create_topic()
        .name("secops-chat")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    // What the chat configuration would read, caught in a queue subscribed with raw delivery.
    let queue = fixture::queue(&config, "chat-copy").await;
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:chat-copy");
    sns_client
        .subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    let destinations = format!("chat=chatbot:{topic}");
    let settings = fixture::settings(&[("SGWATCH_DESTINATIONS", &destinations)]);
    let services = Services::new(&config, &settings);

    let report = handle(&sns(&opened("chat"), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let got = fixture::queued(&config, &queue).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    // The custom-notification event's documented fields: version and source (required, fixed
    // values), content's title and description, and next steps.
    assert_eq!(m["version"], "1.0");
    assert_eq!(m["source"], "custom");
    assert_eq!(
        m["content"]["title"],
        "[sgwatch CRITICAL] sg-0123456789abcdef0 (shared-http) 123456789012/us-east-1: +ingress tcp/3389 from 0.0.0.0/0"
    );
    let description = m["content"]["description"].as_str().unwrap();
    assert!(
        description.contains("• +ingress tcp/3389 from 0.0.0.0/0"),
        "{description}"
    );
    assert!(description.contains("Why: "), "{description}");
    assert!(
        m["content"].get("textType").is_none(),
        "nothing is read as Markdown"
    );
    let steps: Vec<&str> = m["content"]["nextSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        steps[0].contains("aws ec2 revoke-security-group-ingress"),
        "{steps:?}"
    );
    assert!(steps
        .last()
        .unwrap()
        .starts_with("Open the group in the AWS console: https://"));
    assert_eq!(
        m["metadata"]["threadId"],
        "sgwatch/123456789012/us-east-1/sg-0123456789abcdef0"
    );
    assert!(m["id"].as_str().unwrap().ends_with("/chat"));
    assert!(ledger(&config, OPENED_STATE)
        .await
        .delivered
        .contains(&Entry::destination("chat")));
    assert_eq!(moto.ses_messages().await.len(), 1);
}

/// Settings for the failure tests: Security Hub on, PagerDuty at `url`, a chat topic.
fn all_three(url: &str, topic: &str) -> Settings {
    let destinations = format!("oncall=pagerduty:/sgwatch/pagerduty-key,chat=chatbot:{topic}");
    fixture::settings(&[
        ("SGWATCH_SECURITY_HUB", "on"),
        ("SGWATCH_DESTINATIONS", &destinations),
        ("SGWATCH_PAGERDUTY_URL", url),
        ("SGWATCH_TEST_LOOPBACK_DESTINATIONS", "true"),
    ])
}

#[tokio::test]
async fn a_pagerduty_outage_fails_the_invocation_and_the_retry_pages_once_without_a_second_email() {
    // PagerDuty answers 500 (it may have taken the event: not sent again within the attempt).
    let pager = CaptureServer::start(vec![Answer::status(500)]);
    let (moto, config) = Moto::ready_to_send().await;
    put_parameter(&config, "/sgwatch/pagerduty-key", ROUTING_KEY).await;
    let topic = aws_sdk_sns::Client::new(&config)
        .create_topic()
        .name("secops-chat")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_owned();
    let settings = all_three(&format!("{}/v2/enqueue", pager.url), &topic);
    let services = Services::new(&config, &settings);

    let err = handle(&sns(&opened("oncall chat"), "m-1"), &settings, &services)
        .await
        .expect_err("a page that failed fails the invocation, for Lambda's retry");
    assert!(err.to_string().contains("destination oncall"), "{err}");
    // The email, the chat message and the finding went all the same, and are in the ledger.
    assert_eq!(moto.ses_messages().await.len(), 1);
    assert_eq!(findings(&config).await.len(), 1);
    let record = ledger(&config, OPENED_STATE).await;
    assert!(record.delivered.contains(&Entry::email(OWNER)));
    assert!(record.delivered.contains(&Entry::destination("chat")));
    assert!(record.delivered.contains(&Entry::Findings));
    assert!(!record.delivered.contains(&Entry::destination("oncall")));

    // Lambda's retry: PagerDuty takes the trigger; nobody else hears twice.
    let report = handle(&sns(&opened("oncall chat"), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let posts = pager.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].json()["dedup_key"], RDP);
    assert_eq!(moto.ses_messages().await.len(), 1);
    assert!(ledger(&config, OPENED_STATE)
        .await
        .delivered
        .contains(&Entry::destination("oncall")));
}

#[tokio::test]
async fn security_hub_off_and_a_missing_topic_block_neither_the_email_nor_the_page() {
    let pager = CaptureServer::start(vec![]);
    let (moto, config) = Moto::ready_to_send().await;
    put_parameter(&config, "/sgwatch/pagerduty-key", ROUTING_KEY).await;
    // A topic that does not exist, and Security Hub refusing every finding: a security-hub
    // endpoint that answers InvalidAccessException, as Security Hub does where it is not
    // enabled, is the capture server (moto imports findings whether enabled or not).
    let topic = format!("arn:aws:sns:{REGION}:{ACCOUNT}:no-such-topic");
    let hub = CaptureServer::start(vec![Answer::status(401)
        .header("x-amzn-ErrorType", "InvalidAccessException")
        .body(r#"{"Message":"Account 123456789012 is not subscribed to AWS Security Hub","Code":"InvalidAccessException"}"#)]);
    let settings = all_three(&format!("{}/v2/enqueue", pager.url), &topic);
    let mut services = Services::new(&config, &settings);
    services.securityhub = aws_sdk_securityhub::Client::from_conf(
        aws_sdk_securityhub::config::Builder::from(&config)
            .endpoint_url(&hub.url)
            .build(),
    );

    let report = handle(&sns(&opened("oncall chat"), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(moto.ses_messages().await.len(), 1);
    assert_eq!(pager.requests().len(), 1);
    assert_eq!(hub.requests().len(), 1, "refused for good: not retried");
    assert_eq!(hub.requests()[0].path, "/findings/import");
    let record = ledger(&config, OPENED_STATE).await;
    assert!(record.delivered.contains(&Entry::destination("oncall")));
    assert!(!record.delivered.contains(&Entry::destination("chat")));
    assert!(!record.delivered.contains(&Entry::Findings));
}

#[tokio::test]
async fn what_the_fallback_destination_paged_is_resolved_though_the_removal_tells_no_one() {
    // The group is not opted in: RDP reaches the security team through --always-notify-at and
    // the fallback destination; the removal is LOW and notifies no one.
    let pager = CaptureServer::start(vec![]);
    let (moto, config) = Moto::ready_to_send().await;
    put_parameter(&config, "/sgwatch/pagerduty-key", ROUTING_KEY).await;
    let url = format!("{}/v2/enqueue", pager.url);
    let settings = fixture::settings(&[
        ("SGWATCH_SECURITY_HUB", "on"),
        (
            "SGWATCH_DESTINATIONS",
            "oncall=pagerduty:/sgwatch/pagerduty-key",
        ),
        ("SGWATCH_FALLBACK_DESTINATION", "oncall"),
        ("SGWATCH_FALLBACK_RECIPIENT", "secops@example.com"),
        ("SGWATCH_ALWAYS_NOTIFY_AT", "high"),
        ("SGWATCH_PAGERDUTY_URL", &url),
        ("SGWATCH_TEST_LOOPBACK_DESTINATIONS", "true"),
    ]);
    let services = Services::new(&config, &settings);
    let untagged = |mut m: Value| {
        m["configurationItem"]["tags"] = json!({});
        m["configurationItem"]["configuration"]["tags"] = json!([]);
        m
    };

    let report = handle(&sns(&untagged(opened("")), "m-1"), &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0));
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].destinations, ["secops@example.com"]);
    assert_eq!(pager.requests()[0].json()["event_action"], "trigger");
    assert_eq!(
        findings(&config).await[0].record_state(),
        Some(&RecordState::Active)
    );

    let report = handle(&sns(&untagged(removed("")), "m-2"), &settings, &services)
        .await
        .unwrap();
    assert_eq!(report.failed, 0);
    assert_eq!(
        moto.ses_messages().await.len(),
        1,
        "the removal emails no one"
    );
    let posts = pager.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(
        posts[1].json(),
        json!({"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": RDP})
    );
    let f = &findings(&config).await[0];
    assert_eq!(f.record_state(), Some(&RecordState::Archived));
    assert_eq!(f.updated_at(), Some("2026-11-20T10:02:00.000Z"));
}

#[tokio::test]
async fn a_hub_imports_a_member_s_finding_into_the_member_s_own_security_hub() {
    // With the default product, Security Hub takes a finding only from the account it belongs
    // to: the hub imports a member's through the member's reader role.
    const MEMBER: &str = "111111111111";
    let (moto, hub) = Moto::ready_to_send().await;
    let member = moto.sdk_config_in_account(MEMBER, REGION).await;
    let settings = fixture::settings(&[("SGWATCH_HUB", "true"), ("SGWATCH_SECURITY_HUB", "on")]);
    let services = Services::new(&hub, &settings);
    let mut m = opened("");
    m["configurationItem"]["awsAccountId"] = json!(MEMBER);

    let report = handle(&sns(&m, "m-1"), &settings, &services)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", moto.log()));
    assert_eq!((report.sent, report.failed), (1, 0), "{report:?}");
    let theirs = findings(&member).await;
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    assert_eq!(theirs[0].aws_account_id(), Some(MEMBER));
    assert_eq!(
        theirs[0].product_arn(),
        Some("arn:aws:securityhub:us-east-1:111111111111:product/111111111111/default")
    );
    assert_eq!(
        theirs[0].id(),
        Some("111111111111/us-east-1/sg-0123456789abcdef0/ingress/tcp:3389:3389:0.0.0.0/0")
    );
    assert!(
        findings(&hub).await.is_empty(),
        "none in the hub's own account"
    );
}

#[tokio::test]
async fn a_denied_import_is_final_whatever_its_body_says() {
    // An explicit deny (an SCP, a permissions boundary) answers 403; its body need not be the
    // JSON error Security Hub writes. Retrying cannot mend it: the email goes, the invocation
    // succeeds, and `status` says what is missing.
    let (moto, config) = Moto::ready_to_send().await;
    let hub = CaptureServer::start(vec![Answer::status(403)
        .header("content-type", "text/html")
        .body("<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>")]);
    let settings = fixture::settings(&[("SGWATCH_SECURITY_HUB", "on")]);
    let mut services = Services::new(&config, &settings);
    services.securityhub = aws_sdk_securityhub::Client::from_conf(
        aws_sdk_securityhub::config::Builder::from(&config)
            .endpoint_url(&hub.url)
            .build(),
    );
    let report = handle(&sns(&opened(""), "m-1"), &settings, &services)
        .await
        .unwrap_or_else(|e| {
            panic!("a denial failed the invocation, so Lambda would retry it: {e}")
        });
    assert_eq!((report.sent, report.failed), (1, 0));
    assert_eq!(moto.ses_messages().await.len(), 1);
    assert_eq!(hub.requests().len(), 1, "a denial is not retried");
    assert!(!ledger(&config, OPENED_STATE)
        .await
        .delivered
        .contains(&Entry::Findings));
}
