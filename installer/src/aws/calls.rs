//! The service clients every command uses, and the log of the calls they make.
//!
//! With `SGWATCH_CALL_LOG=PATH`, every call is appended to PATH as one line, `READ
//! DescribeStacks` or `WRITE CreateChangeSet` (S3 calls add the request path, which names the
//! bucket and key), and every retry of a call as `RETRY <operation> (attempt N)`. The operation
//! is the SDK's own name for it, read by an interceptor ([`CallLog`]), so the log never guesses.
//! Tests and the installer bench read it to prove, for instance, that a no-op install writes
//! nothing.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use aws_config::{Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// The HTTP client every SDK client shares (the handler's).
pub fn http_client() -> SharedHttpClient {
    sgwatch_handler::aws::http_client()
}

/// Appends each call the SDK sends, and each retry, to a file.
#[derive(Debug, Clone)]
pub struct CallLog {
    path: Arc<PathBuf>,
}

impl CallLog {
    /// The log `SGWATCH_CALL_LOG` names, if set.
    pub fn from_env() -> Option<CallLog> {
        std::env::var_os("SGWATCH_CALL_LOG").map(|p| CallLog {
            path: Arc::new(p.into()),
        })
    }

    fn append(&self, line: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&*self.path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// Whether an operation only reads, by the verbs AWS APIs use for reading.
pub fn reads(operation: &str) -> bool {
    [
        "Describe", "Get", "List", "Lookup", "Head", "Validate", "Estimate",
    ]
    .iter()
    .any(|p| operation.starts_with(p))
}

/// The attempt number the SDK puts in `amz-sdk-request` (`attempt=2; max=3`); 1 without it.
fn attempt(header: Option<&str>) -> u32 {
    header
        .and_then(|h| {
            h.split(';')
                .find_map(|kv| kv.trim().strip_prefix("attempt="))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    // Once per attempt, after the SDK has set its headers (the attempt number among them).
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let (service, operation) = (metadata.service(), metadata.name());
        let request = context.request();
        let n = attempt(request.headers().get("amz-sdk-request"));
        let line = if n > 1 {
            format!("RETRY {operation} (attempt {n})")
        } else {
            let kind = if reads(operation) { "READ" } else { "WRITE" };
            // S3 names what it acts on in the path: keep it, so a reader can tell the handler's
            // upload from the install record's.
            let path = if service.eq_ignore_ascii_case("s3") {
                let uri = request.uri();
                let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
                let path = rest.find('/').map_or("/", |i| &rest[i..]);
                format!(" {}", path.split('?').next().unwrap_or("/"))
            } else {
                String::new()
            };
            format!("{kind} {operation}{path}")
        };
        self.append(&line);
        Ok(())
    }
}

macro_rules! clients {
    ($($name:ident => $sdk:ident),* $(,)?) => {$(
        #[doc = concat!("A `", stringify!($sdk), "` client (logging its calls when asked).")]
        pub fn $name(config: &SdkConfig) -> $sdk::Client {
            let mut builder = $sdk::config::Builder::from(config);
            if let Some(log) = CallLog::from_env() {
                builder = builder.interceptor(log);
            }
            $sdk::Client::from_conf(builder.build())
        }
    )*};
}

clients!(
    cloudformation => aws_sdk_cloudformation,
    cloudtrail => aws_sdk_cloudtrail,
    configservice => aws_sdk_config,
    dynamodb => aws_sdk_dynamodb,
    ec2 => aws_sdk_ec2,
    eventbridge => aws_sdk_eventbridge,
    iam => aws_sdk_iam,
    lambda => aws_sdk_lambda,
    organizations => aws_sdk_organizations,
    securityhub => aws_sdk_securityhub,
    sesv2 => aws_sdk_sesv2,
    sqs => aws_sdk_sqs,
    ssm => aws_sdk_ssm,
    sts => aws_sdk_sts,
);

/// An S3 client: path-style addressing against a custom endpoint, as the handler's.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom = config.endpoint_url().is_some();
    let mut builder = aws_sdk_s3::config::Builder::from(config).force_path_style(custom);
    if let Some(log) = CallLog::from_env() {
        builder = builder.interceptor(log);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

/// An SNS client in the topic's own region (an adopted channel's topic may live elsewhere).
pub fn sns_for(config: &SdkConfig, topic: &str) -> aws_sdk_sns::Client {
    let mut builder = aws_sdk_sns::config::Builder::from(config);
    if let Some(region) = topic.split(':').nth(3).filter(|r| !r.is_empty()) {
        builder = builder.region(Region::new(region.to_owned()));
    }
    if let Some(log) = CallLog::from_env() {
        builder = builder.interceptor(log);
    }
    aws_sdk_sns::Client::from_conf(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attempt_comes_from_the_sdk_header() {
        assert_eq!(attempt(Some("attempt=2; max=3")), 2);
        assert_eq!(attempt(Some("attempt=1; max=3")), 1);
        assert_eq!(attempt(None), 1);
    }

    #[test]
    fn reading_verbs_are_reads() {
        assert!(reads("DescribeStacks") && reads("HeadBucket") && reads("GetObject"));
        assert!(!reads("CreateChangeSet") && !reads("PutObject") && !reads("Subscribe"));
    }
}
