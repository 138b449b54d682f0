//! Posting to chat and webhook destinations, at the edge: each destination's secret URL (and a
//! webhook's signing key) is read from SSM Parameter Store once per container and kept; the post
//! is an HTTPS POST with a time limit per attempt, retried on 429 (after `Retry-After`) and on 5xx
//! or a failed connection, while a 4xx is final for that destination.
//!
//! What becomes of a failure is the caller's ([`crate::process`]): a parameter that is missing or
//! cannot be read, a URL that is not HTTPS, or a 4xx is logged and the other destinations and the
//! email go on (retrying cannot fix them); a post still failing after its retries fails the
//! invocation like an SES failure, so Lambda retries it and finally parks the event.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tracing::warn;

use crate::aws;
use crate::destination::Destination;

/// How a post is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles with each further one.
    pub backoff: Duration,
    /// A `Retry-After` longer than this is not waited for inside the invocation: Lambda's own
    /// retry comes later.
    pub max_retry_after: Duration,
    /// Connecting, sending and reading the answer of one attempt.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a post did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("destination {destination}: SSM parameter {parameter} could not be read: {reason}")]
    Parameter {
        destination: String,
        parameter: String,
        reason: String,
        transient: bool,
    },
    #[error(
        "destination {destination}: the URL in SSM parameter {parameter} cannot be used: {reason}"
    )]
    Url {
        destination: String,
        parameter: String,
        reason: String,
    },
    #[error("destination {destination} refused the post with HTTP {status}: {body}")]
    Refused {
        destination: String,
        status: u16,
        body: String,
    },
    #[error("destination {destination} did not take the post after {attempts} attempts: {reason}")]
    Exhausted {
        destination: String,
        attempts: u32,
        reason: String,
    },
}

impl PostError {
    /// Whether a later retry (Lambda's) may succeed where this one failed.
    pub fn is_transient(&self) -> bool {
        match self {
            PostError::Parameter { transient, .. } => *transient,
            PostError::Url { .. } | PostError::Refused { .. } => false,
            PostError::Exhausted { .. } => true,
        }
    }
}

/// What is posted: a JSON body and any extra headers (the webhook's signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Reads parameters (cached for the container's life) and posts.
pub struct Poster {
    config: SdkConfig,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    http: OnceLock<Result<HttpsClient, String>>,
    /// Parameter values read so far, by name. Failures are not kept: a parameter created or
    /// fixed later is read on the next notification without waiting for a new container.
    cache: Mutex<HashMap<String, String>>,
    pub retry: RetryPolicy,
}

impl std::fmt::Debug for Poster {
    /// The cached values are secret URLs and signing keys (whoever holds one can post, or sign):
    /// only how many there are is shown, never a name's value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.lock().map(|c| c.len()).unwrap_or_default();
        f.debug_struct("Poster")
            .field("cached_parameters", &cached)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Poster {
    /// A poster whose SSM client is built, on the shared HTTP client and with the handler's time
    /// limits, when a parameter is first read.
    pub fn new(config: &SdkConfig) -> Poster {
        Poster {
            config: config
                .to_builder()
                .timeout_config(aws::handler_timeouts())
                .build(),
            ssm: OnceLock::new(),
            http: OnceLock::new(),
            cache: Mutex::new(HashMap::new()),
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Poster {
        self.retry = retry;
        self
    }

    fn ssm(&self) -> &aws_sdk_ssm::Client {
        self.ssm
            .get_or_init(|| aws_sdk_ssm::Client::new(&self.config))
    }

    /// The TLS client, built on the first post: loading the trust roots costs the cold start
    /// nothing when no destination is told.
    fn http(&self) -> Result<&HttpsClient, String> {
        self.http
            .get_or_init(|| {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
                    .map_err(|e| format!("no TLS trust roots: {e}"))?
                    // Plain HTTP is refused before a request is made unless it is to loopback.
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new()).build(https))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The value of `parameter` (decrypted), from the cache or from SSM.
    pub async fn parameter(&self, destination: &str, parameter: &str) -> Result<String, PostError> {
        if let Some(v) = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(parameter).cloned())
        {
            return Ok(v);
        }
        let error = |reason: String, transient: bool| PostError::Parameter {
            destination: destination.to_owned(),
            parameter: parameter.to_owned(),
            reason,
            transient,
        };
        let out = self
            .ssm()
            .get_parameter()
            .name(parameter)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| {
                let transient = is_transient(&e);
                let reason = match e.as_service_error() {
                    Some(GetParameterError::ParameterNotFound(_)) => {
                        "it does not exist (create it as a SecureString holding the URL)".to_owned()
                    }
                    Some(s) if s.code() == Some("AccessDeniedException") => format!(
                        "access denied; the function's role needs ssm:GetParameter on it (and kms:Decrypt on its key if that is a customer key): {}",
                        s.message().unwrap_or_default()
                    ),
                    _ => DisplayErrorContext(&e).to_string(),
                };
                error(reason, transient)
            })?;
        let value = out
            .parameter()
            .and_then(|p| p.value())
            .map(str::to_owned)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| error("it holds no value".to_owned(), false))?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(parameter.to_owned(), value.clone());
        }
        Ok(value)
    }

    /// Posts `payload` to the URL in `destination`'s parameter. `budget` is the time this may take
    /// in all (retries included); no wait or attempt starts that would overrun it.
    pub async fn post(
        &self,
        destination: &Destination,
        payload: &Payload,
        budget: Option<Duration>,
    ) -> Result<(), PostError> {
        let name = destination.name.as_str();
        let url = self.parameter(name, &destination.parameter).await?;
        let uri = checked_url(url.trim()).map_err(|reason| PostError::Url {
            destination: name.to_owned(),
            parameter: destination.parameter.clone(),
            reason,
        })?;
        let http = self.http().map_err(|reason| PostError::Exhausted {
            destination: name.to_owned(),
            attempts: 0,
            reason,
        })?;
        let started = Instant::now();
        let fits = |wait: Duration| {
            budget.is_none_or(|b| started.elapsed() + wait + self.retry.attempt_timeout <= b)
        };
        let exhausted = |attempts: u32, reason: String| PostError::Exhausted {
            destination: name.to_owned(),
            attempts,
            reason,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = match self.attempt(http, &uri, payload).await {
                Ok((status, _, _)) if (200..300).contains(&status) => return Ok(()),
                Ok((429, retry_after, body)) => {
                    let wait = retry_after.unwrap_or(self.backoff(attempt));
                    if wait > self.retry.max_retry_after {
                        return Err(exhausted(
                            attempt,
                            format!(
                                "HTTP 429, Retry-After {}s is longer than this invocation waits",
                                wait.as_secs()
                            ),
                        ));
                    }
                    (wait, format!("HTTP 429: {body}"))
                }
                Ok((status, _, body)) if status >= 500 => {
                    (self.backoff(attempt), format!("HTTP {status}: {body}"))
                }
                Ok((status, _, body)) => {
                    return Err(PostError::Refused {
                        destination: name.to_owned(),
                        status,
                        body,
                    })
                }
                Err(reason) => (self.backoff(attempt), reason),
            };
            let (wait, reason) = wait;
            if attempt >= self.retry.attempts || !fits(wait) {
                return Err(exhausted(attempt, reason));
            }
            warn!(destination = name, attempt, wait_ms = wait.as_millis() as u64, reason = %reason, "post not taken; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.retry.backoff * 2u32.saturating_pow(attempt.saturating_sub(1))
    }

    /// One attempt: the status, `Retry-After` (in seconds) and the start of the answer's body.
    async fn attempt(
        &self,
        http: &HttpsClient,
        uri: &Uri,
        payload: &Payload,
    ) -> Result<(u16, Option<Duration>, String), String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri.clone())
            .header("content-type", "application/json")
            .header("user-agent", concat!("sgwatch/", env!("CARGO_PKG_VERSION")));
        for (name, value) in &payload.headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(payload.body.clone())))
            .map_err(|e| format!("could not build the request: {e}"))?;
        let exchange = async {
            let response = http.request(request).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason.push_str(&format!(": {s}"));
                    source = s.source();
                }
                reason
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let body: String = String::from_utf8_lossy(&body)
                .chars()
                .take(300)
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            Ok((status, retry_after, body))
        };
        tokio::time::timeout(self.retry.attempt_timeout, exchange)
            .await
            .map_err(|_| {
                format!(
                    "no answer within {}s",
                    self.retry.attempt_timeout.as_secs_f32()
                )
            })?
    }
}

/// Errors worth a retry: throttling, the service's own failures, timeouts and lost connections.
fn is_transient(e: &SdkError<GetParameterError>) -> bool {
    match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status >= 500
                || status == 429
                || matches!(
                    s.err().code(),
                    Some("ThrottlingException" | "InternalServerError")
                )
        }
        _ => true,
    }
}

/// The URL of a destination: HTTPS, or plain HTTP to this machine's loopback (a local receiver
/// or a test's); a secret URL never travels in clear over a network.
pub fn checked_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if is_loopback(host) => Ok(uri),
        Some("http") => Err("plain http is only allowed to loopback; use https".to_owned()),
        _ => Err("not an https URL".to_owned()),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_or_loopback_http_only() {
        assert!(checked_url("https://hooks.slack.com/services/T/B/x").is_ok());
        assert!(checked_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(checked_url("http://[::1]:8080/hook").is_ok());
        assert!(checked_url("http://localhost/hook").is_ok());
        for bad in [
            "http://hooks.slack.com/services/T/B/x",
            "http://10.0.0.1/hook",
            "ftp://example.com/x",
            "hooks.slack.com/services",
            "",
        ] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_shows_no_cached_url_or_key() {
        let poster = Poster::new(&SdkConfig::builder().build());
        poster.cache.lock().unwrap().insert(
            "/sgwatch/siem-url".into(),
            "https://hooks.example/services/T0/B0/secret-token".into(),
        );
        poster
            .cache
            .lock()
            .unwrap()
            .insert("/sgwatch/siem-key".into(), "the-signing-key".into());
        let shown = format!("{poster:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(!shown.contains("the-signing-key"), "{shown}");
        assert!(shown.contains("cached_parameters: 2"), "{shown}");
    }

    #[test]
    fn only_retryable_failures_are_transient() {
        let e = |transient| PostError::Parameter {
            destination: "d".into(),
            parameter: "/p".into(),
            reason: "r".into(),
            transient,
        };
        assert!(!e(false).is_transient());
        assert!(e(true).is_transient());
        assert!(!PostError::Refused {
            destination: "d".into(),
            status: 404,
            body: String::new()
        }
        .is_transient());
    }
}
