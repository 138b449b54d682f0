//! Who made the change: CloudTrail `LookupEvents` for the group around the capture time, the
//! fallback when the actor feed (`feed`) has no call for the change.
//!
//! AWS Config's `relatedEvents` has been empty for years, so CloudTrail is the only source. The
//! lookup is best effort: CloudTrail allows two calls a second per account and lags by minutes, so
//! any failure or empty answer yields [`ActorLookup::Unknown`] and the email still goes out.

use aws_sdk_cloudtrail::types::{LookupAttribute, LookupAttributeKey};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde_json::Value;

use crate::core::feed::SECURITY_GROUP_EVENTS;
pub use crate::core::who::{Actor, ActorLookup};

/// How far before the capture time a change can have happened: Config records within minutes.
const LOOKUP_LOOK_BACK_SECS: i64 = 30 * 60;
/// CloudTrail's event time can be slightly after Config's capture time.
const LOOKUP_LOOK_AHEAD_SECS: i64 = 5 * 60;

/// One CloudTrail event, reduced to what the choice needs.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailEvent {
    pub event_name: String,
    /// Seconds since the epoch.
    pub time: i64,
    /// The raw `CloudTrailEvent` JSON document.
    pub document: Option<String>,
}

/// Looks up who changed `group_id` around `capture_time` (RFC 3339).
pub async fn lookup(
    client: &aws_sdk_cloudtrail::Client,
    group_id: &str,
    capture_time: Option<&str>,
) -> ActorLookup {
    let capture = capture_time
        .and_then(|t| DateTime::from_str(t, Format::DateTime).ok())
        .map(|t| t.secs())
        .unwrap_or_else(now_secs);
    let attribute = match LookupAttribute::builder()
        .attribute_key(LookupAttributeKey::ResourceName)
        .attribute_value(group_id)
        .build()
    {
        Ok(a) => a,
        Err(e) => {
            return ActorLookup::Unknown(format!("could not build the CloudTrail query: {e}"))
        }
    };
    let result = client
        .lookup_events()
        .lookup_attributes(attribute)
        .start_time(DateTime::from_secs(capture - LOOKUP_LOOK_BACK_SECS))
        .end_time(DateTime::from_secs(capture + LOOKUP_LOOK_AHEAD_SECS))
        .max_results(50)
        .send()
        .await;
    let output = match result {
        Ok(o) => o,
        Err(e) => {
            let why = aws_sdk_cloudtrail::error::DisplayErrorContext(&e).to_string();
            tracing::warn!(group_id, error = %why, "CloudTrail lookup failed; the email goes out without the actor");
            return ActorLookup::Unknown("the CloudTrail lookup failed".to_owned());
        }
    };
    let events: Vec<TrailEvent> = output
        .events()
        .iter()
        .filter_map(|e| {
            Some(TrailEvent {
                event_name: e.event_name()?.to_owned(),
                time: e.event_time()?.secs(),
                document: e.cloud_trail_event().map(str::to_owned),
            })
        })
        .collect();
    choose(&events, capture)
}

/// Picks the security-group event closest before the capture time (or just after it).
pub fn choose(events: &[TrailEvent], capture: i64) -> ActorLookup {
    let relevant = events
        .iter()
        .filter(|e| SECURITY_GROUP_EVENTS.contains(&e.event_name.as_str()));
    let best = relevant.min_by_key(|e| {
        // Events before the capture rank by closeness; events after it rank after all of those.
        if e.time <= capture {
            (0, capture - e.time)
        } else {
            (1, e.time - capture)
        }
    });
    match best {
        None => {
            ActorLookup::Unknown("CloudTrail has no matching security-group event yet".to_owned())
        }
        Some(e) => ActorLookup::Found(actor_of(e)),
    }
}

fn actor_of(event: &TrailEvent) -> Actor {
    let doc: Value = event
        .document
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let identity = &doc["userIdentity"];
    let arn = text(&identity["arn"])
        .or_else(|| text(&identity["sessionContext"]["sessionIssuer"]["arn"]))
        .or_else(|| text(&identity["invokedBy"]));
    Actor {
        arn,
        source_ip: text(&doc["sourceIPAddress"]),
        time: text(&doc["eventTime"])
            .or_else(|| DateTime::from_secs(event.time).fmt(Format::DateTime).ok()),
        event_name: Some(event.event_name.clone()),
        event_id: text(&doc["eventID"]),
        invoked_by: text(&identity["invokedBy"]),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudtrail::operation::lookup_events::{LookupEventsError, LookupEventsOutput};
    use aws_sdk_cloudtrail::types::Event;
    use aws_sdk_cloudtrail::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    /// A `CloudTrailEvent` document as CloudTrail returns it (abridged from the AWS docs).
    fn document(arn: &str, ip: &str, time: &str) -> String {
        serde_json::json!({
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn": arn,
                              "accountId": "123456789012", "userName": "dept-b-admin"},
            "eventTime": time, "eventSource": "ec2.amazonaws.com",
            "eventName": "AuthorizeSecurityGroupIngress", "awsRegion": "us-east-1",
            "sourceIPAddress": ip, "userAgent": "aws-cli/2.15.0",
            "requestParameters": {"groupId": "sg-0123456789abcdef0"},
        })
        .to_string()
    }

    fn event(name: &str, time: &str, arn: &str) -> Event {
        Event::builder()
            .event_name(name)
            .event_time(DateTime::from_str(time, Format::DateTime).unwrap())
            .cloud_trail_event(document(arn, "203.0.113.7", time))
            .build()
    }

    #[tokio::test]
    async fn finds_the_event_just_before_the_capture() {
        let rule = mock!(Client::lookup_events)
            .match_requests(|r| {
                r.lookup_attributes()
                    .first()
                    .is_some_and(|a| a.attribute_value() == "sg-0123456789abcdef0")
                    && r.start_time().is_some()
                    && r.end_time().is_some()
            })
            .then_output(|| {
                LookupEventsOutput::builder()
                    .events(event(
                        "AuthorizeSecurityGroupIngress",
                        "2026-11-20T09:13:58Z",
                        "arn:aws:iam::123456789012:user/dept-b-admin",
                    ))
                    .events(event(
                        "AuthorizeSecurityGroupIngress",
                        "2026-11-20T08:50:00Z",
                        "arn:aws:iam::123456789012:user/earlier",
                    ))
                    .events(event(
                        "DescribeSecurityGroups",
                        "2026-11-20T09:14:05Z",
                        "arn:aws:iam::123456789012:user/reader",
                    ))
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudtrail, [&rule]);
        let found = lookup(
            &client,
            "sg-0123456789abcdef0",
            Some("2026-11-20T09:14:07.512Z"),
        )
        .await;
        let ActorLookup::Found(actor) = found else {
            panic!("{found:?}")
        };
        assert_eq!(
            actor.arn.as_deref(),
            Some("arn:aws:iam::123456789012:user/dept-b-admin")
        );
        assert_eq!(actor.source_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(actor.time.as_deref(), Some("2026-11-20T09:13:58Z"));
        assert_eq!(
            actor.event_name.as_deref(),
            Some("AuthorizeSecurityGroupIngress")
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn failure_or_nothing_found_is_unknown() {
        let throttled = mock!(Client::lookup_events)
            .then_error(|| LookupEventsError::unhandled("Rate exceeded"));
        let empty =
            mock!(Client::lookup_events).then_output(|| LookupEventsOutput::builder().build());
        let client = mock_client!(
            aws_sdk_cloudtrail,
            RuleMode::Sequential,
            [&throttled, &empty]
        );
        assert_eq!(
            lookup(&client, "sg-1", None).await,
            ActorLookup::Unknown("the CloudTrail lookup failed".into())
        );
        let ActorLookup::Unknown(why) = lookup(&client, "sg-1", None).await else {
            panic!()
        };
        assert!(why.contains("no matching"));
    }

    #[test]
    fn prefers_events_before_the_capture_and_uses_the_role_session_issuer() {
        let assumed = serde_json::json!({
            "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/Admin/alice",
                             "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::123456789012:role/Admin"}}},
            "sourceIPAddress": "198.51.100.1", "eventTime": "2026-11-20T09:00:00Z"
        });
        let events = [
            TrailEvent {
                event_name: "RevokeSecurityGroupIngress".into(),
                time: 1_000_100,
                document: None,
            },
            TrailEvent {
                event_name: "ModifySecurityGroupRules".into(),
                time: 999_000,
                document: Some(assumed.to_string()),
            },
        ];
        let ActorLookup::Found(a) = choose(&events, 1_000_000) else {
            panic!()
        };
        assert_eq!(
            a.arn.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/Admin/alice")
        );
        assert_eq!(a.event_name.as_deref(), Some("ModifySecurityGroupRules"));
        // Without a document the time still shows.
        let ActorLookup::Found(a) = choose(&events[..1], 1_000_000) else {
            panic!()
        };
        assert_eq!(a.arn, None);
        assert!(a.time.is_some());
    }
}
