//! Named destinations besides email: a Slack channel, a Microsoft Teams channel (both through an
//! incoming webhook URL), a signed webhook of the team's own tools, a PagerDuty service, or an
//! SNS topic that Amazon Q Developer in chat applications posts from. Each is a name, a kind and
//! the SSM Parameter Store parameter that holds its secret (a URL, or PagerDuty's routing key; a
//! webhook also names the parameter of its signing key), or for Q Developer the topic's ARN,
//! written as one setting:
//!
//! `secops=slack:/sgwatch/secops-slack,team-a=teams:/sgwatch/team-a,siem=webhook:/sgwatch/siem-url:/sgwatch/siem-key`
//! `oncall=pagerduty:/sgwatch/pagerduty-key,chat=chatbot:arn:aws:sns:us-east-1:111122223333:secops`
//!
//! The secrets themselves never appear in settings, the template or logs: whoever holds one can
//! post. A topic's ARN is no secret: who may publish to it is the topic's policy and IAM's.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// What a destination speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Slack incoming webhook: a Block Kit message.
    Slack,
    /// A Microsoft Teams Workflows webhook: an Adaptive Card.
    Teams,
    /// An HTTPS endpoint of the team's own: the decision as `sgwatch explain` prints it, signed.
    Webhook,
    /// A PagerDuty service (Events API v2): a `trigger` per rule opened to the internet at or
    /// above the paging level, and a `resolve` when the rule is removed.
    #[serde(rename = "pagerduty")]
    PagerDuty,
    /// An SNS topic that an Amazon Q Developer in chat applications channel configuration
    /// subscribes to: a custom notification, which Q Developer posts to Slack, Teams or Chime.
    Chatbot,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Slack => "slack",
            Kind::Teams => "teams",
            Kind::Webhook => "webhook",
            Kind::PagerDuty => "pagerduty",
            Kind::Chatbot => "chatbot",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "slack" => Ok(Kind::Slack),
            "teams" => Ok(Kind::Teams),
            "webhook" => Ok(Kind::Webhook),
            "pagerduty" => Ok(Kind::PagerDuty),
            "chatbot" => Ok(Kind::Chatbot),
            other => Err(format!(
                "{other:?} is not a destination kind (slack, teams, webhook, pagerduty or chatbot)"
            )),
        }
    }
}

/// One named destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// What groups name in their channels tag; compared without regard to case.
    pub name: String,
    pub kind: Kind,
    /// The SSM parameter (a SecureString) holding the URL posted to, or PagerDuty's routing key;
    /// for a `chatbot` destination, the SNS topic's ARN.
    pub parameter: String,
    /// For a webhook: the SSM parameter holding the HMAC-SHA256 signing key.
    pub key_parameter: Option<String>,
}

impl Destination {
    /// The SSM parameters this destination reads, URL (or routing key) first; none for a topic.
    pub fn parameters(&self) -> impl Iterator<Item = &str> {
        let own = (self.kind != Kind::Chatbot).then_some(self.parameter.as_str());
        own.into_iter().chain(self.key_parameter.as_deref())
    }

    /// The SNS topic a `chatbot` destination publishes to.
    pub fn topic(&self) -> Option<&str> {
        (self.kind == Kind::Chatbot).then_some(self.parameter.as_str())
    }
}

impl fmt::Display for Destination {
    /// The setting's own spelling, `name=kind:/url-parameter[:/key-parameter]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}:{}", self.name, self.kind, self.parameter)?;
        if let Some(key) = &self.key_parameter {
            write!(f, ":{key}")?;
        }
        Ok(())
    }
}

/// Longest destination name: it is a tag value's part and a ledger entry, not prose.
const NAME_MAX_CHARS: usize = 64;
/// Parameter Store's limit on a parameter name, path included.
/// <https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-su-create.html>
const PARAMETER_MAX_CHARS: usize = 1011;

/// Reads `name=kind:/parameter[:/key-parameter]`.
pub fn parse_destination(spec: &str) -> Result<Destination, String> {
    let spec = spec.trim();
    let (name, rest) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?} is not NAME=KIND:PARAMETER"))?;
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > NAME_MAX_CHARS
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "destination name {name:?} must be 1-{NAME_MAX_CHARS} letters, digits, - or _"
        ));
    }
    let (kind, target) = rest.split_once(':').unwrap_or((rest, ""));
    let kind: Kind = kind.parse()?;
    if kind == Kind::Chatbot {
        return Ok(Destination {
            name: name.to_owned(),
            kind,
            parameter: topic_arn(name, target)?,
            key_parameter: None,
        });
    }
    let mut parts = rest.split(':');
    parts.next();
    let parameter = parts
        .next()
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| {
            format!("destination {name} names no SSM parameter (NAME=KIND:PARAMETER)")
        })?;
    let parameter = parameter_name(parameter)?;
    let key_parameter = parts.next().map(parameter_name).transpose()?;
    if parts.next().is_some() {
        return Err(format!("destination {name} has more than two parameters"));
    }
    match (kind, &key_parameter) {
        (Kind::Webhook, None) => Err(format!(
            "destination {name} is a webhook: name the parameter of its signing key too \
             ({name}=webhook:/url-parameter:/key-parameter)"
        )),
        (Kind::Slack | Kind::Teams, Some(_)) => Err(format!(
            "destination {name} is {kind}: it takes one parameter (its URL), not a key"
        )),
        (Kind::PagerDuty, Some(_)) => Err(format!(
            "destination {name} is pagerduty: it takes one parameter (the routing key), not two"
        )),
        _ => Ok(Destination {
            name: name.to_owned(),
            kind,
            parameter,
            key_parameter,
        }),
    }
}

/// Reads the whole setting: destinations separated by commas, names unique (without regard to case).
pub fn parse_destinations(value: &str) -> Result<Vec<Destination>, String> {
    let mut out: Vec<Destination> = Vec::new();
    for spec in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let d = parse_destination(spec)?;
        if out.iter().any(|o| o.name.eq_ignore_ascii_case(&d.name)) {
            return Err(format!("destination {} is named twice", d.name));
        }
        out.push(d);
    }
    Ok(out)
}

/// The ARN of an SNS topic, `arn:PARTITION:sns:REGION:ACCOUNT:NAME`, as a chatbot destination
/// names it: the stack grants `sns:Publish` on exactly it.
fn topic_arn(name: &str, raw: &str) -> Result<String, String> {
    let arn = raw.trim();
    let parts: Vec<&str> = arn.split(':').collect();
    let topic_name = |t: &str| {
        (1..=256).contains(&t.len())
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    };
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && crate::core::remedy::is_region(parts[3])
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && topic_name(parts[5]);
    if ok {
        Ok(arn.to_owned())
    } else {
        Err(format!(
            "destination {name} is chatbot: name the SNS topic the chat configuration subscribes \
             to by its ARN ({name}=chatbot:arn:aws:sns:us-east-1:111122223333:secops-chat)"
        ))
    }
}

/// A full Parameter Store name: `/` then path segments of letters, digits and `_.-`. Full paths
/// only, so the parameter's ARN is `arn:PARTITION:ssm:REGION:ACCOUNT:parameter` followed by the
/// name, which is how the stack grants `ssm:GetParameter` on exactly these parameters.
/// <https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-parameter-name-constraints.html>
fn parameter_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'));
    let first = name
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !name.starts_with('/')
        || name.len() < 2
        || name.ends_with('/')
        || name.contains("//")
        || !valid_chars
        || name.len() > PARAMETER_MAX_CHARS
    {
        return Err(format!(
            "{name:?} is not a full SSM parameter name like /sgwatch/secops-slack \
             (a leading /, then letters, digits, _ . - and /)"
        ));
    }
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(format!(
            "{name:?}: Parameter Store reserves names beginning with aws or ssm"
        ));
    }
    Ok(name.to_owned())
}

/// The outcome of reading a group's channels tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channels {
    /// Configured destination names, as configured, in tag order, without repeats.
    pub known: Vec<String>,
    /// Each part that was dropped, with the reason.
    pub rejected: Vec<(String, String)>,
}

impl Channels {
    pub fn rejected_summary(&self) -> String {
        crate::core::recipients::rejected_summary(&self.rejected)
    }
}

/// Reads a channels tag: destination names separated by `,`, `;` or white space. A value holding
/// a control character is rejected whole, as in the owner tag.
pub fn parse_channels_tag(value: &str, configured: &[Destination]) -> Channels {
    let mut out = Channels::default();
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
        match configured
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(part))
        {
            Some(d) => {
                if !out.known.contains(&d.name) {
                    out.known.push(d.name.clone());
                }
            }
            None => out.rejected.push((
                part.to_owned(),
                if configured.is_empty() {
                    "no destination is configured".to_owned()
                } else {
                    format!(
                        "not a configured destination (configured: {})",
                        configured
                            .iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
            )),
        }
    }
    out
}

/// Which addresses a destination may have besides public ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// Private addresses (`--allow-private-destinations`): a receiver inside the VPC.
    pub private: bool,
    /// Loopback, plain HTTP included: local receivers in tests and the demo only.
    pub loopback: bool,
}

impl Reach {
    /// Why a post may not go to `ip`; `None` when it may.
    pub fn refuses(self, ip: IpAddr) -> Option<&'static str> {
        match ip {
            IpAddr::V4(v4) => self.refuses_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped().or_else(|| nat64(v6)) {
                Some(v4) => self.refuses_v4(v4),
                None => self.refuses_v6(v6),
            },
        }
    }

    fn refuses_v4(self, ip: Ipv4Addr) -> Option<&'static str> {
        let [a, b, ..] = ip.octets();
        if ip.is_link_local() {
            Some(LINK_LOCAL)
        } else if a == 0 || ip.is_broadcast() || ip.is_multicast() {
            Some(NOT_A_HOST)
        } else if ip.is_loopback() {
            (!self.loopback).then_some(LOOPBACK)
        } else if ip.is_private() || (a == 100 && b & 0xc0 == 64) || (a == 198 && b & 0xfe == 18) {
            (!self.private).then_some(PRIVATE)
        } else {
            None
        }
    }

    fn refuses_v6(self, ip: Ipv6Addr) -> Option<&'static str> {
        let first = ip.segments()[0];
        if ip == INSTANCE_METADATA_V6 || first & 0xffc0 == 0xfe80 {
            Some(LINK_LOCAL)
        } else if ip.is_unspecified() || ip.is_multicast() {
            Some(NOT_A_HOST)
        } else if ip.is_loopback() {
            (!self.loopback).then_some(LOOPBACK)
        } else if first & 0xfe00 == 0xfc00 {
            (!self.private).then_some(PRIVATE)
        } else {
            None
        }
    }
}

/// The instance metadata service's IPv6 address (Nitro instances).
const INSTANCE_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
const LINK_LOCAL: &str = "a link-local address, where the instance metadata service answers";
const NOT_A_HOST: &str = "not the address of a host";
const LOOPBACK: &str = "this machine's loopback, where the Lambda Runtime API answers";
const PRIVATE: &str =
    "a private address; install with --allow-private-destinations for a receiver inside the VPC";

/// The IPv4 address inside a NAT64 address (`64:ff9b::/96`), which a VPC with DNS64 reaches.
fn nat64(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_reads_every_kind() {
        let all = parse_destinations(
            "secops=slack:/sgwatch/secops-slack, team-a=teams:/sgwatch/team-a,\
             siem=webhook:/sgwatch/siem-url:/sgwatch/siem-key",
        )
        .unwrap();
        assert_eq!(
            all,
            [
                Destination {
                    name: "secops".into(),
                    kind: Kind::Slack,
                    parameter: "/sgwatch/secops-slack".into(),
                    key_parameter: None
                },
                Destination {
                    name: "team-a".into(),
                    kind: Kind::Teams,
                    parameter: "/sgwatch/team-a".into(),
                    key_parameter: None
                },
                Destination {
                    name: "siem".into(),
                    kind: Kind::Webhook,
                    parameter: "/sgwatch/siem-url".into(),
                    key_parameter: Some("/sgwatch/siem-key".into())
                },
            ]
        );
        assert_eq!(
            all[2].to_string(),
            "siem=webhook:/sgwatch/siem-url:/sgwatch/siem-key"
        );
        assert_eq!(
            all[2].parameters().collect::<Vec<_>>(),
            ["/sgwatch/siem-url", "/sgwatch/siem-key"]
        );
        assert_eq!(parse_destinations(" , ").unwrap(), []);
    }

    #[test]
    fn pagerduty_names_its_routing_key_and_chatbot_its_topic() {
        let all = parse_destinations(
            "oncall=pagerduty:/sgwatch/pagerduty-key,\
             chat=chatbot:arn:aws:sns:eu-west-1:111122223333:secops-chat",
        )
        .unwrap();
        assert_eq!(all[0].kind, Kind::PagerDuty);
        assert_eq!(
            all[0].parameters().collect::<Vec<_>>(),
            ["/sgwatch/pagerduty-key"]
        );
        assert_eq!(all[0].topic(), None);
        assert_eq!(all[1].kind, Kind::Chatbot);
        // A topic is granted by its ARN, never read from Parameter Store.
        assert_eq!(all[1].parameters().count(), 0);
        assert_eq!(
            all[1].topic(),
            Some("arn:aws:sns:eu-west-1:111122223333:secops-chat")
        );
        assert_eq!(
            all[1].to_string(),
            "chat=chatbot:arn:aws:sns:eu-west-1:111122223333:secops-chat"
        );
        for (spec, says) in [
            ("chat=chatbot:/sgwatch/chat", "by its ARN"),
            (
                "chat=chatbot:arn:aws:sqs:eu-west-1:111122223333:q",
                "by its ARN",
            ),
            ("chat=chatbot:arn:aws:sns:eu-west-1:1111:q", "by its ARN"),
            (
                "chat=chatbot:arn:aws:sns:eu-west-1:111122223333:a b",
                "by its ARN",
            ),
            ("chat=chatbot", "by its ARN"),
            ("oncall=pagerduty:/a:/b", "routing key"),
            ("oncall=pagerduty", "names no SSM parameter"),
        ] {
            let err = parse_destinations(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn mistakes_are_refused_with_what_to_write() {
        for (spec, says) in [
            ("secops", "NAME=KIND:PARAMETER"),
            ("sec ops=slack:/a", "destination name"),
            ("secops=email:/a", "not a destination kind"),
            ("secops=slack", "names no SSM parameter"),
            ("secops=slack:", "names no SSM parameter"),
            ("secops=slack:sgwatch/secops", "full SSM parameter name"),
            ("secops=slack:/sgwatch/sec ops", "full SSM parameter name"),
            ("secops=slack:/aws/reserved", "reserves"),
            ("siem=webhook:/sgwatch/siem-url", "signing key"),
            ("secops=slack:/a:/b", "takes one parameter"),
            ("siem=webhook:/a:/b:/c", "more than two"),
            ("a=slack:/x,A=teams:/y", "named twice"),
        ] {
            let err = parse_destinations(spec).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
        }
    }

    #[test]
    fn channels_keep_known_names_and_drop_the_rest_with_a_reason() {
        let configured = parse_destinations("secops=slack:/a,team-a=teams:/b").unwrap();
        let c = parse_channels_tag("SecOps, nope;team-a secops", &configured);
        assert_eq!(c.known, ["secops", "team-a"]);
        assert_eq!(c.rejected.len(), 1);
        assert!(c
            .rejected_summary()
            .contains("\"nope\": not a configured destination (configured: secops, team-a)"));
        let c = parse_channels_tag("secops\nteam-a", &configured);
        assert!(c.known.is_empty());
        assert!(c.rejected_summary().contains("control characters"));
        assert!(parse_channels_tag("secops", &[]).rejected[0]
            .1
            .contains("no destination is configured"));
    }
}
