//! Oversized notifications: the configuration item is in the Config bucket, not in the message.
//!
//! The item is read from the bucket when it is the stack's own; when it is another (an adopted
//! channel's bucket, often in another account or under a KMS key we may not use) or the read
//! fails, the notified item and the one before it are read through AWS Config itself
//! (`GetResourceConfigHistory`, page after page: one call spans at most seven days) and their
//! configurations compared, as a notification's diff would; with no earlier item, the email says
//! the details are unavailable.
//! An older delivery's bare item (no diff) is compared the same way; failing that, the email
//! says the details are unavailable rather than staying silent.

use std::io::Read;
use std::time::SystemTime;

use aws_sdk_config::operation::get_resource_config_history::builders::GetResourceConfigHistoryFluentBuilder;
use aws_sdk_config::types::ConfigurationItem;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_smithy_types::date_time::Format;
use flate2::read::GzDecoder;
use serde_json::{json, Value};

use crate::context::Services;
use crate::core::message::{
    parse_oversized_object, ChangeType, ItemChange, ItemDiff, ItemSummary, Oversized, StateId,
};

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
    #[error("{s3}; nor through AWS Config (config:GetResourceConfigHistory): {config}")]
    Neither { s3: String, config: String },
    #[error("the item of {resource_id} is in a bucket that is not ours ({location}); AWS Config could not give it (check the function role has config:GetResourceConfigHistory): {reason}")]
    Config {
        resource_id: String,
        location: String,
        reason: String,
    },
}

/// The item of an oversized notification, with a diff when one could be had.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub change: ItemChange,
    /// Set when the change is real but what changed could not be read: the email says why.
    pub details_unavailable: Option<String>,
}

/// Reads the full item of an oversized notification: from the stack's bucket, else through
/// AWS Config.
/// `read_until` bounds the walk through AWS Config's history.
pub async fn resolve(
    services: &Services,
    oversized: &Oversized,
    read_until: Option<SystemTime>,
) -> Result<Resolved, FetchError> {
    let summary = &oversized.configuration_item_summary;
    let location = oversized.s3_delivery_summary.bucket_and_key();
    let ours = match (&services.config_bucket, location) {
        (Some(own), Some((bucket, _))) => own == bucket,
        // Which bucket is ours is unknown: try the one named.
        (None, Some(_)) => true,
        (_, None) => false,
    };
    let from_s3 = if ours {
        Some(fetch(&services.s3_reader().await, oversized).await)
    } else {
        None
    };
    match from_s3 {
        Some(Ok(change)) if change.configuration_item_diff.is_some() => Ok(Resolved {
            change,
            details_unavailable: None,
        }),
        // An older delivery: the bare item, no diff.
        Some(Ok(mut bare)) => {
            match from_config(&services.config_reader().await, oversized, read_until).await {
                Ok(resolved) => Ok(resolved),
                Err(reason) => {
                    bare.configuration_item_diff = Some(ItemDiff {
                        change_type: summary.change_type.clone(),
                        ..ItemDiff::default()
                    });
                    Ok(Resolved {
                    change: bare,
                    details_unavailable: Some(format!(
                        "the stored item carries no diff and AWS Config's history could not be read: {reason}"
                    )),
                })
                }
            }
        }
        Some(Err(s3)) => from_config(&services.config_reader().await, oversized, read_until)
            .await
            .map_err(|config| FetchError::Neither {
                s3: s3.to_string(),
                config,
            }),
        None => from_config(&services.config_reader().await, oversized, read_until)
            .await
            .map_err(|reason| FetchError::Config {
                resource_id: summary.resource_id.clone(),
                location: oversized
                    .s3_delivery_summary
                    .s3_bucket_location
                    .clone()
                    .unwrap_or_else(|| "no location".to_owned()),
                reason,
            }),
    }
}

/// Most pages of history read for one item. `GetResourceConfigHistory` spans at most seven days
/// per call, so this covers Config's longest retention (2557 days) with room to spare; the time
/// left in the invocation usually ends the walk first.
const HISTORY_PAGES: usize = 400;

/// The change as AWS Config's history tells it: the item of the notified state and the one
/// before, their configurations compared as the notification's diff would.
///
/// One call spans at most seven days and may return fewer items than asked for, the rest behind
/// `nextToken`; the state before a change is usually older than that, so pages are read until
/// the item before the notified one turns up or the history ends (or `read_until` passes). With
/// no earlier item the change is real but what it was cannot be said: the result says so
/// (`details_unavailable`) rather than carry an empty diff, which would read as "no change".
/// <https://docs.aws.amazon.com/config/latest/APIReference/API_GetResourceConfigHistory.html>
pub async fn from_config(
    client: &aws_sdk_config::Client,
    oversized: &Oversized,
    read_until: Option<SystemTime>,
) -> Result<Resolved, String> {
    let summary = &oversized.configuration_item_summary;
    let notified_at = summary
        .configuration_item_capture_time
        .as_deref()
        .and_then(|at| aws_smithy_types::DateTime::from_str(at, Format::DateTime).ok());
    let request = history_request(client, summary, notified_at);
    let wanted = summary
        .configuration_state_id
        .as_ref()
        .map(StateId::to_string);
    let history = walk_history(request, wanted, notified_at, read_until).await?;
    let Some(current) = history.current else {
        return Err("the resource has no configuration history".to_owned());
    };
    let change_type = summary.change_type.clone().unwrap_or(ChangeType::Update);
    compared(&current, history.previous, change_type, history.cut_short)
}

/// What a walk through the history found.
struct History {
    /// The item of the notified state.
    current: Option<ConfigurationItem>,
    /// The item before it.
    previous: Option<ConfigurationItem>,
    /// How many pages were read when the walk stopped for want of pages or time.
    cut_short: Option<usize>,
}

/// The history request for the summary's resource, newest first, up to the notified time.
fn history_request(
    client: &aws_sdk_config::Client,
    summary: &ItemSummary,
    notified_at: Option<aws_smithy_types::DateTime>,
) -> GetResourceConfigHistoryFluentBuilder {
    let mut request = client
        .get_resource_config_history()
        .resource_type(aws_sdk_config::types::ResourceType::from(
            summary.resource_type.as_str(),
        ))
        .resource_id(&summary.resource_id)
        .limit(2);
    // Items up to the notified one. Whether `laterTime` itself is included is not documented, so
    // a second is added; an item of a later change captured within it is passed over below by
    // its state id.
    if let Some(t) = notified_at {
        request = request.later_time(aws_smithy_types::DateTime::from_secs_and_nanos(
            t.secs() + 1,
            t.subsec_nanos(),
        ));
    }
    request
}

/// Reads pages of history until the item of the `wanted` state and the one before it turn up, the
/// history ends, [`HISTORY_PAGES`] are read or `read_until` passes.
async fn walk_history(
    request: GetResourceConfigHistoryFluentBuilder,
    wanted: Option<String>,
    notified_at: Option<aws_smithy_types::DateTime>,
    read_until: Option<SystemTime>,
) -> Result<History, String> {
    let mut pages = request.into_paginator().send();
    let mut current: Option<ConfigurationItem> = None;
    let mut previous = None;
    let mut read = 0;
    let mut cut_short = None;
    'pages: while previous.is_none() {
        if read == HISTORY_PAGES || read_until.is_some_and(|t| SystemTime::now() >= t) {
            cut_short = Some(read);
            break;
        }
        let Some(page) = pages.next().await else {
            break;
        };
        read += 1;
        let page = page.map_err(|e| {
            use aws_sdk_config::error::ProvideErrorMetadata;
            match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => aws_sdk_config::error::DisplayErrorContext(&e).to_string(),
            }
        })?;
        for item in page.configuration_items.unwrap_or_default() {
            if current.is_some() {
                previous = Some(item);
                continue 'pages;
            }
            match (&wanted, item.configuration_state_id()) {
                (Some(wanted), Some(got)) if wanted != got => {
                    if captured_after(&item, notified_at) {
                        continue;
                    }
                    return Err(format!(
                        "the history has no item of the notified state {wanted} (the latest is {got}; not recorded yet?)"
                    ));
                }
                _ => current = Some(item),
            }
        }
    }
    Ok(History {
        current,
        previous,
        cut_short,
    })
}

/// The change from `previous` to `current` as a notification's diff would give it, read as one;
/// with no `previous` (and not a creation), the result says why the details are unavailable.
fn compared(
    current: &ConfigurationItem,
    previous: Option<ConfigurationItem>,
    change_type: ChangeType,
    cut_short: Option<usize>,
) -> Result<Resolved, String> {
    let current_json = item_json(current)?;
    let mut details_unavailable = None;
    let changed = match previous {
        Some(previous) => json!({"Configuration": {
            "previousValue": item_json(&previous)?["configuration"],
            "updatedValue": current_json["configuration"],
            "changeType": "UPDATE",
        }}),
        // A created resource has nothing before it: its rules are in its configuration.
        None if change_type == ChangeType::Create => json!({}),
        None => {
            details_unavailable = Some(match cut_short {
                Some(pages) => format!(
                    "AWS Config's history was read back {pages} pages (up to seven days each) without reaching the state before this one"
                ),
                None => "AWS Config's history holds no earlier state of the resource to compare with"
                    .to_owned(),
            });
            json!({})
        }
    };
    let notification = json!({
        "configurationItem": current_json,
        "configurationItemDiff": {"changeType": change_type, "changedProperties": changed},
    });
    let change = parse_oversized_object(&notification).map_err(|e| e.to_string())?;
    Ok(Resolved {
        change,
        details_unavailable,
    })
}

/// True when `item` was captured after the notified time: a later change's item, which the
/// second added to `laterTime` may let in.
fn captured_after(
    item: &ConfigurationItem,
    notified_at: Option<aws_smithy_types::DateTime>,
) -> bool {
    match (item.configuration_item_capture_time(), notified_at) {
        (Some(at), Some(notified)) => at.as_nanos() > notified.as_nanos(),
        _ => false,
    }
}

/// A history item in the shape of a notification's `configurationItem`.
fn item_json(i: &ConfigurationItem) -> Result<Value, String> {
    let configuration = match i.configuration() {
        None | Some("") | Some("null") => Value::Null,
        Some(text) => serde_json::from_str(text)
            .map_err(|e| format!("the history item's configuration is not JSON: {e}"))?,
    };
    Ok(json!({
        "resourceType": i.resource_type().map(|t| t.as_str()),
        "resourceId": i.resource_id(),
        "resourceName": i.resource_name(),
        "awsAccountId": i.account_id().unwrap_or_default(),
        "awsRegion": i.aws_region().unwrap_or_default(),
        "ARN": i.arn(),
        "configurationItemStatus": i.configuration_item_status().map(|s| s.as_str()),
        "configurationItemCaptureTime": i
            .configuration_item_capture_time()
            .and_then(|t| t.fmt(Format::DateTime).ok()),
        "configurationStateId": i.configuration_state_id(),
        "configuration": configuration,
        "tags": i.tags(),
    }))
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
        .map_err(|e| {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            s3_error(match (e.code(), e.message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                _ => DisplayErrorContext(&e).to_string(),
            })
        })?;
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
