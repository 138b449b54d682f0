//! The artifacts bucket (one per account and region, `sgwatch-artifacts-{account}-{region}`): the
//! handler zip, keyed by its sha256, and the install record (`state/{stack}.json`), which says what
//! install created versus adopted so that teardown removes only its own.
//!
//! The name is predictable, so anyone could create it first in an account of their own. Every
//! call to a bucket here therefore names the expected owner (`ExpectedBucketOwner`, the caller's
//! account): S3 refuses the request with 403 when another account owns the bucket, and sgwatch
//! never uploads its handler into, or reads its install record from, someone else's bucket
//! (Amazon S3 user guide, "Verifying bucket ownership with bucket owner condition").

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, Delete, ObjectIdentifier,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
};
use serde::{Deserialize, Serialize};

use crate::aws::Place;
use crate::deploy::package::Artifact;

/// What went wrong with a bucket or object; names it, the account and the region.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    #[error("{action} s3://{bucket}{key} in {place} failed: {detail}")]
    Aws {
        action: &'static str,
        bucket: String,
        /// `/KEY`, or empty for the bucket itself.
        key: String,
        place: Place,
        detail: String,
    },
    #[error("cannot read {what}: {source}")]
    Read {
        what: String,
        source: aws_sdk_s3::primitives::ByteStreamError,
    },
    #[error(
        "s3://{bucket} is not a bucket of {place} ({detail}): another account owns it, or these \
         credentials may not list it. sgwatch uses this name for its artifacts in this account \
         and region and will not use a bucket another account owns; have its owner delete it, \
         or check the credentials' s3:ListBucket on it"
    )]
    NotOurs {
        bucket: String,
        place: Place,
        detail: String,
    },
    #[error(
        "the install record s3://{bucket}/{key} in {place} is not valid ({source}); delete it \
         only if you know what install created there"
    )]
    BadRecord {
        bucket: String,
        key: String,
        place: Place,
        source: serde_json::Error,
    },
}

fn aws_error<E, R>(
    action: &'static str,
    bucket: &str,
    key: Option<&str>,
    place: &Place,
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> ArtifactsError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    ArtifactsError::Aws {
        action,
        bucket: bucket.to_owned(),
        key: key.map(|k| format!("/{k}")).unwrap_or_default(),
        place: place.clone(),
        detail: crate::aws::error_text(err),
    }
}

/// [`aws_error`] for a call that named the caller's account as the bucket's expected owner: S3's
/// 403 there means the bucket is another account's (or the credentials lack the permission).
fn owned_error<E>(
    action: &'static str,
    bucket: &str,
    key: Option<&str>,
    place: &Place,
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> ArtifactsError
where
    E: std::error::Error + Send + Sync + 'static,
{
    if err
        .raw_response()
        .is_some_and(|r| r.status().as_u16() == 403)
    {
        return ArtifactsError::NotOurs {
            bucket: bucket.to_owned(),
            place: place.clone(),
            detail: format!(
                "S3 answered {} when {action} it",
                crate::aws::error_text(err)
            ),
        };
    }
    aws_error(action, bucket, key, place, err)
}

/// `sgwatch-artifacts-{account}-{region}`.
pub fn bucket_name(place: &Place) -> String {
    format!("sgwatch-artifacts-{}-{}", place.account, place.region)
}

/// Whether install created a recorder or channel, or found it and adopted it; written as
/// `created`, `adopted`, or empty when the record does not say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    #[default]
    #[serde(rename = "")]
    Unknown,
    Created,
    Adopted,
}

impl std::fmt::Display for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ownership::Unknown => "",
            Ownership::Created => "created",
            Ownership::Adopted => "adopted",
        })
    }
}

/// What install did outside the stack, so teardown removes only its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallState {
    pub stack_name: String,
    pub recorder: Ownership,
    pub recorder_name: String,
    pub channel: Ownership,
    pub channel_name: String,
    /// Set when install subscribed the handler to an adopted channel's topic.
    pub adopted_topic_arn: Option<String>,
    pub adopted_subscription_arn: Option<String>,
    pub adopted_permission_sid: Option<String>,
    /// The stack's Config bucket, kept by the stack on deletion and removed by teardown.
    pub config_bucket: Option<String>,
    /// Resource types install added to an adopted recorder (`--extend-recorder`).
    pub extended_types: Vec<String>,
}

fn state_key(stack: &str) -> String {
    format!("state/{stack}.json")
}

/// S3 answers HEAD with a bare 404 (no error code), so "not found" is read from the status too.
fn is_not_found<E: ProvideErrorMetadata>(
    err: &aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> bool {
    matches!(err.code(), Some("NotFound" | "NoSuchBucket" | "NoSuchKey"))
        || err
            .raw_response()
            .is_some_and(|r| r.status().as_u16() == 404)
}

/// Whether `bucket` exists (any owner: a delivery channel's bucket may be another account's).
pub async fn bucket_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    place: &Place,
) -> Result<bool, ArtifactsError> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(aws_error("checking", bucket, None, place, &e)),
    }
}

/// Whether `bucket`, one sgwatch makes, exists as a bucket of the caller's account. One that
/// another account owns is an error ([`ArtifactsError::NotOurs`]), never "exists".
async fn own_bucket_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    place: &Place,
) -> Result<bool, ArtifactsError> {
    match s3
        .head_bucket()
        .bucket(bucket)
        .expected_bucket_owner(&place.account)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        // HEAD answers carry no error code: 403 is all S3 says about an owner mismatch.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            Err(ArtifactsError::NotOurs {
                bucket: bucket.to_owned(),
                place: place.clone(),
                detail: format!(
                    "S3 answered 403 Forbidden to a request expecting owner {}",
                    place.account
                ),
            })
        }
        Err(e) => Err(owned_error("checking", bucket, None, place, &e)),
    }
}

/// Creates the artifacts bucket (public access blocked, encrypted) unless it exists. Returns
/// whether it did.
pub async fn ensure_bucket(s3: &aws_sdk_s3::Client, place: &Place) -> Result<bool, ArtifactsError> {
    let bucket = bucket_name(place);
    if own_bucket_exists(s3, &bucket, place).await? {
        return Ok(false);
    }
    let mut create = s3.create_bucket().bucket(&bucket);
    // us-east-1 is the one region that takes no location constraint.
    if place.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(place.region.as_str()))
                .build(),
        );
    }
    match create.send().await {
        Ok(_) => {}
        // Made by a concurrent install in the same account, or by an earlier interrupted run.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) => {}
        // Made between our check and now by another account (CreateBucket takes no expected
        // owner: this answer is how S3 says the name is someone else's).
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_exists()) =>
        {
            return Err(ArtifactsError::NotOurs {
                bucket,
                place: place.clone(),
                detail: crate::aws::error_text(&e),
            })
        }
        Err(e) => return Err(owned_error("creating", &bucket, None, place, &e)),
    }
    s3.put_public_access_block()
        .bucket(&bucket)
        .expected_bucket_owner(&place.account)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .map_err(|e| owned_error("blocking public access to", &bucket, None, place, &e))?;
    let sse = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .expect("the algorithm, the one required field, is set");
    let encryption = ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(sse)
                .build(),
        )
        .build()
        .expect("the rules, the one required field, are set");
    s3.put_bucket_encryption()
        .bucket(&bucket)
        .expected_bucket_owner(&place.account)
        .server_side_encryption_configuration(encryption)
        .send()
        .await
        .map_err(|e| owned_error("encrypting", &bucket, None, place, &e))?;
    Ok(true)
}

pub async fn object_exists(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    place: &Place,
) -> Result<bool, ArtifactsError> {
    match s3
        .head_object()
        .bucket(bucket)
        .expected_bucket_owner(&place.account)
        .key(key)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(owned_error("checking", bucket, Some(key), place, &e)),
    }
}

/// Uploads the handler zip unless an object with its hash is already there. Returns whether it did.
pub async fn upload(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    artifact: &Artifact,
) -> Result<bool, ArtifactsError> {
    let bucket = bucket_name(place);
    let key = artifact.key();
    if object_exists(s3, &bucket, &key, place).await? {
        return Ok(false);
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&artifact.path)
        .await
        .map_err(|source| ArtifactsError::Read {
            what: format!("the handler zip {}", artifact.path.display()),
            source,
        })?;
    s3.put_object()
        .bucket(&bucket)
        .expected_bucket_owner(&place.account)
        .key(&key)
        .body(body)
        .send()
        .await
        .map_err(|e| owned_error("uploading the handler to", &bucket, Some(&key), place, &e))?;
    Ok(true)
}

/// The install record of `stack`, if there is one.
pub async fn read_state(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    stack: &str,
) -> Result<Option<InstallState>, ArtifactsError> {
    let bucket = bucket_name(place);
    let key = state_key(stack);
    let out = match s3
        .get_object()
        .bucket(&bucket)
        .expected_bucket_owner(&place.account)
        .key(&key)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(owned_error("reading", &bucket, Some(&key), place, &e)),
    };
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|source| ArtifactsError::Read {
            what: format!("s3://{bucket}/{key} in {place}"),
            source,
        })?
        .into_bytes();
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| ArtifactsError::BadRecord {
            bucket,
            key,
            place: place.clone(),
            source,
        })
}

pub async fn write_state(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    state: &InstallState,
) -> Result<(), ArtifactsError> {
    let bucket = bucket_name(place);
    let key = state_key(&state.stack_name);
    let body = serde_json::to_vec_pretty(state).expect("the install record serialises");
    s3.put_object()
        .bucket(&bucket)
        .expected_bucket_owner(&place.account)
        .key(&key)
        .body(body.into())
        .content_type("application/json")
        .send()
        .await
        .map_err(|e| {
            owned_error(
                "writing the install record to",
                &bucket,
                Some(&key),
                place,
                &e,
            )
        })?;
    Ok(())
}

/// Removes the install record of `stack`; returns the stacks whose records remain (other
/// installs in the same account and region, which keep the bucket).
pub async fn delete_state(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    stack: &str,
) -> Result<Vec<String>, ArtifactsError> {
    let bucket = bucket_name(place);
    if !own_bucket_exists(s3, &bucket, place).await? {
        return Ok(Vec::new());
    }
    let key = state_key(stack);
    s3.delete_object()
        .bucket(&bucket)
        .expected_bucket_owner(&place.account)
        .key(&key)
        .send()
        .await
        .map_err(|e| owned_error("deleting", &bucket, Some(&key), place, &e))?;
    let listed = s3
        .list_objects_v2()
        .bucket(&bucket)
        .expected_bucket_owner(&place.account)
        .prefix("state/")
        .send()
        .await
        .map_err(|e| owned_error("listing the install records in", &bucket, None, place, &e))?;
    Ok(listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter_map(|k| k.strip_prefix("state/")?.strip_suffix(".json"))
        .map(str::to_owned)
        .collect())
}

/// The next objects to delete: versions and delete markers first (a versioned bucket keeps every
/// overwritten object), then, for emulators and unversioned buckets that list no versions, the
/// plain listing. Empty when the bucket is.
async fn next_batch(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    place: &Place,
) -> Result<Vec<ObjectIdentifier>, ArtifactsError> {
    let versions = s3
        .list_object_versions()
        .bucket(bucket)
        .expected_bucket_owner(&place.account)
        .send()
        .await
        .map_err(|e| owned_error("listing the object versions of", bucket, None, place, &e))?;
    let mut batch: Vec<ObjectIdentifier> = versions
        .versions()
        .iter()
        .filter_map(|v| identifier(v.key()?, v.version_id()))
        .chain(
            versions
                .delete_markers()
                .iter()
                .filter_map(|m| identifier(m.key()?, m.version_id())),
        )
        .collect();
    if batch.is_empty() {
        let listed = s3
            .list_objects_v2()
            .bucket(bucket)
            .expected_bucket_owner(&place.account)
            .send()
            .await
            .map_err(|e| owned_error("listing the objects of", bucket, None, place, &e))?;
        batch = listed
            .contents()
            .iter()
            .filter_map(|o| identifier(o.key()?, None))
            .collect();
    }
    Ok(batch)
}

/// Deletes one batch of objects (one request).
async fn delete_batch(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    place: &Place,
    batch: Vec<ObjectIdentifier>,
) -> Result<(), ArtifactsError> {
    let delete = Delete::builder()
        .set_objects(Some(batch))
        .quiet(true)
        .build()
        .expect("the objects, the one required field, are set");
    let out = s3
        .delete_objects()
        .bucket(bucket)
        .expected_bucket_owner(&place.account)
        .delete(delete)
        .send()
        .await
        .map_err(|e| owned_error("emptying", bucket, None, place, &e))?;
    if let Some(failed) = out.errors().first() {
        return Err(ArtifactsError::Aws {
            action: "emptying",
            bucket: bucket.to_owned(),
            key: format!("/{}", failed.key().unwrap_or_default()),
            place: place.clone(),
            detail: format!(
                "{}: {}",
                failed.code().unwrap_or("error"),
                failed.message().unwrap_or_default()
            ),
        });
    }
    Ok(())
}

/// Deletes every object version and delete marker in `bucket`, then the bucket. A missing bucket
/// is success (`false`).
pub async fn empty_and_delete(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    place: &Place,
) -> Result<bool, ArtifactsError> {
    if !own_bucket_exists(s3, bucket, place).await? {
        return Ok(false);
    }
    loop {
        let batch = next_batch(s3, bucket, place).await?;
        if batch.is_empty() {
            break;
        }
        delete_batch(s3, bucket, place, batch).await?;
    }
    match s3
        .delete_bucket()
        .bucket(bucket)
        .expected_bucket_owner(&place.account)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(owned_error("deleting", bucket, None, place, &e)),
    }
}

fn identifier(key: &str, version: Option<&str>) -> Option<ObjectIdentifier> {
    ObjectIdentifier::builder()
        .key(key)
        // "null" is the version id S3 gives objects written before versioning was enabled.
        .set_version_id(version.filter(|v| *v != "null").map(str::to_owned))
        .build()
        .ok()
}
