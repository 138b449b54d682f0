//! `sgwatch spoke install --replace-stack`: a region's full stack hands it over to the hub's
//! spoke, and no change is told twice or missed ([`sgwatch_handler::handover`] has the rule).
//!
//! The order, each step safe to run again:
//! 1. the marker says `pending`: the full stack still tells everything, the hub nothing here;
//! 2. the spoke's stack is made: its rules now forward every change to the hub;
//! 3. the marker gets the time T, further ahead than any reader keeps its reading: before T the
//!    full stack tells, from T the hub;
//! 4. after T, a wait for the full stack's notifications still on their way (Config publishes
//!    within seconds; Lambda retries a failed one twice within about three minutes), and a look at
//!    its failure queue, which must be empty;
//! 5. the recorder and channel the full stack made become the spoke's (its role, its bucket, no
//!    topic), with no gap in recording, and the full stack's record says so;
//! 6. the full stack goes, keeping its configuration history.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;
use sgwatch_handler::handover::{BadMarker, Marker, PARAMETER};

use crate::aws::{error_text, Place};
use crate::deploy::observe::{self, Installed};
use crate::deploy::{artifacts, plan, recorder, stack};

/// Why a handover stopped; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{action} the handover marker {PARAMETER} in {place}: {detail}")]
    Marker {
        action: &'static str,
        place: Place,
        detail: String,
    },
    #[error(
        "{place}: {source}; remove it (`aws ssm delete-parameter --name {PARAMETER}`) and run \
             spoke install again"
    )]
    BadMarker { place: Place, source: BadMarker },
    #[error(
        "the full stack {stack} in {place} does not read the handover marker (it was installed by \
         an earlier sgwatch), so it would go on telling what the hub tells: update it first with \
         this version (`sgwatch install --stack-name {stack}` and its flags), then run spoke \
         install --replace-stack again"
    )]
    TooOld { stack: String, place: Place },
    #[error(
        "the full stack {stack}'s failure queue in {place} holds {count} notification(s); \
         removing the stack would lose them: deliver them first (`sgwatch redrive --stack-name \
         {stack} --yes`), then run spoke install --replace-stack again, which resumes"
    )]
    Parked {
        stack: String,
        place: Place,
        count: u64,
    },
    #[error("the full stack {stack}'s failure queue in {place} cannot be read: {detail}")]
    Queue {
        stack: String,
        place: Place,
        detail: String,
    },
}

/// The full stack a spoke replaces, as read before anything is done.
#[derive(Debug, Clone)]
pub struct FullStack {
    pub installed: Installed,
    /// Its function reads the marker (`SGWATCH_HANDOVER_PARAMETER` in its template).
    pub reads_marker: bool,
    /// Notifications parked in its failure queue.
    pub parked: u64,
}

impl FullStack {
    pub fn name(&self) -> &str {
        &self.installed.stack_name
    }

    /// Whether it made the region's recorder and channel (the spoke then takes them over).
    pub fn owned(&self) -> recorder::Owned {
        let i = &self.installed;
        plan::owned(&i.found, i.state.as_ref(), i.outputs())
    }

    /// Refuses a full stack that would tell on after T, or whose parked notifications its
    /// removal would lose.
    pub fn ready(&self) -> Result<(), HandoverError> {
        let (stack, place) = (self.name().to_owned(), self.installed.place.clone());
        if !self.reads_marker {
            return Err(HandoverError::TooOld { stack, place });
        }
        if self.parked > 0 {
            let count = self.parked;
            return Err(HandoverError::Parked {
                stack,
                place,
                count,
            });
        }
        Ok(())
    }
}

/// Reads the full stack `name`: its install, its template, its failure queue.
pub async fn full_stack(
    config: &SdkConfig,
    place: &Place,
    name: &str,
) -> Result<FullStack, crate::Error> {
    let installed = observe::installed(config, place.clone(), name).await?;
    let cf = crate::aws::cloudformation(config);
    let template = stack::deployed_template(&cf, name, place).await?;
    let parked = parked(config, &installed).await?;
    Ok(FullStack {
        installed,
        reads_marker: template.contains("SGWATCH_HANDOVER_PARAMETER"),
        parked,
    })
}

/// How many notifications the full stack's failure queue holds.
pub async fn parked(config: &SdkConfig, installed: &Installed) -> Result<u64, HandoverError> {
    let Some(url) = &installed.outputs().failure_queue_url else {
        return Ok(0);
    };
    observe::parked_count(config, url)
        .await
        .map_err(|detail| HandoverError::Queue {
            stack: installed.stack_name.clone(),
            place: installed.place.clone(),
            detail,
        })
}

/// The region's marker.
pub async fn read(ssm: &aws_sdk_ssm::Client, place: &Place) -> Result<Marker, HandoverError> {
    match ssm.get_parameter().name(PARAMETER).send().await {
        Ok(out) => {
            let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
            Marker::for_place(value, &place.account, &place.region).map_err(|source| {
                HandoverError::BadMarker {
                    place: place.clone(),
                    source,
                }
            })
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(Marker::Absent)
        }
        Err(e) => Err(HandoverError::Marker {
            action: "reading",
            place: place.clone(),
            detail: error_text(&e),
        }),
    }
}

/// Sets the region's marker.
pub async fn write(
    ssm: &aws_sdk_ssm::Client,
    place: &Place,
    marker: Marker,
) -> Result<(), HandoverError> {
    let Some(value) = marker.value(&place.account, &place.region) else {
        return remove(ssm, place).await.map(|_| ());
    };
    ssm.put_parameter()
        .name(PARAMETER)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .description(
            "sgwatch handover: from this time the hub tells this region's security-group changes",
        )
        .overwrite(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| HandoverError::Marker {
            action: "writing",
            place: place.clone(),
            detail: error_text(&e),
        })
}

/// Removes the region's marker; whether there was one.
pub async fn remove(ssm: &aws_sdk_ssm::Client, place: &Place) -> Result<bool, HandoverError> {
    match ssm.delete_parameter().name(PARAMETER).send().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Ok(false)
        }
        Err(e) => Err(HandoverError::Marker {
            action: "removing",
            place: place.clone(),
            detail: error_text(&e),
        }),
    }
}

/// The marker's time as the report shows it.
pub fn time_text(secs: i64) -> String {
    Marker::At(secs).state().unwrap_or_else(|| secs.to_string())
}

/// Seconds since the epoch, now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Waits until `until` (seconds since the epoch), saying why every 30 s when `progress`.
pub async fn wait_until(until: i64, why: &str, progress: bool) {
    let mut said = false;
    loop {
        let left = until - now_secs();
        if left <= 0 {
            return;
        }
        if progress && (!said || left % 30 == 0) {
            eprintln!("  waiting {left} s, until {}: {why}", time_text(until));
            said = true;
        }
        tokio::time::sleep(Duration::from_secs(1).min(Duration::from_secs(left as u64))).await;
    }
}

/// The full stack's record now says its recorder, channel and any types it added to an adopted
/// recorder are not its own, so that its teardown leaves them to the spoke.
pub async fn hand_over_record(
    config: &SdkConfig,
    installed: &Installed,
) -> Result<(), crate::Error> {
    let Some(mut state) = installed.state.clone() else {
        return Ok(());
    };
    state.recorder = artifacts::Ownership::Adopted;
    state.channel = artifacts::Ownership::Adopted;
    state.extended_types.clear();
    artifacts::write_state(&crate::aws::s3(config), &installed.place, &state).await?;
    Ok(())
}
