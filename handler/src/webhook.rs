//! The signed webhook: the decision as `sgwatch explain` prints it (one JSON object), with an
//! `X-Sgwatch-Signature: sha256=<hex>` header, the HMAC-SHA256 of the exact body bytes keyed by the
//! destination's key parameter, so the receiver can check the post came from this stack.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::decide::Decision;
use crate::explain::explained;
use crate::message::ITEM_CHANGE;
use crate::render::Email;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Sgwatch-Signature";

/// The body posted: the `explain` object of the decision, with the email the handler rendered.
pub fn body(d: &Decision, email: &Email) -> Vec<u8> {
    // Serialising plain data (strings, numbers, lists) cannot fail.
    serde_json::to_vec(&explained(ITEM_CHANGE, d, Some(email))).unwrap_or_default()
}

/// `sha256=<lower-case hex HMAC-SHA256 of body keyed by key>`. HMAC takes a key of any length
/// (RFC 2104), so this is `None` only if the crate ever refused one.
pub fn signature(key: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?").as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
