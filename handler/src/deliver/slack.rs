//! The Slack message for a decision: Block Kit for an incoming webhook. The header names the
//! severity and the group, a coloured attachment holds the facts, the rules, the other changes,
//! the console link and why the channel got it.
//!
//! Every value from the resource is escaped as Slack asks (`&`, `<`, `>` become entities), so a
//! group named `<!channel>` shows those characters and pings nobody, and a description cannot
//! forge a link. Slack's limits are kept: at most 50 blocks, 3000 characters of section text, 150
//! of header text; rules beyond that are summed up as "(+N more rules)".
//! <https://api.slack.com/reference/surfaces/formatting#escaping>,
//! <https://api.slack.com/reference/block-kit/blocks>

use serde_json::{json, Value};

use crate::core::decide::{Decision, PropertyChange};
use crate::core::render::{actor_text, change_line, console_link, remedies, subject};
use crate::core::rules::{Action, Change};
use crate::core::severity::{classify, Severity};
use crate::core::text::one_line;
use crate::core::who::ActorLookup;

/// Slack's limit on blocks in one message.
pub const MAX_BLOCKS: usize = 50;
/// Slack's limit on the text of a section block.
pub const MAX_SECTION_CHARS: usize = 3000;
/// Slack's limit on a header block's text.
const MAX_HEADER_CHARS: usize = 150;
/// Slack's limit on one field of a section.
const MAX_FIELD_CHARS: usize = 2000;
/// Sections given to rules, so the rest of the message always fits in [`MAX_BLOCKS`].
const MAX_RULE_SECTIONS: usize = 30;
/// A rule line is cut past this, so one long description cannot take a whole section.
const MAX_RULE_LINE_CHARS: usize = 400;

/// Escapes a value for Slack text: the three characters Slack reads as control sequences.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in one_line(value).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// A value inside a code span: escaped, and a backtick cannot close the span early.
fn code(value: &str) -> String {
    format!("`{}`", escape(&value.replace('`', "'")))
}

/// The attachment colour of a severity.
pub fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "#B00020",
        Severity::High => "#E65100",
        Severity::Medium => "#F2C744",
        Severity::Low => "#2B7BB9",
        Severity::Info => "#9E9E9E",
    }
}

/// Cuts `text` to `max` characters, marking the cut.
fn cut(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The Revert and Keep links of each rule as URL buttons (no Slack app needed): at most five
/// rules' worth, each button's text within Block Kit's 75 characters.
fn link_buttons(remedies: &[crate::core::remedy::Remedy]) -> Vec<Value> {
    remedies
        .iter()
        .filter_map(|r| Some((r, r.revert_link.as_ref()?, r.keep_link.as_ref()?)))
        .take(5)
        .map(|(r, revert, keep)| {
            let label = |verb: &str| {
                let text = format!("{verb} {}", r.rule.trim_start_matches('+'));
                cut(text, 75)
            };
            json!({"type": "actions", "elements": [
                {"type": "button", "style": "danger", "url": revert,
                 "text": {"type": "plain_text", "text": label("Revert")}},
                {"type": "button", "url": keep,
                 "text": {"type": "plain_text", "text": label("Keep")}},
            ]})
        })
        .collect()
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(text, MAX_SECTION_CHARS)}})
}

fn rule_line(c: &Change) -> String {
    let mut line = format!("`[{}]` {}", classify(c), code(&change_line(c)));
    if let Some(desc) = &c.rule.description {
        line.push_str(&format!(" \"{}\"", escape(desc)));
    }
    cut(line, MAX_RULE_LINE_CHARS)
}

/// Rule lines packed into sections of at most [`MAX_SECTION_CHARS`], at most `max_sections` of
/// them; what does not fit is counted in a last line, "(+N more rules)".
fn rule_sections(title: &str, changes: &[&Change], max_sections: usize) -> Vec<Value> {
    let mut sections: Vec<String> = vec![format!("*{title} ({})*", changes.len())];
    let reserve = "\n(+100000 more rules)".len();
    let mut shown = 0;
    for c in changes {
        let line = rule_line(c);
        let last = sections.last_mut().expect("one section at least");
        let room = MAX_SECTION_CHARS - reserve;
        if last.chars().count() + 1 + line.chars().count() <= room {
            last.push('\n');
            last.push_str(&line);
        } else if sections.len() < max_sections {
            sections.push(line);
        } else {
            break;
        }
        shown += 1;
    }
    if shown < changes.len() {
        let last = sections.last_mut().expect("one section at least");
        last.push_str(&format!("\n(+{} more rules)", changes.len() - shown));
    }
    sections.into_iter().map(section).collect()
}

/// The Block Kit payload posted to a Slack incoming webhook.
pub fn message(d: &Decision, actor: &ActorLookup) -> Value {
    let a = &d.analysis;
    let s = &a.subject;
    let mut blocks = vec![facts(d, actor)];
    if !d.notes.is_empty() {
        let notes: Vec<String> = d.notes.iter().map(|n| format!("*{}*", escape(n))).collect();
        blocks.push(section(notes.join("\n")));
    }
    blocks.extend(rule_blocks(&a.changes));
    let remedies = remedies(d);
    if !remedies.is_empty() {
        let lines: Vec<String> = remedies.iter().map(|r| code(&r.command)).collect();
        blocks.push(section(format!(
            "*To remove what was opened* (each command removes that rule and nothing else):\n{}",
            lines.join("\n")
        )));
        blocks.extend(link_buttons(&remedies));
    }
    if !a.properties.is_empty() {
        blocks.push(other_changes(&a.properties));
    }
    if let Some(link) = console_link(&s.region, &s.resource_id) {
        blocks.push(section(format!(
            "<{link}|Open the security group in the AWS console>"
        )));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": cut(format!("Why this channel got it: {}", escape(&d.reason())), MAX_FIELD_CHARS)}]
    }));
    json!({
        // The notification's text (and what clients without blocks show).
        "text": escape(&subject(d)),
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": header(d)}}],
        "attachments": [{"color": colour(a.severity), "blocks": blocks}]
    })
}

/// How many blocks a message holds, the header's and the attachments' together.
pub fn block_count(message: &Value) -> usize {
    let top = message["blocks"].as_array().map_or(0, Vec::len);
    let attached: usize = message["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["blocks"].as_array().map_or(0, Vec::len))
        .sum();
    top + attached
}

/// The header text: severity and group, within [`MAX_HEADER_CHARS`].
fn header(d: &Decision) -> String {
    let a = &d.analysis;
    let s = &a.subject;
    let severity = a.severity.as_str().to_uppercase();
    let name = s
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let test = if a.test { "TEST " } else { "" };
    cut(
        escape(&format!(
            "{test}{severity}: security group {}{name} was changed",
            s.resource_id
        )),
        MAX_HEADER_CHARS,
    )
}

/// The section of fields: severity, account and region, change, actor.
fn facts(d: &Decision, actor: &ActorLookup) -> Value {
    let a = &d.analysis;
    let s = &a.subject;
    let when = s
        .capture_time
        .as_deref()
        .map(|c| format!(" at {}", escape(c)))
        .unwrap_or_default();
    let field = |title: &str, value: String| json!({"type": "mrkdwn", "text": cut(format!("*{title}*\n{value}"), MAX_FIELD_CHARS)});
    let mut fields = vec![
        field("Severity", a.severity.as_str().to_uppercase()),
        field(
            "Account / region",
            format!("{} / {}", escape(&s.account), escape(&s.region)),
        ),
        field(
            "Change",
            format!("{}{when}", escape(s.change_type.as_str())),
        ),
        field("Changed by", escape(&actor_text(actor))),
    ];
    if let Some(e) = &a.exposure {
        fields.push(field("Attached to", escape(&e.sentence())));
    }
    json!({"type": "section", "fields": fields})
}

/// The sections of rules added, then removed, sharing [`MAX_RULE_SECTIONS`] between them.
fn rule_blocks(changes: &[Change]) -> Vec<Value> {
    let mut blocks = Vec::new();
    let mut budget = MAX_RULE_SECTIONS;
    for (title, action) in [
        ("Rules added", Action::Added),
        ("Rules removed", Action::Removed),
    ] {
        let list: Vec<&Change> = changes.iter().filter(|c| c.action == action).collect();
        if list.is_empty() {
            continue;
        }
        let sections = rule_sections(title, &list, budget.max(1));
        budget = budget.saturating_sub(sections.len());
        blocks.extend(sections);
    }
    blocks
}

/// The "Other changes" section: each property's previous and updated value, one per line.
fn other_changes(properties: &[PropertyChange]) -> Value {
    let show = |v: &Option<String>| {
        v.as_deref()
            .map(|v| format!("\"{}\"", escape(v)))
            .unwrap_or_else(|| "(none)".to_owned())
    };
    let lines: Vec<String> = properties
        .iter()
        .map(|p| {
            cut(
                format!(
                    "{}: {} → {}",
                    escape(&p.name),
                    show(&p.previous),
                    show(&p.updated)
                ),
                MAX_RULE_LINE_CHARS,
            )
        })
        .collect();
    section(format!("*Other changes*\n{}", lines.join("\n")))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::decide::{analyze, decide};
    use crate::core::message::{parse_message, ConfigMessage};
    use crate::core::settings::Policy;
    use serde_json::json;

    fn fixture() -> Value {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn decision(v: Value) -> Decision {
        let ConfigMessage::ItemChange(c) = parse_message(&v).unwrap() else {
            panic!("not an item change")
        };
        decide(analyze(&c).unwrap(), &Policy::default())
    }

    fn unknown() -> ActorLookup {
        ActorLookup::Unknown("the CloudTrail lookup failed".into())
    }

    /// Every text of a message, wherever it is.
    fn texts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|x| texts(x, out)),
            Value::Object(o) => o.values().for_each(|x| texts(x, out)),
            _ => {}
        }
    }

    #[test]
    fn the_rdp_change_reads_as_a_critical_message() {
        let m = message(&decision(fixture()), &unknown());
        assert_eq!(
            m["blocks"][0]["text"]["text"],
            "CRITICAL: security group sg-0123456789abcdef0 (shared-http) was changed"
        );
        assert_eq!(m["attachments"][0]["color"], "#B00020");
        let blocks = &m["attachments"][0]["blocks"];
        assert_eq!(blocks[0]["fields"][0]["text"], "*Severity*\nCRITICAL");
        assert_eq!(
            blocks[1]["text"]["text"],
            "*Rules added (1)*\n`[critical]` `+ingress tcp/3389 from 0.0.0.0/0`"
        );
        assert_eq!(
            blocks[2]["text"]["text"],
            "*To remove what was opened* (each command removes that rule and nothing else):\n\
             `aws ec2 revoke-security-group-ingress --region us-east-1 --group-id \
             sg-0123456789abcdef0 --ip-permissions \
             'IpProtocol=tcp,FromPort=3389,ToPort=3389,IpRanges=[{CidrIp=0.0.0.0/0}]'`"
        );
        assert_eq!(
            blocks[3]["text"]["text"],
            "<https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#SecurityGroup:groupId=sg-0123456789abcdef0|Open the security group in the AWS console>"
        );
        assert_eq!(
            blocks[4]["elements"][0]["text"],
            "Why this channel got it: tag NotifyOnChange=Yes; recipients from tag OwnerDL"
        );
        assert!(m["text"]
            .as_str()
            .unwrap()
            .starts_with("[sgwatch CRITICAL] sg-0123456789abcdef0"));
    }

    #[test]
    fn the_owners_links_are_url_buttons_under_the_commands() {
        let mut d = decision(fixture());
        d.analysis.links = vec![crate::core::link::Links {
            rule: "ingress tcp/3389 from 0.0.0.0/0".into(),
            revert: "https://act.example/?do=revert&t=1.a.b".into(),
            keep: "https://act.example/?do=keep&t=1.a.b".into(),
        }];
        let m = message(&d, &unknown());
        let actions: Vec<&Value> = m["attachments"][0]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "actions")
            .collect();
        assert_eq!(actions.len(), 1, "{m:#}");
        let buttons = &actions[0]["elements"];
        assert_eq!(buttons[0]["url"], "https://act.example/?do=revert&t=1.a.b");
        assert_eq!(buttons[0]["style"], "danger");
        assert_eq!(
            buttons[0]["text"]["text"],
            "Revert ingress tcp/3389 from 0.0.0.0/0"
        );
        assert_eq!(buttons[1]["url"], "https://act.example/?do=keep&t=1.a.b");
        // Without links, no buttons.
        let plain = message(&decision(fixture()), &unknown());
        assert!(!plain.to_string().contains("\"actions\""));
    }

    #[test]
    fn a_group_named_channel_pings_nobody_and_forges_no_link() {
        let mut v = fixture();
        v["configurationItem"]["resourceName"] = json!("<!channel> & <https://evil.example|click>");
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["ipv4Ranges"][0]["description"] = json!("<!here> `x` <@U123>");
        let m = message(&decision(v), &unknown());
        let mut all = Vec::new();
        texts(&m, &mut all);
        for t in &all {
            assert!(!t.contains("<!"), "{t}");
            assert!(!t.contains("<@"), "{t}");
            assert!(!t.contains("<https://evil"), "{t}");
        }
        assert!(m["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("(&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;)"));
        let rules = m["attachments"][0]["blocks"][1]["text"]["text"]
            .as_str()
            .unwrap();
        assert!(
            rules.contains("\"&lt;!here&gt; `x` &lt;@U123&gt;\""),
            "{rules}"
        );
    }

    #[test]
    fn many_rules_stay_within_slacks_limits_and_say_how_many_more() {
        let mut v = fixture();
        let ranges: Vec<Value> = (0..3000)
            .map(|i| json!({"cidrIp": format!("10.{}.{}.0/24", i / 256, i % 256), "description": "d".repeat(120)}))
            .collect();
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["ipv4Ranges"] = json!(ranges);
        let d = decision(v);
        let total = d.analysis.changes.len();
        assert!(total > 1000, "{total}");
        let m = message(&d, &unknown());
        assert!(block_count(&m) <= MAX_BLOCKS, "{}", block_count(&m));
        let mut all = Vec::new();
        texts(&m, &mut all);
        assert!(all.iter().all(|t| t.chars().count() <= MAX_SECTION_CHARS));
        let joined = all.join("\n");
        let more = joined
            .lines()
            .find(|l| l.starts_with("(+") && l.ends_with(" more rules)"))
            .expect("a (+N more rules) line");
        let n: usize = more[2..more.len() - " more rules)".len()].parse().unwrap();
        let shown = joined.matches("`[").count();
        assert_eq!(shown + n, total, "every rule shown or counted");
    }
}
