//! How dangerous a change is: a five-level scale, and the rule that places an added or removed
//! rule on it.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::rules::{Action, Change, Direction, Protocol};

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

/// The severity of one rule change.
pub fn classify(change: &Change) -> Severity {
    let rule = &change.rule;
    if change.action == Action::Removed || rule.direction == Direction::Egress || !rule.is_world() {
        return Severity::Low;
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

/// The highest severity over all rule changes; `Info` when no rule changed.
pub fn overall(changes: &[Change]) -> Severity {
    changes.iter().map(classify).max().unwrap_or(Severity::Info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{AtomicRule, Source};

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
