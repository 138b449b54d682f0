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
/// an email going out and its record in the ledger. The operation limit bounds the SDK's retries.
/// Mail has limits of its own (`mail::timeouts`), and `process::SEND_MARGIN` keeps time for a
/// send and the ledger write after it.
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// An HTTP server that answers the first `throttled` requests as SES v2 does over its sending
    /// rate (HTTP 429, `TooManyRequestsException`), then accepts; returns its URL and a handle
    /// that yields how many requests it answered.
    fn ses_over_its_rate(throttled: usize) -> (String, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut answered = 0;
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                }
                reader.read_exact(&mut vec![0; length]).unwrap();
                let (status, kind, body) = if answered < throttled {
                    (
                        "429 Too Many Requests",
                        "TooManyRequestsException",
                        r#"{"message":"Maximum sending rate exceeded."}"#,
                    )
                } else {
                    ("200 OK", "", r#"{"MessageId":"m-1"}"#)
                };
                let error_type = if kind.is_empty() {
                    String::new()
                } else {
                    format!("x-amzn-ErrorType: {kind}\r\n")
                };
                write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{error_type}\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                answered += 1;
                if answered > throttled {
                    return answered;
                }
            }
            answered
        });
        (url, server)
    }

    /// SES answers a send over its rate with HTTP 429 `TooManyRequestsException`; the standard
    /// retry policy must treat it as throttling and back off inside the invocation, so a burst
    /// is paced by the SDK rather than failing the invocation at once.
    #[tokio::test]
    async fn ses_throttling_is_retried_with_backoff_by_the_clients_config() {
        let (url, server) = ses_over_its_rate(2);
        let config = config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sesv2::config::Credentials::for_tests())
            .endpoint_url(url)
            .timeout_config(handler_timeouts())
            .load()
            .await;
        let ses = aws_sdk_sesv2::Client::new(&config);
        let text = Content::builder().data("t").build().unwrap();
        let sent = ses
            .send_email()
            .from_email_address("alerts@example.com")
            .destination(Destination::builder().to_addresses("a@example.com").build())
            .content(
                EmailContent::builder()
                    .simple(
                        Message::builder()
                            .subject(text.clone())
                            .body(Body::builder().text(text).build())
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .expect("sent after two throttled attempts");
        assert_eq!(sent.message_id(), Some("m-1"));
        assert_eq!(
            server.join().unwrap(),
            3,
            "two throttled attempts, then the send"
        );
    }
}
