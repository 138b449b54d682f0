//! Sending the email with SES v2 `SendEmail`, and telling a permanent rejection (do not retry,
//! tell the fallback recipient) from a transient failure (let Lambda retry the event).
//!
//! Permanent for the recipients of that send: `MessageRejected` (in the SES sandbox, "Email
//! address is not verified" names the recipient) and `AccessDenied` (in the sandbox SES also
//! authorizes the send against each recipient's identity, so a policy that does not cover it
//! denies that recipient only). Both come back the same on every retry.
//! <https://docs.aws.amazon.com/ses/latest/dg/request-production-access.html>

use aws_sdk_sesv2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::types::{Body, Content, Destination, EmailContent, Message};

use crate::render::Email;

/// Why an email did not go out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// SES refused this message for good (e.g. an unverified recipient in the sandbox).
    #[error("SES rejected the email to {recipients}: {reason}")]
    Rejected { recipients: String, reason: String },
    /// Throttling, a 5xx, a timeout: worth trying again later.
    #[error("SES could not be reached or is throttling (to {recipients}): {reason}")]
    Transient { recipients: String, reason: String },
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient { .. })
    }
}

/// Sends `email` from `sender` to `recipients`; returns the SES message id.
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
    let content = content.map_err(|e| SendError::Rejected {
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
        Err(e) => Err(classify(e, to)),
    }
}

fn classify(error: SdkError<SendEmailError>, recipients: String) -> SendError {
    // The service's own code and message read in one line; the SDK's chain for everything else.
    let reason = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(&error).to_string(),
    };
    let permanent = match &error {
        SdkError::ServiceError(service) => {
            matches!(
                service.err(),
                SendEmailError::MessageRejected(_)
                    | SendEmailError::MailFromDomainNotVerifiedException(_)
                    | SendEmailError::BadRequestException(_)
                    | SendEmailError::NotFoundException(_)
            ) || matches!(
                service.err().code(),
                Some("AccessDenied" | "AccessDeniedException")
            )
        }
        SdkError::ConstructionFailure(_) => true,
        _ => false,
    };
    if permanent {
        SendError::Rejected { recipients, reason }
    } else {
        SendError::Transient { recipients, reason }
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
                    .message("Email address is not verified.")
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
}
