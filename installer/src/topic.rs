//! The handler's subscription to an adopted delivery channel's SNS topic. The topic is not ours,
//! so neither is a place in our stack: the subscription and the function's permission for that
//! topic are made through the SDK, recorded, and removed by teardown.

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
