//! `status`'s checks of where security teams look: that Security Hub is enabled in the account
//! and region when the stack imports findings (`DescribeHub`), and that each topic of a chatbot
//! destination exists and has a chat subscription (Amazon Q Developer in chat applications
//! subscribes to a topic an HTTPS endpoint of its own, `…chatbot.amazonaws.com`, when a channel
//! configuration names it). PagerDuty's routing key is a destination parameter: its check is the
//! destinations' (`destination parameter`).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_securityhub::error::ProvideErrorMetadata;

use crate::deploy::check::Check;

const HUB_CHECK: &str = "Security Hub";
const TOPIC_CHECK: &str = "chat topic";

/// What status found of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    Missing,
    /// Its subscriptions' protocols and endpoints.
    Subscribed(Vec<(String, String)>),
    Unreadable(String),
}

/// The checks the deployed stack's parameters call for; none when it imports no findings and
/// has no chatbot destination.
pub async fn checks(config: &SdkConfig, params: &BTreeMap<String, String>) -> Vec<Check> {
    let mut out = Vec::new();
    if params.get("SecurityHub").map(String::as_str) == Some("on") {
        out.push(hub_check(&describe_hub(config).await));
    }
    let topics = params.get("ChatbotTopics").cloned().unwrap_or_default();
    for topic in topics.split(',').filter(|t| !t.is_empty()) {
        out.push(topic_check(topic, &look_at_topic(config, topic).await));
    }
    out
}

/// Whether Security Hub is enabled here: `Ok(Some(since))`, `Ok(None)` (not subscribed), or
/// why it could not be asked.
pub async fn describe_hub(config: &SdkConfig) -> Result<Option<String>, String> {
    let client = crate::aws::securityhub(config);
    match client.describe_hub().send().await {
        Ok(out) => Ok(Some(out.subscribed_at().unwrap_or("?").to_owned())),
        // Security Hub answers InvalidAccessException "… is not subscribed to AWS Security Hub".
        Err(e) if e.code() == Some("InvalidAccessException") => {
            let message = e.message().unwrap_or_default();
            if message.contains("not subscribed") {
                Ok(None)
            } else {
                Err(format!("InvalidAccessException: {message}"))
            }
        }
        Err(e) => Err(match (e.code(), e.message()) {
            (Some(code), message) => format!("{code}: {}", message.unwrap_or_default()),
            _ => aws_sdk_securityhub::error::DisplayErrorContext(&e).to_string(),
        }),
    }
}

/// The line for Security Hub, from [`describe_hub`].
pub fn hub_check(found: &Result<Option<String>, String>) -> Check {
    match found {
        Ok(Some(since)) => Check::ok(
            HUB_CHECK,
            format!("enabled since {since}; findings go to this account's own product"),
        ),
        Ok(None) => Check::fail(
            HUB_CHECK,
            "not enabled in this account and region: the handler's findings are refused; \
             aws securityhub enable-security-hub (or install with --security-hub off)",
        ),
        Err(e) => Check::warn(
            HUB_CHECK,
            format!(
                "cannot tell whether it is enabled: {}; the installer needs securityhub:DescribeHub",
                e.trim_end()
            ),
        ),
    }
}

/// Whether `topic` exists, and its subscriptions.
pub async fn look_at_topic(config: &SdkConfig, topic: &str) -> Topic {
    use aws_sdk_sns::error::ProvideErrorMetadata as _;
    let sns = crate::aws::sns_for(config, topic);
    match sns.get_topic_attributes().topic_arn(topic).send().await {
        Ok(_) => {}
        Err(e) if e.code() == Some("NotFound") => return Topic::Missing,
        Err(e) => {
            return Topic::Unreadable(aws_sdk_sns::error::DisplayErrorContext(&e).to_string())
        }
    }
    let mut found = Vec::new();
    let mut pages = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => found.extend(page.subscriptions().iter().map(|s| {
                (
                    s.protocol().unwrap_or_default().to_owned(),
                    s.endpoint().unwrap_or_default().to_owned(),
                )
            })),
            Err(e) => {
                return Topic::Unreadable(aws_sdk_sns::error::DisplayErrorContext(&e).to_string())
            }
        }
    }
    Topic::Subscribed(found)
}

/// Whether a subscription is Amazon Q Developer's: HTTPS to an endpoint of `chatbot.amazonaws.com`.
pub fn is_chat(protocol: &str, endpoint: &str) -> bool {
    let host = endpoint
        .strip_prefix("https://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    protocol == "https"
        && (host == "chatbot.amazonaws.com" || host.ends_with(".chatbot.amazonaws.com"))
}

/// The line for `topic`, from [`look_at_topic`].
pub fn topic_check(topic: &str, found: &Topic) -> Check {
    match found {
        Topic::Missing => Check::fail(
            TOPIC_CHECK,
            format!(
                "{topic} does not exist: create it and name it in a channel configuration of \
                 Amazon Q Developer in chat applications"
            ),
        ),
        Topic::Subscribed(subs) if subs.iter().any(|(p, e)| is_chat(p, e)) => Check::ok(
            TOPIC_CHECK,
            format!("{topic} (a chat configuration subscribes)"),
        ),
        Topic::Subscribed(_) => Check::warn(
            TOPIC_CHECK,
            format!(
                "{topic} has no chat subscription: nothing it gets reaches a channel; add the \
                 topic to a channel configuration in Amazon Q Developer in chat applications"
            ),
        ),
        Topic::Unreadable(e) => Check::warn(
            TOPIC_CHECK,
            format!("{topic} cannot be looked at: {}", e.trim_end()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::check::Level;

    #[test]
    fn only_q_developer_s_https_endpoint_counts_as_a_chat_subscription() {
        assert!(is_chat(
            "https",
            "https://global.sns-api.chatbot.amazonaws.com"
        ));
        assert!(!is_chat(
            "https",
            "https://chatbot.amazonaws.com.evil.example/x"
        ));
        assert!(!is_chat("email", "secops@example.com"));
        let t = "arn:aws:sns:us-east-1:111122223333:chat";
        let none = Topic::Subscribed(vec![("email".into(), "a@example.com".into())]);
        assert_eq!(topic_check(t, &none).level, Level::Warn);
        assert_eq!(topic_check(t, &Topic::Missing).level, Level::Fail);
        assert_eq!(hub_check(&Ok(None)).level, Level::Fail);
        assert!(hub_check(&Ok(None)).detail.contains("enable-security-hub"));
    }
}
