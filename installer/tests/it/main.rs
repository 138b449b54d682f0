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

/// The one way the tests run `sgwatch` against a local endpoint: pointed at `endpoint` in
/// us-east-1, with the emulator's test credentials, and no profile from the environment.
pub fn sgwatch_at(endpoint: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_sgwatch"));
    c.args(["--endpoint-url", endpoint, "--region", "us-east-1"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE");
    c
}
