//! Oversized notifications: the configuration item is in the Config bucket, not in the message.

use std::io::Read;

use aws_sdk_s3::error::DisplayErrorContext;
use flate2::read::GzDecoder;

use crate::message::{parse_oversized_object, ItemChange, Oversized};

/// Why the item could not be read from S3. Every variant fails the invocation, so the event is
/// retried and, failing that, parked in the failure queue: an oversized change is never dropped.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "the oversized notification for {resource_id} has no usable S3 location ({location:?})"
    )]
    NoLocation {
        resource_id: String,
        location: Option<String>,
    },
    #[error("cannot read s3://{bucket}/{key}: {reason}; check the function role has s3:GetObject on the Config bucket")]
    S3 {
        bucket: String,
        key: String,
        reason: String,
    },
    #[error("s3://{bucket}/{key} is not a readable configuration item: {reason}")]
    Content {
        bucket: String,
        key: String,
        reason: String,
    },
}

/// Fetches and reads the full item of an oversized notification.
pub async fn fetch(
    client: &aws_sdk_s3::Client,
    oversized: &Oversized,
) -> Result<ItemChange, FetchError> {
    let summary = &oversized.s3_delivery_summary;
    let Some((bucket, key)) = summary.bucket_and_key() else {
        return Err(FetchError::NoLocation {
            resource_id: oversized.configuration_item_summary.resource_id.clone(),
            location: summary.s3_bucket_location.clone(),
        });
    };
    let s3_error = |reason: String| FetchError::S3 {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let object = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| s3_error(DisplayErrorContext(&e).to_string()))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| s3_error(e.to_string()))?
        .into_bytes();
    read_object(&bytes).map_err(|reason| FetchError::Content {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        reason,
    })
}

/// Reads the object's bytes: gzip (as Config delivers it) or plain JSON.
pub fn read_object(bytes: &[u8]) -> Result<ItemChange, String> {
    let json = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format!("not valid gzip: {e}"))?;
        out
    } else {
        bytes.to_vec()
    };
    let value: serde_json::Value =
        serde_json::from_slice(&json).map_err(|e| format!("not JSON: {e}"))?;
    parse_oversized_object(&value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    #[test]
    fn reads_gzip_and_plain_objects() {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let plain = std::fs::read(path).unwrap();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        for bytes in [plain.as_slice(), gz.as_slice()] {
            let change = read_object(bytes).unwrap();
            assert_eq!(
                change.configuration_item.resource_id,
                "sg-0123456789abcdef0"
            );
            assert!(change.configuration_item_diff.is_some());
        }
        assert!(read_object(b"\x1f\x8bnot gzip")
            .unwrap_err()
            .contains("gzip"));
        assert!(read_object(b"{}").is_err());
    }
}
