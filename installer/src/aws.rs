//! The AWS side of every command: global flags as AWS users expect them (profile, region,
//! endpoint), the account we act in, and an optional log of every API call made.

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_config::{Region, SdkConfig};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use clap::{Args, ValueEnum};

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

/// An AWS SDK error as one line: the service's code and message when it answered, else the chain
/// of causes (a connection refused, a credential provider that failed), without the debug dump.
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // The SDK's outer layers say only "service error" / "dispatch failure": skip to the cause.
        if !matches!(
            text.as_str(),
            "service error" | "dispatch failure" | "io error" | "other"
        ) && parts.last() != Some(&text)
        {
            parts.push(text);
        }
        next = e.source();
    }
    let text = if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    };
    text.trim_end_matches('.').to_owned()
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
    let me = aws_sdk_sts::Client::new(config)
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

/// The HTTP client: the handler's, wrapped to append each call to `SGWATCH_CALL_LOG` when set.
pub fn http_client() -> SharedHttpClient {
    let inner = sgwatch_handler::aws::http_client();
    match std::env::var_os("SGWATCH_CALL_LOG") {
        None => inner,
        Some(path) => SharedHttpClient::new(LoggingClient {
            inner,
            log: Arc::new(Mutex::new(path.into())),
        }),
    }
}

#[derive(Debug, Clone)]
struct LoggingClient {
    inner: SharedHttpClient,
    log: Arc<Mutex<std::path::PathBuf>>,
}

impl HttpClient for LoggingClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(LoggingConnector {
            inner: self.inner.http_connector(settings, components),
            log: Arc::clone(&self.log),
        })
    }
}

#[derive(Debug)]
struct LoggingConnector {
    inner: SharedHttpConnector,
    log: Arc<Mutex<std::path::PathBuf>>,
}

impl HttpConnector for LoggingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let line = describe_call(&request);
        if let Ok(path) = self.log.lock() {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path)
            {
                let _ = writeln!(f, "{line}");
            }
        }
        self.inner.call(request)
    }
}

/// `READ Describe...` or `WRITE CreateStack`: the operation and whether it changes anything.
fn describe_call(request: &HttpRequest) -> String {
    let headers = request.headers();
    let body = request.body().bytes().unwrap_or_default();
    let body = String::from_utf8_lossy(body);
    let action = headers
        .get("x-amz-target")
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_owned())
        .or_else(|| {
            body.split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .map(str::to_owned)
        });
    let uri = request.uri();
    let without_scheme = uri.split_once("://").map(|(_, rest)| rest).unwrap_or(uri);
    let path = without_scheme
        .find('/')
        .map(|i| &without_scheme[i..])
        .unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let (name, read) = match action {
        Some(a) => {
            let read = [
                "Describe", "Get", "List", "Lookup", "Head", "Validate", "Estimate",
            ]
            .iter()
            .any(|p| a.starts_with(p));
            (a, read)
        }
        None => {
            let m = request.method().to_owned();
            let read = m == "GET" || m == "HEAD";
            (format!("{m} {path}"), read)
        }
    };
    format!("{} {name}", if read { "READ" } else { "WRITE" })
}

/// Configuration acting in a rollout target: `sts:AssumeRole` into its role, in its region.
pub async fn assume(
    base: &SdkConfig,
    g: &GlobalArgs,
    target: &crate::rollout::Target,
    partition: &str,
) -> SdkConfig {
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(target.role_arn(partition))
        .session_name("sgwatch-rollout")
        .region(Region::new(target.region.clone()));
    if let Some(id) = &target.external_id {
        provider = provider.external_id(id);
    }
    let provider = provider.configure(base).build().await;
    let mut loader = sgwatch_handler::aws::config_loader()
        .http_client(http_client())
        .region(Region::new(target.region.clone()))
        .credentials_provider(provider);
    if let Some(endpoint) = &g.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}
