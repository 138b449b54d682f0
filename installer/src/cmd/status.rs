//! `sgwatch status`: every link of the chain, one line each (ok, warn or FAIL) with what to do
//! when it is broken: the stack; the Config recorder (exists, records security groups, is
//! recording, last status) and delivery channel (→ bucket, → topic); the event source (topic →
//! subscription → function, or EventBridge rule → function) and the function's permission for it;
//! the function's settings (checked as the handler checks them at start) and its on-failure
//! destination; the SES sender and sandbox; what the stack's roles may do; the failure queue; the
//! install record.
//!
//! [`look`] reads the account once ([`Seen`]); each link is then a small pure function of what was
//! seen ([`LINKS`]). A broken link is what status reports, not an error: it fails only when it
//! cannot look at all.

use std::collections::HashMap;

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::StackStatus;
use aws_sdk_config::types::{ConfigStreamDeliveryInfo, DeliveryStatus};
use clap::Args;
use serde::Serialize;
use sgwatch_handler::settings::Settings;

use crate::aws::{error_text, sns_for};
pub use crate::deploy::check::{Check, Level};
use crate::deploy::observe::{self, Installed};
use crate::deploy::recorder::{self, Found};
use crate::deploy::simulate::{self, Simulated};
use crate::deploy::stack::OnOff;
use crate::deploy::topic;
use crate::deploy::{actor_feed, alarms, artifacts, destinations};

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub account: String,
    pub region: String,
    pub checks: Vec<Check>,
}

impl Status {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.level == Level::Fail)
    }
}

/// One line per check, under a heading naming the account and region.
impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sgwatch status, account {} in {}:",
            self.account, self.region
        )?;
        for c in &self.checks {
            let level = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            writeln!(f, "  {level}  {:<34} {}", c.check, c.detail)?;
        }
        Ok(())
    }
}

/// The stack's EventBridge rule, as EventBridge has it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub arn: String,
    pub enabled: bool,
    pub targets: Vec<String>,
}

/// How Config's notifications reach the function, as seen.
#[derive(Debug, Clone)]
pub enum Route {
    /// No function to route to.
    None,
    /// The handler's subscription to the topic the channel sends to, and its redrive policy
    /// (read when the topic can be redriven).
    Topic {
        topic: String,
        subscription: Result<Option<String>, String>,
        redrive: Option<Result<Option<String>, String>>,
    },
    /// The stack's EventBridge rule (`None`: the stack has none).
    Rule(Result<Option<Rule>, String>),
}

/// Everything status looks at, read once: what install left ([`Installed`]), and the links of
/// the chain beyond it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub installed: Installed,
    /// Why the install record could not be read, when it could not.
    pub record_error: Option<String>,
    /// Whether the delivery channel's bucket exists.
    pub channel_bucket: Option<Result<bool, String>>,
    /// The channel's last delivery to its topic.
    pub delivery: Option<Result<Option<ConfigStreamDeliveryInfo>, String>>,
    pub route: Route,
    /// The function's resource policy (empty when there is none).
    pub policy: String,
    /// The function's environment.
    pub function: Option<Result<HashMap<String, String>, String>>,
    /// Whether the function has an on-failure destination.
    pub on_failure: Option<bool>,
    /// The sender's SES identity, and the sandbox warning.
    pub ses: Option<(String, Result<String, String>, Option<String>)>,
    pub handler_role: Option<Simulated>,
    pub config_role: Option<Simulated>,
    /// What acts on alerts: the links' function URL, the act role's simulation, and whether a
    /// role that revokes is refused on a group without the opt-in tag (act's, the handler's).
    pub acting: Acting,
    /// The failure queue's URL and how many messages it holds.
    pub queue: Option<(String, Result<u64, String>)>,
}

impl std::ops::Deref for Seen {
    type Target = Installed;
    fn deref(&self) -> &Installed {
        &self.installed
    }
}

/// What status learned about acting on alerts (`--act-links`, `--auto-revert`).
#[derive(Debug, Clone, Default)]
pub struct Acting {
    /// The act function's URL as Lambda serves it (`GetFunctionUrlConfig`).
    pub url: Option<Result<String, String>>,
    pub act_role: Option<Simulated>,
    /// (role, whether IAM allows it to revoke on a group without the tag).
    pub untagged_revoke: Vec<(&'static str, Result<bool, String>)>,
}

/// The checks, link by link, in the order of the chain.
pub const LINKS: &[fn(&Seen) -> Vec<Check>] = &[
    stack_link,
    recorder_link,
    channel_link,
    route_link,
    function_link,
    ses_link,
    roles_link,
    acting_link,
    quiet_link,
    failures_link,
    record_link,
];

/// Runs every check.
pub async fn status(args: &StatusArgs, config: &SdkConfig) -> Result<Status, crate::Error> {
    let seen = look(args, config).await?;
    let mut checks: Vec<Check> = LINKS.iter().flat_map(|link| link(&seen)).collect();
    checks.extend(destinations::checks(config, &seen.params().all).await);
    checks.extend(crate::deploy::security::checks(config, &seen.params().all).await);
    checks.extend(actor_feed::check(config, &seen).await);
    checks.extend(alarms::check(config, &seen).await);
    Ok(Status {
        account: seen.place.account.clone(),
        region: seen.place.region.clone(),
        checks,
    })
}

/// Reads everything the checks look at. Only what status cannot look at without (who the caller
/// is, the stack, Config) is an error; every other failed read is kept for its check to report.
pub async fn look(args: &StatusArgs, config: &SdkConfig) -> Result<Seen, crate::Error> {
    let place = crate::aws::place(config).await?;
    let (installed, record_error) =
        observe::installed_and_record(config, place, &args.stack_name).await?;
    let mut seen = Seen {
        installed,
        record_error: record_error.map(|e| e.to_string()),
        channel_bucket: None,
        delivery: None,
        route: Route::None,
        policy: String::new(),
        function: None,
        on_failure: None,
        ses: None,
        handler_role: None,
        config_role: None,
        acting: Acting::default(),
        queue: None,
    };
    if let Some(channel) = seen.found.channel.clone() {
        if let Some(bucket) = channel.s3_bucket_name() {
            let s3 = crate::aws::s3(config);
            let exists = artifacts::bucket_exists(&s3, bucket, &seen.place).await;
            seen.channel_bucket = Some(exists.map_err(|e| e.to_string()));
        }
        seen.delivery = Some(delivery(config, channel.name().unwrap_or("?")).await);
    }
    if let Some(function) = seen.outputs().function_name.clone() {
        (seen.policy, seen.function, seen.on_failure) = read_function(config, &function).await;
    }
    seen.route = route(config, &seen).await;
    seen.ses = ses(config, &seen).await;
    (seen.handler_role, seen.config_role) = roles(config, &seen).await;
    seen.acting = acting(config, &seen).await;
    if let Some(url) = seen.outputs().failure_queue_url.clone() {
        let mut count = parked(config, &url).await;
        // A hub's events that failed every receive wait in its dead-letter queue; redrive
        // replays both.
        if let Some(dlq) = seen.outputs().hub_dead_letter_queue_url.clone() {
            count = match (count, parked(config, &dlq).await) {
                (Ok(a), Ok(b)) => Ok(a + b),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        seen.queue = Some((url, count));
    }
    Ok(seen)
}

/// The function's resource policy (empty when there is none), its environment, and whether it
/// has an on-failure destination.
async fn read_function(
    config: &SdkConfig,
    function: &str,
) -> (
    String,
    Option<Result<HashMap<String, String>, String>>,
    Option<bool>,
) {
    let lambda = crate::aws::lambda(config);
    let policy = lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .ok()
        .and_then(|p| p.policy().map(str::to_owned))
        .unwrap_or_default();
    let environment = match lambda
        .get_function_configuration()
        .function_name(function)
        .send()
        .await
    {
        Ok(f) => Ok(f
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default()),
        Err(e) => Err(error_text(&e)),
    };
    let invoke = lambda
        .get_function_event_invoke_config()
        .function_name(function)
        .send()
        .await;
    let on_failure = invoke.is_ok_and(|c| {
        c.destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|d| d.destination())
            .is_some()
    });
    (policy, Some(environment), Some(on_failure))
}

/// The sender (the function's, else the stack's), its SES identity, and the sandbox warning.
async fn ses(
    config: &SdkConfig,
    seen: &Seen,
) -> Option<(String, Result<String, String>, Option<String>)> {
    let sender = match &seen.function {
        Some(Ok(vars)) => Settings::from_lookup(|k| vars.get(k).cloned())
            .ok()
            .map(|s| s.sender),
        _ => None,
    }
    .or_else(|| seen.params().sender.clone())?;
    let ses = crate::aws::sesv2(config);
    let identity = crate::deploy::preflight::sender_identity(&ses, &seen.place, &sender)
        .await
        .map_err(|e| e.to_string());
    let sandbox = crate::deploy::preflight::sandbox_warning(&ses, &seen.place).await;
    Some((sender, identity, sandbox))
}

/// The route from the channel (or the rule) to the function.
async fn route(config: &SdkConfig, seen: &Seen) -> Route {
    let Some(function_arn) = seen.outputs().function_arn.as_deref() else {
        return Route::None;
    };
    if seen.params().eventbridge() {
        return Route::Rule(rule(config, &seen.stack_name).await);
    }
    let channel_topic = seen.found.channel.as_ref().and_then(|c| c.sns_topic_arn());
    let Some(topic) = channel_topic.or(seen.outputs().topic_arn.as_deref()) else {
        return Route::None;
    };
    let place = &seen.place;
    let sns = sns_for(config, topic);
    let subscription = topic::subscription(&sns, place, topic, function_arn)
        .await
        .map_err(|e| e.to_string());
    let redrive = match (&subscription, seen.outputs().failure_queue_arn.as_deref()) {
        (Ok(Some(sub)), Some(_)) if topic::can_redrive(topic, place) => Some(
            topic::redrive(&sns, place, topic, sub)
                .await
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    };
    Route::Topic {
        topic: topic.to_owned(),
        subscription,
        redrive,
    }
}

/// The stack's EventBridge rule and its targets.
async fn rule(config: &SdkConfig, stack_name: &str) -> Result<Option<Rule>, String> {
    let cf = crate::aws::cloudformation(config);
    let Some(name) = crate::deploy::stack::physical_id(&cf, stack_name, "EventRule").await else {
        return Ok(None);
    };
    let events = crate::aws::eventbridge(config);
    let described = (events.describe_rule().name(&name).send().await)
        .map_err(|e| format!("cannot read rule {name}: {}", error_text(&e)))?;
    let targets = (events.list_targets_by_rule().rule(&name).send().await)
        .map_err(|e| format!("cannot list the targets of {name}: {}", error_text(&e)))?;
    Ok(Some(Rule {
        arn: described.arn().unwrap_or_default().to_owned(),
        enabled: described.state() == Some(&aws_sdk_eventbridge::types::RuleState::Enabled),
        targets: targets
            .targets()
            .iter()
            .map(|t| t.arn().to_owned())
            .collect(),
        name,
    }))
}

/// The channel's last delivery to its topic (the stream of changes the handler hears).
async fn delivery(
    config: &SdkConfig,
    channel: &str,
) -> Result<Option<ConfigStreamDeliveryInfo>, String> {
    // A report line, not a step anything waits on: one attempt (emulators may not have the call,
    // and five retried 5xx would only make status slow).
    let once = aws_sdk_config::config::Builder::default()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1));
    let out = crate::aws::configservice(config)
        .describe_delivery_channel_status()
        .delivery_channel_names(channel)
        .customize()
        .config_override(once)
        .send()
        .await
        .map_err(|e| {
            format!(
                "could not read the status of channel {channel}: {}",
                error_text(&e)
            )
        })?;
    Ok(out
        .delivery_channels_status()
        .first()
        .and_then(|s| s.config_stream_delivery_info())
        .cloned())
}

/// What the stack's roles may do, as IAM evaluates their policies: the handler's, and the Config
/// role's while the recorder uses it.
async fn roles(config: &SdkConfig, seen: &Seen) -> (Option<Simulated>, Option<Simulated>) {
    let iam = crate::aws::iam(config);
    let (o, params) = (seen.outputs(), seen.params());
    let place = &seen.place;
    let identity = match &seen.ses {
        Some((sender, Ok(identity), _)) => Some((sender.as_str(), identity.as_str())),
        _ => None,
    };
    let mut handler = None;
    if let (Some(role_arn), Some((sender, identity)), Some(bucket), Some(table), Some(queue)) = (
        &o.handler_role_arn,
        identity,
        &o.config_bucket_name,
        &o.idempotency_table_name,
        &o.failure_queue_arn,
    ) {
        let asks = simulate::handler_asks(&simulate::HandlerUse {
            role_arn,
            region: &place.region,
            account: &place.account,
            sender,
            identity,
            bucket,
            table,
            queue_arn: queue,
            destination_parameters: params
                .destination_parameters
                .iter()
                .map(String::as_str)
                .collect(),
            destination_key: params.destination_kms_key_arn.as_deref(),
            actor_feed: params.actor_feed == Some(OnOff::On),
            link_key: o.link_key_arn.as_deref(),
            auto_revert: params.all.get("AutoRevert").map(String::as_str) == Some("on"),
            wake_queue_arn: o.wake_queue_arn.as_deref(),
            security_hub: params.all.get("SecurityHub").map(String::as_str) == Some("on"),
            chatbot_topics: params
                .all
                .get("ChatbotTopics")
                .map(|t| t.split(',').filter(|t| !t.is_empty()).collect())
                .unwrap_or_default(),
        });
        handler = Some(simulate::simulate(&iam, role_arn, &asks).await);
    }
    let recorder_role = seen.found.recorder.as_ref().and_then(|r| r.role_arn());
    let mut config_role = None;
    if let (Some(role_arn), Some(bucket), Some(topic)) =
        (&o.config_role_arn, &o.config_bucket_name, &o.topic_arn)
    {
        if recorder_role == Some(role_arn.as_str()) {
            let asks =
                simulate::config_asks(role_arn, &place.region, &place.account, bucket, topic);
            config_role = Some(simulate::simulate(&iam, role_arn, &asks).await);
        }
    }
    (handler, config_role)
}

/// The links' function URL and the roles that may revoke: act's (with the links on) and the
/// handler's (with auto-revert on), each asked what it needs and what it must be refused.
async fn acting(config: &SdkConfig, seen: &Seen) -> Acting {
    let iam = crate::aws::iam(config);
    let (o, params) = (seen.outputs(), seen.params());
    let place = &seen.place;
    let mut acting = Acting::default();
    if let Some(function) = o.function_name.as_deref().filter(|_| o.act_url.is_some()) {
        let act = function.replace("-handler", "-act");
        acting.url = Some(
            crate::aws::lambda(config)
                .get_function_url_config()
                .function_name(&act)
                .send()
                .await
                .map(|u| u.function_url().to_owned())
                .map_err(|e| format!("GetFunctionUrlConfig {act}: {}", error_text(&e))),
        );
    }
    let identity = match &seen.ses {
        Some((sender, Ok(identity), _)) => Some((sender.as_str(), identity.as_str())),
        _ => None,
    };
    if let (Some(role_arn), Some(key), Some(table), Some((sender, identity))) = (
        &o.act_role_arn,
        &o.link_key_arn,
        &o.idempotency_table_name,
        identity,
    ) {
        let asks = simulate::act_asks(&simulate::ActUse {
            role_arn,
            region: &place.region,
            account: &place.account,
            sender,
            identity,
            table,
            key,
        });
        acting.act_role = Some(simulate::simulate(&iam, role_arn, &asks).await);
        let untagged = simulate::revoke_without_the_tag(role_arn, &place.region, &place.account);
        acting
            .untagged_revoke
            .push(("act", simulate::allowed(&iam, role_arn, &untagged).await));
    }
    if let Some(role_arn) = o
        .handler_role_arn
        .as_ref()
        .filter(|_| params.all.get("AutoRevert").map(String::as_str) == Some("on"))
    {
        let untagged = simulate::revoke_without_the_tag(role_arn, &place.region, &place.account);
        acting.untagged_revoke.push((
            "handler",
            simulate::allowed(&iam, role_arn, &untagged).await,
        ));
    }
    acting
}

/// How many messages the failure queue holds (visible and in flight).
async fn parked(config: &SdkConfig, url: &str) -> Result<u64, String> {
    crate::deploy::observe::parked_count(config, url)
        .await
        .map_err(|e| format!("cannot read {url}: {e}"))
}

/// The stack and what it says about itself.
fn stack_link(seen: &Seen) -> Vec<Check> {
    let (name, place, install) = (&seen.stack_name, &seen.place, seen.install_hint());
    let Some(deployed) = &seen.deployed else {
        return vec![Check::fail(
            "stack",
            format!("stack {name} not found in {place}: {install}"),
        )];
    };
    let status = deployed.status();
    let shown = status.map(|s| s.as_str()).unwrap_or("?");
    vec![if matches!(
        status,
        Some(StackStatus::CreateComplete | StackStatus::UpdateComplete)
    ) {
        Check::ok("stack", format!("{name} is {shown}"))
    } else {
        Check::fail(
            "stack",
            format!("{name} is {shown}: {install} (see its events for the cause)"),
        )
    }]
}

/// The Config recorder: exists, records security groups, is recording, last status.
fn recorder_link(seen: &Seen) -> Vec<Check> {
    let found = &seen.found;
    let Some(r) = found.recorder_name() else {
        return vec![Check::fail(
            "config recorder exists",
            format!(
                "no configuration recorder in {}: {}",
                seen.place,
                seen.install_hint()
            ),
        )];
    };
    vec![
        Check::ok("config recorder exists", r),
        if found.records_security_groups() {
            Check::ok(
                "records security groups",
                "AWS::EC2::SecurityGroup is recorded",
            )
        } else {
            Check::fail(
                "records security groups",
                format!(
                    "recorder {r} does not record AWS::EC2::SecurityGroup: add it, or run \
                     `sgwatch install --extend-recorder`"
                ),
            )
        },
        frequency_check(found),
        if found.recording {
            Check::ok("recorder is recording", "recording")
        } else {
            Check::fail(
                "recorder is recording",
                format!(
                    "stopped: aws configservice start-configuration-recorder \
                     --configuration-recorder-name {r}"
                ),
            )
        },
        match found.last_status.as_deref() {
            Some("FAILURE") => Check::fail(
                "last recording status",
                "FAILURE: check that the recorder's role may read the resources \
                 (service-role/AWS_ConfigRole)",
            ),
            Some(s) => Check::ok("last recording status", s),
            None => Check::warn("last recording status", "nothing recorded yet"),
        },
    ]
}

/// How often the recorder records security groups: a daily recording reports a change up to a
/// day late, so every email is that late.
pub fn frequency_check(found: &Found) -> Check {
    const CHECK: &str = "recording frequency";
    match found.daily_security_groups() {
        Some(daily) => Check::fail(
            CHECK,
            format!(
                "{daily}: AWS Config reports a change to a group only at its next daily capture, \
                 so owners hear of it up to 24 hours late. Set the recorder's recording \
                 frequency to continuous (or a CONTINUOUS override for {})",
                recorder::SECURITY_GROUP
            ),
        ),
        None => Check::ok(CHECK, "continuous"),
    }
}

/// The delivery channel: to the bucket, to the topic, and its last delivery.
fn channel_link(seen: &Seen) -> Vec<Check> {
    let Some(channel) = &seen.found.channel else {
        return vec![Check::fail(
            "delivery channel",
            format!(
                "no delivery channel in {}: {}",
                seen.place,
                seen.install_hint()
            ),
        )];
    };
    let name = channel.name().unwrap_or("?");
    let bucket_check = "delivery channel → bucket";
    let bucket = match (channel.s3_bucket_name(), &seen.channel_bucket) {
        (Some(bucket), Some(Ok(true))) => {
            Check::ok(bucket_check, format!("{name} → s3://{bucket}"))
        }
        (Some(bucket), Some(Ok(false))) => Check::fail(
            bucket_check,
            format!(
                "{name} → s3://{bucket}, which does not exist: {}",
                seen.install_hint()
            ),
        ),
        (Some(_), Some(Err(e))) => Check::warn(bucket_check, e.clone()),
        _ => Check::fail(bucket_check, format!("{name} names no bucket")),
    };
    let topic_check = "delivery channel → topic";
    let topic = match channel.sns_topic_arn() {
        Some(topic) => {
            let ours = seen.outputs().topic_arn.as_deref() == Some(topic);
            Check::ok(
                topic_check,
                format!("{topic}{}", if ours { "" } else { " (adopted)" }),
            )
        }
        None if seen.params().eventbridge() => Check::ok(
            topic_check,
            "none (events reach the handler through EventBridge)",
        ),
        None => Check::fail(
            topic_check,
            format!("{name} sends to no SNS topic: run install with --source eventbridge"),
        ),
    };
    let delivery_check = "last delivery to the topic";
    let delivered = match &seen.delivery {
        Some(Err(e)) => Check::warn(delivery_check, e.clone()),
        Some(Ok(Some(stream))) if stream.last_status() == Some(&DeliveryStatus::Failure) => {
            Check::fail(
                delivery_check,
                format!(
                    "FAILURE ({}: {}): check that the topic's policy lets config.amazonaws.com \
                     publish, or the recorder's role may sns:Publish to it",
                    stream.last_error_code().unwrap_or("?"),
                    stream.last_error_message().unwrap_or("no message")
                ),
            )
        }
        Some(Ok(Some(stream))) if stream.last_status() == Some(&DeliveryStatus::Success) => {
            Check::ok(delivery_check, "SUCCESS")
        }
        _ => Check::ok(delivery_check, "nothing delivered yet"),
    };
    vec![bucket, topic, delivered]
}

/// The event source (topic → subscription → function, or rule → function), what SNS does with
/// what it cannot deliver, and the function's permission for the source.
fn route_link(seen: &Seen) -> Vec<Check> {
    let function_arn = seen.outputs().function_arn.as_deref().unwrap_or_default();
    match &seen.route {
        Route::None => Vec::new(),
        Route::Topic {
            topic,
            subscription,
            redrive,
        } => {
            let check = "topic → subscription → function";
            let mut out = vec![match subscription {
                Ok(Some(_)) => Check::ok(check, format!("{topic} → {function_arn}")),
                Ok(None) => Check::fail(
                    check,
                    format!(
                        "{topic} has no subscription for {function_arn}: run `sgwatch install`"
                    ),
                ),
                Err(e) => Check::fail(check, e.clone()),
            }];
            if let (Ok(Some(_)), Some(queue)) =
                (subscription, seen.outputs().failure_queue_arn.as_deref())
            {
                out.push(redrive_check(seen, topic, redrive.as_ref(), queue));
            }
            out.push(permission(
                &seen.policy,
                "sns.amazonaws.com",
                topic,
                function_arn,
            ));
            out
        }
        Route::Rule(rule) => {
            let check = "EventBridge rule → function";
            match rule {
                Err(e) => vec![Check::fail(check, e.clone())],
                Ok(None) => vec![Check::fail(
                    check,
                    "the stack has no EventRule: run `sgwatch install --source eventbridge`",
                )],
                Ok(Some(r)) => {
                    let name = &r.name;
                    let aimed = r.targets.iter().any(|t| t == function_arn);
                    vec![
                        match (r.enabled, aimed) {
                            (true, true) => Check::ok(check, format!("{name} → {function_arn}")),
                            (false, _) => Check::fail(
                                check,
                                format!(
                                    "rule {name} is disabled: aws events enable-rule --name {name}"
                                ),
                            ),
                            (_, false) => Check::fail(
                                check,
                                format!(
                                    "rule {name} does not target {function_arn}: run `sgwatch install`"
                                ),
                            ),
                        },
                        permission(&seen.policy, "events.amazonaws.com", &r.arn, function_arn),
                    ]
                }
            }
        }
    }
}

/// Whether SNS parks what it cannot deliver through the subscription in the failure queue.
fn redrive_check(
    seen: &Seen,
    topic: &str,
    redrive: Option<&Result<Option<String>, String>>,
    queue: &str,
) -> Check {
    let check = "undeliverable → failure queue";
    match redrive {
        None => Check::warn(
            check,
            format!(
                "{topic} is in another account or region, where the failure queue cannot serve \
                 as its dead-letter queue: what SNS fails to deliver to the function is dropped"
            ),
        ),
        Some(Ok(policy)) if topic::redrives_to(policy.as_deref(), queue) => Check::ok(
            check,
            format!("the subscription's redrive policy names {queue}"),
        ),
        Some(Ok(policy)) => Check::fail(
            check,
            format!(
                "the subscription to {topic} has {}: what SNS fails to deliver to the function \
                 is dropped; {}",
                match policy {
                    Some(p) => format!("redrive policy {p}, not the failure queue"),
                    None => "no redrive policy".to_owned(),
                },
                seen.install_hint()
            ),
        ),
        Some(Err(e)) => Check::fail(check, e.clone()),
    }
}

/// The function: its settings as the handler reads them at start, its discovery baseline, and
/// where its failures go.
fn function_link(seen: &Seen) -> Vec<Check> {
    let (Some(function), Some(read)) = (seen.outputs().function_name.as_deref(), &seen.function)
    else {
        return Vec::new();
    };
    let install = seen.install_hint();
    let mut out = Vec::new();
    match read {
        Ok(vars) => {
            out.push(match Settings::from_lookup(|k| vars.get(k).cloned()) {
                Ok(settings) => Check::ok(
                    "function settings",
                    format!("{function}: sender {}", settings.sender),
                ),
                Err(e) => Check::fail(
                    "function settings",
                    format!("{function} would stop at start: {e}; {install} with valid flags"),
                ),
            });
            out.push(baseline(vars.get("SGWATCH_BASELINE_UNTIL")));
        }
        Err(e) => out.push(Check::fail(
            "function settings",
            format!("cannot read function {function}: {e}"),
        )),
    }
    out.push(if seen.on_failure == Some(true) {
        Check::ok("failures go to the queue", "on-failure destination set")
    } else {
        Check::warn(
            "failures go to the queue",
            format!(
                "{function} has no on-failure destination (the stack's InvokeConfig): events \
                 that fail every retry would be lost; {install}"
            ),
        )
    });
    out
}

/// The discovery baseline the function holds (install sets it when it starts recording).
fn baseline(until: Option<&String>) -> Check {
    match until.filter(|t| !t.is_empty()) {
        Some(t) => Check::ok(
            "discovery baseline",
            format!("groups discovered before {t} are not emailed"),
        ),
        None => Check::ok(
            "discovery baseline",
            "none: every group AWS Config discovers is emailed as new",
        ),
    }
}

/// The SES sender identity, and whether the account may mail anyone.
fn ses_link(seen: &Seen) -> Vec<Check> {
    let Some((sender, identity, sandbox)) = &seen.ses else {
        return Vec::new();
    };
    vec![
        match identity {
            Ok(found) => Check::ok(
                "SES sender verified",
                format!("{sender} (identity {found})"),
            ),
            Err(e) => Check::fail("SES sender verified", e.clone()),
        },
        match sandbox {
            None => Check::ok("SES production access", "owners can receive mail"),
            Some(w) => Check::warn("SES production access", w.clone()),
        },
    ]
}

/// What the stack's roles may do, as IAM's simulator answers.
fn roles_link(seen: &Seen) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(answer) = &seen.handler_role {
        out.extend(simulated("handler role may act", answer));
    }
    if let Some(answer) = &seen.config_role {
        out.extend(simulated("config role may deliver", answer));
    }
    out
}

/// Acting on alerts: the links (on, with their URL, or off), auto-revert's mode, act's role, and
/// that no role revokes on a group without the opt-in tag.
fn acting_link(seen: &Seen) -> Vec<Check> {
    let (o, all) = (seen.outputs(), &seen.params().all);
    if seen.deployed.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let links_on = all.get("ActLinks").map(String::as_str) == Some("on");
    out.push(match (&seen.acting.url, &o.act_url) {
        (Some(Ok(url)), _) => Check::ok(
            "owners' links",
            format!(
                "Revert and Keep links at {url} (a link acts {} h, a Keep stands {} days)",
                all.get("ActLinkHours").map_or("24", String::as_str),
                all.get("KeepDays").map_or("30", String::as_str)
            ),
        ),
        (Some(Err(e)), _) => Check::fail(
            "owners' links",
            format!("the act function's URL cannot be read: {e}; run install again"),
        ),
        (None, _) if links_on => Check::fail(
            "owners' links",
            "--act-links is on but the stack lists no act function URL: run install again",
        ),
        (None, _) => Check::ok(
            "owners' links",
            "off: alerts give commands, no links (install --act-links on adds Revert and Keep links)",
        ),
    });
    let mode = all.get("AutoRevert").map_or("off", String::as_str);
    let at = all.get("AutoRevertAt").map_or("critical", String::as_str);
    let trusted = all
        .get("TrustedPrincipals")
        .filter(|t| !t.is_empty())
        .map_or_else(
            || "no trusted principals".to_owned(),
            |t| format!("trusted: {t}"),
        );
    out.push(Check::ok(
        "auto-revert",
        match mode {
            "off" => "off (install --auto-revert shadow tries it without reverting)".to_owned(),
            "shadow" => format!("shadow at {at} and above: says what it would revert; {trusted}"),
            _ => format!("on at {at} and above: removes internet-open ingress rules a change adds; {trusted}"),
        },
    ));
    if let Some(answer) = &seen.acting.act_role {
        out.extend(simulated("act role may act", answer));
    }
    for (role, answer) in &seen.acting.untagged_revoke {
        let check = format!("{role} revokes only opted-in");
        out.push(match answer {
            Ok(false) => Check::ok(
                &check,
                "RevokeSecurityGroupIngress is refused on a group without NotifyOnChange",
            ),
            Ok(true) => Check::fail(
                &check,
                format!("the {role} role may revoke on a group without NotifyOnChange: its policy lost the tag condition; run install again"),
            ),
            Err(why) => Check::warn(&check, format!("could not simulate: {why}")),
        });
    }
    out
}

/// The noise controls: the digest level, when the daily digest goes, and its schedule.
fn quiet_link(seen: &Seen) -> Vec<Check> {
    if seen.deployed.is_none() {
        return Vec::new();
    }
    let all = &seen.params().all;
    let part = |name: &str, default: u8| {
        all.get(name)
            .and_then(|v| v.parse::<u8>().ok())
            .unwrap_or(default)
    };
    let at = format!(
        "{:02}:{:02} {}",
        part("DigestHour", 8),
        part("DigestMinute", 0),
        all.get("DigestTimezone").map_or("UTC", String::as_str)
    );
    let level = match all.get("Digest").map_or("off", String::as_str) {
        "off" => String::new(),
        level => format!("{} and below, ", level.to_ascii_uppercase()),
    };
    let held = format!(
        "{level}trusted principals' changes below HIGH, and quiet periods' (tag sgwatch:quiet-until) below CRITICAL"
    );
    let coalescing = match all.get("CoalesceSeconds").map_or("60", String::as_str) {
        "0" => Check::ok(
            "coalescing",
            "off: each change goes alone (install --coalesce 60s gathers a group's changes)",
        ),
        s => Check::ok(
            "coalescing",
            format!("a group's changes within {s} s go as one email; CRITICAL at once"),
        ),
    };
    let digest = match &seen.outputs().digest_schedule_name {
        Some(name) => Check::ok(
            "daily digest",
            format!("at {at} by schedule {name}: {held}"),
        ),
        None => Check::fail(
            "daily digest",
            format!("the stack lists no digest schedule, so changes held for the digest ({held}) are never sent: run install again"),
        ),
    };
    let rate = match all.get("MaxPerGroupHour").map_or("10", String::as_str) {
        "0" => Check::ok("rate limit", "none: every change a noise control does not hold is emailed"),
        n => Check::ok(
            "rate limit",
            format!("{n} emails per group an hour; past it, the digest and a summary at the hour's end (CRITICAL always sent)"),
        ),
    };
    vec![coalescing, rate, digest]
}

/// One line for a role's simulation: ok, one FAIL per denied action, or a warning when IAM could
/// not be asked.
fn simulated(check: &str, answer: &Simulated) -> Vec<Check> {
    match answer {
        Simulated::Allowed(n) => vec![Check::ok(
            check,
            format!("all {n} actions it needs are allowed"),
        )],
        Simulated::Denied(lines) => lines
            .iter()
            .map(|l| Check::fail(check, l.clone()))
            .collect(),
        Simulated::Unavailable(why) => {
            vec![Check::warn(check, format!("could not simulate: {why}"))]
        }
    }
}

/// What failed every retry and waits in the failure queue.
fn failures_link(seen: &Seen) -> Vec<Check> {
    let Some((_, parked)) = &seen.queue else {
        return Vec::new();
    };
    let check = "failure queue empty";
    vec![match parked {
        Ok(0) => Check::ok(check, "no failed notifications"),
        Ok(n) => Check::warn(
            check,
            crate::cmd::redrive::parked_line(*n).unwrap_or_default(),
        ),
        Err(e) => Check::fail(check, e.clone()),
    }]
}

/// The record teardown relies on.
fn record_link(seen: &Seen) -> Vec<Check> {
    vec![match (&seen.record_error, &seen.state) {
        (Some(e), _) => Check::warn("install record", e.clone()),
        (None, Some(state)) => Check::ok(
            "install record",
            format!("recorder {}, channel {}", state.recorder, state.channel),
        ),
        (None, None) => Check::warn(
            "install record",
            format!(
                "none: teardown would not know what install created; {}",
                seen.install_hint()
            ),
        ),
    }]
}

/// What the function's resource policy says about `principal` invoking it from a source.
#[derive(Debug, PartialEq, Eq)]
enum Permit {
    /// A statement allows it, conditioned on the source's ARN alone.
    Allowed,
    /// No statement allows it.
    Missing,
    /// The statements that name the source also require other condition keys (`ArnLike
    /// AWS:SourceArn` is fine; `StringEquals AWS:SourceAccount` is not: not every source sets
    /// it, and a condition key the request lacks denies it), by statement id.
    Conditioned { sid: String, keys: Vec<String> },
}

/// Reads the function's resource policy (`lambda:GetPolicy`) for `principal` invoking it from
/// `source`: the statement's whole `Condition` must be `ArnLike` or `ArnEquals` on
/// `AWS:SourceArn` (condition keys are case-insensitive in IAM).
fn permits(policy: &str, principal: &str, source: &str) -> Permit {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return Permit::Missing;
    };
    let statements = doc["Statement"].as_array().cloned().unwrap_or_default();
    let mut conditioned = None;
    for s in &statements {
        if s["Effect"] != "Allow" || s["Principal"]["Service"] != principal {
            continue;
        }
        let Some(condition) = s["Condition"].as_object() else {
            continue;
        };
        let mut names_source = false;
        let mut others = Vec::new();
        for (operator, keys) in condition {
            for (key, value) in keys.as_object().into_iter().flatten() {
                let arn_test = matches!(operator.as_str(), "ArnLike" | "ArnEquals");
                if arn_test && key.eq_ignore_ascii_case("aws:SourceArn") {
                    names_source |= value == source;
                    if value != source {
                        others.push(format!("{operator} {key} {value}"));
                    }
                } else {
                    others.push(format!("{operator} {key}"));
                }
            }
        }
        match (names_source, others.is_empty()) {
            (true, true) => return Permit::Allowed,
            (true, false) => {
                conditioned.get_or_insert(Permit::Conditioned {
                    sid: s["Sid"].as_str().unwrap_or("?").to_owned(),
                    keys: others,
                });
            }
            (false, _) => {}
        }
    }
    conditioned.unwrap_or(Permit::Missing)
}

/// The "function permission" line for `principal` invoking the function from `source`.
fn permission(policy: &str, principal: &str, source: &str, function_arn: &str) -> Check {
    let check = "function permission";
    match permits(policy, principal, source) {
        Permit::Allowed => Check::ok(check, format!("{source} may invoke it")),
        Permit::Missing => Check::fail(
            check,
            format!("nothing lets {source} invoke the function: run `sgwatch install`"),
        ),
        Permit::Conditioned { sid, keys } => Check::fail(
            check,
            format!(
                "statement {sid} lets {source} invoke the function only under {}, which not \
                 every event source sets, so it denies every invocation: replace it with one \
                 conditioned on the source ARN alone (aws lambda remove-permission \
                 --function-name {function_arn} --statement-id {sid}; aws lambda add-permission \
                 --function-name {function_arn} --statement-id {sid} --action \
                 lambda:InvokeFunction --principal {principal} --source-arn {source})",
                keys.join(" and ")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:1:t";

    fn policy(condition: &str) -> String {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"SnsPermission","Effect":"Allow",
            "Principal":{{"Service":"sns.amazonaws.com"}},"Action":"lambda:InvokeFunction",
            "Condition":{condition}}}]}}"#
        )
    }

    #[test]
    fn a_recorder_that_records_groups_daily_fails() {
        use aws_sdk_config::types::{
            ConfigurationRecorder, RecordingFrequency, RecordingGroup, RecordingMode,
        };
        let found = |frequency| Found {
            recorder: Some(
                ConfigurationRecorder::builder()
                    .name("default")
                    .recording_group(RecordingGroup::builder().all_supported(true).build())
                    .recording_mode(
                        RecordingMode::builder()
                            .recording_frequency(frequency)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            ),
            ..Found::default()
        };
        let ok = frequency_check(&found(RecordingFrequency::Continuous));
        assert_eq!((ok.level, ok.detail.as_str()), (Level::Ok, "continuous"));
        let daily = frequency_check(&found(RecordingFrequency::Daily));
        assert_eq!(daily.level, Level::Fail);
        assert!(
            daily.detail.starts_with("recorder default records daily")
                && daily.detail.contains("up to 24 hours late"),
            "{}",
            daily.detail
        );
        // A recorder without recordingMode (as before the setting existed) is continuous.
        assert_eq!(frequency_check(&Found::default()).level, Level::Ok);
    }

    #[test]
    fn a_permission_counts_only_for_its_principal_and_source() {
        let p = policy(r#"{"ArnLike":{"AWS:SourceArn":"arn:aws:sns:us-east-1:1:t"}}"#);
        assert_eq!(permits(&p, "sns.amazonaws.com", TOPIC), Permit::Allowed);
        assert_eq!(
            permits(&p, "sns.amazonaws.com", "arn:aws:sns:us-east-1:1:other"),
            Permit::Missing
        );
        assert_eq!(permits(&p, "events.amazonaws.com", TOPIC), Permit::Missing);
        assert_eq!(permits("", "sns.amazonaws.com", TOPIC), Permit::Missing);
        let p = policy(r#"{"ArnEquals":{"aws:sourcearn":"arn:aws:sns:us-east-1:1:t"}}"#);
        assert_eq!(permits(&p, "sns.amazonaws.com", TOPIC), Permit::Allowed);
    }

    #[test]
    fn a_permission_with_another_condition_key_fails_naming_it() {
        let p = policy(
            r#"{"ArnLike":{"AWS:SourceArn":"arn:aws:sns:us-east-1:1:t"},
                "StringEquals":{"AWS:SourceAccount":"1"}}"#,
        );
        assert_eq!(
            permits(&p, "sns.amazonaws.com", TOPIC),
            Permit::Conditioned {
                sid: "SnsPermission".into(),
                keys: vec!["StringEquals AWS:SourceAccount".into()]
            }
        );
        let line = &permission(
            &p,
            "sns.amazonaws.com",
            TOPIC,
            "arn:aws:lambda:us-east-1:1:function:f",
        );
        assert_eq!(line.level, Level::Fail);
        assert!(
            line.detail.starts_with(
                "statement SnsPermission lets arn:aws:sns:us-east-1:1:t invoke the function only \
                 under StringEquals AWS:SourceAccount, which not every event source sets, so it \
                 denies every invocation"
            ),
            "{}",
            line.detail
        );
        assert!(line.detail.contains("--statement-id SnsPermission"));

        // Another statement without the extra key is enough.
        let both = format!(
            r#"{{"Statement":[{},{}]}}"#,
            serde_json::from_str::<serde_json::Value>(&p).unwrap()["Statement"][0],
            serde_json::from_str::<serde_json::Value>(&policy(
                r#"{"ArnLike":{"AWS:SourceArn":"arn:aws:sns:us-east-1:1:t"}}"#
            ))
            .unwrap()["Statement"][0]
        );
        assert_eq!(permits(&both, "sns.amazonaws.com", TOPIC), Permit::Allowed);
        // No condition at all is not "conditioned on the source": it is not ours.
        let open =
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"}}]}"#;
        assert_eq!(permits(open, "sns.amazonaws.com", TOPIC), Permit::Missing);
    }
}
