//! The template: embedded in the binary, its parameters checked and completed before any AWS
//! call, the resources a new stack would get, and what differs from a deployed stack. Pure.

use std::collections::BTreeMap;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use super::StackError;

/// The main template, embedded in the binary.
pub const TEMPLATE: &str = include_str!("../../../../templates/sgwatch.yaml");

/// How Config notifications reach the handler (`--source`, parameter `EventSource`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    #[default]
    Sns,
    Eventbridge,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Sns => "sns",
            Source::Eventbridge => "eventbridge",
        }
    }
}

/// Whether the actor feed's rule is deployed (`--actor-feed`, parameter `ActorFeed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl OnOff {
    pub fn as_str(self) -> &'static str {
        match self {
            OnOff::On => "on",
            OnOff::Off => "off",
        }
    }
}

/// The template's `Parameters` section: name → (default, allowed values).
fn declared_parameters() -> Result<BTreeMap<String, serde_yaml::Value>, StackError> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(TEMPLATE).map_err(|e| StackError::Template(e.to_string()))?;
    let params = doc
        .get("Parameters")
        .and_then(|p| p.as_mapping())
        .ok_or_else(|| StackError::Template("it has no Parameters section".into()))?;
    Ok(params
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.clone())))
        .collect())
}

/// A YAML scalar as CloudFormation reads a parameter value (`30` and `"30"` alike).
fn scalar(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Checks the parameters against the template before any AWS call and returns the complete set
/// CloudFormation will hold: every declared parameter, defaults filled in. Comparing complete sets
/// is what lets a re-run see that nothing changed.
pub fn complete_parameters(
    values: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, StackError> {
    let declared = declared_parameters()?;
    if let Some(name) = values.keys().find(|k| !declared.contains_key(*k)) {
        return Err(StackError::UnknownParameter { name: name.clone() });
    }
    let mut complete = BTreeMap::new();
    for (name, spec) in &declared {
        let value = match (values.get(name), spec.get("Default").and_then(scalar)) {
            (Some(v), _) => v.clone(),
            (None, Some(default)) => default,
            (None, None) => return Err(StackError::MissingParameter { name: name.clone() }),
        };
        if let Some(allowed) = spec.get("AllowedValues").and_then(|a| a.as_sequence()) {
            let allowed: Vec<String> = allowed.iter().filter_map(scalar).collect();
            if !allowed.contains(&value) {
                return Err(StackError::NotAllowed {
                    name: name.clone(),
                    value,
                    allowed: allowed.join(", "),
                });
            }
        }
        complete.insert(name.clone(), value);
    }
    Ok(complete)
}

/// The resources a new stack would get with `values` (complete parameters), in template order,
/// as (logical id, type). Conditions are evaluated for the forms the template uses (`Fn::Equals`
/// of parameters and literals, `Fn::Not`, `Fn::And`, `Fn::Or`, `Condition`); a resource whose
/// condition cannot be evaluated here is listed.
pub fn resources_to_create(
    values: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, StackError> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(TEMPLATE).map_err(|e| StackError::Template(e.to_string()))?;
    let conditions = doc.get("Conditions").cloned().unwrap_or_default();
    let resources = doc
        .get("Resources")
        .and_then(|r| r.as_mapping())
        .ok_or_else(|| StackError::Template("it has no Resources section".into()))?;
    let mut out = Vec::new();
    for (name, spec) in resources {
        let on = match spec.get("Condition").and_then(|c| c.as_str()) {
            None => true,
            Some(c) => condition(&conditions, c, values, 0).unwrap_or(true),
        };
        if on {
            out.push((
                name.as_str().unwrap_or("?").to_owned(),
                spec.get("Type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("?")
                    .to_owned(),
            ));
        }
    }
    Ok(out)
}

/// The value of the named condition, when it can be told from the parameters alone.
fn condition(
    conditions: &serde_yaml::Value,
    name: &str,
    values: &BTreeMap<String, String>,
    depth: usize,
) -> Option<bool> {
    // Conditions may refer to each other; a template cannot loop, but a bad one should not hang.
    if depth > 16 {
        return None;
    }
    evaluate(conditions.get(name)?, conditions, values, depth + 1)
}

fn evaluate(
    expr: &serde_yaml::Value,
    conditions: &serde_yaml::Value,
    values: &BTreeMap<String, String>,
    depth: usize,
) -> Option<bool> {
    let map = expr.as_mapping()?;
    let (function, args) = map.iter().next()?;
    let list = || args.as_sequence().cloned().unwrap_or_default();
    match function.as_str()? {
        "Fn::Equals" => {
            let operands: Vec<String> = list()
                .iter()
                .map(|v| operand(v, values))
                .collect::<Option<_>>()?;
            Some(operands.len() == 2 && operands[0] == operands[1])
        }
        "Fn::Not" => Some(!evaluate(list().first()?, conditions, values, depth)?),
        "Fn::And" => list()
            .iter()
            .map(|c| evaluate(c, conditions, values, depth))
            .collect::<Option<Vec<bool>>>()
            .map(|all| all.into_iter().all(|b| b)),
        "Fn::Or" => list()
            .iter()
            .map(|c| evaluate(c, conditions, values, depth))
            .collect::<Option<Vec<bool>>>()
            .map(|all| all.into_iter().any(|b| b)),
        "Condition" => condition(conditions, args.as_str()?, values, depth),
        _ => None,
    }
}

/// A literal, or `Ref: Parameter`.
fn operand(value: &serde_yaml::Value, values: &BTreeMap<String, String>) -> Option<String> {
    match value.get("Ref") {
        Some(r) => values.get(r.as_str()?).cloned(),
        None => scalar(value),
    }
}

/// What differs between the deployed stack (its template body and parameters) and what install
/// would deploy, one line each; empty when they are the same. Pure, so plan and install agree.
pub fn differences(
    deployed_template: &str,
    deployed: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    let normalise = |t: &str| t.replace("\r\n", "\n").trim().to_owned();
    if normalise(deployed_template) != normalise(TEMPLATE) {
        out.push(
            "template changed (this sgwatch carries a different templates/sgwatch.yaml)".into(),
        );
    }
    let names: std::collections::BTreeSet<&String> = deployed.keys().chain(wanted.keys()).collect();
    for name in names {
        match (deployed.get(name), wanted.get(name)) {
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => out.push(format!("parameter {name}: {a:?} → {b:?}")),
            (None, Some(b)) => out.push(format!("parameter {name}: (none) → {b:?}")),
            (Some(a), None) => out.push(format!("parameter {name}: {a:?} → (removed)")),
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> BTreeMap<String, String> {
        [
            ("Sender", "a@example.com"),
            ("SenderIdentity", "a@example.com"),
            ("ArtifactBucket", "b"),
            ("ArtifactKey", "k"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn parameters_are_checked_against_the_template() {
        complete_parameters(&good()).unwrap();
        let mut p = good();
        p.remove("Sender");
        assert!(complete_parameters(&p)
            .unwrap_err()
            .to_string()
            .contains("Sender is required"));
        let mut p = good();
        p.insert("Colour".into(), "blue".into());
        assert!(complete_parameters(&p)
            .unwrap_err()
            .to_string()
            .contains("not declared"));
        let mut p = good();
        p.insert("Architecture".into(), "sparc".into());
        assert!(complete_parameters(&p)
            .unwrap_err()
            .to_string()
            .contains("allowed values"));
    }

    #[test]
    fn a_new_stack_lists_the_resources_its_event_source_needs() {
        let mut values = complete_parameters(&good()).unwrap();
        let names = |v: &BTreeMap<String, String>| -> Vec<String> {
            resources_to_create(v)
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        let sns = names(&values);
        assert!(sns.contains(&"Function".to_owned()) && sns.contains(&"SnsPermission".to_owned()));
        assert!(!sns.contains(&"EventRule".to_owned()));
        values.insert("EventSource".into(), "eventbridge".into());
        let eventbridge = names(&values);
        assert!(eventbridge.contains(&"EventRule".to_owned()));
        assert!(!eventbridge.contains(&"SnsPermission".to_owned()));
    }

    #[test]
    fn defaults_complete_the_parameters_as_cloudformation_would() {
        let complete = complete_parameters(&good()).unwrap();
        assert_eq!(complete["LogRetentionDays"], "30"); // a YAML number
        assert_eq!(complete["EventSource"], "sns");
        assert_eq!(complete["FallbackRecipient"], "");
        assert_eq!(complete["Sender"], "a@example.com");
    }

    #[test]
    fn nothing_differs_when_template_and_parameters_are_the_same() {
        let wanted = complete_parameters(&good()).unwrap();
        assert!(differences(TEMPLATE, &wanted, &wanted).is_empty());
        // Line endings are not a change.
        assert!(differences(&TEMPLATE.replace('\n', "\r\n"), &wanted, &wanted).is_empty());
    }

    #[test]
    fn each_difference_is_one_line() {
        let deployed = complete_parameters(&good()).unwrap();
        let mut wanted = deployed.clone();
        wanted.insert("ArtifactKey".into(), "handler/new.zip".into());
        let lines = differences("AWSTemplateFormatVersion: 2010-09-09", &deployed, &wanted);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("template changed"));
        assert_eq!(
            lines[1],
            r#"parameter ArtifactKey: "k" → "handler/new.zip""#
        );
    }
}
