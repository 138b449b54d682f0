//! Integration tests of the installer crate: one binary (linking the AWS SDK once), a module per concern.

mod baseline;
mod destinations;
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

/// The one way the tests run `sgwatch` against a local endpoint: this build of it, pointed at
/// `endpoint` (see [`sgwatch_tests::cli::command`]).
pub fn sgwatch_at(endpoint: &str) -> std::process::Command {
    sgwatch_tests::cli::command(
        std::path::Path::new(env!("CARGO_BIN_EXE_sgwatch")),
        endpoint,
    )
}
