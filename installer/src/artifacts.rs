//! The artifacts bucket (one per account and region): the handler zip, keyed by its sha256, and
//! the record of what install created versus adopted, which teardown reads.

use anyhow::{Context, Result};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule,
};
use serde::{Deserialize, Serialize};

use crate::aws::Place;
use crate::package::Artifact;

/// `sgwatch-artifacts-{account}-{region}`.
pub fn bucket_name(place: &Place) -> String {
    format!("sgwatch-artifacts-{}-{}", place.account, place.region)
}

/// What install did outside the stack, so teardown removes only its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallState {
    pub stack_name: String,
    /// `created` or `adopted`.
    pub recorder: String,
    pub recorder_name: String,
    pub channel: String,
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

pub async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool> {
    match s3.head_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let not_found = e.as_service_error().is_some_and(|s| s.is_not_found())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
            if not_found {
                Ok(false)
            } else {
                Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                    .with_context(|| format!("cannot check bucket {bucket}"))
            }
        }
    }
}

/// Creates the artifacts bucket (private, encrypted) unless it exists. Returns whether it did.
pub async fn ensure_bucket(s3: &aws_sdk_s3::Client, place: &Place) -> Result<bool> {
    let bucket = bucket_name(place);
    if bucket_exists(s3, &bucket).await? {
        return Ok(false);
    }
    let mut create = s3.create_bucket().bucket(&bucket);
    if place.region != "us-east-1" {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(place.region.as_str()))
                .build(),
        );
    }
    let ctx = || format!("cannot create the artifacts bucket {bucket} ({place})");
    create
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(ctx)?;
    s3.put_public_access_block()
        .bucket(&bucket)
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
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(ctx)?;
    s3.put_bucket_encryption()
        .bucket(&bucket)
        .server_side_encryption_configuration(
            ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(
                            ServerSideEncryptionByDefault::builder()
                                .sse_algorithm(ServerSideEncryption::Aes256)
                                .build()
                                .context("encryption rule")?,
                        )
                        .build(),
                )
                .build()
                .context("encryption configuration")?,
        )
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(ctx)?;
    Ok(true)
}

pub async fn object_exists(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<bool> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(_) => Ok(true),
        Err(e) => {
            let not_found = e.as_service_error().is_some_and(|s| s.is_not_found())
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
            if not_found {
                Ok(false)
            } else {
                Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
                    .with_context(|| format!("cannot check s3://{bucket}/{key}"))
            }
        }
    }
}

/// Uploads the handler zip unless an object with its hash is already there. Returns whether it did.
pub async fn upload(s3: &aws_sdk_s3::Client, place: &Place, artifact: &Artifact) -> Result<bool> {
    let bucket = bucket_name(place);
    let key = artifact.key();
    if object_exists(s3, &bucket, &key).await? {
        return Ok(false);
    }
    let body = aws_sdk_s3::primitives::ByteStream::from_path(&artifact.path)
        .await
        .with_context(|| format!("cannot read {}", artifact.path.display()))?;
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot upload the handler to s3://{bucket}/{key} ({place})"))?;
    Ok(true)
}

pub async fn read_state(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    stack: &str,
) -> Result<Option<InstallState>> {
    let bucket = bucket_name(place);
    if !bucket_exists(s3, &bucket).await? {
        return Ok(None);
    }
    match s3
        .get_object()
        .bucket(&bucket)
        .key(state_key(stack))
        .send()
        .await
    {
        Ok(out) => {
            let bytes = out
                .body
                .collect()
                .await
                .context("reading the install record")?
                .into_bytes();
            Ok(Some(
                serde_json::from_slice(&bytes).context("the install record is not valid JSON")?,
            ))
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| format!("cannot read the install record in {bucket}")),
    }
}

pub async fn write_state(
    s3: &aws_sdk_s3::Client,
    place: &Place,
    state: &InstallState,
) -> Result<()> {
    let bucket = bucket_name(place);
    s3.put_object()
        .bucket(&bucket)
        .key(state_key(&state.stack_name))
        .body(serde_json::to_vec_pretty(state)?.into())
        .content_type("application/json")
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot write the install record to {bucket} ({place})"))?;
    Ok(())
}

/// Deletes every object version in `bucket`, then the bucket. A missing bucket is success.
pub async fn empty_and_delete(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool> {
    if !bucket_exists(s3, bucket).await? {
        return Ok(false);
    }
    let err = |e: String| anyhow::anyhow!(e).context(format!("cannot empty bucket {bucket}"));
    loop {
        let versions = s3
            .list_object_versions()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(&e).to_string()))?;
        let mut targets: Vec<(String, Option<String>)> = versions
            .versions()
            .iter()
            .filter_map(|v| Some((v.key()?.to_owned(), v.version_id().map(str::to_owned))))
            .collect();
        targets.extend(
            versions
                .delete_markers()
                .iter()
                .filter_map(|v| Some((v.key()?.to_owned(), v.version_id().map(str::to_owned)))),
        );
        if targets.is_empty() {
            // Unversioned buckets: plain listing.
            let listed = s3
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .map_err(|e| err(DisplayErrorContext(&e).to_string()))?;
            targets = listed
                .contents()
                .iter()
                .filter_map(|o| Some((o.key()?.to_owned(), None)))
                .collect();
        }
        if targets.is_empty() {
            break;
        }
        for (key, version) in targets {
            s3.delete_object()
                .bucket(bucket)
                .key(&key)
                .set_version_id(version.filter(|v| v != "null"))
                .send()
                .await
                .map_err(|e| err(DisplayErrorContext(&e).to_string()))?;
        }
    }
    s3.delete_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| format!("cannot delete bucket {bucket}"))?;
    Ok(true)
}
