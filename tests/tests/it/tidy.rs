//! The house rules that hold for the code itself, checked as tests so they stay true: the pure
//! core calls no AWS service, every setting the template gives the function is read by `Settings`
//! and documented, and every module says what it is for.

use std::path::{Path, PathBuf};

use sgwatch_tests::repo_root;

/// The handler's pure modules besides every file of `handler/src/core/`: the chat and webhook
/// formats, which only shape a decision into a body.
const PURE_FORMATS: &[&str] = &["deliver/slack.rs", "deliver/teams.rs", "deliver/webhook.rs"];

/// What would make a module do I/O: an AWS client, the SDK's configuration, or the async runtime.
const IMPURE_CRATES: &[&str] = &["aws_sdk_", "aws_config", "tokio"];

/// Where the handler's settings are documented.
const SETTINGS_PAGE: &str = "docs/SETTINGS.md";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The code lines of `source`, comments left out, so a module may say in prose what it avoids.
fn code_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
    source
        .lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim_start()))
        .filter(|(_, line)| !line.starts_with("//"))
}

#[test]
fn the_pure_core_imports_no_aws_client_and_no_runtime() {
    let src = repo_root().join("handler/src");
    let mut pure = Vec::new();
    rust_files(&src.join("core"), &mut pure);
    assert!(pure.len() >= 10, "the core is read: {pure:?}");
    pure.extend(PURE_FORMATS.iter().map(|f| src.join(f)));
    let mut offences = Vec::new();
    for path in &pure {
        let source = read(path);
        let shown = path.strip_prefix(repo_root()).unwrap_or(path).display();
        for (line_no, line) in code_lines(&source) {
            if let Some(krate) = IMPURE_CRATES.iter().find(|k| line.contains(*k)) {
                offences.push(format!("{shown}:{line_no} uses {krate}: {line}"));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the pure modules must make no AWS call and need no runtime; move the I/O to an edge \
         module:\n{}",
        offences.join("\n")
    );
}

/// The `SGWATCH_*` variables the template sets in the function's environment (its keys).
fn template_settings() -> Vec<String> {
    let template = read(&repo_root().join("templates/sgwatch.yaml"));
    let mut names: Vec<String> = template
        .lines()
        .map(str::trim_start)
        .filter_map(|line| line.split_once(':').map(|(key, _)| key.trim()))
        .filter(|key| key.starts_with("SGWATCH_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_setting_the_template_sets_is_read_by_settings_and_documented() {
    let names = template_settings();
    assert!(
        names.len() >= 10,
        "the template's function environment should set the handler's settings; found {names:?}"
    );
    let settings = read(&repo_root().join("handler/src/core/settings.rs"));
    let page = read(&repo_root().join(SETTINGS_PAGE));
    let unread: Vec<&String> = names
        .iter()
        .filter(|name| !settings.contains(&format!("\"{name}\"")))
        .collect();
    let undocumented: Vec<&String> = names
        .iter()
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert!(
        unread.is_empty(),
        "the template sets {unread:?}, which handler/src/core/settings.rs does not read: read every \
         setting in `Settings`, so a wrong value stops the function at start"
    );
    assert!(
        undocumented.is_empty(),
        "the template sets {undocumented:?}, which {SETTINGS_PAGE} does not name: add a row to \
         its settings table"
    );
}

#[test]
fn every_module_starts_by_saying_what_it_is_for() {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in [
        "handler/src",
        "handler/synth/src",
        "handler/tests",
        "handler/benches",
        "installer/src",
        "installer/tests",
        "tests/src",
        "tests/tests",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 50,
        "expected the workspace's modules, found {}",
        files.len()
    );
    let silent: Vec<String> = files
        .iter()
        .filter(|path| !read(path).starts_with("//!"))
        .map(|path| {
            path.strip_prefix(&root)
                .unwrap_or(path)
                .display()
                .to_string()
        })
        .collect();
    assert!(
        silent.is_empty(),
        "these modules do not start with a `//!` line saying what they are for: {silent:?}"
    );
}

/// The value of `key = "…"` on its line in `text`.
fn quoted_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix(key))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .find_map(|rest| rest.trim().strip_prefix('"')?.split('"').next())
}

#[test]
fn the_msrv_is_the_pinned_toolchain_so_every_build_checks_it() {
    let root = repo_root();
    let toolchain = read(&root.join("rust-toolchain.toml"));
    let channel = quoted_value(&toolchain, "channel").expect("rust-toolchain.toml names a channel");
    let manifest = read(&root.join("Cargo.toml"));
    let msrv = quoted_value(&manifest, "rust-version").expect("Cargo.toml sets rust-version");
    assert!(
        channel == msrv || channel.starts_with(&format!("{msrv}.")),
        "Cargo.toml's rust-version {msrv} is not the pinned toolchain {channel}: an MSRV that no \
         build uses is never checked; change both together"
    );
    for member in ["handler", "handler/synth", "installer", "tests"] {
        let manifest = read(&root.join(member).join("Cargo.toml"));
        assert!(
            manifest.contains("rust-version.workspace = true")
                && manifest.contains("[lints]\nworkspace = true"),
            "{member}/Cargo.toml should take the workspace's rust-version and lints"
        );
    }
}
