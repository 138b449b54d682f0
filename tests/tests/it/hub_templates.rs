//! The hub (the main template with `Hub=true`) and the spoke template, read as data.
//!
//! moto enforces no event bus policy and cannot run an SQS event source mapping, so who may put
//! events on the hub's bus, what a spoke's roles may do and how the hub's queue feeds the
//! function are checked here; EventBridge's own matcher (moto's `TestEventPattern`) checks the
//! patterns.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Value};

use crate::templates::props as hub_props;

const SPOKE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../templates/sgwatch-spoke.yaml"
);
const HUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/sgwatch.yaml");

fn read(path: &str) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not plain YAML: {e}"))
}

fn spoke() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| read(SPOKE))
}

fn hub() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| read(HUB))
}

fn spoke_resource(id: &str) -> &'static Value {
    let r = &spoke()["Resources"][id];
    assert!(r.is_object(), "the spoke has no resource {id}");
    r
}

fn hub_resource(id: &str) -> &'static Value {
    let r = &hub()["Resources"][id];
    assert!(r.is_object(), "the hub has no resource {id}");
    r
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}

fn r#ref(name: &str) -> Value {
    json!({ "Ref": name })
}

fn get_att(id: &str, attribute: &str) -> Value {
    json!({ "Fn::GetAtt": [id, attribute] })
}

/// Every statement of a role's inline policies.
fn inline_statements(role: &Value) -> Vec<&Value> {
    list(&role["Properties"]["Policies"])
        .into_iter()
        .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
        .collect()
}

/// Who may put events on the hub's bus, as EventBridge evaluates the bus's resource policy: a
/// caller is let in by a statement whose condition holds for the stack's parameters and whose
/// principal and condition keys match the caller.
fn bus_admits(org_param: &str, accounts_param: &[&str], caller: &str, caller_org: &str) -> bool {
    let conditions = &hub()["Conditions"];
    // The conditions the policies hang on, for these parameters (their shape is checked below).
    assert_eq!(
        conditions["HubForOrganization"],
        json!({"Fn::And": [{"Condition": "IsHub"},
                           {"Fn::Not": [{"Fn::Equals": [r#ref("HubOrganizationId"), ""]}]}]})
    );
    assert_eq!(
        conditions["HubForAccounts"],
        json!({"Fn::And": [{"Condition": "IsHub"},
                           {"Fn::Not": [{"Fn::Equals": [r#ref("HubAccounts"), ""]}]}]})
    );
    let holds = |condition: &str| match condition {
        "HubForOrganization" => !org_param.is_empty(),
        "HubForAccounts" => !accounts_param.concat().is_empty(),
        other => panic!("a bus policy hangs on an unexpected condition {other}"),
    };
    let mut admitted = false;
    for (id, r) in hub()["Resources"].as_object().unwrap() {
        if r["Type"] != "AWS::Events::EventBusPolicy" {
            continue;
        }
        let p = &r["Properties"];
        assert_eq!(p["EventBusName"], r#ref("HubBus"), "{id}");
        let condition = r["Condition"]
            .as_str()
            .expect("a bus policy has a condition");
        if !holds(condition) {
            continue;
        }
        let s = &p["Statement"];
        assert_eq!(s["Effect"], "Allow", "{id}");
        assert_eq!(s["Action"], "events:PutEvents", "{id}");
        assert_eq!(s["Resource"], get_att("HubBus", "Arn"), "{id}");
        let principal_matches = match &s["Principal"] {
            Value::String(star) if star == "*" => true,
            other if other["AWS"] == json!({"Fn::Split": [",", r#ref("HubAccounts")]}) => {
                accounts_param.contains(&caller)
            }
            other => panic!("{id}: an unexpected principal {other}"),
        };
        let condition_matches = match s.get("Condition") {
            None => true,
            Some(c) => {
                let keys = c.as_object().unwrap();
                assert_eq!(keys.len(), 1, "{id}: one condition operator");
                let equals = c["StringEquals"].as_object().expect("StringEquals");
                assert_eq!(equals.len(), 1, "{id}: one condition key");
                assert_eq!(equals["aws:PrincipalOrgID"], r#ref("HubOrganizationId"));
                !org_param.is_empty() && caller_org == org_param
            }
        };
        // A statement open to every principal must be narrowed by its condition.
        if s["Principal"] == "*" {
            assert!(s.get("Condition").is_some(), "{id} is open to anyone");
        }
        admitted |= principal_matches && condition_matches;
    }
    admitted
}

#[test]
fn the_hub_bus_admits_only_the_organization_or_the_listed_accounts() {
    const ORG: &str = "o-a1b2c3d4e5";
    // By organization: its accounts, and nobody else.
    assert!(bus_admits(ORG, &[""], "111111111111", ORG));
    assert!(!bus_admits(ORG, &[""], "999999999999", "o-zzzzzzzzzz"));
    assert!(!bus_admits(ORG, &[""], "999999999999", ""));
    // By list: the listed accounts, and nobody else, whatever organization they are in.
    let listed = ["111111111111", "222222222222"];
    assert!(bus_admits("", &listed, "222222222222", ""));
    assert!(!bus_admits("", &listed, "333333333333", ""));
    assert!(!bus_admits("", &listed, "333333333333", ORG));
    // Both: either way in.
    assert!(bus_admits(ORG, &listed, "111111111111", ""));
    assert!(bus_admits(ORG, &listed, "444444444444", ORG));
    assert!(!bus_admits(ORG, &listed, "444444444444", "o-zzzzzzzzzz"));
    // Neither: the bus admits no one (install refuses such a hub before any call).
    assert!(!bus_admits("", &[""], "111111111111", ORG));
}

#[test]
fn the_hub_queues_the_spokes_events_and_retries_failed_records_alone() {
    for id in [
        "HubBus",
        "HubDeadLetterQueue",
        "HubQueue",
        "HubQueuePolicy",
        "HubRule",
        "HubQueueReadPolicy",
        "HubEventSource",
    ] {
        assert_eq!(hub_resource(id)["Condition"], "IsHub", "{id}");
    }
    let rule = hub_props("HubRule");
    assert_eq!(rule["EventBusName"], r#ref("HubBus"));
    let targets = list(&rule["Targets"]);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], get_att("HubQueue", "Arn"));

    // Only the hub's rule may queue events.
    let queue_policy = &hub_props("HubQueuePolicy")["PolicyDocument"]["Statement"];
    let statements = list(queue_policy);
    assert_eq!(statements.len(), 1);
    assert_eq!(
        statements[0]["Principal"]["Service"],
        "events.amazonaws.com"
    );
    assert_eq!(statements[0]["Action"], "sqs:SendMessage");
    assert_eq!(
        statements[0]["Condition"]["ArnEquals"]["aws:SourceArn"],
        get_att("HubRule", "Arn")
    );

    // A record that keeps failing ends in the dead-letter queue, kept 14 days for redrive.
    let queue = hub_props("HubQueue");
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"],
        get_att("HubDeadLetterQueue", "Arn")
    );
    assert!(queue["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap() >= 3);
    assert_eq!(
        hub_props("HubDeadLetterQueue")["MessageRetentionPeriod"],
        1_209_600
    );
    // A batch in flight is not handed to a second invocation: the visibility timeout is at least
    // six times the function's timeout, as Lambda advises for a queue it reads.
    let timeout = hub_props("Function")["Timeout"].as_u64().unwrap();
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout);

    // The mapping reports failed records one by one; the rest of the batch is done.
    let mapping = hub_props("HubEventSource");
    assert_eq!(mapping["EventSourceArn"], get_att("HubQueue", "Arn"));
    assert_eq!(mapping["FunctionName"], get_att("Function", "Arn"));
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(
        hub_resource("HubEventSource")["DependsOn"],
        "HubQueueReadPolicy"
    );

    // The function reads that queue, assumes the spokes' reader role and names accounts; nothing
    // more.
    let grants = hub_props("HubQueueReadPolicy");
    assert_eq!(grants["Roles"], json!([r#ref("HandlerRole")]));
    let granted: Vec<(Vec<&str>, Value)> = list(&grants["PolicyDocument"]["Statement"])
        .into_iter()
        .map(|s| {
            assert_eq!(s["Effect"], "Allow");
            let actions = list(&s["Action"])
                .into_iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            (actions, s["Resource"].clone())
        })
        .collect();
    assert_eq!(
        granted,
        vec![
            (
                vec![
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes"
                ],
                get_att("HubQueue", "Arn")
            ),
            (
                vec!["sts:AssumeRole"],
                json!({"Fn::Sub": "arn:${AWS::Partition}:iam::*:role/sgwatch-reader"})
            ),
            (
                vec!["organizations:DescribeAccount"],
                json!({"Fn::Sub": "arn:${AWS::Partition}:organizations::*:account/o-*/*"})
            ),
            // What a spoke in the hub's own account shows, read with this role.
            (
                vec![
                    "config:DescribeConfigurationRecorders",
                    "config:DescribeConfigurationRecorderStatus",
                    "cloudtrail:DescribeTrails"
                ],
                json!("*")
            ),
            (
                vec!["cloudtrail:GetTrailStatus", "cloudtrail:GetEventSelectors"],
                json!({"Fn::Sub": "arn:${AWS::Partition}:cloudtrail:*:${AWS::AccountId}:trail/*"})
            ),
        ]
    );
    // The spoke names the reader role so.
    assert_eq!(
        spoke_resource("Reader")["Properties"]["RoleName"],
        "sgwatch-reader"
    );
    assert_eq!(
        hub()["Outputs"]["HubBusArn"]["Value"],
        get_att("HubBus", "Arn")
    );
}

#[test]
fn a_spokes_forwarding_role_may_put_events_on_the_hub_bus_and_nowhere_else() {
    let role = spoke_resource("ForwardRole");
    let statements = inline_statements(role);
    assert_eq!(statements.len(), 1, "{statements:?}");
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Action"], "events:PutEvents");
    assert_eq!(statements[0]["Resource"], r#ref("HubBusArn"));
    assert!(role["Properties"]["ManagedPolicyArns"].is_null());
    // Only EventBridge and Scheduler of this account may use it.
    let trust = list(&role["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
    let services: BTreeSet<&str> = trust
        .iter()
        .map(|s| {
            assert_eq!(s["Action"], "sts:AssumeRole");
            assert_eq!(
                s["Condition"]["StringEquals"]["aws:SourceAccount"],
                r#ref("AWS::AccountId")
            );
            s["Principal"]["Service"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["events.amazonaws.com", "scheduler.amazonaws.com"])
    );
    // Every rule and the heartbeat put through it, on the hub bus only.
    for id in ["ConfigChanges", "SecurityGroupCalls"] {
        let targets = list(&spoke_resource(id)["Properties"]["Targets"]);
        assert_eq!(targets.len(), 1, "{id}");
        assert_eq!(targets[0]["Arn"], r#ref("HubBusArn"), "{id}");
        assert_eq!(targets[0]["RoleArn"], get_att("ForwardRole", "Arn"), "{id}");
    }
    let beat = &spoke_resource("Heartbeat")["Properties"];
    assert_eq!(beat["ScheduleExpression"], "rate(1 hour)");
    assert_eq!(beat["Target"]["Arn"], r#ref("HubBusArn"));
    assert_eq!(beat["Target"]["RoleArn"], get_att("ForwardRole", "Arn"));
    // What the hub's rule and handler know a heartbeat by.
    let params = &beat["Target"]["EventBridgeParameters"];
    assert_eq!(params["Source"], sgwatch_handler::spokes::HEARTBEAT_SOURCE);
    assert_eq!(
        params["DetailType"],
        sgwatch_handler::spokes::HEARTBEAT_DETAIL_TYPE
    );
    // The spoke creates nothing that sends, stores or runs code; only in a region with no Config
    // recorder (`CreateRecorder`) does it add the recorder's bucket and role.
    let resources = spoke()["Resources"].as_object().unwrap().clone();
    let (for_recorder, always): (Vec<_>, Vec<_>) = resources
        .iter()
        .partition(|(_, r)| r["Condition"] == "MakesRecorder");
    let types: BTreeSet<&str> = always
        .iter()
        .map(|(_, r)| r["Type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "AWS::Events::Rule",
            "AWS::IAM::Role",
            "AWS::Scheduler::Schedule"
        ])
    );
    let for_recorder: BTreeSet<&str> = for_recorder.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        for_recorder,
        BTreeSet::from(["ConfigBucket", "ConfigBucketPolicy", "ConfigRole"])
    );
    assert_eq!(
        spoke()["Parameters"]["CreateRecorder"]["Default"],
        "false",
        "a stack set's spokes adopt the account's recorder"
    );
    let delivers: Vec<&Value> = list(&spoke_resource("ConfigRole")["Properties"]["Policies"])
        .into_iter()
        .flat_map(|p| list(&p["PolicyDocument"]["Statement"]))
        .flat_map(|s| list(&s["Action"]))
        .collect();
    assert_eq!(
        delivers,
        [
            &json!("s3:PutObject"),
            &json!("s3:PutObjectAcl"),
            &json!("s3:GetBucketAcl")
        ],
        "the recorder's role writes to its bucket and nothing else"
    );
}

#[test]
fn the_reader_role_reads_only_and_only_the_hubs_handler_may_assume_it() {
    let reader = spoke_resource("Reader");
    assert_eq!(reader["Condition"], "ReaderRole");
    let trust = list(&reader["Properties"]["AssumeRolePolicyDocument"]["Statement"]);
    assert_eq!(trust.len(), 1);
    assert_eq!(
        trust[0]["Principal"],
        json!({"AWS": r#ref("HubHandlerRoleArn")})
    );
    assert_eq!(trust[0]["Action"], "sts:AssumeRole");
    assert_eq!(
        trust[0]["Condition"],
        json!({"Fn::If": ["InOrganization",
            {"StringEquals": {"aws:PrincipalOrgID": r#ref("OrganizationId")}},
            r#ref("AWS::NoValue")]})
    );
    let actions: BTreeSet<&str> = inline_statements(reader)
        .into_iter()
        .flat_map(|s| {
            assert_eq!(s["Effect"], "Allow");
            list(&s["Action"])
        })
        .map(|a| a.as_str().unwrap())
        .collect();
    // It reads; its one write imports the account's own Security Hub findings (the hub's
    // --security-hub on), into the account's own product and nowhere else.
    for a in actions
        .iter()
        .filter(|a| **a != "securityhub:BatchImportFindings")
    {
        let verb = a.split(':').nth(1).unwrap();
        assert!(
            ["Describe", "Get", "List", "Lookup"]
                .iter()
                .any(|read| verb.starts_with(read)),
            "{a} is not a read"
        );
    }
    let import: Vec<&Value> = inline_statements(reader)
        .into_iter()
        .filter(|s| {
            list(&s["Action"])
                .iter()
                .any(|a| *a == "securityhub:BatchImportFindings")
        })
        .collect();
    assert_eq!(import.len(), 1);
    assert_eq!(list(&import[0]["Action"]).len(), 1, "{import:?}");
    assert_eq!(
        import[0]["Resource"],
        json!({"Fn::Sub": "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default"})
    );
    // What the hub reads in a member account: oversized items, tags and rules for the early
    // warning, prefix lists, the actor when the feed missed it, and what `hub status` checks.
    for needed in [
        "config:GetResourceConfigHistory",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSecurityGroupRules",
        "ec2:GetManagedPrefixListEntries",
        "cloudtrail:LookupEvents",
        "config:DescribeConfigurationRecorders",
        "config:DescribeConfigurationRecorderStatus",
        "cloudtrail:DescribeTrails",
        "cloudtrail:GetTrailStatus",
        "cloudtrail:GetEventSelectors",
    ] {
        assert!(actions.contains(needed), "the reader lacks {needed}");
    }
}

#[test]
fn the_spoke_forwards_what_the_full_stack_would_hand_its_function() {
    let calls = &spoke_resource("SecurityGroupCalls")["Properties"]["EventPattern"];
    assert_eq!(calls, &hub_props("ActorFeedRule")["EventPattern"]);
    let changes = &spoke_resource("ConfigChanges")["Properties"]["EventPattern"];
    assert_eq!(changes["source"], json!(["aws.config"]));
    assert_eq!(
        changes["detail-type"],
        json!(["Config Configuration Item Change"])
    );
    // The names a stack set gives its stacks (`StackSet-<name>-<uuid>`) can be as long as they
    // like: the spoke builds no name from its stack's.
    for (id, r) in spoke()["Resources"].as_object().unwrap() {
        for (prop, v) in r["Properties"].as_object().into_iter().flatten() {
            if v.to_string().contains("AWS::StackName") {
                assert_eq!((id.as_str(), prop.as_str()), ("Heartbeat", "Target"));
            }
        }
    }
}

fn config_event(detail: Value) -> String {
    json!({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Config Configuration Item Change", "source": "aws.config",
        "account": "111111111111", "time": "2026-01-01T00:00:00Z",
        "region": "eu-west-1", "resources": [], "detail": detail,
    })
    .to_string()
}

#[tokio::test]
async fn the_spoke_and_the_hub_rule_match_group_changes_calls_and_heartbeats_only() {
    let moto = sgwatch_tests::emulator::Moto::start();
    let events = aws_sdk_eventbridge::Client::new(&moto.sdk_config(None).await);
    let pattern = |v: &Value| v.to_string();
    let spoke_changes = pattern(&spoke_resource("ConfigChanges")["Properties"]["EventPattern"]);
    let hub_rule = pattern(&hub_props("HubRule")["EventPattern"]);
    let full = |t: &str| {
        json!({ "messageType": "ConfigurationItemChangeNotification",
                "configurationItem": { "resourceType": t, "resourceId": "x" } })
    };
    let oversized = |t: &str| {
        json!({ "messageType": "OversizedConfigurationItemChangeNotification",
                "configurationItemSummary": { "resourceType": t, "resourceId": "x" } })
    };
    let matches = |pattern: String, event: String| {
        let events = events.clone();
        async move {
            events
                .test_event_pattern()
                .event_pattern(pattern)
                .event(event)
                .send()
                .await
                .unwrap_or_else(|e| panic!("TestEventPattern: {e:?}"))
                .result()
        }
    };
    for (detail, expected) in [
        (full("AWS::EC2::SecurityGroup"), true),
        (oversized("AWS::EC2::SecurityGroup"), true),
        (full("AWS::S3::Bucket"), false),
        (oversized("AWS::EC2::NetworkAcl"), false),
    ] {
        let event = config_event(detail.clone());
        assert_eq!(
            matches(spoke_changes.clone(), event.clone()).await,
            expected,
            "spoke: {detail}"
        );
        assert_eq!(
            matches(hub_rule.clone(), event).await,
            expected,
            "hub: {detail}"
        );
    }
    let call = sgwatch_tests::fixture::json("cloudtrail/authorize-ingress-sso-role.json");
    assert!(matches(hub_rule.clone(), call.to_string()).await);
    let heartbeat = json!({
        "version": "0", "id": "1", "detail-type": sgwatch_handler::spokes::HEARTBEAT_DETAIL_TYPE,
        "source": sgwatch_handler::spokes::HEARTBEAT_SOURCE, "account": "111111111111",
        "time": "2026-01-01T00:00:00Z", "region": "eu-west-1", "resources": [],
        "detail": {"account": "111111111111", "region": "eu-west-1", "stack": "sgwatch-spoke"},
    });
    assert!(matches(hub_rule.clone(), heartbeat.to_string()).await);
    let forged = json!({
        "version": "0", "id": "2", "detail-type": "anything", "source": "sgwatch.spoke",
        "account": "111111111111", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1",
        "resources": [], "detail": {},
    });
    assert!(!matches(hub_rule, forged.to_string()).await);
    drop(moto);
}

/// IAM is global: one region per account makes the reader role. The installer passes
/// `CreateReaderRole`; a stack set, whose instances all get the same parameters, names the
/// region with `ReaderRoleRegion`.
#[test]
fn one_region_per_account_makes_the_reader_role() {
    let condition = &spoke()["Conditions"]["ReaderRole"];
    let holds = |create: &str, named: &str, region: &str| -> bool {
        let or = condition["Fn::Or"].as_array().expect("Fn::Or");
        assert_eq!(
            or[0],
            json!({"Fn::And": [
                {"Fn::Equals": [r#ref("ReaderRoleRegion"), ""]},
                {"Fn::Equals": [r#ref("CreateReaderRole"), "true"]},
            ]})
        );
        assert_eq!(
            or[1],
            json!({"Fn::Equals": [r#ref("ReaderRoleRegion"), r#ref("AWS::Region")]})
        );
        (named.is_empty() && create == "true") || named == region
    };
    // The installer's way: the first region's spoke says true, the others false.
    assert!(holds("true", "", "us-east-1"));
    assert!(!holds("false", "", "eu-west-1"));
    // A stack set's way: only the named region, whatever CreateReaderRole's default says.
    assert!(holds("true", "us-east-1", "us-east-1"));
    assert!(!holds("true", "us-east-1", "eu-west-1"));
    let doc =
        std::fs::read_to_string(sgwatch_tests::repo_root().join("docs/STACKSETS.md")).unwrap();
    assert!(
        doc.contains("ParameterKey=ReaderRoleRegion"),
        "STACKSETS.md names the region"
    );
    let spoke_at = doc
        .find("sgwatch-spoke.yaml")
        .expect("STACKSETS.md names the spoke");
    let full_at = doc
        .find("templates/sgwatch.yaml`) deploys")
        .expect("STACKSETS.md keeps the full stack as the second way");
    assert!(
        spoke_at < full_at,
        "STACKSETS.md leads with the spoke template"
    );
}

#[test]
fn the_hub_looks_for_silent_spokes_every_hour() {
    let watch = hub_resource("HubWatch");
    assert_eq!(watch["Condition"], "IsHub");
    let p = &watch["Properties"];
    assert_eq!(p["ScheduleExpression"], "rate(1 hour)");
    let targets = list(&p["Targets"]);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["Arn"], get_att("Function", "Arn"));
    let input: Value = serde_json::from_str(targets[0]["Input"].as_str().unwrap()).unwrap();
    assert!(
        sgwatch_handler::spokes::is_coverage_check(&input),
        "{input}"
    );
}
