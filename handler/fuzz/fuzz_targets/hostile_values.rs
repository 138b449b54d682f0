//! Hostile values where an insider can put them: the group's name and description, tag values
//! (up to 256 characters, AWS's limit), a rule's description and its source's prefix, and up to
//! 60 owners, through parse → diff → decide → render and every chat and webhook format. Besides
//! "no panic", each run checks what the readers rely on:
//! - no control or format character in the subject, and none raw in any other output (they are
//!   shown as `<U+…>`);
//! - a source wider than the largest private range rates as `/0` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use sgwatch_handler::actor::ActorLookup;
use sgwatch_handler::decide::{analyze, decide, Decision};
use sgwatch_handler::explain::explain;
use sgwatch_handler::message::{parse_message, ConfigMessage};
use sgwatch_handler::render::render;
use sgwatch_handler::settings::Policy;
use sgwatch_handler::visible::is_hidden;
use sgwatch_handler::{slack, teams, webhook};

const FIXTURE: &str = include_str!("../../../tests/fixtures/rdp-opened.json");

/// The `i`-th piece of `data` split at 0xFF bytes, as text, at most `max` characters.
fn piece(data: &[u8], i: usize, max: usize) -> String {
    let part = data.split(|b| *b == 0xff).nth(i).unwrap_or_default();
    String::from_utf8_lossy(part).chars().take(max).collect()
}

/// The fixture with the hostile values and the RDP rule's source `cidr`.
fn message(data: &[u8], cidr: &str) -> Value {
    let mut m: Value = serde_json::from_str(FIXTURE).expect("the fixture");
    let owners = data.first().map_or(1, |b| usize::from(*b) % 61);
    let mut owner_dl: Vec<String> = (0..owners)
        .map(|i| format!("owner{i}@team{}.example", i % 3))
        .collect();
    owner_dl.push(piece(data, 2, 256));
    let ci = &mut m["configurationItem"];
    ci["resourceName"] = json!(piece(data, 0, 255));
    ci["configuration"]["groupName"] = json!(piece(data, 0, 255));
    ci["configuration"]["description"] = json!(piece(data, 1, 255));
    ci["tags"]["OwnerDL"] = json!(owner_dl.join(" ").chars().take(256).collect::<String>());
    ci["tags"]["NotifyChannels"] = json!(piece(data, 3, 256));
    ci["tags"]["Team"] = json!(piece(data, 4, 256));
    let rule = json!({"ipProtocol": "tcp", "fromPort": 3389, "toPort": 3389,
        "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": [], "ipRanges": [cidr],
        "ipv4Ranges": [{"cidrIp": cidr, "description": piece(data, 5, 255)}]});
    ci["configuration"]["ipPermissions"][1] = rule.clone();
    m["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]["updatedValue"] =
        rule;
    m
}

/// `text` without the U+200B that Teams' escape puts between two `{`.
fn without_defused_braces(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let ours = |i: usize| i > 0 && chars[i - 1] == '{' && chars.get(i + 1) == Some(&'{');
    chars
        .iter()
        .enumerate()
        .filter(|(i, c)| !(**c == '\u{200B}' && ours(*i)))
        .map(|(_, c)| *c)
        .collect()
}

fn decision(m: &Value, policy: &Policy) -> Option<Decision> {
    let Ok(ConfigMessage::ItemChange(c)) = parse_message(m) else {
        return None;
    };
    Some(decide(analyze(&c).ok()?, policy))
}

fuzz_target!(|data: &[u8]| {
    let policy = Policy::default();
    let prefix = data.get(1).map_or(0, |b| b % 33);
    let m = message(data, &format!("0.0.0.0/{prefix}"));
    let event = json!({"Records": [{"Sns": {"MessageId": "fuzz", "Message": m.to_string()}}]});
    let _ = explain(&event, &policy);
    let Some(d) = decision(&m, &policy) else {
        return;
    };
    if prefix < 8 {
        let open = decision(&message(data, "0.0.0.0/0"), &policy).expect("the /0 twin");
        assert_eq!(d.analysis.severity, open.analysis.severity, "0.0.0.0/{prefix}");
    }
    let actor = ActorLookup::Unknown("fuzz".to_owned());
    let email = render(&d, &actor);
    assert!(
        !email.subject.chars().any(|c| c.is_control() || is_hidden(c)),
        "{:?}",
        email.subject
    );
    let outputs = [
        email.text.clone(),
        email.html.clone(),
        slack::message(&d, &actor).to_string(),
        // Teams' escape defuses a template function (`{{`) with U+200B between the braces: that
        // one is ours, not the value's (whose own hidden characters are shown before escaping).
        without_defused_braces(&teams::message(&d, &actor).to_string()),
        String::from_utf8_lossy(&webhook::body(&d, &email)).into_owned(),
    ];
    for out in &outputs {
        let raw = out.chars().find(|c| is_hidden(*c) && !matches!(c, '\n' | '\r' | '\t'));
        assert!(raw.is_none(), "{raw:?} raw in {out}");
    }
});
