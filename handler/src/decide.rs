//! From a configuration item change to a decision: what changed, how dangerous it is, whether to
//! email and whom. Pure: no I/O, so the Lambda and `sgwatch explain` decide byte for byte alike.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::message::{ConfigurationItem, ItemChange};
use crate::recipients::parse_owner_tag;
use crate::render::one_line;
use crate::rules::{diff, Change, Direction, RuleSet};
use crate::settings::Policy;
use crate::severity::{classify, overall, Severity};

/// A non-rule property that changed, e.g. the description or a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyChange {
    pub name: String,
    pub previous: Option<String>,
    pub updated: Option<String>,
}

/// The group and the moment, as far as the notification tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub resource_type: String,
    pub resource_id: String,
    pub name: Option<String>,
    pub account: String,
    pub region: String,
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub change_type: String,
    pub capture_time: Option<String>,
    /// `configurationStateId`, the identity of this configuration state.
    pub state_id: Option<String>,
}

/// What changed, independent of who is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub subject: Subject,
    /// Most severe first.
    pub changes: Vec<Change>,
    pub properties: Vec<PropertyChange>,
    pub severity: Severity,
    /// Only `Relationships.*` changed (an instance or ENI attached or detached).
    pub relationship_only: bool,
    /// The tags that decide: the current ones, or the last known ones of a deleted group.
    pub tags: BTreeMap<String, String>,
    /// A test notification sent by `sgwatch test-event`.
    pub test: bool,
}

/// Whether to email, whom, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub analysis: Analysis,
    pub notify: bool,
    pub reason: String,
    pub recipients: Vec<String>,
}

/// A notification sgwatch cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the changes of {resource_id}: {detail}")]
pub struct AnalysisError {
    pub resource_id: String,
    pub detail: String,
}

/// Works out what changed in one configuration item change.
pub fn analyze(change: &ItemChange) -> Result<Analysis, AnalysisError> {
    let item = &change.configuration_item;
    let error = |detail: String| AnalysisError {
        resource_id: item.resource_id.clone(),
        detail,
    };
    let diff_type = change
        .configuration_item_diff
        .as_ref()
        .and_then(|d| d.change_type.clone());
    let change_type = diff_type.unwrap_or_else(|| inferred_change_type(item).to_owned());

    let mut previous = RuleSet::default();
    let mut updated = RuleSet::default();
    let mut properties = Vec::new();
    let mut relationship_changes = 0usize;
    let mut previous_configuration: Option<&Value> = None;
    let changed = change
        .configuration_item_diff
        .as_ref()
        .map(|d| &d.changed_properties);

    for (key, prop) in changed.into_iter().flatten() {
        match PropertyKind::of(key) {
            PropertyKind::WholeConfiguration => {
                previous
                    .add_configuration(&prop.previous_value)
                    .map_err(error)?;
                updated
                    .add_configuration(&prop.updated_value)
                    .map_err(error)?;
                if !prop.previous_value.is_null() {
                    previous_configuration = Some(&prop.previous_value);
                }
            }
            PropertyKind::Rules(direction) => {
                previous
                    .add_value(direction, &prop.previous_value)
                    .map_err(error)?;
                updated
                    .add_value(direction, &prop.updated_value)
                    .map_err(error)?;
            }
            PropertyKind::Relationship => {
                relationship_changes += 1;
                push_property(
                    &mut properties,
                    key,
                    &prop.previous_value,
                    &prop.updated_value,
                );
            }
            PropertyKind::Other(name) => {
                push_property(
                    &mut properties,
                    name,
                    &prop.previous_value,
                    &prop.updated_value,
                );
            }
        }
    }
    // A new group arrives with no changed properties: everything in it was added.
    let nothing_listed = changed.is_none_or(|c| c.is_empty());
    if change_type == "CREATE" && nothing_listed {
        if let Some(configuration) = &item.configuration {
            updated.add_configuration(configuration).map_err(error)?;
        }
    }

    let rule_diff = diff(&previous, &updated);
    for d in &rule_diff.descriptions {
        properties.push(PropertyChange {
            name: format!("Rule description ({})", d.rule),
            previous: d.previous.clone(),
            updated: d.rule.description.clone(),
        });
    }
    let mut changes = rule_diff.changes;
    changes.sort_by_key(|c| Reverse(classify(c)));
    let severity = overall(&changes);
    let relationship_only =
        changes.is_empty() && relationship_changes > 0 && relationship_changes == properties.len();

    Ok(Analysis {
        subject: Subject {
            resource_type: item.resource_type.clone(),
            resource_id: item.resource_id.clone(),
            name: group_name(item, previous_configuration),
            account: item.aws_account_id.clone(),
            region: item.aws_region.clone(),
            change_type,
            capture_time: item.configuration_item_capture_time.clone(),
            state_id: item.configuration_state_id.as_ref().map(value_text),
        },
        changes,
        properties,
        severity,
        relationship_only,
        tags: deciding_tags(item, previous_configuration),
        test: change.test,
    })
}

/// Decides who, if anyone, is told about an analysed change.
pub fn decide(analysis: Analysis, policy: &Policy) -> Decision {
    let verdict =
        |notify: bool, reason: String, recipients: Vec<String>| (notify, reason, recipients);
    let a = &analysis;
    let (notify, reason, recipients) = if !policy.resource_types.contains(&a.subject.resource_type)
    {
        verdict(
            false,
            format!(
                "resource type {} is not watched (watched: {})",
                a.subject.resource_type,
                policy.resource_types.join(", ")
            ),
            vec![],
        )
    } else if a.relationship_only && !policy.notify_on_relationship_changes {
        verdict(
            false,
            "only relationships changed (an instance or network interface attached or detached) \
             and notify_on_relationship_changes is off"
                .to_owned(),
            vec![],
        )
    } else if a.changes.is_empty() && a.properties.is_empty() && a.subject.change_type == "UPDATE" {
        verdict(
            false,
            "the notification carries no change".to_owned(),
            vec![],
        )
    } else {
        route(a, policy)
    };
    Decision {
        analysis,
        notify,
        reason,
        recipients,
    }
}

/// The tag-based routing of a change to a watched resource.
fn route(a: &Analysis, policy: &Policy) -> (bool, String, Vec<String>) {
    let notify_tag = &policy.notify_tag;
    let owner_tag = &policy.owner_tag;
    let always = policy
        .always_notify_at
        .filter(|level| a.severity >= *level)
        .and(policy.fallback_recipient.as_ref());
    let always_note = |level: Option<Severity>| {
        format!(
            "severity {} is at or above always_notify_at ({}): the fallback recipient is told",
            a.severity,
            level.map(Severity::as_str).unwrap_or_default()
        )
    };

    let opted_in = match a.tags.get(notify_tag) {
        Some(v)
            if v.trim().eq_ignore_ascii_case("yes") || v.trim().eq_ignore_ascii_case("true") =>
        {
            Ok(v)
        }
        Some(v) => Err(format!(
            "tag {notify_tag}={} is not Yes or true",
            one_line(v)
        )),
        None => Err(format!("tag {notify_tag} is absent")),
    };
    match opted_in {
        Ok(value) => {
            let owners = parse_owner_tag(a.tags.get(owner_tag).map(String::as_str).unwrap_or(""));
            let mut reason = format!("tag {notify_tag}={}; ", one_line(value));
            let mut recipients = owners.valid.clone();
            if recipients.is_empty() {
                let why = if a.tags.contains_key(owner_tag) {
                    format!(
                        "tag {owner_tag} has no valid address ({})",
                        owners.rejected_summary()
                    )
                } else {
                    format!("tag {owner_tag} is absent")
                };
                match &policy.fallback_recipient {
                    Some(fallback) => {
                        reason.push_str(&format!("{why}; sent to the fallback recipient"));
                        recipients.push(fallback.clone());
                    }
                    None => {
                        reason.push_str(&format!("{why} and no fallback recipient is set"));
                        return (false, reason, vec![]);
                    }
                }
            } else {
                reason.push_str(&format!("recipients from tag {owner_tag}"));
                if !owners.rejected.is_empty() {
                    reason.push_str(&format!("; dropped {}", owners.rejected_summary()));
                }
            }
            if let Some(fallback) = always {
                if !recipients.iter().any(|r| r.eq_ignore_ascii_case(fallback)) {
                    recipients.push(fallback.clone());
                    reason.push_str(&format!("; {}", always_note(policy.always_notify_at)));
                }
            }
            (true, reason, recipients)
        }
        Err(why) => match always {
            Some(fallback) => (
                true,
                format!("{why}; {}", always_note(policy.always_notify_at)),
                vec![fallback.clone()],
            ),
            None => (false, why, vec![]),
        },
    }
}

enum PropertyKind<'a> {
    /// `Configuration`: the whole group (created or deleted).
    WholeConfiguration,
    /// `Configuration.IpPermissions[.N]` or `Configuration.IpPermissionsEgress[.N]`.
    Rules(Direction),
    /// `Relationships.N`.
    Relationship,
    /// Anything else, named without the `Configuration.` prefix.
    Other(&'a str),
}

impl<'a> PropertyKind<'a> {
    fn of(key: &'a str) -> PropertyKind<'a> {
        if key == "Configuration" {
            return PropertyKind::WholeConfiguration;
        }
        if key.starts_with("Relationships") {
            return PropertyKind::Relationship;
        }
        let rest = key.strip_prefix("Configuration.").unwrap_or(key);
        let mut parts = rest.split('.');
        let head = parts.next().unwrap_or_default();
        let index_ok = match (parts.next(), parts.next()) {
            (None, _) => true,
            (Some(i), None) => i.parse::<usize>().is_ok(),
            _ => false,
        };
        match head {
            "IpPermissions" if index_ok => PropertyKind::Rules(Direction::Ingress),
            "IpPermissionsEgress" if index_ok => PropertyKind::Rules(Direction::Egress),
            _ => PropertyKind::Other(rest),
        }
    }
}

fn push_property(out: &mut Vec<PropertyChange>, name: &str, previous: &Value, updated: &Value) {
    if previous == updated {
        return;
    }
    let text = |v: &Value| (!v.is_null()).then(|| value_text(v));
    out.push(PropertyChange {
        name: name.to_owned(),
        previous: text(previous),
        updated: text(updated),
    });
}

/// A property value as a person reads it: strings as they are, tags as `key=value`,
/// relationships as `type id`, anything else as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(o) => match (o.get("key"), o.get("value"), o.get("resourceId")) {
            (Some(Value::String(k)), Some(v), _) => format!("{k}={}", value_text(v)),
            (_, _, Some(Value::String(id))) => {
                match o.get("resourceType").and_then(Value::as_str) {
                    Some(t) => format!("{t} {id}"),
                    None => id.clone(),
                }
            }
            _ => value.to_string(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn inferred_change_type(item: &ConfigurationItem) -> &'static str {
    match item.configuration_item_status.as_deref() {
        Some("ResourceDiscovered") => "CREATE",
        _ if item.is_deleted() => "DELETE",
        _ => "UPDATE",
    }
}

fn group_name(item: &ConfigurationItem, previous: Option<&Value>) -> Option<String> {
    let from = |v: Option<&Value>| {
        v.and_then(|c| c.get("groupName"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    item.resource_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| from(item.configuration.as_ref()))
        .or_else(|| from(previous))
}

/// The current tags; for a deleted group (whose tags arrive empty), the last known ones.
fn deciding_tags(item: &ConfigurationItem, previous: Option<&Value>) -> BTreeMap<String, String> {
    if !item.tags.is_empty() {
        return item.tags.clone();
    }
    let from_list = |configuration: Option<&Value>| -> BTreeMap<String, String> {
        configuration
            .and_then(|c| c.get("tags"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let key = t.get("key")?.as_str()?;
                let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
                Some((key.to_owned(), value.to_owned()))
            })
            .collect()
    };
    let current = from_list(item.configuration.as_ref());
    if current.is_empty() {
        from_list(previous)
    } else {
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse_message, ConfigMessage};
    use serde_json::json;

    pub(crate) fn item_change(v: Value) -> ItemChange {
        match parse_message(&v).unwrap() {
            ConfigMessage::ItemChange(c) => c,
            other => panic!("not an item change: {other:?}"),
        }
    }

    fn fixture() -> Value {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Sets the tags in both places AWS Config reports them.
    fn with_tags(mut v: Value, tags: Value) -> Value {
        let list: Vec<Value> = tags
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        v["configurationItem"]["configuration"]["tags"] = Value::Array(list);
        v["configurationItem"]["tags"] = tags;
        v
    }

    fn decide_json(v: Value, policy: &Policy) -> Decision {
        decide(analyze(&item_change(v)).unwrap(), policy)
    }

    #[test]
    fn rdp_opened_notifies_the_owner_at_critical() {
        let d = decide_json(fixture(), &Policy::default());
        assert!(d.notify);
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert_eq!(
            d.reason,
            "tag NotifyOnChange=Yes; recipients from tag OwnerDL"
        );
        assert_eq!(d.analysis.severity, Severity::Critical);
        assert_eq!(d.analysis.changes.len(), 1);
        assert_eq!(
            d.analysis.changes[0].rule.to_string(),
            "ingress tcp/3389 from 0.0.0.0/0"
        );
        assert_eq!(d.analysis.subject.name.as_deref(), Some("shared-http"));
        assert_eq!(d.analysis.subject.change_type, "UPDATE");
        assert_eq!(
            d.analysis.subject.state_id.as_deref(),
            Some("1763629447512")
        );
    }

    #[test]
    fn opt_in_accepts_yes_and_true_in_any_case_and_nothing_else() {
        for (value, notify) in [
            ("Yes", true),
            ("yes", true),
            ("TRUE", true),
            (" true ", true),
            ("No", false),
            ("1", false),
            ("", false),
        ] {
            let v = with_tags(
                fixture(),
                json!({"NotifyOnChange": value, "OwnerDL": "a@corp.example"}),
            );
            assert_eq!(
                decide_json(v, &Policy::default()).notify,
                notify,
                "{value:?}"
            );
        }
        let d = decide_json(with_tags(fixture(), json!({})), &Policy::default());
        assert!(!d.notify);
        assert_eq!(d.reason, "tag NotifyOnChange is absent");
    }

    #[test]
    fn tag_keys_are_settings() {
        let policy = Policy {
            notify_tag: "sg:notify".into(),
            owner_tag: "sg:owners".into(),
            ..Policy::default()
        };
        let v = with_tags(
            fixture(),
            json!({"sg:notify": "yes", "sg:owners": "x@corp.example y@corp.example"}),
        );
        let d = decide_json(v, &policy);
        assert!(d.notify);
        assert_eq!(d.recipients, ["x@corp.example", "y@corp.example"]);
        assert!(
            !decide_json(fixture(), &policy).notify,
            "default tags no longer count"
        );
    }

    #[test]
    fn no_valid_owner_goes_to_fallback_or_nowhere() {
        let v = with_tags(
            fixture(),
            json!({"NotifyOnChange": "Yes", "OwnerDL": "nobody\r\nBcc: x@evil.example"}),
        );
        let d = decide_json(v.clone(), &Policy::default());
        assert!(!d.notify);
        assert!(
            d.reason.contains("no valid address") && d.reason.contains("no fallback"),
            "{}",
            d.reason
        );
        let policy = Policy {
            fallback_recipient: Some("secops@corp.example".into()),
            ..Policy::default()
        };
        let d = decide_json(v, &policy);
        assert!(d.notify);
        assert_eq!(d.recipients, ["secops@corp.example"]);
        assert!(
            d.reason.contains("sent to the fallback recipient"),
            "{}",
            d.reason
        );
        let d = decide_json(
            with_tags(fixture(), json!({"NotifyOnChange": "Yes"})),
            &policy,
        );
        assert!(d.reason.contains("tag OwnerDL is absent"), "{}", d.reason);
    }

    #[test]
    fn always_notify_at_reaches_the_fallback_for_untagged_groups() {
        let policy = Policy {
            fallback_recipient: Some("secops@corp.example".into()),
            always_notify_at: Some(Severity::High),
            ..Policy::default()
        };
        let untagged = with_tags(fixture(), json!({}));
        let d = decide_json(untagged.clone(), &policy);
        assert!(d.notify);
        assert_eq!(d.recipients, ["secops@corp.example"]);
        assert!(d.reason.contains("always_notify_at (high)"), "{}", d.reason);
        // Tagged groups: owners and the fallback.
        let d = decide_json(fixture(), &policy);
        assert_eq!(
            d.recipients,
            ["platform-team@example.com", "secops@corp.example"]
        );
        // Below the threshold: nothing for untagged groups.
        let policy = Policy {
            always_notify_at: Some(Severity::Critical),
            ..policy
        };
        let mut low = untagged;
        low["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["fromPort"] = json!(80);
        low["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["toPort"] = json!(80);
        assert!(!decide_json(low, &policy).notify);
    }

    #[test]
    fn unwatched_types_are_ignored() {
        let mut v = fixture();
        v["configurationItem"]["resourceType"] = json!("AWS::EC2::Instance");
        let d = decide_json(v.clone(), &Policy::default());
        assert!(!d.notify);
        assert!(d.reason.contains("is not watched"));
        let policy = Policy {
            resource_types: vec![
                "AWS::EC2::SecurityGroup".into(),
                "AWS::EC2::Instance".into(),
            ],
            ..Policy::default()
        };
        assert!(decide_json(v, &policy).notify);
    }

    fn relationship_only() -> Value {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Relationships.1": {
                "previousValue": null,
                "updatedValue": {"resourceId": "eni-0abc", "resourceName": null, "resourceType": "AWS::EC2::NetworkInterface", "name": "Is associated with NetworkInterface"},
                "changeType": "CREATE"
            }
        });
        v
    }

    #[test]
    fn relationship_only_changes_notify_only_when_asked() {
        let d = decide_json(relationship_only(), &Policy::default());
        assert!(!d.notify);
        assert!(d.reason.contains("only relationships changed"));
        let policy = Policy {
            notify_on_relationship_changes: true,
            ..Policy::default()
        };
        let d = decide_json(relationship_only(), &policy);
        assert!(d.notify);
        assert_eq!(d.analysis.severity, Severity::Info);
        assert_eq!(
            d.analysis.properties[0].updated.as_deref(),
            Some("AWS::EC2::NetworkInterface eni-0abc")
        );
    }

    #[test]
    fn index_shifts_report_only_the_removed_rule() {
        let r = |port: i64, cidr: &str| json!({"ipProtocol": "tcp", "fromPort": port, "toPort": port, "ipv4Ranges": [{"cidrIp": cidr}], "ipRanges": [cidr]});
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.IpPermissions.0": {"previousValue": r(22, "0.0.0.0/0"), "updatedValue": r(80, "0.0.0.0/0"), "changeType": "UPDATE"},
            "Configuration.IpPermissions.1": {"previousValue": r(80, "0.0.0.0/0"), "updatedValue": r(443, "0.0.0.0/0"), "changeType": "UPDATE"},
            "Configuration.IpPermissions.2": {"previousValue": r(443, "0.0.0.0/0"), "updatedValue": r(5432, "10.0.0.0/8"), "changeType": "UPDATE"},
            "Configuration.IpPermissions.3": {"previousValue": r(5432, "10.0.0.0/8"), "updatedValue": null, "changeType": "DELETE"},
        });
        let d = decide_json(v, &Policy::default());
        assert_eq!(d.analysis.changes.len(), 1);
        assert_eq!(
            d.analysis.changes[0].rule.to_string(),
            "ingress tcp/22 from 0.0.0.0/0"
        );
        assert_eq!(d.analysis.severity, Severity::Low, "removals are low");
    }

    #[test]
    fn non_rule_properties_are_reported_by_name_at_info() {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.Description": {"previousValue": "old", "updatedValue": "new", "changeType": "UPDATE"},
            "Configuration.Tags.2": {"previousValue": null, "updatedValue": {"key": "Env", "value": "prod"}, "changeType": "CREATE"},
        });
        let d = decide_json(v, &Policy::default());
        assert!(d.notify);
        assert_eq!(d.analysis.severity, Severity::Info);
        let names: Vec<(&str, Option<&str>, Option<&str>)> = d
            .analysis
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.previous.as_deref(), p.updated.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("Description", Some("old"), Some("new")),
                ("Tags.2", None, Some("Env=prod"))
            ]
        );
    }

    #[test]
    fn created_group_reports_all_its_rules_as_added() {
        let mut v = fixture();
        v["configurationItem"]["configurationItemStatus"] = json!("ResourceDiscovered");
        v["configurationItemDiff"] = json!({"changedProperties": {}, "changeType": "CREATE"});
        let d = decide_json(v, &Policy::default());
        assert_eq!(d.analysis.subject.change_type, "CREATE");
        let shown: Vec<String> = d
            .analysis
            .changes
            .iter()
            .map(|c| c.rule.to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "ingress tcp/3389 from 0.0.0.0/0",
                "ingress tcp/80 from 0.0.0.0/0",
                "egress all to 0.0.0.0/0"
            ]
        );
        assert_eq!(d.analysis.severity, Severity::Critical);
        assert!(d.notify);
    }

    #[test]
    fn deleted_group_uses_the_tags_of_its_last_state() {
        let mut v = fixture();
        let last = v["configurationItem"]["configuration"].take();
        v["configurationItem"]["configuration"] = Value::Null;
        v["configurationItem"]["tags"] = json!({});
        v["configurationItem"]["configurationItemStatus"] = json!("ResourceDeleted");
        v["configurationItemDiff"] = json!({
            "changedProperties": {"Configuration": {"previousValue": last, "updatedValue": null, "changeType": "DELETE"}},
            "changeType": "DELETE"
        });
        let d = decide_json(v, &Policy::default());
        assert!(d.notify, "{}", d.reason);
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert_eq!(d.analysis.subject.change_type, "DELETE");
        assert_eq!(d.analysis.changes.len(), 3);
        assert!(d
            .analysis
            .changes
            .iter()
            .all(|c| c.action == crate::rules::Action::Removed));
        assert_eq!(d.analysis.severity, Severity::Low);
        assert!(d.analysis.properties.is_empty());
    }

    #[test]
    fn empty_update_is_not_worth_an_email() {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({});
        let d = decide_json(v, &Policy::default());
        assert!(!d.notify);
        assert_eq!(d.reason, "the notification carries no change");
    }

    #[test]
    fn mistyped_rule_is_an_analysis_error() {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["ipv4Ranges"] = json!("0.0.0.0/0");
        let err = analyze(&item_change(v)).unwrap_err();
        assert!(err.to_string().contains("sg-0123456789abcdef0"), "{err}");
    }
}
