//! Building AWS SDK configuration the same way everywhere: TLS through rustls with ring (no C
//! toolchain needed to cross-compile), the SDK's standard retry policy, and an optional endpoint
//! override for local emulators.
//!
//! All clients share one HTTPS client, and its TLS setup waits for the first request: the SDK's
//! hyper client loads the system's trust roots when each SDK client is built (in
//! `validate_base_client_config`), which was most of the Lambda's init time (the bundle plus every
//! file of `/etc/ssl/certs` read and parsed before the function could ask for its first event).

use std::time::Duration;

use aws_config::{retry::RetryConfig, timeout::TimeoutConfig, BehaviorVersion, SdkConfig};
use aws_smithy_http_client::{
    tls::{self, rustls_provider::CryptoMode},
    Builder,
};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::OnceLock;

/// The HTTPS client every SDK client of sgwatch uses; its TLS setup happens on the first request.
pub fn http_client() -> SharedHttpClient {
    SharedHttpClient::new(OnFirstUse::default())
}

/// The SDK's hyper HTTPS client, built when a request first needs it. It does not pass on
/// `validate_base_client_config`, the hook in which the hyper client loads the trust roots early;
/// the default (no check) is what remains, and everything a request uses is delegated.
#[derive(Debug, Default)]
struct OnFirstUse(OnceLock<SharedHttpClient>);

impl OnFirstUse {
    fn client(&self) -> &SharedHttpClient {
        self.0.get_or_init(|| {
            Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
    }
}

impl HttpClient for OnFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.client().http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.client().connector_metadata()
    }
}

/// A config loader with sgwatch's HTTP client and retry policy; the caller adds profile, region
/// and endpoint. The standard credential chain and `AWS_ENDPOINT_URL` are honoured as usual.
pub fn config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(RetryConfig::standard().with_max_attempts(5))
}

/// The handler's time limits for every call: a stalled answer costs one attempt, never the
/// invocation. Without them the SDK waits indefinitely, and Lambda's timeout could strike between
/// an email going out and its record in the ledger. The operation limit bounds the SDK's retries
/// so a send started with `process::SEND_MARGIN` left always ends before the deadline.
/// <https://docs.aws.amazon.com/sdk-for-rust/latest/dg/timeouts.html>
pub fn handler_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(10))
        .build()
}

/// Loads configuration from the environment (the Lambda's own credentials and region).
pub async fn load_from_env() -> SdkConfig {
    config_loader().load().await
}

/// True when requests go to an endpoint other than AWS's (e.g. a local emulator), where S3 needs
/// path-style addressing.
pub fn uses_custom_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
}

/// An S3 client for `config`, path-style when the endpoint is overridden.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(uses_custom_endpoint(config))
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}
