//! The handover marker ([`crate::core::handover`]) as read by the handler: a full stack reads its
//! own account's (`SGWATCH_HANDOVER_PARAMETER`), the hub each member account × region's through
//! that account's reader role. A full stack keeps a reading [`KEPT_FOR_SECS`]; the hub keeps a
//! `pending` one as long, and any other [`HUB_KEEPS_SETTLED_SECS`], so a spoke's region costs the
//! hub about one `GetParameter` an hour (see [`crate::core::handover`]).
//!
//! A marker that cannot be read counts as absent: both sides then tell the change. A change told
//! twice is better than one told by no one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_ssm::error::DisplayErrorContext;
use tracing::warn;

use crate::core::handover::{Marker, HUB_KEEPS_SETTLED_SECS, KEPT_FOR_SECS};

/// The readings of the marker, per account × region.
#[derive(Debug, Default)]
pub struct Handovers {
    read: Mutex<HashMap<(String, String), (Instant, Marker)>>,
    /// The hub's: a settled reading (no marker, or T set) is kept an hour.
    hub: bool,
}

/// At most this many account × regions are kept; past it the readings start again.
const KEPT: usize = 10_000;

impl Handovers {
    /// The readings of a hub (`true`) or of a full stack.
    pub fn new(hub: bool) -> Handovers {
        Handovers {
            read: Mutex::default(),
            hub,
        }
    }

    /// How long `marker` is kept.
    fn kept(&self, marker: Marker) -> Duration {
        match marker {
            Marker::Absent | Marker::At(_) if self.hub => {
                Duration::from_secs(HUB_KEEPS_SETTLED_SECS)
            }
            _ => Duration::from_secs(KEPT_FOR_SECS),
        }
    }

    /// The marker of `account` × `region`, read through `ssm` (that account and region's client)
    /// unless a reading still kept says it.
    pub async fn marker(
        &self,
        ssm: &aws_sdk_ssm::Client,
        parameter: &str,
        account: &str,
        region: &str,
    ) -> Marker {
        let key = (account.to_owned(), region.to_owned());
        if let Some((at, marker)) = self.read.lock().ok().and_then(|r| r.get(&key).copied()) {
            if at.elapsed() < self.kept(marker) {
                return marker;
            }
        }
        let marker = read(ssm, parameter, account, region).await;
        if let Ok(mut read) = self.read.lock() {
            if read.len() >= KEPT {
                read.clear();
            }
            read.insert(key, (Instant::now(), marker));
        }
        marker
    }
}

/// One `GetParameter`: absent when there is no such parameter, or when it cannot be read.
async fn read(ssm: &aws_sdk_ssm::Client, parameter: &str, account: &str, region: &str) -> Marker {
    match ssm.get_parameter().name(parameter).send().await {
        Ok(out) => {
            let value = out.parameter().and_then(|p| p.value()).unwrap_or_default();
            Marker::for_place(value, account, region).unwrap_or_else(|e| {
                warn!(account, region, error = %e, "the handover marker is not readable: this change is told");
                Marker::Absent
            })
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_parameter_not_found()) =>
        {
            Marker::Absent
        }
        Err(e) => {
            warn!(account, region, parameter, error = %DisplayErrorContext(&e), "the handover marker could not be read: this change is told");
            Marker::Absent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
    use aws_sdk_ssm::types::error::{InternalServerError, ParameterNotFound};
    use aws_sdk_ssm::types::Parameter;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    const A: &str = "111122223333";
    const R: &str = "eu-west-1";

    fn holding(value: &'static str) -> aws_smithy_mocks::Rule {
        mock!(aws_sdk_ssm::Client::get_parameter)
            .match_requests(|r| r.name() == Some("/sgwatch/handover"))
            .then_output(move || {
                GetParameterOutput::builder()
                    .parameter(Parameter::builder().value(value).build())
                    .build()
            })
    }

    #[tokio::test]
    async fn a_marker_is_read_once_while_its_reading_is_kept() {
        // Two answers: the second reader's read gets the second.
        let ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            [
                &holding("pending 111122223333 eu-west-1"),
                &holding("2026-12-05T12:00:00Z 111122223333 eu-west-1")
            ]
        );
        let handovers = Handovers::new(false);
        for _ in 0..3 {
            let kept = handovers.marker(&ssm, "/sgwatch/handover", A, R).await;
            assert_eq!(kept, Marker::Pending);
        }
        let other = Handovers::new(true);
        let read = other.marker(&ssm, "/sgwatch/handover", A, R).await;
        assert_eq!(read, Marker::At(1_796_472_000));
        let hub = Handovers::new(true);
        assert_eq!(
            hub.kept(Marker::Pending),
            Duration::from_secs(KEPT_FOR_SECS)
        );
        for settled in [Marker::Absent, Marker::At(0)] {
            let hours = Duration::from_secs(HUB_KEEPS_SETTLED_SECS);
            assert_eq!(hub.kept(settled), hours);
            let full = Handovers::new(false);
            assert_eq!(full.kept(settled), Duration::from_secs(KEPT_FOR_SECS));
        }
    }

    #[tokio::test]
    async fn a_marker_missing_unreadable_or_of_another_region_is_absent() {
        let missing = mock!(aws_sdk_ssm::Client::get_parameter).then_error(|| {
            GetParameterError::ParameterNotFound(ParameterNotFound::builder().build())
        });
        let failing = mock!(aws_sdk_ssm::Client::get_parameter).then_error(|| {
            GetParameterError::InternalServerError(InternalServerError::builder().build())
        });
        let ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            [
                &missing,
                &holding("soon 111122223333 eu-west-1"),
                &holding("pending 111122223333 us-east-1"),
                &failing,
                &holding("2026-12-05T12:00:00Z 111122223333 eu-west-1"),
            ]
        );
        let mut read = Vec::new();
        for _ in 0..5 {
            // A fresh reader each time, so each reads.
            let handovers = Handovers::new(false);
            read.push(handovers.marker(&ssm, "/sgwatch/handover", A, R).await);
        }
        assert_eq!(
            read,
            [
                Marker::Absent,
                Marker::Absent,
                Marker::Absent,
                Marker::Absent,
                Marker::At(1_796_472_000),
            ]
        );
    }
}
