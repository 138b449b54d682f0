//! sgwatch's installer as a library; `main.rs` only parses the command line, sets up logging,
//! dispatches to the commands here and prints what they report.
//!
//! Install is observed, planned, then applied: [`observe`] reads the account with read-only
//! calls, [`plan`] decides with pure functions (a list of steps; [`plan::owned`] says once what
//! install created versus adopted), and [`apply`] makes the calls. `plan` prints the steps;
//! [`teardown`] applies the plan that undoes what the install record says install created.
//! [`status`] looks at each link of the chain once, then checks it with one small function per
//! link (and asks IAM's simulator, [`simulate`], whether the stack's roles may do their work);
//! [`rollout`] runs a command over many accounts and regions. The AWS resource modules each own
//! one concern: [`stack`], [`recorder`], [`artifacts`], [`topic`], [`package`], [`preflight`];
//! [`aws`] holds the global flags, the caller's identity and the clients (with the call log).

pub mod actor_feed;
pub mod alarms;
pub mod apply;
pub mod artifacts;
pub mod aws;
pub mod baseline;
pub mod destinations;
pub mod error;
pub mod explain;
pub mod install;
pub mod observe;
pub mod package;
pub mod plan;
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
