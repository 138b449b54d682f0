//! The CloudFormation stack: the embedded template and its parameters, what differs from the
//! deployed stack (template body and parameters, compared before any change set exists), deploying
//! through a change set with the stack's events shown as they happen, and deleting it.
//!
//! Waiting is done by the SDK's waiters; the events are polled beside them only to be shown.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, Stack, StackStatus, Tag, TemplateStage,
};
use aws_sdk_cloudformation::Client;
use aws_smithy_types::DateTime;

use crate::aws::Place;

/// The main template, embedded in the binary.
pub const TEMPLATE: &str = include_str!("../../../templates/sgwatch.yaml");

/// The tag every sgwatch stack carries (CloudFormation copies it onto the resources it tags).
const MANAGED_TAG: (&str, &str) = ("sgwatch:managed", "true");

/// How long a change set may take to be computed, and a stack to be created, updated or deleted.
const CHANGE_SET_WAIT: Duration = Duration::from_secs(10 * 60);
const STACK_WAIT: Duration = Duration::from_secs(60 * 60);
/// How often the stack's events are fetched to be shown while a waiter waits.
const EVENT_POLL: Duration = Duration::from_secs(2);

/// What went wrong with the stack; each variant names the stack, account and region.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("templates/sgwatch.yaml (embedded) cannot be read: {0}")]
    Template(String),
    #[error("parameter {name} is not declared by templates/sgwatch.yaml")]
    UnknownParameter { name: String },
    #[error("parameter {name} is required by templates/sgwatch.yaml")]
    MissingParameter { name: String },
    #[error("parameter {name}={value:?} is not one of the template's allowed values ({allowed})")]
    NotAllowed {
        name: String,
        value: String,
        allowed: String,
    },
    #[error("{action} stack {stack} in {place} failed: {detail}")]
    Aws {
        action: &'static str,
        stack: String,
        place: Place,
        detail: String,
    },
    #[error(
        "stack {stack} in {place} is {status}: another operation is under way; wait for it to \
         finish (aws cloudformation describe-stack-events --stack-name {stack}), then run this again"
    )]
    Busy {
        stack: String,
        place: Place,
        status: String,
    },
    #[error(
        "stack {stack} in {place} ended {status}{reason}. The events above name the resource that \
         failed; fix the cause and run this again"
    )]
    Failed {
        stack: String,
        place: Place,
        status: String,
        reason: String,
    },
    #[error("the change set for stack {stack} in {place} failed: {reason}")]
    ChangeSetFailed {
        stack: String,
        place: Place,
        reason: String,
    },
    #[error(
        "stack {stack} in {place} did not finish within {minutes} min; it may still: \
         aws cloudformation describe-stacks --stack-name {stack}"
    )]
    Timeout {
        stack: String,
        place: Place,
        minutes: u64,
    },
}

fn aws_error<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug + 'static>(
    action: &'static str,
    stack: &str,
    place: &Place,
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> StackError {
    StackError::Aws {
        action,
        stack: stack.to_owned(),
        place: place.clone(),
        detail: crate::aws::error_text(err),
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

/// The parameters a deployed stack holds.
pub fn deployed_parameters(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .parameters()
        .iter()
        .filter_map(|p| {
            Some((
                p.parameter_key()?.to_owned(),
                p.parameter_value().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
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

/// Whether CloudFormation is working on the stack (an `*_IN_PROGRESS` status).
pub fn in_progress(status: &StackStatus) -> bool {
    use StackStatus as S;
    matches!(
        status,
        S::CreateInProgress
            | S::DeleteInProgress
            | S::ImportInProgress
            | S::ImportRollbackInProgress
            | S::ReviewInProgress
            | S::RollbackInProgress
            | S::UpdateCompleteCleanupInProgress
            | S::UpdateInProgress
            | S::UpdateRollbackCompleteCleanupInProgress
            | S::UpdateRollbackInProgress
    )
}

/// Whether an update of the stack (or its rollback) is under way.
fn updating(status: &StackStatus) -> bool {
    use StackStatus as S;
    matches!(
        status,
        S::UpdateCompleteCleanupInProgress
            | S::UpdateInProgress
            | S::UpdateRollbackCompleteCleanupInProgress
            | S::UpdateRollbackInProgress
    )
}

/// Whether a stack in this status can take a change set (and be compared with what we want).
pub fn is_settled(status: &StackStatus) -> bool {
    matches!(
        status,
        StackStatus::CreateComplete
            | StackStatus::UpdateComplete
            | StackStatus::UpdateRollbackComplete
            | StackStatus::ImportComplete
            | StackStatus::ImportRollbackComplete
    )
}

/// The deployed stack, if any (a deleted stack counts as none).
pub async fn describe(cf: &Client, name: &str, place: &Place) -> Result<Option<Stack>, StackError> {
    match cf.describe_stacks().stack_name(name).send().await {
        Ok(out) => Ok(out
            .stacks()
            .first()
            .filter(|s| s.stack_status() != Some(&StackStatus::DeleteComplete))
            .cloned()),
        // CloudFormation has no "not found" error type: a missing stack is a ValidationError
        // whose message says it does not exist.
        Err(e) if is_missing_stack(&e) => Ok(None),
        Err(e) => Err(aws_error("describing", name, place, &e)),
    }
}

fn is_missing_stack<E: ProvideErrorMetadata, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> bool {
    err.as_service_error().is_some_and(|e| {
        e.code() == Some("ValidationError")
            && e.message().is_some_and(|m| m.contains("does not exist"))
    })
}

/// The template body the stack was deployed with, as it was given.
pub async fn deployed_template(
    cf: &Client,
    name: &str,
    place: &Place,
) -> Result<String, StackError> {
    let out = cf
        .get_template()
        .stack_name(name)
        .template_stage(TemplateStage::Original)
        .send()
        .await
        .map_err(|e| aws_error("reading the template of", name, place, &e))?;
    Ok(out.template_body().unwrap_or_default().to_owned())
}

/// The stack's outputs by name.
pub fn outputs(stack: &Stack) -> BTreeMap<String, String> {
    stack
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned())))
        .collect()
}

/// The stack's outputs, completed from its resources' physical ids where the stack lists none (a
/// stack whose creation failed, or an emulator that does not evaluate outputs), so that status
/// and teardown still find what is there. ARNs are built in the stack's own partition.
pub async fn resolved_outputs(
    cf: &Client,
    name: &str,
    stack: &Stack,
    place: &Place,
) -> Result<BTreeMap<String, String>, StackError> {
    let mut out = outputs(stack);
    let changing = stack.stack_status().is_some_and(in_progress);
    // A stack under review has no resources yet, and one being changed is read once it settles.
    if changing || (out.contains_key("FunctionArn") && out.contains_key("ConfigBucketName")) {
        return Ok(out);
    }
    let resources = cf
        .list_stack_resources()
        .stack_name(name)
        .send()
        .await
        .map_err(|e| aws_error("listing the resources of", name, place, &e))?;
    // arn:PARTITION:cloudformation:REGION:ACCOUNT:stack/NAME/ID
    let partition = stack
        .stack_id()
        .and_then(|id| id.split(':').nth(1))
        .unwrap_or("aws")
        .to_owned();
    let (account, region) = (&place.account, &place.region);
    for r in resources.stack_resource_summaries() {
        let (Some(logical), Some(physical)) = (r.logical_resource_id(), r.physical_resource_id())
        else {
            continue;
        };
        if physical.is_empty() {
            continue;
        }
        let mut set = |k: &str, v: String| {
            out.entry(k.to_owned()).or_insert(v);
        };
        match logical {
            "Topic" => set("TopicArn", physical.to_owned()),
            "ConfigBucket" => set("ConfigBucketName", physical.to_owned()),
            "ConfigRole" => set(
                "ConfigRoleArn",
                format!("arn:{partition}:iam::{account}:role/{physical}"),
            ),
            "HandlerRole" => set(
                "HandlerRoleArn",
                format!("arn:{partition}:iam::{account}:role/{physical}"),
            ),
            "Function" => {
                set("FunctionName", physical.to_owned());
                set(
                    "FunctionArn",
                    format!("arn:{partition}:lambda:{region}:{account}:function:{physical}"),
                );
            }
            "FailureQueue" => {
                set("FailureQueueUrl", physical.to_owned());
                let queue = physical.rsplit('/').next().unwrap_or(physical);
                set(
                    "FailureQueueArn",
                    format!("arn:{partition}:sqs:{region}:{account}:{queue}"),
                );
            }
            "IdempotencyTable" => set("IdempotencyTableName", physical.to_owned()),
            "LogGroup" => set("LogGroupName", physical.to_owned()),
            _ => {}
        }
    }
    Ok(out)
}

/// A computed change set, ready to be executed or deleted.
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub id: String,
    pub kind: ChangeSetType,
    /// One line per resource change, e.g. `Modify Function (AWS::Lambda::Function)`.
    pub changes: Vec<String>,
    /// CloudFormation found nothing to change ("didn't contain changes").
    pub empty: bool,
}

/// Creates a change set for `values` (create when the stack does not exist, else update), waits
/// until CloudFormation has computed it and returns its changes. The caller executes or deletes it.
pub async fn create_change_set(
    cf: &Client,
    name: &str,
    values: &BTreeMap<String, String>,
    exists: bool,
    place: &Place,
) -> Result<ChangeSet, StackError> {
    let change_set_name = format!(
        "sgwatch-{}",
        DateTime::from(std::time::SystemTime::now()).secs()
    );
    let kind = if exists {
        ChangeSetType::Update
    } else {
        ChangeSetType::Create
    };
    let params: Vec<Parameter> = values
        .iter()
        .map(|(k, v)| {
            Parameter::builder()
                .parameter_key(k)
                .parameter_value(v)
                .build()
        })
        .collect();
    let created = cf
        .create_change_set()
        .stack_name(name)
        .change_set_name(&change_set_name)
        .change_set_type(kind.clone())
        .template_body(TEMPLATE)
        .set_parameters(Some(params))
        // The template names no IAM resource; CAPABILITY_IAM is all it needs.
        .capabilities(Capability::CapabilityIam)
        .tags(
            Tag::builder()
                .key(MANAGED_TAG.0)
                .value(MANAGED_TAG.1)
                .build(),
        )
        .send()
        .await
        .map_err(|e| aws_error("creating a change set for", name, place, &e))?;
    let id = created.id().unwrap_or(&change_set_name).to_owned();

    // The waiter ends in failure when the change set is FAILED, which is also how CloudFormation
    // says "nothing to change"; the final description tells which.
    let _ = cf
        .wait_until_change_set_create_complete()
        .stack_name(name)
        .change_set_name(&id)
        .wait(CHANGE_SET_WAIT)
        .await;
    let described = cf
        .describe_change_set()
        .stack_name(name)
        .change_set_name(&id)
        .send()
        .await
        .map_err(|e| aws_error("describing the change set of", name, place, &e))?;
    let changes = described
        .changes()
        .iter()
        .filter_map(|c| c.resource_change())
        .map(|rc| {
            format!(
                "{} {} ({}){}",
                rc.action().map(|a| a.as_str()).unwrap_or("?"),
                rc.logical_resource_id().unwrap_or("?"),
                rc.resource_type().unwrap_or("?"),
                match rc.replacement().map(|r| r.as_str()) {
                    Some("True") => ", replaced",
                    Some("Conditional") => ", may be replaced",
                    _ => "",
                }
            )
        })
        .collect();
    let reason = described.status_reason().unwrap_or_default().to_owned();
    match described.status() {
        Some(ChangeSetStatus::CreateComplete) => Ok(ChangeSet {
            id,
            kind,
            changes,
            empty: false,
        }),
        Some(ChangeSetStatus::Failed)
            if reason.contains("didn't contain changes")
                || reason.contains("No updates are to be performed") =>
        {
            Ok(ChangeSet {
                id,
                kind,
                changes: Vec::new(),
                empty: true,
            })
        }
        Some(ChangeSetStatus::Failed) => Err(StackError::ChangeSetFailed {
            stack: name.to_owned(),
            place: place.clone(),
            reason,
        }),
        // Still CREATE_PENDING or CREATE_IN_PROGRESS after the waiter gave up.
        _ => Err(StackError::Timeout {
            stack: name.to_owned(),
            place: place.clone(),
            minutes: CHANGE_SET_WAIT.as_secs() / 60,
        }),
    }
}

/// Deletes a change set that will not be executed (plan, or nothing to change). Already gone is
/// success.
pub async fn delete_change_set(
    cf: &Client,
    name: &str,
    change_set: &ChangeSet,
    place: &Place,
) -> Result<(), StackError> {
    match cf
        .delete_change_set()
        .stack_name(name)
        .change_set_name(&change_set.id)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ChangeSetNotFound") => {
            Ok(())
        }
        Err(e) => Err(aws_error("deleting the change set of", name, place, &e)),
    }
}

/// Executes a change set, shows the stack's events until the SDK waiter sees the stack settle,
/// and returns the stack as it then is.
pub async fn execute(
    cf: &Client,
    name: &str,
    change_set: &ChangeSet,
    place: &Place,
    progress: bool,
) -> Result<Stack, StackError> {
    let started = DateTime::from(std::time::SystemTime::now());
    cf.execute_change_set()
        .stack_name(name)
        .change_set_name(&change_set.id)
        .send()
        .await
        .map_err(|e| aws_error("executing the change set of", name, place, &e))?;
    let waited = async {
        match change_set.kind {
            ChangeSetType::Create => cf
                .wait_until_stack_create_complete()
                .stack_name(name)
                .wait(STACK_WAIT)
                .await
                .map(|_| ())
                .map_err(|e| waiter_failure(&e)),
            _ => cf
                .wait_until_stack_update_complete()
                .stack_name(name)
                .wait(STACK_WAIT)
                .await
                .map(|_| ())
                .map_err(|e| waiter_failure(&e)),
        }
    };
    let first_failure = follow(cf, name, started, progress, waited).await;
    let stack = describe(cf, name, place).await?;
    match stack {
        Some(s)
            if matches!(
                s.stack_status(),
                Some(StackStatus::CreateComplete | StackStatus::UpdateComplete)
            ) =>
        {
            Ok(s)
        }
        Some(s) => Err(failed(name, place, &s, first_failure)),
        None => Err(StackError::Failed {
            stack: name.to_owned(),
            place: place.clone(),
            status: "deleted".into(),
            reason: first_failure.map(|r| format!(": {r}")).unwrap_or_default(),
        }),
    }
}

/// Deletes the stack and waits (SDK waiter) until it is gone, showing its events. A stack that
/// does not exist is success (`false`).
pub async fn delete(
    cf: &Client,
    name: &str,
    place: &Place,
    progress: bool,
) -> Result<bool, StackError> {
    let Some(stack) = describe(cf, name, place).await? else {
        return Ok(false);
    };
    // By id: once deleted, a stack can only be described by its id.
    let id = stack.stack_id().unwrap_or(name).to_owned();
    // Left mid-change (an install killed while CloudFormation worked): let that finish first; a
    // delete would otherwise be refused or race with it. Its outcome does not matter here.
    match stack.stack_status() {
        Some(StackStatus::CreateInProgress) => {
            let _ = cf
                .wait_until_stack_create_complete()
                .stack_name(&id)
                .wait(STACK_WAIT)
                .await;
        }
        Some(s) if updating(s) => {
            let _ = cf
                .wait_until_stack_update_complete()
                .stack_name(&id)
                .wait(STACK_WAIT)
                .await;
        }
        _ => {}
    }
    let started = DateTime::from(std::time::SystemTime::now());
    cf.delete_stack()
        .stack_name(&id)
        .send()
        .await
        .map_err(|e| aws_error("deleting", name, place, &e))?;
    let waited = async {
        cf.wait_until_stack_delete_complete()
            .stack_name(&id)
            .wait(STACK_WAIT)
            .await
            .map(|_| ())
            .map_err(|e| waiter_failure(&e))
    };
    let first_failure = follow(cf, &id, started, progress, waited).await;
    match describe(cf, &id, place).await? {
        None => Ok(true),
        Some(s) if s.stack_status() == Some(&StackStatus::DeleteComplete) => Ok(true),
        Some(s) => Err(failed(name, place, &s, first_failure)),
    }
}

fn failed(name: &str, place: &Place, stack: &Stack, first_failure: Option<String>) -> StackError {
    let status = stack
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|| "in an unknown state".into());
    if stack.stack_status().is_some_and(in_progress) {
        return StackError::Timeout {
            stack: name.to_owned(),
            place: place.clone(),
            minutes: STACK_WAIT.as_secs() / 60,
        };
    }
    let reason = first_failure
        .or_else(|| stack.stack_status_reason().map(str::to_owned))
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    StackError::Failed {
        stack: name.to_owned(),
        place: place.clone(),
        status,
        reason,
    }
}

/// What a waiter's failure says, for the log; the stack's status is read afterwards either way.
fn waiter_failure<O: std::fmt::Debug + 'static, E: std::error::Error + 'static>(
    err: &aws_smithy_runtime_api::client::waiters::error::WaiterError<O, E>,
) -> String {
    crate::aws::error_text(err)
}

/// Prints the stack's new events, one line each, while `waited` (an SDK waiter) runs, and once
/// more after it ends. Returns the first failed resource's reason, if any.
async fn follow(
    cf: &Client,
    stack: &str,
    since: DateTime,
    progress: bool,
    waited: impl Future<Output = Result<(), String>>,
) -> Option<String> {
    let mut seen = HashSet::new();
    let mut first_failure = None;
    let mut ticker = tokio::time::interval(EVENT_POLL);
    tokio::pin!(waited);
    loop {
        tokio::select! {
            result = &mut waited => {
                if let Err(why) = result {
                    tracing::debug!(stack, "waiter ended: {why}");
                }
                break;
            }
            _ = ticker.tick() => {
                show_events(cf, stack, since, progress, &mut seen, &mut first_failure).await;
            }
        }
    }
    show_events(cf, stack, since, progress, &mut seen, &mut first_failure).await;
    first_failure
}

async fn show_events(
    cf: &Client,
    stack: &str,
    since: DateTime,
    progress: bool,
    seen: &mut HashSet<String>,
    first_failure: &mut Option<String>,
) {
    // Only shown, never decided on: a failed read is skipped and the next poll tries again.
    let Ok(page) = cf.describe_stack_events().stack_name(stack).send().await else {
        return;
    };
    let mut fresh: Vec<_> = page
        .stack_events()
        .iter()
        .filter(|e| e.timestamp().is_some_and(|t| t.secs() >= since.secs()))
        .filter(|e| seen.insert(e.event_id().unwrap_or_default().to_owned()))
        .collect();
    fresh.reverse(); // newest first from the API; oldest first on screen
    for e in fresh {
        let status = e.resource_status().map(|s| s.as_str()).unwrap_or("");
        let reason = e.resource_status_reason().unwrap_or("");
        if first_failure.is_none() && status.ends_with("_FAILED") && !reason.is_empty() {
            *first_failure = Some(format!(
                "{} ({}): {reason}",
                e.logical_resource_id().unwrap_or("?"),
                e.resource_type().unwrap_or("?")
            ));
        }
        if progress {
            eprintln!(
                "  {:<22} {:<34} {}{}",
                status,
                e.logical_resource_id().unwrap_or(""),
                e.resource_type().unwrap_or(""),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            );
        }
    }
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
