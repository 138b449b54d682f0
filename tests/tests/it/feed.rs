//! The actor feed against a real moto server, in process: Department B's call reaches the
//! handler as CloudTrail's EventBridge event (built from the EC2 call actually made) before AWS
//! Config's notification of the change (built from the group's real states), and the email names
//! Department B; with early warning on, Department A is told at once and exactly once.

use std::time::{Duration, SystemTime};

use aws_sdk_ec2::operation::RequestId;
use aws_sdk_ec2::types::Tag;
use aws_smithy_types::DateTime;
use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Report, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_synth::cloudtrail::{self, Call, Identity};
use sgwatch_synth::{self as synth, Capture};
use sgwatch_tests::emulator::{FaultProxy, Moto, ACCOUNT, REGION};
use sgwatch_tests::fixture::{
    self, idempotency_table, open, open_to_the_world, security_group, SENDER,
};

const OWNER: &str = "dept-a@corp.example";
const TABLE: &str = "sgwatch-ledger";
const DEPT_B: &str = "arn:aws:iam::123456789012:user/dept-b-admin";

fn settings(extra: &[(&str, &str)]) -> Settings {
    let mut vars = vec![
        ("SGWATCH_SENDER", SENDER),
        ("SGWATCH_IDEMPOTENCY_TABLE", TABLE),
    ];
    vars.extend_from_slice(extra);
    fixture::settings_from(&vars)
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
    let (ec2, group) = dept_a_group(moto).await;
    let before = synth::describe(&ec2, &group).await.unwrap();
    let called_at = DateTime::from(SystemTime::now());
    let request_id = open(&ec2, &group, 3389).await.unwrap();
    let after = synth::describe(&ec2, &group).await.unwrap();
    let call = Call {
        event_name: "AuthorizeSecurityGroupIngress".into(),
        request_parameters: cloudtrail::authorize_ingress_parameters(
            &group,
            &[open_to_the_world(3389)],
        ),
        response_elements: json!({"_return": true}),
        request_id,
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
    // which has no event for this made-up change: unknown, with both reasons.
    let ok = settings(&[("SGWATCH_EARLY_WARNING", "off")]);
    let report = handle(&change.notification, &ok, &Services::new(&config, &ok))
        .await
        .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let text = moto.ses_messages().await[0].text.clone().unwrap();
    assert!(text.contains("Changed by: unknown (the actor feed has no call on this group in the 15 minutes before the change; CloudTrail has no matching security-group event yet)"), "{text}");
}

/// Department A's tagged group, HTTP open to the world.
async fn dept_a_group(moto: &Moto) -> (aws_sdk_ec2::Client, String) {
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    idempotency_table(&config, TABLE).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let tags = [("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)];
    let group = security_group(&ec2, "dept-a-web", "Department A public web servers", &tags)
        .await
        .unwrap();
    open(&ec2, &group, 80).await.unwrap();
    (ec2, group)
}

/// Department B's `name` call on `group` (opening or closing RDP to the world) made in moto, and
/// the feed event CloudTrail would send for it, dated `at`.
async fn rdp_call(ec2: &aws_sdk_ec2::Client, group: &str, name: &str, at: SystemTime) -> Value {
    let request_id = if name.starts_with("Authorize") {
        let out = ec2
            .authorize_security_group_ingress()
            .group_id(group)
            .ip_permissions(open_to_the_world(3389))
            .send()
            .await
            .unwrap();
        out.request_id().unwrap_or("moto").to_owned()
    } else {
        let out = ec2
            .revoke_security_group_ingress()
            .group_id(group)
            .ip_permissions(open_to_the_world(3389))
            .send()
            .await
            .unwrap();
        out.request_id().unwrap_or("moto").to_owned()
    };
    let call = Call {
        event_name: name.into(),
        request_parameters: cloudtrail::authorize_ingress_parameters(
            group,
            &[open_to_the_world(3389)],
        ),
        response_elements: json!({"_return": true}),
        request_id,
        region: REGION.into(),
        time: DateTime::from(at),
    };
    let who = Identity {
        arn: DEPT_B.into(),
        account: ACCOUNT.into(),
        source_ip: "203.0.113.7".into(),
        user_agent: "aws-cli/2.15.30".into(),
    };
    cloudtrail::api_call_event(&call, &who).unwrap()
}

/// A time `minutes` into the next hour: the calls of one scenario share the feed's hourly item,
/// as calls within an hour do, and none is old enough to lose its early warning.
fn into_next_hour(minutes: u64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs((now / 3600 + 1) * 3600 + minutes * 60)
}

/// RDP is opened (Department A warned), revoked, and opened again by a call whose feed event
/// is lost, so no warning goes out for it. AWS Config's notification of the reopening, captured
/// at `capture_minute`, must reach Department A.
async fn reopened_after_a_warning(opened: u64, revoked: u64, reopened: u64, captured: u64) {
    let moto = Moto::start();
    let (ec2, group) = dept_a_group(&moto).await;
    let config = moto.sdk_config(None).await;
    let settings = settings(&[("SGWATCH_LOOKUP_ACTOR", "false")]);
    let services = Services::new(&config, &settings);

    let first = rdp_call(
        &ec2,
        &group,
        "AuthorizeSecurityGroupIngress",
        into_next_hour(opened),
    )
    .await;
    let report = handle(&first, &settings, &services).await.unwrap();
    assert_eq!((report.sent, report.recorded), (1, 1), "{report:?}");
    let revoke = rdp_call(
        &ec2,
        &group,
        "RevokeSecurityGroupIngress",
        into_next_hour(revoked),
    )
    .await;
    let report = handle(&revoke, &settings, &services).await.unwrap();
    assert_eq!((report.sent, report.recorded), (0, 1), "{report:?}");

    let before = synth::describe(&ec2, &group).await.unwrap();
    let _lost = rdp_call(
        &ec2,
        &group,
        "AuthorizeSecurityGroupIngress",
        into_next_hour(reopened),
    )
    .await;
    let after = synth::describe(&ec2, &group).await.unwrap();
    let capture = Capture {
        account: ACCOUNT.into(),
        region: REGION.into(),
        time: DateTime::from(into_next_hour(captured)),
    };
    let message = synth::item_change(Some(&before), Some(&after), &capture).unwrap();
    let report = handle(
        &synth::sns_event(&message, "config-rdp-reopened"),
        &settings,
        &services,
    )
    .await
    .unwrap();
    assert_eq!((report.sent, report.skipped), (1, 0), "{report:?}");

    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 2, "the warning, then the reopening: {mail:#?}");
    let reopening = &mail[1];
    assert_eq!(reopening.destinations, [OWNER]);
    let text = reopening.text.as_deref().unwrap();
    assert!(
        text.contains("[critical] +ingress tcp/3389 from 0.0.0.0/0"),
        "{text}"
    );
    assert!(!text.contains("Early warning"), "{text}");
}

#[tokio::test]
async fn a_stale_early_warning_does_not_hide_a_reopening_half_an_hour_later() {
    // 10:05 opened and warned, 10:10 revoked, 10:40 opened again, recorded at 10:41.
    reopened_after_a_warning(5, 10, 40, 41).await;
}

#[tokio::test]
async fn a_warning_followed_by_a_revoke_of_its_rule_no_longer_counts() {
    // All within the feed's window of the notification: 10:01, 10:03, 10:05, recorded at 10:06.
    reopened_after_a_warning(1, 3, 5, 6).await;
}

#[tokio::test]
async fn a_call_delivered_more_than_fifteen_minutes_late_sends_no_early_warning() {
    let moto = Moto::start();
    let (ec2, group) = dept_a_group(&moto).await;
    let config = moto.sdk_config(None).await;
    let settings = settings(&[("SGWATCH_LOOKUP_ACTOR", "false")]);
    let services = Services::new(&config, &settings);
    let before = synth::describe(&ec2, &group).await.unwrap();
    let made = SystemTime::now() - Duration::from_secs(20 * 60);
    let replayed = rdp_call(&ec2, &group, "AuthorizeSecurityGroupIngress", made).await;
    let after = synth::describe(&ec2, &group).await.unwrap();

    let report = handle(&replayed, &settings, &services).await.unwrap();
    assert_eq!(
        report,
        Report {
            records: 1,
            recorded: 1,
            ..Report::default()
        }
    );
    assert!(moto.ses_messages().await.is_empty(), "no early warning");

    // AWS Config's notification tells it, naming the caller.
    let capture = Capture {
        account: ACCOUNT.into(),
        region: REGION.into(),
        time: DateTime::from(made + Duration::from_secs(30)),
    };
    let message = synth::item_change(Some(&before), Some(&after), &capture).unwrap();
    let report = handle(
        &synth::sns_event(&message, "config-late"),
        &settings,
        &services,
    )
    .await
    .unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let mail = moto.ses_messages().await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    let text = mail[0].text.as_deref().unwrap();
    assert!(!text.contains("Early warning"), "{text}");
    assert!(text.contains(&format!("Changed by: {DEPT_B}")), "{text}");
}

#[tokio::test]
async fn rejected_owners_in_every_version_of_the_email_are_reported_to_the_fallback() {
    const SECOND: &str = "dept-a-oncall@corp.example";
    const FALLBACK: &str = "secops@corp.example";
    let moto = Moto::start();
    let (ec2, group) = dept_a_group(&moto).await;
    let config = moto.sdk_config(None).await;
    let settings = settings(&[
        ("SGWATCH_LOOKUP_ACTOR", "false"),
        ("SGWATCH_FALLBACK_RECIPIENT", FALLBACK),
    ]);
    let services = Services::new(&config, &settings);

    // Department A is warned of RDP at once; then a second owner is added to the group.
    let before = synth::describe(&ec2, &group).await.unwrap();
    let call = rdp_call(
        &ec2,
        &group,
        "AuthorizeSecurityGroupIngress",
        SystemTime::now(),
    )
    .await;
    let report = handle(&call, &settings, &services).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    ec2.create_tags()
        .resources(&group)
        .tags(
            Tag::builder()
                .key("OwnerDL")
                .value(format!("{OWNER} {SECOND}"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let after = synth::describe(&ec2, &group).await.unwrap();
    let capture = Capture {
        account: ACCOUNT.into(),
        region: REGION.into(),
        time: DateTime::from(SystemTime::now() + Duration::from_secs(2)),
    };
    let message = synth::item_change(Some(&before), Some(&after), &capture).unwrap();

    // By the time AWS Config's notification comes, SES rejects both owners. The email has two
    // versions: the whole change for the new owner, the rest (the tag change) for Department A.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        &[
            "--rate",
            "0",
            "--reject-recipient",
            OWNER,
            "--reject-recipient",
            SECOND,
        ],
    );
    let mut services = services;
    services.ses =
        aws_sdk_sesv2::Client::new(&config.to_builder().endpoint_url(&proxy.endpoint).build());
    let report = handle(
        &synth::sns_event(&message, "config-two-versions"),
        &settings,
        &services,
    )
    .await
    .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0), "{report:?}");
    assert_eq!(proxy.stats()["rejected_recipients"], 2);

    let mail = moto.ses_messages().await;
    let notices: Vec<&str> = mail
        .iter()
        .filter(|m| m.destinations == [FALLBACK])
        .map(|m| m.text.as_deref().unwrap())
        .collect();
    assert_eq!(notices.len(), 2, "one notice per version: {mail:#?}");
    for owner in [OWNER, SECOND] {
        assert_eq!(
            notices
                .iter()
                .filter(|t| t.contains(&format!("SES rejected this email for {owner}")))
                .count(),
            1,
            "{owner}: {notices:#?}"
        );
    }
    // A repeated delivery reports no one twice.
    handle(
        &synth::sns_event(&message, "config-two-versions"),
        &settings,
        &services,
    )
    .await
    .unwrap();
    assert_eq!(moto.ses_messages().await.len(), mail.len());
}
