//! What the logs may say of people: an email address appears at INFO, WARN and ERROR only as its
//! domain (`…@example.com`), and in full only at DEBUG. The call sites log counts and domains;
//! [`Redacting`], the writer every line goes through, catches the rest (an address inside an
//! error SES or a destination returned). Secret URLs and signing keys are never logged at all
//! (see [`crate::deliver::post`]).

use std::collections::BTreeSet;
use std::io::{self, Write};

use lambda_runtime::tracing::subscriber::fmt::MakeWriter;
use lambda_runtime::tracing::{Level, Metadata};

/// The distinct domains of `addresses`, comma-separated: what an INFO line says of recipients.
pub fn domains<'a>(addresses: impl IntoIterator<Item = &'a String>) -> String {
    let domains: BTreeSet<&str> = addresses
        .into_iter()
        .map(|a| a.rsplit_once('@').map_or("?", |(_, d)| d))
        .collect();
    domains.into_iter().collect::<Vec<_>>().join(",")
}

/// `line` with the local part of every email address in it replaced by `…`.
pub fn redact(line: &str) -> String {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    for (i, &(at, c)) in chars.iter().enumerate() {
        if c != '@' || !domain_follows(&chars[i + 1..]) {
            continue;
        }
        let local = chars[..i]
            .iter()
            .rev()
            .take_while(|(_, c)| is_local(*c))
            .last();
        if let Some(&(start, _)) = local {
            if start >= copied {
                out.push_str(&line[copied..start]);
                out.push('…');
                copied = at;
            }
        }
    }
    out.push_str(&line[copied..]);
    out
}

/// A character an address's local part may hold, as SES takes them.
fn is_local(c: char) -> bool {
    c.is_alphanumeric() || "._%+-!#$&'*/=?^`{|}~".contains(c)
}

/// Whether `rest` starts with a domain: labels of letters, digits and hyphens, one dot at least.
fn domain_follows(rest: &[(usize, char)]) -> bool {
    let domain: String = rest
        .iter()
        .map(|(_, c)| *c)
        .take_while(|c| c.is_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    let domain = domain.trim_end_matches('.');
    domain.contains('.') && !domain.starts_with('.') && !domain.contains("..")
}

/// A writer maker whose lines at INFO and above are [`redact`]ed before they reach `inner`;
/// DEBUG and TRACE lines go out as they are.
#[derive(Debug, Clone)]
pub struct Redacting<M> {
    inner: M,
}

impl<M> Redacting<M> {
    pub fn new(inner: M) -> Redacting<M> {
        Redacting { inner }
    }
}

/// One line, held until it is complete (the formatter writes a line, then drops its writer).
pub struct Line<W: Write> {
    inner: W,
    redact: bool,
    held: Vec<u8>,
}

impl<W: Write> Write for Line<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for Line<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.held);
        let text = if self.redact {
            redact(&text)
        } else {
            text.into_owned()
        };
        // A log line that cannot be written has nowhere to say so.
        let _ = self.inner.write_all(text.as_bytes());
        let _ = self.inner.flush();
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = Line<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            inner: self.inner.make_writer(),
            redact: true,
            held: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            inner: self.inner.make_writer_for(meta),
            // ERROR < WARN < INFO < DEBUG < TRACE in `tracing`'s order of verbosity.
            redact: *meta.level() <= Level::INFO,
            held: Vec::new(),
        }
    }
}

/// Sets up the logs as Lambda's logging controls say (format and level), through [`Redacting`].
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber_with_writer(Redacting::new(io::stdout));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_only_their_domain() {
        assert_eq!(
            redact(r#"{"error":"SES: a.b+c@corp.example rejected; x@y.org too","n":1}"#),
            r#"{"error":"SES: …@corp.example rejected; …@y.org too","n":1}"#
        );
        assert_eq!(redact("ünï@bücher.example"), "…@bücher.example");
    }

    #[test]
    fn what_is_not_an_address_is_left_alone() {
        for line in [
            "no at sign",
            "@handle",
            "user@localhost",
            "a@.example",
            "email.amazonses.com",
            "arn:aws:sns:us-east-1:123456789012:sgwatch",
        ] {
            assert_eq!(redact(line), line);
        }
    }

    #[test]
    fn domains_are_distinct_and_sorted() {
        let to = [
            "b@y.org".to_owned(),
            "a@x.example".to_owned(),
            "c@y.org".to_owned(),
        ];
        assert_eq!(domains(&to), "x.example,y.org");
    }
}
