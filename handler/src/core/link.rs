//! The Revert and Keep links of an alert, and the token each carries.
//!
//! A token names one ingress rule that a change added open to the internet: the account, the
//! region, the group, the rule (its id where known, and what it allows), the change's state id,
//! and when the token expires. It reads `1.CLAIMS.MAC`: the claims are JSON in URL-safe base64,
//! and the MAC is KMS's HMAC-SHA-256 of `1.CLAIMS` under the stack's key (`GenerateMac`; the
//! `act` function checks it with `VerifyMac`), so the key never leaves KMS and nobody without it
//! can make or alter a token. Both links of one rule carry the same token, and a token acts once:
//! the first Revert or Keep uses it.
//!
//! Everything here is pure: making the claims, the text that is signed, reading a token back and
//! the links. The KMS calls are at the edge (`crate::links`, `crate::act`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::core::remedy::KnownRule;
use crate::core::rules::{Change, Direction, Protocol};

/// How long a link acts, unless the stack says otherwise.
pub const DEFAULT_HOURS: u64 = 24;

/// How long a Keep stands, unless the stack says otherwise.
pub const DEFAULT_KEEP_DAYS: u64 = 30;

/// KMS's name for the MAC the tokens carry.
pub const MAC_ALGORITHM: &str = "HMAC_SHA_256";

/// The version a token starts with.
const VERSION: &str = "1";

/// The longest token read: a real one is about 400 characters.
pub const MAX_TOKEN_CHARS: usize = 2048;

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// Remove the rule, only while it is there unchanged.
    Revert,
    /// Keep the rule: an acknowledgement, and no alert for it again while the exception stands.
    Keep,
}

impl Act {
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Revert => "revert",
            Act::Keep => "keep",
        }
    }

    pub fn parse(value: &str) -> Option<Act> {
        match value {
            "revert" => Some(Act::Revert),
            "keep" => Some(Act::Keep),
            _ => None,
        }
    }
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ingress rule a token names: its id where the alert knew it, and what it allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRef {
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `all`, or a protocol number.
    #[serde(rename = "p")]
    pub protocol: String,
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub from_port: Option<i64>,
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<i64>,
    /// The CIDR or prefix list.
    #[serde(rename = "c")]
    pub source: String,
}

/// EC2 writes "all ports" as -1 to -1; a change has none then.
fn ports(from: Option<i64>, to: Option<i64>, protocol: &Protocol) -> (Option<i64>, Option<i64>) {
    if *protocol == Protocol::All {
        return (None, None);
    }
    let port = |p: Option<i64>| p.filter(|n| *n != -1);
    (port(from), port(to))
}

impl RuleRef {
    /// The rule `change` added, with its id when known.
    pub fn of_change(change: &Change, id: Option<&str>) -> RuleRef {
        let r = &change.rule;
        let (from_port, to_port) = ports(r.from_port, r.to_port, &r.protocol);
        RuleRef {
            id: id.map(str::to_owned),
            protocol: r.protocol.as_str().to_owned(),
            from_port,
            to_port,
            source: r.source.as_str().to_owned(),
        }
    }

    /// The rule as EC2 lists it.
    pub fn of_known(rule: &KnownRule) -> RuleRef {
        let (from_port, to_port) = ports(rule.from_port, rule.to_port, &rule.protocol);
        RuleRef {
            id: Some(rule.id.clone()),
            protocol: rule.protocol.as_str().to_owned(),
            from_port,
            to_port,
            source: rule.source.clone(),
        }
    }

    /// What the rule allows, whatever its id: `tcp:3389:3389:0.0.0.0/0`. Keeps and reverts are
    /// recorded under it, so a rule removed and added again is still the rule the owner kept.
    pub fn key(&self) -> String {
        let port = |p: Option<i64>| p.map(|n| n.to_string()).unwrap_or_default();
        format!(
            "{}:{}:{}:{}",
            self.protocol,
            port(self.from_port),
            port(self.to_port),
            self.source
        )
    }

    /// Whether `rule` allows what this one allows (an ingress rule of the same protocol, ports
    /// and source).
    pub fn allows_the_same(&self, rule: &KnownRule) -> bool {
        let other = RuleRef::of_known(rule);
        rule.direction == Direction::Ingress
            && Protocol::parse(&other.protocol) == Protocol::parse(&self.protocol)
            && other.from_port == self.from_port
            && other.to_port == self.to_port
            && other.source == self.source
    }

    /// `ingress tcp/3389 from 0.0.0.0/0`, as the email writes a rule.
    pub fn describe(&self) -> String {
        let protocol = Protocol::parse(&self.protocol);
        let ports = match (self.from_port, self.to_port) {
            _ if protocol == Protocol::All => String::new(),
            (Some(f), Some(t)) if f == t => format!("/{f}"),
            (Some(f), Some(t)) => format!("/{f}-{t}"),
            _ => String::new(),
        };
        format!("ingress {}{ports} from {}", protocol.as_str(), self.source)
    }
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "a")]
    pub account: String,
    #[serde(rename = "r")]
    pub region: String,
    #[serde(rename = "g")]
    pub group: String,
    #[serde(rename = "k")]
    pub rule: RuleRef,
    /// The state id of the change that added the rule (the ledger's key of the alert).
    #[serde(rename = "s")]
    pub state: String,
    /// Epoch seconds after which the token acts no more.
    #[serde(rename = "x")]
    pub expires: u64,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this is not a link sgwatch made (it cannot be read)")]
    Malformed,
    #[error("this is not a link sgwatch made (its signature does not match)")]
    Forged,
    #[error("this link expired at {0}")]
    Expired(String),
}

impl Grant {
    /// Whether every value looks as AWS writes it: a token names nothing else.
    fn well_formed(&self) -> bool {
        self.account.len() == 12
            && self.account.chars().all(|c| c.is_ascii_digit())
            && crate::core::remedy::is_region(&self.region)
            && crate::core::remedy::is_id(&self.group, "sg-")
            && self
                .rule
                .id
                .as_deref()
                .is_none_or(|id| crate::core::remedy::is_id(id, "sgr-"))
            && !self.state.is_empty()
            && self.state.len() <= 512
            && self.rule.source.len() <= 64
            && self.rule.protocol.len() <= 8
    }

    /// The text KMS signs: `1.CLAIMS`.
    pub fn signed_text(&self) -> String {
        // Plain data: serialising it cannot fail.
        let claims = serde_json::to_vec(self).unwrap_or_default();
        format!("{VERSION}.{}", base64url(&claims))
    }

    /// Whether the token is past its time at `now` (epoch seconds).
    pub fn expired(&self, now: u64) -> Result<(), TokenError> {
        if now >= self.expires {
            return Err(TokenError::Expired(rfc3339(self.expires)));
        }
        Ok(())
    }
}

/// The token: the signed text and its MAC.
pub fn token(signed_text: &str, mac: &[u8]) -> String {
    format!("{signed_text}.{}", base64url(mac))
}

/// A token read back: what it grants, the text that was signed and the MAC to check it with.
/// Not yet trusted: the MAC must be verified (KMS `VerifyMac`) and the expiry checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub grant: Grant,
    pub signed_text: String,
    pub mac: Vec<u8>,
}

/// Reads a token; `Malformed` for anything that is not one.
pub fn read(token: &str) -> Result<Unverified, TokenError> {
    if token.len() > MAX_TOKEN_CHARS {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(VERSION), Some(claims), Some(mac), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let grant: Grant = unbase64url(claims)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(TokenError::Malformed)?;
    let mac = unbase64url(mac)
        .filter(|m| !m.is_empty())
        .ok_or(TokenError::Malformed)?;
    if !grant.well_formed() {
        return Err(TokenError::Malformed);
    }
    Ok(Unverified {
        grant,
        signed_text: format!("{VERSION}.{claims}"),
        mac,
    })
}

/// The link that does `act` with `token`: the act function's URL with `do` and `t`. The token
/// holds only URL-safe characters.
pub fn url(base: &str, act: Act, token: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}do={act}&t={token}")
}

/// The two links of one rule in an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Links {
    /// The rule as the email writes it (`ingress tcp/3389 from 0.0.0.0/0`).
    pub rule: String,
    pub revert: String,
    pub keep: String,
}

/// URL-safe base64 without padding (RFC 4648 §5).
pub fn base64url(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

fn unbase64url(text: &str) -> Option<Vec<u8>> {
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return None;
    }
    let mut standard: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !standard.len().is_multiple_of(4) {
        standard.push('=');
    }
    aws_smithy_types::base64::decode(standard).ok()
}

/// `2026-12-06T09:14:07Z`.
pub fn rfc3339(epoch_secs: u64) -> String {
    let secs = i64::try_from(epoch_secs).unwrap_or(i64::MAX);
    aws_smithy_types::DateTime::from_secs(secs)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| epoch_secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::{Action, AtomicRule, Source};

    fn rdp() -> Change {
        Change {
            action: Action::Added,
            rule: AtomicRule {
                direction: Direction::Ingress,
                protocol: Protocol::Tcp,
                from_port: Some(3389),
                to_port: Some(3389),
                source: Source::Cidr4("0.0.0.0/0".into()),
                description: None,
                listed: None,
            },
        }
    }

    fn grant() -> Grant {
        Grant {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            group: "sg-0123456789abcdef0".into(),
            rule: RuleRef::of_change(&rdp(), Some("sgr-0bbbbbbbbbbbbbbbb")),
            state: "1764900000000".into(),
            expires: 1_800_000_000,
        }
    }

    #[test]
    fn a_token_reads_back_as_it_was_made_and_its_links_need_no_escaping() {
        let g = grant();
        let text = g.signed_text();
        let t = token(&text, &[0xfb, 0xff, 0x01, 0x02]);
        assert!(t
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
        let read = read(&t).unwrap();
        assert_eq!(read.grant, g);
        assert_eq!(read.signed_text, text);
        assert_eq!(read.mac, [0xfb, 0xff, 0x01, 0x02]);
        assert_eq!(
            url("https://x.lambda-url.us-east-1.on.aws/", Act::Revert, &t),
            format!("https://x.lambda-url.us-east-1.on.aws/?do=revert&t={t}")
        );
        assert_eq!(g.rule.key(), "tcp:3389:3389:0.0.0.0/0");
        assert_eq!(g.rule.describe(), "ingress tcp/3389 from 0.0.0.0/0");
    }

    #[test]
    fn what_is_not_a_token_is_refused_before_any_call() {
        let t = token(&grant().signed_text(), b"mac");
        for bad in [
            String::new(),
            "1.".into(),
            t.replacen("1.", "2.", 1),
            format!("{t}.extra"),
            t.replace('.', "!"),
            "x".repeat(MAX_TOKEN_CHARS + 1),
            format!("{}.", grant().signed_text()),
        ] {
            assert_eq!(read(&bad), Err(TokenError::Malformed), "{bad}");
        }
        // Signed claims that name something AWS would not write are refused too.
        let mut hostile = grant();
        hostile.group = "sg-1;reboot".into();
        let t = token(&hostile.signed_text(), b"mac");
        assert_eq!(read(&t), Err(TokenError::Malformed));
        // An early warning's ledger key, with an event id as long as any, reads back.
        let mut early = grant();
        early.state = format!(
            "early/123456789012/us-east-1/sg-0123456789abcdef0/{}",
            "e".repeat(200)
        );
        let t = token(&early.signed_text(), b"mac");
        assert_eq!(read(&t).map(|u| u.grant), Ok(early));
    }

    #[test]
    fn a_token_expires_at_its_time() {
        let g = grant();
        assert_eq!(g.expired(g.expires - 1), Ok(()));
        assert_eq!(
            g.expired(g.expires),
            Err(TokenError::Expired("2027-01-15T08:00:00Z".into()))
        );
    }

    #[test]
    fn a_rule_is_the_same_whatever_its_id_and_however_ec2_writes_all_ports() {
        let r = RuleRef::of_change(&rdp(), None);
        let listed = |protocol: Protocol, from, to, source: &str| KnownRule {
            id: "sgr-0aaaaaaaaaaaaaaaa".into(),
            direction: Direction::Ingress,
            protocol,
            from_port: from,
            to_port: to,
            source: source.into(),
        };
        assert!(r.allows_the_same(&listed(Protocol::Tcp, Some(3389), Some(3389), "0.0.0.0/0")));
        assert!(!r.allows_the_same(&listed(Protocol::Tcp, Some(3389), Some(3389), "10.0.0.0/8")));
        assert!(!r.allows_the_same(&listed(Protocol::Tcp, Some(3389), Some(3390), "0.0.0.0/0")));
        let mut all = rdp();
        all.rule.protocol = Protocol::All;
        all.rule.from_port = None;
        all.rule.to_port = None;
        let all = RuleRef::of_change(&all, None);
        assert!(all.allows_the_same(&listed(Protocol::All, Some(-1), Some(-1), "0.0.0.0/0")));
        assert_eq!(all.key(), "all:::0.0.0.0/0");
    }
}
