//! `sgwatch status`: every link of the chain, one line each (ok, warn or FAIL) with what to do
//! when it is broken: the stack; the Config recorder (exists, records security groups, is
//! recording, last status) and delivery channel (→ bucket, → topic); the event source (topic →
//! subscription → function, or EventBridge rule → function) and the function's permission for it;
//! the function's settings (checked as the handler checks them at start) and its on-failure
//! destination; the SES sender and sandbox; the failure queue; the install record.
//!
//! A broken link is what status reports, not an error: it fails only when it cannot look at all.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::StackStatus;
use aws_sdk_sesv2::error::ProvideErrorMetadata;
use clap::Args;
use serde::Serialize;
use sgwatch_handler::settings::Settings;

use crate::artifacts;
use crate::aws::Place;
use crate::recorder;
use crate::simulate;
use crate::stack;

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
    /// What was found and, when it is not ok, what to do.
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

#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn add(&mut self, level: Level, check: &str, detail: impl Into<String>) {
        self.0.push(Check {
            level,
            check: check.to_owned(),
            detail: detail.into(),
        });
    }
    fn ok(&mut self, check: &str, detail: impl Into<String>) {
        self.add(Level::Ok, check, detail);
    }
    fn warn(&mut self, check: &str, detail: impl Into<String>) {
        self.add(Level::Warn, check, detail);
    }
    fn fail(&mut self, check: &str, detail: impl Into<String>) {
        self.add(Level::Fail, check, detail);
    }
}

/// An AWS error as one short phrase for a status line.
fn said<E: ProvideErrorMetadata>(e: &E) -> String {
    match (e.code(), e.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => "no answer".to_owned(),
    }
}

/// Runs every check.
pub async fn status(args: &StatusArgs, config: &SdkConfig) -> Result<Status, crate::Error> {
    let place = crate::aws::place(config).await?;
    let mut c = Checks::default();
    let name = &args.stack_name;
    let install = match name.as_str() {
        "sgwatch" => "run `sgwatch install`".to_owned(),
        other => format!("run `sgwatch install --stack-name {other}`"),
    };

    // The stack and what it says about itself.
    let cf = aws_sdk_cloudformation::Client::new(config);
    let deployed = stack::describe(&cf, name, &place).await?;
    let (outputs, params) = match &deployed {
        None => {
            c.fail(
                "stack",
                format!("stack {name} not found in {place}: {install}"),
            );
            (BTreeMap::new(), BTreeMap::new())
        }
        Some(s) => {
            let status = s.stack_status();
            let shown = status.map(|s| s.as_str()).unwrap_or("?");
            if matches!(
                status,
                Some(StackStatus::CreateComplete | StackStatus::UpdateComplete)
            ) {
                c.ok("stack", format!("{name} is {shown}"));
            } else {
                c.fail(
                    "stack",
                    format!("{name} is {shown}: {install} (see its events for the cause)"),
                );
            }
            (
                stack::resolved_outputs(&cf, name, s, &place).await?,
                stack::deployed_parameters(s),
            )
        }
    };
    let eventbridge = params.get("EventSource").map(String::as_str) == Some("eventbridge");

    // AWS Config.
    let found = recorder::find(&aws_sdk_config::Client::new(config), &place).await?;
    match found.recorder_name() {
        None => c.fail(
            "config recorder exists",
            format!("no configuration recorder in {place}: {install}"),
        ),
        Some(r) => {
            c.ok("config recorder exists", r);
            if found.records_security_groups() {
                c.ok(
                    "records security groups",
                    "AWS::EC2::SecurityGroup is recorded",
                );
            } else {
                c.fail(
                    "records security groups",
                    format!(
                        "recorder {r} does not record AWS::EC2::SecurityGroup: add it, or run \
                         `sgwatch install --extend-recorder`"
                    ),
                );
            }
            if found.recording {
                c.ok("recorder is recording", "recording");
            } else {
                c.fail(
                    "recorder is recording",
                    format!(
                        "stopped: aws configservice start-configuration-recorder \
                         --configuration-recorder-name {r}"
                    ),
                );
            }
            match found.last_status.as_deref() {
                Some("FAILURE") => c.fail(
                    "last recording status",
                    "FAILURE: check that the recorder's role may read the resources \
                     (service-role/AWS_ConfigRole)",
                ),
                Some(s) => c.ok("last recording status", s),
                None => c.warn("last recording status", "nothing recorded yet"),
            }
        }
    }
    let s3 = sgwatch_handler::aws::s3_client(config);
    let mut source_topic = outputs.get("TopicArn").cloned();
    match &found.channel {
        None => c.fail(
            "delivery channel",
            format!("no delivery channel in {place}: {install}"),
        ),
        Some(channel) => {
            let channel_name = channel.name().unwrap_or("?");
            match channel.s3_bucket_name() {
                Some(bucket) => match artifacts::bucket_exists(&s3, bucket, &place).await {
                    Ok(true) => c.ok(
                        "delivery channel → bucket",
                        format!("{channel_name} → s3://{bucket}"),
                    ),
                    Ok(false) => c.fail(
                        "delivery channel → bucket",
                        format!("{channel_name} → s3://{bucket}, which does not exist: {install}"),
                    ),
                    Err(e) => c.warn("delivery channel → bucket", format!("{e}")),
                },
                None => c.fail(
                    "delivery channel → bucket",
                    format!("{channel_name} names no bucket"),
                ),
            }
            match channel.sns_topic_arn() {
                Some(topic) => {
                    let ours = outputs.get("TopicArn").map(String::as_str) == Some(topic);
                    c.ok(
                        "delivery channel → topic",
                        format!("{topic}{}", if ours { "" } else { " (adopted)" }),
                    );
                    source_topic = Some(topic.to_owned());
                }
                None if eventbridge => c.ok(
                    "delivery channel → topic",
                    "none (events reach the handler through EventBridge)",
                ),
                None => c.fail(
                    "delivery channel → topic",
                    format!(
                        "{channel_name} sends to no SNS topic: run install with --source eventbridge"
                    ),
                ),
            }
            delivery(config, &mut c, channel_name).await;
        }
    }

    // The event source, and the function's permission for it.
    let lambda = aws_sdk_lambda::Client::new(config);
    let function_arn = outputs.get("FunctionArn").cloned();
    let policy = match outputs.get("FunctionName") {
        Some(f) => lambda
            .get_policy()
            .function_name(f)
            .send()
            .await
            .ok()
            .and_then(|p| p.policy().map(str::to_owned))
            .unwrap_or_default(),
        None => String::new(),
    };
    if let Some(function_arn) = &function_arn {
        if eventbridge {
            event_rule(config, &mut c, name, function_arn, &policy).await;
        } else if let Some(topic) = &source_topic {
            let queue = outputs.get("FailureQueueArn").map(String::as_str);
            let topic_in = Subscribed {
                topic,
                function_arn,
                policy: &policy,
                queue,
            };
            subscription(config, &mut c, &place, &topic_in, &install).await;
        }
    }

    // The function: its settings as the handler reads them at start, and where failures go.
    let mut sender = params.get("Sender").cloned();
    if let Some(function) = outputs.get("FunctionName") {
        match lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
        {
            Ok(f) => {
                let vars = f
                    .environment()
                    .and_then(|e| e.variables())
                    .cloned()
                    .unwrap_or_default();
                match Settings::from_lookup(|k| vars.get(k).cloned()) {
                    Ok(settings) => {
                        c.ok(
                            "function settings",
                            format!("{function}: sender {}", settings.sender),
                        );
                        sender = Some(settings.sender);
                    }
                    Err(e) => c.fail(
                        "function settings",
                        format!("{function} would stop at start: {e}; {install} with valid flags"),
                    ),
                }
                baseline(&mut c, vars.get("SGWATCH_BASELINE_UNTIL"));
            }
            Err(e) => c.fail(
                "function settings",
                format!("cannot read function {function}: {}", said(&e)),
            ),
        }
        match lambda
            .get_function_event_invoke_config()
            .function_name(function)
            .send()
            .await
        {
            Ok(cfg)
                if cfg
                    .destination_config()
                    .and_then(|d| d.on_failure())
                    .and_then(|d| d.destination())
                    .is_some() =>
            {
                c.ok("failures go to the queue", "on-failure destination set")
            }
            _ => c.warn(
                "failures go to the queue",
                format!(
                    "{function} has no on-failure destination (the stack's InvokeConfig): events \
                     that fail every retry would be lost; {install}"
                ),
            ),
        }
    }

    // SES.
    let mut identity = None;
    if let Some(sender) = &sender {
        let ses = aws_sdk_sesv2::Client::new(config);
        match crate::preflight::sender_identity(&ses, &place, sender).await {
            Ok(found) => {
                c.ok(
                    "SES sender verified",
                    format!("{sender} (identity {found})"),
                );
                identity = Some(found);
            }
            Err(e) => c.fail("SES sender verified", e.to_string()),
        }
        match crate::preflight::sandbox_warning(&ses, &place).await {
            None => c.ok("SES production access", "owners can receive mail"),
            Some(w) => c.warn("SES production access", w),
        }
    }

    // What the stack's roles may do, as IAM evaluates their policies.
    let iam = aws_sdk_iam::Client::new(config);
    let o = |k: &str| outputs.get(k).map(String::as_str);
    if let (Some(role_arn), Some(sender), Some(identity), Some(bucket), Some(table), Some(queue)) = (
        o("HandlerRoleArn"),
        sender.as_deref(),
        identity.as_deref(),
        o("ConfigBucketName"),
        o("IdempotencyTableName"),
        o("FailureQueueArn"),
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
        });
        let answer = simulate::simulate(&iam, role_arn, &asks).await;
        simulated(&mut c, "handler role may act", answer);
    }
    // The Config role matters only while the recorder uses it.
    let recorder_role = found.recorder.as_ref().and_then(|r| r.role_arn());
    if let (Some(role_arn), Some(bucket), Some(topic)) =
        (o("ConfigRoleArn"), o("ConfigBucketName"), o("TopicArn"))
    {
        if recorder_role == Some(role_arn) {
            let asks =
                simulate::config_asks(role_arn, &place.region, &place.account, bucket, topic);
            let answer = simulate::simulate(&iam, role_arn, &asks).await;
            simulated(&mut c, "config role may deliver", answer);
        }
    }

    // Failures, and the record teardown relies on.
    if let Some(url) = outputs.get("FailureQueueUrl") {
        failure_queue(config, &mut c, url).await;
    }
    match artifacts::read_state(&s3, &place, name).await {
        Ok(Some(state)) => c.ok(
            "install record",
            format!("recorder {}, channel {}", state.recorder, state.channel),
        ),
        Ok(None) => c.warn(
            "install record",
            format!("none: teardown would not know what install created; {install}"),
        ),
        Err(e) => c.warn("install record", e.to_string()),
    }
    Ok(Status {
        account: place.account.clone(),
        region: place.region.clone(),
        checks: c.0,
    })
}

/// One line for a role's simulation: ok, one FAIL per denied action, or a warning when IAM could
/// not be asked.
/// The discovery baseline the function holds (install sets it when it starts recording).
fn baseline(c: &mut Checks, until: Option<&String>) {
    match until.filter(|t| !t.is_empty()) {
        Some(t) => c.ok(
            "discovery baseline",
            format!("groups discovered before {t} are not emailed"),
        ),
        None => c.ok(
            "discovery baseline",
            "none: every group AWS Config discovers is emailed as new",
        ),
    }
}

fn simulated(c: &mut Checks, check: &str, answer: simulate::Simulated) {
    match answer {
        simulate::Simulated::Allowed(n) => {
            c.ok(check, format!("all {n} actions it needs are allowed"))
        }
        simulate::Simulated::Denied(lines) => {
            for line in lines {
                c.fail(check, line);
            }
        }
        simulate::Simulated::Unavailable(why) => {
            c.warn(check, format!("could not simulate: {why}"))
        }
    }
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
fn permission(c: &mut Checks, policy: &str, principal: &str, source: &str, function_arn: &str) {
    let check = "function permission";
    match permits(policy, principal, source) {
        Permit::Allowed => c.ok(check, format!("{source} may invoke it")),
        Permit::Missing => c.fail(
            check,
            format!("nothing lets {source} invoke the function: run `sgwatch install`"),
        ),
        Permit::Conditioned { sid, keys } => c.fail(
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

/// What the handler's subscription to a topic is checked against.
struct Subscribed<'a> {
    topic: &'a str,
    function_arn: &'a str,
    /// The function's resource policy.
    policy: &'a str,
    /// The stack's failure queue.
    queue: Option<&'a str>,
}

async fn subscription(
    config: &SdkConfig,
    c: &mut Checks,
    place: &Place,
    s: &Subscribed<'_>,
    install: &str,
) {
    let (topic, function_arn, policy) = (s.topic, s.function_arn, s.policy);
    let check = "topic → subscription → function";
    let region = topic.split(':').nth(3).unwrap_or_default().to_owned();
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(config)
            .region(aws_config::Region::new(region))
            .build(),
    );
    match crate::topic::subscription(&sns, place, topic, function_arn).await {
        Ok(Some(sub)) => {
            c.ok(check, format!("{topic} → {function_arn}"));
            if let Some(queue) = s.queue {
                redrive(c, &sns, place, topic, &sub, queue, install).await;
            }
        }
        Ok(None) => c.fail(
            check,
            format!("{topic} has no subscription for {function_arn}: run `sgwatch install`"),
        ),
        Err(e) => c.fail(check, e.to_string()),
    }
    permission(c, policy, "sns.amazonaws.com", topic, function_arn);
}

/// Whether SNS parks what it cannot deliver through the subscription in the failure queue.
async fn redrive(
    c: &mut Checks,
    sns: &aws_sdk_sns::Client,
    place: &Place,
    topic: &str,
    subscription: &str,
    queue: &str,
    install: &str,
) {
    let check = "undeliverable → failure queue";
    if !crate::topic::can_redrive(topic, place) {
        c.warn(
            check,
            format!(
                "{topic} is in another account or region, where the failure queue cannot serve \
                 as its dead-letter queue: what SNS fails to deliver to the function is dropped"
            ),
        );
        return;
    }
    match crate::topic::redrive(sns, place, topic, subscription).await {
        Ok(policy) if crate::topic::redrives_to(policy.as_deref(), queue) => c.ok(
            check,
            format!("the subscription's redrive policy names {queue}"),
        ),
        Ok(policy) => c.fail(
            check,
            format!(
                "the subscription to {topic} has {}: what SNS fails to deliver to the function \
                 is dropped; {install}",
                match policy {
                    Some(p) => format!("redrive policy {p}, not the failure queue"),
                    None => "no redrive policy".to_owned(),
                }
            ),
        ),
        Err(e) => c.fail(check, e.to_string()),
    }
}

async fn event_rule(
    config: &SdkConfig,
    c: &mut Checks,
    stack_name: &str,
    function_arn: &str,
    policy: &str,
) {
    let check = "EventBridge rule → function";
    let cf = aws_sdk_cloudformation::Client::new(config);
    let rule = cf
        .list_stack_resources()
        .stack_name(stack_name)
        .send()
        .await
        .ok()
        .and_then(|r| {
            r.stack_resource_summaries()
                .iter()
                .find(|s| s.logical_resource_id() == Some("EventRule"))
                .and_then(|s| s.physical_resource_id().map(str::to_owned))
        });
    let Some(rule) = rule.filter(|r| !r.is_empty()) else {
        c.fail(
            check,
            "the stack has no EventRule: run `sgwatch install --source eventbridge`",
        );
        return;
    };
    let events = aws_sdk_eventbridge::Client::new(config);
    let described = events.describe_rule().name(&rule).send().await;
    let targets = events.list_targets_by_rule().rule(&rule).send().await;
    match (described, targets) {
        (Ok(r), Ok(t)) => {
            let enabled = r.state() == Some(&aws_sdk_eventbridge::types::RuleState::Enabled);
            let aimed = t.targets().iter().any(|t| t.arn() == function_arn);
            match (enabled, aimed) {
                (true, true) => c.ok(check, format!("{rule} → {function_arn}")),
                (false, _) => c.fail(
                    check,
                    format!("rule {rule} is disabled: aws events enable-rule --name {rule}"),
                ),
                (_, false) => c.fail(
                    check,
                    format!("rule {rule} does not target {function_arn}: run `sgwatch install`"),
                ),
            }
            let rule_arn = r.arn().unwrap_or_default();
            permission(c, policy, "events.amazonaws.com", rule_arn, function_arn);
        }
        (Err(e), _) => c.fail(check, format!("cannot read rule {rule}: {}", said(&e))),
        (_, Err(e)) => c.fail(
            check,
            format!("cannot list the targets of {rule}: {}", said(&e)),
        ),
    }
}

/// The channel's last delivery to its topic (the stream of changes the handler hears).
async fn delivery(config: &SdkConfig, c: &mut Checks, channel: &str) {
    use aws_sdk_config::types::DeliveryStatus;
    let check = "last delivery to the topic";
    // A report line, not a step anything waits on: one attempt (emulators may not have the call,
    // and five retried 5xx would only make status slow).
    let once = aws_sdk_config::config::Builder::default()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1));
    let answer = aws_sdk_config::Client::new(config)
        .describe_delivery_channel_status()
        .delivery_channel_names(channel)
        .customize()
        .config_override(once)
        .send()
        .await;
    let stream = match &answer {
        Ok(out) => out
            .delivery_channels_status()
            .first()
            .and_then(|s| s.config_stream_delivery_info())
            .cloned(),
        Err(e) => {
            c.warn(
                check,
                format!(
                    "could not read the status of channel {channel}: {}",
                    said(e)
                ),
            );
            return;
        }
    };
    match stream.as_ref().and_then(|s| s.last_status()) {
        Some(DeliveryStatus::Failure) => {
            let stream = stream.as_ref().expect("a status came with it");
            c.fail(
                check,
                format!(
                    "FAILURE ({}: {}): check that the topic's policy lets config.amazonaws.com \
                     publish, or the recorder's role may sns:Publish to it",
                    stream.last_error_code().unwrap_or("?"),
                    stream.last_error_message().unwrap_or("no message")
                ),
            )
        }
        Some(DeliveryStatus::Success) => c.ok(check, "SUCCESS"),
        _ => c.ok(check, "nothing delivered yet"),
    }
}

async fn failure_queue(config: &SdkConfig, c: &mut Checks, url: &str) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let check = "failure queue empty";
    let attrs = aws_sdk_sqs::Client::new(config)
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await;
    match attrs {
        Ok(a) => {
            let n: u64 = a
                .attributes()
                .and_then(|m| m.get(&QueueAttributeName::ApproximateNumberOfMessages))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if n == 0 {
                c.ok(check, "no failed notifications");
            } else {
                c.warn(
                    check,
                    format!(
                        "{n} notification(s) failed every retry: read them (aws sqs \
                         receive-message --queue-url {url}), fix the cause (the function's logs \
                         say it) and send them again"
                    ),
                );
            }
        }
        Err(e) => c.fail(check, format!("cannot read {url}: {}", said(&e))),
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
        let mut c = Checks::default();
        permission(
            &mut c,
            &p,
            "sns.amazonaws.com",
            TOPIC,
            "arn:aws:lambda:us-east-1:1:function:f",
        );
        let line = &c.0[0];
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
