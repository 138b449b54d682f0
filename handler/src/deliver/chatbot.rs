//! Amazon Q Developer in chat applications (formerly AWS Chatbot): a custom notification
//! published to the SNS topic that a team's chat configuration subscribes to. Q Developer posts it
//! to Slack, Microsoft Teams or Amazon Chime: no webhook URL and no secret, the channels are
//! managed in AWS.
//!
//! The message is the documented custom-notification event: `version` `1.0`, `source` `custom`,
//! and `content` with a title, a description and next steps; `metadata.threadId` keeps one group's
//! changes in one thread. `textType` is not set, so nothing in it is read as Markdown, and every
//! value from the group shows what it holds on one line, with `<`, `>` and `@` replaced by
//! look-alikes: a group named `<!channel>` or `@here` notifies nobody.

use aws_sdk_sns::error::ProvideErrorMetadata;
use serde_json::{json, Value};

use crate::core::decide::Decision;
use crate::core::destination::Destination;
use crate::core::finding::{cut, group_arn};
use crate::core::render::{actor_text, change_line, console_link, remedies, subject};
use crate::core::text::one_line;
use crate::core::who::ActorLookup;
use crate::deliver::post::PostError;

/// The most rule lines listed; the rest are counted.
const MAX_LINES: usize = 20;
/// The description's length: a chat message, read at a glance.
const DESCRIPTION_MAX_CHARS: usize = 3500;

/// `value` unable to mention or link anyone in a chat client.
fn inert(value: &str) -> String {
    let plain: String = value
        .chars()
        .map(|c| match c {
            '<' => '‹',
            '>' => '›',
            '@' => '＠',
            c => c,
        })
        .collect();
    one_line(&plain)
}

/// `text` (its lines already inert) cut to `max` characters.
fn within(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The custom notification of the decision, `id` naming the delivery.
pub fn message(d: &Decision, actor: &ActorLookup, id: &str) -> Value {
    let a = &d.analysis;
    let s = &a.subject;
    let mut lines = vec![
        format!("Changed by: {}", inert(&actor_text(actor))),
        format!("Account and region: {}/{}", s.account, inert(&s.region)),
    ];
    for c in a.changes.iter().take(MAX_LINES) {
        lines.push(format!("• {}", inert(&change_line(c))));
    }
    if a.changes.len() > MAX_LINES {
        lines.push(format!("(+{} more rules)", a.changes.len() - MAX_LINES));
    }
    for p in a.properties.iter().take(MAX_LINES) {
        lines.push(format!("• {} changed", inert(&p.name)));
    }
    for note in &d.notes {
        lines.push(inert(note));
    }
    lines.push(format!("Why: {}", inert(&d.reason())));
    let mut next_steps: Vec<String> = remedies(d)
        .into_iter()
        .map(|r| format!("Remove {}: {}", inert(&r.rule), r.command))
        .collect();
    if let Some(url) = console_link(&s.region, &s.resource_id) {
        next_steps.push(format!("Open the group in the AWS console: {url}"));
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": cut(id, 256),
        "content": {
            "title": inert(&subject(d)),
            "description": within(&lines.join("\n"), DESCRIPTION_MAX_CHARS),
            "nextSteps": next_steps,
            "keywords": [a.severity.as_str(), s.resource_id, s.account],
        },
        "metadata": {
            "threadId": format!("sgwatch/{}/{}/{}", s.account, s.region, s.resource_id),
            "summary": inert(&subject(d)),
            "eventType": "SecurityGroupChange",
            "relatedResources": [group_arn(s)],
            "additionalContext": {
                "account": s.account,
                "region": s.region,
                "group": s.resource_id,
                "severity": a.severity.as_str(),
            },
        },
    })
}

/// The region in a topic's ARN: SNS takes a publish only in the topic's region.
fn region_of(topic: &str) -> Option<&str> {
    topic.split(':').nth(3).filter(|r| !r.is_empty())
}

/// Publishes `message` to `destination`'s topic.
pub async fn publish(
    sns: &aws_sdk_sns::Client,
    destination: &Destination,
    message: &Value,
) -> Result<(), PostError> {
    let topic = destination.topic().unwrap_or_default();
    let mut config = sns.config().to_builder();
    if let Some(region) = region_of(topic) {
        config = config.region(aws_sdk_sns::config::Region::new(region.to_owned()));
    }
    let client = aws_sdk_sns::Client::from_conf(config.build());
    client
        .publish()
        .topic_arn(topic)
        .message(message.to_string())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            // Denied (401, 403) is for good whatever the body says.
            let denied = e
                .raw_response()
                .is_some_and(|r| matches!(r.status().as_u16(), 401 | 403));
            let transient = !denied
                && !matches!(
                    e.code(),
                    Some(
                        "NotFound"
                            | "NotFoundException"
                            | "AuthorizationError"
                            | "InvalidParameter"
                            | "InvalidParameterValue"
                            | "KMSAccessDenied"
                            | "KMSDisabled"
                            | "KMSInvalidState"
                            | "KMSNotFound"
                            | "KMSOptInRequired"
                            | "InvalidSecurity"
                    )
                );
            let reason = match (e.code(), e.message()) {
                (Some(code), message) => format!("{code}: {}", message.unwrap_or_default()),
                _ => aws_sdk_sns::error::DisplayErrorContext(&e).to_string(),
            };
            PostError::Publish {
                destination: destination.name.clone(),
                topic: topic.to_owned(),
                reason,
                transient,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_from_the_group_can_mention_anyone() {
        assert_eq!(inert("<!channel> @here"), "‹!channel› ＠here");
        assert_eq!(inert("a\nb"), "a<U+000A>b");
        assert_eq!(
            region_of("arn:aws:sns:eu-west-1:111122223333:chat"),
            Some("eu-west-1")
        );
    }
}
