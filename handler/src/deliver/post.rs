//! Posting to chat and webhook destinations, at the edge: each destination's secret URL (and a
//! webhook's signing key) is read from SSM Parameter Store and kept for at most
//! [`CACHE_TTL`], so a rotated URL or key is picked up within minutes; a 401, 403 or 404 makes
//! the caller read them again at once ([`Poster::refresh`]). The post is an HTTPS POST with a
//! time limit per attempt, sent at most once per attempt of the function: it is retried only
//! when the destination did not take it (a 429, after `Retry-After`) or the connection never
//! carried it (refused); a 5xx, a timeout or a lost answer may have been acted on, so the
//! invocation fails and the ledger decides what Lambda's retry posts. A 4xx is final for that
//! destination, and a 3xx is an error naming where it points (a secret URL is never followed).
//! No SSM read and no attempt starts that could not end before the caller's deadline.
//!
//! Where a post may go is the [`Reach`]: HTTPS to a public address. A URL naming, or a host name
//! resolving to, a link-local or instance-metadata address (169.254.0.0/16, `fd00:ec2::254`) is
//! always refused; a private one (10/8, 172.16/12, 192.168/16, 100.64/10, `fc00::/7`) unless the
//! stack allows private destinations; loopback (where the Lambda Runtime API answers) unless a
//! test's setting allows it, plain HTTP then too. The addresses are checked after DNS
//! resolution, in the connector itself, so the address checked is the address connected to.
//!
//! What becomes of a failure is the caller's ([`crate::process`]): a parameter that is missing or
//! cannot be read, a URL that is not HTTPS, or a 4xx is logged and the other destinations and the
//! email go on (retrying cannot fix them); a post still failing after its retries fails the
//! invocation like an SES failure, so Lambda retries it and finally parks the event.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use aws_sdk_ssm::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tracing::warn;

use crate::aws;
use crate::core::destination::{Destination, Reach};

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

/// How long a parameter's value is used before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// The longest an SSM read takes: the handler's operation timeout for every call.
const PARAMETER_READ_LIMIT: Duration = Duration::from_secs(10);

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            backoff: Duration::from_millis(250),
            max_retry_after: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(8),
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
    #[error("destination {destination} answered HTTP {status} pointing to {location}: a destination URL is never followed elsewhere; put the final URL in SSM parameter {parameter}")]
    Redirected {
        destination: String,
        parameter: String,
        status: u16,
        location: String,
    },
    #[error("destination {destination}: SNS did not take the message for topic {topic}: {reason}")]
    Publish {
        destination: String,
        topic: String,
        reason: String,
        transient: bool,
    },
    #[error("destination {destination}: {}s left, too little to {what}; Lambda's retry posts it", .left.as_secs())]
    Deadline {
        destination: String,
        what: &'static str,
        left: Duration,
    },
}

impl PostError {
    /// Whether a later retry (Lambda's) may succeed where this one failed.
    pub fn is_transient(&self) -> bool {
        match self {
            PostError::Parameter { transient, .. } | PostError::Publish { transient, .. } => {
                *transient
            }
            PostError::Url { .. } | PostError::Refused { .. } | PostError::Redirected { .. } => {
                false
            }
            PostError::Exhausted { .. } | PostError::Deadline { .. } => true,
        }
    }
}

/// What is posted: a JSON body and any extra headers (the webhook's signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

type HttpsClient = Client<HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>;

/// A destination's host resolved to an address its [`Reach`] refuses.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, {why}")]
struct AddressRefused {
    host: String,
    ip: IpAddr,
    why: &'static str,
}

/// The system resolver, refusing a name any of whose addresses the [`Reach`] refuses: the
/// connector connects only to addresses checked here.
#[derive(Clone)]
struct CheckedResolver {
    system: GaiResolver,
    reach: Reach,
}

type Resolving =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, std::io::Error>> + Send>>;

impl tower_service::Service<Name> for CheckedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Resolving {
        let (reach, host) = (self.reach, name.as_str().to_owned());
        let resolving = self.system.call(name);
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = resolving.await?.collect();
            for address in &addresses {
                if let Some(why) = reach.refuses(address.ip()) {
                    let ip = address.ip();
                    return Err(std::io::Error::other(AddressRefused { host, ip, why }));
                }
            }
            Ok(addresses.into_iter())
        })
    }
}

/// The [`AddressRefused`] somewhere in `error`'s chain of sources.
fn refused_address(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|i| i.downcast_ref::<AddressRefused>());
        if let Some(refused) = inner.or_else(|| e.downcast_ref::<AddressRefused>()) {
            return Some(refused.to_string());
        }
        next = e.source();
    }
    None
}

/// Reads parameters (cached for the container's life) and posts.
pub struct Poster {
    config: SdkConfig,
    ssm: OnceLock<aws_sdk_ssm::Client>,
    http: OnceLock<Result<HttpsClient, String>>,
    /// Parameter values read so far, by name, with when they were read. Failures are not kept:
    /// a parameter created or fixed later is read on the next notification.
    cache: Mutex<HashMap<String, (String, Instant)>>,
    /// How long a value is used before it is read again ([`CACHE_TTL`]).
    pub cache_ttl: Duration,
    pub retry: RetryPolicy,
    /// Which addresses a destination may have besides public ones.
    pub reach: Reach,
}

/// What one attempt got back.
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    location: Option<String>,
    body: String,
}

/// What became of one attempt that did not fail for good.
enum Judged {
    /// The destination took the post.
    Taken,
    /// Not taken, but worth another attempt after `wait`.
    Retry { wait: Duration, reason: String },
}

/// Why one attempt got no answer, and whether the request can have left.
struct NoAnswer {
    reason: String,
    /// The connection was never made (refused, no route): the request did not leave.
    unsent: bool,
    /// The host resolved to an address the [`Reach`] refuses: no retry can help.
    refused: Option<String>,
}

impl std::fmt::Debug for Poster {
    /// The cached values are secret URLs and signing keys (whoever holds one can post, or sign):
    /// only how many there are is shown, never a name's value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.lock().map(|c| c.len()).unwrap_or_default();
        f.debug_struct("Poster")
            .field("cached_parameters", &cached)
            .field("retry", &self.retry)
            .field("reach", &self.reach)
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
            cache_ttl: CACHE_TTL,
            retry: RetryPolicy::default(),
            reach: Reach::default(),
        }
    }

    /// Where destinations may be besides public addresses (none by default).
    pub fn with_reach(mut self, reach: Reach) -> Poster {
        self.reach = reach;
        self
    }

    pub fn with_cache_ttl(mut self, ttl: Duration) -> Poster {
        self.cache_ttl = ttl;
        self
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
                let mut connector = HttpConnector::new_with_resolver(CheckedResolver {
                    system: GaiResolver::new(),
                    reach: self.reach,
                });
                connector.enforce_http(false);
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
                    .map_err(|e| format!("no TLS trust roots: {e}"))?
                    // Plain HTTP is refused before a request is made unless it is a test's
                    // loopback ([`checked_url`]).
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(connector);
                Ok(Client::builder(TokioExecutor::new()).build(https))
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The value of `parameter` (decrypted), from the cache while it is younger than
    /// [`Poster::cache_ttl`], else from SSM.
    pub async fn parameter(&self, destination: &str, parameter: &str) -> Result<String, PostError> {
        self.parameter_until(destination, parameter, None).await
    }

    /// [`Poster::parameter`], reading SSM only when the read can end before `deadline`.
    pub async fn parameter_until(
        &self,
        destination: &str,
        parameter: &str,
        deadline: Option<Instant>,
    ) -> Result<String, PostError> {
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(parameter)
                .filter(|(_, read)| read.elapsed() < self.cache_ttl)
                .map(|(v, _)| v.clone())
        });
        if let Some(v) = cached {
            return Ok(v);
        }
        ensure_time(
            destination,
            deadline,
            PARAMETER_READ_LIMIT,
            "read its SSM parameter",
        )?;
        self.read(destination, parameter).await
    }

    /// Reads `destination`'s parameters again (after a 401, 403 or 404: a rotated URL or key);
    /// true when a value changed, so that one more post may succeed.
    pub async fn refresh(&self, destination: &Destination, deadline: Option<Instant>) -> bool {
        let name = destination.name.as_str();
        let mut changed = false;
        for parameter in std::iter::once(&destination.parameter).chain(&destination.key_parameter) {
            if ensure_time(
                name,
                deadline,
                PARAMETER_READ_LIMIT,
                "read its SSM parameter",
            )
            .is_err()
            {
                return false;
            }
            let before = self
                .cache
                .lock()
                .ok()
                .and_then(|c| c.get(parameter.as_str()).map(|(v, _)| v.clone()));
            match self.read(name, parameter).await {
                Ok(now) => changed |= before.as_deref() != Some(now.as_str()),
                Err(e) => {
                    warn!(destination = name, error = %e, "could not read the parameter again")
                }
            }
        }
        changed
    }

    /// Reads `parameter` from SSM and keeps it.
    async fn read(&self, destination: &str, parameter: &str) -> Result<String, PostError> {
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
            cache.insert(parameter.to_owned(), (value.clone(), Instant::now()));
        }
        Ok(value)
    }

    /// Posts `payload` to the URL in `destination`'s parameter, done by `deadline`: no SSM read,
    /// wait or attempt starts that would overrun it.
    pub async fn post(
        &self,
        destination: &Destination,
        payload: &Payload,
        deadline: Option<Instant>,
    ) -> Result<(), PostError> {
        let name = destination.name.as_str();
        let url = self
            .parameter_until(name, &destination.parameter, deadline)
            .await?;
        self.post_to(destination, url.trim(), payload, deadline)
            .await
    }

    /// Posts `payload` to `url` for `destination` (PagerDuty's events endpoint, whose routing key
    /// is the parameter), under the same checks, limits and retries as [`Poster::post`].
    pub async fn post_to(
        &self,
        destination: &Destination,
        url: &str,
        payload: &Payload,
        deadline: Option<Instant>,
    ) -> Result<(), PostError> {
        let name = destination.name.as_str();
        let uri = checked_url(url, self.reach).map_err(|reason| unusable(destination, reason))?;
        let http = self
            .http()
            .map_err(|reason| exhausted(destination, 0, reason))?;
        let mut attempt = 0;
        loop {
            ensure_time(name, deadline, self.retry.attempt_timeout, "start a post")?;
            attempt += 1;
            let answer = self.attempt(http, &uri, payload).await;
            let (wait, reason) = match self.judge(destination, attempt, answer)? {
                Judged::Taken => return Ok(()),
                Judged::Retry { wait, reason } => (wait, reason),
            };
            if !self.retry_fits(attempt, wait, deadline) {
                return Err(exhausted(destination, attempt, reason));
            }
            warn!(destination = name, attempt, wait_ms = wait.as_millis() as u64, reason = %reason, "post not taken; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// What attempt number `attempt` came to: taken, worth another attempt after a wait, or a
    /// failure no attempt in this invocation can mend.
    fn judge(
        &self,
        destination: &Destination,
        attempt: u32,
        answer: Result<Answer, NoAnswer>,
    ) -> Result<Judged, PostError> {
        match answer {
            Ok(a) if (200..300).contains(&a.status) => Ok(Judged::Taken),
            // The destination did not take it: worth another attempt after its wait.
            Ok(Answer {
                status: 429,
                retry_after,
                body,
                ..
            }) => {
                let wait = retry_after.unwrap_or(self.backoff(attempt));
                if wait > self.retry.max_retry_after {
                    return Err(exhausted(
                        destination,
                        attempt,
                        format!(
                            "HTTP 429, Retry-After {}s is longer than this invocation waits",
                            wait.as_secs()
                        ),
                    ));
                }
                Ok(Judged::Retry {
                    wait,
                    reason: format!("HTTP 429: {body}"),
                })
            }
            Ok(a) if (300..400).contains(&a.status) => Err(PostError::Redirected {
                destination: destination.name.clone(),
                parameter: destination.parameter.clone(),
                status: a.status,
                location: a
                    .location
                    .unwrap_or_else(|| "nowhere (no Location)".to_owned()),
            }),
            // It may have been acted on: Lambda's retry decides, from the ledger.
            Ok(a) if a.status >= 500 => Err(exhausted(
                destination,
                attempt,
                format!("HTTP {}: {}", a.status, a.body),
            )),
            Ok(a) => Err(PostError::Refused {
                destination: destination.name.clone(),
                status: a.status,
                body: a.body,
            }),
            Err(NoAnswer {
                refused: Some(why), ..
            }) => Err(unusable(destination, why)),
            Err(NoAnswer {
                reason,
                unsent: true,
                ..
            }) => Ok(Judged::Retry {
                wait: self.backoff(attempt),
                reason,
            }),
            Err(NoAnswer { reason, .. }) => Err(exhausted(destination, attempt, reason)),
        }
    }

    /// Whether another attempt may follow attempt number `attempt`: one is left, and waiting
    /// `wait` then a whole attempt still ends before `deadline`.
    fn retry_fits(&self, attempt: u32, wait: Duration, deadline: Option<Instant>) -> bool {
        if attempt >= self.retry.attempts {
            return false;
        }
        match deadline {
            Some(d) => Instant::now() + wait + self.retry.attempt_timeout <= d,
            None => true,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        self.retry.backoff * 2u32.saturating_pow(attempt.saturating_sub(1))
    }

    /// One attempt: the status, `Retry-After` (in seconds), `Location` and the start of the
    /// answer's body.
    async fn attempt(
        &self,
        http: &HttpsClient,
        uri: &Uri,
        payload: &Payload,
    ) -> Result<Answer, NoAnswer> {
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
            .map_err(|e| NoAnswer {
                reason: format!("could not build the request: {e}"),
                unsent: true,
                refused: None,
            })?;
        let exchange = async {
            let response = http.request(request).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason.push_str(&format!(": {s}"));
                    source = s.source();
                }
                // A connection never made carried nothing; anything later may have.
                NoAnswer {
                    reason,
                    unsent: e.is_connect(),
                    refused: refused_address(&e),
                }
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(300).collect::<String>());
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
            Ok(Answer {
                status,
                retry_after,
                location,
                body,
            })
        };
        tokio::time::timeout(self.retry.attempt_timeout, exchange)
            .await
            .map_err(|_| NoAnswer {
                reason: format!(
                    "no answer within {}s",
                    self.retry.attempt_timeout.as_secs_f32()
                ),
                unsent: false,
                refused: None,
            })?
    }
}

/// The destination's URL cannot be used (malformed, or at an address the [`Reach`] refuses).
fn unusable(destination: &Destination, reason: String) -> PostError {
    PostError::Url {
        destination: destination.name.clone(),
        parameter: destination.parameter.clone(),
        reason,
    }
}

/// The post did not go through after `attempts` attempts; Lambda's retry may do better.
fn exhausted(destination: &Destination, attempts: u32, reason: String) -> PostError {
    PostError::Exhausted {
        destination: destination.name.clone(),
        attempts,
        reason,
    }
}

/// Fails when less than `needed` is left before `deadline`.
fn ensure_time(
    destination: &str,
    deadline: Option<Instant>,
    needed: Duration,
    what: &'static str,
) -> Result<(), PostError> {
    match deadline {
        Some(d) if Instant::now() + needed > d => Err(PostError::Deadline {
            destination: destination.to_owned(),
            what,
            left: d.saturating_duration_since(Instant::now()),
        }),
        _ => Ok(()),
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

/// The URL of a destination: HTTPS, or plain HTTP to loopback when the [`Reach`] allows loopback
/// (a test's receiver); a secret URL never travels in clear over a network. A host written as an
/// address is checked here (the connector resolves no literal); a name, after resolution.
pub fn checked_url(url: &str, reach: Reach) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    let host = uri.host().unwrap_or_default();
    let literal = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok();
    if let Some(why) = literal.and_then(|ip| reach.refuses(ip)) {
        return Err(format!("{host} is {why}"));
    }
    let loopback =
        literal.is_some_and(|ip| ip.is_loopback()) || host.eq_ignore_ascii_case("localhost");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(uri),
        Some("http") if reach.loopback && loopback => Ok(uri),
        Some("http") => Err("plain http is never used for a destination; use https".to_owned()),
        _ => Err("not an https URL".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Reach = Reach {
        private: false,
        loopback: true,
    };

    #[test]
    fn https_only_and_loopback_http_only_under_the_test_setting() {
        assert!(checked_url("https://hooks.slack.com/services/T/B/x", Reach::default()).is_ok());
        for local in [
            "http://127.0.0.1:8080/hook",
            "http://[::1]:8080/hook",
            "http://localhost/hook",
        ] {
            assert!(checked_url(local, TEST).is_ok(), "{local}");
            let refused = checked_url(local, Reach::default()).unwrap_err();
            assert!(
                refused.contains("loopback") || refused.contains("plain http"),
                "{local}: {refused}"
            );
        }
        for bad in [
            "http://hooks.slack.com/services/T/B/x",
            "http://10.0.0.1/hook",
            "ftp://example.com/x",
            "hooks.slack.com/services",
            "",
        ] {
            assert!(checked_url(bad, TEST).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_link_local_and_private_addresses_are_refused() {
        let everything = Reach {
            private: true,
            loopback: true,
        };
        for always in [
            "https://169.254.169.254/latest/meta-data/",
            "https://169.254.170.2/v2/credentials",
            "https://[fd00:ec2::254]/latest/meta-data/",
            "https://[fe80::1]/hook",
            "https://[::ffff:169.254.169.254]/hook",
            "https://[64:ff9b::a9fe:a9fe]/hook",
            "https://0.0.0.0/hook",
            "https://[::]/hook",
        ] {
            let why = checked_url(always, everything).unwrap_err();
            assert!(
                why.contains("link-local") || why.contains("not the address"),
                "{always}: {why}"
            );
        }
        for private in [
            "https://10.1.2.3/hook",
            "https://172.16.0.9/hook",
            "https://192.168.1.1/hook",
            "https://100.64.0.1/hook",
            "https://[fd12:3456::1]/hook",
            "https://[::ffff:10.0.0.1]/hook",
        ] {
            let why = checked_url(private, Reach::default()).unwrap_err();
            assert!(
                why.contains("--allow-private-destinations"),
                "{private}: {why}"
            );
            assert!(checked_url(private, everything).is_ok(), "{private}");
        }
        for public in [
            "https://172.32.0.1/hook",
            "https://[2600:1f18::1]/hook",
            "https://8.8.8.8/",
        ] {
            assert!(checked_url(public, Reach::default()).is_ok(), "{public}");
        }
    }

    #[tokio::test]
    async fn a_name_is_checked_after_it_is_resolved() {
        use tower_service::Service;
        let mut resolver = CheckedResolver {
            system: GaiResolver::new(),
            reach: Reach::default(),
        };
        let name: Name = "localhost".parse().unwrap();
        let err = resolver.call(name.clone()).await.unwrap_err();
        let why = refused_address(&err).expect("the refusal is found in the chain");
        assert!(why.starts_with("localhost resolves to "), "{why}");
        assert!(why.contains("loopback"), "{why}");

        resolver.reach = TEST;
        let addresses: Vec<SocketAddr> = resolver.call(name).await.unwrap().collect();
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
    }

    #[test]
    fn debug_shows_no_cached_url_or_key() {
        let poster = Poster::new(&SdkConfig::builder().build());
        poster.cache.lock().unwrap().insert(
            "/sgwatch/siem-url".into(),
            (
                "https://hooks.example/services/T0/B0/secret-token".into(),
                Instant::now(),
            ),
        );
        poster.cache.lock().unwrap().insert(
            "/sgwatch/siem-key".into(),
            ("the-signing-key".into(), Instant::now()),
        );
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
