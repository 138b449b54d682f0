//! Security-group rules as atomic rules, and the diff between two sets of them.
//!
//! AWS Config reports rule changes by array position, so removing the first of four rules looks
//! like three updates and a delete. Comparing positions would report noise; comparing *atomic
//! rules* (one direction, protocol, port range and source each) as sets reports exactly what was
//! opened and closed, whatever the order or grouping of the permissions.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The IP protocol of a rule, normalised (`-1` is `All`; `6` is `Tcp`, and so on).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Any other protocol, by the number (or name) AWS reported.
    Other(String),
}

impl Protocol {
    pub fn parse(raw: &str) -> Protocol {
        match raw.trim().to_ascii_lowercase().as_str() {
            "-1" | "all" => Protocol::All,
            "tcp" | "6" => Protocol::Tcp,
            "udp" | "17" => Protocol::Udp,
            "icmp" | "1" => Protocol::Icmp,
            "icmpv6" | "58" => Protocol::Icmpv6,
            other => Protocol::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Protocol::All => "all",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Icmpv6 => "icmpv6",
            Protocol::Other(p) => p,
        }
    }
}

/// Where traffic comes from (ingress) or goes to (egress).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    Cidr4(String),
    Cidr6(String),
    /// Another security group, by id.
    Group(String),
    PrefixList(String),
}

impl Source {
    /// An IPv4 or IPv6 CIDR, told apart by the colon.
    pub fn parse_cidr(cidr: &str) -> Source {
        let cidr = cidr.trim().to_owned();
        if cidr.contains(':') {
            Source::Cidr6(cidr)
        } else {
            Source::Cidr4(cidr)
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Source::Cidr4(s) | Source::Cidr6(s) | Source::Group(s) | Source::PrefixList(s) => s,
        }
    }

    /// A CIDR wider than the largest private range: an IPv4 prefix shorter than /8 (wider than
    /// `10.0.0.0/8`) or an IPv6 prefix shorter than /7 (wider than `fc00::/7`). Such a range holds
    /// a large part of the public internet whatever its address, so `0.0.0.0/1` plus
    /// `128.0.0.0/1` open as much as `0.0.0.0/0`. A value that is not a CIDR is not the world
    /// (AWS validates the rules it records).
    pub fn is_world(&self) -> bool {
        let prefix = |cidr: &str| -> Option<u8> { cidr.rsplit_once('/')?.1.trim().parse().ok() };
        match self {
            Source::Cidr4(c) => prefix(c).is_some_and(|p| p < 8),
            Source::Cidr6(c) => prefix(c).is_some_and(|p| p < 7),
            _ => false,
        }
    }
}

/// What a managed prefix list was found to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// Its CIDRs, as EC2 listed them.
    Entries(Vec<String>),
    /// It could not be read; why.
    Unknown(String),
}

/// How far a rule's source reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The internet, or a large part of it (see [`Source::is_world`]).
    World,
    /// A private or narrower range, another group, or a prefix list holding only such ranges.
    Limited,
    /// A prefix list whose entries are not known: it may hold the internet.
    Unknown,
}

/// What identifies an atomic rule; the description rides along but is not part of it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    pub direction: Direction,
    pub protocol: Protocol,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    pub source: Source,
}

/// One rule: a direction, protocol, port range and a single source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicRule {
    pub direction: Direction,
    pub protocol: Protocol,
    /// `None` means all ports (or, for ICMP, all types).
    pub from_port: Option<i64>,
    /// `None` means all ports (or, for ICMP, all codes).
    pub to_port: Option<i64>,
    pub source: Source,
    pub description: Option<String>,
    /// For a prefix-list source: what the list holds, once looked up (`None`: not looked up).
    pub listed: Option<Listed>,
}

impl AtomicRule {
    fn from_key(key: RuleKey, description: Option<String>) -> AtomicRule {
        AtomicRule {
            direction: key.direction,
            protocol: key.protocol,
            from_port: key.from_port,
            to_port: key.to_port,
            source: key.source,
            description,
            listed: None,
        }
    }

    /// How far the source reaches; a prefix list reaches as far as its widest entry.
    pub fn reach(&self) -> Reach {
        match (&self.source, &self.listed) {
            (Source::PrefixList(_), Some(Listed::Entries(cidrs))) => {
                if cidrs.iter().any(|c| Source::parse_cidr(c).is_world()) {
                    Reach::World
                } else {
                    Reach::Limited
                }
            }
            (Source::PrefixList(_), _) => Reach::Unknown,
            (source, _) if source.is_world() => Reach::World,
            _ => Reach::Limited,
        }
    }

    pub fn is_world(&self) -> bool {
        self.reach() == Reach::World
    }

    /// What the email says of a prefix-list source: `prefix list pl-1: entries unknown`, or the
    /// entry that makes it the world (`prefix list pl-1 holds 0.0.0.0/0`).
    pub fn list_note(&self) -> Option<String> {
        let Source::PrefixList(id) = &self.source else {
            return None;
        };
        match &self.listed {
            Some(Listed::Entries(cidrs)) => cidrs
                .iter()
                .find(|c| Source::parse_cidr(c).is_world())
                .map(|c| format!("prefix list {id} holds {c}")),
            _ => Some(format!("prefix list {id}: entries unknown")),
        }
    }

    /// The inclusive port range, or `None` for all ports.
    pub fn port_range(&self) -> Option<(i64, i64)> {
        Some((self.from_port?, self.to_port?))
    }

    /// `tcp/3389`, `tcp/1000-2000`, `udp/all`, `all`, `icmp/8:0`.
    pub fn protocol_and_ports(&self) -> String {
        let proto = self.protocol.as_str();
        match (&self.protocol, self.from_port, self.to_port) {
            (Protocol::All, _, _) => "all".to_owned(),
            (Protocol::Icmp | Protocol::Icmpv6, Some(t), Some(c)) => format!("{proto}/{t}:{c}"),
            (Protocol::Icmp | Protocol::Icmpv6, Some(t), None) => format!("{proto}/{t}"),
            (Protocol::Other(_), _, _) => format!("protocol {proto}"),
            (_, Some(f), Some(t)) if f == t => format!("{proto}/{f}"),
            (_, Some(f), Some(t)) => format!("{proto}/{f}-{t}"),
            _ => format!("{proto}/all"),
        }
    }
}

impl fmt::Display for AtomicRule {
    /// `ingress tcp/3389 from 0.0.0.0/0`, `egress all to ::/0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let preposition = match self.direction {
            Direction::Ingress => "from",
            Direction::Egress => "to",
        };
        write!(
            f,
            "{} {} {} {}",
            self.direction.as_str(),
            self.protocol_and_ports(),
            preposition,
            self.source.as_str()
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Added,
    Removed,
}

/// A rule that was added or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub action: Action,
    pub rule: AtomicRule,
}

impl Serialize for Change {
    /// The `changes[]` entry of the `explain` contract.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Flat<'a> {
            action: Action,
            direction: Direction,
            protocol: &'a str,
            from_port: Option<i64>,
            to_port: Option<i64>,
            source: &'a str,
            description: Option<&'a str>,
        }
        let r = &self.rule;
        Flat {
            action: self.action,
            direction: r.direction,
            protocol: r.protocol.as_str(),
            from_port: r.from_port,
            to_port: r.to_port,
            source: r.source.as_str(),
            description: r.description.as_deref(),
        }
        .serialize(serializer)
    }
}

/// A rule whose description changed while the rule itself stayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptionChange {
    pub rule: AtomicRule,
    pub previous: Option<String>,
}

/// The difference between two sets of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleDiff {
    /// Added rules first, then removed ones, each in a stable order.
    pub changes: Vec<Change>,
    pub descriptions: Vec<DescriptionChange>,
}

/// A set of atomic rules, each with its description.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet(BTreeMap<RuleKey, Option<String>>);

impl RuleSet {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every atomic rule of one permission (`ipPermissions[i]` as AWS Config reports it).
    pub fn add_permission(
        &mut self,
        direction: Direction,
        permission: &Value,
    ) -> Result<(), String> {
        let p = Permission::deserialize(permission)
            .map_err(|e| format!("a {} permission is malformed: {e}", direction.as_str()))?;
        let protocol = Protocol::parse(p.ip_protocol.as_deref().unwrap_or("-1"));
        let (from_port, to_port) = normalise_ports(&protocol, p.from_port, p.to_port);
        let mut add = |source: Source, description: Option<String>| {
            let key = RuleKey {
                direction,
                protocol: protocol.clone(),
                from_port,
                to_port,
                source,
            };
            let slot = self.0.entry(key).or_default();
            if slot.is_none() {
                *slot = description.filter(|d| !d.is_empty());
            }
        };
        for r in p.ipv4_ranges {
            add(Source::Cidr4(r.cidr_ip.trim().to_owned()), r.description);
        }
        for r in p.ipv6_ranges {
            add(Source::Cidr6(r.cidr_ipv6.trim().to_owned()), r.description);
        }
        for r in p.user_id_group_pairs {
            if let Some(id) = r.group_id.or(r.group_name) {
                add(Source::Group(id), r.description);
            }
        }
        for r in p.prefix_list_ids {
            add(Source::PrefixList(r.prefix_list_id), r.description);
        }
        // Legacy `ipRanges` repeats `ipv4Ranges` as plain strings; a set makes repeats vanish.
        for r in p.ip_ranges {
            let cidr = match &r {
                Value::String(s) => Some(s.as_str()),
                other => other.get("cidrIp").and_then(Value::as_str),
            };
            if let Some(cidr) = cidr {
                add(Source::parse_cidr(cidr), None);
            }
        }
        Ok(())
    }

    /// Adds a rule property's value: one permission, or an array of them.
    pub fn add_value(&mut self, direction: Direction, value: &Value) -> Result<(), String> {
        match value {
            Value::Null => Ok(()),
            Value::Array(items) => items
                .iter()
                .try_for_each(|p| self.add_permission(direction, p)),
            one => self.add_permission(direction, one),
        }
    }

    /// Adds both rule lists of a whole security-group configuration.
    pub fn add_configuration(&mut self, configuration: &Value) -> Result<(), String> {
        if let Some(ingress) = configuration.get("ipPermissions") {
            self.add_value(Direction::Ingress, ingress)?;
        }
        if let Some(egress) = configuration.get("ipPermissionsEgress") {
            self.add_value(Direction::Egress, egress)?;
        }
        Ok(())
    }

    pub fn rules(&self) -> impl Iterator<Item = AtomicRule> + '_ {
        self.0
            .iter()
            .map(|(k, d)| AtomicRule::from_key(k.clone(), d.clone()))
    }
}

/// What `updated` has that `previous` lacks (added) and the reverse (removed).
pub fn diff(previous: &RuleSet, updated: &RuleSet) -> RuleDiff {
    let mut out = RuleDiff::default();
    for (key, description) in &updated.0 {
        match previous.0.get(key) {
            None => out.changes.push(Change {
                action: Action::Added,
                rule: AtomicRule::from_key(key.clone(), description.clone()),
            }),
            Some(before) if before != description => out.descriptions.push(DescriptionChange {
                rule: AtomicRule::from_key(key.clone(), description.clone()),
                previous: before.clone(),
            }),
            Some(_) => {}
        }
    }
    for (key, description) in &previous.0 {
        if !updated.0.contains_key(key) {
            out.changes.push(Change {
                action: Action::Removed,
                rule: AtomicRule::from_key(key.clone(), description.clone()),
            });
        }
    }
    out
}

fn normalise_ports(
    protocol: &Protocol,
    from: Option<i64>,
    to: Option<i64>,
) -> (Option<i64>, Option<i64>) {
    let known = |p: Option<i64>| p.filter(|&p| p >= 0);
    match protocol {
        Protocol::All => (None, None),
        Protocol::Icmp | Protocol::Icmpv6 => (known(from), known(to)),
        _ => match (known(from), known(to)) {
            (Some(f), Some(t)) => (Some(f), Some(t)),
            _ => (None, None),
        },
    }
}

/// `ipPermissions[i]` as AWS Config reports it; unknown fields are ignored, `null` lists are empty.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Permission {
    ip_protocol: Option<String>,
    from_port: Option<i64>,
    to_port: Option<i64>,
    #[serde(deserialize_with = "null_as_empty")]
    ipv4_ranges: Vec<Ipv4Range>,
    #[serde(deserialize_with = "null_as_empty")]
    ipv6_ranges: Vec<Ipv6Range>,
    #[serde(deserialize_with = "null_as_empty")]
    user_id_group_pairs: Vec<GroupPair>,
    #[serde(deserialize_with = "null_as_empty")]
    prefix_list_ids: Vec<PrefixListId>,
    #[serde(deserialize_with = "null_as_empty")]
    ip_ranges: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ipv4Range {
    cidr_ip: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ipv6Range {
    cidr_ipv6: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupPair {
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    group_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrefixListId {
    prefix_list_id: String,
    #[serde(default)]
    description: Option<String>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn set(direction: Direction, permissions: &[Value]) -> RuleSet {
        let mut s = RuleSet::default();
        for p in permissions {
            s.add_permission(direction, p).unwrap();
        }
        s
    }

    fn tcp(port: i64, cidrs: &[&str]) -> Value {
        json!({
            "ipProtocol": "tcp", "fromPort": port, "toPort": port,
            "ipv4Ranges": cidrs.iter().map(|c| json!({"cidrIp": c})).collect::<Vec<_>>(),
            "ipRanges": cidrs,
        })
    }

    #[test]
    fn one_permission_expands_to_one_rule_per_source() {
        let p = json!({
            "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
            "ipv4Ranges": [{"cidrIp": "10.0.0.0/8", "description": "office"}, {"cidrIp": "0.0.0.0/0"}],
            "ipv6Ranges": [{"cidrIpv6": "::/0"}],
            "userIdGroupPairs": [{"groupId": "sg-1", "userId": "123456789012"}],
            "prefixListIds": [{"prefixListId": "pl-1"}],
            "ipRanges": ["10.0.0.0/8", "0.0.0.0/0"],
        });
        let s = set(Direction::Ingress, &[p]);
        let shown: Vec<String> = s.rules().map(|r| r.to_string()).collect();
        assert_eq!(shown.len(), 5, "{shown:?}");
        assert!(shown.contains(&"ingress tcp/443 from sg-1".to_owned()));
        let office = s
            .rules()
            .find(|r| r.source.as_str() == "10.0.0.0/8")
            .unwrap();
        assert_eq!(office.description.as_deref(), Some("office"));
    }

    #[test]
    fn all_protocols_and_missing_ports_mean_all_ports() {
        let s = set(
            Direction::Egress,
            &[
                json!({"ipProtocol": "-1", "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}),
                json!({"ipProtocol": "udp", "fromPort": -1, "toPort": -1, "ipv6Ranges": [{"cidrIpv6": "::/0"}]}),
            ],
        );
        let rules: Vec<AtomicRule> = s.rules().collect();
        assert_eq!(rules[0].protocol, Protocol::All);
        assert_eq!((rules[0].from_port, rules[0].to_port), (None, None));
        assert_eq!(rules[0].to_string(), "egress all to 0.0.0.0/0");
        assert_eq!(rules[1].to_string(), "egress udp/all to ::/0");
    }

    #[test]
    fn removing_the_first_of_four_rules_reports_only_that_rule() {
        let before = set(
            Direction::Ingress,
            &[
                tcp(22, &["10.0.0.0/8"]),
                tcp(80, &["0.0.0.0/0"]),
                tcp(443, &["0.0.0.0/0"]),
                tcp(8080, &["10.1.0.0/16"]),
            ],
        );
        let after = set(
            Direction::Ingress,
            &[
                tcp(80, &["0.0.0.0/0"]),
                tcp(443, &["0.0.0.0/0"]),
                tcp(8080, &["10.1.0.0/16"]),
            ],
        );
        let d = diff(&before, &after);
        assert_eq!(d.changes.len(), 1);
        assert_eq!(d.changes[0].action, Action::Removed);
        assert_eq!(
            d.changes[0].rule.to_string(),
            "ingress tcp/22 from 10.0.0.0/8"
        );
    }

    #[test]
    fn widening_a_cidr_is_one_added_and_one_removed() {
        let d = diff(
            &set(Direction::Ingress, &[tcp(22, &["10.0.0.0/16"])]),
            &set(Direction::Ingress, &[tcp(22, &["10.0.0.0/8"])]),
        );
        let shown: Vec<String> = d
            .changes
            .iter()
            .map(|c| format!("{:?} {}", c.action, c.rule))
            .collect();
        assert_eq!(
            shown,
            [
                "Added ingress tcp/22 from 10.0.0.0/8",
                "Removed ingress tcp/22 from 10.0.0.0/16"
            ]
        );
    }

    #[test]
    fn description_only_changes_are_not_rule_changes() {
        let before = set(
            Direction::Ingress,
            &[
                json!({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv4Ranges": [{"cidrIp": "10.0.0.0/8", "description": "old"}]}),
            ],
        );
        let after = set(
            Direction::Ingress,
            &[
                json!({"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv4Ranges": [{"cidrIp": "10.0.0.0/8", "description": "new"}]}),
            ],
        );
        let d = diff(&before, &after);
        assert!(d.changes.is_empty());
        assert_eq!(d.descriptions.len(), 1);
        assert_eq!(d.descriptions[0].previous.as_deref(), Some("old"));
    }

    #[test]
    fn mistyped_permission_is_an_error() {
        let mut s = RuleSet::default();
        let err = s
            .add_permission(
                Direction::Ingress,
                &json!({"ipProtocol": "tcp", "fromPort": "22"}),
            )
            .unwrap_err();
        assert!(err.contains("ingress permission is malformed"), "{err}");
        assert!(s
            .add_permission(Direction::Ingress, &json!(["not", "an", "object"]))
            .is_err());
        // Explicit nulls are tolerated.
        s.add_permission(
            Direction::Ingress,
            &json!({"ipProtocol": "tcp", "ipv4Ranges": null}),
        )
        .unwrap();
    }

    // Property tests: the diff depends on the atomic rules only, never on order or grouping.

    fn arb_rule() -> impl Strategy<Value = (String, i64, i64, String)> {
        (
            prop_oneof![
                Just("tcp".to_owned()),
                Just("udp".to_owned()),
                Just("-1".to_owned()),
                Just("icmp".to_owned())
            ],
            0i64..70_000,
            0i64..200,
            prop_oneof![
                Just("0.0.0.0/0".to_owned()),
                Just("::/0".to_owned()),
                (0u8..=255, 8u8..=32).prop_map(|(a, m)| format!("10.{a}.0.0/{m}")),
                (0u32..50).prop_map(|n| format!("sg-{n:08x}")),
                (0u32..5).prop_map(|n| format!("pl-{n}")),
            ],
        )
            .prop_map(|(p, from, span, src)| (p, from.min(65535), (from + span).min(65535), src))
    }

    /// One permission per atomic rule.
    fn permission(rule: &(String, i64, i64, String)) -> Value {
        let (p, from, to, src) = rule;
        let mut v = json!({"ipProtocol": p, "fromPort": from, "toPort": to});
        let (field, item) = if src.starts_with("sg-") {
            ("userIdGroupPairs", json!({"groupId": src}))
        } else if src.starts_with("pl-") {
            ("prefixListIds", json!({"prefixListId": src}))
        } else if src.contains(':') {
            ("ipv6Ranges", json!({"cidrIpv6": src}))
        } else {
            ("ipv4Ranges", json!({"cidrIp": src}))
        };
        v[field] = json!([item]);
        v
    }

    /// The same rules merged: one permission per (protocol, ports), all sources in it.
    fn merged(rules: &[(String, i64, i64, String)]) -> Vec<Value> {
        let mut groups: BTreeMap<(String, i64, i64), Vec<Value>> = BTreeMap::new();
        for r in rules {
            groups
                .entry((r.0.clone(), r.1, r.2))
                .or_default()
                .push(permission(r));
        }
        groups
            .into_values()
            .map(|ps| {
                let mut out = ps[0].clone();
                for field in [
                    "ipv4Ranges",
                    "ipv6Ranges",
                    "userIdGroupPairs",
                    "prefixListIds",
                ] {
                    let all: Vec<Value> = ps
                        .iter()
                        .filter_map(|p| p.get(field))
                        .flat_map(|a| a.as_array().unwrap().clone())
                        .collect();
                    out[field] = Value::Array(all);
                }
                out
            })
            .collect()
    }

    proptest! {
        #[test]
        fn reordering_reports_nothing(rules in prop::collection::vec(arb_rule(), 0..30), seed in any::<u64>()) {
            let perms: Vec<Value> = rules.iter().map(permission).collect();
            let mut shuffled = perms.clone();
            // A seeded Fisher-Yates keeps the test reproducible.
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let d = diff(&set(Direction::Ingress, &perms), &set(Direction::Ingress, &shuffled));
            prop_assert!(d.changes.is_empty(), "{:?}", d.changes);
        }

        #[test]
        fn splitting_or_merging_permissions_reports_nothing(rules in prop::collection::vec(arb_rule(), 0..30)) {
            let split: Vec<Value> = rules.iter().map(permission).collect();
            let d = diff(&set(Direction::Ingress, &split), &set(Direction::Ingress, &merged(&rules)));
            prop_assert!(d.changes.is_empty(), "{:?}", d.changes);
        }

        #[test]
        fn adding_or_removing_one_rule_reports_exactly_it(rules in prop::collection::vec(arb_rule(), 0..30), extra in arb_rule()) {
            let base = set(Direction::Ingress, &merged(&rules));
            let mut with = rules.clone();
            with.push(extra.clone());
            let bigger = set(Direction::Ingress, &merged(&with));
            let expected = set(Direction::Ingress, &[permission(&extra)]).rules().next().unwrap();
            let already = base.rules().any(|r| r == expected);
            let added = diff(&base, &bigger);
            let removed = diff(&bigger, &base);
            if already {
                prop_assert!(added.changes.is_empty() && removed.changes.is_empty());
            } else {
                prop_assert_eq!(added.changes, vec![Change { action: Action::Added, rule: expected.clone() }]);
                prop_assert_eq!(removed.changes, vec![Change { action: Action::Removed, rule: expected }]);
            }
        }
    }
}
