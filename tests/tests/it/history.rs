//! An oversized item read through AWS Config's history (its bucket is not ours), with the email
//! in moto's SES. moto's `GetResourceConfigHistory` ignores paging and keeps no history of
//! security groups, so AWS Config is served through the SDK's own mocks, answering in the
//! documented response shape (JSON, `configurationItems` newest first, `nextToken` while more
//! may follow). One call spans at most seven days: a group's state before a change is usually
//! older, several pages back, and some pages are empty.
//! <https://docs.aws.amazon.com/config/latest/APIReference/API_GetResourceConfigHistory.html>

use aws_sdk_config::operation::get_resource_config_history::GetResourceConfigHistoryInput;
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use serde_json::{json, Value};
use sgwatch_handler::process::{handle, Services};
use sgwatch_handler::settings::Settings;
use sgwatch_tests::emulator::{Moto, SentEmail};
use sgwatch_tests::fixture::{self, SENDER};

const OWNER: &str = "platform-team@example.com";
/// The notified state of `oversized.json`: captured 2026-01-01T00:00:00Z.
const NOTIFIED_STATE: &str = "1767225600000";
const NOTIFIED_AT: f64 = 1767225600.0;
const RDP_SUBJECT: &str = "[sgwatch CRITICAL] sg-0123456789abcdef0 (shared-http) 123456789012/us-east-1: +ingress tcp/3389 from 0.0.0.0/0";

fn settings() -> Settings {
    fixture::settings_from(&[
        ("SGWATCH_SENDER", SENDER),
        ("SGWATCH_LOOKUP_ACTOR", "false"),
    ])
}

/// The group's configuration after the notified change (RDP open to the world) and before it.
fn configurations() -> (Value, Value) {
    let current = fixture::json("rdp-opened.json")["configurationItem"]["configuration"].clone();
    let mut previous = current.clone();
    previous["ipPermissions"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p["fromPort"] != json!(3389));
    (current, previous)
}

/// One history item, as AWS Config returns it (configuration as JSON text, times in seconds).
fn item(configuration: &Value, state: &str, captured: f64) -> Value {
    json!({
        "version": "1.3",
        "accountId": "123456789012",
        "configurationItemCaptureTime": captured,
        "configurationItemStatus": "OK",
        "configurationStateId": state,
        "arn": "arn:aws:ec2:us-east-1:123456789012:security-group/sg-0123456789abcdef0",
        "resourceType": "AWS::EC2::SecurityGroup",
        "resourceId": "sg-0123456789abcdef0",
        "resourceName": "shared-http",
        "awsRegion": "us-east-1",
        "availabilityZone": "Not Applicable",
        "tags": {"NotifyOnChange": "Yes", "OwnerDL": OWNER},
        "relatedEvents": [],
        "relationships": [],
        "configuration": configuration.to_string(),
        "supplementaryConfiguration": {},
    })
}

/// The page asked for with `token` (none: the first page): `items`, and `next` when more follow.
fn page(token: Option<&'static str>, items: Vec<Value>, next: Option<&str>) -> Rule {
    page_for(
        move |r| r.next_token() == token && r.resource_id() == Some("sg-0123456789abcdef0"),
        items,
        next,
    )
}

/// The page answering the requests `filter` accepts.
fn page_for(
    filter: impl Fn(&GetResourceConfigHistoryInput) -> bool + Send + Sync + 'static,
    items: Vec<Value>,
    next: Option<&str>,
) -> Rule {
    let mut body = json!({ "configurationItems": items });
    if let Some(next) = next {
        body["nextToken"] = json!(next);
    }
    let body = body.to_string();
    mock!(aws_sdk_config::Client::get_resource_config_history)
        .match_requests(filter)
        .then_http_response(move || {
            Response::new(
                StatusCode::try_from(200).unwrap(),
                SdkBody::from(body.clone()),
            )
        })
}

/// The oversized notification handled with AWS Config answering `pages`; the emails moto's SES
/// accepted.
async fn handled(pages: &[&Rule]) -> Vec<SentEmail> {
    let moto = Moto::start();
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    let settings = settings();
    let mut services =
        Services::new(&config, &settings).with_config_bucket(Some("not-the-item-bucket".into()));
    services.config = mock_client!(aws_sdk_config, RuleMode::MatchAny, pages);
    let event = fixture::sns(&fixture::json("oversized.json"), "m-oversized");
    let report = handle(&event, &settings, &services)
        .await
        .expect("the invocation succeeds");
    assert_eq!((report.sent, report.failed), (1, 0), "{report:?}");
    moto.ses_messages().await
}

#[tokio::test]
async fn a_previous_state_weeks_back_is_found_behind_next_token() {
    let (current, previous) = configurations();
    let first = page(
        None,
        vec![item(&current, NOTIFIED_STATE, NOTIFIED_AT)],
        Some("week-2"),
    );
    // A week without a change: an empty page that still points further back.
    let second = page(Some("week-2"), vec![], Some("week-3"));
    let third = page(
        Some("week-3"),
        vec![item(
            &previous,
            "1765000000000",
            NOTIFIED_AT - 20.0 * 86400.0,
        )],
        None,
    );
    let mail = handled(&[&first, &second, &third]).await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, [OWNER]);
    assert_eq!(mail[0].subject.as_deref(), Some(RDP_SUBJECT));
    assert_eq!(
        (first.num_calls(), second.num_calls(), third.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn with_no_earlier_state_the_email_says_the_details_are_unavailable() {
    let (current, _) = configurations();
    let only = page(
        None,
        vec![item(&current, NOTIFIED_STATE, NOTIFIED_AT)],
        None,
    );
    let mail = handled(&[&only]).await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].destinations, [OWNER]);
    let text = mail[0].text.as_deref().unwrap();
    assert!(
        text.contains("AWS Config's history holds no earlier state of the resource"),
        "{text}"
    );
}

#[tokio::test]
async fn a_later_change_within_the_added_second_does_not_stand_in_for_the_notified_one() {
    let (current, previous) = configurations();
    // Half a second after the notified change someone also opened SSH.
    let mut later = current.clone();
    let mut ssh = later["ipPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["fromPort"] == json!(3389))
        .unwrap()
        .clone();
    ssh["fromPort"] = json!(22);
    ssh["toPort"] = json!(22);
    later["ipPermissions"].as_array_mut().unwrap().push(ssh);
    // Asked for the items up to a second after the notified capture time (whether `laterTime`
    // itself is included is not documented), which lets the later change in.
    let first = page_for(
        |r| {
            r.next_token().is_none()
                && r.later_time().map(|t| t.secs()) == Some(NOTIFIED_AT as i64 + 1)
        },
        vec![
            item(&later, "1767225600500", NOTIFIED_AT + 0.5),
            item(&current, NOTIFIED_STATE, NOTIFIED_AT),
        ],
        Some("next"),
    );
    let second = page(
        Some("next"),
        vec![item(&previous, "1767225500000", NOTIFIED_AT - 100.0)],
        None,
    );
    let mail = handled(&[&first, &second]).await;
    assert_eq!(mail.len(), 1, "{mail:#?}");
    assert_eq!(mail[0].subject.as_deref(), Some(RDP_SUBJECT));
}
