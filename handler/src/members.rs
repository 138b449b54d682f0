//! Reading a member account from the hub. A spoke's event carries the change; where it lacks what
//! the handler needs (an oversized item's rules, a group's tags for the early warning, what a
//! prefix list holds, who made the change), the hub reads the member account through the
//! read-only `sgwatch-reader` role that the account's spoke created and that only the hub's
//! handler role may assume. The hub's own account is read with the function's own role.
//!
//! Credentials are assumed once per account and cold start, and refreshed by the SDK's provider
//! before they expire; the clients of each account × region are kept.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
use aws_sdk_sts::config::SharedCredentialsProvider;

use crate::aws;

/// At most this many accounts' credentials and account × regions' clients are kept; past it the
/// caches start again, so a hub that reads 500 accounts keeps its memory bounded.
const KEPT: usize = 64;

/// The role a spoke creates for the hub, in every member account.
pub const READER_ROLE: &str = "sgwatch-reader";

/// The clients that read one account × region.
#[derive(Clone, Debug)]
pub struct Reader {
    pub config: aws_sdk_config::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub s3: aws_sdk_s3::Client,
    pub ssm: aws_sdk_ssm::Client,
    /// Imports the account's Security Hub findings: with the default product, only the account
    /// itself may.
    pub securityhub: aws_sdk_securityhub::Client,
}

impl Reader {
    pub fn new(config: &SdkConfig) -> Reader {
        Reader {
            config: aws_sdk_config::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            cloudtrail: aws_sdk_cloudtrail::Client::new(config),
            s3: aws::s3_client(config),
            ssm: aws_sdk_ssm::Client::new(config),
            securityhub: aws_sdk_securityhub::Client::new(config),
        }
    }
}

/// The member accounts' readers, made as the hub first needs them.
#[derive(Debug)]
pub struct Members {
    base: SdkConfig,
    /// The hub's own account, asked of STS once.
    home: Mutex<Option<String>>,
    credentials: Mutex<HashMap<String, SharedCredentialsProvider>>,
    readers: Mutex<HashMap<(String, String), Reader>>,
    /// Asks Organizations for an account's name, as the hub.
    organizations: aws_sdk_organizations::Client,
    /// Each account's name as Organizations told it; `None` where it could not (the hub is not
    /// the management account or a delegated administrator, or the account is not a member).
    names: Mutex<HashMap<String, Option<String>>>,
}

/// The partition of a region: where the reader role's ARN lives.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The reader role of `account`, in the partition of `region`.
pub fn reader_role_arn(account: &str, region: &str) -> String {
    format!(
        "arn:{}:iam::{account}:role/{READER_ROLE}",
        partition(region)
    )
}

impl Members {
    /// `base` is the function's own configuration, with the handler's time limits.
    pub fn new(base: &SdkConfig) -> Members {
        Members {
            base: base.clone(),
            home: Mutex::new(None),
            credentials: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            organizations: aws_sdk_organizations::Client::new(base),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// With this Organizations client (tests give one that answers as AWS documents).
    pub fn with_organizations(mut self, client: aws_sdk_organizations::Client) -> Members {
        self.organizations = client;
        self
    }

    /// `account`'s name, asked of Organizations once per cold start; `None` where it cannot tell
    /// (the email then shows the id alone).
    pub async fn account_name(&self, account: &str) -> Option<String> {
        if let Some(known) = self.names.lock().ok()?.get(account) {
            return known.clone();
        }
        let name = match self
            .organizations
            .describe_account()
            .account_id(account)
            .send()
            .await
        {
            Ok(out) => out.account().and_then(|a| a.name()).map(str::to_owned),
            Err(e) => {
                tracing::info!(account, error = %aws_sdk_organizations::error::DisplayErrorContext(&e), "the account's name is not known: the email shows its id");
                None
            }
        };
        let mut names = self.names.lock().ok()?;
        if names.len() >= 10 * KEPT * KEPT {
            names.clear();
        }
        names.insert(account.to_owned(), name.clone());
        name
    }

    /// The hub's own account.
    async fn home(&self) -> Result<String, String> {
        if let Some(home) = self.home.lock().map_err(|e| e.to_string())?.clone() {
            return Ok(home);
        }
        let who = aws_sdk_sts::Client::new(&self.base)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| {
                format!(
                    "STS GetCallerIdentity: {}",
                    aws_sdk_sts::error::DisplayErrorContext(&e)
                )
            })?;
        let account = who.account().unwrap_or_default().to_owned();
        *self.home.lock().map_err(|e| e.to_string())? = Some(account.clone());
        Ok(account)
    }

    /// The clients that read `account` × `region`: the function's own role in the hub's account,
    /// else the account's reader role.
    pub async fn reader(&self, account: &str, region: &str) -> Result<Reader, String> {
        let key = (account.to_owned(), region.to_owned());
        if let Some(r) = self.readers.lock().map_err(|e| e.to_string())?.get(&key) {
            return Ok(r.clone());
        }
        let mut config = self.base.to_builder();
        config.set_region(Some(Region::new(region.to_owned())));
        if account != self.home().await? {
            config.set_credentials_provider(Some(self.assumed(account, region).await?));
        }
        let reader = Reader::new(&config.build());
        let mut readers = self.readers.lock().map_err(|e| e.to_string())?;
        if readers.len() >= KEPT {
            readers.clear();
        }
        readers.insert(key, reader.clone());
        Ok(reader)
    }

    /// Credentials of `account`'s reader role, one provider per account.
    async fn assumed(
        &self,
        account: &str,
        region: &str,
    ) -> Result<SharedCredentialsProvider, String> {
        if let Some(p) = self
            .credentials
            .lock()
            .map_err(|e| e.to_string())?
            .get(account)
        {
            return Ok(p.clone());
        }
        let home_region = self
            .base
            .region()
            .cloned()
            .unwrap_or_else(|| Region::new(region.to_owned()));
        let provider = AssumeRoleProvider::builder(reader_role_arn(account, region))
            .session_name("sgwatch-hub")
            .region(home_region)
            .configure(&self.base)
            .build()
            .await;
        let provider = SharedCredentialsProvider::new(provider);
        let mut credentials = self.credentials.lock().map_err(|e| e.to_string())?;
        if credentials.len() >= KEPT {
            credentials.clear();
        }
        credentials.insert(account.to_owned(), provider.clone());
        Ok(provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_organizations::operation::describe_account::{
        DescribeAccountError, DescribeAccountOutput,
    };
    use aws_sdk_organizations::types::error::AccessDeniedException;
    use aws_sdk_organizations::types::Account;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn base() -> SdkConfig {
        SdkConfig::builder()
            .region(Region::new("us-east-1"))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build()
    }

    #[tokio::test]
    async fn an_accounts_name_is_asked_of_organizations_once() {
        let named = mock!(aws_sdk_organizations::Client::describe_account)
            .match_requests(|r| r.account_id() == Some("111122223333"))
            .then_output(|| {
                DescribeAccountOutput::builder()
                    .account(
                        Account::builder()
                            .id("111122223333")
                            .name("Security-Prod")
                            .build(),
                    )
                    .build()
            });
        let denied = mock!(aws_sdk_organizations::Client::describe_account)
            .match_requests(|r| r.account_id() == Some("444455556666"))
            .then_error(|| {
                DescribeAccountError::AccessDeniedException(
                    AccessDeniedException::builder()
                        .message("not the management account")
                        .build(),
                )
            });
        let client = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&named, &denied]);
        let members = Members::new(&base()).with_organizations(client);
        for _ in 0..3 {
            assert_eq!(
                members.account_name("111122223333").await.as_deref(),
                Some("Security-Prod")
            );
            assert_eq!(members.account_name("444455556666").await, None);
        }
        assert_eq!((named.num_calls(), denied.num_calls()), (1, 1));
    }

    #[test]
    fn the_reader_role_is_named_in_the_regions_partition() {
        assert_eq!(
            reader_role_arn("111122223333", "eu-west-1"),
            "arn:aws:iam::111122223333:role/sgwatch-reader"
        );
        assert_eq!(
            reader_role_arn("111122223333", "cn-north-1"),
            "arn:aws-cn:iam::111122223333:role/sgwatch-reader"
        );
        assert_eq!(
            reader_role_arn("111122223333", "us-gov-west-1"),
            "arn:aws-us-gov:iam::111122223333:role/sgwatch-reader"
        );
    }
}
