//! AWS Config notifications made from a security group's states, as AWS Config would send them.
//!
//! There is no Config service that emits notifications on a laptop (moto records, but never
//! notifies), so the demo and the end-to-end tests read a group's real state before and after a
//! change from EC2 and build the `ConfigurationItemChangeNotification` Config would have sent,
//! then the SNS event Lambda would have received. The shape follows AWS's, quirks included:
//! `changedProperties` is keyed by array position (`Configuration.IpPermissions.1`), a created
//! group lists no changed properties, a deleted one carries its last state as the previous value
//! of `Configuration`.
//!
//! The building is pure: the states come in as JSON in Config's camelCase shape. [`ec2`] reads
//! them from EC2 (`DescribeSecurityGroups`). This crate is tooling, apart from the handler, so the
//! Lambda's binary carries neither the simulator nor the EC2 SDK.

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde_json::{json, Map, Value};

use sgwatch_handler::message::ITEM_CHANGE;

pub mod cloudtrail;
pub mod ec2;

pub use ec2::{configuration_from_ec2, describe, DescribeError};

/// The resource type of a security group in AWS Config.
pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";

/// Where and when Config captured the configuration item.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub account: String,
    pub region: String,
    /// `configurationItemCaptureTime`; its milliseconds are also the `configurationStateId`.
    pub time: DateTime,
}

/// Why no notification could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SynthError {
    #[error("neither a previous nor an updated state was given: there is no change to describe")]
    NoState,
    #[error("the security group state is not a JSON object with a groupId string: {0}")]
    NoGroupId(String),
    #[error("the capture time {0:?} is outside what AWS Config can report")]
    BadTime(DateTime),
}

/// The `ConfigurationItemChangeNotification` AWS Config sends when a security group goes from
/// `before` to `after`: `before` is `None` for a created group, `after` is `None` for a deleted one.
pub fn item_change(
    before: Option<&Value>,
    after: Option<&Value>,
    capture: &Capture,
) -> Result<Value, SynthError> {
    let current = after.or(before).ok_or(SynthError::NoState)?;
    let group_id = current
        .get("groupId")
        .and_then(Value::as_str)
        .ok_or_else(|| SynthError::NoGroupId(abbreviated(current)))?;
    let group_name = current.get("groupName").and_then(Value::as_str);
    let time = config_time(capture.time)?;

    let (change_type, status, changed) = match (before, after) {
        (None, _) => ("CREATE", "ResourceDiscovered", Map::new()),
        (Some(previous), None) => {
            let whole = property(previous, &Value::Null);
            (
                "DELETE",
                "ResourceDeleted",
                Map::from_iter([("Configuration".to_owned(), whole)]),
            )
        }
        (Some(previous), Some(updated)) => ("UPDATE", "OK", changed_properties(previous, updated)),
    };
    // A deleted item arrives with neither configuration nor tags: its last state is in the diff.
    let (configuration, tags) = match after {
        Some(updated) => (updated.clone(), tag_map(updated)),
        None => (Value::Null, Value::Object(Map::new())),
    };

    Ok(json!({
        "configurationItemDiff": {
            "changedProperties": changed,
            "changeType": change_type,
        },
        "configurationItem": {
            "relatedEvents": [],
            "relationships": [],
            "configuration": configuration,
            "supplementaryConfiguration": {},
            "tags": tags,
            "configurationItemVersion": "1.3",
            "configurationItemCaptureTime": time,
            "configurationStateId": capture.time.to_millis().map_err(|_| SynthError::BadTime(capture.time))?,
            "awsAccountId": capture.account,
            "configurationItemStatus": status,
            "resourceType": SECURITY_GROUP,
            "resourceId": group_id,
            "resourceName": group_name,
            "ARN": format!("arn:aws:ec2:{}:{}:security-group/{group_id}", capture.region, capture.account),
            "awsRegion": capture.region,
            "availabilityZone": "Not Applicable",
            "configurationStateMd5Hash": "",
            "resourceCreationTime": null,
        },
        "notificationCreationTime": time,
        "messageType": ITEM_CHANGE,
        "recordVersion": "1.3",
    }))
}

/// `message` as Lambda receives it from the SNS topic of a Config delivery channel: one record
/// whose `Sns.Message` is the message as a JSON string.
pub fn sns_event(message: &Value, message_id: &str) -> Value {
    let item = &message["configurationItem"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (region, account) = (text(&item["awsRegion"]), text(&item["awsAccountId"]));
    let topic = format!("arn:aws:sns:{region}:{account}:config-topic");
    let verb = match message["configurationItemDiff"]["changeType"].as_str() {
        Some("CREATE") => "Created",
        Some("DELETE") => "Deleted",
        _ => "Updated",
    };
    let subject = format!(
        "[AWS Config:{region}] {} {} {verb} in Account {account}",
        text(&item["resourceType"]),
        text(&item["resourceId"]),
    );
    json!({
        "Records": [{
            "EventSource": "aws:sns",
            "EventVersion": "1.0",
            "EventSubscriptionArn": format!("{topic}:{message_id}"),
            "Sns": {
                "Type": "Notification",
                "MessageId": message_id,
                "TopicArn": topic,
                "Subject": subject,
                "Message": message.to_string(),
                "Timestamp": message["notificationCreationTime"],
                "SignatureVersion": "1",
                "Signature": "EXAMPLE",
                "SigningCertUrl": "https://example.invalid/cert.pem",
                "UnsubscribeUrl": "https://example.invalid/unsub",
                "MessageAttributes": {},
            }
        }]
    })
}

/// `configurationItemDiff.changedProperties` between two states of a group: arrays (rules, tags)
/// position by position, everything else field by field, each named as Config names it.
pub fn changed_properties(before: &Value, after: &Value) -> Map<String, Value> {
    let empty = Map::new();
    let (b, a) = (
        before.as_object().unwrap_or(&empty),
        after.as_object().unwrap_or(&empty),
    );
    let mut fields: Vec<&String> = b.keys().chain(a.keys()).collect();
    fields.sort();
    fields.dedup();

    let mut out = Map::new();
    for field in fields {
        let (previous, updated) = (
            b.get(field).unwrap_or(&Value::Null),
            a.get(field).unwrap_or(&Value::Null),
        );
        let name = format!("Configuration.{}", pascal_case(field));
        match (previous, updated) {
            (Value::Array(p), Value::Array(u)) => {
                for i in 0..p.len().max(u.len()) {
                    let (pv, uv) = (
                        p.get(i).unwrap_or(&Value::Null),
                        u.get(i).unwrap_or(&Value::Null),
                    );
                    if pv != uv {
                        out.insert(format!("{name}.{i}"), property(pv, uv));
                    }
                }
            }
            _ if previous != updated => {
                out.insert(name, property(previous, updated));
            }
            _ => {}
        }
    }
    out
}

/// One `changedProperties` entry.
fn property(previous: &Value, updated: &Value) -> Value {
    let change_type = match (previous.is_null(), updated.is_null()) {
        (true, _) => "CREATE",
        (false, true) => "DELETE",
        (false, false) => "UPDATE",
    };
    json!({"previousValue": previous, "updatedValue": updated, "changeType": change_type})
}

/// `configurationItem.tags`: the configuration's `[{key, value}]` list as a map.
fn tag_map(configuration: &Value) -> Value {
    let tags = configuration.get("tags").and_then(Value::as_array);
    let map: Map<String, Value> = tags
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let key = t.get("key")?.as_str()?;
            Some((
                key.to_owned(),
                t.get("value").cloned().unwrap_or(Value::Null),
            ))
        })
        .collect();
    Value::Object(map)
}

/// `ipPermissionsEgress` → `IpPermissionsEgress`.
fn pascal_case(field: &str) -> String {
    let mut chars = field.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Config's timestamps: RFC 3339 in UTC with exactly three fractional digits.
fn config_time(time: DateTime) -> Result<String, SynthError> {
    let whole = DateTime::from_secs(time.secs())
        .fmt(Format::DateTime)
        .map_err(|_| SynthError::BadTime(time))?;
    let millis = time.subsec_nanos() / 1_000_000;
    Ok(format!("{}.{millis:03}Z", whole.trim_end_matches('Z')))
}

fn abbreviated(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use sgwatch_handler::decide::{analyze, decide, Analysis};
    use sgwatch_handler::message::{envelopes, parse_message, ConfigMessage};
    use sgwatch_handler::settings::{Policy, RawPolicy};
    use sgwatch_handler::severity::Severity;

    const STATE_ID: i64 = 1_763_629_447_512;

    fn capture() -> Capture {
        Capture {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            time: DateTime::from_millis(STATE_ID),
        }
    }

    fn world(protocol: &str, from: i64, to: i64) -> Value {
        cidr(protocol, from, to, "0.0.0.0/0")
    }

    fn cidr(protocol: &str, from: i64, to: i64, cidr: &str) -> Value {
        json!({
            "ipProtocol": protocol, "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": [],
            "ipv4Ranges": [{"cidrIp": cidr}], "ipRanges": [cidr], "fromPort": from, "toPort": to,
        })
    }

    fn group(ingress: Vec<Value>, tags: &[(&str, &str)]) -> Value {
        json!({
            "description": "managed by team",
            "groupName": "shared-http",
            "ipPermissions": ingress,
            "ipPermissionsEgress": [{
                "ipProtocol": "-1", "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": [],
                "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"],
            }],
            "ownerId": "123456789012",
            "groupId": "sg-0123456789abcdef0",
            "vpcId": "vpc-0a1b2c3d",
            "tags": tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
        })
    }

    fn owned(ingress: Vec<Value>) -> Value {
        group(
            ingress,
            &[
                ("NotifyOnChange", "Yes"),
                ("OwnerDL", "platform-team@example.com"),
            ],
        )
    }

    fn analysis_of(message: &Value) -> Analysis {
        match parse_message(message).expect("the synthesised message parses") {
            ConfigMessage::ItemChange(change) => analyze(&change).expect("analysable"),
            other => panic!("not an item change: {}", other.message_type()),
        }
    }

    /// The changes as the email writes them, e.g. `+ingress tcp/3389 from 0.0.0.0/0`.
    fn changes(message: &Value) -> BTreeSet<String> {
        analysis_of(message)
            .changes
            .iter()
            .map(|c| {
                let sign = match c.action {
                    sgwatch_handler::rules::Action::Added => '+',
                    sgwatch_handler::rules::Action::Removed => '-',
                };
                format!("{sign}{}", c.rule)
            })
            .collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn change_types(message: &Value) -> Vec<(String, String)> {
        message["configurationItemDiff"]["changedProperties"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v["changeType"].as_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn the_rdp_story_matches_what_aws_config_sent() {
        let fixture: Value =
            serde_json::from_str(include_str!("../../../tests/fixtures/rdp-opened.json")).unwrap();
        let after = &fixture["configurationItem"]["configuration"];
        let mut before = after.clone();
        before["ipPermissions"].as_array_mut().unwrap().truncate(1);

        let message = item_change(Some(&before), Some(after), &capture()).unwrap();

        assert_eq!(
            message["configurationItemDiff"],
            fixture["configurationItemDiff"]
        );
        let (ours, theirs) = (&message["configurationItem"], &fixture["configurationItem"]);
        for field in theirs.as_object().unwrap().keys() {
            // The fixture's capture time and state id disagree; the state id is the one kept.
            if field != "relationships" && field != "configurationItemCaptureTime" {
                assert_eq!(ours[field], theirs[field], "configurationItem.{field}");
            }
        }
        assert_eq!(ours["relationships"], json!([]));
        for field in ["messageType", "recordVersion"] {
            assert_eq!(message[field], fixture[field], "{field}");
        }
        assert_eq!(
            changes(&message),
            set(&["+ingress tcp/3389 from 0.0.0.0/0"])
        );
        assert_eq!(analysis_of(&message).severity, Severity::Critical);
    }

    #[test]
    fn removing_the_first_of_four_rules_is_three_updates_and_a_delete_and_one_removal() {
        let rules = vec![
            world("tcp", 22, 22),
            world("tcp", 80, 80),
            world("tcp", 443, 443),
            cidr("tcp", 5432, 5432, "10.0.0.0/8"),
        ];
        let before = owned(rules.clone());
        let after = owned(rules[1..].to_vec());

        let message = item_change(Some(&before), Some(&after), &capture()).unwrap();

        assert_eq!(
            change_types(&message),
            [
                ("Configuration.IpPermissions.0".into(), "UPDATE".into()),
                ("Configuration.IpPermissions.1".into(), "UPDATE".into()),
                ("Configuration.IpPermissions.2".into(), "UPDATE".into()),
                ("Configuration.IpPermissions.3".into(), "DELETE".into()),
            ]
        );
        assert_eq!(changes(&message), set(&["-ingress tcp/22 from 0.0.0.0/0"]));
    }

    #[test]
    fn widening_a_cidr_updates_one_permission_and_reports_both_rules() {
        let before = owned(vec![cidr("tcp", 22, 22, "10.0.0.0/16")]);
        let after = owned(vec![cidr("tcp", 22, 22, "10.0.0.0/8")]);

        let message = item_change(Some(&before), Some(&after), &capture()).unwrap();

        assert_eq!(
            change_types(&message),
            [("Configuration.IpPermissions.0".into(), "UPDATE".into())]
        );
        assert_eq!(
            changes(&message),
            set(&[
                "+ingress tcp/22 from 10.0.0.0/8",
                "-ingress tcp/22 from 10.0.0.0/16"
            ])
        );
    }

    #[test]
    fn reordering_rules_lists_positions_but_reports_no_change() {
        let (a, b) = (world("tcp", 80, 80), world("tcp", 443, 443));
        let before = owned(vec![a.clone(), b.clone()]);
        let after = owned(vec![b, a]);

        let message = item_change(Some(&before), Some(&after), &capture()).unwrap();

        assert_eq!(change_types(&message).len(), 2);
        assert_eq!(changes(&message), set(&[]));
    }

    #[test]
    fn egress_tags_and_description_are_keyed_as_config_keys_them() {
        let before = owned(vec![world("tcp", 80, 80)]);
        let mut after = before.clone();
        after["ipPermissionsEgress"]
            .as_array_mut()
            .unwrap()
            .push(cidr("tcp", 443, 443, "10.1.0.0/16"));
        after["tags"]
            .as_array_mut()
            .unwrap()
            .push(json!({"key": "CostCenter", "value": "42"}));
        after["description"] = json!("shared by A and B");

        let message = item_change(Some(&before), Some(&after), &capture()).unwrap();

        assert_eq!(
            change_types(&message),
            [
                ("Configuration.Description".into(), "UPDATE".into()),
                (
                    "Configuration.IpPermissionsEgress.1".into(),
                    "CREATE".into()
                ),
                ("Configuration.Tags.2".into(), "CREATE".into()),
            ]
        );
        assert_eq!(
            message["configurationItem"]["tags"],
            json!({"NotifyOnChange": "Yes", "OwnerDL": "platform-team@example.com", "CostCenter": "42"})
        );
        let analysis = analysis_of(&message);
        assert_eq!(changes(&message), set(&["+egress tcp/443 to 10.1.0.0/16"]));
        let names: Vec<_> = analysis
            .properties
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["Description", "Tags.2"]);
        assert_eq!(
            analysis.properties[1].updated.as_deref(),
            Some("CostCenter=42")
        );
    }

    #[test]
    fn a_created_group_is_discovered_with_no_changed_properties_and_all_rules_added() {
        let after = owned(vec![world("tcp", 80, 80), world("tcp", 3389, 3389)]);

        let message = item_change(None, Some(&after), &capture()).unwrap();

        let diff = &message["configurationItemDiff"];
        assert_eq!(diff["changeType"], "CREATE");
        assert_eq!(diff["changedProperties"], json!({}));
        assert_eq!(
            message["configurationItem"]["configurationItemStatus"],
            "ResourceDiscovered"
        );
        assert_eq!(
            changes(&message),
            set(&[
                "+ingress tcp/80 from 0.0.0.0/0",
                "+ingress tcp/3389 from 0.0.0.0/0",
                "+egress all to 0.0.0.0/0",
            ])
        );
    }

    #[test]
    fn a_deleted_group_carries_its_last_state_and_still_reaches_its_owners() {
        let before = owned(vec![world("tcp", 80, 80)]);

        let message = item_change(Some(&before), None, &capture()).unwrap();

        let item = &message["configurationItem"];
        assert_eq!(item["configurationItemStatus"], "ResourceDeleted");
        assert_eq!(item["configuration"], Value::Null);
        assert_eq!(item["tags"], json!({}));
        assert_eq!(
            message["configurationItemDiff"],
            json!({
                "changeType": "DELETE",
                "changedProperties": {"Configuration": {
                    "previousValue": before, "updatedValue": null, "changeType": "DELETE"
                }},
            })
        );
        assert_eq!(
            changes(&message),
            set(&["-ingress tcp/80 from 0.0.0.0/0", "-egress all to 0.0.0.0/0"])
        );
        let policy = Policy::from_raw(&RawPolicy::default()).unwrap();
        let decision = decide(analysis_of(&message), &policy);
        assert!(decision.notify, "{}", decision.reason());
        assert_eq!(decision.recipients, ["platform-team@example.com"]);
    }

    #[test]
    fn an_unchanged_group_lists_nothing() {
        let state = owned(vec![world("tcp", 80, 80)]);
        let message = item_change(Some(&state), Some(&state), &capture()).unwrap();
        assert_eq!(
            message["configurationItemDiff"]["changedProperties"],
            json!({})
        );
        assert_eq!(changes(&message), set(&[]));
    }

    #[test]
    fn times_are_configs_three_digit_utc() {
        let message = item_change(None, Some(&owned(vec![])), &capture()).unwrap();
        let item = &message["configurationItem"];
        assert_eq!(
            item["configurationItemCaptureTime"],
            "2025-11-20T09:04:07.512Z"
        );
        assert_eq!(item["configurationStateId"], STATE_ID);
        let on_the_second = Capture {
            time: DateTime::from_secs(1_763_629_447),
            ..capture()
        };
        let message = item_change(None, Some(&owned(vec![])), &on_the_second).unwrap();
        assert_eq!(
            message["notificationCreationTime"],
            "2025-11-20T09:04:07.000Z"
        );
    }

    #[test]
    fn no_state_or_no_group_id_is_an_error_not_a_panic() {
        assert_eq!(
            item_change(None, None, &capture()),
            Err(SynthError::NoState)
        );
        assert!(matches!(
            item_change(None, Some(&json!({"groupName": "x"})), &capture()),
            Err(SynthError::NoGroupId(_))
        ));
        assert!(matches!(
            item_change(Some(&json!([1])), None, &capture()),
            Err(SynthError::NoGroupId(_))
        ));
    }

    #[test]
    fn the_sns_event_reads_back_as_one_record_with_its_message_id() {
        let before = owned(vec![world("tcp", 80, 80)]);
        let after = owned(vec![world("tcp", 80, 80), world("tcp", 3389, 3389)]);
        let message = item_change(Some(&before), Some(&after), &capture()).unwrap();

        let event = sns_event(&message, "95df01b4-ee98-5cb9-9903-4c221d41eb5e");

        let fixture: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/rdp-opened.sns-event.json"
        ))
        .unwrap();
        let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
        let (ours, theirs) = (&event["Records"][0], &fixture["Records"][0]);
        assert_eq!(keys(ours), keys(theirs));
        assert_eq!(keys(&ours["Sns"]), keys(&theirs["Sns"]));
        assert_eq!(
            ours["Sns"]["Subject"],
            "[AWS Config:us-east-1] AWS::EC2::SecurityGroup sg-0123456789abcdef0 Updated in Account 123456789012"
        );
        let records = envelopes(&event);
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].message_id.as_deref(),
            Some("95df01b4-ee98-5cb9-9903-4c221d41eb5e")
        );
        match &records[0].message {
            Ok(ConfigMessage::ItemChange(change)) => {
                let analysis = analyze(change).unwrap();
                assert_eq!(analysis.subject.resource_id, "sg-0123456789abcdef0");
                assert_eq!(analysis.severity, Severity::Critical);
            }
            other => panic!("not an item change: {other:?}"),
        }
    }
}
