//! Who gets the email: the addresses in the owner tag, each checked by a real RFC 5322 parser.

use email_address::{EmailAddress, Options};

/// The outcome of reading an owner tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    /// Valid addresses, in tag order, without repeats.
    pub valid: Vec<String>,
    /// Each part that was dropped, with the reason.
    pub rejected: Vec<(String, String)>,
}

impl Recipients {
    /// One line saying what was dropped and why, for logs and the decision's reason.
    pub fn rejected_summary(&self) -> String {
        rejected_summary(&self.rejected)
    }
}

/// Dropped tag parts with their reasons as one line: `"x": why; "y": why`.
pub fn rejected_summary(rejected: &[(String, String)]) -> String {
    rejected
        .iter()
        .map(|(part, why)| format!("{part:?}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Validates one address: a bare `local@domain.tld`, no display name, no IP literal.
pub fn parse_address(raw: &str) -> Result<String, String> {
    let options = Options::default()
        .with_required_tld()
        .without_display_text()
        .without_domain_literal();
    EmailAddress::parse_with_options(raw.trim(), options)
        .map(|a| a.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// Reads an owner tag: addresses separated by `,`, `;` or white space.
///
/// A value holding a control character (CR, LF, NUL, …) is rejected whole: it is either a
/// mistake or an attempt to smuggle headers, and no part of it is trusted.
pub fn parse_owner_tag(value: &str) -> Recipients {
    let mut out = Recipients::default();
    // Tabs, CR and LF are white space *and* control characters; any of them rejects the value.
    if value.chars().any(char::is_control) {
        out.rejected.push((
            value.escape_debug().to_string(),
            "the tag value contains control characters".to_owned(),
        ));
        return out;
    }
    for part in value.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
        if part.is_empty() {
            continue;
        }
        match parse_address(part) {
            Ok(address) => {
                if !out.valid.iter().any(|a| a.eq_ignore_ascii_case(&address)) {
                    out.valid.push(address);
                }
            }
            Err(why) => out.rejected.push((part.to_owned(), why)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_commas_semicolons_and_spaces() {
        let r = parse_owner_tag("a@corp.example, b@corp.example;c@corp.example  d@corp.example");
        assert_eq!(
            r.valid,
            [
                "a@corp.example",
                "b@corp.example",
                "c@corp.example",
                "d@corp.example"
            ]
        );
        assert!(r.rejected.is_empty());
    }

    #[test]
    fn invalid_parts_are_dropped_with_their_reason() {
        let r = parse_owner_tag(
            "ok@corp.example,not-an-address,@corp.example,x@localhost,OK@corp.example",
        );
        assert_eq!(r.valid, ["ok@corp.example"]);
        let dropped: Vec<&str> = r.rejected.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(dropped, ["not-an-address", "@corp.example", "x@localhost"]);
        assert!(r.rejected.iter().all(|(_, why)| !why.is_empty()));
    }

    #[test]
    fn control_characters_reject_the_whole_value() {
        for value in [
            "a@corp.example\r\nBcc: evil@attacker.example",
            "a@corp.example\0",
            "a@corp.example\tb@corp.example",
        ] {
            let r = parse_owner_tag(value);
            assert!(r.valid.is_empty(), "{value:?}");
            assert!(r.rejected_summary().contains("control characters"));
        }
    }

    #[test]
    fn display_names_and_ip_literals_are_refused() {
        assert!(parse_address("Alice <alice@corp.example>").is_err());
        assert!(parse_address("alice@[10.0.0.1]").is_err());
        assert_eq!(
            parse_address(" alice@corp.example ").unwrap(),
            "alice@corp.example"
        );
    }

    #[test]
    fn empty_tag_has_no_recipient() {
        assert_eq!(parse_owner_tag(" , ; "), Recipients::default());
    }
}
