//! A security group as EC2 shows it now: its name and tags, read with `DescribeSecurityGroups`
//! when a call from the actor feed may need an early warning (read-only; the handler's role has
//! `ec2:DescribeSecurityGroups`, which supports no resource-level permissions).

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

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
