//! Characters that make a text read other than it is (bidirectional overrides, zero-width and
//! format characters, line and paragraph separators, controls) never reach a reader unseen: the
//! subject drops them, every other output shows each as `<U+XXXX>`.

use serde_json::{json, Value};
use sgwatch_handler::actor::{Actor, ActorLookup};
use sgwatch_handler::decide::{analyze, decide, Decision};
use sgwatch_handler::message::{parse_message, ConfigMessage};
use sgwatch_handler::render::render;
use sgwatch_handler::settings::Policy;
use sgwatch_handler::{slack, teams, webhook};

/// With U+202E, `web` then `gpj.exe` reads as `webexe.jpg`; the line separator would start a
/// forged header line.
const NAME: &str = "web\u{202e}gpj.exe\u{2028}Subject: x";

/// Every character the outputs must not carry as itself.
const LIARS: [char; 9] = [
    '\u{202e}', '\u{2028}', '\u{200b}', '\u{2066}', '\u{feff}', '\u{0}', '\u{1b}', '\u{2029}',
    '\u{ad}',
];

fn decision() -> Decision {
    let path = format!(
        "{}/../tests/fixtures/rdp-opened.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["configurationItem"]["resourceName"] = json!(NAME);
    v["configurationItem"]["configuration"]["groupName"] = json!(NAME);
    v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
        ["updatedValue"]["ipv4Ranges"][0]["description"] = json!("ok\u{200b}\u{2066}admin\u{2069}");
    v["configurationItemDiff"]["changedProperties"]["Configuration.Description"] = json!({
        "previousValue": "old\u{0}\u{1b}[31m", "updatedValue": "new\u{feff}\u{2029}\u{ad}",
        "changeType": "UPDATE"
    });
    let ConfigMessage::ItemChange(c) = parse_message(&v).unwrap() else {
        panic!("not an item change")
    };
    decide(analyze(&c).unwrap(), &Policy::default())
}

fn actor() -> ActorLookup {
    ActorLookup::Found(Actor {
        arn: Some("arn:aws:sts::123456789012:assumed-role/Ops/eve\u{202e}nimda".into()),
        source_ip: Some("203.0.113.7".into()),
        time: Some("2026-11-20T09:13:58Z".into()),
        event_name: Some("AuthorizeSecurityGroupIngress".into()),
        event_id: None,
        invoked_by: None,
    })
}

fn assert_no_liar(what: &str, text: &str) {
    for c in LIARS {
        assert!(
            !text.contains(c),
            "{what} carries U+{:04X} as itself: {text:?}",
            c as u32
        );
    }
}

#[test]
fn the_subject_drops_them() {
    let email = render(&decision(), &actor());
    assert_no_liar("subject", &email.subject);
    assert!(!email.subject.contains("<U+"), "{}", email.subject);
    assert!(
        email.subject.contains("(webgpj.exe Subject: x)"),
        "{}",
        email.subject
    );
}

#[test]
fn the_text_part_shows_each_one() {
    let text = render(&decision(), &actor()).text;
    assert_no_liar("text part", &text);
    assert!(
        text.contains("security group sg-0123456789abcdef0 (web<U+202E>gpj.exe<U+2028>Subject: x)"),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("Subject:")), "{text}");
    assert!(
        text.contains("\"ok<U+200B><U+2066>admin<U+2069>\""),
        "{text}"
    );
    assert!(
        text.contains("\"old<U+0000><U+001B>[31m\" -> \"new<U+FEFF><U+2029><U+00AD>\""),
        "{text}"
    );
    assert!(text.contains("Ops/eve<U+202E>nimda"), "{text}");
}

#[test]
fn the_html_part_shows_each_one() {
    let html = render(&decision(), &actor()).html;
    assert_no_liar("HTML part", &html);
    assert!(
        html.contains("web&lt;U+202E&gt;gpj.exe&lt;U+2028&gt;Subject: x"),
        "{html}"
    );
    assert!(
        html.contains("ok&lt;U+200B&gt;&lt;U+2066&gt;admin&lt;U+2069&gt;"),
        "{html}"
    );
    assert!(html.contains("Ops/eve&lt;U+202E&gt;nimda"), "{html}");
}

#[test]
fn slack_shows_each_one() {
    let message = slack::message(&decision(), &actor()).to_string();
    let message: String = serde_json::from_str::<Value>(&message)
        .map(|v| collect(&v))
        .unwrap();
    assert_no_liar("Slack message", &message);
    assert!(
        message.contains("web&lt;U+202E&gt;gpj.exe&lt;U+2028&gt;Subject: x"),
        "{message}"
    );
    assert!(message.contains("admin&lt;U+2069&gt;"), "{message}");
}

#[test]
fn teams_shows_each_one() {
    let message = collect(&teams::message(&decision(), &actor()));
    assert_no_liar("Teams card", &message);
    assert!(
        message.contains("web\\<U+202E\\>gpj.exe\\<U+2028\\>Subject: x"),
        "{message}"
    );
    assert!(message.contains("admin\\<U+2069\\>"), "{message}");
}

#[test]
fn the_webhook_shows_each_one() {
    let d = decision();
    let email = render(&d, &actor());
    let body = webhook::body(&d, &email);
    let text = String::from_utf8(body.clone()).unwrap();
    assert_no_liar("webhook body", &text);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["changes"][0]["description"],
        "ok<U+200B><U+2066>admin<U+2069>"
    );
    assert!(v["text"]
        .as_str()
        .unwrap()
        .contains("(web<U+202E>gpj.exe<U+2028>Subject: x)"));
    assert_eq!(v["subject"].as_str(), Some(email.subject.as_str()));
}

/// Every string of a JSON value, one per line.
fn collect(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s}\n"),
        Value::Array(a) => a.iter().map(collect).collect(),
        Value::Object(o) => o.values().map(collect).collect(),
        _ => String::new(),
    }
}
