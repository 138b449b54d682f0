//! AWS Security Hub findings (`SGWATCH_SECURITY_HUB`): one per rule a change opens to the
//! internet, imported with `BatchImportFindings` into the account's own product
//! (`product/ACCOUNT/default`), and imported again `ARCHIVED` with compliance `PASSED` when a
//! later change removes the rule. Security Hub updates a finding only when its `UpdatedAt` is later
//! than the one it holds, and a finding's `CreatedAt` is when the exposure began, so the ledger's
//! table keeps, per rule, when it was opened (`open/ID`): the archiving import reads it back.
//!
//! In a hub, a member account's findings are imported through that account's reader role: with
//! the default product, the calling account must be the finding's `AwsAccountId`.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_securityhub::error::ProvideErrorMetadata;
use aws_sdk_securityhub::types::{
    AwsEc2SecurityGroupDetails, AwsEc2SecurityGroupIpPermission, AwsEc2SecurityGroupIpRange,
    AwsEc2SecurityGroupIpv6Range, AwsEc2SecurityGroupPrefixListId, AwsSecurityFinding, Compliance,
    ComplianceStatus, FindingProviderFields, FindingProviderSeverity, Partition, Recommendation,
    RecordState, Remediation, Resource, ResourceDetails, Severity as Sev, SeverityLabel,
};

use crate::core::decide::Decision;
use crate::core::finding::{cut, description, group_arn, partition, product_arn, title, Exposed};
use crate::core::link::RuleRef;
use crate::core::render::{actor_text, console_link};
use crate::core::rules::Protocol;
use crate::core::severity::Severity;
use crate::core::who::ActorLookup;
use crate::dedupe::Dedupe;
use crate::ledger::{attr, Key};

/// The version of the format every finding is in.
const SCHEMA_VERSION: &str = "2018-10-08";
/// What kind of finding: the taxonomy's "network reachability" best practice.
const TYPE: &str =
    "Software and Configuration Checks/AWS Security Best Practices/Network Reachability";
const GENERATOR: &str = "sgwatch/internet-open-ingress";
/// How long the record of a closed rule is kept (Security Hub keeps a finding 90 days after its
/// last update).
const CLOSED_KEEP_SECS: u64 = 90 * 24 * 3600;

/// Why findings were not imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Security Hub refused them, or some: not enabled, not permitted, not valid. Retrying does
    /// not help; `sgwatch status` says what is missing.
    #[error("Security Hub refused the findings of {account}/{region}: {reason}")]
    Refused {
        account: String,
        region: String,
        reason: String,
    },
    /// Throttled, a server error or no answer, after the SDK's retries: Lambda's retry imports
    /// them.
    #[error("Security Hub did not take the findings of {account}/{region}: {reason}")]
    Transient {
        account: String,
        region: String,
        reason: String,
    },
    /// The table that keeps when each rule opened could not be read or written.
    #[error("the record of rule {id} could not be kept: {reason}")]
    Record { id: String, reason: String },
}

impl ImportError {
    pub fn is_transient(&self) -> bool {
        !matches!(self, ImportError::Refused { .. })
    }
}

fn label(severity: Severity) -> SeverityLabel {
    match severity {
        Severity::Critical => SeverityLabel::Critical,
        Severity::High => SeverityLabel::High,
        Severity::Medium => SeverityLabel::Medium,
        Severity::Low => SeverityLabel::Low,
        Severity::Info => SeverityLabel::Informational,
    }
}

fn sdk_partition(region: &str) -> Partition {
    match partition(region) {
        "aws-cn" => Partition::AwsCn,
        "aws-us-gov" => Partition::AwsUsGov,
        _ => Partition::Aws,
    }
}

/// The rule as the `AwsEc2SecurityGroup` details list a permission.
fn permission(rule: &RuleRef) -> AwsEc2SecurityGroupIpPermission {
    let protocol = match Protocol::parse(&rule.protocol) {
        Protocol::All => "-1".to_owned(),
        other => other.as_str().to_owned(),
    };
    let mut p = AwsEc2SecurityGroupIpPermission::builder().ip_protocol(protocol);
    if let (Some(from), Some(to)) = (rule.from_port, rule.to_port) {
        p = p
            .from_port(i32::try_from(from).unwrap_or(-1))
            .to_port(i32::try_from(to).unwrap_or(-1));
    }
    let source = rule.source.as_str();
    if source.starts_with("pl-") {
        p.prefix_list_ids(
            AwsEc2SecurityGroupPrefixListId::builder()
                .prefix_list_id(source)
                .build(),
        )
        .build()
    } else if source.contains(':') {
        p.ipv6_ranges(
            AwsEc2SecurityGroupIpv6Range::builder()
                .cidr_ipv6(source)
                .build(),
        )
        .build()
    } else {
        p.ip_ranges(
            AwsEc2SecurityGroupIpRange::builder()
                .cidr_ip(source)
                .build(),
        )
        .build()
    }
}

/// The group as the finding's resource: an `AwsEc2SecurityGroup` with the rule.
fn resource(d: &Decision, e: &Exposed) -> Resource {
    let s = &d.analysis.subject;
    let mut group = AwsEc2SecurityGroupDetails::builder()
        .group_id(&s.resource_id)
        .owner_id(&s.account)
        .ip_permissions(permission(&e.rule));
    if let Some(name) = s.name.as_deref().filter(|n| !n.is_empty()) {
        group = group.group_name(cut(name, 255));
    }
    Resource::builder()
        .r#type("AwsEc2SecurityGroup")
        .id(group_arn(s))
        .partition(sdk_partition(&s.region))
        .region(&s.region)
        .details(
            ResourceDetails::builder()
                .aws_ec2_security_group(group.build())
                .build(),
        )
        .build()
}

/// When the change was captured, or `now` (both RFC 3339).
pub fn changed_at(d: &Decision, now: &str) -> String {
    d.analysis
        .subject
        .capture_time
        .clone()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| now.to_owned())
}

/// The finding of rule `e`: open (`ACTIVE`, compliance `FAILED`) or closed (`ARCHIVED`,
/// `PASSED`). Its first import has `created_at` = `updated_at`; every later one a later
/// `updated_at`. Every value from the group is on one line and within ASFF's limits.
pub fn finding(
    d: &Decision,
    e: &Exposed,
    actor: &ActorLookup,
    (created_at, updated_at): (&str, &str),
    open: bool,
) -> AwsSecurityFinding {
    let s = &d.analysis.subject;
    let severity = Sev::builder()
        .label(label(e.severity))
        .original(e.severity.as_str().to_ascii_uppercase())
        .build();
    let provider = FindingProviderFields::builder()
        .severity(
            FindingProviderSeverity::builder()
                .label(label(e.severity))
                .original(e.severity.as_str().to_ascii_uppercase())
                .build(),
        )
        .types(TYPE)
        .build();
    let (compliance, state) = if open {
        (ComplianceStatus::Failed, RecordState::Active)
    } else {
        (ComplianceStatus::Passed, RecordState::Archived)
    };
    let mut f = AwsSecurityFinding::builder()
        .schema_version(SCHEMA_VERSION)
        .id(&e.id)
        .product_arn(product_arn(&s.account, &s.region))
        .product_name("sgwatch")
        .generator_id(GENERATOR)
        .aws_account_id(&s.account)
        .region(&s.region)
        .types(TYPE)
        .created_at(created_at)
        .first_observed_at(created_at)
        .updated_at(updated_at)
        .last_observed_at(updated_at)
        .severity(severity)
        .finding_provider_fields(provider)
        .title(title(d, e, open))
        .description(description(d, e, actor, open))
        .resources(resource(d, e))
        .compliance(Compliance::builder().status(compliance).build())
        .record_state(state)
        .product_fields("sgwatch/rule", e.rule.describe())
        .product_fields("sgwatch/actor", cut(&actor_text(actor), 2048))
        .product_fields("sgwatch/why", cut(&d.reason(), 2048));
    if let Some(id) = &e.rule.id {
        f = f.product_fields("sgwatch/rule-id", cut(id, 64));
    }
    let console = console_link(&s.region, &s.resource_id);
    if let Some(url) = &console {
        f = f.source_url(url);
    }
    if let (true, Some(command)) = (open, &e.command) {
        let mut r = Recommendation::builder().text(cut(
            &format!("Remove the rule if it is not meant to be open to the internet: {command}"),
            512,
        ));
        if let Some(url) = &console {
            r = r.url(url);
        }
        f = f.remediation(Remediation::builder().recommendation(r.build()).build());
    }
    f.build()
}

/// Imports `findings` (at most 100, Security Hub's batch) with `client`.
pub async fn import(
    client: &aws_sdk_securityhub::Client,
    (account, region): (&str, &str),
    findings: Vec<AwsSecurityFinding>,
) -> Result<(), ImportError> {
    let refused = |reason: String| ImportError::Refused {
        account: account.to_owned(),
        region: region.to_owned(),
        reason,
    };
    let out = client
        .batch_import_findings()
        .set_findings(Some(findings))
        .send()
        .await
        .map_err(|e| {
            let reason = match (e.code(), e.message()) {
                (Some(code), message) => format!("{code}: {}", message.unwrap_or_default()),
                _ => aws_sdk_securityhub::error::DisplayErrorContext(&e).to_string(),
            };
            // Denied (401, 403) is for good whatever the body says.
            let denied = e
                .raw_response()
                .is_some_and(|r| matches!(r.status().as_u16(), 401 | 403));
            let permanent = denied
                || matches!(
                    e.code(),
                    Some(
                        "InvalidAccessException"
                            | "AccessDeniedException"
                            | "AccessDenied"
                            | "InvalidInputException"
                            | "UnrecognizedClientException"
                    )
                );
            if permanent {
                refused(reason)
            } else {
                ImportError::Transient {
                    account: account.to_owned(),
                    region: region.to_owned(),
                    reason,
                }
            }
        })?;
    if out.failed_count().unwrap_or(0) > 0 || !out.failed_findings().is_empty() {
        let why: Vec<String> = out
            .failed_findings()
            .iter()
            .map(|f| {
                format!(
                    "{} {}: {}",
                    f.id().unwrap_or("?"),
                    f.error_code().unwrap_or("?"),
                    f.error_message().unwrap_or_default()
                )
            })
            .collect();
        return Err(refused(why.join("; ")));
    }
    Ok(())
}

fn open_key(id: &str) -> String {
    Key::Open { id: id.to_owned() }.to_string()
}

fn record_error(id: &str, e: impl std::fmt::Display) -> ImportError {
    ImportError::Record {
        id: id.to_owned(),
        reason: e.to_string(),
    }
}

/// Records rule `id` open since `at` (RFC 3339), keeping the time of an open record (a retry's);
/// a rule opened again after it closed starts anew. Returns when it opened.
pub async fn record_opened(table: &Dedupe, id: &str, at: &str) -> Result<String, ImportError> {
    let out = table
        .client
        .update_item()
        .table_name(&table.table)
        .key(attr::KEY, AttributeValue::S(open_key(id)))
        .update_expression("SET #at = if_not_exists(#at, :at) REMOVE #closed, #expires")
        .expression_attribute_names("#at", attr::AT)
        .expression_attribute_names("#closed", attr::CLOSED)
        .expression_attribute_names("#expires", attr::EXPIRES_AT)
        .expression_attribute_values(":at", AttributeValue::S(at.to_owned()))
        .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
        .send()
        .await
        .map_err(|e| record_error(id, aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(attr::AT))
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_else(|| at.to_owned()))
}

/// When rule `id` opened, if sgwatch recorded it open (and not yet closed).
pub async fn opened_at(table: &Dedupe, id: &str) -> Result<Option<String>, ImportError> {
    let out = table
        .client
        .get_item()
        .table_name(&table.table)
        .key(attr::KEY, AttributeValue::S(open_key(id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| record_error(id, aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
    let Some(item) = out.item() else {
        return Ok(None);
    };
    if item.contains_key(attr::CLOSED) {
        return Ok(None);
    }
    Ok(item.get(attr::AT).and_then(|v| v.as_s().ok()).cloned())
}

/// Records rule `id` closed at `now` (epoch seconds); the record goes with the finding.
pub async fn record_closed(table: &Dedupe, id: &str, now: u64) -> Result<(), ImportError> {
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key(attr::KEY, AttributeValue::S(open_key(id)))
        .update_expression("SET #closed = :now, #expires = :expires")
        .expression_attribute_names("#closed", attr::CLOSED)
        .expression_attribute_names("#expires", attr::EXPIRES_AT)
        .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
        .expression_attribute_values(
            ":expires",
            AttributeValue::N((now + CLOSED_KEEP_SECS).to_string()),
        )
        .send()
        .await
        .map_err(|e| record_error(id, aws_sdk_dynamodb::error::DisplayErrorContext(&e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::{analyze, decide};
    use crate::core::finding::opened;
    use crate::core::message::{parse_message, ConfigMessage};
    use crate::core::settings::Policy;

    fn decision() -> Decision {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let ConfigMessage::ItemChange(c) = parse_message(&v).unwrap() else {
            panic!("an item change")
        };
        decide(analyze(&c).unwrap(), &Policy::default())
    }

    #[test]
    fn the_finding_has_every_attribute_asff_requires_within_its_limits() {
        let d = decision();
        let e = &opened(&d)[0];
        let actor = ActorLookup::Unknown("not looked up".into());
        let t = "2026-12-06T09:00:00.000Z";
        let f = finding(&d, e, &actor, (t, t), true);
        let s = &d.analysis.subject;
        assert_eq!(f.schema_version(), Some("2018-10-08"));
        assert_eq!(f.id(), Some(e.id.as_str()));
        assert_eq!(
            f.product_arn(),
            Some(
                format!(
                    "arn:aws:securityhub:{0}:{1}:product/{1}/default",
                    s.region, s.account
                )
                .as_str()
            )
        );
        assert_eq!(f.aws_account_id(), Some(s.account.as_str()));
        assert!(f.generator_id().is_some_and(|g| g.len() <= 512));
        assert_eq!((f.created_at(), f.updated_at()), (Some(t), Some(t)));
        assert!(f
            .title()
            .is_some_and(|x| (1..=256).contains(&x.chars().count())));
        assert!(f
            .description()
            .is_some_and(|x| (1..=1024).contains(&x.chars().count())));
        assert_eq!(f.types(), [TYPE]);
        assert_eq!(
            f.severity().and_then(|s| s.label()),
            Some(&SeverityLabel::Critical)
        );
        let r = &f.resources()[0];
        assert_eq!(r.r#type(), Some("AwsEc2SecurityGroup"));
        assert_eq!(
            r.id(),
            Some(
                format!(
                    "arn:aws:ec2:{}:{}:security-group/{}",
                    s.region, s.account, s.resource_id
                )
                .as_str()
            )
        );
        let p = &r
            .details()
            .unwrap()
            .aws_ec2_security_group()
            .unwrap()
            .ip_permissions()[0];
        assert_eq!(p.ip_protocol(), Some("tcp"));
        assert_eq!((p.from_port(), p.to_port()), (Some(3389), Some(3389)));
        assert_eq!(p.ip_ranges()[0].cidr_ip(), Some("0.0.0.0/0"));
        assert_eq!(f.record_state(), Some(&RecordState::Active));
        assert_eq!(
            f.compliance().and_then(|c| c.status()),
            Some(&ComplianceStatus::Failed)
        );
        let text = f
            .remediation()
            .and_then(|r| r.recommendation())
            .and_then(|r| r.text())
            .unwrap();
        assert!(text.contains("revoke-security-group-ingress") && text.chars().count() <= 512);
        let closed = finding(&d, e, &actor, (t, "2026-12-06T10:00:00.000Z"), false);
        assert_eq!(closed.record_state(), Some(&RecordState::Archived));
        assert_eq!(
            closed.compliance().and_then(|c| c.status()),
            Some(&ComplianceStatus::Passed)
        );
        assert!(closed.remediation().is_none());
    }
}
