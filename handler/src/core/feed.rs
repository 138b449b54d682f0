//! The actor feed: CloudTrail's `AWS API Call via CloudTrail` events for security-group calls,
//! which EventBridge delivers to the account's default bus seconds after each call (CloudTrail's
//! event history, which `LookupEvents` reads, lags by minutes and AWS Config often notifies first).
//!
//! This module is pure: it reads one event into an [`ApiCall`] (who called what on which groups,
//! and which ingress rules the call asked for) and, when a Config notification is decided, picks
//! the calls that made the change ([`crate::core::who::callers`]). Storing the calls is `feed_store`'s concern.
//!
//! The envelope and `detail` fields are AWS's: "Events from AWS services delivered via AWS
//! CloudTrail" (EventBridge user guide, eb-service-event-cloudtrail) and "CloudTrail record
//! contents for management, data, and network activity events" (CloudTrail user guide,
//! cloudtrail-event-reference-record-contents). EC2's `requestParameters` are the Query API's
//! parameters in lower camel case, lists as `{"items": [...]}` (`ipPermissions.items[]`,
//! `ipRanges.items[]`, `resourcesSet.items[]`), as in CloudTrail's EC2 log examples.

use std::collections::BTreeSet;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::core::remedy::KnownRule;
use crate::core::rules::{Action, Change, Direction, Protocol, RuleSet};

/// The API calls that change a security group.
pub const SECURITY_GROUP_EVENTS: [&str; 11] = [
    "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress",
    "ModifySecurityGroupRules",
    "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress",
    "CreateSecurityGroup",
    "DeleteSecurityGroup",
    // Tag changes (the opt-in, the owners) are changes to the group too.
    "CreateTags",
    "DeleteTags",
];

/// The `detail-type` of CloudTrail's management events on EventBridge.
pub const DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// The `source` of EC2's events.
pub const SOURCE: &str = "aws.ec2";
/// The `detail.eventSource` of EC2's API calls.
pub const EVENT_SOURCE: &str = "ec2.amazonaws.com";

/// How far before the capture time a call is taken as part of the change. AWS Config records a
/// change within minutes of the call; a wider window would name the callers of an earlier change.
pub const CALLERS_LOOK_BACK_SECS: i64 = 15 * 60;
/// A call's time is CloudTrail's clock, the capture time Config's: allow them a minute apart.
pub const CALLERS_LOOK_AHEAD_SECS: i64 = 60;

/// One security-group API call, as the feed keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiCall {
    /// CloudTrail's `eventID`: one per call, the same in every delivery of it.
    pub event_id: String,
    pub event_name: String,
    /// `eventTime`, RFC 3339 (`2026-11-20T09:13:58Z`).
    pub event_time: String,
    /// The account the call acted in (`recipientAccountId`, else the envelope's `account`).
    pub account: String,
    pub region: String,
    /// `userIdentity.arn`: the user, or for an assumed role its session
    /// (`arn:aws:sts::…:assumed-role/ROLE/SESSION`).
    #[serde(default)]
    pub principal_arn: Option<String>,
    /// `userIdentity.type`: `IAMUser`, `AssumedRole`, `Root`, `AWSService`, …
    #[serde(default)]
    pub identity_type: Option<String>,
    /// For an assumed role: the role that issued the session (`sessionContext.sessionIssuer.arn`).
    #[serde(default)]
    pub session_issuer: Option<String>,
    /// For an assumed role: the session name (an SSO user's name, a pipeline's run id).
    #[serde(default)]
    pub session_name: Option<String>,
    #[serde(default)]
    pub source_ip: Option<String>,
    /// `userIdentity.invokedBy`: the AWS service that made the call on the principal's behalf
    /// (`cloudformation.amazonaws.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// `requestID`: EC2's request id, as the caller saw it.
    #[serde(default)]
    pub request_id: Option<String>,
    /// `errorCode` of a call that failed (`Client.UnauthorizedOperation`, `Client.DryRunOperation`).
    #[serde(default)]
    pub error_code: Option<String>,
    /// The security groups the call names.
    pub group_ids: Vec<String>,
    /// The rules an `Authorize…` or `Revoke…` call names, as `ingress tcp/3389 from 0.0.0.0/0`:
    /// a change that added or removed none of them was not this call's doing.
    #[serde(default)]
    pub rules: Vec<String>,
    /// The ingress rules the call asks to add (`Authorize…Ingress`, or a `ModifySecurityGroupRules`
    /// rewrite of a rule found to be ingress, see [`ApiCall::with_modified_ingress`]); not stored.
    #[serde(skip)]
    pub requested: Vec<Change>,
    /// The rules a `ModifySecurityGroupRules` call rewrites, with their new bodies; not stored.
    #[serde(skip)]
    pub modified: Vec<ModifiedRule>,
    /// The rules the call made, with their ids, as its `responseElements` lists them
    /// (`securityGroupRuleSet`): the alert's command names the rule by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub made: Vec<MadeRule>,
}

/// A rule a call made, as its response lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeRule {
    /// `sgr-…`.
    pub id: String,
    pub group_id: String,
    pub egress: bool,
    pub protocol: String,
    #[serde(default)]
    pub from_port: Option<i64>,
    #[serde(default)]
    pub to_port: Option<i64>,
    /// The CIDR, prefix list or group it names.
    pub source: String,
}

impl MadeRule {
    /// As a rule of the group with its id.
    pub fn known(&self) -> KnownRule {
        KnownRule {
            id: self.id.clone(),
            direction: if self.egress {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            protocol: Protocol::parse(&self.protocol),
            from_port: self.from_port,
            to_port: self.to_port,
            source: self.source.clone(),
        }
    }
}

/// The rules a call's response lists (`securityGroupRuleSet.items`).
fn made_rules(response: &Value) -> Vec<MadeRule> {
    let items = response["securityGroupRuleSet"]["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    items
        .iter()
        .filter_map(|r| {
            let source = ["cidrIpv4", "cidrIpv6", "prefixListId"]
                .iter()
                .find_map(|k| string_at(r, k))
                .or_else(|| string_at(&r["referencedGroupInfo"], "groupId"))?;
            Some(MadeRule {
                id: string_at(r, "securityGroupRuleId")?,
                group_id: string_at(r, "groupId")?,
                egress: r["isEgress"].as_bool()?,
                protocol: string_at(r, "ipProtocol")?,
                from_port: r["fromPort"].as_i64(),
                to_port: r["toPort"].as_i64(),
                source,
            })
        })
        .collect()
}

/// One rule a `ModifySecurityGroupRules` call rewrites (the console's "Edit inbound rules" and
/// "Edit outbound rules" both make this call). The request names the rule and its new body but
/// not whether it is ingress or egress: that is the rule's `IsEgress`, read with
/// `DescribeSecurityGroupRules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifiedRule {
    /// `sgr-…`.
    pub rule_id: String,
    /// The new body as a permission in AWS Config's shape (`ipProtocol`, `ipv4Ranges`, …).
    pub permission: Value,
}

impl ApiCall {
    /// A call that failed changed nothing.
    pub fn failed(&self) -> bool {
        self.error_code.as_deref().is_some_and(|c| !c.is_empty())
    }

    /// `eventTime` in seconds since the epoch.
    pub fn time_secs(&self) -> Option<i64> {
        DateTime::from_str(&self.event_time, Format::DateTimeWithOffset)
            .ok()
            .map(|t| t.secs())
    }

    /// The call with the rules it rewrote that `is_egress` (rule id → `IsEgress`) says are ingress
    /// added to [`ApiCall::requested`]: the rule now allows what its new body says. A rule whose
    /// direction is unknown is left out (no warning rather than a wrong one).
    pub fn with_modified_ingress(
        mut self,
        is_egress: &std::collections::BTreeMap<String, bool>,
    ) -> ApiCall {
        if self.failed() {
            return self;
        }
        let mut rules = RuleSet::default();
        for m in &self.modified {
            if is_egress.get(&m.rule_id) != Some(&false) {
                continue;
            }
            if let Err(e) = rules.add_permission(Direction::Ingress, &m.permission) {
                tracing::warn!(rule = %m.rule_id, error = %e, "a modified rule could not be read");
            }
        }
        self.requested.extend(rules.rules().map(|rule| Change {
            action: Action::Added,
            rule,
        }));
        self
    }

    /// Who called, for people: the principal ARN, else the session issuer, else the type.
    pub fn caller(&self) -> String {
        self.principal_arn
            .clone()
            .or_else(|| self.session_issuer.clone())
            .or_else(|| self.identity_type.clone())
            .unwrap_or_else(|| "an unnamed principal".to_owned())
    }
}

/// Why an event could not be read as a security-group API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the CloudTrail event has no {0}")]
    Missing(&'static str),
    #[error("the CloudTrail event is from {0}, not {EVENT_SOURCE}")]
    OtherService(String),
    #[error("{0} is not a security-group call sgwatch records")]
    OtherCall(String),
    #[error("the {0} call names no security group")]
    NoGroup(String),
}

/// True for an EventBridge event of CloudTrail's `AWS API Call via CloudTrail` type.
pub fn is_api_call_event(event: &Value) -> bool {
    event.get("detail-type").and_then(Value::as_str) == Some(DETAIL_TYPE)
}

/// Reads an EventBridge `AWS API Call via CloudTrail` event.
pub fn parse_event(event: &Value) -> Result<ApiCall, FeedError> {
    let detail = event
        .get("detail")
        .filter(|d| d.is_object())
        .ok_or(FeedError::Missing("detail"))?;
    let event_name = security_group_call(detail)?;
    let event_id = string_at(detail, "eventID").ok_or(FeedError::Missing("eventID"))?;
    let event_time = event_time(event, detail)?;
    let account = string_at(detail, "recipientAccountId")
        .or_else(|| string_at(event, "account"))
        .ok_or(FeedError::Missing("account"))?;
    let region = string_at(detail, "awsRegion")
        .or_else(|| string_at(event, "region"))
        .ok_or(FeedError::Missing("awsRegion"))?;
    let request = detail.get("requestParameters").unwrap_or(&Value::Null);
    let response = detail.get("responseElements").unwrap_or(&Value::Null);
    let group_ids = group_ids(request, response);
    if group_ids.is_empty() {
        return Err(FeedError::NoGroup(event_name));
    }
    let identity = detail.get("userIdentity").unwrap_or(&Value::Null);
    let (session_issuer, session_name) = session(identity);
    let (rules, requested) = named_rules(&event_name, request);
    let modified = if event_name == "ModifySecurityGroupRules" {
        modified_rules(request)
    } else {
        Vec::new()
    };
    Ok(ApiCall {
        event_id,
        event_name,
        event_time,
        account,
        region,
        principal_arn: string_at(identity, "arn"),
        identity_type: string_at(identity, "type"),
        session_issuer,
        session_name,
        source_ip: string_at(detail, "sourceIPAddress"),
        invoked_by: string_at(identity, "invokedBy"),
        user_agent: string_at(detail, "userAgent"),
        request_id: string_at(detail, "requestID"),
        error_code: string_at(detail, "errorCode"),
        group_ids,
        rules,
        requested,
        modified,
        made: made_rules(response),
    })
}

/// The string at `key` of `v`, if there is one.
fn string_at(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// The name of the call `detail` records, when it is an EC2 security-group call sgwatch records.
fn security_group_call(detail: &Value) -> Result<String, FeedError> {
    let event_source = string_at(detail, "eventSource").ok_or(FeedError::Missing("eventSource"))?;
    if event_source != EVENT_SOURCE {
        return Err(FeedError::OtherService(event_source));
    }
    let event_name = string_at(detail, "eventName").ok_or(FeedError::Missing("eventName"))?;
    if !SECURITY_GROUP_EVENTS.contains(&event_name.as_str()) {
        return Err(FeedError::OtherCall(event_name));
    }
    Ok(event_name)
}

/// When the call was made: `eventTime`, else the envelope's `time`, if it reads as RFC 3339.
fn event_time(event: &Value, detail: &Value) -> Result<String, FeedError> {
    string_at(detail, "eventTime")
        .or_else(|| string_at(event, "time"))
        .filter(|t| DateTime::from_str(t, Format::DateTimeWithOffset).is_ok())
        .ok_or(FeedError::Missing("readable eventTime"))
}

/// For an assumed role: the role that issued the session and the session's name.
fn session(identity: &Value) -> (Option<String>, Option<String>) {
    let session_issuer = identity
        .get("sessionContext")
        .and_then(|c| c.get("sessionIssuer"))
        .and_then(|i| string_at(i, "arn"));
    // An assumed role's principalId is `ROLEID:SESSION` (CloudTrail userIdentity element).
    let session_name = session_issuer.as_ref().and_then(|_| {
        string_at(identity, "principalId")
            .and_then(|p| p.split_once(':').map(|(_, s)| s.to_owned()))
            .filter(|s| !s.is_empty())
    });
    (session_issuer, session_name)
}

/// The rules an `Authorize…` or `Revoke…` call names, as text, and those it asks to add to
/// ingress ([`ApiCall::requested`]).
fn named_rules(event_name: &str, request: &Value) -> (Vec<String>, Vec<Change>) {
    let direction = if event_name.ends_with("Ingress") {
        Direction::Ingress
    } else {
        Direction::Egress
    };
    let named = if event_name.starts_with("Authorize") || event_name.starts_with("Revoke") {
        requested_rules(request, direction)
    } else {
        Vec::new()
    };
    let rules = named.iter().map(|c| c.rule.to_string()).collect();
    let requested = if event_name.starts_with("Authorize") && direction == Direction::Ingress {
        named
    } else {
        Vec::new()
    };
    (rules, requested)
}

/// The rules a `ModifySecurityGroupRules` request rewrites. CloudTrail records the request as
/// the API's parameters (`ModifySecurityGroupRulesRequest.SecurityGroupRule`, one object, or a
/// list when the call rewrites several), each `{SecurityGroupRuleId, SecurityGroupRule: {IpProtocol,
/// FromPort, ToPort, CidrIpv4 | CidrIpv6 | PrefixListId | ReferencedGroupId, Description}}`
/// (EC2 API reference, SecurityGroupRuleUpdate and SecurityGroupRuleRequest).
fn modified_rules(request: &Value) -> Vec<ModifiedRule> {
    let entries = match request
        .get("ModifySecurityGroupRulesRequest")
        .and_then(|r| r.get("SecurityGroupRule"))
    {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    entries
        .into_iter()
        .filter_map(|e| {
            let rule_id = e.get("SecurityGroupRuleId")?.as_str()?.to_owned();
            let body = e.get("SecurityGroupRule")?;
            let text = |k: &str| body.get(k).and_then(Value::as_str);
            let described = |mut source: Value| {
                if let Some(d) = text("Description") {
                    source["description"] = json!(d);
                }
                json!([source])
            };
            let mut permission = json!({});
            for (from, to) in [
                ("IpProtocol", "ipProtocol"),
                ("FromPort", "fromPort"),
                ("ToPort", "toPort"),
            ] {
                if let Some(v) = body.get(from).filter(|v| !v.is_null()) {
                    permission[to] = v.clone();
                }
            }
            if let Some(c) = text("CidrIpv4") {
                permission["ipv4Ranges"] = described(json!({"cidrIp": c}));
            }
            if let Some(c) = text("CidrIpv6") {
                permission["ipv6Ranges"] = described(json!({"cidrIpv6": c}));
            }
            if let Some(g) = text("ReferencedGroupId") {
                permission["userIdGroupPairs"] = described(json!({"groupId": g}));
            }
            if let Some(p) = text("PrefixListId") {
                permission["prefixListIds"] = described(json!({"prefixListId": p}));
            }
            Some(ModifiedRule {
                rule_id,
                permission,
            })
        })
        .collect()
}

/// The groups a call names: `groupId` (or, in the `…Request`-wrapped shapes of the newer calls,
/// `GroupId`), the `sg-` resources of a tag call, and the group a call made or named by name
/// (`responseElements.groupId`, `securityGroupRuleSet.items[].groupId`). A rule's source group
/// (`ipPermissions.items[].groups`) is not a group the call changed.
fn group_ids(request: &Value, response: &Value) -> Vec<String> {
    let mut ids = BTreeSet::new();
    let mut add = |v: Option<&Value>| {
        if let Some(id) = v.and_then(Value::as_str).filter(|s| s.starts_with("sg-")) {
            ids.insert(id.to_owned());
        }
    };
    let wrapped = request
        .as_object()
        .into_iter()
        .flat_map(|o| o.values())
        .filter(|v| v.is_object());
    for scope in std::iter::once(request).chain(wrapped) {
        add(scope.get("groupId"));
        add(scope.get("GroupId"));
    }
    for item in items(&request["resourcesSet"]) {
        add(item.get("resourceId"));
    }
    add(response.get("groupId"));
    for item in items(&response["securityGroupRuleSet"]) {
        add(item.get("groupId"));
    }
    ids.into_iter().collect()
}

/// `{"items": [...]}`, as the EC2 Query API's lists appear in CloudTrail.
fn items(list: &Value) -> impl Iterator<Item = &Value> {
    list.get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The rules an `Authorize…` or `Revoke…` call names, as atomic rules (added): `ipPermissions`,
/// or the older single-rule form (`cidrIp`, `ipProtocol`, `fromPort`, `toPort`).
fn requested_rules(request: &Value, direction: Direction) -> Vec<Change> {
    let list = |v: &Value| Value::Array(items(v).cloned().collect());
    let mut permissions: Vec<Value> = items(&request["ipPermissions"])
        .map(|p| {
            json!({
                "ipProtocol": p.get("ipProtocol"),
                "fromPort": p.get("fromPort"),
                "toPort": p.get("toPort"),
                "ipv4Ranges": list(&p["ipRanges"]),
                "ipv6Ranges": list(&p["ipv6Ranges"]),
                "userIdGroupPairs": list(&p["groups"]),
                "prefixListIds": list(&p["prefixListIds"]),
            })
        })
        .collect();
    if let Some(cidr) = request.get("cidrIp").and_then(Value::as_str) {
        permissions.push(json!({
            "ipProtocol": request.get("ipProtocol"),
            "fromPort": request.get("fromPort"),
            "toPort": request.get("toPort"),
            "ipv4Ranges": [{"cidrIp": cidr}],
        }));
    }
    let mut rules = RuleSet::default();
    for p in &permissions {
        // One unreadable permission does not hide the others.
        if let Err(e) = rules.add_permission(direction, p) {
            tracing::warn!(error = %e, "a requested permission could not be read");
        }
    }
    rules
        .rules()
        .map(|rule| Change {
            action: Action::Added,
            rule,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::text::time_of_day;

    pub(crate) fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../tests/fixtures/cloudtrail/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
    }

    #[test]
    fn an_iam_user_opening_rdp() {
        let call = parse_event(&fixture("authorize-ingress-iam-user.json")).unwrap();
        assert_eq!(call.event_name, "AuthorizeSecurityGroupIngress");
        assert_eq!(call.event_time, "2026-11-20T09:13:58Z");
        assert_eq!(call.account, "123456789012");
        assert_eq!(call.region, "us-east-1");
        assert_eq!(
            call.principal_arn.as_deref(),
            Some("arn:aws:iam::123456789012:user/dept-b-admin")
        );
        assert_eq!(call.identity_type.as_deref(), Some("IAMUser"));
        assert_eq!(call.session_issuer, None);
        assert_eq!(call.source_ip.as_deref(), Some("203.0.113.7"));
        assert!(call.user_agent.as_deref().unwrap().starts_with("aws-cli/"));
        assert_eq!(
            call.request_id.as_deref(),
            Some("3b9f1c2a-8f0e-4b7d-9c61-2f5e0a7d4c11")
        );
        assert!(!call.failed());
        assert_eq!(call.group_ids, ["sg-0123456789abcdef0"]);
        let requested: Vec<String> = call.requested.iter().map(|c| c.rule.to_string()).collect();
        assert_eq!(requested, ["ingress tcp/3389 from 0.0.0.0/0"]);
        // The response names the rule it made: the alert's command removes it by id.
        assert_eq!(call.made.len(), 1);
        let known = call.made[0].known();
        assert_eq!(known.id, "sgr-0a1b2c3d4e5f60718");
        assert_eq!(
            crate::core::remedy::rule_id(&call.requested[0], &[known]),
            Some("sgr-0a1b2c3d4e5f60718")
        );
        // Kept in the feed: the id survives the store's round trip.
        let stored: ApiCall = serde_json::from_str(&serde_json::to_string(&call).unwrap()).unwrap();
        assert_eq!(stored.made, call.made);
    }

    #[test]
    fn an_assumed_role_through_sso_names_the_issuer_and_the_session() {
        let call = parse_event(&fixture("authorize-ingress-sso-role.json")).unwrap();
        assert_eq!(call.identity_type.as_deref(), Some("AssumedRole"));
        assert_eq!(
            call.principal_arn.as_deref(),
            Some("arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_AdministratorAccess_0a1b2c3d4e5f6789/alice@corp.example")
        );
        assert_eq!(
            call.session_issuer.as_deref(),
            Some("arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0a1b2c3d4e5f6789")
        );
        assert_eq!(call.session_name.as_deref(), Some("alice@corp.example"));
        // Two permissions, IPv4 and IPv6, and a source group that is not the group changed.
        let requested: BTreeSet<String> =
            call.requested.iter().map(|c| c.rule.to_string()).collect();
        assert_eq!(
            requested,
            BTreeSet::from([
                "ingress tcp/22 from 0.0.0.0/0".to_owned(),
                "ingress tcp/22 from ::/0".to_owned(),
                "ingress tcp/443 from sg-0fedcba9876543210".to_owned(),
            ])
        );
        assert_eq!(call.group_ids, ["sg-0123456789abcdef0"]);
    }

    #[test]
    fn a_failed_call_is_recorded_as_failed() {
        let call = parse_event(&fixture("authorize-ingress-failed.json")).unwrap();
        assert!(call.failed());
        assert_eq!(
            call.error_code.as_deref(),
            Some("Client.UnauthorizedOperation")
        );
        assert_eq!(call.group_ids, ["sg-0123456789abcdef0"]);
    }

    #[test]
    fn a_tag_change_names_only_its_security_groups() {
        let call = parse_event(&fixture("create-tags.json")).unwrap();
        assert_eq!(call.event_name, "CreateTags");
        assert_eq!(
            call.group_ids,
            ["sg-0123456789abcdef0", "sg-0aaaabbbbccccdddd"]
        );
        assert!(call.requested.is_empty());
    }

    #[test]
    fn other_calls_and_broken_events_are_errors_not_panics() {
        let mut e = fixture("create-tags.json");
        e["detail"]["eventName"] = "RunInstances".into();
        assert_eq!(
            parse_event(&e),
            Err(FeedError::OtherCall("RunInstances".into()))
        );
        let mut e = fixture("create-tags.json");
        e["detail"]["requestParameters"]["resourcesSet"]["items"] =
            json!([{"resourceId": "i-0123456789abcdef0"}]);
        assert!(matches!(parse_event(&e), Err(FeedError::NoGroup(_))));
        for broken in [
            json!({}),
            json!({"detail": 5}),
            json!({"detail": {"eventSource": "ec2.amazonaws.com"}}),
            json!({"detail": {"eventSource": "s3.amazonaws.com"}}),
        ] {
            assert!(parse_event(&broken).is_err(), "{broken}");
        }
        let mut e = fixture("authorize-ingress-iam-user.json");
        e["detail"]["requestParameters"]["ipPermissions"]["items"][0]["fromPort"] = "x".into();
        let call = parse_event(&e).unwrap();
        assert!(call.requested.is_empty());
    }

    /// The console's "Edit inbound rules" as CloudTrail records it: the rule's new body, no
    /// direction. Only once the rule is known to be ingress does it count as requested.
    #[test]
    fn a_modified_rule_counts_as_requested_only_when_it_is_ingress() {
        let call = parse_event(&fixture("modify-rules-console.json")).unwrap();
        assert_eq!(call.event_name, "ModifySecurityGroupRules");
        assert_eq!(call.group_ids, ["sg-0123456789abcdef0"]);
        assert!(call.requested.is_empty());
        assert_eq!(call.modified.len(), 1);
        assert_eq!(call.modified[0].rule_id, "sgr-0a1b2c3d4e5f60718");
        let ingress =
            std::collections::BTreeMap::from([("sgr-0a1b2c3d4e5f60718".to_owned(), false)]);
        let resolved = call.clone().with_modified_ingress(&ingress);
        let rules: Vec<String> = resolved
            .requested
            .iter()
            .map(|c| c.rule.to_string())
            .collect();
        assert_eq!(rules, ["ingress tcp/22 from 0.0.0.0/0"]);
        assert_eq!(
            resolved.requested[0].rule.description.as_deref(),
            Some("temporary")
        );
        let egress = std::collections::BTreeMap::from([("sgr-0a1b2c3d4e5f60718".to_owned(), true)]);
        assert!(call
            .clone()
            .with_modified_ingress(&egress)
            .requested
            .is_empty());
        assert!(call
            .with_modified_ingress(&Default::default())
            .requested
            .is_empty());
    }

    #[test]
    fn the_older_single_rule_form_is_read_too() {
        let mut e = fixture("authorize-ingress-iam-user.json");
        e["detail"]["requestParameters"] = json!({"groupId": "sg-0123456789abcdef0",
            "ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIp": "0.0.0.0/0"});
        let call = parse_event(&e).unwrap();
        let requested: Vec<String> = call.requested.iter().map(|c| c.rule.to_string()).collect();
        assert_eq!(requested, ["ingress tcp/22 from 0.0.0.0/0"]);
    }

    #[test]
    fn stored_calls_read_back_the_same() {
        let call = parse_event(&fixture("authorize-ingress-sso-role.json")).unwrap();
        let text = serde_json::to_string(&call).unwrap();
        let back: ApiCall = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back,
            ApiCall {
                requested: vec![],
                ..call
            }
        );
        assert_eq!(time_of_day("2026-11-20T09:13:58Z"), "09:13:58Z");
        assert_eq!(time_of_day("odd"), "odd");
    }
}
