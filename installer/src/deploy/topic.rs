//! The handler's subscription to an adopted delivery channel's SNS topic. The topic is not ours,
//! so neither is a place in our stack: the subscription and the function's permission for that
//! topic are made through the SDK, recorded, and removed by teardown.
//!
//! Also the redrive policy of the handler's subscriptions (to that topic and to the stack's own),
//! which parks in the failure queue what SNS could not deliver to the function.

use aws_sdk_sns::error::ProvideErrorMetadata;

use crate::aws::Place;

/// The statement id of the function's permission for the adopted topic.
pub const STATEMENT_ID: &str = "sgwatch-adopted-topic";

#[derive(Debug, thiserror::Error)]
#[error("{action} {topic} in {place} failed: {detail}")]
pub struct TopicError {
    action: &'static str,
    topic: String,
    place: Place,
    detail: String,
}

fn error<E, R>(
    action: &'static str,
    topic: &str,
    place: &Place,
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> TopicError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + 'static,
{
    TopicError {
        action,
        topic: topic.to_owned(),
        place: place.clone(),
        detail: crate::aws::error_text(err),
    }
}

/// The ARN of the function's subscription to `topic`, if there is one.
pub async fn subscription(
    sns: &aws_sdk_sns::Client,
    place: &Place,
    topic: &str,
    function_arn: &str,
) -> Result<Option<String>, TopicError> {
    let mut pages = sns
        .list_subscriptions_by_topic()
        .topic_arn(topic)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| error("listing the subscriptions of", topic, place, &e))?;
        if let Some(found) = page
            .subscriptions()
            .iter()
            .find(|s| s.protocol() == Some("lambda") && s.endpoint() == Some(function_arn))
        {
            return Ok(found.subscription_arn().map(str::to_owned));
        }
    }
    Ok(None)
}

/// Lets `topic` invoke the function (scoped by SourceArn) and subscribes the function to it.
/// Both are idempotent: an existing permission or subscription is kept. Returns the subscription.
pub async fn subscribe(
    sns: &aws_sdk_sns::Client,
    lambda: &aws_sdk_lambda::Client,
    place: &Place,
    topic: &str,
    function_arn: &str,
) -> Result<String, TopicError> {
    let added = lambda
        .add_permission()
        .function_name(function_arn)
        .statement_id(STATEMENT_ID)
        .action("lambda:InvokeFunction")
        .principal("sns.amazonaws.com")
        .source_arn(topic)
        .send()
        .await;
    match added {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_conflict_exception()) => {}
        Err(e) => return Err(error("letting the handler be invoked by", topic, place, &e)),
    }
    // SNS returns the existing subscription for the same endpoint, so this is safe to repeat.
    let subscribed = sns
        .subscribe()
        .topic_arn(topic)
        .protocol("lambda")
        .endpoint(function_arn)
        .return_subscription_arn(true)
        .send()
        .await
        .map_err(|e| error("subscribing the handler to", topic, place, &e))?;
    Ok(subscribed.subscription_arn().unwrap_or_default().to_owned())
}

/// Removes the subscription and the permission. Already gone is success.
pub async fn unsubscribe(
    sns: &aws_sdk_sns::Client,
    lambda: &aws_sdk_lambda::Client,
    place: &Place,
    topic: &str,
    subscription_arn: &str,
    function: Option<&str>,
) -> Result<(), TopicError> {
    match sns
        .unsubscribe()
        .subscription_arn(subscription_arn)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some("NotFound") || e.code() == Some("NotFoundException") => {}
        Err(e) => return Err(error("unsubscribing the handler from", topic, place, &e)),
    }
    if let Some(function) = function {
        match lambda
            .remove_permission()
            .function_name(function)
            .statement_id(STATEMENT_ID)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => {
                return Err(error(
                    "removing the handler's permission for",
                    topic,
                    place,
                    &e,
                ))
            }
        }
    }
    Ok(())
}

/// The subscription attribute that names where SNS parks what it could not deliver.
const REDRIVE_POLICY: &str = "RedrivePolicy";

/// The redrive policy that parks what SNS could not deliver to the function in `queue_arn`
/// ("Amazon SNS dead-letter queues" in the SNS developer guide: the queue must be in the
/// subscription's account and region, and its policy must let the topic send).
pub fn redrive_policy(queue_arn: &str) -> String {
    serde_json::json!({ "deadLetterTargetArn": queue_arn }).to_string()
}

/// Whether a subscription's `RedrivePolicy` attribute sends to `queue_arn`.
pub fn redrives_to(attribute: Option<&str>, queue_arn: &str) -> bool {
    attribute
        .and_then(|a| serde_json::from_str::<serde_json::Value>(a).ok())
        .is_some_and(|p| p["deadLetterTargetArn"] == queue_arn)
}

/// The subscription's redrive policy, as SNS holds it (`None` when it has none).
pub async fn redrive(
    sns: &aws_sdk_sns::Client,
    place: &Place,
    topic: &str,
    subscription_arn: &str,
) -> Result<Option<String>, TopicError> {
    let attrs = sns
        .get_subscription_attributes()
        .subscription_arn(subscription_arn)
        .send()
        .await
        .map_err(|e| {
            error(
                "reading the subscription's redrive policy on",
                topic,
                place,
                &e,
            )
        })?;
    Ok(attrs
        .attributes()
        .and_then(|a| a.get(REDRIVE_POLICY))
        .filter(|p| !p.is_empty())
        .cloned())
}

/// Parks what SNS cannot deliver through the subscription in `queue_arn`. The caller reads the
/// policy first ([`redrive`]) so that a re-run makes no write.
pub async fn set_redrive(
    sns: &aws_sdk_sns::Client,
    place: &Place,
    topic: &str,
    subscription_arn: &str,
    queue_arn: &str,
) -> Result<(), TopicError> {
    sns.set_subscription_attributes()
        .subscription_arn(subscription_arn)
        .attribute_name(REDRIVE_POLICY)
        .attribute_value(redrive_policy(queue_arn))
        .send()
        .await
        .map_err(|e| {
            error(
                "setting the subscription's redrive policy on",
                topic,
                place,
                &e,
            )
        })?;
    Ok(())
}

/// Whether SNS can park failures of a subscription to `topic` in a queue of `place`: the dead
/// letter queue must be in the subscription's account and region, which for a topic of another
/// account or region it is not.
pub fn can_redrive(topic: &str, place: &Place) -> bool {
    let mut parts = topic.split(':').skip(3);
    parts.next() == Some(place.region.as_str()) && parts.next() == Some(place.account.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redrive_policy_names_the_queue_and_is_recognised() {
        let queue = "arn:aws:sqs:us-east-1:123456789012:failures";
        let policy = redrive_policy(queue);
        assert_eq!(policy, format!(r#"{{"deadLetterTargetArn":"{queue}"}}"#));
        assert!(redrives_to(Some(&policy), queue));
        assert!(!redrives_to(
            Some(&policy),
            "arn:aws:sqs:us-east-1:123456789012:other"
        ));
        assert!(!redrives_to(None, queue));
        assert!(!redrives_to(Some(""), queue));
    }

    #[test]
    fn only_a_topic_of_the_queues_account_and_region_can_redrive_to_it() {
        let place = Place {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        };
        assert!(can_redrive("arn:aws:sns:us-east-1:123456789012:t", &place));
        assert!(!can_redrive("arn:aws:sns:eu-west-1:123456789012:t", &place));
        assert!(!can_redrive("arn:aws:sns:us-east-1:999999999999:t", &place));
        assert!(!can_redrive("not an arn", &place));
    }
}
