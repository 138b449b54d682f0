//! Whether the stack's roles may do what they exist for, asked of IAM's policy simulator
//! (`iam:SimulatePrincipalPolicy`), which evaluates the role's own policies together with its
//! permissions boundary and the organization's SCPs: the handler role sends as the sender,
//! reads an oversized item (from the bucket, or through AWS Config), claims in the table, parks
//! a failure and looks up CloudTrail, and, where the stack turns the feature on, reads the
//! destinations' parameters (and decrypts them through SSM with their key) and reads a group and
//! its rules for an early warning; the Config role delivers to the bucket and the topic. `status` prints a FAIL naming each denied
//! action and the template statement that should grant it.
//!
//! The decision on one simulator answer ([`verdict`]) is pure; [`simulate`] asks IAM.

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::PolicyEvaluationDecisionType as Decision;
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, EvaluationResult};

/// One thing a role must be allowed to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    pub action: &'static str,
    pub resource: String,
    /// Condition keys the real request carries, (key, value), all strings.
    pub context: Vec<(&'static str, String)>,
    /// The statement of the template's role policy that grants it (its Sid).
    pub statement: &'static str,
}

impl Ask {
    fn new(action: &'static str, resource: impl Into<String>, statement: &'static str) -> Ask {
        Ask {
            action,
            resource: resource.into(),
            context: Vec::new(),
            statement,
        }
    }

    fn with(mut self, key: &'static str, value: impl Into<String>) -> Ask {
        self.context.push((key, value.into()));
        self
    }
}

/// What the simulator said about a role's asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Simulated {
    /// Every ask is allowed.
    Allowed(usize),
    /// One line per denied ask: the action, the resource, why, and what to fix.
    Denied(Vec<String>),
    /// The simulator could not be asked (no permission for it, or no such API here).
    Unavailable(String),
}

/// The partition of an ARN (`aws`, `aws-cn`, `aws-us-gov`).
fn partition(arn: &str) -> &str {
    arn.split(':').nth(1).unwrap_or("aws")
}

/// What the handler does, as the stack's handler role (the template's HandlerRole `handler`
/// policy). In the SES sandbox the recipient's identity is authorized too, so the send is asked
/// for the sender's identity and for a recipient's ("Controlling access to Amazon SES", the
/// sandbox).
pub struct HandlerUse<'a> {
    pub role_arn: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub sender: &'a str,
    /// The SES identity (address or domain) that covers the sender.
    pub identity: &'a str,
    pub bucket: &'a str,
    pub table: &'a str,
    pub queue_arn: &'a str,
    /// The SSM parameters the destinations name (stack parameter `DestinationParameters`).
    pub destination_parameters: Vec<&'a str>,
    /// The customer managed key of those parameters (`DestinationKmsKeyArn`), if any.
    pub destination_key: Option<&'a str>,
    /// Whether the actor feed, and so the early warning, is on (`ActorFeed`).
    pub actor_feed: bool,
    /// The links' key, when the handler signs links (`--act-links on`).
    pub link_key: Option<&'a str>,
    /// Whether auto-revert removes rules (`--auto-revert on`).
    pub auto_revert: bool,
    /// The wake queue, which ends coalescing windows and the rate limit's hours.
    pub wake_queue_arn: Option<&'a str>,
    /// Whether the handler imports Security Hub findings (`--security-hub on`).
    pub security_hub: bool,
    /// The SNS topics the chatbot destinations publish to (`ChatbotTopics`).
    pub chatbot_topics: Vec<&'a str>,
}

/// A group of the account and region that opts in, as a revoke names it; with the request's
/// `aws:ResourceTag/NotifyOnChange` when `opted_in`.
fn revoke_on_group(
    p: &str,
    region: &str,
    account: &str,
    statement: &'static str,
    opted_in: bool,
) -> Ask {
    let ask = Ask::new(
        "ec2:RevokeSecurityGroupIngress",
        format!("arn:{p}:ec2:{region}:{account}:security-group/sg-0123456789abcdef0"),
        statement,
    );
    if opted_in {
        ask.with("aws:ResourceTag/NotifyOnChange", "Yes")
    } else {
        ask
    }
}

/// What the act function does with its role (the template's ActRole `act` policy).
pub struct ActUse<'a> {
    pub role_arn: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub sender: &'a str,
    pub identity: &'a str,
    pub table: &'a str,
    pub key: &'a str,
}

pub fn act_asks(a: &ActUse<'_>) -> Vec<Ask> {
    let p = partition(a.role_arn);
    let (region, account) = (a.region, a.account);
    let table = format!("arn:{p}:dynamodb:{region}:{account}:table/{}", a.table);
    let mut asks = vec![Ask::new("kms:VerifyMac", a.key, "CheckLinks")];
    for action in [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    ] {
        asks.push(Ask::new(action, table.clone(), "RecordEachAct"));
    }
    asks.extend([
        Ask::new("ec2:DescribeSecurityGroups", "*", "ReadTheGroupNow"),
        Ask::new("ec2:DescribeSecurityGroupRules", "*", "ReadTheGroupNow"),
        revoke_on_group(p, region, account, "RevokeOnlyOnGroupsThatOptIn", true),
        Ask::new(
            "ec2:RevokeSecurityGroupIngress",
            format!("arn:{p}:ec2:{region}:{account}:security-group-rule/sgr-0123456789abcdef0"),
            "RevokeByRuleId",
        ),
        Ask::new(
            "ses:SendEmail",
            format!("arn:{p}:ses:{region}:{account}:identity/{}", a.identity),
            "SendAsSenderOnly",
        )
        .with("ses:FromAddress", a.sender),
    ]);
    asks
}

/// The revoke a role must be refused: on a group that does not carry the opt-in tag key.
pub fn revoke_without_the_tag(role_arn: &str, region: &str, account: &str) -> Ask {
    revoke_on_group(partition(role_arn), region, account, "none", false)
}

/// The endpoint suffix of a partition, as `AWS::URLSuffix` gives it.
fn url_suffix(partition: &str) -> &'static str {
    match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    }
}

pub fn handler_asks(h: &HandlerUse<'_>) -> Vec<Ask> {
    let p = partition(h.role_arn);
    let (region, account) = (h.region, h.account);
    let identity = |name: &str| format!("arn:{p}:ses:{region}:{account}:identity/{name}");
    let mut asks = vec![
        Ask::new("ses:SendEmail", identity(h.identity), "SendAsSenderOnly")
            .with("ses:FromAddress", h.sender),
        Ask::new(
            "ses:SendEmail",
            identity("recipient.example"),
            "SendAsSenderOnly",
        )
        .with("ses:FromAddress", h.sender),
        Ask::new(
            "s3:GetObject",
            format!(
                "arn:{p}:s3:::{}/AWSLogs/{account}/Config/{region}/oversized.json.gz",
                h.bucket
            ),
            "ReadOversizedItems",
        ),
        Ask::new(
            "dynamodb:UpdateItem",
            format!("arn:{p}:dynamodb:{region}:{account}:table/{}", h.table),
            "Idempotency",
        ),
        Ask::new(
            "dynamodb:GetItem",
            format!("arn:{p}:dynamodb:{region}:{account}:table/{}", h.table),
            "Idempotency",
        ),
        Ask::new("sqs:SendMessage", h.queue_arn, "OnFailureDestination"),
        Ask::new("cloudtrail:LookupEvents", "*", "FindWhoChangedIt"),
        Ask::new(
            "config:GetResourceConfigHistory",
            "*",
            "ReadItemsThroughConfig",
        ),
        Ask::new("ec2:DescribeSecurityGroupRules", "*", "ReadRuleIds"),
        Ask::new(
            "ec2:DescribeNetworkInterfaces",
            "*",
            "ReadWhatTheGroupIsAttachedTo",
        ),
        Ask::new(
            "ssm:GetParameter",
            format!("arn:{p}:ssm:{region}:{account}:parameter/sgwatch/handover"),
            "ReadHandoverMarker",
        ),
    ];
    asks.extend(feature_asks(h, p));
    asks
}

/// What the handler asks only where the stack turns a feature on: destinations' secrets, the
/// early warning's reads, signing links, the wake queue, auto-revert.
fn feature_asks(h: &HandlerUse<'_>, p: &str) -> Vec<Ask> {
    let (region, account) = (h.region, h.account);
    let mut asks = Vec::new();
    for name in &h.destination_parameters {
        // Parameter ARNs join `parameter` and a name that starts with `/`.
        let name = name.strip_prefix('/').unwrap_or(name);
        asks.push(Ask::new(
            "ssm:GetParameter",
            format!("arn:{p}:ssm:{region}:{account}:parameter/{name}"),
            "ReadDestinationSecrets",
        ));
    }
    if let (Some(key), false) = (h.destination_key, h.destination_parameters.is_empty()) {
        // Parameter Store decrypts on the caller's behalf: the request carries kms:ViaService.
        asks.push(
            Ask::new("kms:Decrypt", key, "DecryptDestinationSecrets")
                .with("kms:ViaService", format!("ssm.{region}.{}", url_suffix(p))),
        );
    }
    if h.actor_feed {
        asks.push(Ask::new(
            "ec2:DescribeSecurityGroups",
            "*",
            "ReadGroupTagsForEarlyWarning",
        ));
    }
    if let Some(key) = h.link_key {
        asks.push(Ask::new("kms:GenerateMac", key, "SignLinks"));
    }
    if h.security_hub {
        asks.push(Ask::new(
            "securityhub:BatchImportFindings",
            format!("arn:{p}:securityhub:{region}:{account}:product/{account}/default"),
            "ImportOwnFindings",
        ));
    }
    for topic in &h.chatbot_topics {
        asks.push(Ask::new("sns:Publish", *topic, "PublishToChatTopics"));
    }
    if let Some(queue) = h.wake_queue_arn {
        asks.push(Ask::new(
            "sqs:SendMessage",
            queue,
            "WakeAndReadTheWakeQueue",
        ));
    }
    if h.auto_revert {
        asks.push(revoke_on_group(
            p,
            region,
            account,
            "RevokeOnlyOnGroupsThatOptIn",
            true,
        ));
    }
    asks
}

/// What AWS Config does with the stack's Config role (the template's ConfigRole `deliver`
/// policy): write history with the ACL Config sets, check the bucket's ACL, publish.
pub fn config_asks(
    role_arn: &str,
    region: &str,
    account: &str,
    bucket: &str,
    topic: &str,
) -> Vec<Ask> {
    let p = partition(role_arn);
    vec![
        Ask::new(
            "s3:PutObject",
            format!("arn:{p}:s3:::{bucket}/AWSLogs/{account}/Config/{region}/history.json.gz"),
            "WriteHistoryAndSnapshots",
        )
        .with("s3:x-amz-acl", "bucket-owner-full-control"),
        Ask::new(
            "s3:GetBucketAcl",
            format!("arn:{p}:s3:::{bucket}"),
            "CheckBucketAcl",
        ),
        Ask::new("sns:Publish", topic, "Notify"),
    ]
}

/// Why the simulator's answer denies `ask`, and what to fix; `None` when it allows it.
pub fn verdict(role: &str, ask: &Ask, r: &EvaluationResult) -> Option<String> {
    if *r.eval_decision() == Decision::Allowed {
        return None;
    }
    let what = format!("{role} may not {} on {}", ask.action, ask.resource);
    let by_scp = r
        .organizations_decision_detail()
        .is_some_and(|d| !d.allowed_by_organizations());
    let by_boundary = r
        .permissions_boundary_decision_detail()
        .is_some_and(|d| !d.allowed_by_permissions_boundary());
    let denying: Vec<&str> = r
        .matched_statements()
        .iter()
        .filter_map(|s| s.source_policy_id())
        .collect();
    let why = if *r.eval_decision() == Decision::ExplicitDeny && !denying.is_empty() {
        format!(
            "explicitly denied by {}: remove that Deny for this role",
            denying.join(", ")
        )
    } else if by_scp {
        "denied by a service control policy of the organization: exempt this role there".to_owned()
    } else if by_boundary {
        "denied by the role's permissions boundary: allow it there".to_owned()
    } else {
        format!(
            "no statement grants it: the template's statement {} does; run `sgwatch install` to \
             restore the role's policy",
            ask.statement
        )
    };
    let missing = r.missing_context_values();
    let missing = if missing.is_empty() {
        String::new()
    } else {
        format!(" (the simulation lacked {})", missing.join(", "))
    };
    Some(format!("{what}: {why}{missing}"))
}

/// Asks the simulator about each of `asks` for `role_arn`, one call per ask (each has its own
/// resource and context). A failed call makes the whole answer [`Simulated::Unavailable`].
/// Whether IAM allows `ask` to `role_arn`; `Err` when it cannot be asked.
pub async fn allowed(iam: &aws_sdk_iam::Client, role_arn: &str, ask: &Ask) -> Result<bool, String> {
    match simulate(iam, role_arn, std::slice::from_ref(ask)).await {
        Simulated::Allowed(_) => Ok(true),
        Simulated::Denied(_) => Ok(false),
        Simulated::Unavailable(why) => Err(why),
    }
}

pub async fn simulate(iam: &aws_sdk_iam::Client, role_arn: &str, asks: &[Ask]) -> Simulated {
    let role = role_arn.rsplit('/').next().unwrap_or(role_arn);
    // A report line, not a step anything waits on: one attempt (an emulator without the call
    // answers 5xx, and five retries would only make status slow).
    let once = aws_sdk_iam::config::Builder::default()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1));
    let mut denied = Vec::new();
    for ask in asks {
        let mut call = iam
            .simulate_principal_policy()
            .policy_source_arn(role_arn)
            .action_names(ask.action)
            .resource_arns(&ask.resource);
        for (key, value) in &ask.context {
            call = call.context_entries(
                ContextEntry::builder()
                    .context_key_name(*key)
                    .context_key_values(value)
                    .context_key_type(ContextKeyTypeEnum::String)
                    .build(),
            );
        }
        let answer = call.customize().config_override(once.clone()).send().await;
        let answer = match answer {
            Ok(a) => a,
            Err(e) => {
                let said = match (e.code(), e.message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_owned(),
                    _ => match e.raw_response() {
                        Some(raw) => format!("HTTP {}", raw.status().as_u16()),
                        None => crate::aws::error_text(&e),
                    },
                };
                return Simulated::Unavailable(format!("iam:SimulatePrincipalPolicy: {said}"));
            }
        };
        match answer.evaluation_results() {
            [] => {
                return Simulated::Unavailable(format!(
                    "iam:SimulatePrincipalPolicy gave no result for {}",
                    ask.action
                ))
            }
            results => denied.extend(results.iter().filter_map(|r| verdict(role, ask, r))),
        }
    }
    if denied.is_empty() {
        Simulated::Allowed(asks.len())
    } else {
        Simulated::Denied(denied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyOutput;
    use aws_sdk_iam::types::{
        OrganizationsDecisionDetail, PermissionsBoundaryDecisionDetail, Statement,
    };
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const ROLE: &str = "arn:aws:iam::123456789012:role/sgwatch-HandlerRole-ABC";

    fn uses() -> Vec<Ask> {
        handler_asks(&HandlerUse {
            role_arn: ROLE,
            region: "us-east-1",
            account: "123456789012",
            sender: "alerts@example.com",
            identity: "example.com",
            bucket: "sgwatch-configbucket-1",
            table: "sgwatch-IdempotencyTable-1",
            queue_arn: "arn:aws:sqs:us-east-1:123456789012:sgwatch-FailureQueue-1",
            destination_parameters: Vec::new(),
            security_hub: false,
            chatbot_topics: Vec::new(),
            destination_key: None,
            actor_feed: false,
            link_key: None,
            auto_revert: false,
            wake_queue_arn: None,
        })
    }

    /// An evaluation result as the SimulatePrincipalPolicy reference documents it.
    fn result(action: &str, decision: Decision) -> EvaluationResult {
        EvaluationResult::builder()
            .eval_action_name(action)
            .eval_resource_name("*")
            .eval_decision(decision)
            .build()
            .unwrap()
    }

    #[test]
    fn the_asks_name_what_the_handler_does_on_its_own_resources() {
        let asks = uses();
        assert_eq!(
            asks[0].resource,
            "arn:aws:ses:us-east-1:123456789012:identity/example.com"
        );
        assert_eq!(
            asks[0].context,
            [("ses:FromAddress", "alerts@example.com".to_owned())]
        );
        assert!(asks[2]
            .resource
            .starts_with("arn:aws:s3:::sgwatch-configbucket-1/AWSLogs/123456789012/"));
        let actions: Vec<&str> = asks.iter().map(|a| a.action).collect();
        assert_eq!(
            actions,
            [
                "ses:SendEmail",
                "ses:SendEmail",
                "s3:GetObject",
                "dynamodb:UpdateItem",
                "dynamodb:GetItem",
                "sqs:SendMessage",
                "cloudtrail:LookupEvents",
                "config:GetResourceConfigHistory",
                "ec2:DescribeSecurityGroupRules",
                "ec2:DescribeNetworkInterfaces",
                "ssm:GetParameter"
            ]
        );
        let cn = config_asks(
            "arn:aws-cn:iam::1:role/r",
            "cn-north-1",
            "1",
            "b",
            "arn:aws-cn:sns:cn-north-1:1:t",
        );
        assert_eq!(cn[1].resource, "arn:aws-cn:s3:::b");
    }

    /// Each feature's grants are asked where the stack turns it on: an SCP that denies one is
    /// then named by status.
    #[test]
    fn the_grants_of_each_feature_are_asked_when_it_is_on() {
        let key = "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let asks = handler_asks(&HandlerUse {
            role_arn: "arn:aws-cn:iam::123456789012:role/sgwatch-HandlerRole-ABC",
            region: "cn-north-1",
            account: "123456789012",
            sender: "alerts@example.com",
            identity: "example.com",
            bucket: "b",
            table: "t",
            queue_arn: "arn:aws-cn:sqs:cn-north-1:123456789012:q",
            destination_parameters: vec!["/sgwatch/secops-slack", "/sgwatch/siem-key"],
            security_hub: false,
            chatbot_topics: Vec::new(),
            destination_key: Some(key),
            actor_feed: true,
            link_key: None,
            auto_revert: false,
            wake_queue_arn: Some("arn:aws-cn:sqs:cn-north-1:123456789012:sgwatch-WakeQueue-1"),
        });
        let extra: Vec<(&str, &str, &str)> = asks[11..]
            .iter()
            .map(|a| (a.action, a.resource.as_str(), a.statement))
            .collect();
        assert_eq!(
            extra,
            [
                (
                    "ssm:GetParameter",
                    "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/sgwatch/secops-slack",
                    "ReadDestinationSecrets"
                ),
                (
                    "ssm:GetParameter",
                    "arn:aws-cn:ssm:cn-north-1:123456789012:parameter/sgwatch/siem-key",
                    "ReadDestinationSecrets"
                ),
                ("kms:Decrypt", key, "DecryptDestinationSecrets"),
                (
                    "ec2:DescribeSecurityGroups",
                    "*",
                    "ReadGroupTagsForEarlyWarning"
                ),
                (
                    "sqs:SendMessage",
                    "arn:aws-cn:sqs:cn-north-1:123456789012:sgwatch-WakeQueue-1",
                    "WakeAndReadTheWakeQueue"
                ),
            ]
        );
        assert_eq!(
            asks[13].context,
            [(
                "kms:ViaService",
                "ssm.cn-north-1.amazonaws.com.cn".to_owned()
            )]
        );
        // Off: only what every install needs.
        assert_eq!(uses().len(), 11);
    }

    #[test]
    fn each_kind_of_denial_names_the_action_and_what_to_fix() {
        let ask = &uses()[0];
        assert_eq!(
            verdict("r", ask, &result("ses:SendEmail", Decision::Allowed)),
            None
        );
        let implicit = verdict("r", ask, &result("ses:SendEmail", Decision::ImplicitDeny)).unwrap();
        assert_eq!(
            implicit,
            "r may not ses:SendEmail on arn:aws:ses:us-east-1:123456789012:identity/example.com: \
             no statement grants it: the template's statement SendAsSenderOnly does; run \
             `sgwatch install` to restore the role's policy"
        );
        let explicit = EvaluationResult::builder()
            .eval_action_name("ses:SendEmail")
            .eval_decision(Decision::ExplicitDeny)
            .matched_statements(Statement::builder().source_policy_id("no-mail").build())
            .build()
            .unwrap();
        assert!(verdict("r", ask, &explicit)
            .unwrap()
            .ends_with("explicitly denied by no-mail: remove that Deny for this role"));
        let scp = EvaluationResult::builder()
            .eval_action_name("ses:SendEmail")
            .eval_decision(Decision::ImplicitDeny)
            .organizations_decision_detail(
                OrganizationsDecisionDetail::builder()
                    .allowed_by_organizations(false)
                    .build(),
            )
            .build()
            .unwrap();
        assert!(verdict("r", ask, &scp)
            .unwrap()
            .contains("denied by a service control policy"));
        let boundary = EvaluationResult::builder()
            .eval_action_name("ses:SendEmail")
            .eval_decision(Decision::ImplicitDeny)
            .permissions_boundary_decision_detail(
                PermissionsBoundaryDecisionDetail::builder()
                    .allowed_by_permissions_boundary(false)
                    .build(),
            )
            .missing_context_values("ses:FromAddress")
            .build()
            .unwrap();
        assert!(verdict("r", ask, &boundary).unwrap().ends_with(
            "denied by the role's permissions boundary: allow it there (the simulation lacked \
             ses:FromAddress)"
        ));
    }

    #[tokio::test]
    async fn a_denied_action_is_reported_and_an_unavailable_simulator_is_said() {
        // Everything allowed but the table update.
        let allowed = mock!(aws_sdk_iam::Client::simulate_principal_policy)
            .match_requests(|r| r.action_names() != ["dynamodb:UpdateItem"])
            .then_output(|| {
                SimulatePrincipalPolicyOutput::builder()
                    .evaluation_results(result("x", Decision::Allowed))
                    .build()
            });
        let denied = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_output(|| {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(result("dynamodb:UpdateItem", Decision::ImplicitDeny))
                .build()
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&allowed, &denied]);
        let asks = uses();
        match simulate(&iam, ROLE, &asks).await {
            Simulated::Denied(lines) => {
                assert_eq!(lines.len(), 1, "{lines:?}");
                assert!(
                    lines[0].starts_with(
                        "sgwatch-HandlerRole-ABC may not dynamodb:UpdateItem on \
                         arn:aws:dynamodb:us-east-1:123456789012:table/sgwatch-IdempotencyTable-1"
                    ),
                    "{}",
                    lines[0]
                );
                assert!(lines[0].contains("statement Idempotency"));
            }
            other => panic!("{other:?}"),
        }

        let refused = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_error(|| {
            aws_sdk_iam::operation::simulate_principal_policy::SimulatePrincipalPolicyError::generic(
                aws_sdk_iam::error::ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform iam:SimulatePrincipalPolicy")
                    .build(),
            )
        });
        let iam = mock_client!(aws_sdk_iam, [&refused]);
        assert_eq!(
            simulate(&iam, ROLE, &asks).await,
            Simulated::Unavailable(
                "iam:SimulatePrincipalPolicy: AccessDenied: not authorized to perform \
                 iam:SimulatePrincipalPolicy"
                    .into()
            )
        );

        let all = mock!(aws_sdk_iam::Client::simulate_principal_policy).then_output(|| {
            SimulatePrincipalPolicyOutput::builder()
                .evaluation_results(result("x", Decision::Allowed))
                .build()
        });
        let iam = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&all]);
        assert_eq!(simulate(&iam, ROLE, &asks).await, Simulated::Allowed(11));
    }
}
