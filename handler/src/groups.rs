//! A security group as EC2 shows it now: its name and tags, read with `DescribeSecurityGroups`
//! when a call from the actor feed may need an early warning (read-only; the handler's role has
//! `ec2:DescribeSecurityGroups`, which supports no resource-level permissions); and whether the
//! rules a `ModifySecurityGroupRules` call rewrote are ingress, read with
//! `DescribeSecurityGroupRules` (`ec2:DescribeSecurityGroupRules`, likewise), which also names
//! the rules the alert's commands remove; and what the group is attached to, read with
//! `DescribeNetworkInterfaces` (`ec2:DescribeNetworkInterfaces`, likewise).

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::core::exposure::Attached;
use crate::core::remedy::KnownRule;
use crate::core::rules::{Direction, Protocol};
use crate::early::GroupNow;

/// The group `group_id` now; `None` when it no longer exists.
pub async fn describe(
    ec2: &aws_sdk_ec2::Client,
    group_id: &str,
) -> Result<Option<GroupNow>, String> {
    let out = match ec2
        .describe_security_groups()
        .group_ids(group_id)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if e.code() == Some("InvalidGroup.NotFound") => return Ok(None),
        Err(e) => {
            return Err(format!(
                "DescribeSecurityGroups {group_id}: {}",
                DisplayErrorContext(&e)
            ))
        }
    };
    Ok(out.security_groups().first().map(|g| GroupNow {
        name: g.group_name().map(str::to_owned),
        tags: g
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    }))
}

/// Whether each of `rule_ids` of `group_id` is egress (`IsEgress`), by rule id. A rule that no
/// longer exists is left out.
pub async fn rule_directions(
    ec2: &aws_sdk_ec2::Client,
    group_id: &str,
    rule_ids: &[String],
) -> Result<std::collections::BTreeMap<String, bool>, String> {
    let out = ec2
        .describe_security_group_rules()
        .set_security_group_rule_ids(Some(rule_ids.to_vec()))
        .send()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) if e.code() == Some("InvalidSecurityGroupRuleId.NotFound") => {
            return Ok(Default::default())
        }
        Err(e) => {
            return Err(format!(
                "DescribeSecurityGroupRules {group_id}: {}",
                DisplayErrorContext(&e)
            ))
        }
    };
    Ok(out
        .security_group_rules()
        .iter()
        .filter(|r| r.group_id() == Some(group_id))
        .filter_map(|r| Some((r.security_group_rule_id()?.to_owned(), r.is_egress()?)))
        .collect())
}

/// The group's rules with their ids (`DescribeSecurityGroupRules` filtered by `group-id`), to
/// name the rule a command removes.
pub async fn rules(ec2: &aws_sdk_ec2::Client, group_id: &str) -> Result<Vec<KnownRule>, String> {
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("group-id")
        .values(group_id)
        .build();
    let mut known = Vec::new();
    let mut pages = ec2
        .describe_security_group_rules()
        .filters(filter)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "DescribeSecurityGroupRules {group_id}: {}",
                DisplayErrorContext(&e)
            )
        })?;
        for r in page.security_group_rules() {
            let source = r
                .cidr_ipv4()
                .or(r.cidr_ipv6())
                .or(r.prefix_list_id())
                .or(r.referenced_group_info().and_then(|g| g.group_id()));
            let (Some(id), Some(source), Some(egress)) =
                (r.security_group_rule_id(), source, r.is_egress())
            else {
                continue;
            };
            known.push(KnownRule {
                id: id.to_owned(),
                direction: if egress {
                    Direction::Egress
                } else {
                    Direction::Ingress
                },
                protocol: Protocol::parse(r.ip_protocol().unwrap_or("-1")),
                from_port: r.from_port().map(i64::from),
                to_port: r.to_port().map(i64::from),
                source: source.to_owned(),
            });
        }
    }
    Ok(known)
}

/// The network interfaces that use `group_id`, with their instances and public IP addresses
/// (`DescribeNetworkInterfaces` filtered by `group-id`).
pub async fn attached(ec2: &aws_sdk_ec2::Client, group_id: &str) -> Result<Vec<Attached>, String> {
    let filter = aws_sdk_ec2::types::Filter::builder()
        .name("group-id")
        .values(group_id)
        .build();
    let mut out = Vec::new();
    let mut pages = ec2
        .describe_network_interfaces()
        .filters(filter)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            format!(
                "DescribeNetworkInterfaces {group_id}: {}",
                DisplayErrorContext(&e)
            )
        })?;
        for eni in page.network_interfaces() {
            let Some(id) = eni.network_interface_id() else {
                continue;
            };
            out.push(Attached {
                interface: id.to_owned(),
                instance: eni
                    .attachment()
                    .and_then(|a| a.instance_id())
                    .map(str::to_owned),
                public_ip: eni
                    .association()
                    .and_then(|a| a.public_ip())
                    .map(str::to_owned),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::describe_security_group_rules::DescribeSecurityGroupRulesOutput;
    use aws_sdk_ec2::types::SecurityGroupRule;
    use aws_smithy_mocks::{mock, mock_client};

    /// DescribeSecurityGroupRules as the EC2 API reference documents its output.
    #[tokio::test]
    async fn the_direction_of_each_rewritten_rule_is_read() {
        let described = mock!(aws_sdk_ec2::Client::describe_security_group_rules)
            .match_requests(|r| r.security_group_rule_ids() == ["sgr-0a1b2c3d4e5f60718"])
            .then_output(|| {
                DescribeSecurityGroupRulesOutput::builder()
                    .security_group_rules(
                        SecurityGroupRule::builder()
                            .security_group_rule_id("sgr-0a1b2c3d4e5f60718")
                            .group_id("sg-0123456789abcdef0")
                            .group_owner_id("123456789012")
                            .is_egress(false)
                            .ip_protocol("tcp")
                            .from_port(22)
                            .to_port(22)
                            .cidr_ipv4("0.0.0.0/0")
                            .build(),
                    )
                    .build()
            });
        let ec2 = mock_client!(aws_sdk_ec2, [&described]);
        let directions = rule_directions(
            &ec2,
            "sg-0123456789abcdef0",
            &["sgr-0a1b2c3d4e5f60718".to_owned()],
        )
        .await
        .unwrap();
        assert_eq!(
            directions,
            std::collections::BTreeMap::from([("sgr-0a1b2c3d4e5f60718".to_owned(), false)])
        );
    }
}
