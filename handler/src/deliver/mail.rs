//! Sending the email with SES v2 `SendEmail`, at most once per attempt of the function, and
//! telling what a failure means for whom.
//!
//! At most once: SES may accept a send whose answer is then lost (a timeout, a connection closed
//! after the request went out). The SDK's standard retry would send it again, so mail has a client
//! of its own ([`client`]) whose retries stop once a request has been sent: it retries only
//! answers that say SES did not take the request (throttling) and connections that never carried
//! it (refused). Anything else fails the send, the invocation fails, and the delivery ledger
//! decides what Lambda's retry still sends; a second copy needs an answer lost after SES took it.
//!
//! Whom a failure concerns ([`SendError`]):
//! - a rejection that names a recipient (in the SES sandbox, "Email address is not verified. The
//!   following identities failed the check in region …: b@corp.example"; an `AccessDenied` on
//!   the recipient's identity, since in the sandbox SES authorizes the send against each
//!   recipient too) is permanent for the recipients it names, and only for them;
//!   <https://docs.aws.amazon.com/ses/latest/dg/request-production-access.html>
//! - anything about the sender or the account (an unverified or lapsed sender, `MailFromDomain
//!   NotVerified`, an SCP or policy denying `ses:SendEmail`, a paused or suspended account, a
//!   rejection naming no recipient) is no recipient's fault: it fails the invocation, so Lambda
//!   retries it and its failure destination keeps the event once SES is fixed;
//! - throttling, 5xx, timeouts and lost connections are transient: the invocation fails too.

use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{
    ClassifyRetry, RetryAction, RetryClassifierPriority,
};

use crate::core::render::Email;

/// SES takes at most 50 recipients per message (To, Cc and Bcc together).
/// <https://docs.aws.amazon.com/ses/latest/dg/quotas.html>
pub const MAX_RECIPIENTS: usize = 50;

/// One attempt of a send: long enough for SES to answer a send it is working on (a send cut
/// short by our timeout may still go out, and is then not retried).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(8);
/// A whole send, throttled attempts and their back-off included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(15);

/// Mail's time limits: a stalled connect costs 3 s, a stalled answer one attempt.
pub fn timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The SES client for mail: `config`'s credentials, region and retry policy, mail's time limits,
/// and no retry once a request has been sent ([`SentAtMostOnce`]).
pub fn client(config: &SdkConfig) -> aws_sdk_sesv2::Client {
    aws_sdk_sesv2::Client::from_conf(
        aws_sdk_sesv2::config::Builder::from(config)
            .timeout_config(timeouts())
            .retry_classifier(SentAtMostOnce)
            .build(),
    )
}

/// The error codes with which SES says it did not take a request because of its rate.
const THROTTLING: &[&str] = &[
    "TooManyRequestsException",
    "Throttling",
    "ThrottlingException",
];

/// Forbids a retry of a request SES may have acted on. It runs after the SDK's own classifiers,
/// and a `RetryForbidden` from any classifier wins; what it leaves alone (throttling answers,
/// refused connections) the SDK's classifiers retry as usual.
#[derive(Debug, Clone, Copy)]
pub struct SentAtMostOnce;

impl ClassifyRetry for SentAtMostOnce {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        // An answer: only a throttling one says for sure that SES did not take the send.
        if let Some(response) = ctx.response() {
            let code = error
                .as_operation_error()
                .and_then(|e| e.downcast_ref::<SendEmailError>())
                .and_then(|e| e.code());
            if response.status().as_u16() == 429 || code.is_some_and(|c| THROTTLING.contains(&c)) {
                return RetryAction::NoActionIndicated;
            }
            return RetryAction::RetryForbidden;
        }
        // No answer: only a connection that was refused never carried the request.
        match error.as_connector_error() {
            Some(e) if refused(e) => RetryAction::NoActionIndicated,
            _ => RetryAction::RetryForbidden,
        }
    }

    fn name(&self) -> &'static str {
        "sgwatch: no send retried once it may have reached SES"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// True when the error's chain holds a refused connection: the request never left.
fn refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        next = e.source();
    }
    false
}

/// Why an email did not go out, and whom that concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// SES refused these recipients for good (it named them): no retry helps them.
    #[error("SES rejected the email to {}: {reason}", .recipients.join(", "))]
    Rejected {
        recipients: Vec<String>,
        reason: String,
    },
    /// The sender or the account cannot send (unverified sender, a policy denying the send, a
    /// paused account, a rejection naming no recipient): fixed in SES, not by the recipients.
    #[error("SES refused to send from {sender} (to {recipients}): {reason}; fix the sender or the account in SES, Lambda retries the event")]
    Sender {
        sender: String,
        recipients: String,
        reason: String,
    },
    /// Throttling, a 5xx, a timeout, a lost answer: worth trying again later.
    #[error("SES could not be reached or is throttling (to {recipients}): {reason}")]
    Transient { recipients: String, reason: String },
}

impl SendError {
    /// Whether the invocation must fail for it (everything but a rejection of named recipients).
    pub fn is_transient(&self) -> bool {
        !matches!(self, SendError::Rejected { .. })
    }
}

/// Sends `email` from `sender` to `recipients` (at most [`MAX_RECIPIENTS`]); returns the SES
/// message id.
pub async fn send(
    client: &aws_sdk_sesv2::Client,
    sender: &str,
    recipients: &[String],
    email: &Email,
) -> Result<String, SendError> {
    let utf8 = |text: &str| Content::builder().data(text).charset("UTF-8").build();
    let content = (|| {
        Ok::<_, aws_sdk_sesv2::error::BuildError>(
            EmailContent::builder()
                .simple(
                    Message::builder()
                        .subject(utf8(&email.subject)?)
                        .body(
                            Body::builder()
                                .text(utf8(&email.text)?)
                                .html(utf8(&email.html)?)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
    })();
    let to = recipients.join(", ");
    // Building plain text content cannot fail; if it did, no recipient would be to blame.
    let content = content.map_err(|e| SendError::Sender {
        sender: sender.to_owned(),
        recipients: to.clone(),
        reason: e.to_string(),
    })?;
    let result = client
        .send_email()
        .from_email_address(sender)
        .destination(
            Destination::builder()
                .set_to_addresses(Some(recipients.to_vec()))
                .build(),
        )
        .content(content)
        .send()
        .await;
    match result {
        Ok(out) => Ok(out.message_id().unwrap_or_default().to_owned()),
        Err(e) => Err(classify(e, sender, recipients)),
    }
}

/// The recipients among `recipients` that `text` names (case-insensitive, whole addresses).
pub fn named<'a>(text: &str, recipients: &'a [String]) -> Vec<&'a String> {
    let text = text.to_ascii_lowercase();
    let boundary =
        |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || "@.+-_".contains(c)));
    recipients
        .iter()
        .filter(|r| {
            let r = r.to_ascii_lowercase();
            text.match_indices(&r).any(|(at, _)| {
                boundary(text[..at].chars().next_back())
                    && boundary(text[at + r.len()..].chars().next())
            })
        })
        .collect()
}

fn classify(error: SdkError<SendEmailError>, sender: &str, recipients: &[String]) -> SendError {
    // The service's own code and message read in one line; the SDK's chain for everything else.
    let reason = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(&error).to_string(),
    };
    let to = recipients.join(", ");
    let SdkError::ServiceError(service) = &error else {
        return SendError::Transient {
            recipients: to,
            reason,
        };
    };
    let e = service.err();
    let status = service.raw().status().as_u16();
    let about_recipients = matches!(
        e,
        SendEmailError::MessageRejected(_) | SendEmailError::BadRequestException(_)
    ) || matches!(e.code(), Some("AccessDenied" | "AccessDeniedException"));
    // Only the recipients the answer names are to blame, and only when it also does not name
    // the sender (an unverified sender is named the same way an unverified recipient is).
    // The modeled error's own text carries SES's message (its metadata may not).
    let message = format!("{} {e}", e.message().unwrap_or_default());
    let blamed: Vec<String> = named(&message, recipients).into_iter().cloned().collect();
    let names_sender = !named(&message, &[sender.to_owned()]).is_empty();
    // An explicit deny (an SCP, a permissions boundary) is a policy on the caller, whichever
    // identity the message happens to name.
    let explicit_deny = message.to_ascii_lowercase().contains("explicit deny");
    if about_recipients && !blamed.is_empty() && !names_sender && !explicit_deny {
        return SendError::Rejected {
            recipients: blamed,
            reason,
        };
    }
    if status >= 500 || status == 429 || matches!(e, SendEmailError::TooManyRequestsException(_)) {
        return SendError::Transient {
            recipients: to,
            reason,
        };
    }
    SendError::Sender {
        sender: sender.to_owned(),
        recipients: to,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sesv2::operation::send_email::SendEmailOutput;
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};
    use aws_sdk_sesv2::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    fn email() -> Email {
        Email {
            subject: "s".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        }
    }

    #[tokio::test]
    async fn rejection_is_permanent_and_throttling_transient() {
        let rejected = mock!(Client::send_email).then_error(|| {
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Email address is not verified. The following identities failed the check in region US-EAST-1: a@example.com")
                    .build(),
            )
        });
        let throttled = mock!(Client::send_email).then_error(|| {
            SendEmailError::TooManyRequestsException(
                TooManyRequestsException::builder()
                    .message("slow down")
                    .build(),
            )
        });
        let ok = mock!(Client::send_email)
            .match_requests(|r| r.from_email_address() == Some("alerts@example.com"))
            .then_output(|| SendEmailOutput::builder().message_id("m-1").build());
        let client = mock_client!(
            aws_sdk_sesv2,
            RuleMode::Sequential,
            [&rejected, &throttled, &ok]
        );
        let to = vec!["a@example.com".to_owned()];
        let err = send(&client, "alerts@example.com", &to, &email())
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains("a@example.com"));
        let err = send(&client, "alerts@example.com", &to, &email())
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(
            send(&client, "alerts@example.com", &to, &email())
                .await
                .unwrap(),
            "m-1"
        );
    }

    #[tokio::test]
    async fn access_denied_is_permanent_for_that_recipient_in_one_line() {
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        // What SES answers when the policy does not cover a recipient's identity (sandbox).
        let denied = mock!(Client::send_email).then_http_response(|| {
            let mut response = aws_smithy_runtime_api::http::Response::new(
                StatusCode::try_from(403).unwrap(),
                SdkBody::from(
                    r#"{"message":"User is not authorized to perform `ses:SendEmail' on resource `arn:aws:ses:us-east-1:123456789012:identity/b@corp.example'"}"#,
                ),
            );
            response
                .headers_mut()
                .insert("x-amzn-ErrorType", "AccessDeniedException");
            response
        });
        let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, [&denied]);
        let to = vec!["b@corp.example".to_owned()];
        let err = send(&client, "alerts@example.com", &to, &email())
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("AccessDeniedException: User is not authorized"),
            "{text}"
        );
        assert!(!text.contains('\n'), "{text}");
    }

    /// SES's answers about the sender or the account: no recipient is to blame, the invocation
    /// fails so Lambda retries it (and its failure destination keeps the event).
    #[tokio::test]
    async fn sender_and_account_failures_blame_no_recipient() {
        use aws_sdk_sesv2::types::error::MailFromDomainNotVerifiedException;
        use aws_smithy_runtime_api::http::StatusCode;
        use aws_smithy_types::body::SdkBody;
        let unverified_sender = mock!(Client::send_email).then_error(|| {
            SendEmailError::MessageRejected(
                MessageRejected::builder()
                    .message("Email address is not verified. The following identities failed the check in region US-EAST-1: alerts@example.com, a@example.com")
                    .build(),
            )
        });
        let mail_from = mock!(Client::send_email).then_error(|| {
            SendEmailError::MailFromDomainNotVerifiedException(
                MailFromDomainNotVerifiedException::builder()
                    .message("The MAIL FROM domain is not verified")
                    .build(),
            )
        });
        // An SCP denying the send: an explicit deny, even when the identity named is a
        // recipient's (in the sandbox SES authorizes against each recipient too).
        let scp = mock!(Client::send_email).then_http_response(|| {
            let mut response = aws_smithy_runtime_api::http::Response::new(
                StatusCode::try_from(403).unwrap(),
                SdkBody::from(
                    r#"{"message":"User: arn:aws:sts::123456789012:assumed-role/sgwatch/fn is not authorized to perform: ses:SendEmail on resource: arn:aws:ses:us-east-1:123456789012:identity/a@example.com with an explicit deny in a service control policy"}"#,
                ),
            );
            response
                .headers_mut()
                .insert("x-amzn-ErrorType", "AccessDeniedException");
            response
        });
        let client = mock_client!(
            aws_sdk_sesv2,
            RuleMode::Sequential,
            [&unverified_sender, &mail_from, &scp]
        );
        let to = vec!["a@example.com".to_owned()];
        for expected in ["not verified", "MAIL FROM", "service control policy"] {
            let err = send(&client, "alerts@example.com", &to, &email())
                .await
                .unwrap_err();
            assert!(matches!(err, SendError::Sender { .. }), "{err:?}");
            assert!(err.is_transient(), "{err}");
            assert!(err.to_string().contains(expected), "{err}");
        }
    }

    #[test]
    fn a_rejection_blames_only_the_whole_addresses_it_names() {
        let to: Vec<String> = ["b@corp.example", "ab@corp.example", "c@corp.example"]
            .map(String::from)
            .to_vec();
        let text = "Email address is not verified. The following identities failed the check in region US-EAST-1: AB@corp.example";
        assert_eq!(named(text, &to), [&to[1]]);
        assert!(named("Too many recipients.", &to).is_empty());
    }

    /// How a scripted SES endpoint answers one request.
    #[derive(Clone, Copy)]
    enum Then {
        /// Reads the request, then closes the connection without an answer.
        Drop,
        /// HTTP 429 TooManyRequestsException.
        Throttle,
        /// HTTP 500 (SES may or may not have sent).
        Fail,
        /// Waits this long, then accepts.
        SlowOk(Duration),
    }

    /// A loopback SES endpoint answering the requests with `script` in order (then accepting);
    /// returns its URL and the count of requests it received.
    fn ses(script: Vec<Then>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let then = script
                    .get(n)
                    .copied()
                    .unwrap_or(Then::SlowOk(Duration::ZERO));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some((k, v)) = line.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let _ = reader.read_exact(&mut vec![0; length]);
                    let (status, kind, body) = match then {
                        Then::Drop => return,
                        Then::Throttle => (
                            "429 Too Many Requests",
                            "TooManyRequestsException",
                            r#"{"message":"Maximum sending rate exceeded."}"#,
                        ),
                        Then::Fail => (
                            "500 Internal Server Error",
                            "InternalFailure",
                            r#"{"message":"internal"}"#,
                        ),
                        Then::SlowOk(wait) => {
                            std::thread::sleep(wait);
                            ("200 OK", "", r#"{"MessageId":"m-1"}"#)
                        }
                    };
                    let kind = if kind.is_empty() {
                        String::new()
                    } else {
                        format!("x-amzn-ErrorType: {kind}\r\n")
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{kind}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                });
            }
        });
        (url, seen)
    }

    async fn mail_client(url: &str) -> Client {
        let config = crate::aws::config_loader()
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sesv2::config::Credentials::for_tests())
            .endpoint_url(url)
            .load()
            .await;
        client(&config)
    }

    /// An answer lost after SES may have taken the send (the connection closed after the
    /// request went out, or a 500): one request, and the send fails for Lambda's retry.
    #[tokio::test]
    async fn a_send_that_may_have_reached_ses_is_never_sent_again() {
        for then in [Then::Drop, Then::Fail] {
            let (url, seen) = ses(vec![then]);
            let client = mail_client(&url).await;
            let err = send(
                &client,
                "alerts@example.com",
                &["a@example.com".to_owned()],
                &email(),
            )
            .await
            .unwrap_err();
            assert!(err.is_transient(), "{err}");
            assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1, "{err}");
        }
    }

    /// SES answering over its rate did not take the send: retried inside the call.
    #[tokio::test]
    async fn a_throttled_send_is_retried() {
        let (url, seen) = ses(vec![Then::Throttle, Then::Throttle]);
        let client = mail_client(&url).await;
        let id = send(
            &client,
            "alerts@example.com",
            &["a@example.com".to_owned()],
            &email(),
        )
        .await
        .unwrap();
        assert_eq!(id, "m-1");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    /// SES taking 5 s to answer is waited for (one attempt may take up to 8 s): sent once.
    #[tokio::test]
    async fn a_slow_answer_is_waited_for_and_sent_once() {
        let (url, seen) = ses(vec![Then::SlowOk(Duration::from_secs(5))]);
        let client = mail_client(&url).await;
        let id = send(
            &client,
            "alerts@example.com",
            &["a@example.com".to_owned()],
            &email(),
        )
        .await
        .unwrap();
        assert_eq!(id, "m-1");
        assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// A refused connection never carried the request: retried.
    #[test]
    fn a_refused_connection_may_be_retried_and_a_reset_may_not() {
        use aws_smithy_runtime_api::client::interceptors::context::{Error, Input};
        use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let verdict = |kind: std::io::ErrorKind| {
            let mut ctx = InterceptorContext::new(Input::doesnt_matter());
            ctx.set_output_or_error(Err(OrchestratorError::<Error>::connector(
                ConnectorError::io(Box::new(std::io::Error::from(kind))),
            )));
            SentAtMostOnce.classify_retry(&ctx)
        };
        assert_eq!(
            verdict(std::io::ErrorKind::ConnectionRefused),
            RetryAction::NoActionIndicated
        );
        assert_eq!(
            verdict(std::io::ErrorKind::ConnectionReset),
            RetryAction::RetryForbidden
        );
    }
}
