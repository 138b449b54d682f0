//! A security group's state read from EC2, in the shape AWS Config records it in.

use aws_sdk_ec2::error::{DisplayErrorContext, SdkError};
use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsError;
use aws_sdk_ec2::types::{IpPermission, SecurityGroup};
use serde_json::{json, Map, Value};

/// Why a group's state could not be read from EC2.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("describing security group {group_id} in {region}: {}", DisplayErrorContext(.source))]
    Request {
        group_id: String,
        region: String,
        #[source]
        source: Box<SdkError<DescribeSecurityGroupsError>>,
    },
    #[error("security group {group_id} was not found in {region}")]
    NotFound { group_id: String, region: String },
}

/// An EC2 `DescribeSecurityGroups` group in the shape AWS Config records it in.
pub fn configuration_from_ec2(group: &SecurityGroup) -> Value {
    let mut c = Map::new();
    put(&mut c, "description", group.description());
    put(&mut c, "groupName", group.group_name());
    c.insert(
        "ipPermissions".into(),
        group.ip_permissions().iter().map(permission).collect(),
    );
    c.insert(
        "ipPermissionsEgress".into(),
        group
            .ip_permissions_egress()
            .iter()
            .map(permission)
            .collect(),
    );
    put(&mut c, "ownerId", group.owner_id());
    put(&mut c, "groupId", group.group_id());
    put(&mut c, "vpcId", group.vpc_id());
    c.insert(
        "tags".into(),
        group
            .tags()
            .iter()
            .map(|t| json!({"key": t.key(), "value": t.value()}))
            .collect(),
    );
    Value::Object(c)
}

/// Reads group `group_id` from EC2, in the shape AWS Config records it in.
pub async fn describe(
    client: &aws_sdk_ec2::Client,
    group_id: &str,
) -> Result<Value, DescribeError> {
    let region = client
        .config()
        .region()
        .map(ToString::to_string)
        .unwrap_or_else(|| "the default region".to_owned());
    let out = client
        .describe_security_groups()
        .group_ids(group_id)
        .send()
        .await
        .map_err(|e| DescribeError::Request {
            group_id: group_id.to_owned(),
            region: region.clone(),
            source: Box::new(e),
        })?;
    out.security_groups()
        .iter()
        .find(|g| g.group_id() == Some(group_id))
        .map(configuration_from_ec2)
        .ok_or_else(|| DescribeError::NotFound {
            group_id: group_id.to_owned(),
            region,
        })
}

/// One permission: Config keeps the IPv4 ranges twice, as `ipv4Ranges` objects and as the
/// legacy `ipRanges` strings; absent ports (protocol `-1`) stay absent.
fn permission(p: &IpPermission) -> Value {
    let mut out = Map::new();
    put(&mut out, "ipProtocol", p.ip_protocol());
    out.insert(
        "ipv6Ranges".into(),
        p.ipv6_ranges()
            .iter()
            .map(|r| described("cidrIpv6", r.cidr_ipv6(), r.description()))
            .collect(),
    );
    out.insert(
        "prefixListIds".into(),
        p.prefix_list_ids()
            .iter()
            .map(|r| described("prefixListId", r.prefix_list_id(), r.description()))
            .collect(),
    );
    out.insert(
        "userIdGroupPairs".into(),
        p.user_id_group_pairs()
            .iter()
            .map(|g| {
                let mut pair = Map::new();
                put(&mut pair, "userId", g.user_id());
                put(&mut pair, "groupId", g.group_id());
                put(&mut pair, "groupName", g.group_name());
                put(&mut pair, "vpcId", g.vpc_id());
                put(
                    &mut pair,
                    "vpcPeeringConnectionId",
                    g.vpc_peering_connection_id(),
                );
                put(&mut pair, "peeringStatus", g.peering_status());
                put(&mut pair, "description", g.description());
                Value::Object(pair)
            })
            .collect(),
    );
    out.insert(
        "ipv4Ranges".into(),
        p.ip_ranges()
            .iter()
            .map(|r| described("cidrIp", r.cidr_ip(), r.description()))
            .collect(),
    );
    out.insert(
        "ipRanges".into(),
        p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).collect(),
    );
    if let Some(port) = p.from_port() {
        out.insert("fromPort".into(), port.into());
    }
    if let Some(port) = p.to_port() {
        out.insert("toPort".into(), port.into());
    }
    Value::Object(out)
}

fn described(key: &str, value: Option<&str>, description: Option<&str>) -> Value {
    let mut out = Map::new();
    put(&mut out, key, value);
    put(&mut out, "description", description);
    Value::Object(out)
}

/// Config leaves out what EC2 did not report rather than writing `null`.
fn put(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        map.insert(key.to_owned(), v.into());
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{IpRange, Ipv6Range, Tag, UserIdGroupPair};

    use super::*;

    #[test]
    fn an_ec2_group_reads_as_config_records_it() {
        let group = SecurityGroup::builder()
            .group_id("sg-0123456789abcdef0")
            .group_name("shared-http")
            .description("managed by team")
            .owner_id("123456789012")
            .vpc_id("vpc-0a1b2c3d")
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(80)
                    .to_port(80)
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .ipv6_ranges(
                        Ipv6Range::builder()
                            .cidr_ipv6("::/0")
                            .description("web")
                            .build(),
                    )
                    .user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id("sg-0aaa")
                            .user_id("123456789012")
                            .build(),
                    )
                    .build(),
            )
            .ip_permissions_egress(
                IpPermission::builder()
                    .ip_protocol("-1")
                    .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                    .build(),
            )
            .tags(Tag::builder().key("NotifyOnChange").value("Yes").build())
            .build();

        assert_eq!(
            configuration_from_ec2(&group),
            json!({
                "description": "managed by team",
                "groupName": "shared-http",
                "groupId": "sg-0123456789abcdef0",
                "ownerId": "123456789012",
                "vpcId": "vpc-0a1b2c3d",
                "ipPermissions": [{
                    "ipProtocol": "tcp", "fromPort": 80, "toPort": 80,
                    "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"],
                    "ipv6Ranges": [{"cidrIpv6": "::/0", "description": "web"}],
                    "prefixListIds": [],
                    "userIdGroupPairs": [{"groupId": "sg-0aaa", "userId": "123456789012"}],
                }],
                "ipPermissionsEgress": [{
                    "ipProtocol": "-1",
                    "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}], "ipRanges": ["0.0.0.0/0"],
                    "ipv6Ranges": [], "prefixListIds": [], "userIdGroupPairs": [],
                }],
                "tags": [{"key": "NotifyOnChange", "value": "Yes"}],
            })
        );
    }
}
