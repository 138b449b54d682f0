//! The CloudWatch alarms on sgwatch's own failures, which the stack creates (`FailureQueueAlarm`,
//! `FunctionErrorsAlarm`, `FunctionThrottlesAlarm`) to email the fallback recipient through its
//! alarm topic: a failure queue nobody looks at would be a silent loss. Their names are the
//! stack's name and a fixed suffix, so `status` and `verify` name them without asking CloudWatch.

use aws_config::SdkConfig;

use crate::aws::{error_text, sns_for};
use crate::deploy::check::{Check, Level};
use crate::deploy::observe::Installed;

/// Each alarm: the suffix of its name and what it goes off on.
pub const ALARMS: [(&str, &str); 3] = [
    ("failures-parked", "an event parked in the failure queue"),
    ("function-errors", "a failed invocation"),
    ("function-throttles", "a throttled invocation"),
];

/// The alarms' names in the stack `stack_name`.
pub fn names(stack_name: &str) -> Vec<String> {
    ALARMS
        .iter()
        .map(|(suffix, _)| format!("{stack_name}-{suffix}"))
        .collect()
}

/// `sgwatch-failures-parked (an event parked in the failure queue), …`
pub fn described(stack_name: &str) -> String {
    ALARMS
        .iter()
        .map(|(suffix, what)| format!("{stack_name}-{suffix} ({what})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What `status` says of the alarms: there, and who they reach. An email subscription does
/// nothing until its recipient confirms it (SNS sends them a link), so an unconfirmed one warns.
pub async fn check(config: &SdkConfig, installed: &Installed) -> Vec<Check> {
    const CHECK: &str = "alarms on sgwatch failing";
    let Some(deployed) = &installed.deployed else {
        return Vec::new();
    };
    let alarms = described(&installed.stack_name);
    let Some(topic) = &deployed.outputs.alarm_topic_arn else {
        return vec![Check::new(
            Level::Warn,
            CHECK,
            format!(
                "the stack has none: {} to add {alarms}",
                installed.install_hint()
            ),
        )];
    };
    let Some(fallback) = &deployed.params.fallback_recipient else {
        return vec![Check::new(
            Level::Warn,
            CHECK,
            format!(
                "{alarms} publish to {topic}, which emails no one: install with \
                 --fallback-recipient, or subscribe someone to the topic"
            ),
        )];
    };
    let listed = sns_for(config, topic)
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .send()
        .await;
    let subscriptions = match listed {
        Ok(out) => out.subscriptions().to_vec(),
        Err(e) => {
            return vec![Check::new(
                Level::Warn,
                CHECK,
                format!(
                    "{alarms} publish to {topic}; its subscriptions could not be read: {}",
                    error_text(&e)
                ),
            )]
        }
    };
    let to_fallback = subscriptions.iter().find(|s| {
        s.protocol() == Some("email")
            && s.endpoint()
                .is_some_and(|e| e.eq_ignore_ascii_case(fallback))
    });
    vec![match to_fallback {
        None => Check::new(
            Level::Warn,
            CHECK,
            format!(
                "{alarms} publish to {topic}, but {fallback} is not subscribed to it: {}",
                installed.install_hint()
            ),
        ),
        Some(s) if s.subscription_arn() == Some("PendingConfirmation") => Check::new(
            Level::Warn,
            CHECK,
            format!(
                "{alarms} email {fallback}, who has not yet confirmed the subscription: until the \
                 link in AWS Notifications' email is followed, no alarm reaches them"
            ),
        ),
        Some(_) => Check::new(Level::Ok, CHECK, format!("{alarms} email {fallback}")),
    }]
}
