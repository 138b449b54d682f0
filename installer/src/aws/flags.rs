//! The flags every AWS-facing command takes, as AWS users expect them (profile, region,
//! endpoint, output), and the SDK configuration they make, for one account or a rollout target.

use aws_config::{Region, SdkConfig};
use clap::{Args, ValueEnum};

use super::calls::http_client;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Flags every AWS-facing command takes.
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Named profile from ~/.aws/config (default: the standard credential chain)
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region (default: the profile's or AWS_REGION)
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Send every request to this endpoint (e.g. a local emulator); also AWS_ENDPOINT_URL
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Do not ask for confirmation
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// Log what is done on standard error: -v sgwatch's and the AWS SDK's debug lines, -vv also
    /// trace lines (RUST_LOG, when set, decides instead)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The global flags do not make a usable configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no AWS region: pass --region, set AWS_REGION, or set a region in your profile")]
    NoRegion,
}

/// Loads SDK configuration for the global flags.
pub async fn load(args: &GlobalArgs) -> Result<SdkConfig, ConfigError> {
    let mut loader = sgwatch_handler::aws::config_loader().http_client(http_client());
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &args.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &args.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    tracing::debug!(
        region = ?config.region(),
        profile = ?args.profile,
        endpoint = ?args.endpoint_url,
        "loaded the AWS configuration"
    );
    if config.region().is_none() {
        return Err(ConfigError::NoRegion);
    }
    Ok(config)
}

/// Configuration acting as the role `role_arn` (`sts:AssumeRole`, with `external_id` when the
/// role asks for one) in `region`: a rollout target's.
pub async fn assume(
    base: &SdkConfig,
    g: &GlobalArgs,
    role_arn: String,
    region: &str,
    external_id: Option<&str>,
) -> SdkConfig {
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("sgwatch-rollout")
        .region(Region::new(region.to_owned()));
    if let Some(id) = external_id {
        provider = provider.external_id(id);
    }
    let provider = provider.configure(base).build().await;
    let mut loader = sgwatch_handler::aws::config_loader()
        .http_client(http_client())
        .region(Region::new(region.to_owned()))
        .credentials_provider(provider);
    if let Some(endpoint) = &g.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}
