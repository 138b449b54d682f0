//! The CloudFormation template, read as data.
//!
//! moto's CloudFormation reports `AWS::SNS::TopicPolicy`, `AWS::S3::BucketPolicy`,
//! `AWS::Lambda::EventInvokeConfig` and `AWS::SNS::Subscription` as created while creating
//! nothing, so a deploy on moto proves nothing about them: these tests check them here, together
//! with the installer's contract (parameter, resource and output names) and least privilege.
//! cfn-lint and checkov (`scripts/lint-templates.sh`) check the rest.
//!
//! The template is written in long form (`Ref:`, `Fn::Sub:`), so it reads as plain JSON values.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Value};

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/sgwatch.yaml");

/// Every SES identity of the account and region: in the SES sandbox, SendEmail is authorised
/// against each recipient's identity as well as the sender's.
const ANY_IDENTITY_ARN: &str =
    "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*";

/// The handler's log group and its streams (where PutLogEvents is authorised).
const LOG_STREAMS_ARN: &str =
    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${LogGroup}:*";

fn source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        std::fs::read_to_string(TEMPLATE).unwrap_or_else(|e| panic!("reading {TEMPLATE}: {e}"))
    })
}

fn template() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| {
        serde_yaml::from_str(source()).unwrap_or_else(|e| {
            panic!("{TEMPLATE} is not plain YAML (short tags like !Ref are not allowed): {e}")
        })
    })
}

fn resource(id: &str) -> &'static Value {
    let r = &template()["Resources"][id];
    assert!(r.is_object(), "resource {id} is missing");
    r
}

pub(crate) fn props(id: &str) -> &'static Value {
    let p = &resource(id)["Properties"];
    assert!(p.is_object(), "resource {id} has no Properties");
    p
}

/// A value that may be one item or a list of them (IAM's Action, Resource, Statement...).
fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

fn strings(v: &Value) -> Vec<&str> {
    list(v)
        .into_iter()
        .map(|s| s.as_str().unwrap_or_else(|| panic!("not a string: {s}")))
        .collect()
}

fn r#ref(name: &str) -> Value {
    json!({ "Ref": name })
}

fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

fn sub(text: &str) -> Value {
    json!({ "Fn::Sub": text })
}

fn statements(doc: &Value) -> Vec<&Value> {
    // A conditional statement (`Fn::If`) counts as each of its branches that is one.
    let s: Vec<&Value> = list(&doc["Statement"])
        .into_iter()
        .flat_map(|s| match s.get("Fn::If").and_then(Value::as_array) {
            Some(branches) => branches[1..]
                .iter()
                .filter(|b| b.get("Effect").is_some())
                .collect(),
            None => vec![s],
        })
        .collect();
    assert!(!s.is_empty(), "policy document has no statement: {doc}");
    s
}

fn statement<'a>(doc: &'a Value, sid: &str) -> &'a Value {
    statements(doc)
        .into_iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {doc}"))
}

fn actions(statement: &Value) -> Vec<&str> {
    strings(&statement["Action"])
}

fn is_allow(statement: &Value) -> bool {
    statement["Effect"] == "Allow"
}

/// Every IAM policy document in the template, with where it sits.
fn policy_documents() -> Vec<(String, &'static Value)> {
    let resources = template()["Resources"]
        .as_object()
        .expect("Resources is a map");
    let mut docs = Vec::new();
    for (id, r) in resources {
        let p = &r["Properties"];
        match r["Type"].as_str().unwrap_or_default() {
            "AWS::IAM::Role" => {
                docs.push((format!("{id} trust policy"), &p["AssumeRolePolicyDocument"]));
                for policy in list(&p["Policies"]) {
                    let name = policy["PolicyName"].as_str().unwrap_or("?");
                    docs.push((format!("{id} policy {name}"), &policy["PolicyDocument"]));
                }
            }
            "AWS::IAM::Policy"
            | "AWS::IAM::ManagedPolicy"
            | "AWS::SNS::TopicPolicy"
            | "AWS::S3::BucketPolicy"
            | "AWS::SQS::QueuePolicy" => docs.push((id.clone(), &p["PolicyDocument"])),
            _ => {}
        }
    }
    docs
}

/// The Allow statements of a role's inline policies.
fn role_allows(role: &str) -> Vec<&'static Value> {
    role_policies(role)
        .into_iter()
        .flat_map(|(_, p)| statements(&p["PolicyDocument"]))
        .filter(|s| is_allow(s))
        .collect()
}

/// A role's policies: its inline `Policies`, then each `AWS::IAM::Policy` attached to it, with
/// that resource's condition (`None`: always there).
pub(crate) fn role_policies(role: &str) -> Vec<(Option<&'static str>, &'static Value)> {
    let attached = template()["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| {
            r["Type"] == "AWS::IAM::Policy"
                && list(&r["Properties"]["Roles"]).contains(&&json!({ "Ref": role }))
        })
        .map(|r| (r["Condition"].as_str(), &r["Properties"]));
    list(&props(role)["Policies"])
        .into_iter()
        .map(|p| (None, p))
        .chain(attached)
        .collect()
}

/// The one Allow statement of `role` that grants `action`.
fn allow_for(role: &str, action: &str) -> &'static Value {
    let found: Vec<_> = role_allows(role)
        .into_iter()
        .filter(|s| actions(s).contains(&action))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{role} should grant {action} in exactly one statement: {found:?}"
    );
    found[0]
}

fn assert_service_trust(role: &str, service: &str) {
    let trust = statements(&props(role)["AssumeRolePolicyDocument"]);
    assert_eq!(trust.len(), 1, "{role} trusts one principal");
    assert!(is_allow(trust[0]));
    assert_eq!(
        trust[0]["Principal"],
        json!({ "Service": service }),
        "{role} trust principal"
    );
    assert_eq!(actions(trust[0]), ["sts:AssumeRole"]);
}

// ------------------------------------------------------------------------------ the contract

#[test]
fn template_is_plain_yaml_in_long_form() {
    fn find_tag(v: &serde_yaml::Value, at: &str) -> Option<String> {
        match v {
            serde_yaml::Value::Tagged(t) => Some(format!("{} at {at}", t.tag)),
            serde_yaml::Value::Sequence(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, x)| find_tag(x, &format!("{at}[{i}]"))),
            serde_yaml::Value::Mapping(m) => m.iter().find_map(|(k, x)| {
                find_tag(k, at)
                    .or_else(|| find_tag(x, &format!("{at}.{}", k.as_str().unwrap_or("?"))))
            }),
            _ => None,
        }
    }
    let raw: serde_yaml::Value = serde_yaml::from_str(source()).expect("template is YAML");
    assert_eq!(
        find_tag(&raw, "$"),
        None,
        "use the long form (Ref:, Fn::Sub:) instead of tags"
    );

    let t = template();
    assert_eq!(t["AWSTemplateFormatVersion"], "2010-09-09");
    assert!(t["Description"]
        .as_str()
        .is_some_and(|d| d.contains("sgwatch")));
    assert_eq!(t["Metadata"]["sgwatch"]["template-version"], json!(1));
}

/// A parameter's name, type, default (`None`: required) and allowed values.
type ParameterContract<'a> = (&'a str, &'a str, Option<Value>, Option<&'a [&'a str]>);

#[test]
fn parameters_match_the_installer_contract() {
    const SEVERITIES: &[&str] = &["", "critical", "high", "medium", "low", "info"];
    const BOOLS: &[&str] = &["true", "false"];
    // (name, type, default (None: required), allowed values)
    let contract: &[ParameterContract] = &[
        ("Sender", "String", None, None),
        ("SenderIdentity", "String", None, None),
        ("FallbackRecipient", "String", Some(json!("")), None),
        (
            "AlwaysNotifyAt",
            "String",
            Some(json!("")),
            Some(SEVERITIES),
        ),
        ("NotifyTag", "String", Some(json!("NotifyOnChange")), None),
        ("OwnerTag", "String", Some(json!("OwnerDL")), None),
        ("ResourceTypes", "String", Some(json!("")), None),
        (
            "NotifyOnRelationshipChanges",
            "String",
            Some(json!("false")),
            Some(BOOLS),
        ),
        (
            "AllowPrivateDestinations",
            "String",
            Some(json!("false")),
            Some(BOOLS),
        ),
        ("LookupActor", "String", Some(json!("true")), Some(BOOLS)),
        ("BaselineUntil", "String", Some(json!("")), None),
        ("Accounts", "String", Some(json!("")), None),
        ("Destinations", "String", Some(json!("")), None),
        ("DestinationParameters", "String", Some(json!("")), None),
        ("DestinationKmsKeyArn", "String", Some(json!("")), None),
        ("ChannelsTag", "String", Some(json!("NotifyChannels")), None),
        ("FallbackDestination", "String", Some(json!("")), None),
        (
            "Architecture",
            "String",
            Some(json!("arm64")),
            Some(&["arm64", "x86_64"]),
        ),
        ("ArtifactBucket", "String", Some(json!("")), None),
        (
            "ArtifactBucketPrefix",
            "String",
            Some(json!("sgwatch-artifacts")),
            None,
        ),
        ("ArtifactKey", "String", None, None),
        (
            "EventSource",
            "String",
            Some(json!("sns")),
            Some(&["sns", "eventbridge"]),
        ),
        ("ReservedConcurrency", "String", Some(json!("")), None),
        (
            "ActorFeed",
            "String",
            Some(json!("off")),
            Some(&["on", "off"]),
        ),
        (
            "EarlyWarning",
            "String",
            Some(json!("critical")),
            Some(&["critical", "high", "off"]),
        ),
        ("AdoptedTopicArn", "String", Some(json!("")), None),
        ("LogRetentionDays", "Number", Some(json!(30)), None),
        (
            "Digest",
            "String",
            Some(json!("off")),
            Some(&["off", "info", "low"]),
        ),
        ("CoalesceSeconds", "Number", Some(json!(60)), None),
        ("MaxPerGroupHour", "Number", Some(json!(10)), None),
        ("DigestHour", "Number", Some(json!(8)), None),
        ("DigestMinute", "Number", Some(json!(0)), None),
        ("DigestTimezone", "String", Some(json!("UTC")), None),
    ];
    let params = template()["Parameters"]
        .as_object()
        .expect("Parameters is a map");
    for (name, kind, default, allowed) in contract {
        let p = params
            .get(*name)
            .unwrap_or_else(|| panic!("parameter {name} is missing"));
        assert_eq!(p["Type"], *kind, "type of {name}");
        match default {
            Some(d) => assert_eq!(&p["Default"], d, "default of {name}"),
            None => assert!(p.get("Default").is_none(), "{name} is required: no default"),
        }
        if let Some(allowed) = allowed {
            let declared: BTreeSet<_> = strings(&p["AllowedValues"]).into_iter().collect();
            assert_eq!(
                declared,
                allowed.iter().copied().collect(),
                "allowed values of {name}"
            );
        }
    }
    // A required parameter the installer does not know about would make every install fail.
    for (name, p) in params {
        if p.get("Default").is_none() {
            assert!(
                contract.iter().any(|(n, _, d, _)| n == name && d.is_none()),
                "parameter {name} has no default but is not in the installer's contract"
            );
        }
    }
}

#[test]
fn resources_have_the_logical_ids_and_types_the_installer_expects() {
    let expected = [
        ("Topic", "AWS::SNS::Topic"),
        ("TopicPolicy", "AWS::SNS::TopicPolicy"),
        ("ConfigBucket", "AWS::S3::Bucket"),
        ("ConfigBucketPolicy", "AWS::S3::BucketPolicy"),
        ("ConfigRole", "AWS::IAM::Role"),
        ("FailureQueue", "AWS::SQS::Queue"),
        ("FailureQueuePolicy", "AWS::SQS::QueuePolicy"),
        ("IdempotencyTable", "AWS::DynamoDB::Table"),
        ("HandlerRole", "AWS::IAM::Role"),
        ("LogGroup", "AWS::Logs::LogGroup"),
        ("Function", "AWS::Lambda::Function"),
        ("SnsPermission", "AWS::Lambda::Permission"),
        ("EventRule", "AWS::Events::Rule"),
        ("EventRulePermission", "AWS::Lambda::Permission"),
        ("InvokeConfig", "AWS::Lambda::EventInvokeConfig"),
        ("ActorFeedRule", "AWS::Events::Rule"),
        ("ActorFeedPermission", "AWS::Lambda::Permission"),
        ("DestinationSecretsPolicy", "AWS::IAM::Policy"),
        ("DestinationKeyPolicy", "AWS::IAM::Policy"),
        ("EarlyWarningPolicy", "AWS::IAM::Policy"),
        ("AlarmTopic", "AWS::SNS::Topic"),
        ("FailureQueueAlarm", "AWS::CloudWatch::Alarm"),
        ("FunctionErrorsAlarm", "AWS::CloudWatch::Alarm"),
        ("FunctionThrottlesAlarm", "AWS::CloudWatch::Alarm"),
        ("HubBus", "AWS::Events::EventBus"),
        ("HubBusFromOrganization", "AWS::Events::EventBusPolicy"),
        ("HubBusFromAccounts", "AWS::Events::EventBusPolicy"),
        ("HubDeadLetterQueue", "AWS::SQS::Queue"),
        ("HubQueue", "AWS::SQS::Queue"),
        ("HubQueuePolicy", "AWS::SQS::QueuePolicy"),
        ("HubRule", "AWS::Events::Rule"),
        ("HubQueueReadPolicy", "AWS::IAM::Policy"),
        ("HubEventSource", "AWS::Lambda::EventSourceMapping"),
        ("HubWatch", "AWS::Events::Rule"),
        ("HubWatchPermission", "AWS::Lambda::Permission"),
        ("AutoRevertPolicy", "AWS::IAM::Policy"),
        ("LinkKey", "AWS::KMS::Key"),
        ("LinkSigningPolicy", "AWS::IAM::Policy"),
        ("ActLogGroup", "AWS::Logs::LogGroup"),
        ("ActRole", "AWS::IAM::Role"),
        ("ActFunction", "AWS::Lambda::Function"),
        ("ActUrl", "AWS::Lambda::Url"),
        ("ActUrlPermission", "AWS::Lambda::Permission"),
        ("ActInvokePermission", "AWS::Lambda::Permission"),
        ("WakeQueue", "AWS::SQS::Queue"),
        ("WakeQueuePolicy", "AWS::IAM::Policy"),
        ("WakeEventSource", "AWS::Lambda::EventSourceMapping"),
        ("DigestSchedulerRole", "AWS::IAM::Role"),
        ("DigestSchedule", "AWS::Scheduler::Schedule"),
        ("ChatbotTopicsPolicy", "AWS::IAM::Policy"),
        ("SecurityHubFindingsPolicy", "AWS::IAM::Policy"),
    ];
    for (id, kind) in expected {
        assert_eq!(resource(id)["Type"], kind, "type of {id}");
    }
    let resources = template()["Resources"].as_object().unwrap();
    assert_eq!(
        resources.len(),
        expected.len(),
        "unexpected resources: {:?}",
        resources.keys()
    );
}

#[test]
fn outputs_match_the_installer_contract() {
    let expected = [
        ("TopicArn", r#ref("Topic")),
        ("ConfigBucketName", r#ref("ConfigBucket")),
        ("ConfigRoleArn", get_att("ConfigRole", "Arn")),
        ("FunctionName", r#ref("Function")),
        ("FunctionArn", get_att("Function", "Arn")),
        ("HandlerRoleArn", get_att("HandlerRole", "Arn")),
        ("FailureQueueUrl", r#ref("FailureQueue")),
        ("FailureQueueArn", get_att("FailureQueue", "Arn")),
        ("IdempotencyTableName", r#ref("IdempotencyTable")),
        ("LogGroupName", r#ref("LogGroup")),
        ("SenderIdentity", r#ref("SenderIdentity")),
        ("ActorFeedRuleName", r#ref("ActorFeedRule")),
        ("AlarmTopicArn", r#ref("AlarmTopic")),
        ("DigestScheduleName", r#ref("DigestSchedule")),
        ("WakeQueueArn", get_att("WakeQueue", "Arn")),
    ];
    for (name, value) in expected {
        assert_eq!(template()["Outputs"][name]["Value"], value, "output {name}");
    }
}

/// moto's CloudFormation has no `AWS::CloudWatch::Alarm`: the alarms are checked here. Each goes
/// off at the first failure of its kind and emails the fallback recipient through the alarm
/// topic; its name is the stack's name and a fixed suffix, as `status` and `verify` look for it.
#[test]
fn alarms_on_sgwatch_failing_email_the_fallback_recipient() {
    let alarms = [
        (
            "FailureQueueAlarm",
            "${AWS::StackName}-failures-parked",
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            json!([{"Name": "QueueName", "Value": get_att("FailureQueue", "QueueName")}]),
        ),
        (
            "FunctionErrorsAlarm",
            "${AWS::StackName}-function-errors",
            "AWS/Lambda",
            "Errors",
            json!([{"Name": "FunctionName", "Value": r#ref("Function")}]),
        ),
        (
            "FunctionThrottlesAlarm",
            "${AWS::StackName}-function-throttles",
            "AWS/Lambda",
            "Throttles",
            json!([{"Name": "FunctionName", "Value": r#ref("Function")}]),
        ),
    ];
    for (id, name, namespace, metric, dimensions) in alarms {
        let p = props(id);
        assert_eq!(p["AlarmName"], sub(name), "{id}");
        assert_eq!(p["Namespace"], namespace, "{id}");
        assert_eq!(p["MetricName"], metric, "{id}");
        assert_eq!(p["Dimensions"], dimensions, "{id}");
        assert_eq!(p["Threshold"], 0, "{id}");
        assert_eq!(p["ComparisonOperator"], "GreaterThanThreshold", "{id}");
        assert_eq!(p["EvaluationPeriods"], 1, "{id}");
        // No data (no traffic) is no failure.
        assert_eq!(p["TreatMissingData"], "notBreaching", "{id}");
        assert_eq!(p["AlarmActions"], json!([r#ref("AlarmTopic")]), "{id}");
    }
    assert_eq!(
        props("AlarmTopic")["Subscription"],
        json!({"Fn::If": ["HasFallbackRecipient",
            [{"Protocol": "email", "Endpoint": r#ref("FallbackRecipient")}],
            r#ref("AWS::NoValue")]})
    );
    assert_eq!(
        template()["Conditions"]["HasFallbackRecipient"],
        json!({"Fn::Not": [{"Fn::Equals": [r#ref("FallbackRecipient"), ""]}]})
    );
}

#[test]
fn checkov_suppressions_each_say_why() {
    let mut count = 0;
    for (id, r) in template()["Resources"].as_object().unwrap() {
        for skip in list(&r["Metadata"]["checkov"]["skip"]) {
            count += 1;
            assert!(
                skip["id"].as_str().is_some_and(|c| c.starts_with("CKV")),
                "{id}: {skip}"
            );
            let why = skip["comment"].as_str().unwrap_or_default();
            assert!(
                why.len() >= 40,
                "{id}: suppression {} needs a real reason",
                skip["id"]
            );
        }
    }
    assert!(
        count > 0,
        "no suppression found: is the Metadata shape still checkov's?"
    );
}

// ------------------------------------------------------------------------------ SNS

#[test]
fn topic_subscribes_the_function_inline_when_the_source_is_sns() {
    // Inline because moto skips AWS::SNS::Subscription; none may sneak back in.
    for (id, r) in template()["Resources"].as_object().unwrap() {
        assert_ne!(
            r["Type"], "AWS::SNS::Subscription",
            "{id}: subscribe inline on the Topic"
        );
    }
    assert_eq!(
        props("Topic")["Subscription"],
        json!({ "Fn::If": [
            "SourceIsSns",
            [{ "Protocol": "lambda", "Endpoint": get_att("Function", "Arn") }],
            r#ref("AWS::NoValue"),
        ]})
    );
    let conditions = &template()["Conditions"];
    assert_eq!(
        conditions["SourceIsSns"],
        json!({ "Fn::Equals": [r#ref("EventSource"), "sns"] })
    );
    assert_eq!(
        conditions["SourceIsEventBridge"],
        json!({ "Fn::Equals": [r#ref("EventSource"), "eventbridge"] })
    );
}

#[test]
fn topic_is_unencrypted_because_config_cannot_publish_to_encrypted_topics() {
    // The AWS Config developer guide, "Permissions for the Amazon SNS Topic": "AWS Config does
    // not support encrypted Amazon SNS topics". Encrypting it would lose every notification.
    assert!(props("Topic").get("KmsMasterKeyId").is_none());
}

#[test]
fn topic_policy_lets_only_this_accounts_config_publish() {
    let p = props("TopicPolicy");
    assert_eq!(p["Topics"], json!([r#ref("Topic")]));
    let all = statements(&p["PolicyDocument"]);
    assert_eq!(all.len(), 1, "one statement: {all:?}");
    let s = all[0];
    assert!(is_allow(s));
    assert_eq!(s["Principal"], json!({ "Service": "config.amazonaws.com" }));
    assert_eq!(actions(s), ["sns:Publish"]);
    assert_eq!(s["Resource"], r#ref("Topic"));
    assert_eq!(
        s["Condition"],
        json!({ "StringEquals": { "AWS:SourceAccount": r#ref("AWS::AccountId") } })
    );
}

// ------------------------------------------------------------------------------ S3

#[test]
fn config_bucket_blocks_public_access_and_is_encrypted_and_versioned() {
    let p = props("ConfigBucket");
    let block = &p["PublicAccessBlockConfiguration"];
    for flag in [
        "BlockPublicAcls",
        "BlockPublicPolicy",
        "IgnorePublicAcls",
        "RestrictPublicBuckets",
    ] {
        assert_eq!(block[flag], json!(true), "{flag}");
    }
    let rules = list(&p["BucketEncryption"]["ServerSideEncryptionConfiguration"]);
    assert!(!rules.is_empty(), "no default encryption");
    for rule in rules {
        let algorithm = &rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"];
        assert!(
            algorithm == "AES256" || algorithm == "aws:kms",
            "SSE algorithm {algorithm}"
        );
    }
    assert_eq!(p["VersioningConfiguration"]["Status"], "Enabled");
    assert_eq!(
        p["OwnershipControls"]["Rules"],
        json!([{ "ObjectOwnership": "BucketOwnerEnforced" }])
    );
}

#[test]
fn config_bucket_policy_is_the_one_aws_config_documents() {
    let p = props("ConfigBucketPolicy");
    assert_eq!(p["Bucket"], r#ref("ConfigBucket"));
    let doc = &p["PolicyDocument"];
    let this_account = json!({ "AWS:SourceAccount": r#ref("AWS::AccountId") });
    let bucket = get_att("ConfigBucket", "Arn");

    for (sid, action) in [
        ("AWSConfigBucketPermissionsCheck", "s3:GetBucketAcl"),
        ("AWSConfigBucketExistenceCheck", "s3:ListBucket"),
    ] {
        let s = statement(doc, sid);
        assert!(is_allow(s), "{sid}");
        assert_eq!(
            s["Principal"],
            json!({ "Service": "config.amazonaws.com" }),
            "{sid}"
        );
        assert_eq!(actions(s), [action], "{sid}");
        assert_eq!(s["Resource"], bucket, "{sid}");
        assert_eq!(
            s["Condition"],
            json!({ "StringEquals": this_account }),
            "{sid}"
        );
    }

    let s = statement(doc, "AWSConfigBucketDelivery");
    assert!(is_allow(s));
    assert_eq!(s["Principal"], json!({ "Service": "config.amazonaws.com" }));
    assert_eq!(actions(s), ["s3:PutObject"]);
    assert_eq!(
        s["Resource"],
        sub("${ConfigBucket.Arn}/AWSLogs/${AWS::AccountId}/Config/*")
    );
    assert_eq!(
        s["Condition"]["StringEquals"]["s3:x-amz-acl"],
        "bucket-owner-full-control"
    );
    assert_eq!(
        s["Condition"]["StringEquals"]["AWS:SourceAccount"],
        r#ref("AWS::AccountId")
    );
}

#[test]
fn config_bucket_policy_denies_plain_http() {
    let doc = &props("ConfigBucketPolicy")["PolicyDocument"];
    let deny = statements(doc)
        .into_iter()
        .find(|s| {
            s["Effect"] == "Deny" && s["Condition"]["Bool"].get("aws:SecureTransport").is_some()
        })
        .expect("a Deny on aws:SecureTransport");
    let secure = &deny["Condition"]["Bool"]["aws:SecureTransport"];
    assert!(
        secure == "false" || secure == &json!(false),
        "denies when SecureTransport is false"
    );
    assert_eq!(deny["Principal"], "*");
    assert_eq!(actions(deny), ["s3:*"]);
    let resources: Vec<_> = list(&deny["Resource"]).into_iter().cloned().collect();
    assert!(
        resources.contains(&get_att("ConfigBucket", "Arn")),
        "covers the bucket"
    );
    assert!(
        resources.contains(&sub("${ConfigBucket.Arn}/*")),
        "covers its objects"
    );
}

// ------------------------------------------------------------------------------ least privilege

#[test]
fn no_allow_statement_grants_a_wildcard_action() {
    let docs = policy_documents();
    let places: Vec<_> = docs.iter().map(|(place, _)| place.as_str()).collect();
    for expected in [
        "ConfigRole policy deliver",
        "HandlerRole policy handler",
        "TopicPolicy",
        "ConfigBucketPolicy",
    ] {
        assert!(
            places.contains(&expected),
            "{expected} not scanned; scanned {places:?}"
        );
    }
    let mut allows = 0;
    for (place, doc) in docs {
        for s in statements(doc) {
            match s["Effect"].as_str() {
                Some("Allow") => {
                    allows += 1;
                    assert!(
                        s.get("NotAction").is_none(),
                        "{place}: Allow with NotAction"
                    );
                    assert!(
                        s.get("NotResource").is_none(),
                        "{place}: Allow with NotResource"
                    );
                    assert_ne!(s["Principal"], "*", "{place}: Allow to everyone");
                    for action in actions(s) {
                        assert!(
                            !action.contains('*'),
                            "{place}: Allow of wildcard action {action}"
                        );
                    }
                }
                Some("Deny") => {}
                other => panic!("{place}: statement with Effect {other:?}"),
            }
        }
    }
    assert!(allows >= 12, "only {allows} Allow statements found");
}

#[test]
fn only_cloudtrail_lookup_events_has_a_wildcard_resource() {
    // LookupEvents, GetResourceConfigHistory, DescribeSecurityGroups,
    // DescribeSecurityGroupRules, DescribeNetworkInterfaces, DescribeConfigurationRecorders(Status)
    // and DescribeTrails have no resource-level permissions; everything else names its resource.
    for (place, doc) in policy_documents() {
        for s in statements(doc).into_iter().filter(|s| is_allow(s)) {
            if list(&s["Resource"]).iter().any(|r| *r == "*") {
                let a = actions(s);
                assert!(
                    a == ["cloudtrail:LookupEvents"]
                        || a == ["config:GetResourceConfigHistory"]
                        || a == ["ec2:DescribeSecurityGroups"]
                        || a == ["ec2:DescribeSecurityGroupRules"]
                        || a == ["ec2:DescribeNetworkInterfaces"]
                        // The act function reads the group and its rules as they are now.
                        || a == [
                            "ec2:DescribeSecurityGroups",
                            "ec2:DescribeSecurityGroupRules"
                        ]
                        // A hub's look at a spoke in its own account (none of the three has
                        // resource-level permissions either).
                        || a == [
                            "config:DescribeConfigurationRecorders",
                            "config:DescribeConfigurationRecorderStatus",
                            "cloudtrail:DescribeTrails"
                        ],
                    "{place}: Resource \"*\" for {a:?}"
                );
            }
        }
    }
}

#[test]
fn config_role_can_deliver_to_the_stacks_bucket_and_topic_only() {
    assert_service_trust("ConfigRole", "config.amazonaws.com");
    let trust = statements(&props("ConfigRole")["AssumeRolePolicyDocument"]);
    assert_eq!(
        trust[0]["Condition"]["StringEquals"]["AWS:SourceAccount"],
        r#ref("AWS::AccountId")
    );
    assert_eq!(
        props("ConfigRole")["ManagedPolicyArns"],
        json!([sub(
            "arn:${AWS::Partition}:iam::aws:policy/service-role/AWS_ConfigRole"
        )])
    );

    let granted: BTreeSet<_> = role_allows("ConfigRole")
        .into_iter()
        .flat_map(actions)
        .collect();
    let expected: BTreeSet<_> = [
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:GetBucketAcl",
        "sns:Publish",
    ]
    .into();
    assert_eq!(granted, expected);

    let put = allow_for("ConfigRole", "s3:PutObject");
    assert_eq!(actions(put), ["s3:PutObject", "s3:PutObjectAcl"]);
    assert_eq!(
        put["Resource"],
        sub("${ConfigBucket.Arn}/AWSLogs/${AWS::AccountId}/*")
    );
    assert_eq!(
        allow_for("ConfigRole", "s3:GetBucketAcl")["Resource"],
        get_att("ConfigBucket", "Arn")
    );
    assert_eq!(
        allow_for("ConfigRole", "sns:Publish")["Resource"],
        r#ref("Topic")
    );
}

#[test]
fn handler_role_grants_exactly_what_the_handler_calls() {
    assert_service_trust("HandlerRole", "lambda.amazonaws.com");
    // A managed policy (AWSLambdaBasicExecutionRole) would add logs:CreateLogGroup on "*".
    assert!(
        props("HandlerRole").get("ManagedPolicyArns").is_none(),
        "no managed policies"
    );

    let expected = [
        ("logs:CreateLogStream", sub(LOG_STREAMS_ARN)),
        ("logs:PutLogEvents", sub(LOG_STREAMS_ARN)),
        ("ses:SendEmail", sub(ANY_IDENTITY_ARN)),
        ("s3:GetObject", sub("${ConfigBucket.Arn}/AWSLogs/*")),
        ("cloudtrail:LookupEvents", json!("*")),
        // What a prefix list holds decides how far its rules open a group: prefix lists only.
        (
            "ec2:GetManagedPrefixListEntries",
            sub("arn:${AWS::Partition}:ec2:${AWS::Region}:*:prefix-list/*"),
        ),
        // The failure queue's (statement OnFailureDestination, below) and the wake queue's (see
        // the_wake_queue_feeds_the_handler…).
        ("sqs:SendMessage", Value::Null),
        ("dynamodb:UpdateItem", get_att("IdempotencyTable", "Arn")),
        ("dynamodb:GetItem", get_att("IdempotencyTable", "Arn")),
        ("config:GetResourceConfigHistory", json!("*")),
        // Each only when destinations (or their key) are given: see
        // handler_reads_exactly_the_destination_parameters.
        ("ssm:GetParameter", Value::Null),
        ("kms:Decrypt", r#ref("DestinationKmsKeyArn")),
        // Early warning reads the group's tags; only with the actor feed (see below).
        ("ec2:DescribeSecurityGroups", json!("*")),
        // The alert's commands name rules by id; early warning reads whether a rewritten rule
        // is ingress.
        ("ec2:DescribeSecurityGroupRules", json!("*")),
        // The alert says what the group is attached to.
        ("ec2:DescribeNetworkInterfaces", json!("*")),
        // Only with the links on: signing them.
        ("kms:GenerateMac", get_att("LinkKey", "Arn")),
        // Only with auto-revert on: see auto_revert_revokes_only_on_groups_that_opt_in.
        ("ec2:RevokeSecurityGroupIngress", Value::Null),
        // A hub's: its queue, the spokes' reader role and the accounts' names (see
        // hub_templates).
        // (and the wake queue's, as sqs:SendMessage above).
        ("sqs:ReceiveMessage", Value::Null),
        ("sqs:DeleteMessage", Value::Null),
        ("sqs:GetQueueAttributes", Value::Null),
        (
            "sts:AssumeRole",
            sub("arn:${AWS::Partition}:iam::*:role/sgwatch-reader"),
        ),
        (
            "organizations:DescribeAccount",
            sub("arn:${AWS::Partition}:organizations::*:account/o-*/*"),
        ),
        // Only with --security-hub on: findings into the account's own product, and only there.
        (
            "securityhub:BatchImportFindings",
            sub("arn:${AWS::Partition}:securityhub:${AWS::Region}:${AWS::AccountId}:product/${AWS::AccountId}/default"),
        ),
        // Only with chatbot destinations: exactly the topics they name.
        (
            "sns:Publish",
            json!({"Fn::Split": [",", {"Ref": "ChatbotTopics"}]}),
        ),
        // A hub's look at what a spoke's region shows it, in the hub's own account.
        ("config:DescribeConfigurationRecorders", json!("*")),
        ("config:DescribeConfigurationRecorderStatus", json!("*")),
        ("cloudtrail:DescribeTrails", json!("*")),
        (
            "cloudtrail:GetTrailStatus",
            sub("arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"),
        ),
        (
            "cloudtrail:GetEventSelectors",
            sub("arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"),
        ),
    ];
    let granted: BTreeSet<_> = role_allows("HandlerRole")
        .into_iter()
        .flat_map(actions)
        .collect();
    assert_eq!(
        granted,
        expected.iter().map(|(a, _)| *a).collect(),
        "actions of HandlerRole"
    );
    for (action, resource) in expected.into_iter().filter(|(_, r)| !r.is_null()) {
        assert_eq!(
            allow_for("HandlerRole", action)["Resource"],
            resource,
            "resource of {action}"
        );
    }
    let handler = &props("HandlerRole")["Policies"][0]["PolicyDocument"];
    let on_failure = statement(handler, "OnFailureDestination");
    assert_eq!(actions(on_failure), ["sqs:SendMessage"]);
    assert_eq!(on_failure["Resource"], get_att("FailureQueue", "Arn"));
    let hub = statement(
        &props("HubQueueReadPolicy")["PolicyDocument"],
        "ReadTheHubQueue",
    );
    assert_eq!(hub["Resource"], get_att("HubQueue", "Arn"));
}

#[test]
fn handler_may_send_only_as_the_sender_to_any_identity_in_the_sandbox() {
    // Naming only the sender's identity would deny every send while the account is in the SES
    // sandbox, where each recipient's identity is checked too.
    let s = allow_for("HandlerRole", "ses:SendEmail");
    assert_eq!(actions(s), ["ses:SendEmail"]);
    assert_eq!(s["Resource"], sub(ANY_IDENTITY_ARN));
    assert_eq!(
        s["Condition"],
        json!({ "StringEquals": { "ses:FromAddress": r#ref("Sender") } })
    );
}

// ------------------------------------------------------------------------------ Lambda

#[test]
fn every_lambda_permission_names_its_source_by_arn_and_sets_no_source_account() {
    let mut seen = Vec::new();
    for (id, r) in template()["Resources"].as_object().unwrap() {
        if r["Type"] == "AWS::Lambda::Permission" {
            let p = &r["Properties"];
            // The act function's URL is public by design (its requests carry signed tokens):
            // its two grants are checked below, and nothing else may name it.
            if p["FunctionName"] == r#ref("ActFunction") {
                continue;
            }
            assert_eq!(p["Action"], "lambda:InvokeFunction", "{id}");
            assert_eq!(p["FunctionName"], get_att("Function", "Arn"), "{id}");
            assert!(p["SourceArn"].is_object(), "{id} has no SourceArn");
            // The topic's and the rule's ARNs name this account already; a SourceAccount
            // condition that the service does not send would deny every invocation.
            assert!(
                p.get("SourceAccount").is_none(),
                "{id}: SourceAccount beside an ARN that names the account"
            );
            seen.push(id.as_str());
        }
    }
    // Map order depends on serde_json's `preserve_order` feature, which the workspace may unify on.
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            "ActorFeedPermission",
            "EventRulePermission",
            "HubWatchPermission",
            "SnsPermission"
        ]
    );
    // A public function URL, and InvokeFunction only through it; both only with the links on.
    for (id, action) in [
        ("ActUrlPermission", "lambda:InvokeFunctionUrl"),
        ("ActInvokePermission", "lambda:InvokeFunction"),
    ] {
        assert_eq!(resource(id)["Condition"], "ActLinksOn", "{id}");
        assert_eq!(props(id)["Action"], action, "{id}");
        assert_eq!(props(id)["Principal"], "*", "{id}");
    }
    assert_eq!(props("ActUrlPermission")["FunctionUrlAuthType"], "NONE");
    assert_eq!(props("ActInvokePermission")["InvokedViaFunctionUrl"], true);
    assert_eq!(props("ActUrl")["AuthType"], "NONE");
    assert_eq!(resource("HubWatchPermission")["Condition"], "IsHub");
    assert_eq!(
        props("HubWatchPermission")["SourceArn"],
        get_att("HubWatch", "Arn")
    );
    assert_eq!(resource("ActorFeedPermission")["Condition"], "ActorFeedOn");
    assert_eq!(
        props("ActorFeedPermission")["Principal"],
        "events.amazonaws.com"
    );
    assert_eq!(
        props("ActorFeedPermission")["SourceArn"],
        get_att("ActorFeedRule", "Arn")
    );

    assert_eq!(resource("SnsPermission")["Condition"], "SourceIsSns");
    assert_eq!(props("SnsPermission")["Principal"], "sns.amazonaws.com");
    assert_eq!(props("SnsPermission")["SourceArn"], r#ref("Topic"));

    assert_eq!(
        resource("EventRulePermission")["Condition"],
        "SourceIsEventBridge"
    );
    assert_eq!(
        props("EventRulePermission")["Principal"],
        "events.amazonaws.com"
    );
    assert_eq!(
        props("EventRulePermission")["SourceArn"],
        get_att("EventRule", "Arn")
    );
}

#[test]
fn failed_invocations_land_in_the_failure_queue() {
    let p = props("InvokeConfig");
    assert_eq!(p["FunctionName"], r#ref("Function"));
    assert_eq!(p["Qualifier"], "$LATEST");
    assert_eq!(p["MaximumRetryAttempts"], json!(2));
    assert_eq!(p["MaximumEventAgeInSeconds"], json!(21600));
    assert_eq!(
        p["DestinationConfig"]["OnFailure"]["Destination"],
        get_att("FailureQueue", "Arn")
    );

    let q = props("FailureQueue");
    assert_eq!(q["SqsManagedSseEnabled"], json!(true));
    assert_eq!(q["MessageRetentionPeriod"], json!(1_209_600));

    // What EventBridge cannot deliver to the function is parked too, and the queue lets it.
    let target = &list(&props("EventRule")["Targets"])[0];
    assert_eq!(
        target["DeadLetterConfig"]["Arn"],
        get_att("FailureQueue", "Arn")
    );
    let policy = props("FailureQueuePolicy");
    assert_eq!(list(&policy["Queues"]), [&r#ref("FailureQueue")]);
    let sns = statement(&policy["PolicyDocument"], "SnsRedrive");
    assert_eq!(sns["Principal"]["Service"], "sns.amazonaws.com");
    assert_eq!(
        sns["Condition"]["ArnEquals"]["aws:SourceArn"],
        json!([r#ref("Topic"), {"Fn::If": ["HasAdoptedTopic", r#ref("AdoptedTopicArn"), r#ref("AWS::NoValue")]}])
    );
    let events = &list(&policy["PolicyDocument"]["Statement"])[1]["Fn::If"];
    assert_eq!(events[0], "SourceIsEventBridge");
    let events = statement(&policy["PolicyDocument"], "EventBridgeDeadLetter");
    assert_eq!(events["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(
        events["Condition"]["ArnEquals"]["aws:SourceArn"],
        get_att("EventRule", "Arn")
    );
}

#[test]
fn the_failure_queue_refuses_every_sender_but_the_function_its_topics_and_its_rules() {
    // What lands in the queue may be replayed by `sgwatch redrive`: anyone else who could send
    // there could make the trusted sender email whomever a planted item's tags name.
    let doc = &props("FailureQueuePolicy")["PolicyDocument"];
    let deny = statement(doc, "DenyOtherSenders");
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Principal"], "*");
    assert_eq!(actions(deny), ["sqs:SendMessage"]);
    assert_eq!(deny["Resource"], get_att("FailureQueue", "Arn"));
    let not_equals = deny["Condition"]["ArnNotEquals"]
        .as_object()
        .expect("ArnNotEquals");
    // Two keys in one operator are ANDed: denied unless one of them names the sender.
    assert_eq!(not_equals.len(), 2, "{not_equals:?}");
    assert_eq!(
        not_equals["aws:PrincipalArn"],
        get_att("HandlerRole", "Arn")
    );
    let if_ =
        |condition: &str, then: Value| json!({"Fn::If": [condition, then, r#ref("AWS::NoValue")]});
    assert_eq!(
        not_equals["aws:SourceArn"],
        json!([
            r#ref("Topic"),
            if_("HasAdoptedTopic", r#ref("AdoptedTopicArn")),
            if_("SourceIsEventBridge", get_att("EventRule", "Arn")),
            if_("ActorFeedOn", get_att("ActorFeedRule", "Arn")),
        ])
    );
    // Resolved, as CloudFormation would: the exact ARNs, no wildcard.
    let r = Resolver::new(
        "sgwatch",
        &[
            ("EventSource", "sns"),
            ("ActorFeed", "on"),
            (
                "AdoptedTopicArn",
                "arn:aws:sns:us-east-1:123456789012:config-topic",
            ),
        ],
    );
    let resolved = r.resolve(&deny["Condition"]["ArnNotEquals"]["aws:SourceArn"]);
    let arns: Vec<&str> = resolved
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        arns.contains(&"arn:aws:sns:us-east-1:123456789012:config-topic"),
        "{arns:?}"
    );
    assert!(arns.iter().all(|a| !a.contains('*')), "{arns:?}");
    assert_eq!(
        arns.len(),
        3,
        "topic, adopted topic, actor feed rule: {arns:?}"
    );
}

#[test]
fn function_gets_every_setting_from_the_parameters() {
    let p = props("Function");
    let vars = p["Environment"]["Variables"]
        .as_object()
        .expect("environment variables");
    let expected = [
        ("SGWATCH_SENDER", r#ref("Sender")),
        ("SGWATCH_FALLBACK_RECIPIENT", r#ref("FallbackRecipient")),
        ("SGWATCH_ALWAYS_NOTIFY_AT", r#ref("AlwaysNotifyAt")),
        ("SGWATCH_NOTIFY_TAG", r#ref("NotifyTag")),
        ("SGWATCH_OWNER_TAG", r#ref("OwnerTag")),
        ("SGWATCH_RESOURCE_TYPES", r#ref("ResourceTypes")),
        (
            "SGWATCH_NOTIFY_ON_RELATIONSHIP_CHANGES",
            r#ref("NotifyOnRelationshipChanges"),
        ),
        (
            "SGWATCH_ALLOW_PRIVATE_DESTINATIONS",
            r#ref("AllowPrivateDestinations"),
        ),
        ("SGWATCH_LOOKUP_ACTOR", r#ref("LookupActor")),
        ("SGWATCH_BASELINE_UNTIL", r#ref("BaselineUntil")),
        ("SGWATCH_ACCOUNTS", r#ref("Accounts")),
        ("SGWATCH_DESTINATIONS", r#ref("Destinations")),
        ("SGWATCH_CHANNELS_TAG", r#ref("ChannelsTag")),
        ("SGWATCH_FALLBACK_DESTINATION", r#ref("FallbackDestination")),
        ("SGWATCH_IDEMPOTENCY_TABLE", r#ref("IdempotencyTable")),
        ("SGWATCH_FAILURE_QUEUE_URL", r#ref("FailureQueue")),
        ("SGWATCH_CONFIG_BUCKET", r#ref("ConfigBucket")),
        (
            "SGWATCH_EARLY_WARNING",
            json!({"Fn::If": ["HearsCalls", r#ref("EarlyWarning"), "off"]}),
        ),
        ("SGWATCH_HUB", r#ref("Hub")),
        (
            "SGWATCH_HANDOVER_PARAMETER",
            json!({"Fn::If": ["IsHub", "", "/sgwatch/handover"]}),
        ),
        (
            "SGWATCH_ACT_URL",
            json!({"Fn::If": ["ActLinksOn", get_att("ActUrl", "FunctionUrl"), ""]}),
        ),
        (
            "SGWATCH_ACT_KEY",
            json!({"Fn::If": ["ActLinksOn", get_att("LinkKey", "Arn"), ""]}),
        ),
        ("SGWATCH_ACT_LINK_HOURS", r#ref("ActLinkHours")),
        (
            "SGWATCH_AUTO_REVERT",
            json!({"Fn::If": ["IsHub", "off", r#ref("AutoRevert")]}),
        ),
        ("SGWATCH_AUTO_REVERT_AT", r#ref("AutoRevertAt")),
        ("SGWATCH_TRUSTED_PRINCIPALS", r#ref("TrustedPrincipals")),
        ("SGWATCH_DIGEST", r#ref("Digest")),
        ("SGWATCH_COALESCE_SECONDS", r#ref("CoalesceSeconds")),
        ("SGWATCH_MAX_PER_GROUP_HOUR", r#ref("MaxPerGroupHour")),
        ("SGWATCH_WAKE_QUEUE_URL", r#ref("WakeQueue")),
        ("SGWATCH_SECURITY_HUB", r#ref("SecurityHub")),
        ("SGWATCH_PAGE_AT", r#ref("PageAt")),
        ("SGWATCH_PAGERDUTY_URL", r#ref("PagerDutyUrl")),
        ("RUST_LOG", json!("info")),
    ];
    for (name, value) in &expected {
        assert_eq!(vars.get(*name), Some(value), "environment variable {name}");
    }
    assert_eq!(
        vars.len(),
        expected.len(),
        "unexpected variables: {:?}",
        vars.keys()
    );
}

#[test]
fn function_runs_the_uploaded_zip_with_its_own_role() {
    let r = resource("Function");
    let p = &r["Properties"];
    assert_eq!(p["FunctionName"], sub("${AWS::StackName}-handler"));
    assert_eq!(p["Runtime"], "provided.al2023");
    assert_eq!(p["Handler"], "bootstrap");
    assert_eq!(p["Architectures"], json!([r#ref("Architecture")]));
    let code = |params: &[(&str, &str)]| Resolver::new("sgwatch", params).resolve(&p["Code"]);
    // What install passes: its own bucket.
    assert_eq!(
        code(&[
            ("ArtifactBucket", "sgwatch-artifacts-1-us-east-1"),
            ("ArtifactKey", "k")
        ]),
        json!({ "S3Bucket": "sgwatch-artifacts-1-us-east-1", "S3Key": "k" })
    );
    // What a stack set passes: one prefix, the bucket of each instance's region derived from it.
    assert_eq!(
        code(&[
            ("ArtifactBucketPrefix", "sgwatch-artifacts-org"),
            ("ArtifactKey", "k"),
            ("AWS::Region", "eu-west-1")
        ]),
        json!({ "S3Bucket": "sgwatch-artifacts-org-eu-west-1", "S3Key": "k" })
    );
    assert_eq!(p["MemorySize"], json!(128));
    assert_eq!(p["Timeout"], json!(60));
    assert_eq!(p["Role"], get_att("HandlerRole", "Arn"));
    assert!(
        p.get("DeadLetterConfig").is_none(),
        "failures go through InvokeConfig"
    );
}

#[test]
fn log_group_is_the_functions_and_expires() {
    // Wired by reference, so the function writes to this group (and the group, with its
    // retention, exists first) whatever the two names are.
    assert_eq!(
        props("Function")["LoggingConfig"],
        json!({ "LogGroup": r#ref("LogGroup") })
    );
    assert!(
        resource("Function").get("DependsOn").is_none(),
        "the reference orders them; cfn-lint calls a DependsOn beside it obsolete"
    );
    let p = props("LogGroup");
    // Also the name Lambda would pick by default, so no second group appears if the wiring went.
    assert_eq!(
        p["LogGroupName"],
        sub("/aws/lambda/${AWS::StackName}-handler")
    );
    assert_eq!(
        props("Function")["FunctionName"],
        sub("${AWS::StackName}-handler")
    );
    assert_eq!(p["RetentionInDays"], r#ref("LogRetentionDays"));
}

#[test]
fn idempotency_table_expires_its_items_and_is_recoverable() {
    let p = props("IdempotencyTable");
    assert_eq!(p["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(
        p["KeySchema"],
        json!([{ "AttributeName": "pk", "KeyType": "HASH" }])
    );
    assert_eq!(
        p["AttributeDefinitions"],
        json!([{ "AttributeName": "pk", "AttributeType": "S" }])
    );
    assert_eq!(
        p["TimeToLiveSpecification"],
        json!({ "AttributeName": "expires_at", "Enabled": true })
    );
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        json!(true)
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], json!(true));
}

/// The types the rule matches: `AWS::EC2::SecurityGroup` and the ResourceTypes extras.
fn watched_types() -> Value {
    json!({ "Fn::If": [
        "HasExtraResourceTypes",
        { "Fn::Split": [",", sub("AWS::EC2::SecurityGroup,${ResourceTypes}")] },
        ["AWS::EC2::SecurityGroup"],
    ]})
}

#[test]
fn event_rule_sends_what_the_handler_watches_in_both_shapes_to_the_function() {
    assert_eq!(resource("EventRule")["Condition"], "SourceIsEventBridge");
    let p = props("EventRule");
    assert_eq!(
        p["EventPattern"],
        json!({
            "source": ["aws.config"],
            "detail-type": ["Config Configuration Item Change"],
            "detail": { "$or": [
                { "configurationItem": { "resourceType": watched_types() } },
                { "configurationItemSummary": { "resourceType": watched_types() } },
            ]},
        })
    );
    assert_eq!(
        template()["Conditions"]["HasExtraResourceTypes"],
        json!({ "Fn::Not": [{ "Fn::Equals": [r#ref("ResourceTypes"), ""] }] })
    );
    let targets = list(&p["Targets"]);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], get_att("Function", "Arn"));
}

#[test]
fn function_reserves_concurrency_only_when_the_parameter_is_set() {
    // Empty (the default) must leave the property out: Lambda refuses a reservation that leaves
    // fewer than 10 unreserved executions, so an account with a quota of 10 could not deploy.
    let unset =
        Resolver::new("sgwatch", &[]).resolve(&props("Function")["ReservedConcurrentExecutions"]);
    assert_eq!(unset, "<AWS::NoValue>");
    let set = Resolver::new("sgwatch", &[("ReservedConcurrency", "5")])
        .resolve(&props("Function")["ReservedConcurrentExecutions"]);
    assert_eq!(set, "5");
    assert_eq!(
        template()["Conditions"]["HasReservedConcurrency"],
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "ReservedConcurrency"}, ""]}]})
    );
    // 1..=1000 (what the installer's flag accepts) or empty.
    let pattern = template()["Parameters"]["ReservedConcurrency"]["AllowedPattern"]
        .as_str()
        .unwrap();
    for ok in ["", "1", "5", "999", "1000"] {
        assert!(pattern_matches(pattern, ok), "{ok:?} should be allowed");
    }
    for bad in ["0", "05", "-1", "1001", "five"] {
        assert!(!pattern_matches(pattern, bad), "{bad:?} should be refused");
    }
}

// ------------------------------------------------------------------------------ resolved

/// The template's intrinsic functions evaluated for a stack named `stack` with `params` (the
/// parameters' defaults fill the rest). Resource attributes become `<Id.Attr>` placeholders.
pub(crate) struct Resolver {
    values: std::collections::BTreeMap<String, String>,
}

impl Resolver {
    pub(crate) fn new(stack: &str, params: &[(&str, &str)]) -> Resolver {
        let mut values = std::collections::BTreeMap::new();
        for (name, p) in template()["Parameters"].as_object().unwrap() {
            if let Some(d) = p.get("Default") {
                let d = d
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| d.to_string());
                values.insert(name.clone(), d);
            }
        }
        for (k, v) in [
            ("AWS::StackName", stack),
            ("AWS::Partition", "aws"),
            ("AWS::URLSuffix", "amazonaws.com"),
            ("AWS::Region", sgwatch_tests::emulator::REGION),
            ("AWS::AccountId", sgwatch_tests::emulator::ACCOUNT),
        ]
        .into_iter()
        .chain(params.iter().copied())
        {
            values.insert(k.to_owned(), v.to_owned());
        }
        Resolver { values }
    }

    fn name(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(v) => v.clone(),
            None => format!("<{name}>"), // a resource's Ref or GetAtt
        }
    }

    /// Every statement of `role`'s policies as deployed: inline, and attached where the attached
    /// policy's condition holds.
    pub(crate) fn resolved_statements(&self, role: &str) -> Vec<Value> {
        role_policies(role)
            .into_iter()
            .filter(|(condition, _)| condition.is_none_or(|c| self.condition(c)))
            .flat_map(|(_, p)| {
                let doc = self.resolve(&p["PolicyDocument"]);
                doc["Statement"].as_array().cloned().unwrap_or_default()
            })
            .collect()
    }

    fn condition(&self, name: &str) -> bool {
        let c = &template()["Conditions"][name];
        assert!(!c.is_null(), "no condition {name}");
        self.truth(c)
    }

    fn truth(&self, v: &Value) -> bool {
        if let Some(args) = v.get("Fn::Equals") {
            return self.resolve(&args[0]) == self.resolve(&args[1]);
        }
        if let Some(args) = v.get("Fn::Not") {
            return !self.truth(&args[0]);
        }
        if let Some(args) = v.get("Fn::Or").and_then(Value::as_array) {
            return args.iter().any(|a| self.truth(a));
        }
        if let Some(args) = v.get("Fn::And").and_then(Value::as_array) {
            return args.iter().all(|a| self.truth(a));
        }
        if let Some(name) = v.get("Condition").and_then(Value::as_str) {
            return self.condition(name);
        }
        panic!("condition function not handled here: {v}")
    }

    fn sub(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("a closed ${…}") + start;
            let name = &rest[start + 2..end];
            out.push_str(&self.name(name));
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// `v` with every intrinsic function evaluated.
    pub(crate) fn resolve(&self, v: &Value) -> Value {
        match v {
            // An item that resolves to AWS::NoValue is left out of its list, as CloudFormation does.
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|x| self.resolve(x))
                    .filter(|x| x != "<AWS::NoValue>")
                    .collect(),
            ),
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().unwrap();
                match k.as_str() {
                    "Ref" => json!(self.name(arg.as_str().unwrap())),
                    "Fn::Sub" => match arg {
                        Value::String(text) => json!(self.sub(text)),
                        // [text, {variable: value}]: the variables first, then the parameters.
                        _ => {
                            let mut scoped = Resolver {
                                values: self.values.clone(),
                            };
                            for (k, x) in arg[1].as_object().expect("Fn::Sub variables") {
                                let value = self.resolve(x);
                                scoped.values.insert(
                                    k.clone(),
                                    value.as_str().expect("a string variable").to_owned(),
                                );
                            }
                            json!(scoped.sub(arg[0].as_str().expect("Fn::Sub of a string")))
                        }
                    },
                    "Fn::Select" => {
                        let list = self.resolve(&arg[1]);
                        let index = arg[0].as_u64().expect("a literal index") as usize;
                        list[index].clone()
                    }
                    "Fn::GetAtt" => json!(format!(
                        "<{}.{}>",
                        arg[0].as_str().unwrap(),
                        arg[1].as_str().unwrap()
                    )),
                    "Fn::If" => {
                        let branch = if self.condition(arg[0].as_str().unwrap()) {
                            1
                        } else {
                            2
                        };
                        self.resolve(&arg[branch])
                    }
                    "Fn::Split" => {
                        let on = arg[0].as_str().unwrap();
                        let text = self.resolve(&arg[1]);
                        json!(text.as_str().unwrap().split(on).collect::<Vec<_>>())
                    }
                    _ => json!({ k.clone(): self.resolve(arg) }),
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.resolve(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// The handler role's statement `sid` for `params`, resolved; `None` when it is left out.
fn resolved_handler_statement(params: &[(&str, &str)], sid: &str) -> Option<Value> {
    let r = Resolver::new("sgwatch", params);
    r.resolved_statements("HandlerRole")
        .into_iter()
        .find(|s| s["Sid"] == sid)
}

#[test]
fn handler_reads_exactly_the_destination_parameters() {
    // What install passes for three destinations: every parameter they name.
    let destinations = sgwatch_handler::destination::parse_destinations(
        "secops=slack:/sgwatch/secops-slack,team-a=teams:/org/team-a/teams,\
         siem=webhook:/sgwatch/siem-url:/sgwatch/siem-key",
    )
    .unwrap();
    let names: Vec<&str> = destinations.iter().flat_map(|d| d.parameters()).collect();
    let joined = names.join(",");
    let s = resolved_handler_statement(
        &[("DestinationParameters", &joined)],
        "ReadDestinationSecrets",
    )
    .expect("the statement is there with destinations");
    assert_eq!(s["Action"], "ssm:GetParameter");
    let granted: BTreeSet<&str> = strings(&s["Resource"]).into_iter().collect();
    let expected: BTreeSet<String> = names
        .iter()
        .map(|n| {
            format!(
                "arn:aws:ssm:{}:{}:parameter{n}",
                sgwatch_tests::emulator::REGION,
                sgwatch_tests::emulator::ACCOUNT
            )
        })
        .collect();
    assert_eq!(granted, expected.iter().map(String::as_str).collect());
    // Ten parameters fit; the pattern refuses an eleventh rather than leave it unreadable.
    let ten: Vec<String> = (0..10).map(|i| format!("/p/{i}")).collect();
    let s = resolved_handler_statement(
        &[("DestinationParameters", &ten.join(","))],
        "ReadDestinationSecrets",
    )
    .unwrap();
    assert_eq!(
        strings(&s["Resource"])
            .into_iter()
            .collect::<BTreeSet<_>>()
            .len(),
        10
    );
    let pattern = template()["Parameters"]["DestinationParameters"]["AllowedPattern"]
        .as_str()
        .unwrap();
    assert!(pattern_matches(pattern, &joined));
    assert!(pattern_matches(pattern, ""));
    assert!(!pattern_matches(
        pattern,
        &format!("{},/p/10", ten.join(","))
    ));
    assert!(!pattern_matches(pattern, "sgwatch/no-slash"));
    let destinations_pattern = template()["Parameters"]["Destinations"]["AllowedPattern"]
        .as_str()
        .unwrap();
    let setting: Vec<String> = destinations.iter().map(ToString::to_string).collect();
    assert!(pattern_matches(destinations_pattern, &setting.join(",")));

    // No destinations, no SSM grant; no customer key, no KMS grant.
    assert_eq!(
        resolved_handler_statement(&[], "ReadDestinationSecrets"),
        None
    );
    assert_eq!(
        resolved_handler_statement(&[], "DecryptDestinationSecrets"),
        None
    );
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let s = resolved_handler_statement(
        &[("DestinationKmsKeyArn", key)],
        "DecryptDestinationSecrets",
    )
    .expect("a customer key is granted");
    assert_eq!(s["Action"], "kms:Decrypt");
    assert_eq!(s["Resource"], key);
    assert_eq!(
        s["Condition"],
        json!({"StringEquals": {"kms:ViaService": "ssm.us-east-1.amazonaws.com"}})
    );
    let key_pattern = template()["Parameters"]["DestinationKmsKeyArn"]["AllowedPattern"]
        .as_str()
        .unwrap();
    assert!(pattern_matches(key_pattern, key));
    assert!(!pattern_matches(key_pattern, "alias/aws/ssm"));
}

#[test]
fn the_rule_pattern_lists_the_extra_types_after_security_groups() {
    let pattern = |types: &str| {
        Resolver::new("sgwatch", &[("ResourceTypes", types)])
            .resolve(&props("EventRule")["EventPattern"])
    };
    let types = |p: &Value| {
        let or = &p["detail"]["$or"];
        assert_eq!(
            or[0]["configurationItem"]["resourceType"],
            or[1]["configurationItemSummary"]["resourceType"]
        );
        or[0]["configurationItem"]["resourceType"].clone()
    };
    assert_eq!(types(&pattern("")), json!(["AWS::EC2::SecurityGroup"]));
    assert_eq!(
        types(&pattern("AWS::EC2::NetworkAcl,AWS::EC2::Instance")),
        json!([
            "AWS::EC2::SecurityGroup",
            "AWS::EC2::NetworkAcl",
            "AWS::EC2::Instance"
        ])
    );
}

/// An EventBridge event from AWS Config, as the rule sees it.
fn config_event(detail: Value) -> String {
    json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Config Configuration Item Change", "source": "aws.config",
        "account": sgwatch_tests::emulator::ACCOUNT, "time": "2026-01-01T00:00:00Z",
        "region": sgwatch_tests::emulator::REGION, "resources": [], "detail": detail,
    })
    .to_string()
}

#[tokio::test]
async fn eventbridge_matches_full_and_oversized_items_of_watched_types_only() {
    let moto = sgwatch_tests::emulator::Moto::start();
    let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config(None).await);
    let pattern = Resolver::new("sgwatch", &[("ResourceTypes", "AWS::EC2::NetworkAcl")])
        .resolve(&props("EventRule")["EventPattern"])
        .to_string();
    let full = |t: &str| {
        json!({ "messageType": "ConfigurationItemChangeNotification",
                                 "configurationItem": { "resourceType": t, "resourceId": "x" } })
    };
    let oversized = |t: &str| {
        json!({ "messageType": "OversizedConfigurationItemChangeNotification",
                                      "configurationItemSummary": { "resourceType": t, "resourceId": "x" } })
    };
    for (detail, expected) in [
        (full("AWS::EC2::SecurityGroup"), true),
        (oversized("AWS::EC2::SecurityGroup"), true),
        (full("AWS::EC2::NetworkAcl"), true),
        (oversized("AWS::EC2::NetworkAcl"), true),
        (full("AWS::S3::Bucket"), false),
        (oversized("AWS::S3::Bucket"), false),
    ] {
        let out = events
            .test_event_pattern()
            .event_pattern(&pattern)
            .event(config_event(detail.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("TestEventPattern: {e:?}\n{}", moto.log()));
        assert_eq!(out.result(), expected, "{detail}");
    }
}

/// The actor feed's events (`tests/fixtures/cloudtrail/`), as EventBridge delivers them.
fn cloudtrail_fixture(name: &str) -> Value {
    sgwatch_tests::fixture::json(&format!("cloudtrail/{name}"))
}

#[test]
fn the_actor_feed_rule_sends_security_group_calls_to_the_function_when_on() {
    assert_eq!(resource("ActorFeedRule")["Condition"], "ActorFeedOn");
    assert_eq!(
        template()["Conditions"]["ActorFeedOn"],
        json!({"Fn::Equals": [r#ref("ActorFeed"), "on"]})
    );
    let p = props("ActorFeedRule");
    assert_eq!(p["EventPattern"]["source"], json!(["aws.ec2"]));
    assert_eq!(
        p["EventPattern"]["detail-type"],
        json!(["AWS API Call via CloudTrail"])
    );
    assert_eq!(
        p["EventPattern"]["detail"]["eventSource"],
        json!(["ec2.amazonaws.com"])
    );
    // Every call the handler records is in the pattern, and nothing else.
    let or = list(&p["EventPattern"]["detail"]["$or"]);
    let named: BTreeSet<&str> = or
        .iter()
        .flat_map(|branch| strings(&branch["eventName"]))
        .collect();
    assert_eq!(
        named,
        sgwatch_handler::feed::SECURITY_GROUP_EVENTS
            .into_iter()
            .collect()
    );
    assert_eq!(
        or[1]["requestParameters"]["resourcesSet"]["items"]["resourceId"],
        json!([{"prefix": "sg-"}])
    );
    let targets = list(&p["Targets"]);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], get_att("Function", "Arn"));
    assert_eq!(
        targets[0]["DeadLetterConfig"]["Arn"],
        get_att("FailureQueue", "Arn")
    );
    let dead_letter = statement(
        &props("FailureQueuePolicy")["PolicyDocument"],
        "ActorFeedDeadLetter",
    );
    assert_eq!(dead_letter["Principal"]["Service"], "events.amazonaws.com");
    assert_eq!(
        dead_letter["Condition"]["ArnEquals"]["aws:SourceArn"],
        get_att("ActorFeedRule", "Arn")
    );

    // Off (the template's default): no DescribeSecurityGroups, and the handler warns no one early.
    let role = |feed: &str| {
        Resolver::new("sgwatch", &[("ActorFeed", feed)]).resolved_statements("HandlerRole")
    };
    let describes = |statements: &Vec<Value>| {
        json!(statements)
            .to_string()
            .contains("ec2:DescribeSecurityGroups")
    };
    assert!(!describes(&role("off")));
    assert!(describes(&role("on")));
    // Rule ids (for the alert's commands) are read with the feed or without it.
    let reads_rules = |statements: &Vec<Value>| {
        json!(statements)
            .to_string()
            .contains("ec2:DescribeSecurityGroupRules")
    };
    assert!(reads_rules(&role("off")));
    assert!(reads_rules(&role("on")));
    let early = |feed: &str| {
        Resolver::new("sgwatch", &[("ActorFeed", feed)])
            .resolve(&props("Function")["Environment"]["Variables"]["SGWATCH_EARLY_WARNING"])
    };
    assert_eq!(early("off"), "off");
    assert_eq!(early("on"), "critical");
    // A hub hears its spokes' calls, whatever its own account's feed.
    let hub = Resolver::new("sgwatch", &[("ActorFeed", "off"), ("Hub", "true")])
        .resolve(&props("Function")["Environment"]["Variables"]["SGWATCH_EARLY_WARNING"]);
    assert_eq!(hub, "critical");
}

#[tokio::test]
async fn eventbridge_sends_the_feed_security_group_calls_and_tag_calls_on_groups_only() {
    let moto = sgwatch_tests::emulator::Moto::start();
    let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config(None).await);
    let pattern = Resolver::new("sgwatch", &[("ActorFeed", "on")])
        .resolve(&props("ActorFeedRule")["EventPattern"])
        .to_string();
    let mut on_an_instance = cloudtrail_fixture("create-tags.json");
    on_an_instance["detail"]["requestParameters"]["resourcesSet"]["items"] =
        json!([{"resourceId": "i-0123456789abcdef0"}]);
    let mut other_call = cloudtrail_fixture("authorize-ingress-iam-user.json");
    other_call["detail"]["eventName"] = json!("RunInstances");
    let mut other_service = cloudtrail_fixture("authorize-ingress-iam-user.json");
    other_service["detail"]["eventSource"] = json!("rds.amazonaws.com");
    for (event, expected) in [
        (cloudtrail_fixture("authorize-ingress-iam-user.json"), true),
        (cloudtrail_fixture("authorize-ingress-sso-role.json"), true),
        (cloudtrail_fixture("authorize-ingress-failed.json"), true),
        (cloudtrail_fixture("create-tags.json"), true),
        (on_an_instance, false),
        (other_call, false),
        (other_service, false),
    ] {
        let out = events
            .test_event_pattern()
            .event_pattern(&pattern)
            .event(event.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("TestEventPattern: {e:?}\n{}", moto.log()));
        assert_eq!(out.result(), expected, "{}", &event["detail"]["eventName"]);
    }
}

// ------------------------------------------------------------------------------ names

#[test]
fn every_name_fits_its_limit_for_the_longest_stack_name_install_accepts() {
    // `sgwatch install` accepts stack names of up to 56 characters (InstallArgs::check).
    let stack = format!("s{}", "x".repeat(55));
    let r = Resolver::new(&stack, &[]);
    // (type, name property, AWS limit): the names a template may set. A resource without one
    // gets a name CloudFormation makes from the stack name and fits to the limit itself.
    let limits = [
        ("AWS::Lambda::Function", "FunctionName", 64),
        ("AWS::Logs::LogGroup", "LogGroupName", 512),
        ("AWS::IAM::Role", "RoleName", 64),
        ("AWS::SQS::Queue", "QueueName", 80),
        ("AWS::DynamoDB::Table", "TableName", 255),
        ("AWS::Events::Rule", "Name", 64),
        ("AWS::SNS::Topic", "TopicName", 256),
        ("AWS::S3::Bucket", "BucketName", 63),
    ];
    let mut named = Vec::new();
    for (id, res) in template()["Resources"].as_object().unwrap() {
        let kind = res["Type"].as_str().unwrap();
        for (t, property, limit) in limits {
            if kind != t {
                continue;
            }
            if let Some(v) = res["Properties"].get(property) {
                let name = r.resolve(v);
                let name = name.as_str().unwrap();
                assert!(
                    name.len() <= limit,
                    "{id}.{property} = {name:?}: {} > {limit}",
                    name.len()
                );
                named.push(format!("{id}.{property}"));
            }
        }
    }
    named.sort();
    assert_eq!(
        named,
        [
            "ActFunction.FunctionName",
            "ActLogGroup.LogGroupName",
            "Function.FunctionName",
            "LogGroup.LogGroupName"
        ]
    );
    assert_eq!(
        r.resolve(&props("ActFunction")["FunctionName"]),
        json!(format!("{stack}-act"))
    );
    assert_eq!(
        r.resolve(&props("Function")["FunctionName"]),
        json!(format!("{stack}-handler"))
    );
    assert_eq!(
        format!("{stack}-handler").len(),
        64,
        "exactly Lambda's limit"
    );
}

/// The patterns CloudFormation checks before the function ever starts agree with what the
/// handler accepts, so a bad value fails the deploy rather than the function's start.
#[test]
fn baseline_and_accounts_patterns_accept_what_the_handler_accepts() {
    let params = template()["Parameters"].clone();
    let matches = |name: &str, value: &str| {
        let pattern = params[name]["AllowedPattern"].as_str().unwrap();
        pattern_matches(pattern, value)
    };
    for ok in ["", "2026-11-20T09:30:00Z", "2026-11-20T09:30:00.25+01:00"] {
        assert!(matches("BaselineUntil", ok), "{ok}");
    }
    for bad in ["yesterday", "2026-11-20 09:30:00Z"] {
        assert!(!matches("BaselineUntil", bad), "{bad}");
    }
    for ok in ["", "*", "111122223333", "111122223333,012345678901"] {
        assert!(matches("Accounts", ok), "{ok}");
    }
    for bad in ["12345", "*,111122223333", "111122223333, 012345678901"] {
        assert!(!matches("Accounts", bad), "{bad}");
    }
}

/// The pattern checked by Python's `re` (the virtualenv's), the engine nearest to the one
/// CloudFormation uses, rather than a regex crate added for one test.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    let python = sgwatch_tests::repo_root().join(".venv/bin/python");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            "import re,sys; sys.exit(0 if re.fullmatch(sys.argv[1], sys.argv[2]) else 1)",
            pattern,
            value,
        ])
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    out.success()
}

/// Every string of the template as deployed in AWS China (`aws-cn`, endpoint suffix
/// `amazonaws.com.cn`), with where it sits.
fn strings_in_china() -> Vec<(String, String)> {
    let r = Resolver::new(
        "sgwatch",
        &[
            ("AWS::Partition", "aws-cn"),
            ("AWS::URLSuffix", "amazonaws.com.cn"),
            ("AWS::Region", "cn-north-1"),
            (
                "DestinationKmsKeyArn",
                "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            ),
            ("DestinationParameters", "/sgwatch/secops-slack"),
            ("Destinations", "secops=slack:/sgwatch/secops-slack"),
            ("ActorFeed", "on"),
            ("EventSource", "eventbridge"),
        ],
    );
    fn walk(v: &Value, at: String, out: &mut Vec<(String, String)>) {
        match v {
            Value::String(s) => out.push((at, s.clone())),
            Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    walk(x, format!("{at}[{i}]"), out);
                }
            }
            Value::Object(m) => {
                for (k, x) in m {
                    walk(x, format!("{at}.{k}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(
        &r.resolve(&template()["Resources"]),
        "Resources".into(),
        &mut out,
    );
    out
}

/// In China and GovCloud, ARNs carry another partition and endpoints another suffix
/// (`amazonaws.com.cn` in China): a hard-coded `arn:aws:` or `.amazonaws.com` would grant or
/// condition on names that do not exist there ("Amazon Resource Names", AWS::URLSuffix in the
/// CloudFormation pseudo parameters reference). Service principals (`config.amazonaws.com`)
/// and CloudTrail's `eventSource` keep their names in every partition.
#[test]
fn the_template_renders_for_the_china_partition_without_a_hard_coded_suffix() {
    let strings = strings_in_china();
    let is_service_name = |at: &str| {
        at.contains(".Principal") || at.ends_with(".Service") || at.contains(".eventSource")
    };
    let mut wrong = Vec::new();
    for (at, s) in &strings {
        if s.contains("arn:aws:") {
            wrong.push(format!("{at}: {s}"));
        }
        let endpoint = s
            .match_indices("amazonaws.com")
            .any(|(i, _)| !s[i + "amazonaws.com".len()..].starts_with(".cn"));
        if endpoint && !is_service_name(at) {
            wrong.push(format!("{at}: {s}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "hard-coded for the aws partition:\n{}",
        wrong.join("\n")
    );
    // The customer key decrypts only through China's Parameter Store endpoint.
    let via: Vec<&str> = strings
        .iter()
        .filter(|(at, _)| at.ends_with("kms:ViaService"))
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(via, ["ssm.cn-north-1.amazonaws.com.cn"]);
    // The ARNs the template builds are China's.
    assert!(strings
        .iter()
        .any(|(_, s)| s.starts_with("arn:aws-cn:ssm:cn-north-1:")));
}

/// A service-managed stack set names each instance's stack `StackSet-<set name>-<uuid>` (a 36
/// character UUID): every name the template builds from the stack name must fit its limit for
/// the longest set name docs/STACKSETS.md calls safe, and that is the longest that fits.
#[test]
fn names_fit_their_limits_for_the_longest_stack_set_name_the_docs_allow() {
    let doc =
        std::fs::read_to_string(sgwatch_tests::repo_root().join("docs/STACKSETS.md")).unwrap();
    let said = doc
        .split("at most **")
        .nth(1)
        .and_then(|rest| rest.split("**").next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("docs/STACKSETS.md says: at most **N** characters");
    // (resource, property, limit): Lambda function names 64 (Lambda API reference,
    // CreateFunction); log group names 512 (CloudWatch Logs API reference, CreateLogGroup);
    // alarm names 255 (CloudWatch API reference, PutMetricAlarm).
    let limits = [
        ("Function", "FunctionName", 64),
        ("LogGroup", "LogGroupName", 512),
        ("ActFunction", "FunctionName", 64),
        ("ActLogGroup", "LogGroupName", 512),
        ("FailureQueueAlarm", "AlarmName", 255),
        ("FunctionErrorsAlarm", "AlarmName", 255),
        ("FunctionThrottlesAlarm", "AlarmName", 255),
        // EventBridge event bus names: 256 (EventBridge API reference, CreateEventBus).
        ("HubBus", "Name", 256),
    ];
    let longest = |n: usize| {
        let stack = format!(
            "StackSet-{}-{}",
            "s".repeat(n),
            "0d3f2a1b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
        );
        let r = Resolver::new(&stack, &[]);
        limits
            .iter()
            .map(|(id, prop, limit)| {
                let name = r.resolve(&props(id)[*prop]);
                (name.as_str().unwrap().len(), *limit, format!("{id}.{prop}"))
            })
            .collect::<Vec<_>>()
    };
    for (len, limit, what) in longest(said) {
        assert!(len <= limit, "{what} is {len} characters, over {limit}");
    }
    assert!(
        longest(said + 1).iter().any(|(len, limit, _)| len > limit),
        "a set name of {} characters still fits: the docs could allow more",
        said + 1
    );
    // Every other named resource gets a name CloudFormation generates and shortens to fit.
    for (id, r) in template()["Resources"].as_object().unwrap() {
        for (prop, v) in r["Properties"].as_object().into_iter().flatten() {
            if v.to_string().contains("AWS::StackName")
                && !limits.iter().any(|(i, p, _)| i == id && p == prop)
            {
                panic!("{id}.{prop} is built from the stack name: add its limit here");
            }
        }
    }
}

/// Auto-revert's grant, and the act function's: each may remove an ingress rule only from a
/// group carrying the opt-in tag key, and neither may authorize one; each only when turned on.
#[test]
fn auto_revert_and_act_revoke_only_on_groups_that_opt_in() {
    let opted_in = json!({"Null": {"aws:ResourceTag/NotifyOnChange": "false"}});
    for role in ["HandlerRole", "ActRole"] {
        let revokes: Vec<&Value> = role_allows(role)
            .into_iter()
            .filter(|s| actions(s).contains(&"ec2:RevokeSecurityGroupIngress"))
            .collect();
        assert_eq!(revokes.len(), 2, "{role}");
        for s in &revokes {
            assert_eq!(actions(s), ["ec2:RevokeSecurityGroupIngress"], "{role}");
        }
        let on_groups = revokes
            .iter()
            .find(|s| s["Resource"].to_string().contains(":security-group/*"))
            .unwrap();
        assert_eq!(on_groups["Condition"], opted_in, "{role}");
        let granted: Vec<&str> = role_allows(role).into_iter().flat_map(actions).collect();
        assert!(
            !granted
                .iter()
                .any(|a| a.contains("Authorize") || a.contains("CreateTags")),
            "{role}: {granted:?}"
        );
    }
    assert_eq!(resource("AutoRevertPolicy")["Condition"], "AutoRevertOn");
    assert_eq!(resource("ActRole")["Condition"], "ActLinksOn");
    assert_eq!(
        template()["Conditions"]["AutoRevertOn"],
        json!({"Fn::And": [{"Fn::Equals": [r#ref("AutoRevert"), "on"]}, {"Fn::Not": [{"Condition": "IsHub"}]}]})
    );
    assert_eq!(props("LinkKey")["KeySpec"], "HMAC_256");
    assert_eq!(props("LinkKey")["KeyUsage"], "GENERATE_VERIFY_MAC");
}

#[test]
fn the_digest_schedule_invokes_only_the_handler_daily_at_the_chosen_time_and_zone() {
    assert_service_trust("DigestSchedulerRole", "scheduler.amazonaws.com");
    let allows = role_allows("DigestSchedulerRole");
    assert_eq!(allows.len(), 1, "{allows:?}");
    assert_eq!(actions(allows[0]), ["lambda:InvokeFunction"]);
    assert_eq!(allows[0]["Resource"], get_att("Function", "Arn"));
    let p = props("DigestSchedule");
    assert_eq!(
        p["ScheduleExpression"],
        sub("cron(${DigestMinute} ${DigestHour} * * ? *)")
    );
    assert_eq!(p["ScheduleExpressionTimezone"], r#ref("DigestTimezone"));
    assert_eq!(p["Target"]["Arn"], get_att("Function", "Arn"));
    assert_eq!(
        p["Target"]["RoleArn"],
        get_att("DigestSchedulerRole", "Arn")
    );
    let input: Value = serde_json::from_str(p["Target"]["Input"].as_str().unwrap()).unwrap();
    assert!(sgwatch_handler::digest::is_due(&input), "{input}");
}

#[test]
fn the_wake_queue_feeds_the_handler_parks_in_the_failure_queue_and_only_the_handler_uses_it() {
    let q = props("WakeQueue");
    assert_eq!(
        q["RedrivePolicy"]["deadLetterTargetArn"],
        get_att("FailureQueue", "Arn")
    );
    assert_eq!(q["SqsManagedSseEnabled"], true);
    let m = props("WakeEventSource");
    assert_eq!(m["EventSourceArn"], get_att("WakeQueue", "Arn"));
    assert_eq!(m["FunctionName"], get_att("Function", "Arn"));
    assert_eq!(
        m["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let p = props("WakeQueuePolicy");
    assert_eq!(p["Roles"], json!([r#ref("HandlerRole")]));
    let s = statement(&p["PolicyDocument"], "WakeAndReadTheWakeQueue");
    assert_eq!(
        actions(s),
        [
            "sqs:SendMessage",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes"
        ]
    );
    assert_eq!(s["Resource"], get_att("WakeQueue", "Arn"));
}
