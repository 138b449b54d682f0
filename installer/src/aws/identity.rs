//! Who we are: the account, region and partition the credentials act in.

use aws_config::SdkConfig;

use super::error_text;

/// The account and region a command acts in.
#[derive(Debug, Clone)]
pub struct Place {
    pub account: String,
    pub region: String,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "account {} in {}", self.account, self.region)
    }
}

/// The credentials could not be tied to an account.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot tell which account the credentials belong to (sts:GetCallerIdentity in {region}): \
     {detail}. Check your credentials, --profile, --region and --endpoint-url"
)]
pub struct IdentityError {
    region: String,
    detail: String,
}

/// Who we are: `sts:GetCallerIdentity`.
pub async fn place(config: &SdkConfig) -> Result<Place, IdentityError> {
    Ok(caller(config).await?.0)
}

/// The caller's partition (`aws`, `aws-cn`, `aws-us-gov`…), from its own ARN: every ARN we build
/// is in it.
pub async fn partition(config: &SdkConfig) -> Result<String, IdentityError> {
    Ok(caller(config).await?.1)
}

async fn caller(config: &SdkConfig) -> Result<(Place, String), IdentityError> {
    let region = config.region().map(|r| r.to_string()).unwrap_or_default();
    let me = crate::aws::sts(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| IdentityError {
            region: region.clone(),
            detail: error_text(&e),
        })?;
    let place = Place {
        account: me.account().unwrap_or_default().to_owned(),
        region,
    };
    Ok((place, partition_of(me.arn().unwrap_or_default()).to_owned()))
}

/// The partition of an ARN (`arn:PARTITION:service:…`); `aws` when it names none.
pub fn partition_of(arn: &str) -> &str {
    arn.split(':')
        .nth(1)
        .filter(|p| arn.starts_with("arn:") && !p.is_empty())
        .unwrap_or("aws")
}
