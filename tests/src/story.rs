//! The story sgwatch exists for, played end to end against local AWS: the `demo` binary shows it,
//! `tests/tests/it/e2e.rs` asserts it, both through [`play`], so the test checks what the demo shows.
//!
//! Department A owns a group that allows HTTP from the internet; Department B adds RDP from
//! 0.0.0.0/0 to it. sgwatch is installed with the real installer, the group's real states are
//! read from moto's EC2, the notification AWS Config would send is built from them
//! ([`sgwatch_synth`]), and the real `bootstrap` binary handles it under cargo-lambda's
//! Lambda Runtime API emulator ([`LambdaEmulator`]) with the environment the installer gave the
//! deployed function, sending through moto's SES. An untagged group's change must send nothing;
//! teardown must leave nothing that install created.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use aws_config::SdkConfig;
use aws_sdk_ec2::types::Tag;
use aws_smithy_types::DateTime;
use serde_json::Value;
use sgwatch_synth::{self as synth, cloudtrail, Capture};

use crate::capture::{CaptureServer, Captured};
use crate::cli::{self, CommandRun, Programs, Verification};
use crate::emulator::{iam_user, LambdaEmulator, Moto, SentEmail, ACCOUNT, REGION};
use crate::fixture::{self, open, open_to_the_world, security_group, SENDER};
use crate::inventory::{deployed_function_env, Inventory};

/// Department A's distribution list, the `OwnerDL` tag of its group.
pub const OWNER: &str = "dept-a@corp.example";
/// Department A's Slack channel: the destination's name, its kind and the SSM parameter holding
/// its webhook URL, as `--destination` takes it.
pub const SLACK_DESTINATION: &str = "dept-a-slack=slack:/sgwatch/dept-a-slack";
/// The name Department A's group gives in its `NotifyChannels` tag.
pub const SLACK_NAME: &str = "dept-a-slack";
/// The path of the Slack-shaped webhook URL the capture server stands in for.
const SLACK_PATH: &str = "/services/T0DEPTA/B0SGWATCH/demo";
/// Who `sgwatch verify` tags its throwaway group to notify in the story.
pub const VERIFY_RECIPIENT: &str = "secops@corp.example";
const MAIL_TIMEOUT: Duration = Duration::from_secs(30);
/// Tagged groups that exist before install; their discovery must send nothing.
pub const EXISTING_GROUPS: usize = 50;
/// How long after install the baseline lasts when the story has to set it itself: AWS Config
/// discovers thousands of groups within minutes, the story's fifty within seconds.
const BASELINE_MARGIN: Duration = Duration::from_secs(15 * 60);

/// Whether install could run at all.
#[derive(Debug, Clone)]
pub enum Install {
    Ran(CommandRun),
    /// The installer has no `install` command (yet): the story goes on without it.
    Unavailable(String),
}

/// What Department A's click on Revert did.
#[derive(Debug, Clone)]
pub struct Clicked {
    /// The link, as the email gave it.
    pub link: String,
    /// Each request to the link, in order: (who, method, HTTP status, the page's title).
    pub pages: Vec<(String, String, u64, String)>,
    /// The group's ingress rules before the click and after it.
    pub rules_before: String,
    pub rules_after: String,
    /// What the handler returned for AWS Config's notification of the revert, and the emails.
    pub revert_invocation: Value,
    pub revert_emails: Vec<SentEmail>,
}

/// Everything the story did and saw, for the demo to summarise and the test to assert.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub install: Install,
    /// The environment the handler ran with (the deployed function's, when install ran).
    pub function_env: BTreeMap<String, String>,
    /// Department A's group.
    pub tagged_group: String,
    /// The untagged group whose change must send nothing.
    pub untagged_group: String,
    /// What the handler returned for Department B's call, delivered as CloudTrail's EventBridge
    /// event (the actor feed) before Config's notification.
    pub feed_invocation: Value,
    /// Whether the deployed function warns early (`SGWATCH_EARLY_WARNING` not `off`).
    pub early_warning: bool,
    /// Who Department B is: the ARN its calls were made as.
    pub dept_b_arn: String,
    /// What the handler returned for the RDP change (`{records, sent, skipped, failed}`).
    pub rdp_invocation: Value,
    /// The email(s) the RDP change sent, from the feed event and the notification together.
    pub emails: Vec<SentEmail>,
    /// What the RDP change posted to Department A's Slack channel (the capture server).
    pub slack_posts: Vec<Captured>,
    /// Department A's click on the email's Revert link (installed with `--act-links on`).
    pub act: Option<Clicked>,
    /// What the handler returned for the untagged group's change.
    pub untagged_invocation: Value,
    /// Emails moto has accepted before and after the untagged group's invocation returned.
    pub mail_before_untagged: usize,
    pub mail_after_untagged: usize,
    /// What the handler returned for Department B's change that strips the tags and opens SSH.
    pub opt_out_invocation: Value,
    /// The email(s) that change sent.
    pub opt_out_emails: Vec<SentEmail>,
    /// Whether `SGWATCH_BASELINE_UNTIL` came from the deployed function (else the story set it).
    pub baseline_from_install: bool,
    /// What the handler returned for each discovery notification of the existing groups.
    pub discovery_invocations: Vec<Value>,
    /// Emails moto has accepted before and after the discovery notifications were played.
    pub mail_before_discovery: usize,
    pub mail_after_discovery: usize,
    /// `sgwatch verify`, with the story playing AWS Config.
    pub verify: Option<Verification>,
    pub status: Option<CommandRun>,
    pub teardown: Option<CommandRun>,
    /// Resources that appeared with install and are still there after teardown.
    pub leftovers: Vec<String>,
    /// Where the handler's and the emulator's logs are.
    pub work_dir: PathBuf,
}

impl Outcome {
    /// What did not go as the story says, in words; empty when all did.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.install {
            Install::Unavailable(why) => problems.push(format!("installer not available: {why}")),
            Install::Ran(run) if !run.success() => {
                problems.push(format!("`{}` failed ({})", run.command, run.status))
            }
            Install::Ran(_) => {}
        }
        match self.emails.as_slice() {
            [email] => {
                if email.destinations != [OWNER] {
                    problems.push(format!(
                        "the email went to {:?}, not {OWNER}",
                        email.destinations
                    ));
                }
                let subject = email.subject.as_deref().unwrap_or_default();
                if !subject.starts_with("[sgwatch CRITICAL]") {
                    problems.push(format!("the subject is not CRITICAL: {subject}"));
                }
                let text = email.text.as_deref().unwrap_or_default();
                if !text.contains("+ingress tcp/3389 from 0.0.0.0/0") {
                    problems.push("the text does not show +ingress tcp/3389 from 0.0.0.0/0".into());
                }
                if !text.contains(&format!("Changed by: {} from ", self.dept_b_arn)) {
                    problems.push(format!(
                        "the email does not say the change was made by {}",
                        self.dept_b_arn
                    ));
                }
                if self.early_warning && !text.contains("Early warning") {
                    problems
                        .push("early warning is on but the email is not the early warning".into());
                }
            }
            emails => problems.push(format!(
                "expected one email for the RDP change, got {}",
                emails.len()
            )),
        }
        match self.slack_posts.as_slice() {
            [post] => {
                if post.path != SLACK_PATH {
                    problems.push(format!(
                        "the Slack post went to {}, not {SLACK_PATH}",
                        post.path
                    ));
                }
                let message: Value = serde_json::from_slice(&post.body).unwrap_or_default();
                let header = message["blocks"][0]["text"]["text"]
                    .as_str()
                    .unwrap_or_default();
                if !header.starts_with("CRITICAL: security group") {
                    problems.push(format!("the Slack header is not CRITICAL: {header:?}"));
                }
                if !String::from_utf8_lossy(&post.body).contains("+ingress tcp/3389 from 0.0.0.0/0")
                {
                    problems.push(
                        "the Slack message does not show +ingress tcp/3389 from 0.0.0.0/0".into(),
                    );
                }
            }
            posts => problems.push(format!(
                "expected one Slack post for the RDP change, got {}",
                posts.len()
            )),
        }
        match &self.act {
            None => problems.push("the email had no Revert link to click".into()),
            Some(act) => {
                let statuses: Vec<(&str, u64)> = act
                    .pages
                    .iter()
                    .map(|(_, m, s, _)| (m.as_str(), *s))
                    .collect();
                let expected = [
                    ("GET", 200),
                    ("GET", 200),
                    ("GET", 200),
                    ("POST", 200),
                    ("POST", 409),
                ];
                if statuses != expected {
                    problems.push(format!("the link answered {statuses:?}, not {expected:?}"));
                }
                if act.rules_after != "tcp/80 from 0.0.0.0/0" {
                    problems.push(format!(
                        "after Revert the group holds {}, not just tcp/80 from 0.0.0.0/0",
                        act.rules_after
                    ));
                }
                match act.revert_emails.as_slice() {
                    [email] => {
                        let subject = email.subject.as_deref().unwrap_or_default();
                        let text = email.text.as_deref().unwrap_or_default();
                        if !subject.starts_with("[sgwatch INFO]") {
                            problems.push(format!("the revert is not told at INFO: {subject}"));
                        }
                        if !text.contains("was reverted through sgwatch at")
                            || !text.contains(&format!("by a link sent to {OWNER}"))
                        {
                            problems.push("the revert's email does not say it was reverted through sgwatch by the link sent to Department A".into());
                        }
                    }
                    emails => problems.push(format!(
                        "expected one email for the revert, got {}",
                        emails.len()
                    )),
                }
            }
        }
        if self.mail_after_untagged != self.mail_before_untagged {
            problems.push(format!(
                "the untagged group's change sent mail ({} emails before, {} after)",
                self.mail_before_untagged, self.mail_after_untagged
            ));
        }
        match self.opt_out_emails.as_slice() {
            [email] => {
                if email.destinations != [OWNER] {
                    problems.push(format!(
                        "the opt-out email went to {:?}, not {OWNER}",
                        email.destinations
                    ));
                }
                let subject = email.subject.as_deref().unwrap_or_default();
                if !subject.starts_with("[sgwatch CRITICAL]") {
                    problems.push(format!("the opt-out subject is not CRITICAL: {subject}"));
                }
                let text = email.text.as_deref().unwrap_or_default();
                if !text.contains("NotifyOnChange was removed") {
                    problems
                        .push("the opt-out email does not say NotifyOnChange was removed".into());
                }
            }
            emails => problems.push(format!(
                "expected one email for the change that strips the tags, got {}",
                emails.len()
            )),
        }
        if self.mail_after_discovery != self.mail_before_discovery {
            problems.push(format!(
                "the discovery of {EXISTING_GROUPS} existing groups sent {} emails",
                self.mail_after_discovery - self.mail_before_discovery
            ));
        }
        if self.untagged_invocation["sent"] != 0 {
            problems.push(format!(
                "the handler reports sending for the untagged group: {}",
                self.untagged_invocation
            ));
        }
        if let Some(v) = &self.verify {
            if !v.run.success() {
                problems.push(format!(
                    "`{}` failed ({}): {}",
                    v.run.command,
                    v.run.status,
                    v.run.stderr.trim()
                ));
            }
        }
        if let Install::Ran(_) = self.install {
            match &self.teardown {
                Some(run) if !run.success() => {
                    problems.push(format!("`{}` failed ({})", run.command, run.status))
                }
                Some(_) => {}
                None => problems.push("teardown did not run".into()),
            }
            if !self.leftovers.is_empty() {
                problems.push(format!(
                    "teardown left behind: {}",
                    self.leftovers.join(", ")
                ));
            }
        }
        problems
    }
}

/// Numbered, indented output a person can follow.
struct Narrator {
    step: usize,
}

impl Narrator {
    fn step(&mut self, title: impl Display) {
        self.step += 1;
        println!("\n{:>2}. {title}", self.step);
    }

    fn say(&self, line: impl Display) {
        println!("    {line}");
    }

    fn block(&self, text: &str) {
        for line in text.trim_end().lines() {
            println!("    │ {line}");
        }
    }

    fn command(&self, run: &CommandRun) {
        self.say(format!("$ {}", run.command));
        self.block(&run.stdout);
        if !run.success() {
            self.block(&run.stderr);
            self.say(format!("✗ {}", run.status));
        }
    }
}

/// Plays the whole story against `moto` and reports what happened. Errors are reserved for the
/// machinery (a program that cannot start, an AWS call moto refuses); what sgwatch did or failed
/// to do is in the [`Outcome`] (see [`Outcome::problems`]).
pub async fn play(moto: &Moto, programs: &Programs) -> Result<Outcome> {
    let mut n = Narrator { step: 0 };
    let work_dir = &programs.work_dir;
    if work_dir.exists() {
        std::fs::remove_dir_all(work_dir)
            .with_context(|| format!("emptying {}", work_dir.display()))?;
    }
    std::fs::create_dir_all(work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let config = moto.sdk_config(None).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);

    n.step(format!("Local AWS is moto at {}", moto.endpoint));
    moto.verify_sender(&config, SENDER).await;
    n.say(format!(
        "SES sender identity {SENDER} created (moto treats it as verified)"
    ));

    n.step(format!(
        "{EXISTING_GROUPS} tagged groups already exist, some open to the world on SSH"
    ));
    let mut existing = Vec::with_capacity(EXISTING_GROUPS);
    for i in 0..EXISTING_GROUPS {
        let group = security_group(
            &ec2,
            &format!("existing-{i:02}"),
            "A group that exists before sgwatch",
            &[("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)],
        )
        .await?;
        if i % 5 == 0 {
            open(&ec2, &group, 22).await?;
        }
        existing.push(group);
    }
    n.say(format!(
        "{} … {} tagged NotifyOnChange=Yes OwnerDL={OWNER}",
        existing[0],
        existing[EXISTING_GROUPS - 1]
    ));

    n.step("The account's CloudTrail trail logs management events in every region");
    let trail = fixture::logging_trail(&config, ACCOUNT).await?;
    n.say(format!(
        "trail {trail} is logging: install turns the actor feed on by default"
    ));

    n.step("sgwatch install");
    let before_install = Inventory::take(&config).await?;
    let install = install(programs, moto).await?;
    match &install {
        Install::Ran(run) => n.command(run),
        Install::Unavailable(why) => n.say(format!("installer not available: {why}")),
    }
    let mut function_env = function_env(&config, &install).await?;
    let baseline_from_install = function_env
        .get("SGWATCH_BASELINE_UNTIL")
        .is_some_and(|v| !v.is_empty());
    if !baseline_from_install {
        let until = DateTime::from(SystemTime::now() + BASELINE_MARGIN);
        let until = until
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .context("formatting the baseline time")?;
        n.say(format!(
            "the deployed function has no SGWATCH_BASELINE_UNTIL; the story sets {until}"
        ));
        function_env.insert("SGWATCH_BASELINE_UNTIL".to_owned(), until);
    }

    n.step("Department A's Slack channel takes webhooks (a local Slack-shaped server)");
    let slack = CaptureServer::start(Vec::new());
    let slack_url = format!("{}{SLACK_PATH}", slack.url);
    let parameter = "/sgwatch/dept-a-slack";
    aws_sdk_ssm::Client::new(&config)
        .put_parameter()
        .name(parameter)
        .value(&slack_url)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .with_context(|| format!("putting SSM parameter {parameter}"))?;
    n.say(format!(
        "SSM SecureString {parameter} holds the channel's webhook URL ({slack_url})"
    ));
    n.say(
        "a local receiver is on loopback: the story sets SGWATCH_TEST_LOOPBACK_DESTINATIONS=true, \
         which the stack never does (in Lambda, loopback is the Runtime API)",
    );
    function_env.insert(
        "SGWATCH_TEST_LOOPBACK_DESTINATIONS".to_owned(),
        "true".to_owned(),
    );
    if function_env
        .get("SGWATCH_DESTINATIONS")
        .is_none_or(|v| v.is_empty())
    {
        n.say(format!(
            "the deployed function has no destinations; the story sets SGWATCH_DESTINATIONS={SLACK_DESTINATION}"
        ));
        function_env.insert(
            "SGWATCH_DESTINATIONS".to_owned(),
            SLACK_DESTINATION.to_owned(),
        );
    }

    n.step("Department A creates its web group: HTTP from anywhere, owners told on change");
    let tagged_group = security_group(
        &ec2,
        "dept-a-web",
        "Department A public web servers",
        &[
            ("NotifyOnChange", "Yes"),
            ("OwnerDL", OWNER),
            ("NotifyChannels", SLACK_NAME),
        ],
    )
    .await?;
    open(&ec2, &tagged_group, 80).await?;
    let before = synth::describe(&ec2, &tagged_group).await?;
    n.say(format!(
        "{tagged_group} dept-a-web  tags NotifyOnChange=Yes OwnerDL={OWNER} NotifyChannels={SLACK_NAME}"
    ));
    n.say(format!("ingress: {}", ingress_summary(&before)));

    n.step("Department B reuses the group and opens RDP (tcp/3389) to the internet");
    let (dept_b, dept_b_arn) = dept_b(moto, &config).await?;
    let called_at = DateTime::from(SystemTime::now());
    let request_id = open(&dept_b, &tagged_group, 3389).await?;
    let after = synth::describe(&ec2, &tagged_group).await?;
    n.say(format!(
        "AuthorizeSecurityGroupIngress {tagged_group} tcp/3389 from 0.0.0.0/0, as {dept_b_arn}"
    ));
    n.say(format!("ingress: {}", ingress_summary(&after)));

    n.step("CloudTrail's record of that call, as EventBridge hands it to the Lambda seconds later");
    let call = cloudtrail::Call {
        event_name: "AuthorizeSecurityGroupIngress".to_owned(),
        request_parameters: cloudtrail::authorize_ingress_parameters(
            &tagged_group,
            &[open_to_the_world(3389)],
        ),
        response_elements: serde_json::json!({"_return": true}),
        request_id,
        region: REGION.to_owned(),
        time: called_at,
    };
    let who = cloudtrail::Identity {
        arn: dept_b_arn.clone(),
        account: ACCOUNT.to_owned(),
        // The call came from this machine.
        source_ip: "127.0.0.1".to_owned(),
        user_agent: "aws-sdk-rust".to_owned(),
    };
    let feed_event = cloudtrail::api_call_event(&call, &who)?;
    let feed_file = programs.work_dir.join("rdp-opened.cloudtrail-event.json");
    std::fs::write(&feed_file, serde_json::to_vec_pretty(&feed_event)?)
        .with_context(|| format!("writing {}", feed_file.display()))?;
    n.say(format!("written to {}", feed_file.display()));

    n.step("AWS Config's notification of the change, as SNS hands it to the Lambda");
    let (rdp_event, rdp_file) = notification(programs, &before, &after, "rdp-opened")?;
    let message: Value = serde_json::from_str(
        rdp_event["Records"][0]["Sns"]["Message"]
            .as_str()
            .unwrap_or_default(),
    )?;
    for (key, change) in message["configurationItemDiff"]["changedProperties"]
        .as_object()
        .into_iter()
        .flatten()
    {
        let change_type = change["changeType"].as_str().unwrap_or_default();
        n.say(format!("changedProperties {key}: {change_type}"));
    }
    n.say(format!("written to {}", rdp_file.display()));

    n.step("The real handler under the Lambda Runtime API emulator (cargo lambda watch)");
    let emulator = LambdaEmulator::start(programs, moto, &function_env).await?;
    n.say(format!("$ {}", emulator.watch_command));
    n.say(format!(
        "$ {} (with the function's environment:)",
        programs.bootstrap.display()
    ));
    for (key, value) in &function_env {
        n.say(format!("    {key}={value}"));
    }

    let early_warning = function_env
        .get("SGWATCH_EARLY_WARNING")
        .is_none_or(|v| !v.eq_ignore_ascii_case("off"));
    n.step(format!(
        "EventBridge delivers CloudTrail's event of the call; the handler records who (early warning {})",
        if early_warning { "on" } else { "off" }
    ));
    let mail_before = moto.ses_messages().await.len();
    let started = Instant::now();
    let feed_invocation = emulator.invoke(&config, &feed_event).await?;
    n.say(format!(
        "handler returned {feed_invocation} in {} ms",
        started.elapsed().as_millis()
    ));

    n.step("Config delivers the notification minutes later; the handler runs");
    let started = Instant::now();
    let rdp_invocation = emulator.invoke(&config, &rdp_event).await?;
    n.say(format!(
        "handler returned {rdp_invocation} in {} ms",
        started.elapsed().as_millis()
    ));

    n.step("Department A's inbox (moto's SES)");
    let all = moto
        .wait_for_ses_messages(mail_before + 1, MAIL_TIMEOUT)
        .await;
    // Both invocations have returned: whatever they sent is in SES.
    let all = if all.len() > mail_before + 1 {
        all
    } else {
        moto.ses_messages().await
    };
    let emails: Vec<SentEmail> = all[mail_before..].to_vec();
    for email in &emails {
        n.say(format!("From:    {}", email.source));
        n.say(format!("To:      {}", email.destinations.join(", ")));
        n.say(format!(
            "Subject: {}",
            email.subject.as_deref().unwrap_or_default()
        ));
        n.block(email.text.as_deref().unwrap_or("(no text part)"));
    }

    n.step("Department A's Slack channel (the Block Kit message posted)");
    let slack_posts = slack.wait_for(1, MAIL_TIMEOUT);
    for post in &slack_posts {
        n.say(format!("POST {}", post.path));
        let message: Value = serde_json::from_slice(&post.body).unwrap_or_default();
        n.block(&serde_json::to_string_pretty(&message).unwrap_or_default());
    }

    let act = match emails.first() {
        Some(email)
            if function_env
                .get("SGWATCH_ACT_URL")
                .is_some_and(|u| !u.is_empty()) =>
        {
            Some(
                click_revert(
                    &mut n,
                    moto,
                    programs,
                    &config,
                    &ec2,
                    &tagged_group,
                    email,
                    &emulator,
                )
                .await?,
            )
        }
        _ => None,
    };

    n.step("A group without the tags changes too: nobody is emailed");
    let untagged_group =
        security_group(&ec2, "dept-b-scratch", "Department B scratch", &[]).await?;
    let untagged_before = synth::describe(&ec2, &untagged_group).await?;
    open(&ec2, &untagged_group, 22).await?;
    let untagged_after = synth::describe(&ec2, &untagged_group).await?;
    let (untagged_event, _) = notification(
        programs,
        &untagged_before,
        &untagged_after,
        "untagged-ssh-opened",
    )?;
    let mail_before_untagged = moto.ses_messages().await.len();
    let untagged_invocation = emulator.invoke(&config, &untagged_event).await?;
    let mail_after_untagged = moto.ses_messages().await.len();
    n.say(format!(
        "{untagged_group} dept-b-scratch (no tags) opens tcp/22 to 0.0.0.0/0"
    ));
    n.say(format!("handler returned {untagged_invocation}"));
    n.say(format!(
        "emails in SES: {mail_before_untagged} before, {mail_after_untagged} after the invocation returned"
    ));

    n.step("Department B strips the tags and opens SSH (tcp/22) to the internet, in one change");
    let opt_out_before = synth::describe(&ec2, &tagged_group).await?;
    ec2.delete_tags()
        .resources(&tagged_group)
        .tags(Tag::builder().key("NotifyOnChange").build())
        .tags(Tag::builder().key("OwnerDL").build())
        .send()
        .await
        .with_context(|| format!("removing the tags of {tagged_group}"))?;
    open(&ec2, &tagged_group, 22).await?;
    let opt_out_after = synth::describe(&ec2, &tagged_group).await?;
    let (opt_out_event, _) =
        notification(programs, &opt_out_before, &opt_out_after, "opt-in-removed")?;
    let mail_before_opt_out = moto.ses_messages().await.len();
    let opt_out_invocation = emulator.invoke(&config, &opt_out_event).await?;
    n.say(format!(
        "DeleteTags {tagged_group} NotifyOnChange OwnerDL; AuthorizeSecurityGroupIngress tcp/22 from 0.0.0.0/0"
    ));
    n.say(format!("handler returned {opt_out_invocation}"));
    let all = moto
        .wait_for_ses_messages(mail_before_opt_out + 1, MAIL_TIMEOUT)
        .await;
    let opt_out_emails: Vec<SentEmail> = all[mail_before_opt_out..].to_vec();
    for email in &opt_out_emails {
        n.say(format!("To:      {}", email.destinations.join(", ")));
        n.say(format!(
            "Subject: {}",
            email.subject.as_deref().unwrap_or_default()
        ));
        n.block(email.text.as_deref().unwrap_or("(no text part)"));
    }

    n.step(format!(
        "Config discovers the {EXISTING_GROUPS} existing groups: the baseline, no email"
    ));
    let mail_before_discovery = moto.ses_messages().await.len();
    let mut discovery_invocations = Vec::with_capacity(EXISTING_GROUPS);
    for group in &existing {
        let state = synth::describe(&ec2, group).await?;
        let capture = Capture {
            account: state["ownerId"].as_str().unwrap_or(ACCOUNT).to_owned(),
            region: REGION.to_owned(),
            time: DateTime::from(SystemTime::now()),
        };
        let message = synth::item_change(None, Some(&state), &capture)?;
        let event = synth::sns_event(&message, &format!("sgwatch-demo-discovered-{group}"));
        discovery_invocations.push(emulator.invoke(&config, &event).await?);
    }
    let mail_after_discovery = moto.ses_messages().await.len();
    let sent: u64 = discovery_invocations
        .iter()
        .filter_map(|r| r["sent"].as_u64())
        .sum();
    n.say(format!(
        "{} ResourceDiscovered notifications handled, {sent} sent; emails in SES: {mail_before_discovery} before, {mail_after_discovery} after",
        discovery_invocations.len()
    ));
    let mut verification = None;
    if matches!(&install, Install::Ran(run) if run.success()) {
        n.step("sgwatch verify: a real change to a throwaway group, timed (the story plays AWS Config)");
        let v = cli::verify(
            programs,
            moto,
            &emulator,
            &["--recipient", VERIFY_RECIPIENT, "--timeout", "60s"],
        )
        .await?;
        n.command(&v.run);
        if let (Some(group), Some(id)) = (&v.group, &v.sns_message_id) {
            n.say(format!(
                "as AWS Config: {group}'s state read from EC2, published to the stack's topic \
                 (SNS message {id}), given to the handler"
            ));
        }
        verification = Some(v);
    }
    let handler_log = emulator.stop().await;

    let (mut status, mut teardown, mut leftovers) = (None, None, Vec::new());
    if let Install::Ran(_) = install {
        n.step("sgwatch status");
        let run = cli::sgwatch(programs, moto, &["status"]).await?;
        n.command(&run);
        status = Some(run);

        n.step("sgwatch teardown");
        let run = cli::sgwatch(programs, moto, &["teardown", "--yes"]).await?;
        n.command(&run);
        teardown = Some(run);
        leftovers = Inventory::take(&config).await?.minus(&before_install);
        if leftovers.is_empty() {
            n.say("nothing that install created is left (stacks, functions, buckets, topics, subscriptions, queues, tables, roles, Config)");
        } else {
            n.say(format!("left behind: {}", leftovers.join(", ")));
        }
    }
    n.say(format!("logs: {}", handler_log.display()));

    Ok(Outcome {
        install,
        function_env,
        tagged_group,
        untagged_group,
        feed_invocation,
        early_warning,
        dept_b_arn,
        rdp_invocation,
        emails,
        slack_posts,
        act,
        untagged_invocation,
        mail_before_untagged,
        mail_after_untagged,
        opt_out_invocation,
        opt_out_emails,
        baseline_from_install,
        discovery_invocations,
        mail_before_discovery,
        mail_after_discovery,
        verify: verification,
        status,
        teardown,
        leftovers,
        work_dir: programs.work_dir.clone(),
    })
}

/// Department A clicks Revert in the alert: a mail scanner opens the link first (twice), which
/// changes nothing; Department A's browser opens it and presses the button (the POST); a second
/// press finds the link used. The act function is the real `act` binary, started as Lambda starts
/// it (the zip's `bootstrap` with handler `act`) under the Runtime API emulator, with the deployed
/// function's environment. AWS Config's notification of the revert then reaches the handler.
#[allow(clippy::too_many_arguments)]
async fn click_revert(
    n: &mut Narrator,
    moto: &Moto,
    programs: &Programs,
    config: &SdkConfig,
    ec2: &aws_sdk_ec2::Client,
    group: &str,
    email: &SentEmail,
    handler: &LambdaEmulator,
) -> Result<Clicked> {
    n.step("Department A clicks Revert in the email (the act function behind its URL)");
    let text = email.text.as_deref().unwrap_or_default();
    let link = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Revert this rule:"))
        .map(|l| l.trim().to_owned())
        .ok_or_else(|| anyhow!("the email has no Revert link:\n{text}"))?;
    n.say(format!(
        "Revert this rule: {}…",
        &link[..link.len().min(90)]
    ));
    let act = aws_sdk_lambda::Client::new(config)
        .get_function_configuration()
        .function_name("sgwatch-act")
        .send()
        .await
        .context("reading the act function's configuration")?;
    let mut env: BTreeMap<String, String> = act
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    // As Lambda runs the function: the zip's bootstrap, told its handler, in its task root.
    let task_root = programs
        .bootstrap
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    env.insert(
        "_HANDLER".into(),
        act.handler().unwrap_or_default().to_owned(),
    );
    env.insert("LAMBDA_TASK_ROOT".into(), task_root);
    env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), "sgwatch-act".into());
    // The emulator knows a function by the project's binary of that name.
    let emulator = LambdaEmulator::start_as(programs, &moto.endpoint, &env, "act").await?;
    let before = synth::describe(ec2, group).await?;
    let rules_before = ingress_summary(&before);
    n.say(format!("{group} now: {rules_before}"));
    let mut pages = Vec::new();
    for (who, method) in [
        ("a mail scanner", "GET"),
        ("a mail scanner", "GET"),
        ("Department A's browser", "GET"),
        ("Department A presses Revert this rule", "POST"),
        ("Department A presses it again", "POST"),
    ] {
        let response = emulator
            .invoke(config, &fixture::function_url_event(method, &link))
            .await?;
        let status = response["statusCode"].as_u64().unwrap_or_default();
        let body = response["body"].as_str().unwrap_or_default();
        let title = body
            .split("<title>sgwatch: ")
            .nth(1)
            .and_then(|t| t.split("</title>").next())
            .unwrap_or_default()
            .to_owned();
        let first = body
            .split("<p>")
            .nth(1)
            .and_then(|p| p.split("</p>").next())
            .unwrap_or_default();
        n.say(format!("{who}: {method} → {status} {title}: {first}"));
        if method == "POST"
            && pages
                .iter()
                .all(|(_, m, _, _): &(String, String, u64, String)| m != "POST")
        {
            let now = synth::describe(ec2, group).await?;
            n.say(format!("{group} now: {}", ingress_summary(&now)));
        }
        pages.push((who.to_owned(), method.to_owned(), status, title));
    }
    let act_log = emulator.stop().await;
    let after = synth::describe(ec2, group).await?;
    let rules_after = ingress_summary(&after);

    n.step("AWS Config reports the revert; the handler tells it as what it is");
    let (event, _) = notification(programs, &before, &after, "rdp-reverted")?;
    let mail_before = moto.ses_messages().await.len();
    let revert_invocation = handler.invoke(config, &event).await?;
    n.say(format!("handler returned {revert_invocation}"));
    let all = moto
        .wait_for_ses_messages(mail_before + 1, MAIL_TIMEOUT)
        .await;
    let revert_emails: Vec<SentEmail> = all[mail_before..].to_vec();
    for email in &revert_emails {
        n.say(format!("To:      {}", email.destinations.join(", ")));
        n.say(format!(
            "Subject: {}",
            email.subject.as_deref().unwrap_or_default()
        ));
        n.block(email.text.as_deref().unwrap_or("(no text part)"));
    }
    n.say(format!("act's log: {}", act_log.display()));
    Ok(Clicked {
        link,
        pages,
        rules_before,
        rules_after,
        revert_invocation,
        revert_emails,
    })
}

/// Runs `sgwatch install`, or says why it cannot.
pub async fn install(programs: &Programs, moto: &Moto) -> Result<Install> {
    let help = cli::sgwatch(programs, moto, &["install", "--help"]).await?;
    if !help.success() || !help.stdout.contains("--handler-zip") {
        return Ok(Install::Unavailable(format!(
            "`{}` does not offer --handler-zip ({})",
            help.command, help.status
        )));
    }
    let zip = programs.handler_zip()?;
    let zip = zip.display().to_string();
    let mut args = vec!["install", "--sender", SENDER, "--handler-zip", &zip];
    if help.stdout.contains("--destination") {
        args.extend(["--destination", SLACK_DESTINATION]);
    }
    // Department A's Revert link, when the installer offers it.
    if help.stdout.contains("--act-links") {
        args.extend(["--act-links", "on"]);
    }
    // moto runs no event source mapping, so a coalescing window's wake would reach no handler:
    // each change goes alone in the story (tests/it/quiet.rs drains the wake queue itself).
    if help.stdout.contains("--coalesce") {
        args.extend(["--coalesce", "0"]);
    }
    // The zip holds the host's build; tell the stack when the installer lets us.
    if help.stdout.contains("--arch") {
        args.extend(["--arch", "x86_64"]);
    }
    args.push("--yes");
    Ok(Install::Ran(cli::sgwatch(programs, moto, &args).await?))
}

/// Installs sgwatch into moto as the story does, its sender verified first; the deployed
/// function's environment. Panics when install is unavailable or fails.
pub async fn installed(moto: &Moto, programs: &Programs) -> BTreeMap<String, String> {
    let config = moto.sdk_config(None).await;
    moto.verify_sender(&config, SENDER).await;
    match install(programs, moto).await.unwrap() {
        Install::Ran(run) => assert!(run.success(), "{}\n{}", run.stdout, run.stderr),
        Install::Unavailable(why) => panic!("install is not available: {why}"),
    }
    deployed_function_env(&config).await.unwrap()
}

/// The environment the handler runs with: the deployed function's own when install ran (so the
/// settings are the installer's), else just the sender.
async fn function_env(config: &SdkConfig, install: &Install) -> Result<BTreeMap<String, String>> {
    let deployed = matches!(install, Install::Ran(run) if run.success());
    if !deployed {
        return Ok(BTreeMap::from([(
            "SGWATCH_SENDER".to_owned(),
            SENDER.to_owned(),
        )]));
    }
    deployed_function_env(config).await
}

/// Department B's administrator, an IAM user of the account: an EC2 client acting as it, and the
/// ARN `sts:GetCallerIdentity` gives for it (what CloudTrail records as the caller).
async fn dept_b(moto: &Moto, config: &SdkConfig) -> Result<(aws_sdk_ec2::Client, String)> {
    let key = iam_user(config, "dept-b-admin", None).await?;
    let as_dept_b = moto.sdk_config_as(&key).await;
    let arn = aws_sdk_sts::Client::new(&as_dept_b)
        .get_caller_identity()
        .send()
        .await
        .context("asking STS who dept-b-admin is")?
        .arn()
        .ok_or_else(|| anyhow!("GetCallerIdentity returned no ARN"))?
        .to_owned();
    Ok((aws_sdk_ec2::Client::new(&as_dept_b), arn))
}

/// `tcp/80 from 0.0.0.0/0, tcp/3389 from 0.0.0.0/0`.
fn ingress_summary(configuration: &Value) -> String {
    let rules: Vec<String> = configuration["ipPermissions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            let ports = match (&p["fromPort"], &p["toPort"]) {
                (Value::Null, _) => "all".to_owned(),
                (from, to) if from == to => from.to_string(),
                (from, to) => format!("{from}-{to}"),
            };
            let proto = p["ipProtocol"].as_str().unwrap_or("?").to_owned();
            p["ipRanges"]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |cidr| format!("{proto}/{ports} from {}", cidr.as_str().unwrap_or("?")))
        })
        .collect();
    if rules.is_empty() {
        "(none)".to_owned()
    } else {
        rules.join(", ")
    }
}

/// The SNS event Config's notification of `before` → `after` arrives in, also written to
/// `WORK/NAME.sns-event.json` for `sgwatch explain` or `cargo lambda invoke --data-file`.
fn notification(
    programs: &Programs,
    before: &Value,
    after: &Value,
    name: &str,
) -> Result<(Value, PathBuf)> {
    let account = after["ownerId"].as_str().unwrap_or(ACCOUNT);
    let capture = Capture {
        account: account.to_owned(),
        region: REGION.to_owned(),
        time: DateTime::from(SystemTime::now()),
    };
    let message = synth::item_change(Some(before), Some(after), &capture)?;
    let message_id = format!("sgwatch-demo-{name}-{}", std::process::id());
    let event = synth::sns_event(&message, &message_id);
    let path = programs.work_dir.join(format!("{name}.sns-event.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&event)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((event, path))
}
