//! How dangerous a change is: a five-level scale, and the rule that places an added or removed
//! rule on it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::core::rules::{Action, Change, Direction, Protocol, Reach};

/// Severity, ordered from least to most dangerous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Only non-rule properties changed.
    Info,
    /// A rule was added or removed that does not open anything to the world (or world 80/443).
    Low,
    /// Ingress from the world on a port that is not known to be high-risk.
    Medium,
    /// Ingress from the world on a high-risk port.
    High,
    /// Ingress from the world on all ports, all protocols, SSH or RDP.
    Critical,
}

/// Ports that remote administration uses; open to the world they are critical.
pub const CRITICAL_PORTS: [u16; 2] = [22, 3389];

/// The AWS Security Hub EC2.19 high-risk ports, less 22 and 3389 (critical here).
pub const HIGH_RISK_PORTS: [u16; 22] = [
    20, 21, 23, 25, 110, 135, 143, 445, 1433, 1434, 3000, 3306, 4333, 5000, 5432, 5500, 5601, 8080,
    8088, 8888, 9200, 9300,
];

/// Ports whose exposure to the world is usually intended.
pub const WEB_PORTS: [u16; 2] = [80, 443];

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|level| level.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| "expected one of critical, high, medium, low, info".to_owned())
    }
}

/// The severity of one rule change. A prefix list whose entries are unknown may hold the
/// internet: it is rated high whatever its ports, never low.
pub fn classify(change: &Change) -> Severity {
    let rule = &change.rule;
    if change.action == Action::Removed || rule.direction == Direction::Egress {
        return Severity::Low;
    }
    match rule.reach() {
        Reach::Limited => return Severity::Low,
        Reach::Unknown => return Severity::High,
        Reach::World => {}
    }
    let (from, to) = match rule.protocol {
        Protocol::All => return Severity::Critical,
        Protocol::Tcp | Protocol::Udp => match rule.port_range() {
            None => return Severity::Critical,
            Some(range) => range,
        },
        // ICMP and other protocols have no ports: open to the world, but no known service.
        _ => return Severity::Medium,
    };
    let includes = |port: u16| (from..=to).contains(&i64::from(port));
    if from <= 0 && to >= 65535 || CRITICAL_PORTS.into_iter().any(includes) {
        Severity::Critical
    } else if HIGH_RISK_PORTS.into_iter().any(includes) {
        Severity::High
    } else if from == to && WEB_PORTS.iter().any(|&p| i64::from(p) == from) {
        Severity::Low
    } else {
        Severity::Medium
    }
}

/// What the email adds to a rule line to explain its rating: for added ingress from a prefix
/// list, whether its entries are unknown or which of them is the world.
pub fn source_note(change: &Change) -> Option<String> {
    if change.action == Action::Removed || change.rule.direction == Direction::Egress {
        return None;
    }
    change.rule.list_note()
}

/// The highest severity over all rule changes; `Info` when no rule changed.
pub fn overall(changes: &[Change]) -> Severity {
    changes.iter().map(classify).max().unwrap_or(Severity::Info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::{AtomicRule, Source};

    fn added(
        direction: Direction,
        protocol: Protocol,
        ports: Option<(i64, i64)>,
        source: &str,
    ) -> Change {
        Change {
            action: Action::Added,
            rule: AtomicRule {
                direction,
                protocol,
                from_port: ports.map(|p| p.0),
                to_port: ports.map(|p| p.1),
                source: Source::parse_cidr(source),
                description: None,
                listed: None,
            },
        }
    }

    fn world_tcp(from: i64, to: i64) -> Change {
        added(
            Direction::Ingress,
            Protocol::Tcp,
            Some((from, to)),
            "0.0.0.0/0",
        )
    }

    #[test]
    fn critical_for_ssh_rdp_all_ports_and_all_protocols() {
        assert_eq!(classify(&world_tcp(3389, 3389)), Severity::Critical);
        assert_eq!(classify(&world_tcp(22, 22)), Severity::Critical);
        assert_eq!(classify(&world_tcp(0, 65535)), Severity::Critical);
        assert_eq!(
            classify(&world_tcp(3000, 4000)),
            Severity::Critical,
            "range includes 3389"
        );
        assert_eq!(
            classify(&added(Direction::Ingress, Protocol::All, None, "0.0.0.0/0")),
            Severity::Critical
        );
        assert_eq!(
            classify(&added(Direction::Ingress, Protocol::Udp, None, "::/0")),
            Severity::Critical
        );
        assert_eq!(
            classify(&added(
                Direction::Ingress,
                Protocol::Tcp,
                Some((22, 22)),
                "::/0"
            )),
            Severity::Critical
        );
    }

    #[test]
    fn high_for_each_high_risk_port() {
        for port in HIGH_RISK_PORTS {
            let port = i64::from(port);
            assert_eq!(
                classify(&world_tcp(port, port)),
                Severity::High,
                "port {port}"
            );
        }
        assert_eq!(
            classify(&added(
                Direction::Ingress,
                Protocol::Udp,
                Some((1434, 1434)),
                "0.0.0.0/0"
            )),
            Severity::High
        );
    }

    #[test]
    fn medium_for_other_world_ports_low_for_web_ports() {
        assert_eq!(classify(&world_tcp(8443, 8443)), Severity::Medium);
        assert_eq!(
            classify(&world_tcp(80, 81)),
            Severity::Medium,
            "range holds another port"
        );
        assert_eq!(
            classify(&world_tcp(80, 443)),
            Severity::High,
            "range holds 110, 135, 143"
        );
        assert_eq!(classify(&world_tcp(80, 80)), Severity::Low);
        assert_eq!(classify(&world_tcp(443, 443)), Severity::Low);
        assert_eq!(
            classify(&added(
                Direction::Ingress,
                Protocol::Icmp,
                Some((8, 0)),
                "0.0.0.0/0"
            )),
            Severity::Medium
        );
    }

    #[test]
    fn low_for_egress_private_sources_and_removals() {
        assert_eq!(
            classify(&added(Direction::Egress, Protocol::All, None, "0.0.0.0/0")),
            Severity::Low
        );
        assert_eq!(
            classify(&added(
                Direction::Ingress,
                Protocol::Tcp,
                Some((22, 22)),
                "10.0.0.0/8"
            )),
            Severity::Low
        );
        let mut removed = world_tcp(3389, 3389);
        removed.action = Action::Removed;
        assert_eq!(classify(&removed), Severity::Low);
        let mut group = world_tcp(22, 22);
        group.rule.source = Source::Group("sg-0123".into());
        assert_eq!(classify(&group), Severity::Low);
    }

    #[test]
    fn sources_wider_than_the_largest_private_range_are_the_world() {
        let rated = |ports: (i64, i64), source: &str| {
            classify(&added(
                Direction::Ingress,
                Protocol::Tcp,
                Some(ports),
                source,
            ))
        };
        // Two halves of IPv4 on RDP, an eighth on SSH, the IPv6 unicast space: as critical as /0.
        assert_eq!(rated((3389, 3389), "0.0.0.0/1"), Severity::Critical);
        assert_eq!(rated((3389, 3389), "128.0.0.0/1"), Severity::Critical);
        assert_eq!(rated((22, 22), "0.0.0.0/3"), Severity::Critical);
        assert_eq!(rated((22, 22), "64.0.0.0/7"), Severity::Critical);
        assert_eq!(rated((22, 22), "2000::/3"), Severity::Critical);
        assert_eq!(rated((22, 22), "::/6"), Severity::Critical);
        assert_eq!(rated((5432, 5432), "0.0.0.0/2"), Severity::High);
        // The largest private ranges, and anything narrower, are not.
        assert_eq!(rated((22, 22), "10.0.0.0/8"), Severity::Low);
        assert_eq!(rated((22, 22), "fc00::/7"), Severity::Low);
        assert_eq!(rated((22, 22), "203.0.113.0/24"), Severity::Low);
        assert_eq!(rated((22, 22), "2001:db8::/32"), Severity::Low);
        assert!(Source::parse_cidr("0.0.0.0/1").is_world());
        assert!(!Source::parse_cidr("10.0.0.0/8").is_world());
        // A value that is not a CIDR at all (hostile, or a shape change) is never a panic.
        for odd in ["", "/", "0.0.0.0/", "0.0.0.0/x", "::/999", "1.2.3.4"] {
            let _ = Source::parse_cidr(odd).is_world();
        }
    }

    #[test]
    fn a_prefix_list_is_as_wide_as_its_widest_entry_and_high_when_unknown() {
        use crate::core::rules::Listed;
        let from_list = |port: i64, listed: Option<Listed>| {
            let mut c = world_tcp(port, port);
            c.rule.source = Source::PrefixList("pl-0abc".into());
            c.rule.listed = listed;
            c
        };
        let entries = |cidrs: &[&str]| {
            Some(Listed::Entries(
                cidrs.iter().map(|c| c.to_string()).collect(),
            ))
        };
        let unknown = from_list(80, None);
        assert_eq!(classify(&unknown), Severity::High);
        assert_eq!(
            source_note(&unknown).as_deref(),
            Some("prefix list pl-0abc: entries unknown")
        );
        let denied = from_list(443, Some(Listed::Unknown("AccessDenied".into())));
        assert_eq!(classify(&denied), Severity::High);
        let world = from_list(22, entries(&["10.0.0.0/8", "0.0.0.0/1"]));
        assert_eq!(classify(&world), Severity::Critical);
        assert_eq!(
            source_note(&world).as_deref(),
            Some("prefix list pl-0abc holds 0.0.0.0/1")
        );
        let office = from_list(22, entries(&["10.0.0.0/8", "203.0.113.0/24"]));
        assert_eq!(classify(&office), Severity::Low);
        assert_eq!(source_note(&office), None);
        let mut egress = from_list(22, None);
        egress.rule.direction = Direction::Egress;
        assert_eq!(
            (classify(&egress), source_note(&egress)),
            (Severity::Low, None)
        );
    }

    #[test]
    fn info_when_no_rule_changed_and_overall_is_the_max() {
        assert_eq!(overall(&[]), Severity::Info);
        assert_eq!(
            overall(&[world_tcp(80, 80), world_tcp(5432, 5432)]),
            Severity::High
        );
    }

    #[test]
    fn parses_case_insensitively() {
        assert_eq!("CRITICAL".parse::<Severity>(), Ok(Severity::Critical));
        assert!("severe".parse::<Severity>().is_err());
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
    }
}
