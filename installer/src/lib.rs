//! sgwatch's installer as a library; `main.rs` only parses the command line, sets up logging,
//! dispatches to the commands here and prints what they report.
//!
//! Three layers, each importing only the ones below it:
//! - [`cmd`]: the commands (`install`, `plan`, `status`, `teardown`, `rollout`, `verify`,
//!   `redrive`, `test-event`, `explain`), each its arguments, its work and its report;
//! - [`deploy`]: the parts of a deployment. Install is observed, planned, then applied:
//!   [`deploy::observe`] reads the account with read-only calls, [`deploy::plan`] decides with
//!   pure functions (a list of steps; [`deploy::plan::owned`] says once what install created
//!   versus adopted), and [`deploy::apply`] makes the calls. Beside them, one module per kind of
//!   AWS resource: [`deploy::stack`] (the only reader of the deployed stack,
//!   [`deploy::stack::Deployed`]), [`deploy::recorder`], [`deploy::artifacts`],
//!   [`deploy::topic`], and the rest;
//! - [`aws`]: the global flags, the caller's identity and the clients (with the call log).
//!
//! [`error`] boxes the error of whichever module failed.

pub mod aws;
pub mod cmd;
pub mod deploy;
pub mod error;

pub use error::Error;
