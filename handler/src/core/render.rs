//! The email: a one-line subject, a text part and an HTML part.
//!
//! Every value that comes from the resource (names, descriptions, tag values, sources) is
//! escaped in the HTML part and kept on one line in the subject and text part, so a hostile
//! group name can neither inject markup nor forge header or body lines. Characters that make a
//! value read other than it is ([`crate::core::visible`]) are dropped from the subject and shown as
//! `<U+202E>` in both parts.

use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute, encode_text};

use crate::core::decide::{Decision, PropertyChange};
use crate::core::message::{ChangeType, Facts};
use crate::core::remedy::{self, Remedy};
use crate::core::rules::{Action, Change};
use crate::core::severity::{classify, source_note};
pub use crate::core::text::one_line;
use crate::core::text::time_of_day;
use crate::core::visible::{stripped, visible};
use crate::core::who::ActorLookup;

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Longest subject we send; SES and mail clients cope with more, people do not.
const SUBJECT_MAX_CHARS: usize = 200;

/// The opening body tag of the HTML part; a notice goes right after it. Long values (ARNs,
/// timestamps) may break anywhere, so the tables fit a phone's width.
const BODY_OPEN: &str = "<body style=\"font-family:sans-serif;overflow-wrap:anywhere\">";

impl Email {
    /// The same email with a notice on top, e.g. why the fallback recipient receives it.
    pub fn with_notice(&self, notice: &str) -> Email {
        let notice = one_line(notice);
        Email {
            subject: self.subject.clone(),
            text: format!("NOTE: {notice}\n\n{}", self.text),
            html: self.html.replacen(
                BODY_OPEN,
                &format!(
                    "{BODY_OPEN}<p style=\"background:#fff3cd;padding:8px\"><strong>Note:</strong> {}</p>",
                    encode_text(&notice)
                ),
                1,
            ),
        }
    }
}

/// The console page of a security group, when the id and region look like AWS's.
pub fn console_link(region: &str, group_id: &str) -> Option<String> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    (plain(region) && plain(group_id)).then(|| {
        format!("https://{region}.console.aws.amazon.com/ec2/home?region={region}#SecurityGroup:groupId={group_id}")
    })
}

/// The CloudTrail console's page of one event, when the id and region look like AWS's (an event
/// id is a UUID).
pub fn cloudtrail_link(region: &str, event_id: &str) -> Option<String> {
    let region_ok = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let id_ok = event_id.len() == 36 && event_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    (region_ok && id_ok).then(|| {
        format!("https://{region}.console.aws.amazon.com/cloudtrailv2/home?region={region}#/events/{event_id}")
    })
}

/// The CloudTrail links of the calls that made the change, each once.
fn cloudtrail_links(d: &Decision, actor: &ActorLookup) -> Vec<String> {
    let mut links: Vec<String> = Vec::new();
    for id in actor.event_ids() {
        if let Some(link) = cloudtrail_link(&d.analysis.subject.region, id) {
            if !links.contains(&link) {
                links.push(link);
            }
        }
    }
    links
}

/// `+ingress tcp/3389 from 0.0.0.0/0`, and what a prefix list was found to hold:
/// `+ingress tcp/22 from pl-1 (prefix list pl-1: entries unknown)`. As the resource has it.
fn change_text(change: &Change) -> String {
    let sign = match change.action {
        Action::Added => '+',
        Action::Removed => '-',
    };
    match source_note(change) {
        Some(note) => format!("{sign}{} ({note})", change.rule),
        None => format!("{sign}{}", change.rule),
    }
}

/// [`change_text`] on one line, showing what it hides.
pub(crate) fn change_line(change: &Change) -> String {
    one_line(&change_text(change))
}

/// What the subject says after the colon: the change in a few words.
pub fn gist(d: &Decision) -> String {
    let a = &d.analysis;
    let mut out = match a.subject.change_type.as_str() {
        "CREATE" => "group created".to_owned(),
        "DELETE" => format!("group deleted ({} rules)", a.changes.len()),
        _ => String::new(),
    };
    if a.subject.change_type != ChangeType::Delete {
        if let Some(first) = a.changes.first() {
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&change_text(first));
            if a.changes.len() > 1 {
                let _ = write!(out, " (+{} more)", a.changes.len() - 1);
            }
        } else if !a.properties.is_empty() {
            // Tags by name, once: Config's positions (`Tags.0`) mean nothing to a person.
            let mut all: Vec<&str> = Vec::new();
            for p in &a.properties {
                let name = if is_tags(p) { "tags" } else { p.name.as_str() };
                if !all.contains(&name) {
                    all.push(name);
                }
            }
            let names: Vec<&str> = all.iter().take(3).copied().collect();
            let more = all.len().saturating_sub(3);
            if !out.is_empty() {
                out.push_str(", ");
            }
            out.push_str(&format!("changed {}", names.join(", ")));
            if more > 0 {
                let _ = write!(out, " (+{more} more)");
            }
        }
    }
    if out.is_empty() {
        out.push_str("changed");
    }
    out
}

/// The subject line: severity, group, account/region and the gist. Never holds CR, LF or any
/// other control or format character: there is no room to show them, so they are dropped.
pub fn subject(d: &Decision) -> String {
    let a = &d.analysis;
    let s = &a.subject;
    let test = if a.test { "TEST " } else { "" };
    let name = s
        .name
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let line = stripped(&format!(
        "[sgwatch {test}{}] {}{name} {}/{}: {}",
        a.severity.as_str().to_uppercase(),
        s.resource_id,
        s.account,
        s.region,
        gist(d)
    ));
    if line.chars().count() > SUBJECT_MAX_CHARS {
        let mut cut: String = line.chars().take(SUBJECT_MAX_CHARS - 1).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

/// The "Changed by" line: who, from where, which calls.
pub fn actor_text(actor: &ActorLookup) -> String {
    match actor {
        // `arn:… from 203.0.113.7 (AuthorizeSecurityGroupIngress at 09:13:58Z); arn:… (…)`
        ActorLookup::Feed(callers) if !callers.is_empty() => callers
            .iter()
            .map(|c| {
                let mut s = one_line(&c.principal);
                if let Some(ip) = &c.source_ip {
                    let _ = write!(s, " from {}", one_line(ip));
                }
                let calls: Vec<String> = c
                    .calls
                    .iter()
                    .map(|k| {
                        one_line(&format!(
                            "{} at {}",
                            k.event_name,
                            time_of_day(&k.event_time)
                        ))
                    })
                    .collect();
                let _ = write!(s, " ({})", calls.join(", "));
                s
            })
            .collect::<Vec<_>>()
            .join("; "),
        ActorLookup::Feed(_) => "unknown (the actor feed named no caller)".to_owned(),
        ActorLookup::Found(a) => {
            let mut s = one_line(a.arn.as_deref().unwrap_or("an unnamed principal"));
            if let Some(ip) = &a.source_ip {
                let _ = write!(s, " from {}", one_line(ip));
            }
            if let Some(t) = &a.time {
                let _ = write!(s, " at {}", one_line(t));
            }
            if let Some(e) = &a.event_name {
                let _ = write!(s, " ({})", one_line(e));
            }
            s
        }
        ActorLookup::Unknown(why) => format!("unknown ({})", one_line(why)),
    }
}

/// Renders the email for a decision to notify.
pub fn render(d: &Decision, actor: &ActorLookup) -> Email {
    Email {
        subject: subject(d),
        text: text(d, actor),
        html: html(d, actor),
    }
}

fn text(d: &Decision, actor: &ActorLookup) -> String {
    let a = &d.analysis;
    let s = &a.subject;
    let mut t = String::new();
    if a.test {
        t.push_str("THIS IS A TEST sent by `sgwatch test-event`: nothing necessarily changed.\n\n");
    }
    let name = s
        .name
        .as_deref()
        .map(|n| format!(" ({})", one_line(n)))
        .unwrap_or_default();
    let _ = writeln!(
        t,
        "sgwatch: security group {}{name} was changed.\n",
        one_line(&s.resource_id)
    );
    let _ = writeln!(t, "Severity:   {}", a.severity.as_str().to_uppercase());
    let _ = writeln!(t, "Account:    {}", one_line(&s.account_label()));
    let _ = writeln!(t, "Region:     {}", one_line(&s.region));
    let when = s
        .capture_time
        .as_deref()
        .map(|c| format!(" at {}", one_line(c)))
        .unwrap_or_default();
    let _ = writeln!(t, "Change:     {}{when}", one_line(s.change_type.as_str()));
    let _ = writeln!(t, "Changed by: {}", actor_text(actor));
    if let Some(e) = &a.exposure {
        let _ = writeln!(t, "Attached to: {}", one_line(&e.sentence()));
    }
    if !d.notes.is_empty() {
        t.push_str("\nWho is told:\n");
        for note in &d.notes {
            let _ = writeln!(t, "  {}", one_line(note));
        }
    }
    for (title, action) in [
        ("Rules added", Action::Added),
        ("Rules removed", Action::Removed),
    ] {
        let list: Vec<&Change> = a.changes.iter().filter(|c| c.action == action).collect();
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(t, "\n{title} ({}):", list.len());
        for c in list {
            let _ = write!(t, "  [{}] {}", classify(c), change_line(c));
            if let Some(desc) = &c.rule.description {
                let _ = write!(t, "  \"{}\"", one_line(desc));
            }
            t.push('\n');
        }
    }
    text_remedies(&mut t, d);
    let tags = tag_lines(d);
    if !tags.is_empty() {
        t.push_str("\nTags:\n");
        for line in &tags {
            let _ = writeln!(t, "  {}", one_line(line));
        }
    }
    text_other_changes(&mut t, d);
    if let Some(link) = console_link(&s.region, &s.resource_id) {
        let _ = writeln!(t, "\nOpen in the console: {link}");
    }
    for link in cloudtrail_links(d, actor) {
        let _ = writeln!(t, "The call in CloudTrail: {link}");
    }
    let _ = writeln!(t, "\nWhy you got this: {}", one_line(&d.reason()));
    t.push_str("-- \nsgwatch\n");
    t
}

/// The text part's commands (and links) that remove what was opened.
fn text_remedies(t: &mut String, d: &Decision) {
    let remedies = remedies(d);
    if !remedies.is_empty() {
        t.push_str(
            "\nTo remove what was opened (each command removes that rule and nothing else):\n",
        );
        for r in &remedies {
            let _ = writeln!(t, "  {}\n    {}", r.rule, r.command);
            if let (Some(revert), Some(keep)) = (&r.revert_link, &r.keep_link) {
                let _ = writeln!(t, "    Revert this rule: {revert}\n    Keep it: {keep}");
            }
        }
        if remedies.iter().any(|r| r.revert_link.is_some()) {
            t.push_str(LINKS_NOTE);
            t.push('\n');
        }
    }
}

/// The text part's changes besides rules and tags.
fn text_other_changes(t: &mut String, d: &Decision) {
    let a = &d.analysis;
    let others: Vec<&PropertyChange> = a.properties.iter().filter(|p| !is_tags(p)).collect();
    if !others.is_empty() {
        t.push_str("\nOther changes:\n");
        for p in others {
            let show = |v: &Option<String>| {
                v.as_deref()
                    .map(|v| format!("\"{}\"", one_line(v)))
                    .unwrap_or_else(|| "(none)".to_owned())
            };
            let _ = writeln!(
                t,
                "  {}: {} -> {}",
                one_line(&p.name),
                show(&p.previous),
                show(&p.updated)
            );
        }
    }
}

/// The HTML part's commands, and the Revert and Keep buttons, that remove what was opened.
fn html_remedies(h: &mut String, d: &Decision) {
    let remedies = remedies(d);
    if !remedies.is_empty() {
        h.push_str("<h3>To remove what was opened</h3><p>Each command removes that rule and nothing else:</p>");
        for r in &remedies {
            let _ = write!(
                h,
                "<p>{}<br><code style=\"background:#f3f3f3;padding:2px 4px\">{}</code></p>",
                html_text(&r.rule),
                html_text(&r.command)
            );
            if let (Some(revert), Some(keep)) = (&r.revert_link, &r.keep_link) {
                let button = "display:inline-block;padding:6px 14px;margin:0 8px 4px 0;border-radius:4px;text-decoration:none;font-weight:bold";
                let _ = write!(
                    h,
                    "<p><a href=\"{}\" style=\"{button};background:#b00020;color:#fff\">Revert this rule</a>\
                     <a href=\"{}\" style=\"{button};background:#e8e8e8;color:#222\">Keep it</a></p>",
                    encode_double_quoted_attribute(revert),
                    encode_double_quoted_attribute(keep)
                );
            }
        }
        if remedies.iter().any(|r| r.revert_link.is_some()) {
            let _ = write!(h, "<p style=\"color:#555\">{}</p>", html_text(LINKS_NOTE));
        }
    }
}

fn html(d: &Decision, actor: &ActorLookup) -> String {
    let a = &d.analysis;
    let s = &a.subject;
    let mut h = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>{NARROW_STYLE}</style></head>{BODY_OPEN}"
    );
    let (background, colour) = banner_colours(a.severity);
    let _ = write!(
        h,
        "<div style=\"background:{background};color:{colour};padding:10px 12px;font-weight:bold\">\
         {}: {}</div>",
        a.severity.as_str().to_uppercase(),
        html_text(&gist(d))
    );
    if a.test {
        h.push_str("<p><strong>THIS IS A TEST</strong> sent by <code>sgwatch test-event</code>: nothing necessarily changed.</p>");
    }
    html_summary(&mut h, d, actor);
    if !d.notes.is_empty() {
        h.push_str("<h3>Who is told</h3><ul>");
        for note in &d.notes {
            let _ = write!(h, "<li><strong>{}</strong></li>", html_text(note));
        }
        h.push_str("</ul>");
    }
    if !a.changes.is_empty() {
        html_rules(&mut h, &a.changes);
    }
    html_remedies(&mut h, d);
    let tags = tag_lines(d);
    if !tags.is_empty() {
        h.push_str("<h3>Tags</h3><ul>");
        for line in &tags {
            let _ = write!(h, "<li>{}</li>", html_text(line));
        }
        h.push_str("</ul>");
    }
    let others: Vec<PropertyChange> = a
        .properties
        .iter()
        .filter(|p| !is_tags(p))
        .cloned()
        .collect();
    if !others.is_empty() {
        html_properties(&mut h, &others);
    }
    if let Some(link) = console_link(&s.region, &s.resource_id) {
        let _ = write!(
            h,
            "<p><a href=\"{}\">Open the security group in the AWS console</a></p>",
            encode_double_quoted_attribute(&link)
        );
    }
    for link in cloudtrail_links(d, actor) {
        let _ = write!(
            h,
            "<p><a href=\"{}\">See the call in CloudTrail</a></p>",
            encode_double_quoted_attribute(&link)
        );
    }
    let _ = write!(
        h,
        "<p style=\"color:#555\">Why you got this: {}</p>",
        html_text(&d.reason())
    );
    h.push_str("<p style=\"color:#555\">sgwatch</p></body></html>");
    h
}

/// What the email says of the Revert and Keep links.
pub const LINKS_NOTE: &str = "Each link opens a page that shows the rule as it is now and asks before it acts; a link acts once, and Revert removes the rule only if it is unchanged.";

/// The commands that remove each rule the change added open to the internet.
pub fn remedies(d: &Decision) -> Vec<Remedy> {
    let a = &d.analysis;
    if a.subject.change_type == ChangeType::Delete {
        return Vec::new();
    }
    let changes: Vec<_> = a
        .changes
        .iter()
        .filter(|c| !a.reverted.contains(&c.rule.to_string()))
        .cloned()
        .collect();
    remedy::remedies(
        &a.subject.region,
        &a.subject.resource_id,
        &changes,
        &a.known_rules,
        &a.links,
    )
}

/// A tags property of the diff (`Tags`, `Tags.0`): told by key instead ([`tag_lines`]).
fn is_tags(p: &PropertyChange) -> bool {
    p.name == "Tags"
        || p.name
            .strip_prefix("Tags.")
            .is_some_and(|i| i.parse::<usize>().is_ok())
}

/// What the change did to the tags, by key: `removed: NotifyOnChange=Yes, OwnerDL=a@…`,
/// `added: …`, and `OwnerDL: a@… → b@…` for each value changed. Empty when the diff changed
/// no tag. Values as the resource has them: the caller escapes.
pub fn tag_lines(d: &Decision) -> Vec<String> {
    let a = &d.analysis;
    if !a.properties.iter().any(is_tags) {
        return Vec::new();
    }
    let (before, after) = (&a.previous_tags, &a.tags);
    let pairs = |keys: Vec<(&String, &String)>| {
        keys.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let removed: Vec<_> = before
        .iter()
        .filter(|(k, _)| !after.contains_key(*k))
        .collect();
    let added: Vec<_> = after
        .iter()
        .filter(|(k, _)| !before.contains_key(*k))
        .collect();
    let mut lines = Vec::new();
    if !removed.is_empty() {
        lines.push(format!("removed: {}", pairs(removed)));
    }
    if !added.is_empty() {
        lines.push(format!("added: {}", pairs(added)));
    }
    for (k, old) in before {
        if let Some(new) = after.get(k).filter(|new| *new != old) {
            lines.push(format!("{k}: {old} → {new}"));
        }
    }
    lines
}

/// A resource-supplied value as HTML text: escaped, hidden characters shown ([`visible`]).
fn html_text(v: &str) -> String {
    encode_text(&visible(v)).into_owned()
}

/// The heading naming the group and the table of severity, account, region, change and actor.
fn html_summary(h: &mut String, d: &Decision, actor: &ActorLookup) {
    let a = &d.analysis;
    let s = &a.subject;
    let name = s
        .name
        .as_deref()
        .map(|n| format!(" ({})", html_text(n)))
        .unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Security group {}{name} was changed</h2>",
        html_text(&s.resource_id)
    );
    h.push_str("<table cellpadding=\"4\">");
    let when = s
        .capture_time
        .as_deref()
        .map(|c| format!(" at {}", html_text(c)))
        .unwrap_or_default();
    for (k, v) in [
        (
            "Severity",
            format!("<strong>{}</strong>", a.severity.as_str().to_uppercase()),
        ),
        ("Account", html_text(&s.account_label())),
        ("Region", html_text(&s.region)),
        (
            "Change",
            format!("{}{when}", html_text(s.change_type.as_str())),
        ),
        ("Changed by", html_text(&actor_text(actor))),
        (
            "Attached to",
            a.exposure
                .as_ref()
                .map(|e| html_text(&e.sentence()))
                .unwrap_or_default(),
        ),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    {
        let _ = write!(
            h,
            "<tr><th align=\"left\" style=\"white-space:nowrap\">{k}</th><td>{v}</td></tr>"
        );
    }
    h.push_str("</table>");
}

/// Below 600 px (a phone) the rules table gives way to one line per rule: six columns at 390 px
/// broke words ("critic al"). Inline styles hide the lines where a client drops `<style>`.
const NARROW_STYLE: &str = "@media (max-width:600px){.sgw-wide{display:none!important}\
                            .sgw-narrow{display:block!important;max-height:none!important;\
                            overflow:visible!important}}";

/// The banner's background and text colours for a severity (as the Slack attachment's).
fn banner_colours(severity: crate::core::severity::Severity) -> (&'static str, &'static str) {
    use crate::core::severity::Severity;
    match severity {
        Severity::Critical => ("#B00020", "#ffffff"),
        Severity::High => ("#E65100", "#ffffff"),
        Severity::Medium => ("#F2C744", "#000000"),
        Severity::Low => ("#2B7BB9", "#ffffff"),
        Severity::Info => ("#9E9E9E", "#000000"),
    }
}

/// The "Rules" table: one row per rule added or removed; on a phone, one line per rule.
fn html_rules(h: &mut String, changes: &[Change]) {
    h.push_str("<h3>Rules</h3><div class=\"sgw-narrow\" style=\"display:none;max-height:0;overflow:hidden\">");
    for c in changes {
        let action = match c.action {
            Action::Added => "added",
            Action::Removed => "removed",
        };
        let description = c
            .rule
            .description
            .as_deref()
            .map(|d| format!(" \"{}\"", html_text(d)))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<p><strong>{}</strong> {action} {}{description}</p>",
            classify(c),
            html_text(&c.rule.to_string()),
        );
    }
    h.push_str(
        "</div><table class=\"sgw-wide\" border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">",
    );
    h.push_str("<tr><th>Change</th><th>Severity</th><th>Direction</th><th>Protocol/ports</th><th>Source</th><th>Description</th></tr>");
    for c in changes {
        let r = &c.rule;
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            match c.action {
                Action::Added => "added",
                Action::Removed => "removed",
            },
            classify(c),
            r.direction.as_str(),
            html_text(&r.protocol_and_ports()),
            html_text(r.source.as_str()),
            html_text(r.description.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</table>");
}

/// The "Other changes" table: each property's previous and updated value.
fn html_properties(h: &mut String, properties: &[PropertyChange]) {
    h.push_str("<h3>Other changes</h3><table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">");
    h.push_str("<tr><th>Property</th><th>Previous</th><th>Updated</th></tr>");
    for p in properties {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_text(&p.name),
            html_text(p.previous.as_deref().unwrap_or("(none)")),
            html_text(p.updated.as_deref().unwrap_or("(none)")),
        );
    }
    h.push_str("</table>");
}

/// "A change we could not read fully", with everything that identifies it.
/// The hub's email to its fallback recipient about a spoke gone silent: from then on, changes
/// in that account and region reach no one.
pub fn silent_spoke_email(account: &str, region: &str, hours: u64) -> Email {
    let one = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let (account, region) = (one(&visible(account)), one(&visible(region)));
    let subject = format!(
        "[sgwatch] spoke {account}/{region} silent for {hours} h: its changes reach no one"
    );
    let lines = [
        format!(
            "The sgwatch hub has had no heartbeat from account {account} in {region} for {hours} hours."
        ),
        "Until it beats again, security-group changes there may reach no owner.".to_owned(),
        format!(
            "Check the spoke in that account and region: sgwatch spoke status --region {region}; \
             its stack, its heartbeat schedule, and that the hub's bus still admits the account."
        ),
        "sgwatch hub status lists every spoke and the blind ones.".to_owned(),
    ];
    let html = format!(
        "<html><body style=\"font-family:sans-serif\">{}</body></html>",
        lines
            .iter()
            .map(|l| format!("<p>{}</p>", html_text(l)))
            .collect::<String>()
    );
    Email {
        subject: one(&stripped(&subject))
            .chars()
            .take(SUBJECT_MAX_CHARS)
            .collect(),
        text: lines.join("\n") + "\n",
        html,
    }
}

pub fn degraded_email(facts: &Facts, why: &str) -> Email {
    let what = [&facts.resource_type, &facts.resource_id]
        .into_iter()
        .flatten()
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    let what = if what.is_empty() {
        "a resource".to_owned()
    } else {
        what
    };
    // The subject drops what it cannot show; the body shows it ([`crate::core::visible`]).
    let one = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let subject: String = one(&stripped(&format!(
        "[sgwatch] a change to {what} could not be read"
    )))
    .chars()
    .take(200)
    .collect();
    let mut lines = vec![
        format!("AWS Config reported a change to {what} that sgwatch could not read fully."),
        format!("Why: {why}"),
        format!("Notification: {}", facts.message_id),
    ];
    for (label, value) in [
        ("Account", &facts.account),
        ("Region", &facts.region),
        ("Configuration state", &facts.state_id),
    ] {
        if let Some(v) = value {
            lines.push(format!("{label}: {v}"));
        }
    }
    lines.push(
        "The full item is in the resource's AWS Config history (Resource timeline in the console)."
            .to_owned(),
    );
    let lines: Vec<String> = lines.iter().map(|l| one(&visible(l))).collect();
    let html = format!(
        "<html><body style=\"font-family:sans-serif\">{}</body></html>",
        lines
            .iter()
            .map(|l| format!("<p>{}</p>", html_escape::encode_text(l)))
            .collect::<String>()
    );
    Email {
        subject,
        text: lines.join("\n") + "\n",
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::Actor;
    use crate::core::decide::{analyze, decide};
    use crate::core::message::{parse_message, ConfigMessage};
    use crate::core::remedy::KnownRule;
    use crate::core::settings::Policy;
    use serde_json::{json, Value};

    fn decision(v: Value) -> Decision {
        let ConfigMessage::ItemChange(c) = parse_message(&v).unwrap() else {
            panic!()
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

    fn found() -> ActorLookup {
        ActorLookup::Found(Actor {
            arn: Some("arn:aws:iam::123456789012:user/dept-b-admin".into()),
            source_ip: Some("203.0.113.7".into()),
            time: Some("2026-11-20T09:13:58Z".into()),
            event_name: Some("AuthorizeSecurityGroupIngress".into()),
            event_id: None,
            invoked_by: None,
        })
    }

    #[test]
    fn subject_has_severity_group_account_region_and_gist() {
        let email = render(&decision(fixture()), &found());
        assert_eq!(
            email.subject,
            "[sgwatch CRITICAL] sg-0123456789abcdef0 (shared-http) 123456789012/us-east-1: +ingress tcp/3389 from 0.0.0.0/0"
        );
    }

    #[test]
    fn a_hubs_email_names_the_account_by_its_name_with_the_id() {
        let mut d = decision(fixture());
        assert!(render(&d, &found())
            .text
            .contains("Account:    123456789012\n"));
        d.analysis.subject.account_name = Some("Security-Prod".into());
        let email = render(&d, &found());
        assert!(
            email
                .text
                .contains("Account:    Security-Prod (123456789012)\n"),
            "{}",
            email.text
        );
        assert!(email.html.contains("Security-Prod (123456789012)"));
        // The subject keeps the id: it is short, and what people search for.
        assert!(email.subject.contains("123456789012/us-east-1"));
        // A name is someone's text: it reaches the email on one line, its tags escaped.
        d.analysis.subject.account_name = Some("Prod\n<b>Bcc: x@evil.example</b>".into());
        let email = render(&d, &found());
        assert!(email.text.contains("Account:    Prod"), "{}", email.text);
        assert!(!email.text.contains("\nBcc"), "{}", email.text);
        assert!(!email.html.contains("<b>Bcc"), "{}", email.html);
    }

    #[test]
    fn the_alert_gives_the_command_that_removes_the_rule_opened_and_nothing_else() {
        let mut d = decision(fixture());
        let by_permission = "aws ec2 revoke-security-group-ingress --region us-east-1 --group-id \
                             sg-0123456789abcdef0 --ip-permissions \
                             'IpProtocol=tcp,FromPort=3389,ToPort=3389,IpRanges=[{CidrIp=0.0.0.0/0}]'";
        let email = render(&d, &found());
        assert!(
            email.text.contains(&format!(
                "To remove what was opened (each command removes that rule and nothing else):\n  \
                 +ingress tcp/3389 from 0.0.0.0/0\n    {by_permission}\n"
            )),
            "{}",
            email.text
        );
        assert!(email
            .html
            .contains(&encode_text(by_permission).into_owned()));
        // Where EC2 lists the rule, its id names it.
        d.analysis.known_rules = vec![KnownRule {
            id: "sgr-0123456789abcdef0".into(),
            direction: crate::core::rules::Direction::Ingress,
            protocol: crate::core::rules::Protocol::Tcp,
            from_port: Some(3389),
            to_port: Some(3389),
            source: "0.0.0.0/0".into(),
        }];
        let email = render(&d, &found());
        assert!(email.text.contains(
            "    aws ec2 revoke-security-group-ingress --region us-east-1 --group-id \
             sg-0123456789abcdef0 --security-group-rule-ids sgr-0123456789abcdef0\n"
        ));
        // A change that opened nothing to the internet, or a group deleted, gets no command.
        d.analysis.changes[0].rule.source = crate::core::rules::Source::Cidr4("10.0.0.0/8".into());
        let inside = render(&d, &found());
        assert!(
            !inside.text.contains("revoke-security-group"),
            "{}",
            inside.text
        );
        let mut deleted = decision(fixture());
        deleted.analysis.subject.change_type = ChangeType::Delete;
        assert!(remedies(&deleted).is_empty());
    }

    #[test]
    fn the_call_is_linked_in_cloudtrail_when_its_event_id_is_known() {
        let d = decision(fixture());
        let id = "6b7f9a3e-2c41-4d5e-9f00-1a2b3c4d5e6f";
        let mut actor = Actor {
            event_id: Some(id.into()),
            ..Actor::default()
        };
        let email = render(&d, &ActorLookup::Found(actor.clone()));
        let link = format!(
            "https://us-east-1.console.aws.amazon.com/cloudtrailv2/home?region=us-east-1#/events/{id}"
        );
        assert!(
            email
                .text
                .contains(&format!("The call in CloudTrail: {link}\n")),
            "{}",
            email.text
        );
        assert!(email.html.contains(&format!(
            "<a href=\"{link}\">See the call in CloudTrail</a>"
        )));
        // An id that is not one CloudTrail would write makes no link.
        actor.event_id = Some("x\" onclick=\"alert(1)".into());
        let email = render(&d, &ActorLookup::Found(actor));
        assert!(!email.text.contains("CloudTrail:"), "{}", email.text);
        assert!(!email.html.contains("onclick"), "{}", email.html);
    }

    #[test]
    fn the_alert_says_what_the_group_is_attached_to() {
        use crate::core::exposure::{Attached, Exposure};
        let mut d = decision(fixture());
        // The fixture's item relates the group to its VPC only.
        assert!(render(&d, &found()).text.contains(
            "Attached to: nothing, as AWS Config records it (public IP addresses not read)\n"
        ));
        d.analysis.exposure = Some(Exposure::Ec2 {
            interfaces: vec![Attached {
                interface: "eni-1".into(),
                instance: Some("i-0abc<b>".into()),
                public_ip: Some("203.0.113.10".into()),
            }],
        });
        let email = render(&d, &found());
        assert!(email.text.contains(
            "Attached to: 1 network interface (instance i-0abc<b>), 1 with a public IP address \
             (203.0.113.10)\n"
        ));
        assert!(email.html.contains("<th align=\"left\" style=\"white-space:nowrap\">Attached to</th><td>1 network interface (instance i-0abc&lt;b&gt;)"), "{}", email.html);
    }

    #[test]
    fn tag_changes_are_told_by_key_not_by_position() {
        let mut v = fixture();
        let item = &mut v["configurationItem"];
        item["tags"] = json!({"NotifyChannels": "secops", "OwnerDL": "b@corp.example"});
        item["configuration"]["tags"] = json!([
            {"key": "NotifyChannels", "value": "secops"},
            {"key": "OwnerDL", "value": "b@corp.example"}
        ]);
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.Tags.0": {
                "previousValue": {"key": "NotifyOnChange", "value": "Yes"},
                "updatedValue": {"key": "NotifyChannels", "value": "secops"},
                "changeType": "UPDATE"
            },
            "Configuration.Tags.1": {
                "previousValue": {"key": "OwnerDL", "value": "a@corp.example"},
                "updatedValue": {"key": "OwnerDL", "value": "b@corp.example"},
                "changeType": "UPDATE"
            }
        });
        let d = decision(v);
        assert_eq!(
            tag_lines(&d),
            [
                "removed: NotifyOnChange=Yes",
                "added: NotifyChannels=secops",
                "OwnerDL: a@corp.example → b@corp.example",
            ]
        );
        let email = render(&d, &found());
        assert!(
            email
                .text
                .contains("\nTags:\n  removed: NotifyOnChange=Yes\n"),
            "{}",
            email.text
        );
        assert!(!email.text.contains("Tags.0"), "{}", email.text);
        assert!(!email.html.contains("Tags.0"), "{}", email.html);
        assert!(email
            .html
            .contains("<li>OwnerDL: a@corp.example → b@corp.example</li>"));
    }

    #[test]
    fn text_tells_who_what_where_and_why() {
        let email = render(&decision(fixture()), &found());
        let t = &email.text;
        assert!(t.contains("Changed by: arn:aws:iam::123456789012:user/dept-b-admin from 203.0.113.7 at 2026-11-20T09:13:58Z (AuthorizeSecurityGroupIngress)"), "{t}");
        assert!(
            t.contains("Rules added (1):\n  [critical] +ingress tcp/3389 from 0.0.0.0/0\n"),
            "{t}"
        );
        assert!(t.contains("https://us-east-1.console.aws.amazon.com/ec2/home?region=us-east-1#SecurityGroup:groupId=sg-0123456789abcdef0"));
        assert!(t.contains("Why you got this: tag NotifyOnChange=Yes; recipients from tag OwnerDL"));
        let unknown = render(
            &decision(fixture()),
            &ActorLookup::Unknown("CloudTrail had no matching event".into()),
        );
        assert!(unknown
            .text
            .contains("Changed by: unknown (CloudTrail had no matching event)"));
    }

    #[test]
    fn feed_callers_are_all_named_with_their_calls_and_escaped() {
        use crate::core::who::{CallRef, Caller};
        let call = |name: &str, time: &str| CallRef {
            event_name: name.into(),
            event_time: time.into(),
            event_id: "not-an-id\n<b>".into(),
            request_id: None,
            user_agent: None,
        };
        let actor = ActorLookup::Feed(vec![
            Caller {
                principal: "arn:aws:iam::111122223333:user/dept-b-admin".into(),
                session_issuer: None,
                session_name: None,
                source_ip: Some("203.0.113.7".into()),
                invoked_by: None,
                calls: vec![call(
                    "AuthorizeSecurityGroupIngress",
                    "2026-11-20T09:13:58Z",
                )],
            },
            Caller {
                principal: "arn:aws:sts::111122223333:assumed-role/Ops/<b>eve</b>".into(),
                session_issuer: Some("arn:aws:iam::111122223333:role/Ops".into()),
                session_name: Some("<b>eve</b>".into()),
                source_ip: None,
                invoked_by: None,
                calls: vec![
                    call("CreateTags", "2026-11-20T09:14:01Z"),
                    call("RevokeSecurityGroupIngress", "2026-11-20T09:14:02Z"),
                ],
            },
        ]);
        let email = render(&decision(fixture()), &actor);
        assert!(email.text.contains("Changed by: arn:aws:iam::111122223333:user/dept-b-admin from 203.0.113.7 (AuthorizeSecurityGroupIngress at 09:13:58Z); arn:aws:sts::111122223333:assumed-role/Ops/<b>eve</b> (CreateTags at 09:14:01Z, RevokeSecurityGroupIngress at 09:14:02Z)\n"), "{}", email.text);
        assert!(email.html.contains("user/dept-b-admin from 203.0.113.7 (AuthorizeSecurityGroupIngress at 09:13:58Z); arn:aws:sts::111122223333:assumed-role/Ops/&lt;b&gt;eve&lt;/b&gt;"), "{}", email.html);
        assert!(!email.html.contains("<b>eve"));
    }

    #[test]
    fn hostile_names_descriptions_and_tags_are_escaped_and_kept_on_one_line() {
        let mut v = fixture();
        v["configurationItem"]["resourceName"] =
            json!("<script>alert(\"x\")</script>\r\nBcc: evil@attacker.example");
        v["configurationItem"]["tags"]["NotifyOnChange"] = json!("Yes");
        v["configurationItemDiff"]["changedProperties"]["Configuration.Description"] = json!({"previousValue": "it's \"fine\"", "updatedValue": "<img src=x onerror=alert(1)>", "changeType": "UPDATE"});
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["ipv4Ranges"][0]["description"] =
            json!("</td><script>steal()</script>");
        let email = render(&decision(v), &found());
        assert!(
            !email.subject.contains('\r') && !email.subject.contains('\n'),
            "{:?}",
            email.subject
        );
        assert!(!email.html.contains("<script>"), "{}", email.html);
        assert!(!email.html.contains("<img"), "{}", email.html);
        assert!(
            email
                .html
                .contains("&lt;script&gt;alert(\"x\")&lt;/script&gt;"),
            "{}",
            email.html
        );
        assert!(email
            .html
            .contains("&lt;/td&gt;&lt;script&gt;steal()&lt;/script&gt;"));
        assert!(email.html.contains("it's \"fine\""));
        // In the text part the CR/LF cannot start a new line.
        assert!(
            !email.text.lines().any(|l| l.starts_with("Bcc:")),
            "{}",
            email.text
        );
    }

    #[test]
    fn subject_is_bounded_and_counts_more_changes() {
        let mut v = fixture();
        v["configurationItem"]["resourceName"] = json!("n".repeat(500));
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.2"] = json!({"previousValue": null, "updatedValue": {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv4Ranges": [{"cidrIp": "10.0.0.0/8"}]}, "changeType": "CREATE"});
        let s = subject(&decision(v));
        assert_eq!(s.chars().count(), SUBJECT_MAX_CHARS);
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.2"] = json!({"previousValue": null, "updatedValue": {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv4Ranges": [{"cidrIp": "10.0.0.0/8"}]}, "changeType": "CREATE"});
        assert!(subject(&decision(v)).ends_with("+ingress tcp/3389 from 0.0.0.0/0 (+1 more)"));
    }

    #[test]
    fn notice_and_test_marker() {
        let mut v = fixture();
        v["sgwatchTest"] = json!(true);
        let email =
            render(&decision(v), &found()).with_notice("could not deliver to <a@b.example>");
        assert!(email.subject.starts_with("[sgwatch TEST CRITICAL]"));
        assert!(email
            .text
            .starts_with("NOTE: could not deliver to <a@b.example>\n\nTHIS IS A TEST"));
        assert!(email
            .html
            .contains("could not deliver to &lt;a@b.example&gt;"));
    }

    #[test]
    fn console_link_refuses_odd_ids() {
        assert!(console_link("us-east-1", "sg-1\"><script>").is_none());
        assert!(console_link("us-east-1", "sg-0abc").is_some());
    }

    #[test]
    fn a_removed_opt_in_is_said_plainly_with_why() {
        let path = format!(
            "{}/../tests/fixtures/opt-in-removed.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let email = render(&decision(v), &found());
        assert!(
            email.subject.starts_with("[sgwatch CRITICAL]"),
            "{}",
            email.subject
        );
        assert!(email.text.contains("\nWho is told:\n  NotifyOnChange was removed: you will not be told of further changes to this group\n"), "{}", email.text);
        assert!(email.text.contains("Why you got this: tag NotifyOnChange=Yes was removed by this change; platform-team@example.com: you were an owner before this change"), "{}", email.text);
        assert!(email.html.contains("<li><strong>NotifyOnChange was removed: you will not be told of further changes to this group</strong></li>"));
    }

    #[test]
    fn the_degraded_email_hides_no_character_and_its_subject_carries_none() {
        let facts = Facts {
            message_id: "m-1".into(),
            resource_type: Some("AWS::EC2::SecurityGroup".into()),
            resource_id: Some("sg-1\u{0}\u{1b}[2J\u{202e}exe.\u{2028}Bcc: x".into()),
            account: Some("123456789012\u{200b}".into()),
            ..Facts::default()
        };
        let email = degraded_email(&facts, "not JSON");
        for c in ['\u{0}', '\u{1b}', '\u{202e}', '\u{2028}', '\u{200b}', '\r'] {
            assert!(!email.subject.contains(c), "{:?}", email.subject);
            assert!(!email.text.contains(c), "{:?}", email.text);
            assert!(!email.html.contains(c), "{:?}", email.html);
        }
        assert!(!email.subject.contains('\n'), "{:?}", email.subject);
        assert!(
            !email.text.lines().any(|l| l.starts_with("Bcc:")),
            "{:?}",
            email.text
        );
        assert!(!email.subject.contains("<U+"), "{}", email.subject);
        assert!(
            email.subject.contains("sg-1[2Jexe. Bcc: x"),
            "{}",
            email.subject
        );
        assert!(
            email
                .text
                .contains("sg-1<U+0000><U+001B>[2J<U+202E>exe.<U+2028>Bcc: x"),
            "{}",
            email.text
        );
        assert!(
            email.text.contains("Account: 123456789012<U+200B>\n"),
            "{}",
            email.text
        );
    }
}
