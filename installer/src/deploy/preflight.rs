//! Preflight: what must hold in the account before install changes anything. The SES sender must
//! be a verified identity (the address, or its domain), or install stops with the exact next step;
//! whether SES is still in the sandbox is a warning (and only a warning where it cannot be told).

use aws_sdk_sesv2::error::ProvideErrorMetadata;
use aws_sdk_sesv2::operation::get_email_identity::GetEmailIdentityOutput;
use aws_sdk_sesv2::types::VerificationStatus;

use crate::aws::Place;

/// Why install cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "the SES sender {sender} is not verified in {place}{pending}. Verify it, then run install \
         again:\n  aws sesv2 create-email-identity --email-identity {sender} --region {region}\n\
         and click the link SES emails to {sender} (or verify the domain {domain} instead)"
    )]
    SenderNotVerified {
        sender: String,
        domain: String,
        place: Place,
        region: String,
        /// ` (identity X is pending verification)` when one exists but is not verified yet.
        pending: String,
    },
    #[error("reading SES identity {identity} in {place} failed: {detail}")]
    Ses {
        identity: String,
        place: Place,
        detail: String,
    },
}

/// Verified for sending. Some emulators report only the verification status, so either counts.
pub fn is_verified(identity: &GetEmailIdentityOutput) -> bool {
    identity.verified_for_sending_status()
        || identity.verification_status() == Some(&VerificationStatus::Success)
}

/// The verified SES identity that covers `sender`: the address itself, else its domain.
pub async fn sender_identity(
    ses: &aws_sdk_sesv2::Client,
    place: &Place,
    sender: &str,
) -> Result<String, PreflightError> {
    let domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or_default()
        .to_owned();
    let mut pending = Vec::new();
    for identity in [sender, domain.as_str()] {
        match ses
            .get_email_identity()
            .email_identity(identity)
            .send()
            .await
        {
            Ok(found) if is_verified(&found) => return Ok(identity.to_owned()),
            Ok(_) => pending.push(identity.to_owned()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) => {}
            // Access denied, throttling that outlasted the retries, a wrong endpoint: not the
            // same as "not verified", and the user must hear which.
            Err(e) => {
                return Err(PreflightError::Ses {
                    identity: identity.to_owned(),
                    place: place.clone(),
                    detail: match e.code() {
                        Some(code) => format!("{code}: {}", e.message().unwrap_or_default()),
                        None => crate::aws::error_text(&e),
                    },
                })
            }
        }
    }
    Err(PreflightError::SenderNotVerified {
        sender: sender.to_owned(),
        domain,
        region: place.region.clone(),
        place: place.clone(),
        pending: match pending.as_slice() {
            [] => String::new(),
            ids => format!(
                " (identity {} exists but is pending verification)",
                ids.join(" and ")
            ),
        },
    })
}

/// A warning when SES is in the sandbox (mail reaches verified recipients only), or when that
/// cannot be told (`GetAccount` refused, or missing as on moto).
pub async fn sandbox_warning(ses: &aws_sdk_sesv2::Client, place: &Place) -> Option<String> {
    match ses.get_account().send().await {
        Ok(account) if account.production_access_enabled() => None,
        Ok(_) => Some(format!(
            "SES in {place} is in the sandbox: email reaches only verified recipients; request \
             production access (SES console, Account dashboard) for owners to get it"
        )),
        Err(e) => Some(format!(
            "could not tell whether SES in {place} is in the sandbox (GetAccount: {}); while it \
             is, email reaches only verified recipients",
            e.code()
                .map(str::to_owned)
                .or_else(|| e
                    .raw_response()
                    .map(|r| format!("HTTP {}", r.status().as_u16())))
                .unwrap_or_else(|| "no answer".to_owned())
        )),
    }
}
