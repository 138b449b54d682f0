//! Deploying through a change set, with the stack's events shown as they happen, and deleting the
//! stack. Waiting is done by the SDK's waiters; the events are polled beside them only to be
//! shown.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, ResourceChange, Stack, StackStatus, Tag,
};
use aws_sdk_cloudformation::Client;
use aws_smithy_types::DateTime;

use super::{aws_error, describe, in_progress, StackError, TEMPLATE};
use crate::aws::Place;

/// The tag every sgwatch stack carries (CloudFormation copies it onto the resources it tags).
const MANAGED_TAG: (&str, &str) = ("sgwatch:managed", "true");

/// How long a change set may take to be computed, and a stack to be created, updated or deleted.
const CHANGE_SET_WAIT: Duration = Duration::from_secs(10 * 60);
const STACK_WAIT: Duration = Duration::from_secs(60 * 60);
/// How often the stack's events are fetched to be shown while a waiter waits.
const EVENT_POLL: Duration = Duration::from_secs(2);

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
    // The template names no IAM resource; CAPABILITY_IAM is all it needs.
    let body = Body {
        template: TEMPLATE,
        capability: Capability::CapabilityIam,
    };
    create_change_set_of(cf, name, body, values, exists, place).await
}

/// A template and the capability it needs.
#[derive(Debug, Clone)]
pub struct Body {
    pub template: &'static str,
    pub capability: Capability,
}

/// [`create_change_set`] for any of sgwatch's templates.
pub async fn create_change_set_of(
    cf: &Client,
    name: &str,
    body: Body,
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
        .template_body(body.template)
        .set_parameters(Some(params))
        .capabilities(body.capability)
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
    computed(&described, id, kind, name, place)
}

/// The change set as CloudFormation computed it: its changes, nothing to change, or why it
/// failed.
fn computed(
    described: &DescribeChangeSetOutput,
    id: String,
    kind: ChangeSetType,
    name: &str,
    place: &Place,
) -> Result<ChangeSet, StackError> {
    let changes = described
        .changes()
        .iter()
        .filter_map(|c| c.resource_change())
        .map(change_line)
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

/// A resource change as one line: `Modify Function (AWS::Lambda::Function), replaced`.
fn change_line(rc: &ResourceChange) -> String {
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
