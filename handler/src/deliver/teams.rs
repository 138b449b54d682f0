//! The Microsoft Teams message for a decision: an Adaptive Card posted to a Workflows webhook
//! ("Post to a channel when a webhook request is received"), which takes a message whose
//! attachment is the card. The retired Office 365 connector format (MessageCard) is not used.
//! <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/add-incoming-webhook>
//!
//! Adaptive Card text is a Markdown subset and may hold `{{DATE(...)}}` functions: every value
//! from the resource has its Markdown punctuation backslash-escaped and its `{{` broken, so a
//! group name can neither format, link nor call a function.
//! <https://learn.microsoft.com/en-us/adaptive-cards/authoring-cards/text-features>

use serde_json::{json, Value};

use crate::core::decide::{Decision, PropertyChange, Subject};
use crate::core::render::{actor_text, change_line, console_link, remedies};
use crate::core::rules::Change;
use crate::core::severity::{classify, Severity};
use crate::core::text::one_line;
use crate::core::who::ActorLookup;

/// Rules shown one per line; the rest are counted.
pub const MAX_RULES: usize = 50;
/// The largest payload posted. Teams refuses a message over about 28 KB, and the refusal (a 4xx)
/// is final ("Limits and specifications for Microsoft Teams", message size); the rest of the card
/// and the JSON escaping need room, so the card is kept well under it by showing fewer rules.
pub const MAX_BYTES: usize = 24 * 1024;
/// A value is cut past this many characters.
const MAX_VALUE_CHARS: usize = 400;

/// Escapes a value for Adaptive Card text.
pub fn escape(value: &str) -> String {
    let value: String = one_line(value).chars().take(MAX_VALUE_CHARS).collect();
    let mut out = String::with_capacity(value.len());
    let mut previous = '\0';
    for c in value.chars() {
        match c {
            '\\' | '*' | '_' | '[' | ']' | '(' | ')' | '`' | '~' | '#' | '<' | '>' | '!' | '|' => {
                out.push('\\');
                out.push(c);
            }
            // `{{` opens a template function: a zero-width space keeps the braces apart.
            '{' if previous == '{' => {
                out.push('\u{200B}');
                out.push(c);
            }
            c => out.push(c),
        }
        previous = c;
    }
    out
}

/// The container style and text colour of a severity.
fn style(severity: Severity) -> (&'static str, &'static str) {
    match severity {
        Severity::Critical => ("attention", "Attention"),
        Severity::High => ("warning", "Warning"),
        Severity::Medium => ("warning", "Warning"),
        Severity::Low => ("accent", "Accent"),
        Severity::Info => ("emphasis", "Default"),
    }
}

fn text(t: String) -> Value {
    json!({"type": "TextBlock", "text": t, "wrap": true})
}

fn rule_line(c: &Change) -> String {
    let mut line = format!("\\[{}\\] {}", classify(c), escape(&change_line(c)));
    if let Some(desc) = &c.rule.description {
        line.push_str(&format!(" \"{}\"", escape(desc)));
    }
    line
}

/// The Workflows webhook payload: a message with one Adaptive Card attachment, under
/// [`MAX_BYTES`]: when the rules (or other changes) would make it larger, fewer are shown and the
/// rest counted ("(+N more rules)").
pub fn message(d: &Decision, actor: &ActorLookup) -> Value {
    let mut shown = MAX_RULES;
    loop {
        let m = card(d, actor, shown);
        if shown == 0 || serde_json::to_vec(&m).map_or(0, |b| b.len()) <= MAX_BYTES {
            return m;
        }
        shown = shown * 3 / 4;
    }
}

/// The payload with at most `shown` rules and `shown` other changes listed.
fn card(d: &Decision, actor: &ActorLookup, shown: usize) -> Value {
    let a = &d.analysis;
    let mut body = vec![headline(d), facts(d, actor)];
    for note in &d.notes {
        body.push(
            json!({"type": "TextBlock", "text": escape(note), "wrap": true, "weight": "Bolder"}),
        );
    }
    if !a.changes.is_empty() {
        body.extend(rule_blocks(&a.changes, shown));
    }
    let remedies = remedies(d);
    if !remedies.is_empty() {
        body.push(
            json!({"type": "TextBlock", "text": "To remove what was opened",
                         "weight": "Bolder", "separator": true}),
        );
        for r in remedies.iter().take(shown.max(1)) {
            body.push(
                json!({"type": "TextBlock", "text": escape(&r.command), "wrap": true,
                             "fontType": "Monospace"}),
            );
        }
    }
    if !a.properties.is_empty() {
        body.extend(property_blocks(&a.properties, shown));
    }
    body.push(json!({"type": "TextBlock", "text": format!("Why this channel got it: {}", escape(&d.reason())),
                     "wrap": true, "isSubtle": true, "size": "Small", "separator": true}));
    let mut actions = actions(&a.subject);
    for r in remedies.iter().take(shown.max(1)) {
        if let (Some(revert), Some(keep)) = (&r.revert_link, &r.keep_link) {
            let rule = escape(r.rule.trim_start_matches('+'));
            actions.push(
                json!({"type": "Action.OpenUrl", "title": format!("Revert {rule}"), "url": revert}),
            );
            actions.push(
                json!({"type": "Action.OpenUrl", "title": format!("Keep {rule}"), "url": keep}),
            );
        }
    }
    envelope(body, actions)
}

/// The coloured container naming the severity and the group.
fn headline(d: &Decision) -> Value {
    let a = &d.analysis;
    let s = &a.subject;
    let (container, colour) = style(a.severity);
    let name = s
        .name
        .as_deref()
        .map(|n| format!(" ({})", escape(n)))
        .unwrap_or_default();
    let test = if a.test { "TEST " } else { "" };
    json!({
        "type": "Container",
        "style": container,
        "bleed": true,
        "items": [
            {"type": "TextBlock", "text": format!("{test}{}", a.severity.as_str().to_uppercase()),
             "weight": "Bolder", "size": "Large", "color": colour},
            text(format!("Security group {}{name} was changed", escape(&s.resource_id))),
        ]
    })
}

/// The account, region, change and actor as a fact set.
fn facts(d: &Decision, actor: &ActorLookup) -> Value {
    let s = &d.analysis.subject;
    let when = s
        .capture_time
        .as_deref()
        .map(|c| format!(" at {}", escape(c)))
        .unwrap_or_default();
    let mut facts = vec![
        json!({"title": "Account", "value": escape(&s.account)}),
        json!({"title": "Region", "value": escape(&s.region)}),
        json!({"title": "Change", "value": format!("{}{when}", escape(s.change_type.as_str()))}),
        json!({"title": "Changed by", "value": escape(&actor_text(actor))}),
    ];
    if let Some(e) = &d.analysis.exposure {
        facts.push(json!({"title": "Attached to", "value": escape(&e.sentence())}));
    }
    json!({"type": "FactSet", "facts": facts})
}

/// The "Rules" title and the first `shown` rules, the rest counted.
fn rule_blocks(changes: &[Change], shown: usize) -> [Value; 2] {
    let title = json!({"type": "TextBlock", "text": format!("Rules ({})", changes.len()),
                 "weight": "Bolder", "separator": true});
    let lines: Vec<String> = changes.iter().take(shown).map(rule_line).collect();
    let mut rules = lines.join("\n\n");
    if changes.len() > shown {
        rules.push_str(&format!("\n\n(+{} more rules)", changes.len() - shown));
    }
    [title, text(rules)]
}

/// The "Other changes" title and the first `shown` of them, the rest counted.
fn property_blocks(properties: &[PropertyChange], shown: usize) -> [Value; 2] {
    let title = json!({"type": "TextBlock", "text": "Other changes", "weight": "Bolder", "separator": true});
    let show = |v: &Option<String>| {
        v.as_deref()
            .map(|v| format!("\"{}\"", escape(v)))
            .unwrap_or_else(|| "(none)".to_owned())
    };
    let lines: Vec<String> = properties
        .iter()
        .take(shown)
        .map(|p| {
            format!(
                "{}: {} → {}",
                escape(&p.name),
                show(&p.previous),
                show(&p.updated)
            )
        })
        .collect();
    let mut others = lines.join("\n\n");
    if properties.len() > shown {
        others.push_str(&format!("\n\n(+{} more changes)", properties.len() - shown));
    }
    [title, text(others)]
}

/// The card's action: the group in the AWS console, when its id makes a link.
fn actions(s: &Subject) -> Vec<Value> {
    console_link(&s.region, &s.resource_id)
        .map(
            |url| json!({"type": "Action.OpenUrl", "title": "Open in the AWS console", "url": url}),
        )
        .into_iter()
        .collect()
}

/// The Workflows message holding one Adaptive Card of `body` and `actions`.
fn envelope(body: Vec<Value>, actions: Vec<Value>) -> Value {
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                // 1.4 is what Teams renders on every client.
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body,
                "actions": actions,
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::{analyze, decide};
    use crate::core::message::{parse_message, ConfigMessage};
    use crate::core::settings::Policy;

    fn decision(v: Value) -> Decision {
        let ConfigMessage::ItemChange(c) = parse_message(&v).unwrap() else {
            panic!("not an item change")
        };
        decide(analyze(&c).unwrap(), &Policy::default())
    }

    fn fixture() -> Value {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_owners_links_are_open_url_actions() {
        let mut d = decision(fixture());
        d.analysis.links = vec![crate::core::link::Links {
            rule: "ingress tcp/3389 from 0.0.0.0/0".into(),
            revert: "https://act.example/?do=revert&t=1.a.b".into(),
            keep: "https://act.example/?do=keep&t=1.a.b".into(),
        }];
        let m = message(&d, &ActorLookup::Unknown("not looked up".into()));
        let actions = &m["attachments"][0]["content"]["actions"];
        let titles: Vec<&str> = actions
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["title"].as_str())
            .collect();
        assert_eq!(
            titles,
            [
                "Open in the AWS console",
                "Revert ingress tcp/3389 from 0.0.0.0/0",
                "Keep ingress tcp/3389 from 0.0.0.0/0"
            ]
        );
        assert_eq!(actions[1]["url"], "https://act.example/?do=revert&t=1.a.b");
    }

    #[test]
    fn an_adaptive_card_in_a_message_with_the_console_action() {
        let m = message(
            &decision(fixture()),
            &ActorLookup::Unknown("not looked up".into()),
        );
        assert_eq!(m["type"], "message");
        let a = &m["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        let card = &a["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(card["body"][0]["style"], "attention");
        assert_eq!(card["body"][0]["items"][0]["text"], "CRITICAL");
        assert_eq!(
            card["body"][0]["items"][1]["text"],
            "Security group sg-0123456789abcdef0 (shared-http) was changed"
        );
        assert_eq!(
            card["body"][3]["text"],
            "\\[critical\\] +ingress tcp/3389 from 0.0.0.0/0"
        );
        assert_eq!(card["body"][4]["text"], "To remove what was opened");
        let command = card["body"][5]["text"].as_str().unwrap();
        assert!(
            command.starts_with(
                "aws ec2 revoke-security-group-ingress --region us-east-1 --group-id \
                 sg-0123456789abcdef0 --ip-permissions 'IpProtocol=tcp,FromPort=3389"
            ),
            "{command}"
        );
        assert_eq!(card["body"][5]["fontType"], "Monospace");
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
        assert!(card["actions"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("#SecurityGroup:groupId=sg-0123456789abcdef0"));
    }

    /// Fifty rules with long descriptions full of Markdown punctuation would pass 28 KB, which
    /// Teams refuses for good: the card shows fewer and counts the rest.
    #[test]
    fn many_long_rules_keep_the_card_under_the_size_teams_accepts() {
        let mut d = decision(fixture());
        let template = d.analysis.changes[0].clone();
        d.analysis.changes = (0..200)
            .map(|i| {
                let mut c = template.clone();
                c.rule.from_port = Some(1000 + i);
                c.rule.to_port = Some(1000 + i);
                // AWS allows 255 characters; Markdown punctuation is escaped, then JSON-escaped.
                c.rule.description = Some(format!("{i} {}", "_".repeat(250)));
                c
            })
            .collect();
        let m = message(&d, &ActorLookup::Unknown("not looked up".into()));
        let size = serde_json::to_vec(&m).unwrap().len();
        assert!(size <= MAX_BYTES, "{size} bytes");
        let body = m["attachments"][0]["content"]["body"].as_array().unwrap();
        let rules = body
            .iter()
            .filter_map(|b| b["text"].as_str())
            .find(|t| t.contains("more rules)"))
            .expect("the rest are counted");
        let listed = rules.matches("\\[critical\\]").count()
            + rules.matches("\\[high\\]").count()
            + rules.matches("\\[medium\\]").count();
        assert!(listed > 0 && listed < MAX_RULES, "{listed} rules listed");
        assert!(
            rules.ends_with(&format!("(+{} more rules)", 200 - listed)),
            "{}",
            &rules[rules.len() - 40..]
        );
    }

    #[test]
    fn markdown_links_and_functions_in_values_are_escaped() {
        assert_eq!(
            escape("[click](https://evil.example) **x** {{DATE(2017-02-14T06:08:39Z)}} <at>all</at>"),
            "\\[click\\]\\(https://evil.example\\) \\*\\*x\\*\\* {\u{200B}{DATE\\(2017-02-14T06:08:39Z\\)}} \\<at\\>all\\</at\\>"
        );
        assert_eq!(escape("a\r\nb"), "a\\<U+000D\\>\\<U+000A\\>b");
    }
}
