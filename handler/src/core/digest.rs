//! The daily digest: the changes held for a recipient ([`crate::core::quiet`]), one line each,
//! grouped by group, as one email. Each line is stored when the change is held and read back
//! when the digest goes; it carries what the email shows and nothing it must look up again.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute, encode_text};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::core::decide::Decision;
use crate::core::link::rfc3339;
use crate::core::render::{actor_text, console_link, gist, one_line, Email};
use crate::core::visible::stripped;
use crate::core::who::ActorLookup;

/// The `source` of the stack's daily schedule event that sends the digests.
pub const DIGEST_SOURCE: &str = "sgwatch.digest";
/// Its `detail-type`.
pub const DIGEST_DETAIL_TYPE: &str = "sgwatch digest";

/// The digests are due: every recipient's, or (a digest parked in the failure queue and
/// replayed) one recipient's, with the lines it held, which are held again first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Due {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

/// Whether `event` is the schedule's (or a replayed digest's).
pub fn is_due(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some(DIGEST_SOURCE)
        && event.get("detail-type").and_then(Value::as_str) == Some(DIGEST_DETAIL_TYPE)
}

/// What a due event asks for; a detail it cannot read asks for every recipient's digest.
pub fn parse_due(event: &Value) -> Due {
    event
        .get("detail")
        .cloned()
        .and_then(|d| serde_json::from_value(d).ok())
        .unwrap_or_default()
}

/// The event that sends `recipient`'s digest of `lines` again (as parked).
pub fn due_event(recipient: &str, lines: &[String]) -> Value {
    serde_json::json!({
        "source": DIGEST_SOURCE,
        "detail-type": DIGEST_DETAIL_TYPE,
        "detail": Due { recipient: Some(recipient.to_owned()), lines: lines.to_vec() },
    })
}

/// One change held for the digest, as stored (JSON in a string set, so a retried hold stores it
/// once: every field is the change's own, never the time of the attempt).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Line {
    /// When the change was made (Config's capture time, RFC 3339): lines sort by it.
    pub at: String,
    /// The change's ledger key: what was told, and what `verify` finds.
    pub key: String,
    pub account: String,
    pub region: String,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `LOW`, `INFO`, …
    pub severity: String,
    /// What changed, as the alert's subject says it.
    pub gist: String,
    /// Who made it, as the alert's "Changed by" line says it.
    pub by: String,
    /// Why it is in the digest ([`crate::core::quiet::Routed::why`]).
    pub why: String,
    /// Epoch seconds before which it is not sent: the end of a quiet period; 0 for the next
    /// digest.
    #[serde(default)]
    pub not_before: u64,
    /// Whom a coalesced change is for (a digest's line is kept per recipient instead).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// A coalesced change that was told at once (CRITICAL): the coalesced email says so.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub told: bool,
}

impl Line {
    /// The line of a change routed to the digest at `now`, its time Config's or `now`.
    pub fn of(
        d: &Decision,
        actor: &ActorLookup,
        key: &str,
        why: &str,
        not_before: u64,
        now: u64,
    ) -> Line {
        let s = &d.analysis.subject;
        Line {
            at: s.capture_time.clone().unwrap_or_else(|| rfc3339(now)),
            key: key.to_owned(),
            account: s.account.clone(),
            region: s.region.clone(),
            group: s.resource_id.clone(),
            name: s.name.clone(),
            severity: d.analysis.severity.as_str().to_uppercase(),
            gist: gist(d),
            by: actor_text(actor),
            why: why.to_owned(),
            not_before,
            to: Vec::new(),
            told: false,
        }
    }

    /// As stored.
    pub fn stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// From storage; `None` when it is not a line.
    pub fn parse(stored: &str) -> Option<Line> {
        serde_json::from_str(stored).ok()
    }

    /// Whether it goes in a digest sent at `now`.
    pub fn due(&self, now: u64) -> bool {
        self.not_before <= now
    }
}

const SUBJECT_MAX_CHARS: usize = 200;

/// The digest of `lines` (in any order) for one recipient.
pub fn email(lines: &[Line]) -> Email {
    let mut by_group: BTreeMap<(&str, &str, &str), Vec<&Line>> = BTreeMap::new();
    for l in lines {
        by_group
            .entry((&l.account, &l.region, &l.group))
            .or_default()
            .push(l);
    }
    for group in by_group.values_mut() {
        group.sort();
    }
    let groups = by_group.len();
    let plural = |n: usize, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    let count = format!(
        "{} to {}",
        plural(lines.len(), "change", "changes"),
        plural(groups, "security group", "security groups")
    );
    let subject: String = one(&stripped(&format!("[sgwatch digest] {count}")))
        .chars()
        .take(SUBJECT_MAX_CHARS)
        .collect();
    let mut text = format!(
        "sgwatch digest: {count}, held from immediate email because each was low in severity, made by a trusted principal, or made during its group's quiet period.\n"
    );
    let mut html = format!(
        "<html><body style=\"font-family:sans-serif;overflow-wrap:anywhere\"><p>sgwatch digest: {}, held from immediate email because each was low in severity, made by a trusted principal, or made during its group's quiet period.</p>",
        encode_text(&count)
    );
    for ((account, region, group), lines) in &by_group {
        group_section(&mut text, &mut html, (account, region, group), lines);
    }
    text.push_str("\nCRITICAL changes are never held: they were emailed when they were made.\n");
    html.push_str("<p>CRITICAL changes are never held: they were emailed when they were made.</p></body></html>");
    Email {
        subject,
        text,
        html,
    }
}

/// The `source` of the message that wakes a group's coalesced email when its window ends.
pub const WAKE_SOURCE: &str = "sgwatch.coalesce";
/// Its `detail-type`.
pub const WAKE_DETAIL_TYPE: &str = "sgwatch coalesced";

/// A group's coalescing window has ended (or, early, will end at `until`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    pub account: String,
    pub region: String,
    pub group: String,
    /// When the window ends, epoch seconds.
    pub until: u64,
    /// Not a window: the end of the clock hour (its first second) whose emails passed the rate
    /// limit, for its summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_of_hour: Option<u64>,
}

/// Whether `event` wakes a group's coalesced email.
pub fn is_wake(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some(WAKE_SOURCE)
        && event.get("detail-type").and_then(Value::as_str) == Some(WAKE_DETAIL_TYPE)
}

/// The wake's detail, or why it cannot be read.
pub fn parse_wake(event: &Value) -> Result<Wake, String> {
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    serde_json::from_value(detail).map_err(|e| format!("a coalescing wake without its group: {e}"))
}

/// The message that wakes `wake`'s group.
pub fn wake_event(wake: &Wake) -> Value {
    serde_json::json!({"source": WAKE_SOURCE, "detail-type": WAKE_DETAIL_TYPE, "detail": wake})
}

/// One email for a group's changes within its coalescing window, in the order they were made.
pub fn coalesced_email(lines: &[Line], window_secs: u64) -> Email {
    let mut lines: Vec<&Line> = lines.iter().collect();
    lines.sort();
    let Some(last) = lines.last() else {
        return email(&[]);
    };
    let worst = lines
        .iter()
        .map(|l| l.severity.as_str())
        .max_by_key(|s| rank(s))
        .unwrap_or("INFO");
    let name = lines
        .iter()
        .rev()
        .find_map(|l| l.name.as_deref())
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let subject: String = one(&stripped(&format!(
        "[sgwatch {worst}] {}{name} {}/{}: {} changes within {window_secs} s",
        last.group,
        last.account,
        last.region,
        lines.len()
    )))
    .chars()
    .take(SUBJECT_MAX_CHARS)
    .collect();
    let heading = format!(
        "sgwatch: security group {}{} in {}/{} was changed {} times within {window_secs} seconds, in this order:",
        one_line(&last.group),
        one_line(&name),
        one_line(&last.account),
        one_line(&last.region),
        lines.len()
    );
    let mut text = format!("{heading}\n\n");
    let mut html = format!(
        "<html><body style=\"font-family:sans-serif;overflow-wrap:anywhere\"><p>{}</p><ol>",
        encode_text(&heading)
    );
    for l in &lines {
        let mut line = one(&format!(
            "{} {} {}, by {}",
            one_line(&l.at),
            one_line(&l.severity),
            one_line(&l.gist),
            one_line(&l.by)
        ));
        if l.told {
            line.push_str(" (told at once: CRITICAL is never delayed)");
        }
        let _ = writeln!(text, "  - {line}");
        let _ = write!(html, "<li>{}</li>", encode_text(&line));
    }
    html.push_str("</ol>");
    if let Some(link) = console_link(&last.region, &last.group) {
        let _ = writeln!(text, "\nOpen in the console: {link}");
        let _ = write!(
            html,
            "<p><a href=\"{}\">Open in the console</a></p>",
            encode_double_quoted_attribute(&link)
        );
    }
    html.push_str("</body></html>");
    Email {
        subject,
        text,
        html,
    }
}

/// The summary of an hour in which the rate limit held back `held` changes to a group after
/// `max` emails.
pub fn rate_summary_email(w: &Wake, hour: u64, max: u64, held: u64) -> Email {
    let (from, to) = (rfc3339(hour), rfc3339(hour + 3600));
    let changes = if held == 1 { "change" } else { "changes" };
    let subject: String = one(&stripped(&format!(
        "[sgwatch] {} {}/{}: {held} more {changes} held back for the digest",
        w.group, w.account, w.region
    )))
    .chars()
    .take(SUBJECT_MAX_CHARS)
    .collect();
    let mut lines = vec![
        format!(
            "sgwatch emailed you {max} times about security group {} in {}/{} between {from} and {to}, its limit for an hour.",
            one_line(&w.group),
            one_line(&w.account),
            one_line(&w.region)
        ),
        format!("The {held} {changes} made after that are in your daily digest, with the group's other held changes."),
        "CRITICAL changes were emailed at once, as always.".to_owned(),
    ];
    if let Some(link) = console_link(&w.region, &w.group) {
        lines.push(format!("Open the group in the console: {link}"));
    }
    let html = format!(
        "<html><body style=\"font-family:sans-serif;overflow-wrap:anywhere\">{}</body></html>",
        lines
            .iter()
            .map(|l| format!("<p>{}</p>", encode_text(l)))
            .collect::<String>()
    );
    Email {
        subject,
        text: lines.join("\n") + "\n",
        html,
    }
}

/// The order of severities as lines write them.
fn rank(severity: &str) -> u8 {
    match severity {
        "CRITICAL" => 4,
        "HIGH" => 3,
        "MEDIUM" => 2,
        "LOW" => 1,
        _ => 0,
    }
}

/// One group's part of the digest: its heading, console link and one line per change.
fn group_section(
    text: &mut String,
    html: &mut String,
    (account, region, group): (&str, &str, &str),
    lines: &[&Line],
) {
    let name = lines
        .iter()
        .rev()
        .find_map(|l| l.name.as_deref())
        .map(|n| format!(" ({})", one_line(n)))
        .unwrap_or_default();
    let heading = format!(
        "{}{name} in {}/{}",
        one_line(group),
        one_line(account),
        one_line(region)
    );
    let link = console_link(region, group);
    let _ = write!(text, "\n{heading}\n");
    if let Some(link) = &link {
        let _ = writeln!(text, "  {link}");
    }
    let _ = write!(
        html,
        "<h3 style=\"margin-bottom:4px\">{}</h3>",
        encode_text(&heading)
    );
    if let Some(link) = &link {
        let _ = write!(
            html,
            "<p style=\"margin-top:0\"><a href=\"{}\">Open the group in the console</a></p>",
            encode_double_quoted_attribute(link)
        );
    }
    html.push_str("<ul>");
    for l in lines {
        let line = line_text(l);
        let _ = writeln!(text, "  - {line}");
        let _ = write!(html, "<li>{}</li>", encode_text(&line));
    }
    html.push_str("</ul>");
}

/// `2026-12-06T09:13:58Z LOW +ingress tcp/22 from 10.0.0.0/8, by arn:… (why)`, on one line.
fn line_text(l: &Line) -> String {
    one(&format!(
        "{} {} {}, by {} ({})",
        one_line(&l.at),
        one_line(&l.severity),
        one_line(&l.gist),
        one_line(&l.by),
        one_line(&l.why)
    ))
}

/// Whitespace runs as one space.
fn one(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(group: &str, at: &str, gist: &str) -> Line {
        Line {
            at: at.into(),
            key: format!("111122223333/us-east-1/{group}/{at}"),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            group: group.into(),
            name: Some("web".into()),
            severity: "LOW".into(),
            gist: gist.into(),
            by: "arn:aws:iam::111122223333:role/deploy-prod".into(),
            why: "made by a trusted principal (pattern arn:aws:iam::111122223333:role/deploy-*) and below HIGH".into(),
            not_before: 0,
            to: Vec::new(),
            told: false,
        }
    }

    #[test]
    fn the_digest_groups_by_group_one_line_per_change_in_time_order() {
        let lines = [
            line(
                "sg-0bbb",
                "2026-12-06T10:00:00Z",
                "+ingress tcp/22 from 10.0.0.0/8",
            ),
            line(
                "sg-0aaa",
                "2026-12-06T09:30:00Z",
                "-ingress tcp/8080 from 10.1.0.0/16",
            ),
            line("sg-0bbb", "2026-12-06T09:00:00Z", "changed Description"),
        ];
        let e = email(&lines);
        assert_eq!(e.subject, "[sgwatch digest] 3 changes to 2 security groups");
        let t = &e.text;
        let a = t.find("sg-0aaa (web) in 111122223333/us-east-1").unwrap();
        let b = t.find("sg-0bbb (web) in 111122223333/us-east-1").unwrap();
        let first = t.find("2026-12-06T09:00:00Z LOW changed Description, by arn:aws:iam::111122223333:role/deploy-prod (made by a trusted principal").unwrap();
        let second = t
            .find("2026-12-06T10:00:00Z LOW +ingress tcp/22 from 10.0.0.0/8")
            .unwrap();
        assert!(a < b && b < first && first < second, "{t}");
        assert!(t.contains("https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#SecurityGroup:groupId=sg-0bbb"), "{t}");
        assert!(e.html.contains("<a href=\"https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#SecurityGroup:groupId=sg-0aaa\">"), "{}", e.html);
    }

    #[test]
    fn hostile_values_are_escaped_and_kept_on_one_line() {
        let mut l = line("sg-0aaa", "2026-12-06T09:00:00Z", "changed Description");
        l.name = Some("<img src=x onerror=alert(1)>\nBcc: evil@x.example".into());
        l.by = "arn:aws:iam::1:user/\u{202e}nimda".into();
        let e = email(&[l]);
        assert!(!e.html.contains("<img"), "{}", e.html);
        assert!(
            e.html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{}",
            e.html
        );
        assert!(!e.text.contains("\nBcc:"), "{}", e.text);
        assert!(
            e.text.contains("<U+000A>Bcc:") && e.text.contains("<U+202E>nimda"),
            "{}",
            e.text
        );
        assert!(!e.subject.contains('\n'));
    }

    #[test]
    fn a_line_is_stored_and_read_back_the_same_and_due_after_its_time() {
        let mut l = line("sg-0aaa", "2026-12-06T09:00:00Z", "changed Description");
        assert_eq!(Line::parse(&l.stored()), Some(l.clone()));
        assert_eq!(
            l.stored(),
            l.clone().stored(),
            "a retried hold stores the same string"
        );
        assert!(l.due(0));
        l.not_before = 100;
        assert!(!l.due(99) && l.due(100));
        assert_eq!(Line::parse("not json"), None);
    }

    #[test]
    fn a_replayed_digest_says_whose_and_which_lines() {
        let e = due_event("a@x.example", &["l1".to_owned()]);
        assert!(is_due(&e));
        assert_eq!(
            parse_due(&e),
            Due {
                recipient: Some("a@x.example".into()),
                lines: vec!["l1".into()]
            }
        );
        let schedule = serde_json::json!({"source": "sgwatch.digest", "detail-type": "sgwatch digest", "detail": {}});
        assert_eq!(parse_due(&schedule), Due::default());
    }
}
