//! The signed webhook: the decision as `sgwatch explain` prints it (one JSON object), with three
//! headers:
//! - `X-Sgwatch-Timestamp`: when the post was signed, in Unix seconds;
//! - `X-Sgwatch-Signature: sha256=<hex>`: the HMAC-SHA256, keyed by the destination's key
//!   parameter, of the timestamp, a `.` and the exact body bytes. The receiver checks the post
//!   came from this stack and refuses one signed too long ago: a captured post cannot be
//!   replayed later, and the timestamp cannot be changed without breaking the signature;
//! - `X-Sgwatch-Delivery`: the delivery ledger's key and the destination's name, the same on
//!   every retry of one notification to one destination, so a receiver can drop a repeat.
//!
//! There is no signature over the body alone: it would verify forever.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::core::decide::Decision;
use crate::core::explain::explained;
use crate::core::message::ITEM_CHANGE;
use crate::core::render::Email;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Sgwatch-Signature";
/// The header carrying when the post was signed (Unix seconds), which the signature covers.
pub const TIMESTAMP_HEADER: &str = "X-Sgwatch-Timestamp";
/// The header naming the delivery: the same on every retry of one notification to one destination.
pub const DELIVERY_HEADER: &str = "X-Sgwatch-Delivery";

/// The body posted: the `explain` object of the decision, with the email the handler rendered.
/// Every string shows the control and format characters it holds as `<U+XXXX>`
/// ([`crate::core::visible`]): a receiver that displays a value cannot be made to display it reordered.
pub fn body(d: &Decision, email: &Email) -> Vec<u8> {
    // Serialising plain data (strings, numbers, lists) cannot fail.
    let mut v = serde_json::to_value(explained(ITEM_CHANGE, d, Some(email))).unwrap_or_default();
    crate::core::visible::visible_json(&mut v);
    serde_json::to_vec(&v).unwrap_or_default()
}

/// `sha256=<lower-case hex HMAC-SHA256 of "{timestamp}.{body}" keyed by key>`. HMAC takes a key
/// of any length (RFC 2104), so this is `None` only if the crate ever refused one.
pub fn signature(key: &[u8], timestamp: &str, body: &[u8]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The delivery id: `{ledger key}/{destination}`, kept to what a header value may hold (visible
/// ASCII; anything else becomes `_`).
pub fn delivery(ledger_key: &str, destination: &str) -> String {
    format!("{ledger_key}/{destination}")
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

/// The headers of a post of `body` signed at `timestamp` (Unix seconds) with `key`.
pub fn headers(
    key: &[u8],
    timestamp: u64,
    delivery: &str,
    body: &[u8],
) -> Option<Vec<(&'static str, String)>> {
    let timestamp = timestamp.to_string();
    let signature = signature(key, &timestamp, body)?;
    Some(vec![
        (TIMESTAMP_HEADER, timestamp),
        (SIGNATURE_HEADER, signature),
        (DELIVERY_HEADER, delivery.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_hmac_of_timestamp_dot_body() {
        let (ts, body) = ("1764930000", br#"{"severity":"critical"}"#.as_slice());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1764930000.{\"severity\":\"critical\"}");
        assert_eq!(
            signature(b"Jefe", ts, body).unwrap(),
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        );
        // The same body at another time: another signature, so a captured post cannot be re-dated.
        assert_ne!(
            signature(b"Jefe", ts, body),
            signature(b"Jefe", "1764930301", body)
        );
        // The HMAC itself: RFC 4231, test case 2 (key "Jefe").
        let mut rfc = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        rfc.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(rfc.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn three_headers_and_a_header_safe_delivery_id() {
        let h = headers(
            b"k",
            1764930000,
            &delivery("123/us-east-1/sg-1/7", "siem"),
            b"{}",
        )
        .unwrap();
        let names: Vec<&str> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, [TIMESTAMP_HEADER, SIGNATURE_HEADER, DELIVERY_HEADER]);
        assert_eq!(h[0].1, "1764930000");
        assert_eq!(h[2].1, "123/us-east-1/sg-1/7/siem");
        assert_eq!(delivery("a b\u{202e}\r\n", "x"), "a_b___/x");
    }
}
