//! CloudTrail's `AWS API Call via CloudTrail` event for an EC2 call, as EventBridge delivers it
//! to the actor feed seconds after the call.
//!
//! Built from the call as it was made (the group, the permissions, who called, EC2's request
//! id), in the shape AWS documents: the EventBridge envelope ("Events from AWS services
//! delivered via AWS CloudTrail") around a CloudTrail record, whose EC2 `requestParameters` are
//! the Query API's parameters in lower camel case with lists as `{"items": [...]}`.

use aws_sdk_ec2::types::IpPermission;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde_json::{json, Value};

use crate::SynthError;

/// Who made a call, as CloudTrail's `userIdentity` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `arn:aws:iam::ACCOUNT:user/NAME` (what `sts:GetCallerIdentity` returns for the caller).
    pub arn: String,
    pub account: String,
    pub source_ip: String,
    pub user_agent: String,
}

impl Identity {
    /// CloudTrail's `userIdentity` of an IAM user.
    fn user_identity(&self) -> Value {
        let name = self.arn.rsplit('/').next().unwrap_or_default();
        json!({
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": self.arn,
            "accountId": self.account,
            "userName": name,
        })
    }
}

/// One EC2 API call.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub event_name: String,
    pub request_parameters: Value,
    pub response_elements: Value,
    /// EC2's request id, as the caller got it.
    pub request_id: String,
    pub region: String,
    pub time: DateTime,
}

/// The EventBridge event of `call` by `who`.
pub fn api_call_event(call: &Call, who: &Identity) -> Result<Value, SynthError> {
    let time = call
        .time
        .fmt(Format::DateTime)
        .map_err(|_| SynthError::BadTime(call.time))?;
    // Whole seconds, as CloudTrail writes eventTime.
    let time = match time.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => time,
    };
    let event_id = format!("sgwatch-{}-{}", call.request_id, call.event_name);
    Ok(json!({
        "version": "0",
        "id": event_id,
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": who.account,
        "time": time,
        "region": call.region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": who.user_identity(),
            "eventTime": time,
            "eventSource": "ec2.amazonaws.com",
            "eventName": call.event_name,
            "awsRegion": call.region,
            "sourceIPAddress": who.source_ip,
            "userAgent": who.user_agent,
            "requestParameters": call.request_parameters,
            "responseElements": call.response_elements,
            "requestID": call.request_id,
            "eventID": event_id,
            "readOnly": false,
            "eventType": "AwsApiCall",
            "managementEvent": true,
            "recipientAccountId": who.account,
            "eventCategory": "Management",
        }
    }))
}

/// `requestParameters` of `AuthorizeSecurityGroupIngress` on `group_id` with `permissions`.
pub fn authorize_ingress_parameters(group_id: &str, permissions: &[IpPermission]) -> Value {
    let items = |v: Vec<Value>| {
        if v.is_empty() {
            json!({})
        } else {
            json!({ "items": v })
        }
    };
    let permissions: Vec<Value> = permissions
        .iter()
        .map(|p| {
            json!({
                "ipProtocol": p.ip_protocol(),
                "fromPort": p.from_port(),
                "toPort": p.to_port(),
                "groups": items(p.user_id_group_pairs().iter().map(|g| json!({"groupId": g.group_id(), "userId": g.user_id()})).collect()),
                "ipRanges": items(p.ip_ranges().iter().map(|r| json!({"cidrIp": r.cidr_ip(), "description": r.description()})).collect()),
                "ipv6Ranges": items(p.ipv6_ranges().iter().map(|r| json!({"cidrIpv6": r.cidr_ipv6(), "description": r.description()})).collect()),
                "prefixListIds": items(p.prefix_list_ids().iter().map(|r| json!({"prefixListId": r.prefix_list_id()})).collect()),
            })
        })
        .collect();
    json!({ "groupId": group_id, "ipPermissions": { "items": permissions } })
}

/// `requestParameters` of `CreateTags` / `DeleteTags` on `resources` with `tags` (key, value).
pub fn tags_parameters(resources: &[&str], tags: &[(&str, Option<&str>)]) -> Value {
    json!({
        "resourcesSet": {"items": resources.iter().map(|r| json!({"resourceId": r})).collect::<Vec<_>>()},
        "tagSet": {"items": tags.iter().map(|(k, v)| match v {
            Some(v) => json!({"key": k, "value": v}),
            None => json!({"key": k}),
        }).collect::<Vec<_>>()},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::IpRange;
    use sgwatch_handler::message::{envelopes, ConfigMessage};

    #[test]
    fn the_handler_reads_the_event_as_the_call_that_was_made() {
        let permission = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(3389)
            .to_port(3389)
            .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
            .build();
        let call = Call {
            event_name: "AuthorizeSecurityGroupIngress".into(),
            request_parameters: authorize_ingress_parameters("sg-0abc", &[permission]),
            response_elements: json!({"_return": true}),
            request_id: "r-1".into(),
            region: "us-east-1".into(),
            time: DateTime::from_str("2026-11-20T09:13:58.250Z", Format::DateTime).unwrap(),
        };
        let who = Identity {
            arn: "arn:aws:iam::123456789012:user/dept-b-admin".into(),
            account: "123456789012".into(),
            source_ip: "127.0.0.1".into(),
            user_agent: "aws-sdk-rust".into(),
        };
        let event = api_call_event(&call, &who).unwrap();
        let found = envelopes(&event);
        let Ok(ConfigMessage::ApiCall(c)) = &found[0].message else {
            panic!("{:?}", found[0].message)
        };
        assert_eq!(c.event_time, "2026-11-20T09:13:58Z");
        assert_eq!(c.group_ids, ["sg-0abc"]);
        assert_eq!(c.principal_arn.as_deref(), Some(who.arn.as_str()));
        assert_eq!(c.request_id.as_deref(), Some("r-1"));
        let rules: Vec<String> = c.requested.iter().map(|r| r.rule.to_string()).collect();
        assert_eq!(rules, ["ingress tcp/3389 from 0.0.0.0/0"]);
        let tags = tags_parameters(&["sg-0abc"], &[("OwnerDL", None)]);
        assert_eq!(tags["resourcesSet"]["items"][0]["resourceId"], "sg-0abc");
    }
}
