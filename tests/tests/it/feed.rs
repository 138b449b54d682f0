//! The actor feed against a real moto server, in process: Department B's call reaches the
//! handler as CloudTrail's EventBridge event (built from the EC2 call actually made) before AWS
//! Config's notification of the change (built from the group's real states), and the email names
//! Department B; with early warning on, Department A is told at once and exactly once.

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::operation::RequestId;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Report, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_synth::cloudtrail::{self, Call, Identity};
use sgwatch_synth::{self as synth, Capture};
use sgwatch_tests::{idempotency_table, Moto, ACCOUNT, REGION};

const SENDER: &str = "alerts@example.com";
const OWNER: &str = "dept-a@corp.example";
const TABLE: &str = "sgwatch-ledger";
const DEPT_B: &str = "arn:aws:iam::123456789012:user/dept-b-admin";

fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![
        ("SGWATCH_SENDER", SENDER),
        ("SGWATCH_IDEMPOTENCY_TABLE", TABLE),
    ];
    vars.extend_from_slice(extra);
    Settings::from_lookup(|k| {
        vars.iter()
            .rev()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

/// What the story's change gives the handler: the feed event of Department B's call and the
/// SNS event of Config's notification that follows.
struct Change {
    group: String,
    feed_event: Value,
    notification: Value,
}

/// Department A's group (HTTP from anywhere, tagged), then Department B opens RDP on it.
async fn rdp_opened_by_dept_b(moto: &Moto) -> Change {
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    idempotency_table(&config, TABLE).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let group = ec2
        .create_security_group()
        .group_name("dept-a-web")
        .description("Department A public web servers")
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .tags(Tag::builder().key("NotifyOnChange").value("Yes").build())
                .tags(Tag::builder().key("OwnerDL").value(OWNER).build())
                .build(),
        )
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_owned();
    let open = |port: i32| {
        IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(port)
            .to_port(port)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build()
    };
    ec2.authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(open(80))
        .send()
        .await
        .unwrap();
    let before = synth::describe(&ec2, &group).await.unwrap();
    let called_at = DateTime::from(SystemTime::now());
    let out = ec2
        .authorize_security_group_ingress()
        .group_id(&group)
        .ip_permissions(open(3389))
        .send()
        .await
        .unwrap();
    let after = synth::describe(&ec2, &group).await.unwrap();
    let call = Call {
        event_name: "AuthorizeSecurityGroupIngress".into(),
        request_parameters: cloudtrail::authorize_ingress_parameters(&group, &[open(3389)]),
        response_elements: json!({"_return": true}),
        request_id: out.request_id().unwrap_or("moto").to_owned(),
        region: REGION.into(),
        time: called_at,
    };
    let who = Identity {
        arn: DEPT_B.into(),
        account: ACCOUNT.into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "aws-cli/2.15.30".into(),
    };
    let feed_event = cloudtrail::api_call_event(&call, &who).unwrap();
    // Config records the change a little after the call.
    let capture = Capture {
        account: ACCOUNT.into(),
        region: REGION.into(),
        time: DateTime::from(SystemTime::now() + Duration::from_secs(2)),
    };
    let message = synth::item_change(Some(&before), Some(&after), &capture).unwrap();
    Change {
        group,
        feed_event,
        notification: synth::sns_event(&message, "config-rdp-opened"),
    }
}

#[tokio::test]
async fn the_config_email_names_the_caller_the_feed_recorded() {
    let moto = Moto::start();
    let change = rdp_opened_by_dept_b(&moto).await;
    let config = moto.sdk_config(None).await;
    let settings = settings(&[("SGWATCH_EARLY_WARNING", "off")]);
    let services = Services::new(&config, &settings);

    let report = handle(&change.feed_event, &settings, &services)
        .await
        .unwrap();
    assert_eq!(
        report,
        Report {
            records: 1,
            recorded: 1,
            ..Report::default()
        }
    );
    assert!(
        moto.ses_messages().await.is_empty(),
        "the feed sends no email"
    );

    let report = handle(&change.notification, &settings, &services)
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0), "{report:?}");
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, [OWNER]);
    let text = mail[0].text.as_deref().unwrap();
    assert!(
        text.contains(&format!(
            "Changed by: {DEPT_B} from 203.0.113.7 (AuthorizeSecurityGroupIngress at "
        )),
        "{text}"
    );
    assert!(
        mail[0]
            .html
            .as_deref()
            .unwrap()
            .contains("user/dept-b-admin from 203.0.113.7"),
        "{:?}",
        mail[0].html
    );
    assert!(
        text.contains("[critical] +ingress tcp/3389 from 0.0.0.0/0"),
        "{text}"
    );
    let _ = change.group;
}

#[tokio::test]
async fn early_warning_tells_department_a_at_once_and_only_once() {
    let moto = Moto::start();
    let change = rdp_opened_by_dept_b(&moto).await;
    let config = moto.sdk_config(None).await;
    let settings = settings(&[]);
    let services = Services::new(&config, &settings);

    let report = handle(&change.feed_event, &settings, &services)
        .await
        .unwrap();
    assert_eq!(
        report,
        Report {
            records: 1,
            sent: 1,
            recorded: 1,
            ..Report::default()
        }
    );
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, [OWNER]);
    let subject = mail[0].subject.as_deref().unwrap();
    assert!(
        subject.starts_with(&format!(
            "[sgwatch CRITICAL] {} (dept-a-web) ",
            change.group
        )),
        "{subject}"
    );
    assert!(
        subject.ends_with(": +ingress tcp/3389 from 0.0.0.0/0"),
        "{subject}"
    );
    let text = mail[0].text.as_deref().unwrap();
    assert!(text.starts_with("NOTE: Early warning: CloudTrail reported this AuthorizeSecurityGroupIngress call seconds ago."), "{text}");
    assert!(
        text.contains(&format!(
            "Changed by: {DEPT_B} from 203.0.113.7 (AuthorizeSecurityGroupIngress at "
        )),
        "{text}"
    );

    // EventBridge delivers at least once: the same call again warns no one twice.
    let again = handle(&change.feed_event, &settings, &services)
        .await
        .unwrap();
    assert_eq!((again.sent, again.recorded), (0, 1), "{again:?}");

    // Config's notification of the same change has nothing new to say.
    let report = handle(&change.notification, &settings, &services)
        .await
        .unwrap();
    assert_eq!(
        report,
        Report {
            records: 1,
            skipped: 1,
            ..Report::default()
        }
    );
    assert_eq!(
        moto.ses_messages().await.len(),
        1,
        "exactly one email in all"
    );
}

#[tokio::test]
async fn a_feed_that_cannot_be_written_fails_nothing_and_the_notification_still_goes_out() {
    let moto = Moto::start();
    let change = rdp_opened_by_dept_b(&moto).await;
    let config = moto.sdk_config(None).await;
    // The feed's table is missing: the write fails, the invocation does not.
    let broken = settings(&[
        ("SGWATCH_IDEMPOTENCY_TABLE", "no-such-table"),
        ("SGWATCH_EARLY_WARNING", "off"),
    ]);
    let report = handle(
        &change.feed_event,
        &broken,
        &Services::new(&config, &broken),
    )
    .await
    .expect("a feed failure never fails the invocation");
    assert_eq!(
        report,
        Report {
            records: 1,
            skipped: 1,
            ..Report::default()
        }
    );
    // The notification is decided as ever; without the feed the actor comes from LookupEvents,
    // which moto lacks: unknown, with both reasons.
    let ok = settings(&[("SGWATCH_EARLY_WARNING", "off")]);
    let report = handle(&change.notification, &ok, &Services::new(&config, &ok))
        .await
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let text = moto.ses_messages().await[0].text.clone().unwrap();
    assert!(text.contains("Changed by: unknown (the actor feed has no call on this group in the 15 minutes before the change; the CloudTrail lookup failed)"), "{text}");
}
