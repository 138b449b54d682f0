//! `sgwatch test-event`: sends a synthetic notification, built from a group's current state and
//! marked as a test, through the deployed function, so a user can check delivery end to end.
//!
//! By default the function is invoked directly. `--via topic` publishes the notification to the
//! stack's SNS topic instead, as AWS Config does, so the subscription and the function's
//! permission for SNS are exercised too. A stack whose source is EventBridge cannot be tested
//! that way: only AWS services may put events with an `aws.` source ("Amazon EventBridge events":
//! a custom event's source cannot start with `aws.`,
//! <https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsRequestEntry.html>),
//! so no test event can match the stack's rule on `aws.config`; `sgwatch verify` makes a real
//! change instead.

use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use clap::Args;
use serde_json::Value;
use sgwatch_synth::{self as synth, Capture};

use crate::aws::Place;
use crate::deploy::stack::{self, Deployed};

/// Why the test notification could not be sent; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TestEventError {
    #[error("cannot build the test notification: {0}")]
    Synth(#[from] synth::SynthError),
    #[error("cannot read security group {group} ({place}): {source}")]
    Group {
        group: String,
        place: Place,
        source: synth::DescribeError,
    },
    #[error("cannot invoke {function} ({place}): {detail}")]
    Invoke {
        function: String,
        place: Place,
        detail: String,
    },
    #[error(
        "stack {stack} receives Config's notifications through EventBridge, where only AWS \
         services may send `aws.config` events: test through the topic is not possible. Run \
         `sgwatch test-event` without --via (invokes the function) or `sgwatch verify` (a real \
         change, through AWS Config and EventBridge)"
    )]
    ViaEventBridge { stack: String },
    #[error("cannot publish to {topic} ({place}): {detail}")]
    Publish {
        topic: String,
        place: Place,
        detail: String,
    },
    #[error("{function} failed ({error}): {payload}; see its log group for the details")]
    Failed {
        function: String,
        error: String,
        payload: Value,
    },
}

/// What the function answered to the test notification, or where it was published.
#[derive(Debug, Clone)]
pub struct Answer {
    pub group_id: String,
    /// The function's answer; with `--via topic`, `{topic_arn, sns_message_id, log_group}`.
    pub payload: Value,
    /// Published to the topic rather than given to the function.
    pub via_topic: bool,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.via_topic {
            return write!(
                f,
                "test notification for {} delivered to the function; it answered: {}",
                self.group_id, self.payload
            );
        }
        let p = &self.payload;
        let text = |k: &str| p[k].as_str().unwrap_or("?").to_owned();
        write!(
            f,
            "test notification for {} published to {} (SNS message id {}).\n\
             SNS gives it to the function within seconds: the group's owners get an email marked \
             TEST; the function's log group {} shows its decision (search for the message id).",
            self.group_id,
            text("topic_arn"),
            text("sns_message_id"),
            text("log_group"),
        )
    }
}

/// How the test notification travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Via {
    /// Invoke the function directly
    #[default]
    Function,
    /// Publish to the stack's SNS topic, as AWS Config does
    Topic,
}

/// As JSON, the answer alone.
impl serde::Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.payload.serialize(s)
    }
}

#[derive(Debug, Clone, Args)]
pub struct TestEventArgs {
    /// The security group whose current state is sent (as if it had just been created)
    #[arg(long, value_name = "sg-...")]
    pub group_id: String,
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
    /// Invoke this function instead of the stack's
    #[arg(long)]
    pub function_name: Option<String>,
    /// Send the invocation to this endpoint (e.g. a local Lambda emulator such as `cargo lambda watch`)
    #[arg(long)]
    pub lambda_endpoint_url: Option<String>,
    /// How the notification travels: straight to the function, or through the stack's topic
    /// (exercising the subscription and its permission too)
    #[arg(long, value_enum, default_value_t = Via::Function)]
    pub via: Via,
}

/// The SNS event the function receives: the group's state as a creation, marked as a test.
pub fn event(configuration: &Value, account: &str, region: &str) -> Result<Value, crate::Error> {
    let capture = Capture {
        account: account.to_owned(),
        region: region.to_owned(),
        time: aws_smithy_types::DateTime::from(std::time::SystemTime::now()),
    };
    let mut message =
        synth::item_change(None, Some(configuration), &capture).map_err(TestEventError::from)?;
    message["sgwatchTest"] = Value::Bool(true);
    let id = format!("sgwatch-test-{}", capture.time.secs());
    Ok(synth::sns_event(&message, &id))
}

/// Builds the event and invokes the function; returns the function's answer.
pub async fn run(args: &TestEventArgs, config: &SdkConfig) -> Result<Answer, crate::Error> {
    let place = crate::aws::place(config).await?;
    let group = synth::describe(&crate::aws::ec2(config), &args.group_id)
        .await
        .map_err(|source| TestEventError::Group {
            group: args.group_id.clone(),
            place: place.clone(),
            source,
        })?;
    let event = event(&group, &place.account, &place.region)?;
    if args.via == Via::Topic {
        return publish(args, config, &place, &event).await;
    }
    let function = match &args.function_name {
        Some(f) => f.clone(),
        None => {
            let cf = crate::aws::cloudformation(config);
            let deployed = Deployed::require(&cf, &args.stack_name, &place).await?;
            let function = &deployed.outputs.function_name;
            stack::required(function, &args.stack_name, "FunctionName")?.to_owned()
        }
    };
    let mut lambda_config = aws_sdk_lambda::config::Builder::from(config);
    if let Some(url) = &args.lambda_endpoint_url {
        lambda_config = lambda_config.endpoint_url(url);
    }
    if let Some(log) = crate::aws::CallLog::from_env() {
        lambda_config = lambda_config.interceptor(log);
    }
    let lambda = aws_sdk_lambda::Client::from_conf(lambda_config.build());
    let out = lambda
        .invoke()
        .function_name(&function)
        .invocation_type(InvocationType::RequestResponse)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| TestEventError::Invoke {
            function: function.clone(),
            place: place.clone(),
            detail: crate::aws::error_text(&e),
        })?;
    let payload: Value = out
        .payload()
        .map(|p| {
            serde_json::from_slice(p.as_ref())
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(p.as_ref()).into_owned()))
        })
        .unwrap_or(Value::Null);
    if let Some(error) = out.function_error() {
        return Err(TestEventError::Failed {
            function,
            error: error.to_owned(),
            payload,
        }
        .into());
    }
    Ok(Answer {
        group_id: args.group_id.clone(),
        payload,
        via_topic: false,
    })
}

/// Publishes the notification of `event` to the stack's topic, as AWS Config does: the Config
/// message as the SNS message, with Config's subject.
async fn publish(
    args: &TestEventArgs,
    config: &SdkConfig,
    place: &Place,
    event: &Value,
) -> Result<Answer, crate::Error> {
    let cf = crate::aws::cloudformation(config);
    let deployed = Deployed::require(&cf, &args.stack_name, place).await?;
    if deployed.params.eventbridge() {
        return Err(TestEventError::ViaEventBridge {
            stack: args.stack_name.clone(),
        }
        .into());
    }
    let topic =
        stack::required(&deployed.outputs.topic_arn, &args.stack_name, "TopicArn")?.to_owned();
    let sns = &event["Records"][0]["Sns"];
    let out = crate::aws::sns_for(config, &topic)
        .publish()
        .topic_arn(&topic)
        .message(sns["Message"].as_str().unwrap_or_default())
        // SNS takes a subject of at most 100 characters.
        .subject(
            sns["Subject"]
                .as_str()
                .unwrap_or("sgwatch test notification")
                .chars()
                .take(100)
                .collect::<String>(),
        )
        .send()
        .await
        .map_err(|e| TestEventError::Publish {
            topic: topic.clone(),
            place: place.clone(),
            detail: crate::aws::error_text(&e),
        })?;
    Ok(Answer {
        group_id: args.group_id.clone(),
        payload: serde_json::json!({
            "topic_arn": topic,
            "sns_message_id": out.message_id(),
            "log_group": deployed.outputs.log_group_name,
        }),
        via_topic: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgwatch_handler::explain::{explain, Explained};
    use sgwatch_handler::settings::Policy;

    #[test]
    fn the_test_event_is_a_notification_marked_as_a_test() {
        let group = serde_json::json!({
            "groupId": "sg-0123", "groupName": "web", "description": "d", "ownerId": "123456789012",
            "ipPermissions": [{"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "ipv4Ranges": [{"cidrIp": "0.0.0.0/0"}]}],
            "ipPermissionsEgress": [],
            "tags": [{"key": "NotifyOnChange", "value": "Yes"}, {"key": "OwnerDL", "value": "a@example.com"}]
        });
        let event = event(&group, "123456789012", "us-east-1").unwrap();
        let explained = explain(&event, &Policy::default());
        let Explained::Decision(d) = &explained[0] else {
            panic!("{explained:?}")
        };
        assert_eq!(d.notify, Some(true));
        assert_eq!(d.recipients, ["a@example.com"]);
        assert!(
            d.subject
                .as_deref()
                .unwrap()
                .starts_with("[sgwatch TEST CRITICAL] sg-0123 (web)"),
            "{:?}",
            d.subject
        );
    }
}
