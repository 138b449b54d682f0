//! The CloudFormation stack: the embedded template and its parameters ([`TEMPLATE`],
//! [`complete_parameters`], [`differences`]), the deployed stack read once ([`Deployed`]), and
//! deploying or deleting it through a change set ([`create_change_set`], [`execute`], [`delete`]).

mod change;
mod deployed;
mod template;

pub use change::{
    create_change_set, create_change_set_of, delete, delete_change_set, execute, Body, ChangeSet,
};
pub use deployed::{
    deployed_template, describe, physical_id, required, Deployed, StackOutputs, StackParams,
};
pub use template::{
    complete_parameters, differences, resources_to_create, OnOff, Source, TEMPLATE,
};

use aws_sdk_cloudformation::types::StackStatus;

use crate::aws::Place;

/// What went wrong with the stack; each variant names the stack, account and region.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("stack {stack} not found in {place}: run `sgwatch install` first")]
    NoStack { stack: String, place: Place },
    #[error("stack {stack} has no {output} output: run `sgwatch install` to update it")]
    NoOutput { stack: String, output: &'static str },
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
