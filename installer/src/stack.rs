//! The CloudFormation stack: the embedded template, its parameters, deploying through a change
//! set with the stack's events shown as they happen, and reading its outputs.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::error::DisplayErrorContext;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetType, Parameter, Stack, StackStatus, Tag,
};
use aws_sdk_cloudformation::Client;
use sha2::{Digest, Sha256};

use crate::aws::Place;

/// The main template, embedded in the binary.
pub const TEMPLATE: &str = include_str!("../../templates/sgwatch.yaml");

/// Tag on the stack holding the fingerprint of template + parameters: equal means nothing to do.
pub const FINGERPRINT_TAG: &str = "sgwatch:fingerprint";

/// Checks the parameters against the template before any AWS call: every one is declared and
/// every declared one without a default is given.
pub fn check_parameters(values: &BTreeMap<String, String>) -> Result<()> {
    let doc: serde_yaml::Value = serde_yaml::from_str(TEMPLATE)?;
    let declared = doc
        .get("Parameters")
        .and_then(|p| p.as_mapping())
        .context("no Parameters")?;
    for name in values.keys() {
        if !declared.contains_key(name.as_str()) {
            bail!("parameter {name} is not declared by templates/sgwatch.yaml");
        }
    }
    for (name, spec) in declared {
        let name = name.as_str().unwrap_or_default();
        let allowed = spec.get("AllowedValues").and_then(|a| a.as_sequence());
        match values.get(name) {
            None if spec.get("Default").is_none() => {
                bail!("parameter {name} is required by the template")
            }
            Some(v) => {
                if let Some(allowed) = allowed {
                    if !allowed.iter().any(|a| {
                        a.as_str() == Some(v.as_str())
                            || a.as_u64().map(|n| n.to_string()).as_deref() == Some(v)
                    }) {
                        bail!("parameter {name}={v:?} is not one of the template's allowed values");
                    }
                }
            }
            None => {}
        }
    }
    Ok(())
}

/// The fingerprint of what would be deployed.
pub fn fingerprint(values: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    h.update(TEMPLATE.as_bytes());
    for (k, v) in values {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// The deployed stack, if any (a deleted stack counts as none).
pub async fn describe(cf: &Client, name: &str) -> Result<Option<Stack>> {
    match cf.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))
            .cloned()),
        Err(e) => {
            let text = DisplayErrorContext(&e).to_string();
            if text.contains("does not exist") {
                Ok(None)
            } else {
                Err(anyhow::anyhow!(text)).context(format!("cannot describe stack {name}"))
            }
        }
    }
}

/// The stack's outputs by name.
pub fn outputs(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect()
}

/// The stack's outputs, completed from its resources where the service did not report them
/// (some emulators drop the outputs of stacks made from change sets).
pub async fn resolved_outputs(
    cf: &Client,
    name: &str,
    stack: &Stack,
    place: &Place,
) -> Result<BTreeMap<String, String>> {
    let mut out = outputs(stack);
    if out.contains_key("FunctionArn") && out.contains_key("ConfigRoleArn") {
        return Ok(out);
    }
    let resources = cf
        .list_stack_resources()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot list the resources of stack {name} ({place})"))?;
    let (account, region) = (&place.account, &place.region);
    for r in resources.stack_resource_summaries() {
        let (Some(logical), Some(physical)) = (r.logical_resource_id(), r.physical_resource_id())
        else {
            continue;
        };
        let mut set = |k: &str, v: String| {
            out.entry(k.to_owned()).or_insert(v);
        };
        match logical {
            "Topic" => set("TopicArn", physical.to_owned()),
            "ConfigBucket" => set("ConfigBucketName", physical.to_owned()),
            "ConfigRole" => set(
                "ConfigRoleArn",
                format!("arn:aws:iam::{account}:role/{physical}"),
            ),
            "HandlerRole" => set(
                "HandlerRoleArn",
                format!("arn:aws:iam::{account}:role/{physical}"),
            ),
            "Function" => {
                set("FunctionName", physical.to_owned());
                set(
                    "FunctionArn",
                    format!("arn:aws:lambda:{region}:{account}:function:{physical}"),
                );
            }
            "FailureQueue" => {
                set("FailureQueueUrl", physical.to_owned());
                let queue = physical.rsplit('/').next().unwrap_or(physical);
                set(
                    "FailureQueueArn",
                    format!("arn:aws:sqs:{region}:{account}:{queue}"),
                );
            }
            "IdempotencyTable" => set("IdempotencyTableName", physical.to_owned()),
            "LogGroup" => set("LogGroupName", physical.to_owned()),
            _ => {}
        }
    }
    Ok(out)
}

/// The fingerprint tag of a deployed stack.
pub fn deployed_fingerprint(stack: &Stack) -> Option<String> {
    stack
        .tags()
        .iter()
        .find(|t| t.key() == Some(FINGERPRINT_TAG))
        .and_then(|t| t.value().map(str::to_owned))
}

/// A change the change set would make, as one line.
pub type ChangeLine = String;

/// Creates a change set and returns it with its change lines; the caller executes or deletes it.
pub async fn create_change_set(
    cf: &Client,
    name: &str,
    values: &BTreeMap<String, String>,
    exists: bool,
) -> Result<(String, Vec<ChangeLine>)> {
    let change_set = format!(
        "sgwatch-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
    let params: Vec<Parameter> = values
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let out = cf
        .create_change_set()
        .stack_name(name)
        .change_set_name(&change_set)
        .change_set_type(if exists {
            ChangeSetType::Update
        } else {
            ChangeSetType::Create
        })
        .template_body(TEMPLATE)
        .set_parameters(Some(params))
        .capabilities(Capability::CapabilityIam)
        .capabilities(Capability::CapabilityNamedIam)
        .tags(
            Tag::builder()
                .key(FINGERPRINT_TAG)
                .value(fingerprint(values))
                .build(),
        )
        .tags(Tag::builder().key("sgwatch:managed").value("true").build())
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot create a change set for stack {name}"))?;
    let id = out.id().unwrap_or(&change_set).to_owned();
    // Wait until the change set is computed.
    let mut lines = Vec::new();
    for _ in 0..300 {
        let d = cf
            .describe_change_set()
            .change_set_name(&id)
            .stack_name(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| format!("cannot describe change set {change_set} of stack {name}"))?;
        let status = d
            .status()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default();
        if status == "CREATE_COMPLETE" || status == "FAILED" {
            if status == "FAILED" {
                let reason = d.status_reason().unwrap_or_default();
                if !reason.contains("didn't contain changes") && !reason.contains("No updates") {
                    bail!("the change set for stack {name} failed: {reason}");
                }
            }
            for c in d.changes() {
                if let Some(rc) = c.resource_change() {
                    lines.push(format!(
                        "{} {} ({})",
                        rc.action().map(|a| a.as_str()).unwrap_or("?"),
                        rc.logical_resource_id().unwrap_or("?"),
                        rc.resource_type().unwrap_or("?")
                    ));
                }
            }
            return Ok((id, lines));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("the change set for stack {name} was not ready after 150 s")
}

/// Executes a change set and follows the stack's events until it settles.
pub async fn execute(
    cf: &Client,
    name: &str,
    change_set: &str,
    place: &Place,
    progress: bool,
) -> Result<Stack> {
    let started = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    cf.execute_change_set()
        .change_set_name(change_set)
        .stack_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot execute the change set of stack {name} ({place})"))?;
    follow(cf, name, started, place, progress).await
}

/// Prints stack events as they happen until the stack reaches a settled status.
pub async fn follow(
    cf: &Client,
    name: &str,
    since: aws_smithy_types::DateTime,
    place: &Place,
    progress: bool,
) -> Result<Stack> {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1800 {
        if let Ok(ev) = cf.describe_stack_events().stack_name(name).send().await {
            let mut fresh: Vec<_> = ev
                .stack_events()
                .iter()
                .filter(|e| e.timestamp().is_some_and(|t| t.secs() >= since.secs()))
                .filter(|e| seen.insert(e.event_id().unwrap_or_default().to_owned()))
                .collect();
            fresh.reverse();
            for e in fresh {
                if progress {
                    eprintln!(
                        "  {:<22} {:<34} {}{}",
                        e.resource_status().map(|s| s.as_str()).unwrap_or(""),
                        e.logical_resource_id().unwrap_or(""),
                        e.resource_type().unwrap_or(""),
                        e.resource_status_reason()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    );
                }
            }
        }
        match describe(cf, name).await? {
            None => bail!("stack {name} disappeared ({place})"),
            Some(stack) => {
                let status = stack.stack_status().map(|s| s.as_str()).unwrap_or("");
                if status.ends_with("_IN_PROGRESS") {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                if status == "CREATE_COMPLETE" || status == "UPDATE_COMPLETE" {
                    return Ok(stack);
                }
                bail!(
                    "stack {name} ended in {status} ({place}): {}; see the events above, fix the cause and run install again",
                    stack.stack_status_reason().unwrap_or("no reason given")
                );
            }
        }
    }
    bail!("stack {name} did not settle within 30 minutes ({place})")
}

/// Deletes the stack and waits until it is gone. A stack that does not exist is success.
pub async fn delete(cf: &Client, name: &str, place: &Place, progress: bool) -> Result<bool> {
    if describe(cf, name).await?.is_none() {
        return Ok(false);
    }
    let since = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    cf.delete_stack()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot delete stack {name} ({place})"))?;
    for _ in 0..1800 {
        match describe(cf, name).await? {
            None => return Ok(true),
            Some(s) => {
                let status = s.stack_status().map(|s| s.as_str()).unwrap_or("");
                if status == "DELETE_FAILED" {
                    bail!(
                        "stack {name} could not be deleted ({place}): {}",
                        s.stack_status_reason().unwrap_or("")
                    );
                }
                if progress {
                    let _ = since;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    bail!("stack {name} was not deleted within 30 minutes ({place})")
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
        check_parameters(&good()).unwrap();
        let mut p = good();
        p.remove("Sender");
        assert!(check_parameters(&p)
            .unwrap_err()
            .to_string()
            .contains("Sender is required"));
        let mut p = good();
        p.insert("Colour".into(), "blue".into());
        assert!(check_parameters(&p)
            .unwrap_err()
            .to_string()
            .contains("not declared"));
        let mut p = good();
        p.insert("Architecture".into(), "sparc".into());
        assert!(check_parameters(&p)
            .unwrap_err()
            .to_string()
            .contains("allowed values"));
    }

    #[test]
    fn fingerprint_changes_with_any_parameter() {
        let mut p = good();
        let a = fingerprint(&p);
        assert_eq!(a, fingerprint(&good()));
        p.insert("ArtifactKey".into(), "other".into());
        assert_ne!(a, fingerprint(&p));
    }
}
