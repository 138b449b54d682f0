//! The support for sgwatch's integration tests, one module per concern: [`fixture`] for what a
//! test starts from, [`emulator`] for the local AWS it runs against, [`inventory`] for what a
//! stack made, [`cli`] for running the `sgwatch` binary, [`capture`] for the chat and webhook
//! receivers, [`story`], the story sgwatch exists for, which the demo shows and a test asserts,
//! and [`organization`], a hub and its spokes in several accounts.

use std::path::PathBuf;

pub mod capture;
pub mod cli;
pub mod emulator;
pub mod fixture;
pub mod inventory;
pub mod organization;
pub mod samples;
pub mod story;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}
