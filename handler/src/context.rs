//! What every record's handling shares: the AWS clients, built once per cold start
//! ([`Services`]), the invocation they run in, with its owner token and deadline
//! ([`Invocation`]), and what became of a record (`Outcome`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::SdkConfig;

use crate::aws;
use crate::core::settings::Settings;
use crate::dedupe::Dedupe;
use crate::deliver::mail;
use crate::deliver::post::Poster;
use crate::handovers::Handovers;
use crate::links::Signer;
use crate::members::Members;

/// The AWS clients the handler uses, built once per cold start.
#[derive(Clone, Debug)]
pub struct Services {
    pub ses: aws_sdk_sesv2::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    /// Reads an oversized item through AWS Config when its bucket is not ours or cannot be read.
    pub config: aws_sdk_config::Client,
    /// Reads a group's tags for an early warning (its HTTPS client, like every client's, is set
    /// up at the first request: a Config notification never pays for it).
    pub ec2: aws_sdk_ec2::Client,
    /// Present when an idempotency table is configured.
    pub dedupe: Option<Dedupe>,
    /// Where the handler parks what it cannot deliver and retrying cannot fix.
    pub failure_queue: Option<FailureQueue>,
    /// The stack's own Config bucket; an oversized item elsewhere is read through AWS Config.
    pub config_bucket: Option<String>,
    /// Posts to the chat and webhook destinations; present when any is configured.
    pub poster: Option<Arc<Poster>>,
    /// The hub's readers of member accounts (`SGWATCH_HUB`); absent elsewhere.
    pub members: Option<Arc<Members>>,
    /// The member account and region the record being handled is from (a hub's only).
    pub origin: Option<(String, String)>,
    /// Reads the handover marker in the function's own account (a full stack's).
    pub ssm: aws_sdk_ssm::Client,
    /// The handover markers read so far: a hub's, or a full stack's that reads its own
    /// (`SGWATCH_HANDOVER_PARAMETER`); absent elsewhere.
    pub handovers: Option<Arc<Handovers>>,
    /// Signs the owners' Revert and Keep links (`SGWATCH_ACT_URL` and `SGWATCH_ACT_KEY`);
    /// absent when alerts carry none.
    pub signer: Option<Signer>,
    /// The time quiet periods and digests are decided by.
    pub clock: Clock,
    /// The queue whose delayed messages end coalescing windows (`SGWATCH_WAKE_QUEUE_URL`).
    pub wake: Option<WakeQueue>,
    /// Publishes to the SNS topics of Amazon Q Developer destinations.
    pub sns: aws_sdk_sns::Client,
    /// Imports Security Hub findings of the function's own account.
    pub securityhub: aws_sdk_securityhub::Client,
}

/// The queue that wakes a group's coalesced email when its window ends.
#[derive(Clone, Debug)]
pub struct WakeQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl WakeQueue {
    /// Sends `body`, delivered after `delay_secs` (SQS's limit, 900, at most).
    pub async fn send(&self, body: String, delay_secs: u64) -> Result<(), String> {
        let delay = i32::try_from(delay_secs.min(900)).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }
}

/// The one clock the noise controls read: the system's, or a time a test sets (shared by every
/// copy, so a test moves it for the handler it built).
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<Arc<AtomicU64>>);

impl Clock {
    /// A clock stopped at `epoch_secs`, moved by [`Clock::set`].
    pub fn fixed(epoch_secs: u64) -> Clock {
        Clock(Some(Arc::new(AtomicU64::new(epoch_secs))))
    }

    /// Moves a fixed clock to `epoch_secs`; the system's clock does not move.
    pub fn set(&self, epoch_secs: u64) {
        if let Some(t) = &self.0 {
            t.store(epoch_secs, Ordering::SeqCst);
        }
    }

    /// Seconds since the epoch.
    pub fn now_secs(&self) -> u64 {
        match &self.0 {
            Some(t) => t.load(Ordering::SeqCst),
            None => crate::dedupe::epoch_secs(SystemTime::now()),
        }
    }
}

/// The stack's failure queue (`SGWATCH_FAILURE_QUEUE_URL`).
#[derive(Clone, Debug)]
pub struct FailureQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl FailureQueue {
    /// Sends `body` to the queue; the error says why not.
    pub async fn send(&self, body: String) -> Result<(), String> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
    }
}

impl Services {
    /// Clients with the handler's time limits ([`aws::handler_timeouts`]).
    pub fn new(config: &SdkConfig, settings: &Settings) -> Services {
        let config = config
            .to_builder()
            .timeout_config(aws::handler_timeouts())
            .build();
        let config = &config;
        Services {
            ses: mail::client(config),
            s3: aws::s3_client(config),
            cloudtrail: aws_sdk_cloudtrail::Client::new(config),
            config: aws_sdk_config::Client::new(config),
            ec2: aws_sdk_ec2::Client::new(config),
            dedupe: settings.idempotency_table.as_ref().map(|table| Dedupe {
                client: aws_sdk_dynamodb::Client::new(config),
                table: table.clone(),
            }),
            failure_queue: None,
            config_bucket: None,
            poster: (!settings.policy.destinations.is_empty())
                .then(|| Arc::new(Poster::new(config).with_reach(settings.reach()))),
            members: settings.hub.then(|| Arc::new(Members::new(config))),
            origin: None,
            ssm: aws_sdk_ssm::Client::new(config),
            handovers: (settings.hub || settings.handover_parameter.is_some())
                .then(|| Arc::new(Handovers::new(settings.hub))),
            signer: match (&settings.act.url, &settings.act.key) {
                (Some(url), Some(key)) => Some(Signer {
                    kms: aws_sdk_kms::Client::new(config),
                    key: key.clone(),
                    url: url.clone(),
                    hours: settings.act.link_hours,
                }),
                _ => None,
            },
            clock: Clock::default(),
            sns: aws_sdk_sns::Client::new(config),
            securityhub: aws_sdk_securityhub::Client::new(config),
            wake: settings.wake_queue_url.as_ref().map(|url| WakeQueue {
                client: aws_sdk_sqs::Client::from_conf(
                    aws_sdk_sqs::config::Builder::from(config)
                        .timeout_config(aws::handler_timeouts())
                        .build(),
                ),
                url: url.clone(),
            }),
        }
    }

    /// The services for a record of `account` × `region`: in a hub, the clients that read are
    /// then that account's, made through its reader role at the first read (a record the event
    /// tells all about makes none); mail, posts, the table and the queues stay the hub's.
    pub fn reading(&self, account: &str, region: &str) -> Services {
        let mut s = self.clone();
        if s.members.is_some() {
            s.origin = Some((account.to_owned(), region.to_owned()));
        }
        s
    }

    /// The member account's readers, when this record is one's; `None`: the function's own.
    async fn reader(&self) -> Option<crate::members::Reader> {
        let (members, (account, region)) = (self.members.as_ref()?, self.origin.as_ref()?);
        match members.reader(account, region).await {
            Ok(r) => Some(r),
            Err(why) => {
                tracing::warn!(account, region, error = %why, "the member account's reader role could not be assumed: reading as the hub");
                None
            }
        }
    }

    /// The client that reads AWS Config's history for this record.
    pub async fn config_reader(&self) -> aws_sdk_config::Client {
        self.reader()
            .await
            .map_or_else(|| self.config.clone(), |r| r.config)
    }

    /// The client that reads EC2 (groups, rules, prefix lists) for this record.
    pub async fn ec2_reader(&self) -> aws_sdk_ec2::Client {
        self.reader()
            .await
            .map_or_else(|| self.ec2.clone(), |r| r.ec2)
    }

    /// The client that looks up CloudTrail for this record.
    pub async fn cloudtrail_reader(&self) -> aws_sdk_cloudtrail::Client {
        self.reader()
            .await
            .map_or_else(|| self.cloudtrail.clone(), |r| r.cloudtrail)
    }

    /// The client that reads the handover marker of this record's account and region.
    pub async fn ssm_reader(&self) -> aws_sdk_ssm::Client {
        self.reader()
            .await
            .map_or_else(|| self.ssm.clone(), |r| r.ssm)
    }

    /// The client that imports this record's Security Hub findings: in a hub, through the
    /// member account's reader role (the account must import its own).
    pub async fn securityhub_for(&self) -> aws_sdk_securityhub::Client {
        self.reader()
            .await
            .map_or_else(|| self.securityhub.clone(), |r| r.securityhub)
    }

    /// The client that reads a Config bucket for this record.
    pub async fn s3_reader(&self) -> aws_sdk_s3::Client {
        self.reader()
            .await
            .map_or_else(|| self.s3.clone(), |r| r.s3)
    }

    /// Parks undeliverable notifications in the queue at `url` (none: they fail the invocation).
    pub fn with_failure_queue(mut self, config: &SdkConfig, url: Option<String>) -> Services {
        self.failure_queue = url.filter(|u| !u.is_empty()).map(|url| FailureQueue {
            client: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(config)
                    .timeout_config(aws::handler_timeouts())
                    .build(),
            ),
            url,
        });
        self
    }

    /// The stack's Config bucket (none: every oversized item is read from S3 first).
    pub fn with_config_bucket(mut self, bucket: Option<String>) -> Services {
        self.config_bucket = bucket.filter(|b| !b.is_empty());
        self
    }
}

/// The invocation: who is sending (the owner of the claims it takes) and until when.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda's request id; it is the owner token of the claims this invocation takes.
    pub request_id: String,
    /// When Lambda ends the invocation.
    pub deadline: Option<SystemTime>,
}

/// The invocation's deadline when it is one Lambda could have given: in the future and within
/// Lambda's longest timeout (15 minutes). Anything else (zero, or a constant such as the 600000 ms
/// cargo-lambda's emulator sends) is unknown rather than "already passed", which would refuse
/// every send.
fn plausible_deadline(deadline_ms: u64, now: SystemTime) -> Option<SystemTime> {
    let deadline = UNIX_EPOCH.checked_add(Duration::from_millis(deadline_ms))?;
    let longest = now + Duration::from_secs(15 * 60 + 60);
    (deadline > now && deadline <= longest).then_some(deadline)
}

impl Invocation {
    /// An invocation outside Lambda: a unique owner token, no deadline.
    pub fn local() -> Invocation {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        Invocation {
            request_id: format!(
                "local-{}-{nanos}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ),
            deadline: None,
        }
    }

    /// From Lambda's context: the request id and the deadline in milliseconds since the epoch.
    pub fn lambda(request_id: &str, deadline_ms: u64) -> Invocation {
        Invocation {
            request_id: request_id.to_owned(),
            deadline: plausible_deadline(deadline_ms, SystemTime::now()),
        }
    }

    pub(crate) fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.duration_since(SystemTime::now()).unwrap_or_default())
    }

    /// Fails when less than `margin` is left: the work is left to Lambda's retry.
    pub(crate) fn ensure(&self, margin: Duration) -> Result<(), TooLate> {
        match self.time_left() {
            Some(left) if left < margin => Err(TooLate(left)),
            _ => Ok(()),
        }
    }
}

/// What became of one record.
pub(crate) enum Outcome {
    Sent,
    Skipped,
    Parked,
    Failed(String),
    /// A call from the actor feed: whether it was recorded, and what its early warning did.
    Feed {
        recorded: bool,
        warning: Option<Box<Outcome>>,
    },
    /// A spoke's heartbeat, recorded in the hub's coverage map.
    Heartbeat,
    /// A change held for its recipients' digest ([`crate::core::quiet`]).
    Held,
}

/// Less than the margin is left before the invocation's deadline: this much.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLate(pub Duration);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_deadline_lambda_could_give_bounds_the_sends() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let in_a_minute = now + Duration::from_secs(60);
        assert_eq!(plausible_deadline(ms(in_a_minute), now), Some(in_a_minute));
        // cargo-lambda's emulator: a constant, long past.
        assert_eq!(plausible_deadline(600_000, now), None);
        assert_eq!(plausible_deadline(0, now), None);
        assert_eq!(
            plausible_deadline(ms(now - Duration::from_secs(1)), now),
            None
        );
        assert_eq!(
            plausible_deadline(ms(now + Duration::from_secs(3600)), now),
            None
        );
        assert_eq!(plausible_deadline(u64::MAX, now), None);
    }
}
