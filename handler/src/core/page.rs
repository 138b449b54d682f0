//! The pages the `act` function answers a link with: the confirmation a GET shows (a GET never
//! acts: mail scanners open links), and what became of the POST. Pure: every value from the token
//! or from EC2 is escaped and shown on one line.

use html_escape::{encode_double_quoted_attribute, encode_text};

use crate::core::link::{Act, Grant};
use crate::core::remedy::KnownRule;
use crate::core::text::one_line;

/// The rule a token names, as the group holds it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleNow {
    /// There, allowing what the alert said.
    Unchanged(KnownRule),
    /// The rule of that id now allows something else.
    Changed(KnownRule),
    /// No rule of the group allows it any more.
    Gone,
}

/// What a page says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// A GET: what the POST would do, with its button.
    Confirm {
        act: Act,
        grant: Grant,
        now: RuleNow,
        token: String,
        keep_days: u64,
    },
    /// The rule was removed.
    Reverted { grant: Grant, at: String },
    /// The owner keeps the rule; no alert repeats for it until `until`.
    Kept {
        grant: Grant,
        at: String,
        until: String,
    },
    /// The link acted before.
    Used { act: String, at: String },
    /// Revert would remove something the alert did not tell of: nothing was done.
    NothingDone { grant: Grant, why: String },
    /// The token is refused (forged, expired, unreadable) or the group no longer opts in.
    Refused(String),
    /// An AWS call failed; the link was not used and can be tried again.
    Failed(String),
}

impl Page {
    /// The HTTP status of the page.
    pub fn status(&self) -> u16 {
        match self {
            Page::Confirm { .. } | Page::Reverted { .. } | Page::Kept { .. } => 200,
            Page::Used { .. } | Page::NothingDone { .. } => 409,
            Page::Refused(_) => 403,
            Page::Failed(_) => 503,
        }
    }

    /// The page's title, one line.
    pub fn title(&self) -> String {
        match self {
            Page::Confirm {
                act: Act::Revert, ..
            } => "Revert this rule?".into(),
            Page::Confirm { act: Act::Keep, .. } => "Keep this rule?".into(),
            Page::Reverted { .. } => "Reverted".into(),
            Page::Kept { .. } => "Kept".into(),
            Page::Used { .. } => "This link was used".into(),
            Page::NothingDone { .. } => "Nothing was done".into(),
            Page::Refused(_) => "This link cannot act".into(),
            Page::Failed(_) => "Not done yet".into(),
        }
    }

    /// The page's sentences, plain text, in order.
    pub fn lines(&self) -> Vec<String> {
        match self {
            Page::Confirm {
                act,
                grant,
                now,
                keep_days,
                ..
            } => {
                let mut lines = vec![place(grant), format!("Rule: {}", rule(grant))];
                match now {
                    RuleNow::Unchanged(r) => {
                        lines.push(format!("The group holds it now as {}.", id_of(r)))
                    }
                    RuleNow::Changed(r) => lines.push(format!(
                        "The group's rule {} changed since the alert: it now allows {}.",
                        one_line(&r.id),
                        one_line(&now_rule(r))
                    )),
                    RuleNow::Gone => lines.push("The group no longer holds this rule.".into()),
                }
                lines.push(match act {
                    Act::Revert => "Revert removes this one rule and nothing else. Nothing happens until you press the button.".into(),
                    Act::Keep => format!("Keep records that the owners keep this rule: no alert repeats for it for {keep_days} days, and the owners and the security contact are told. Nothing happens until you press the button."),
                });
                lines
            }
            Page::Reverted { grant, at } => vec![
                format!("Removed {} at {}.", rule(grant), one_line(at)),
                place(grant),
                "The owners get an email about the change, as about any other.".into(),
            ],
            Page::Kept { grant, at, until } => vec![
                format!("Kept {} at {}.", rule(grant), one_line(at)),
                place(grant),
                format!(
                    "No alert repeats for this rule until {}; the owners and the security contact were told.",
                    one_line(until)
                ),
            ],
            Page::Used { act, at } => vec![format!(
                "It was used to {} at {}. Each link acts once.",
                one_line(act),
                one_line(at)
            )],
            Page::NothingDone { grant, why } => {
                vec![place(grant), format!("Rule: {}", rule(grant)), one_line(why)]
            }
            Page::Refused(why) => vec![one_line(why)],
            Page::Failed(why) => vec![
                one_line(why),
                "Nothing was changed and the link is still good: try again in a minute.".into(),
            ],
        }
    }

    /// The whole page. It loads nothing and sends no referrer (the token is in its address).
    pub fn html(&self) -> String {
        let mut body = format!("<h1>{}</h1>\n", encode_text(&self.title()));
        for line in self.lines() {
            body.push_str(&format!("<p>{}</p>\n", encode_text(&line)));
        }
        if let Page::Confirm {
            act,
            token,
            now: RuleNow::Unchanged(_),
            ..
        }
        | Page::Confirm {
            act: act @ Act::Keep,
            token,
            ..
        } = self
        {
            let button = match act {
                Act::Revert => "Revert this rule",
                Act::Keep => "Keep it",
            };
            body.push_str(&format!(
                "<form method=\"post\"><input type=\"hidden\" name=\"do\" value=\"{}\">\
                 <input type=\"hidden\" name=\"t\" value=\"{}\">\
                 <button type=\"submit\">{button}</button></form>\n",
                act.as_str(),
                encode_double_quoted_attribute(token)
            ));
        }
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
             <meta name=\"referrer\" content=\"no-referrer\"><title>sgwatch: {}</title>\
             <style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}\
             button{{font-size:1.1em;padding:.5em 1.2em}}</style></head>\n<body>\n{body}</body></html>\n",
            encode_text(&self.title())
        )
    }
}

/// "Group sg-… in account … (us-east-1)."
fn place(grant: &Grant) -> String {
    format!(
        "Group {} in account {} ({}).",
        one_line(&grant.group),
        one_line(&grant.account),
        one_line(&grant.region)
    )
}

fn rule(grant: &Grant) -> String {
    one_line(&grant.rule.describe())
}

fn id_of(rule: &KnownRule) -> String {
    one_line(&rule.id)
}

fn now_rule(rule: &KnownRule) -> String {
    crate::core::link::RuleRef::of_known(rule).describe()
}

/// The form of a POST body (`application/x-www-form-urlencoded`): `name`'s value, decoded.
pub fn form_value(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (percent_decode(k)? == name).then(|| percent_decode(v))?
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::link::RuleRef;
    use crate::core::rules::{Direction, Protocol};

    fn grant() -> Grant {
        Grant {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            group: "sg-0123456789abcdef0".into(),
            rule: RuleRef {
                id: Some("sgr-0bbbbbbbbbbbbbbbb".into()),
                protocol: "tcp".into(),
                from_port: Some(3389),
                to_port: Some(3389),
                source: "0.0.0.0/0".into(),
            },
            state: "1".into(),
            expires: 1,
        }
    }

    fn listed(source: &str) -> KnownRule {
        KnownRule {
            id: "sgr-0bbbbbbbbbbbbbbbb".into(),
            direction: Direction::Ingress,
            protocol: Protocol::Tcp,
            from_port: Some(3389),
            to_port: Some(3389),
            source: source.into(),
        }
    }

    #[test]
    fn a_confirmation_has_a_button_only_where_the_post_would_act() {
        let confirm = |act, now| Page::Confirm {
            act,
            grant: grant(),
            now,
            token: "1.a.b".into(),
            keep_days: 30,
        };
        let unchanged = confirm(Act::Revert, RuleNow::Unchanged(listed("0.0.0.0/0"))).html();
        assert!(unchanged.contains("<form method=\"post\">"), "{unchanged}");
        assert!(unchanged.contains("name=\"do\" value=\"revert\""));
        assert!(unchanged.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
        let changed = confirm(Act::Revert, RuleNow::Changed(listed("10.0.0.0/8")));
        assert!(!changed.html().contains("<form"));
        assert!(changed.lines()[2].contains("now allows ingress tcp/3389 from 10.0.0.0/8"));
        assert!(confirm(Act::Keep, RuleNow::Gone)
            .html()
            .contains("value=\"keep\""));
    }

    #[test]
    fn what_a_page_shows_is_escaped() {
        let page = Page::Refused("<script>alert(1)</script>\u{202e}".into());
        let html = page.html();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("&lt;U+202E&gt;"), "{html}");
        assert_eq!(page.status(), 403);
    }

    #[test]
    fn a_form_body_is_read_as_browsers_write_it() {
        let body = "do=revert&t=1.ab-_c.d%3D&x=a+b";
        assert_eq!(form_value(body, "do").as_deref(), Some("revert"));
        assert_eq!(form_value(body, "t").as_deref(), Some("1.ab-_c.d="));
        assert_eq!(form_value(body, "x").as_deref(), Some("a b"));
        assert_eq!(form_value(body, "y"), None);
        assert_eq!(form_value("t=%zz", "t"), None);
    }
}
