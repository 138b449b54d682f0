//! Integration tests of the installer crate: one binary (linking the AWS SDK once), a module per concern.

mod baseline;
mod explain;
mod faults;
mod iam_policy;
mod install;
mod interrupt;
mod logging;
mod owner;
mod policy;
mod propagation;
mod rollout;
