//! `sgwatch status`: every link of the chain, one line each, with what to do when it is broken.

use anyhow::Result;
use aws_config::SdkConfig;
use clap::Args;
use serde::Serialize;

use crate::artifacts;
use crate::{recorder, stack};

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub level: Level,
    pub check: String,
    pub detail: String,
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

    pub fn print(&self) {
        println!(
            "sgwatch status, account {} in {}:",
            self.account, self.region
        );
        for c in &self.checks {
            let level = match c.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("  {level}  {:<34} {}", c.check, c.detail);
        }
    }
}

/// Runs every check. Never fails on a broken chain: that is what it reports.
pub async fn status(args: &StatusArgs, config: &SdkConfig) -> Result<Status> {
    let place = crate::aws::place(config).await?;
    let mut checks = Vec::new();
    let mut add = |level: Level, check: &str, detail: String| {
        checks.push(Check {
            level,
            check: check.to_owned(),
            detail,
        })
    };
    let cf = aws_sdk_cloudformation::Client::new(config);
    let deployed = stack::describe(&cf, &args.stack_name, &place).await?;
    let outputs = match &deployed {
        Some(s) => stack::resolved_outputs(&cf, &args.stack_name, s, &place).await?,
        None => Default::default(),
    };
    match &deployed {
        None => add(
            Level::Fail,
            "stack",
            format!(
                "stack {} not found in {place}: run `sgwatch install`",
                args.stack_name
            ),
        ),
        Some(s) => {
            let st = s.stack_status().map(|s| s.as_str()).unwrap_or("?");
            let ok = st == "CREATE_COMPLETE" || st == "UPDATE_COMPLETE";
            add(
                if ok { Level::Ok } else { Level::Fail },
                "stack",
                format!(
                    "{} is {st}{}",
                    args.stack_name,
                    if ok {
                        ""
                    } else {
                        ": run `sgwatch install` again"
                    }
                ),
            );
        }
    }

    let found = recorder::find(&aws_sdk_config::Client::new(config), &place).await?;
    match &found.recorder {
        None => add(
            Level::Fail,
            "config recorder exists",
            "no configuration recorder: run `sgwatch install`".into(),
        ),
        Some(r) => {
            add(
                Level::Ok,
                "config recorder exists",
                r.name().unwrap_or("?").to_owned(),
            );
            if found.records_security_groups() {
                add(
                    Level::Ok,
                    "records security groups",
                    "AWS::EC2::SecurityGroup is recorded".into(),
                );
            } else {
                add(Level::Fail, "records security groups", "the recorder does not record AWS::EC2::SecurityGroup: run `sgwatch install --extend-recorder`".into());
            }
            if found.recording {
                add(Level::Ok, "recorder is recording", "recording".into());
            } else {
                add(Level::Fail, "recorder is recording", format!("stopped: `aws configservice start-configuration-recorder --configuration-recorder-name {}`", r.name().unwrap_or("?")));
            }
            match found.last_status.as_deref() {
                Some("FAILURE") => add(
                    Level::Fail,
                    "last recording status",
                    "FAILURE: check the Config role's permissions".into(),
                ),
                Some(s) => add(Level::Ok, "last recording status", s.to_owned()),
                None => add(
                    Level::Warn,
                    "last recording status",
                    "nothing recorded yet".into(),
                ),
            }
        }
    }
    let mut topic = outputs.get("TopicArn").cloned();
    match &found.channel {
        None => add(
            Level::Fail,
            "delivery channel",
            "no delivery channel: run `sgwatch install`".into(),
        ),
        Some(c) => {
            let bucket = c.s3_bucket_name().unwrap_or("?");
            let channel_topic = c.sns_topic_arn().unwrap_or("(none)");
            add(
                Level::Ok,
                "delivery channel → bucket",
                format!("{} → s3://{bucket}", c.name().unwrap_or("?")),
            );
            let ours = outputs.get("TopicArn").map(String::as_str) == Some(channel_topic);
            add(
                if c.sns_topic_arn().is_some() {
                    Level::Ok
                } else {
                    Level::Warn
                },
                "delivery channel → topic",
                format!("{channel_topic}{}", if ours { "" } else { " (adopted)" }),
            );
            if c.sns_topic_arn().is_some() {
                topic = Some(channel_topic.to_owned());
            }
        }
    }
    let function_arn = outputs.get("FunctionArn").cloned();
    if let (Some(topic), Some(function_arn)) = (&topic, &function_arn) {
        let subs = aws_sdk_sns::Client::new(config)
            .list_subscriptions_by_topic()
            .topic_arn(topic)
            .send()
            .await;
        match subs {
            Ok(out) => {
                let found = out.subscriptions().iter().any(|s| {
                    s.protocol() == Some("lambda") && s.endpoint() == Some(function_arn.as_str())
                });
                if found {
                    add(
                        Level::Ok,
                        "topic → subscription → function",
                        format!("{topic} → {function_arn}"),
                    );
                } else {
                    add(
                        Level::Fail,
                        "topic → subscription → function",
                        format!(
                            "{topic} has no subscription for the handler: run `sgwatch install`"
                        ),
                    );
                }
            }
            Err(e) => add(
                Level::Fail,
                "topic → subscription → function",
                format!(
                    "cannot list subscriptions of {topic}: {}",
                    aws_sdk_sns::error::DisplayErrorContext(&e)
                ),
            ),
        }
    }
    let mut sender = None;
    if let Some(name) = outputs.get("FunctionName") {
        match aws_sdk_lambda::Client::new(config)
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
        {
            Ok(f) => {
                let vars = f
                    .environment()
                    .and_then(|e| e.variables())
                    .cloned()
                    .unwrap_or_default();
                sender = vars.get("SGWATCH_SENDER").cloned();
                match &sender {
                    Some(s) if !s.is_empty() => add(
                        Level::Ok,
                        "function settings",
                        format!("{name}: sender {s}"),
                    ),
                    _ => add(
                        Level::Fail,
                        "function settings",
                        format!("{name} has no SGWATCH_SENDER: run `sgwatch install`"),
                    ),
                }
            }
            Err(e) => add(
                Level::Fail,
                "function settings",
                format!(
                    "cannot read function {name}: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(&e)
                ),
            ),
        }
    }
    if let Some(sender) = &sender {
        let ses = aws_sdk_sesv2::Client::new(config);
        let domain = sender.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        let mut verified = false;
        for id in [sender.as_str(), domain] {
            if let Ok(o) = ses.get_email_identity().email_identity(id).send().await {
                verified |= crate::preflight::is_verified(&o);
            }
        }
        if verified {
            add(Level::Ok, "SES sender verified", sender.clone());
        } else {
            add(Level::Fail, "SES sender verified", format!("{sender} is not verified: aws sesv2 create-email-identity --email-identity {sender}"));
        }
    }
    if let Some(url) = outputs.get("FailureQueueUrl") {
        let attrs = aws_sdk_sqs::Client::new(config)
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await;
        match attrs {
            Ok(a) => {
                let n: u64 = a
                    .attributes()
                    .and_then(|m| {
                        m.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
                    })
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if n == 0 {
                    add(
                        Level::Ok,
                        "failure queue empty",
                        "no failed notifications".into(),
                    );
                } else {
                    add(Level::Warn, "failure queue empty", format!("{n} notification(s) could not be delivered: read them in {url}, fix the cause (see the function's logs) and re-send"));
                }
            }
            Err(e) => add(
                Level::Fail,
                "failure queue empty",
                format!(
                    "cannot read {url}: {}",
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ),
            ),
        }
    }
    let s3 = sgwatch_handler::aws::s3_client(config);
    match artifacts::read_state(&s3, &place, &args.stack_name).await {
        Ok(Some(state)) => add(
            Level::Ok,
            "install record",
            format!("recorder {}, channel {}", state.recorder, state.channel),
        ),
        Ok(None) => add(
            Level::Warn,
            "install record",
            "none: teardown would not know what install created; run `sgwatch install`".into(),
        ),
        Err(e) => add(Level::Warn, "install record", format!("{e:#}")),
    }
    Ok(Status {
        account: place.account.clone(),
        region: place.region.clone(),
        checks,
    })
}
