//! sgwatch's installer as a library; `main.rs` only parses the command line, sets up logging,
//! dispatches to the commands here and prints what they report.
//!
//! Install is read, decided, then done: [`install`] reads the account ([`install::prepare`]),
//! decides with pure functions (the stack's differences, [`recorder::steps`]) and applies.
//! [`status`] checks each link of the chain (and asks IAM's simulator, [`simulate`], whether
//! the stack's roles may do their work); [`teardown`] removes what the install record says
//! install created; [`rollout`] runs one of them over many accounts and regions. The AWS resource
//! modules each own one concern: [`stack`], [`recorder`], [`artifacts`], [`topic`], [`package`],
//! [`preflight`]; [`aws`] loads the SDK configuration and logs the calls made.

pub mod artifacts;
pub mod aws;
pub mod baseline;
pub mod error;
pub mod explain;
pub mod install;
pub mod package;
pub mod policy_args;
pub mod preflight;
pub mod recorder;
pub mod redrive;
pub mod rollout;
pub mod simulate;
pub mod stack;
pub mod status;
pub mod teardown;
pub mod test_event;
pub mod topic;
pub mod verify;

pub use error::Error;
