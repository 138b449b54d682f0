//! AWS Config: an account has one recorder and one delivery channel per region. With none,
//! install creates them; with one (Control Tower, an org baseline), install adopts it: it never
//! replaces or stops it, and changes it only when asked (`--extend-recorder`).
//!
//! What to do is decided by [`steps`], a pure function of what is there, what install owns and
//! what it wants, so plan and install agree and a re-run with nothing to do does nothing.

use std::collections::BTreeSet;

use aws_sdk_config::error::ProvideErrorMetadata;
use aws_sdk_config::types::{
    ConfigurationRecorder, DeliveryChannel, ExclusionByResourceTypes, RecordingGroup,
    RecordingStrategy, RecordingStrategyType, ResourceType,
};
use aws_sdk_config::Client;

use crate::aws::Place;

pub const SECURITY_GROUP: &str = "AWS::EC2::SecurityGroup";
/// The name install gives the recorder and channel it creates.
pub const NAME: &str = "sgwatch";

/// What went wrong with Config; each variant names the account and region and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    #[error("AWS Config: {action} in {place} failed: {detail}")]
    Aws {
        action: String,
        place: Place,
        detail: String,
    },
    #[error(
        "the existing AWS Config recorder {name:?} in {place} does not record \
         AWS::EC2::SecurityGroup, so sgwatch would never hear of a change. Add the type to it \
         yourself, or run install again with --extend-recorder to let sgwatch add it (the \
         recorder is otherwise left as it is)"
    )]
    NoSecurityGroups { name: String, place: Place },
    #[error(
        "the AWS Config recorder {name:?} in {place} is AWS Control Tower's, and Control Tower's \
         controls forbid changing it (the preventive control \"Disallow configuration changes to \
         AWS Config\", AWS-GR_CONFIG_CHANGE_PROHIBITED): --extend-recorder cannot add \
         AWS::EC2::SecurityGroup to it. Have the type recorded through Control Tower (its \
         landing zone's AWS Config settings), then run install again without --extend-recorder"
    )]
    ControlTower { name: String, place: Place },
}

fn aws_error<E, R>(
    action: impl Into<String>,
    place: &Place,
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> RecorderError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    RecorderError::Aws {
        action: action.into(),
        place: place.clone(),
        detail: crate::aws::error_text(err),
    }
}

/// The recorder and channel found in the region.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub recorder: Option<ConfigurationRecorder>,
    pub recording: bool,
    pub last_status: Option<String>,
    pub channel: Option<DeliveryChannel>,
}

impl Found {
    /// Whether the recorder records security groups: all supported types (less exclusions), or
    /// the type listed.
    pub fn records_security_groups(&self) -> bool {
        self.recorder
            .as_ref()
            .is_some_and(sgwatch_handler::sight::records_security_groups)
    }

    /// The types the recorder lists (empty when it records all supported types).
    pub fn recorded_types(&self) -> BTreeSet<String> {
        self.recorder
            .as_ref()
            .and_then(|r| r.recording_group())
            .map(|g| {
                g.resource_types()
                    .iter()
                    .map(|t| t.as_str().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn recorder_name(&self) -> Option<&str> {
        self.recorder.as_ref().and_then(|r| r.name())
    }

    /// Why security groups are recorded only once a day, if they are: the recorder's
    /// `recordingMode` is DAILY with no CONTINUOUS override for the type, or an override sets the
    /// type to DAILY. Daily recording reports a change only at the next daily capture, up to 24
    /// hours later ("Recording frequency", AWS Config developer guide).
    pub fn daily_security_groups(&self) -> Option<String> {
        self.recorder
            .as_ref()
            .and_then(sgwatch_handler::sight::daily_security_groups)
    }

    /// Whether the recorder is AWS Control Tower's: Control Tower names its recorder
    /// `aws-controltower-BaselineConfigRecorder` and its role `aws-controltower-ConfigRecorderRole`
    /// ("Resources created in shared accounts", AWS Control Tower user guide).
    pub fn is_control_towers(&self) -> bool {
        self.recorder.as_ref().is_some_and(|r| {
            r.name().is_some_and(|n| n.starts_with("aws-controltower-"))
                || r.role_arn()
                    .is_some_and(|a| a.contains(":role/aws-controltower-"))
        })
    }

    pub fn channel_name(&self) -> Option<&str> {
        self.channel.as_ref().and_then(|c| c.name())
    }
}

/// Reads the region's recorder (with its status) and delivery channel.
pub async fn find(config: &Client, place: &Place) -> Result<Found, RecorderError> {
    let recorders = config
        .describe_configuration_recorders()
        .send()
        .await
        .map_err(|e| aws_error("listing configuration recorders", place, &e))?;
    let recorder = recorders.configuration_recorders().first().cloned();
    let (mut recording, mut last_status) = (false, None);
    if let Some(name) = recorder.as_ref().and_then(|r| r.name()) {
        let status = config
            .describe_configuration_recorder_status()
            .configuration_recorder_names(name)
            .send()
            .await
            .map_err(|e| aws_error(format!("reading the status of recorder {name}"), place, &e))?;
        if let Some(s) = status.configuration_recorders_status().first() {
            recording = s.recording();
            last_status = s.last_status().map(|l| l.as_str().to_owned());
        }
    }
    let channels = config
        .describe_delivery_channels()
        .send()
        .await
        .map_err(|e| aws_error("listing delivery channels", place, &e))?;
    Ok(Found {
        recorder,
        recording,
        last_status,
        channel: channels.delivery_channels().first().cloned(),
    })
}

/// How Config should look after install. The stack's outputs are `None` while the stack does not
/// exist yet (plan on a fresh account).
#[derive(Debug, Clone, Default)]
pub struct Want {
    /// Security groups first, then the `--resource-types`.
    pub types: Vec<String>,
    pub role_arn: Option<String>,
    pub bucket: Option<String>,
    pub topic: Option<String>,
    /// `--extend-recorder`: may add security groups to an adopted recorder.
    pub extend: bool,
    /// The channel delivers to the bucket only (a spoke's: the hub hears Config's events through
    /// EventBridge, not a topic).
    pub bucket_only: bool,
}

/// Which of the found recorder and channel install made (as its record says).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owned {
    pub recorder: bool,
    pub channel: bool,
}

/// One change to Config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    CreateRecorder,
    /// Ours, but recording other types or with another role than wanted.
    UpdateRecorder {
        name: String,
    },
    /// Adopted and not recording security groups; `--extend-recorder` adds them.
    ExtendRecorder {
        name: String,
    },
    CreateChannel,
    /// Ours, but pointing at another bucket or topic than the stack's.
    UpdateChannel {
        name: String,
    },
    /// Ours and stopped. (An adopted recorder is never started or stopped.)
    StartRecorder {
        name: String,
    },
}

impl Step {
    /// What the step does, for plan and install's report.
    pub fn describe(&self, want: &Want) -> String {
        let or_stack = |v: &Option<String>, what: &str| {
            v.clone().unwrap_or_else(|| format!("the stack's {what}"))
        };
        let topic = if want.bucket_only {
            "no topic".to_owned()
        } else {
            or_stack(&want.topic, "Topic")
        };
        match self {
            Step::CreateRecorder => format!(
                "create configuration recorder {NAME} recording {} (role {})",
                want.types.join(", "),
                or_stack(&want.role_arn, "ConfigRole")
            ),
            Step::UpdateRecorder { name } => format!(
                "update configuration recorder {name}: record {} (role {})",
                want.types.join(", "),
                or_stack(&want.role_arn, "ConfigRole")
            ),
            Step::ExtendRecorder { name } => {
                format!("add {SECURITY_GROUP} to the types adopted recorder {name} records")
            }
            Step::CreateChannel => format!(
                "create delivery channel {NAME} → s3://{} and {topic}",
                or_stack(&want.bucket, "ConfigBucket"),
            ),
            Step::UpdateChannel { name } => format!(
                "point delivery channel {name} at s3://{} and {topic}",
                or_stack(&want.bucket, "ConfigBucket"),
            ),
            Step::StartRecorder { name } => format!("start recording with recorder {name}"),
        }
    }
}

/// The Config changes install makes, in the order they must be made (a channel needs a recorder;
/// recording starts last). Empty when Config is as install leaves it.
pub fn steps(
    found: &Found,
    owned: Owned,
    want: &Want,
    place: &Place,
) -> Result<Vec<Step>, RecorderError> {
    let mut out = Vec::new();
    let recorder_ours = match found.recorder_name() {
        None => {
            out.push(Step::CreateRecorder);
            true
        }
        Some(name) if owned.recorder => {
            let role_differs = want
                .role_arn
                .as_deref()
                .is_some_and(|r| found.recorder.as_ref().and_then(|x| x.role_arn()) != Some(r));
            let wanted: BTreeSet<String> = want.types.iter().cloned().collect();
            if role_differs || found.recorded_types() != wanted {
                out.push(Step::UpdateRecorder {
                    name: name.to_owned(),
                });
            }
            true
        }
        Some(name) => {
            if !found.records_security_groups() {
                if !want.extend {
                    return Err(RecorderError::NoSecurityGroups {
                        name: name.to_owned(),
                        place: place.clone(),
                    });
                }
                // Said before any call: the write would only come back AccessDenied.
                if found.is_control_towers() {
                    return Err(RecorderError::ControlTower {
                        name: name.to_owned(),
                        place: place.clone(),
                    });
                }
                out.push(Step::ExtendRecorder {
                    name: name.to_owned(),
                });
            }
            false
        }
    };
    match &found.channel {
        None => out.push(Step::CreateChannel),
        Some(channel) if owned.channel => {
            let differs = |wanted: &Option<String>, actual: Option<&str>| {
                wanted.as_deref().is_some_and(|w| Some(w) != actual)
            };
            // A spoke's channel has no topic: one left there (the full stack's it replaces) goes.
            if differs(&want.bucket, channel.s3_bucket_name())
                || differs(&want.topic, channel.sns_topic_arn())
                || (want.bucket_only && channel.sns_topic_arn().is_some())
            {
                out.push(Step::UpdateChannel {
                    name: channel.name().unwrap_or(NAME).to_owned(),
                });
            }
        }
        Some(_) => {} // adopted: its topic gets a subscription (see `topic`), nothing here
    }
    if recorder_ours && !found.recording {
        out.push(Step::StartRecorder {
            name: found.recorder_name().unwrap_or(NAME).to_owned(),
        });
    }
    Ok(out)
}

/// The recording group install creates: security groups plus the extra types.
fn recording_group(types: &[String]) -> RecordingGroup {
    RecordingGroup::builder()
        .all_supported(false)
        .include_global_resource_types(false)
        .set_resource_types(Some(
            types
                .iter()
                .map(|t| ResourceType::from(t.as_str()))
                .collect(),
        ))
        .recording_strategy(
            RecordingStrategy::builder()
                .use_only(RecordingStrategyType::InclusionByResourceTypes)
                .build(),
        )
        .build()
}

/// Makes one step. `found` is what [`find`] read before the steps were decided.
pub async fn apply(
    config: &Client,
    place: &Place,
    found: &Found,
    step: &Step,
    want: &Want,
) -> Result<(), RecorderError> {
    let needs = |v: &Option<String>, what: &str| {
        v.clone().ok_or_else(|| RecorderError::Aws {
            action: format!("{} (needs the stack's {what})", step.describe(want)),
            place: place.clone(),
            detail: "the stack has no such output".into(),
        })
    };
    match step {
        Step::CreateRecorder | Step::UpdateRecorder { .. } => {
            let name = match step {
                Step::UpdateRecorder { name } => name.as_str(),
                _ => NAME,
            };
            let recorder = ConfigurationRecorder::builder()
                .name(name)
                .role_arn(needs(&want.role_arn, "ConfigRoleArn")?)
                .recording_group(recording_group(&want.types))
                .build();
            let what = format!("putting recorder {name}");
            while_iam_propagates(&what, || {
                config
                    .put_configuration_recorder()
                    .configuration_recorder(recorder.clone())
                    .send()
            })
            .await
            .map_err(|e| aws_error(what.clone(), place, &e))?;
        }
        Step::ExtendRecorder { name } => extend(config, place, found, name).await?,
        Step::CreateChannel | Step::UpdateChannel { .. } => {
            let name = match step {
                Step::UpdateChannel { name } => name.as_str(),
                _ => NAME,
            };
            let topic = if want.bucket_only {
                None
            } else {
                Some(needs(&want.topic, "TopicArn")?)
            };
            let channel = DeliveryChannel::builder()
                .name(name)
                .s3_bucket_name(needs(&want.bucket, "ConfigBucketName")?)
                .set_sns_topic_arn(topic)
                .build();
            let what = format!("putting delivery channel {name}");
            while_iam_propagates(&what, || {
                config
                    .put_delivery_channel()
                    .delivery_channel(channel.clone())
                    .send()
            })
            .await
            .map_err(|e| aws_error(what.clone(), place, &e))?;
        }
        Step::StartRecorder { name } => {
            config
                .start_configuration_recorder()
                .configuration_recorder_name(name)
                .send()
                .await
                .map_err(|e| aws_error(format!("starting recorder {name}"), place, &e))?;
        }
    }
    Ok(())
}

/// How long Config's refusals of a new role are waited out: IAM changes take effect after a
/// delay ("Changes that I make are not always immediately visible", IAM troubleshooting), and
/// the stack creates ConfigRole and its policy moments before the recorder and channel use them.
const PROPAGATION_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Adds security groups to the adopted recorder `name` (`--extend-recorder`).
async fn extend(
    config: &Client,
    place: &Place,
    found: &Found,
    name: &str,
) -> Result<(), RecorderError> {
    let recorder = found
        .recorder
        .clone()
        .filter(|r| r.name() == Some(name))
        .ok_or_else(|| RecorderError::Aws {
            action: format!("extending recorder {name}"),
            place: place.clone(),
            detail: "it is gone".into(),
        })?;
    let group = recorder
        .recording_group()
        .cloned()
        .unwrap_or_else(|| RecordingGroup::builder().all_supported(false).build());
    config
        .put_configuration_recorder()
        .configuration_recorder(with_group(&recorder, with_security_groups(&group)))
        .send()
        .await
        .map_err(|e| aws_error(format!("extending recorder {name}"), place, &e))?;
    Ok(())
}

/// `group` recording security groups too: taken off an exclusion list that names them, else
/// added to the types it lists.
fn with_security_groups(group: &RecordingGroup) -> RecordingGroup {
    let excluding = group.recording_strategy().and_then(|s| s.use_only())
        == Some(&RecordingStrategyType::ExclusionByResourceTypes);
    if excluding {
        let kept: Vec<ResourceType> = group
            .exclusion_by_resource_types()
            .map(|x| x.resource_types().to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| t.as_str() != SECURITY_GROUP)
            .collect();
        regroup(
            group,
            group.resource_types().to_vec(),
            Some(
                ExclusionByResourceTypes::builder()
                    .set_resource_types(Some(kept))
                    .build(),
            ),
        )
    } else {
        let mut types = group.resource_types().to_vec();
        types.push(ResourceType::from(SECURITY_GROUP));
        regroup(group, types, group.exclusion_by_resource_types().cloned())
    }
}

/// Runs `call` again, with backoff, while Config answers that the role is not usable yet
/// (`InvalidRoleException`: it cannot assume it; `InsufficientDeliveryPolicyException`: its
/// policy does not reach the bucket or topic yet), for up to [`PROPAGATION_WAIT`]. Any other
/// answer, or the same one after the wait, is returned.
async fn while_iam_propagates<T, E, F, Fut>(
    what: &str,
    mut call: F,
) -> Result<
    T,
    aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: std::future::Future<
        Output = Result<
            T,
            aws_smithy_runtime_api::client::result::SdkError<
                E,
                aws_smithy_runtime_api::client::orchestrator::HttpResponse,
            >,
        >,
    >,
{
    let deadline = tokio::time::Instant::now() + PROPAGATION_WAIT;
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        match call().await {
            Err(e)
                if matches!(
                    e.code(),
                    Some("InvalidRoleException" | "InsufficientDeliveryPolicyException")
                ) && tokio::time::Instant::now() + delay < deadline =>
            {
                eprintln!(
                    "{what}: waiting {} s for IAM to propagate the stack's new role ({})…",
                    delay.as_secs(),
                    e.code().unwrap_or_default()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(15));
            }
            other => return other,
        }
    }
}

/// `group` with other resource types and exclusions, everything else kept.
fn regroup(
    group: &RecordingGroup,
    types: Vec<ResourceType>,
    exclusion: Option<ExclusionByResourceTypes>,
) -> RecordingGroup {
    RecordingGroup::builder()
        .all_supported(group.all_supported())
        .include_global_resource_types(group.include_global_resource_types())
        .set_resource_types(Some(types))
        .set_exclusion_by_resource_types(exclusion)
        .set_recording_strategy(group.recording_strategy().cloned())
        .build()
}

/// `recorder` with another recording group, everything else it was put with kept.
fn with_group(recorder: &ConfigurationRecorder, group: RecordingGroup) -> ConfigurationRecorder {
    ConfigurationRecorder::builder()
        .set_name(recorder.name().map(str::to_owned))
        .set_role_arn(recorder.role_arn().map(str::to_owned))
        .recording_group(group)
        .set_recording_mode(recorder.recording_mode().cloned())
        .build()
}

/// Takes back what `--extend-recorder` added to an adopted recorder (teardown). Does nothing when
/// the recorder is gone or no longer lists the types, or when removing them would leave it
/// recording nothing.
pub async fn unextend(
    config: &Client,
    place: &Place,
    name: &str,
    added: &[String],
) -> Result<bool, RecorderError> {
    let found = find(config, place).await?;
    let Some(recorder) = found.recorder.filter(|r| r.name() == Some(name)) else {
        return Ok(false);
    };
    let Some(group) = recorder.recording_group().cloned() else {
        return Ok(false);
    };
    let kept: Vec<ResourceType> = group
        .resource_types()
        .iter()
        .filter(|t| !added.iter().any(|a| a == t.as_str()))
        .cloned()
        .collect();
    if kept.len() == group.resource_types().len() || (kept.is_empty() && !group.all_supported()) {
        return Ok(false);
    }
    let restored = regroup(&group, kept, group.exclusion_by_resource_types().cloned());
    config
        .put_configuration_recorder()
        .configuration_recorder(with_group(&recorder, restored))
        .send()
        .await
        .map_err(|e| aws_error(format!("restoring the types of recorder {name}"), place, &e))?;
    Ok(true)
}

/// Stops and deletes the recorder install created, and its channel. Already gone is success.
pub async fn delete_created(
    config: &Client,
    place: &Place,
    recorder: &str,
    channel: Option<&str>,
) -> Result<(), RecorderError> {
    if let Err(e) = config
        .stop_configuration_recorder()
        .configuration_recorder_name(recorder)
        .send()
        .await
    {
        if !e
            .as_service_error()
            .is_some_and(|s| s.is_no_such_configuration_recorder_exception())
        {
            return Err(aws_error(
                format!("stopping recorder {recorder}"),
                place,
                &e,
            ));
        }
    }
    if let Some(channel) = channel {
        delete_channel(config, place, channel).await?;
    }
    match config
        .delete_configuration_recorder()
        .configuration_recorder_name(recorder)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_no_such_configuration_recorder_exception()) =>
        {
            Ok(())
        }
        Err(e) => Err(aws_error(
            format!("deleting recorder {recorder}"),
            place,
            &e,
        )),
    }
}

/// Deletes the channel install created beside an adopted recorder. Config refuses while the
/// recorder records, so a recording recorder is stopped for the moment it takes and started again:
/// it is left recording as it was found.
pub async fn delete_created_channel(
    config: &Client,
    place: &Place,
    channel: &str,
) -> Result<(), RecorderError> {
    let found = find(config, place).await?;
    let restart = found
        .recording
        .then(|| found.recorder_name().map(str::to_owned))
        .flatten();
    if let Some(name) = &restart {
        config
            .stop_configuration_recorder()
            .configuration_recorder_name(name)
            .send()
            .await
            .map_err(|e| aws_error(format!("pausing recorder {name}"), place, &e))?;
    }
    let deleted = delete_channel(config, place, channel).await;
    if let Some(name) = &restart {
        config
            .start_configuration_recorder()
            .configuration_recorder_name(name)
            .send()
            .await
            .map_err(|e| aws_error(format!("restarting recorder {name}"), place, &e))?;
    }
    deleted
}

async fn delete_channel(
    config: &Client,
    place: &Place,
    channel: &str,
) -> Result<(), RecorderError> {
    match config
        .delete_delivery_channel()
        .delivery_channel_name(channel)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("NoSuchDeliveryChannelException") => Ok(()),
        Err(e) => Err(aws_error(
            format!("deleting delivery channel {channel}"),
            place,
            &e,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_config::types::RecordingFrequency;

    fn place() -> Place {
        Place {
            account: "111122223333".into(),
            region: "eu-west-1".into(),
        }
    }

    fn want() -> Want {
        Want {
            types: vec![SECURITY_GROUP.into()],
            role_arn: Some("arn:aws:iam::111122223333:role/sgwatch-ConfigRole".into()),
            bucket: Some("sgwatch-configbucket".into()),
            topic: Some("arn:aws:sns:eu-west-1:111122223333:sgwatch-Topic".into()),
            extend: false,
            bucket_only: false,
        }
    }

    fn recorder(name: &str, group: RecordingGroup, role: &str) -> ConfigurationRecorder {
        ConfigurationRecorder::builder()
            .name(name)
            .role_arn(role)
            .recording_group(group)
            .build()
    }

    fn ours(w: &Want, recording: bool) -> Found {
        Found {
            recorder: Some(recorder(
                NAME,
                recording_group(&w.types),
                w.role_arn.as_deref().unwrap(),
            )),
            recording,
            last_status: None,
            channel: Some(
                DeliveryChannel::builder()
                    .name(NAME)
                    .s3_bucket_name(w.bucket.as_deref().unwrap())
                    .sns_topic_arn(w.topic.as_deref().unwrap())
                    .build(),
            ),
        }
    }

    const OWNED: Owned = Owned {
        recorder: true,
        channel: true,
    };

    #[test]
    fn an_empty_region_gets_recorder_channel_and_recording_in_that_order() {
        let steps = steps(&Found::default(), Owned::default(), &want(), &place()).unwrap();
        assert_eq!(
            steps,
            [
                Step::CreateRecorder,
                Step::CreateChannel,
                Step::StartRecorder { name: NAME.into() }
            ]
        );
    }

    #[test]
    fn what_install_made_and_left_as_is_needs_nothing() {
        let w = want();
        assert!(steps(&ours(&w, true), OWNED, &w, &place())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn our_recorder_follows_the_wanted_types_and_is_restarted() {
        let w = want();
        let found = ours(&w, false);
        let mut more = w.clone();
        more.types.push("AWS::EC2::NetworkAcl".into());
        assert_eq!(
            steps(&found, OWNED, &more, &place()).unwrap(),
            [
                Step::UpdateRecorder { name: NAME.into() },
                Step::StartRecorder { name: NAME.into() }
            ]
        );
    }

    #[test]
    fn an_adopted_recorder_is_never_started_and_its_channel_left_alone() {
        let w = want();
        let mut found = ours(&w, false);
        found.recorder = Some(recorder(
            "default",
            RecordingGroup::builder().all_supported(true).build(),
            "arn:aws:iam::111122223333:role/aws-controltower-ConfigRecorderRole",
        ));
        assert!(steps(&found, Owned::default(), &w, &place())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn an_adopted_recorder_without_security_groups_stops_install_unless_extend() {
        let w = want();
        let mut found = ours(&w, true);
        found.recorder = Some(recorder(
            "default",
            RecordingGroup::builder()
                .all_supported(false)
                .resource_types(ResourceType::from("AWS::S3::Bucket"))
                .build(),
            "arn:aws:iam::111122223333:role/baseline",
        ));
        let err = steps(&found, Owned::default(), &w, &place()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--extend-recorder") && text.contains("111122223333"),
            "{text}"
        );
        let mut extend = w.clone();
        extend.extend = true;
        assert_eq!(
            steps(&found, Owned::default(), &extend, &place()).unwrap(),
            [Step::ExtendRecorder {
                name: "default".into()
            }]
        );
    }

    #[test]
    fn exclusions_count_when_deciding_whether_security_groups_are_recorded() {
        let group = |excluded: &str| {
            RecordingGroup::builder()
                .all_supported(false)
                .exclusion_by_resource_types(
                    ExclusionByResourceTypes::builder()
                        .resource_types(ResourceType::from(excluded))
                        .build(),
                )
                .recording_strategy(
                    RecordingStrategy::builder()
                        .use_only(RecordingStrategyType::ExclusionByResourceTypes)
                        .build(),
                )
                .build()
        };
        let found = |g| Found {
            recorder: Some(recorder("default", g, "r")),
            ..Found::default()
        };
        assert!(found(group("AWS::S3::Bucket")).records_security_groups());
        assert!(!found(group(SECURITY_GROUP)).records_security_groups());
    }

    #[test]
    fn extending_control_towers_recorder_is_refused_with_a_sentence() {
        let w = want();
        let mut found = ours(&w, true);
        found.recorder = Some(recorder(
            "aws-controltower-BaselineConfigRecorder",
            RecordingGroup::builder()
                .all_supported(false)
                .resource_types(ResourceType::from("AWS::S3::Bucket"))
                .build(),
            "arn:aws:iam::111122223333:role/aws-controltower-ConfigRecorderRole",
        ));
        let mut extend = w.clone();
        extend.extend = true;
        let text = steps(&found, Owned::default(), &extend, &place())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("AWS Control Tower's")
                && text.contains("forbid changing it")
                && text.contains("--extend-recorder cannot add")
                && text.contains("111122223333"),
            "{text}"
        );
    }

    /// `recordingMode` as the ConfigurationRecorder reference documents it: a frequency and
    /// overrides by resource type.
    #[test]
    fn daily_recording_of_security_groups_is_named() {
        use aws_sdk_config::types::{RecordingMode, RecordingModeOverride};
        let with_mode = |mode: RecordingMode| Found {
            recorder: Some(
                ConfigurationRecorder::builder()
                    .name("default")
                    .recording_group(RecordingGroup::builder().all_supported(true).build())
                    .recording_mode(mode)
                    .build(),
            ),
            ..Found::default()
        };
        let mode = |f: RecordingFrequency, o: Option<(&str, RecordingFrequency)>| {
            RecordingMode::builder()
                .recording_frequency(f)
                .set_recording_mode_overrides(o.map(|(t, f)| {
                    vec![RecordingModeOverride::builder()
                        .description("cost")
                        .resource_types(ResourceType::from(t))
                        .recording_frequency(f)
                        .build()
                        .unwrap()]
                }))
                .build()
                .unwrap()
        };
        use RecordingFrequency::{Continuous, Daily};
        assert_eq!(Found::default().daily_security_groups(), None);
        assert_eq!(
            with_mode(mode(Continuous, None)).daily_security_groups(),
            None
        );
        let daily = with_mode(mode(Daily, None))
            .daily_security_groups()
            .unwrap();
        assert!(daily.contains("recordingMode DAILY"), "{daily}");
        let overridden = with_mode(mode(Continuous, Some((SECURITY_GROUP, Daily))))
            .daily_security_groups()
            .unwrap();
        assert!(overridden.contains("override (\"cost\")"), "{overridden}");
        // Daily for everything but security groups is fine; daily for other types only too.
        assert_eq!(
            with_mode(mode(Daily, Some((SECURITY_GROUP, Continuous)))).daily_security_groups(),
            None
        );
        assert_eq!(
            with_mode(mode(Continuous, Some(("AWS::EC2::Instance", Daily))))
                .daily_security_groups(),
            None
        );
    }

    #[test]
    fn our_channel_follows_the_stack_when_its_bucket_changed() {
        let w = want();
        let found = ours(&w, true);
        let mut moved = w.clone();
        moved.bucket = Some("sgwatch-configbucket-new".into());
        assert_eq!(
            steps(&found, OWNED, &moved, &place()).unwrap(),
            [Step::UpdateChannel { name: NAME.into() }]
        );
    }
}
