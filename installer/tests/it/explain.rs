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
fn halves_of_the_internet_reach_the_fallback_of_an_untagged_group() {
    // RDP opened to 0.0.0.0/1 and 128.0.0.0/1 instead of 0.0.0.0/0: the same exposure.
    let bare = std::fs::read_to_string(fixture("rdp-opened.json")).unwrap();
    let mut v: Value =
        serde_json::from_str(&bare.replace("\"NotifyOnChange\"", "\"Other\"")).unwrap();
    let rule = &mut v["configurationItemDiff"]["changedProperties"]
        ["Configuration.IpPermissions.1"]["updatedValue"];
    rule["ipv4Ranges"] = serde_json::json!([{"cidrIp": "0.0.0.0/1"}, {"cidrIp": "128.0.0.0/1"}]);
    rule["ipRanges"] = serde_json::json!(["0.0.0.0/1", "128.0.0.0/1"]);
    let out = sgwatch(
        &[
            "explain",
            "--fallback-recipient",
            "secops@example.com",
            "--always-notify-at",
            "critical",
            "-",
        ],
        Some(&v.to_string()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = &json(&out)[0];
    assert_eq!(d["severity"], "critical", "{d}");
    assert_eq!(d["notify"], true, "{d}");
    assert_eq!(d["recipients"], serde_json::json!(["secops@example.com"]));
    assert!(d["subject"]
        .as_str()
        .unwrap()
        .starts_with("[sgwatch CRITICAL]"));
}

#[test]
fn a_prefix_list_it_cannot_look_up_is_rated_high_and_said_so() {
    // explain looks nothing up: the list's entries are unknown, so it may hold the internet.
    let bare = std::fs::read_to_string(fixture("rdp-opened.json")).unwrap();
    let mut v: Value =
        serde_json::from_str(&bare.replace("\"NotifyOnChange\"", "\"Other\"")).unwrap();
    let rule = &mut v["configurationItemDiff"]["changedProperties"]
        ["Configuration.IpPermissions.1"]["updatedValue"];
    rule["ipv4Ranges"] = serde_json::json!([]);
    rule["ipRanges"] = serde_json::json!([]);
    rule["prefixListIds"] = serde_json::json!([{"prefixListId": "pl-0abc1234"}]);
    let out = sgwatch(
        &[
            "explain",
            "--fallback-recipient",
            "secops@example.com",
            "--always-notify-at",
            "high",
            "-",
        ],
        Some(&v.to_string()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = &json(&out)[0];
    assert_eq!(d["severity"], "high", "{d}");
    assert_eq!(d["notify"], true, "{d}");
    assert_eq!(d["recipients"], serde_json::json!(["secops@example.com"]));
    let text = d["text"].as_str().unwrap();
    assert!(
        text.contains(
            "[high] +ingress tcp/3389 from pl-0abc1234 (prefix list pl-0abc1234: entries unknown)"
        ),
        "{text}"
    );
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

#[test]
fn previous_owners_are_told_when_the_opt_in_is_removed() {
    let out = sgwatch(&["explain", &fixture("opt-in-removed.json")], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = &json(&out)[0];
    assert_eq!(d["notify"], true);
    assert_eq!(d["severity"], "critical");
    assert_eq!(
        d["recipients"],
        serde_json::json!(["platform-team@example.com"])
    );
    assert!(
        d["reason"]
            .as_str()
            .unwrap()
            .starts_with("tag NotifyOnChange=Yes was removed by this change"),
        "{}",
        d["reason"]
    );
    assert_eq!(
        d["properties"][0],
        serde_json::json!({"name": "Tags.0", "previous": "NotifyOnChange=Yes", "updated": null})
    );
    assert!(d["text"].as_str().unwrap().contains(
        "NotifyOnChange was removed: you will not be told of further changes to this group"
    ));
}

#[test]
fn baseline_until_and_accounts_flags() {
    let discovered = fixture("discovered.json");
    let out = sgwatch(
        &[
            "explain",
            "--baseline-until",
            "2026-11-20T10:00:00Z",
            &discovered,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = &json(&out)[0];
    assert_eq!(d["notify"], false);
    assert!(d["reason"]
        .as_str()
        .unwrap()
        .starts_with("baseline: the group existed when recording started"));
    // Without the flag, a discovered group is a new group.
    assert_eq!(
        json(&sgwatch(&["explain", &discovered], None))[0]["notify"],
        true
    );

    let rdp = fixture("rdp-opened.json");
    let out = sgwatch(&["explain", "--accounts", "111122223333", &rdp], None);
    let d = &json(&out)[0];
    assert_eq!(d["notify"], false);
    assert!(d["reason"]
        .as_str()
        .unwrap()
        .contains("account 123456789012 is not served"));
    let out = sgwatch(
        &["explain", "--accounts", "111122223333,123456789012", &rdp],
        None,
    );
    assert_eq!(json(&out)[0]["notify"], true);

    // Invalid values are refused before anything is read.
    for flag in [["--baseline-until", "tomorrow"], ["--accounts", "12345"]] {
        let out = sgwatch(&["explain", flag[0], flag[1], &rdp], None);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{} {:?} is invalid", flag[0], flag[1])),
            "{err}"
        );
        assert!(!err.contains("SGWATCH_"), "{err}");
    }
}

#[test]
fn help_describes_the_settings() {
    let out = sgwatch(&["explain", "--help"], None);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--baseline-until",
        "--accounts",
        "SGWATCH_BASELINE_UNTIL",
        "SGWATCH_ACCOUNTS",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

#[test]
fn explain_says_what_auto_revert_would_do_and_refuses_a_mode_it_does_not_know() {
    let file = fixture("rdp-opened.sns-event.json");
    let out = sgwatch(
        &[
            "explain",
            "--auto-revert",
            "shadow",
            "--auto-revert-at",
            "high",
            &file,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        json(&out)[0]["auto_revert"],
        serde_json::json!({"mode": "shadow", "at": "high", "action": "would revert",
                           "rules": ["ingress tcp/3389 from 0.0.0.0/0"]})
    );
    let off = sgwatch(&["explain", &file], None);
    assert!(json(&off)[0].get("auto_revert").is_none());
    let bad = sgwatch(&["explain", "--auto-revert", "maybe", &file], None);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("--auto-revert \"maybe\" is invalid: expected off, shadow or on"));
    let untrusting = sgwatch(&["explain", "--trusted-principal", "*", &file], None);
    assert_eq!(untrusting.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&untrusting.stderr).contains("--trusted-principal"),
        "{}",
        String::from_utf8_lossy(&untrusting.stderr)
    );
}

#[test]
fn explain_says_where_each_change_would_go_now_in_the_digest_or_held() {
    let rdp = std::fs::read_to_string(fixture("rdp-opened.json")).unwrap();
    // The same change from a private range: LOW.
    let low = rdp.replace("0.0.0.0/0", "10.0.0.0/8");
    let route = |input: &str, args: &[&str]| {
        let mut all = vec!["explain"];
        all.extend_from_slice(args);
        all.push("-");
        let out = sgwatch(&all, Some(input));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        json(&out)[0]["route"].clone()
    };
    assert_eq!(
        route(&rdp, &["--digest", "low"]),
        serde_json::json!({"route": "now", "why": "CRITICAL is never delayed"})
    );
    assert_eq!(
        route(&low, &["--digest", "low"]),
        serde_json::json!({"route": "digest", "why": "LOW is at or below the digest level (low)"})
    );
    assert_eq!(
        route(&low, &[]),
        serde_json::json!({"route": "now", "why": "no noise control holds it"})
    );
    assert_eq!(
        route(&low, &["--coalesce", "60s"]),
        serde_json::json!({"route": "coalesce", "why": "gathered with the group's other changes within 60 s into one email"})
    );
    assert_eq!(route(&rdp, &["--coalesce", "60s"])["route"], "now");
    // A group quiet until a time: held before it, judged at --at.
    let quiet = low.replacen(
        "\"NotifyOnChange\": \"Yes\",",
        "\"NotifyOnChange\": \"Yes\", \"sgwatch:quiet-until\": \"2026-12-24T18:00:00Z\",",
        1,
    );
    assert_ne!(quiet, low, "the fixture's tags moved");
    let held = route(&quiet, &["--at", "2026-12-24T08:00:00Z"]);
    assert_eq!(held["route"], "held", "{held}");
    assert_eq!(held["not_before"], 1_798_135_200_u64, "{held}");
    assert_eq!(
        route(&quiet, &["--at", "2026-12-25T08:00:00Z"])["route"],
        "now"
    );
    let bad = sgwatch(&["explain", "--digest", "medium", "-"], Some(&low));
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("--digest \"medium\" is invalid: expected low, info or off"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
