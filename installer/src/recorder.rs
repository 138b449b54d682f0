//! AWS Config: an account has one recorder and one delivery channel per region. With none,
//! install creates them; with one (Control Tower, an org baseline), install adopts it and never
//! replaces or stops it.

use anyhow::{bail, Context, Result};
use aws_sdk_config::error::DisplayErrorContext;
use aws_sdk_config::types::{
    ConfigurationRecorder, DeliveryChannel, RecordingGroup, RecordingStrategy,
    RecordingStrategyType, ResourceType,
};
use aws_sdk_config::Client;

use crate::aws::Place;

pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";
/// The name install gives the recorder and channel it creates.
pub const NAME: &str = "sgwatch";

/// The recorder and channel found in the region.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub recorder: Option<ConfigurationRecorder>,
    pub recording: bool,
    pub last_status: Option<String>,
    pub channel: Option<DeliveryChannel>,
}

impl Found {
    /// Whether the recorder records security groups (all supported types, or the type listed).
    pub fn records_security_groups(&self) -> bool {
        self.recorder
            .as_ref()
            .and_then(|r| r.recording_group())
            .is_some_and(|g| {
                g.all_supported()
                    || g.resource_types()
                        .iter()
                        .any(|t| t.as_str() == SECURITY_GROUP)
            })
    }
}

fn ctx(what: &str, place: &Place) -> String {
    format!("AWS Config: cannot {what} ({place})")
}

pub async fn find(config: &Client, place: &Place) -> Result<Found> {
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| ctx("list configuration recorders", place))?;
    let recorder = recorders.configuration_recorders().first().cloned();
    let (mut recording, mut last_status) = (false, None);
    if let Some(name) = recorder.as_ref().and_then(|r| r.name()) {
        let status = config
            .describe_configuration_recorder_status()
            .configuration_recorder_names(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
            .with_context(|| ctx("read the recorder status", place))?;
        if let Some(s) = status.configuration_recorders_status().first() {
            recording = s.recording();
            last_status = s.last_status().map(|l| l.as_str().to_owned());
        }
    }
    let channels = config
        .describe_delivery_channels()
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| ctx("list delivery channels", place))?;
    Ok(Found {
        recorder,
        recording,
        last_status,
        channel: channels.delivery_channels().first().cloned(),
    })
}

/// The recording group install creates: security groups plus the extra types.
pub fn recording_group(extra: &[String]) -> RecordingGroup {
    let mut types = vec![ResourceType::from(SECURITY_GROUP)];
    for t in extra {
        if t != SECURITY_GROUP {
            types.push(ResourceType::from(t.as_str()));
        }
    }
    RecordingGroup::builder()
        .all_supported(false)
        .include_global_resource_types(false)
        .set_resource_types(Some(types))
        .recording_strategy(
            RecordingStrategy::builder()
                .use_only(RecordingStrategyType::InclusionByResourceTypes)
                .build(),
        )
        .build()
}

/// Creates recorder + channel and starts recording.
pub async fn create(
    config: &Client,
    place: &Place,
    role_arn: &str,
    bucket: &str,
    topic_arn: &str,
    extra: &[String],
) -> Result<()> {
    let recorder = ConfigurationRecorder::builder()
        .name(NAME)
        .role_arn(role_arn)
        .recording_group(recording_group(extra))
        .build();
    config
        .put_configuration_recorder()
        .configuration_recorder(recorder)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| ctx("create the configuration recorder", place))?;
    put_channel(config, place, bucket, topic_arn).await?;
    config
        .start_configuration_recorder()
        .configuration_recorder_name(NAME)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| ctx("start the configuration recorder", place))?;
    Ok(())
}

pub async fn put_channel(
    config: &Client,
    place: &Place,
    bucket: &str,
    topic_arn: &str,
) -> Result<()> {
    let channel = DeliveryChannel::builder()
        .name(NAME)
        .s3_bucket_name(bucket)
        .sns_topic_arn(topic_arn)
        .build();
    config
        .put_delivery_channel()
        .delivery_channel(channel)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| ctx("create the delivery channel", place))?;
    Ok(())
}

pub async fn start(config: &Client, place: &Place, name: &str) -> Result<()> {
    config
        .start_configuration_recorder()
        .configuration_recorder_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| ctx("start the configuration recorder", place))?;
    Ok(())
}

/// Adds security groups to an adopted recorder's list of types (`--extend-recorder`).
pub async fn extend(config: &Client, place: &Place, found: &Found) -> Result<Vec<String>> {
    let Some(recorder) = &found.recorder else {
        bail!("no recorder to extend")
    };
    let Some(group) = recorder.recording_group() else {
        bail!("the recorder has no recording group")
    };
    let mut types: Vec<ResourceType> = group.resource_types().to_vec();
    types.push(ResourceType::from(SECURITY_GROUP));
    let new_group = RecordingGroup::builder()
        .all_supported(group.all_supported())
        .include_global_resource_types(group.include_global_resource_types())
        .set_resource_types(Some(types))
        .set_exclusion_by_resource_types(group.exclusion_by_resource_types().cloned())
        .set_recording_strategy(group.recording_strategy().cloned())
        .build();
    let updated = ConfigurationRecorder::builder()
        .set_name(recorder.name().map(str::to_owned))
        .set_role_arn(recorder.role_arn().map(str::to_owned))
        .recording_group(new_group)
        .set_recording_mode(recorder.recording_mode().cloned())
        .build();
    config
        .put_configuration_recorder()
        .configuration_recorder(updated)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(&e)))
        .with_context(|| ctx("extend the configuration recorder", place))?;
    Ok(vec![SECURITY_GROUP.to_owned()])
}

/// Stops and deletes the recorder and channel install created. Missing ones are success.
pub async fn delete_created(
    config: &Client,
    place: &Place,
    recorder: &str,
    channel: &str,
) -> Result<()> {
    let _ = config
        .stop_configuration_recorder()
        .configuration_recorder_name(recorder)
        .send()
        .await;
    if let Err(e) = config
        .delete_delivery_channel()
        .delivery_channel_name(channel)
        .send()
        .await
    {
        let text = DisplayErrorContext(&e).to_string();
        if !text.contains("NoSuchDeliveryChannel") {
            return Err(anyhow::anyhow!(text))
                .with_context(|| ctx("delete the delivery channel", place));
        }
    }
    if let Err(e) = config
        .delete_configuration_recorder()
        .configuration_recorder_name(recorder)
        .send()
        .await
    {
        let text = DisplayErrorContext(&e).to_string();
        if !text.contains("NoSuchConfigurationRecorder") {
            return Err(anyhow::anyhow!(text))
                .with_context(|| ctx("delete the configuration recorder", place));
        }
    }
    Ok(())
}
