//! `sgwatch explain` as a user runs it: the real binary, real files and stdin.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn fixture(name: &str) -> String {
    format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn sgwatch(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sgwatch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn rdp_fixture_is_one_critical_decision_for_the_owner() {
    let out = sgwatch(&["explain", &fixture("rdp-opened.sns-event.json")], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 1);
    let d = &all[0];
    assert_eq!(d["notify"], true);
    assert_eq!(
        d["recipients"],
        serde_json::json!(["platform-team@example.com"])
    );
    assert_eq!(d["severity"], "critical");
    let changes = d["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["action"], "added");
    assert_eq!(changes[0]["direction"], "ingress");
    assert_eq!(changes[0]["protocol"], "tcp");
    assert_eq!(
        (
            changes[0]["from_port"].as_i64(),
            changes[0]["to_port"].as_i64()
        ),
        (Some(3389), Some(3389))
    );
    assert_eq!(changes[0]["source"], "0.0.0.0/0");
}

#[test]
fn reads_stdin_and_takes_the_settings_flags() {
    let bare = std::fs::read_to_string(fixture("rdp-opened.json")).unwrap();
    let untagged = bare.replace("\"NotifyOnChange\"", "\"Other\"");
    let out = sgwatch(
        &[
            "explain",
            "--fallback-recipient",
            "secops@example.com",
            "--always-notify-at",
            "high",
            "-",
        ],
        Some(&untagged),
    );
    assert!(out.status.success());
    let d = &json(&out)[0];
    assert_eq!(d["notify"], true);
    assert_eq!(d["recipients"], serde_json::json!(["secops@example.com"]));
    assert!(d["reason"].as_str().unwrap().contains("always_notify_at"));
}

#[test]
fn unreadable_input_is_an_error_entry_and_exit_code_1() {
    let out = sgwatch(
        &["explain", "-"],
        Some("{\"Records\": [{\"Sns\": {\"MessageId\": \"m\", \"Message\": \"{oops\"}}]}"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(json(&out)[0]["error"]
        .as_str()
        .unwrap()
        .contains("not JSON"));
    let out = sgwatch(&["explain", "-"], Some("not json at all"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn bad_flags_and_missing_files_say_what_is_wrong() {
    let out = sgwatch(
        &[
            "explain",
            "--always-notify-at",
            "severe",
            "--fallback-recipient",
            "a@example.com",
            "-",
        ],
        Some("{}"),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--always-notify-at \"severe\" is invalid") && err.contains("critical, high"),
        "{err}"
    );
    // The flag is named, never the handler's environment variable.
    assert!(!err.contains("SGWATCH_"), "{err}");
    let out = sgwatch(&["explain", "/nonexistent/notification.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/notification.json")
    );
}
