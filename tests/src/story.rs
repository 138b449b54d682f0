//! The story sgwatch exists for, played end to end against local AWS: the `demo` binary shows it,
//! `tests/tests/it/e2e.rs` asserts it, both through [`play`], so the test checks what the demo shows.
//!
//! Department A owns a group that allows HTTP from the internet; Department B adds RDP from
//! 0.0.0.0/0 to it. sgwatch is installed with the real installer, the group's real states are
//! read from moto's EC2, the notification AWS Config would send is built from them
//! ([`sgwatch_synth`]), and the real `bootstrap` binary handles it under cargo-lambda's
//! Lambda Runtime API emulator, sending through moto's SES. An untagged group's change must send
//! nothing; teardown must leave nothing that install created.
//!
//! moto's own Lambda cannot run code (that needs Docker), hence the emulator: `cargo lambda watch
//! --only-lambda-apis` serves the Runtime API, and the prebuilt binary runs against it with the
//! environment the installer gave the deployed function, so nothing is compiled while the story
//! plays.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use aws_config::SdkConfig;
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use aws_smithy_types::{Blob, DateTime};
use serde_json::Value;
use sgwatch_synth::{self as synth, cloudtrail, Capture};
use tokio::process::{Child, Command};

use crate::capture::{CaptureServer, Captured};
use crate::{repo_root, Moto, SentEmail, ACCOUNT, REGION};

/// The sender install is given; the story creates it as an SES identity first.
pub const SENDER: &str = "alerts@example.com";
/// Department A's distribution list, the `OwnerDL` tag of its group.
pub const OWNER: &str = "dept-a@corp.example";
/// Department A's Slack channel: the destination's name, its kind and the SSM parameter holding
/// its webhook URL, as `--destination` takes it.
pub const SLACK_DESTINATION: &str = "dept-a-slack=slack:/sgwatch/dept-a-slack";
/// The name Department A's group gives in its `NotifyChannels` tag.
pub const SLACK_NAME: &str = "dept-a-slack";
/// The path of the Slack-shaped webhook URL the capture server stands in for.
const SLACK_PATH: &str = "/services/T0DEPTA/B0SGWATCH/demo";
/// The stack name install uses by default.
pub const STACK: &str = "sgwatch";
/// The function name the emulator knows the handler by (its binary's name: cargo-lambda serves
/// only the workspace's binaries).
pub const EMULATED_FUNCTION: &str = "bootstrap";
const MAIL_TIMEOUT: Duration = Duration::from_secs(30);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
const INVOKE_TIMEOUT: Duration = Duration::from_secs(60);
const EMULATOR_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Tagged groups that exist before install; their discovery must send nothing.
pub const EXISTING_GROUPS: usize = 50;
/// How long after install the baseline lasts when the story has to set it itself: AWS Config
/// discovers thousands of groups within minutes, the story's fifty within seconds.
const BASELINE_MARGIN: Duration = Duration::from_secs(15 * 60);

/// The programs the story runs, all prebuilt (`scripts/demo.sh` builds them).
#[derive(Debug, Clone)]
pub struct Programs {
    /// The installer, `target/debug/sgwatch`.
    pub sgwatch: PathBuf,
    /// The Lambda handler, `target/debug/bootstrap` (x86_64 Linux, like the host).
    pub bootstrap: PathBuf,
    /// cargo-lambda, from the project's virtualenv.
    pub cargo_lambda: PathBuf,
    /// Where the handler zip, the event files and the logs go; emptied when the story starts.
    pub work_dir: PathBuf,
}

impl Programs {
    /// The debug builds in the workspace's target directory and cargo-lambda from `.venv`.
    /// Panics, saying what to run, when one is missing: a story without them proves nothing.
    pub fn locate() -> Programs {
        let root = repo_root();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let programs = Programs {
            sgwatch: target.join("debug/sgwatch"),
            bootstrap: target.join("debug/bootstrap"),
            cargo_lambda: root.join(".venv/bin/cargo-lambda"),
            work_dir: target.join("sgwatch-demo"),
        };
        let build = "run `cargo build -p sgwatch --bin sgwatch` and \
                     `cargo build -p sgwatch-handler --bin bootstrap` (scripts/demo.sh does both)";
        for (what, path, hint) in [
            ("the installer", &programs.sgwatch, build),
            ("the handler", &programs.bootstrap, build),
            (
                "cargo-lambda",
                &programs.cargo_lambda,
                "run `scripts/setup.sh` (or `make test`) to install it into .venv",
            ),
        ] {
            assert!(
                path.is_file(),
                "{what} is missing at {}: {hint}",
                path.display()
            );
        }
        programs
    }
}

impl Programs {
    /// Builds the installer and the handler as `scripts/demo.sh` does (a no-op when they are
    /// fresh), then [`Programs::locate`]s them: a test must not run a stale binary.
    pub fn build() -> Programs {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // One package at a time, as demo.sh does: built together, the handler would be compiled
        // with the installer's `ec2` feature, which the Lambda binary does not carry.
        for (package, bin) in [("sgwatch", "sgwatch"), ("sgwatch-handler", "bootstrap")] {
            let status = std::process::Command::new(&cargo)
                .args(["build", "--quiet", "-p", package, "--bin", bin])
                .current_dir(repo_root())
                .status()
                .unwrap_or_else(|e| panic!("cannot run cargo to build {bin}: {e}"));
            assert!(
                status.success(),
                "`cargo build -p {package} --bin {bin}` failed ({status})"
            );
        }
        Programs::locate()
    }
}

/// One run of an external command.
#[derive(Debug, Clone)]
pub struct CommandRun {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandRun {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Whether install could run at all.
#[derive(Debug, Clone)]
pub enum Install {
    Ran(CommandRun),
    /// The installer has no `install` command (yet): the story goes on without it.
    Unavailable(String),
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
        let group = create_group(
            &ec2,
            &format!("existing-{i:02}"),
            "A group that exists before sgwatch",
            &[("NotifyOnChange", "Yes"), ("OwnerDL", OWNER)],
        )
        .await?;
        if i % 5 == 0 {
            authorize(&ec2, &group, 22).await?;
        }
        existing.push(group);
    }
    n.say(format!(
        "{} … {} tagged NotifyOnChange=Yes OwnerDL={OWNER}",
        existing[0],
        existing[EXISTING_GROUPS - 1]
    ));

    n.step("The account's CloudTrail trail logs management events in every region");
    let trail = trail(&config).await?;
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
    let tagged_group = create_group(
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
    authorize(&ec2, &tagged_group, 80).await?;
    let before = synth::describe(&ec2, &tagged_group).await?;
    n.say(format!(
        "{tagged_group} dept-a-web  tags NotifyOnChange=Yes OwnerDL={OWNER} NotifyChannels={SLACK_NAME}"
    ));
    n.say(format!("ingress: {}", ingress_summary(&before)));

    n.step("Department B reuses the group and opens RDP (tcp/3389) to the internet");
    let (dept_b, dept_b_arn) = dept_b(moto, &config).await?;
    let called_at = DateTime::from(SystemTime::now());
    let request_id = authorize(&dept_b, &tagged_group, 3389).await?;
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
    let emulator = Emulator::start(programs, moto, &function_env).await?;
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

    n.step("A group without the tags changes too: nobody is emailed");
    let untagged_group = create_group(&ec2, "dept-b-scratch", "Department B scratch", &[]).await?;
    let untagged_before = synth::describe(&ec2, &untagged_group).await?;
    authorize(&ec2, &untagged_group, 22).await?;
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
    authorize(&ec2, &tagged_group, 22).await?;
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
        let v = verify(
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
        let run = sgwatch(programs, moto, &["status"]).await?;
        n.command(&run);
        status = Some(run);

        n.step("sgwatch teardown");
        let run = sgwatch(programs, moto, &["teardown", "--yes"]).await?;
        n.command(&run);
        teardown = Some(run);
        leftovers = Inventory::take(&config).await?.minus(&before_install);
        if leftovers.is_empty() {
            n.say("nothing that install created is left (stacks, functions, buckets, topics, queues, tables, roles, Config)");
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

/// Runs `sgwatch install`, or says why it cannot.
pub async fn install(programs: &Programs, moto: &Moto) -> Result<Install> {
    let help = sgwatch(programs, moto, &["install", "--help"]).await?;
    if !help.success() || !help.stdout.contains("--handler-zip") {
        return Ok(Install::Unavailable(format!(
            "`{}` does not offer --handler-zip ({})",
            help.command, help.status
        )));
    }
    let zip = handler_zip(programs)?;
    let zip = zip.display().to_string();
    let mut args = vec!["install", "--sender", SENDER, "--handler-zip", &zip];
    if help.stdout.contains("--destination") {
        args.extend(["--destination", SLACK_DESTINATION]);
    }
    // The zip holds the host's build; tell the stack when the installer lets us.
    if help.stdout.contains("--arch") {
        args.extend(["--arch", "x86_64"]);
    }
    args.push("--yes");
    Ok(Install::Ran(sgwatch(programs, moto, &args).await?))
}

/// Runs the installer against moto with test credentials and nothing from the user's AWS setup.
pub async fn sgwatch(programs: &Programs, moto: &Moto, args: &[&str]) -> Result<CommandRun> {
    let (command, rest) = args.split_first().expect("a subcommand");
    let mut full: Vec<&str> = vec![
        command,
        "--endpoint-url",
        &moto.endpoint,
        "--region",
        REGION,
    ];
    full.extend(rest);
    let mut cmd = Command::new(&programs.sgwatch);
    cmd.args(&full);
    isolate_aws_env(&mut cmd);
    let shown = format!("sgwatch {}", full.join(" "));
    let shown = shown.replace(&programs.work_dir.display().to_string(), "$WORK");
    run(cmd, shown).await
}

async fn run(mut cmd: Command, shown: String) -> Result<CommandRun> {
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}"))?
        .with_context(|| format!("running `{shown}`"))?;
    Ok(CommandRun {
        command: shown,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Test credentials, and none of the user's profiles, SSO sessions or endpoints.
pub fn isolate_aws_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
}

/// `bootstrap.zip` with the prebuilt handler named `bootstrap`, as Lambda's custom runtime wants.
fn handler_zip(programs: &Programs) -> Result<PathBuf> {
    use std::io::Write;
    use zip::write::SimpleFileOptions;

    let path = programs.work_dir.join("bootstrap.zip");
    let binary = std::fs::read(&programs.bootstrap)
        .with_context(|| format!("reading {}", programs.bootstrap.display()))?;
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    zip.start_file("bootstrap", options)?;
    zip.write_all(&binary)?;
    zip.finish()?;
    Ok(path)
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

/// The environment the deployed function of stack `sgwatch` runs with, and its name
/// (`AWS_LAMBDA_FUNCTION_NAME`).
pub async fn deployed_function_env(config: &SdkConfig) -> Result<BTreeMap<String, String>> {
    let stacks = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(STACK)
        .send()
        .await
        .with_context(|| format!("describing stack {STACK} after install"))?;
    let function = stacks
        .stacks()
        .first()
        .and_then(|s| {
            s.outputs()
                .iter()
                .find(|o| o.output_key() == Some("FunctionName"))
        })
        .and_then(|o| o.output_value())
        .ok_or_else(|| anyhow!("stack {STACK} has no FunctionName output"))?
        .to_owned();
    let configuration = aws_sdk_lambda::Client::new(config)
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .with_context(|| format!("reading the configuration of function {function}"))?;
    let mut env: BTreeMap<String, String> = configuration
        .environment()
        .and_then(|e| e.variables())
        .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    env.insert("AWS_LAMBDA_FUNCTION_NAME".to_owned(), function);
    Ok(env)
}

async fn create_group(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    description: &str,
    tags: &[(&str, &str)],
) -> Result<String> {
    let mut request = ec2
        .create_security_group()
        .group_name(name)
        .description(description);
    if !tags.is_empty() {
        let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
        for (key, value) in tags {
            spec = spec.tags(Tag::builder().key(*key).value(*value).build());
        }
        request = request.tag_specifications(spec.build());
    }
    let out = request
        .send()
        .await
        .with_context(|| format!("creating security group {name} in {REGION}"))?;
    out.group_id()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("CreateSecurityGroup {name} returned no group id"))
}

/// A multi-region trail that is logging, as most accounts (and every AWS Control Tower one) have;
/// its bucket is the trail's own. Returns the trail's name.
async fn trail(config: &SdkConfig) -> Result<String> {
    let name = "org-trail";
    let bucket = format!("sgwatch-demo-trail-{ACCOUNT}");
    sgwatch_handler::aws::s3_client(config)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .with_context(|| format!("creating the trail's bucket {bucket}"))?;
    let ct = aws_sdk_cloudtrail::Client::new(config);
    ct.create_trail()
        .name(name)
        .s3_bucket_name(&bucket)
        .is_multi_region_trail(true)
        .send()
        .await
        .with_context(|| format!("creating trail {name}"))?;
    ct.start_logging()
        .name(name)
        .send()
        .await
        .with_context(|| format!("starting trail {name}"))?;
    Ok(name.to_owned())
}

/// tcp/`port` from anywhere.
fn open_to_the_world(port: i32) -> IpPermission {
    IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port)
        .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
        .build()
}

/// Allows tcp/`port` from anywhere into `group`; returns EC2's request id.
async fn authorize(ec2: &aws_sdk_ec2::Client, group: &str, port: i32) -> Result<String> {
    use aws_sdk_ec2::operation::RequestId;
    let out = ec2
        .authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(open_to_the_world(port))
        .send()
        .await
        .with_context(|| format!("allowing tcp/{port} from 0.0.0.0/0 into {group}"))?;
    Ok(out.request_id().unwrap_or_default().to_owned())
}

/// Department B's administrator, an IAM user of the account: an EC2 client acting as it, and the
/// ARN `sts:GetCallerIdentity` gives for it (what CloudTrail records as the caller).
async fn dept_b(moto: &Moto, config: &SdkConfig) -> Result<(aws_sdk_ec2::Client, String)> {
    let iam = aws_sdk_iam::Client::new(config);
    iam.create_user()
        .user_name("dept-b-admin")
        .send()
        .await
        .context("creating IAM user dept-b-admin")?;
    let key = iam
        .create_access_key()
        .user_name("dept-b-admin")
        .send()
        .await
        .context("creating an access key for dept-b-admin")?;
    let key = key
        .access_key()
        .ok_or_else(|| anyhow!("CreateAccessKey returned no key"))?;
    let as_dept_b = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(&moto.endpoint)
        .http_client(sgwatch_handler::aws::http_client())
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            key.access_key_id(),
            key.secret_access_key(),
            None,
            None,
            "dept-b-admin",
        ))
        .load()
        .await;
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

/// cargo-lambda's Runtime API emulator with the prebuilt handler polling it.
pub struct Emulator {
    /// Where the emulator serves Lambda's Invoke API (`--lambda-endpoint-url` of the installer).
    pub endpoint: String,
    /// The function name the handler is known by there.
    pub function_name: String,
    watch_command: String,
    // Both are killed when dropped (kill_on_drop), so a failed story leaves no process behind.
    watch: Child,
    function: Child,
    function_log: PathBuf,
}

impl Emulator {
    async fn start(
        programs: &Programs,
        moto: &Moto,
        function_env: &BTreeMap<String, String>,
    ) -> Result<Emulator> {
        Emulator::start_as(programs, &moto.endpoint, function_env, EMULATED_FUNCTION).await
    }

    /// The handler known as `function_name`, its AWS calls sent to `aws_endpoint` (moto, or a
    /// fault proxy in front of it); its logs go to `WORK/FUNCTION_NAME.log`.
    pub async fn start_as(
        programs: &Programs,
        aws_endpoint: &str,
        function_env: &BTreeMap<String, String>,
        function_name: &str,
    ) -> Result<Emulator> {
        let port = free_port()?;
        let manifest = repo_root().join("Cargo.toml");
        let port_text = port.to_string();
        let manifest_text = manifest.display().to_string();
        let args = [
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port_text,
            "--manifest-path",
            &manifest_text,
        ];
        let watch_log = programs.work_dir.join("cargo-lambda-watch.log");
        let mut watch = Command::new(&programs.cargo_lambda);
        watch
            .args(args)
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .stdout(log_file(&watch_log)?)
            .stderr(log_file(&watch_log)?)
            .kill_on_drop(true);
        let mut watch = watch
            .spawn()
            .with_context(|| format!("starting {}", programs.cargo_lambda.display()))?;
        wait_for_port(port, &mut watch, &watch_log).await?;

        let endpoint = format!("http://127.0.0.1:{port}");
        let function_log = if function_name == EMULATED_FUNCTION {
            programs.work_dir.join("bootstrap.log")
        } else {
            programs.work_dir.join(format!("{function_name}.log"))
        };
        let mut function = Command::new(&programs.bootstrap);
        // A Lambda function starts with a clean environment: its configuration, Lambda's own
        // variables and the execution role's credentials (here, moto's test ones).
        function
            .env_clear()
            .envs(function_env)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("{endpoint}/.rt/{function_name}"),
            )
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_ENDPOINT_URL", aws_endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log_file(&function_log)?)
            .stderr(log_file(&function_log)?)
            .kill_on_drop(true);
        if !function_env.contains_key("AWS_LAMBDA_FUNCTION_NAME") {
            function.env("AWS_LAMBDA_FUNCTION_NAME", function_name);
        }
        let function = function
            .spawn()
            .with_context(|| format!("starting {}", programs.bootstrap.display()))?;

        Ok(Emulator {
            watch_command: format!(
                "cargo lambda {}",
                args[1..].join(" ").replace(&manifest_text, "Cargo.toml")
            ),
            endpoint,
            function_name: function_name.to_owned(),
            watch,
            function,
            function_log,
        })
    }

    /// What the handler has logged so far.
    pub fn log(&self) -> String {
        read_log(&self.function_log)
    }

    /// Invokes the handler through the emulator's Lambda Invoke API and returns its response;
    /// a function error is an error, with the handler's log.
    pub async fn invoke(&self, config: &SdkConfig, event: &Value) -> Result<Value> {
        let lambda = aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(config)
                .endpoint_url(&self.endpoint)
                .build(),
        );
        let call = lambda
            .invoke()
            .function_name(&self.function_name)
            .payload(Blob::new(serde_json::to_vec(event)?))
            .send();
        let out = tokio::time::timeout(INVOKE_TIMEOUT, call)
            .await
            .map_err(|_| {
                anyhow!(
                    "the handler did not answer within {INVOKE_TIMEOUT:?}; its log:\n{}",
                    read_log(&self.function_log)
                )
            })?
            .with_context(|| {
                format!(
                    "invoking the handler at {}; its log:\n{}",
                    self.endpoint,
                    read_log(&self.function_log)
                )
            })?;
        let payload = out.payload().map(|p| p.as_ref()).unwrap_or_default();
        let response: Value = serde_json::from_slice(payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()));
        if out.function_error().is_some() || out.status_code() != 200 {
            bail!(
                "the handler failed ({} {}): {response}\nits log:\n{}",
                out.status_code(),
                out.function_error().unwrap_or_default(),
                read_log(&self.function_log)
            );
        }
        Ok(response)
    }

    /// Stops the handler and the emulator; returns where the handler's log is.
    pub async fn stop(mut self) -> PathBuf {
        let _ = self.function.kill().await;
        let _ = self.watch.kill().await;
        self.function_log
    }
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn log_file(path: &Path) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()))
}

async fn wait_for_port(port: u16, watch: &mut Child, log: &Path) -> Result<()> {
    let deadline = Instant::now() + EMULATOR_READY_TIMEOUT;
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = watch.try_wait()? {
            bail!(
                "cargo lambda watch exited ({status}) before serving; its log:\n{}",
                read_log(log)
            );
        }
        if Instant::now() >= deadline {
            bail!(
                "cargo lambda watch did not listen on port {port} within {EMULATOR_READY_TIMEOUT:?}; its log:\n{}",
                read_log(log)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What exists in the account and region, by kind, to tell what install created and teardown
/// left. Each kind is read through its own API (moto's CloudFormation may claim what it skipped).
#[derive(Debug, Default)]
struct Inventory(BTreeSet<String>);

impl Inventory {
    async fn take(config: &SdkConfig) -> Result<Inventory> {
        let mut items = BTreeSet::new();
        let mut add = |kind: &str, names: Vec<String>| {
            items.extend(names.into_iter().map(|n| format!("{kind} {n}")));
        };

        let cfn = aws_sdk_cloudformation::Client::new(config);
        let stacks = cfn.list_stacks().send().await.context("listing stacks")?;
        add(
            "stack",
            stacks
                .stack_summaries()
                .iter()
                .filter(|s| s.stack_status().map(|st| st.as_str()) != Some("DELETE_COMPLETE"))
                .filter_map(|s| s.stack_name().map(str::to_owned))
                .collect(),
        );
        let functions = aws_sdk_lambda::Client::new(config)
            .list_functions()
            .send()
            .await
            .context("listing Lambda functions")?;
        add(
            "function",
            functions
                .functions()
                .iter()
                .filter_map(|f| f.function_name().map(str::to_owned))
                .collect(),
        );
        let buckets = sgwatch_handler::aws::s3_client(config)
            .list_buckets()
            .send()
            .await
            .context("listing S3 buckets")?;
        add(
            "bucket",
            buckets
                .buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_owned))
                .collect(),
        );
        let topics = aws_sdk_sns::Client::new(config)
            .list_topics()
            .send()
            .await
            .context("listing SNS topics")?;
        add(
            "topic",
            topics
                .topics()
                .iter()
                .filter_map(|t| t.topic_arn().map(str::to_owned))
                .collect(),
        );
        let queues = aws_sdk_sqs::Client::new(config)
            .list_queues()
            .send()
            .await
            .context("listing SQS queues")?;
        add("queue", queues.queue_urls().to_vec());
        let tables = aws_sdk_dynamodb::Client::new(config)
            .list_tables()
            .send()
            .await
            .context("listing DynamoDB tables")?;
        add("table", tables.table_names().to_vec());
        let roles = aws_sdk_iam::Client::new(config)
            .list_roles()
            .send()
            .await
            .context("listing IAM roles")?;
        add(
            "role",
            roles
                .roles()
                .iter()
                .map(|r| r.role_name().to_owned())
                .collect(),
        );
        let aws_config_service = aws_sdk_config::Client::new(config);
        let recorders = aws_config_service
            .describe_configuration_recorders()
            .send()
            .await
            .context("describing Config recorders")?;
        add(
            "Config recorder",
            recorders
                .configuration_recorders()
                .iter()
                .filter_map(|r| r.name().map(str::to_owned))
                .collect(),
        );
        let channels = aws_config_service
            .describe_delivery_channels()
            .send()
            .await
            .context("describing Config delivery channels")?;
        add(
            "Config delivery channel",
            channels
                .delivery_channels()
                .iter()
                .filter_map(|c| c.name().map(str::to_owned))
                .collect(),
        );
        Ok(Inventory(items))
    }

    /// What is here and was not in `earlier`.
    fn minus(&self, earlier: &Inventory) -> Vec<String> {
        self.0.difference(&earlier.0).cloned().collect()
    }
}

/// A run of `sgwatch verify` with the story playing AWS Config's part.
#[derive(Debug, Clone)]
pub struct Verification {
    pub run: CommandRun,
    /// The throwaway group verify made, as seen while it ran.
    pub group: Option<String>,
    /// The id SNS gave the notification published to the stack's topic.
    pub sns_message_id: Option<String>,
    /// What the handler answered to it.
    pub invocation: Option<Value>,
}

/// The tag `sgwatch verify` marks its group with.
pub const VERIFY_MARKER: &str = "sgwatch:verify";
/// Who `sgwatch verify` tags its throwaway group to notify in the story.
pub const VERIFY_RECIPIENT: &str = "secops@corp.example";

/// Runs `sgwatch verify ARGS` and plays AWS Config's part while it waits, as moto has no Config:
/// once the marked group has its rule, the notification Config would send is built from the
/// group's state in EC2, published to the stack's topic, and given to the real handler in
/// `emulator` (moto's SNS cannot run the function: its Lambda needs Docker).
pub async fn verify(
    programs: &Programs,
    moto: &Moto,
    emulator: &Emulator,
    args: &[&str],
) -> Result<Verification> {
    let config = moto.sdk_config(None).await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let mut full = vec![
        "verify",
        "--endpoint-url",
        &moto.endpoint,
        "--region",
        REGION,
    ];
    full.extend(args);
    let shown = format!("sgwatch {}", full.join(" "));
    let mut cmd = Command::new(&programs.sgwatch);
    cmd.args(&full)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    isolate_aws_env(&mut cmd);
    let child = cmd.spawn().with_context(|| format!("starting `{shown}`"))?;
    let mut output = tokio::spawn(child.wait_with_output());

    // AWS Config's part: notice the change.
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut group = None;
    while group.is_none() && Instant::now() < deadline && !output.is_finished() {
        let groups = ec2
            .describe_security_groups()
            .send()
            .await
            .context("listing security groups")?;
        group = groups
            .security_groups()
            .iter()
            .find(|g| {
                g.tags().iter().any(|t| t.key() == Some(VERIFY_MARKER))
                    && !g.ip_permissions().is_empty()
            })
            .and_then(|g| g.group_id().map(str::to_owned));
        if group.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (mut sns_message_id, mut invocation) = (None, None);
    if let Some(group) = &group {
        let state = synth::describe(&ec2, group).await?;
        let capture = Capture {
            account: state["ownerId"].as_str().unwrap_or(ACCOUNT).to_owned(),
            region: REGION.to_owned(),
            time: DateTime::from(SystemTime::now()),
        };
        // Created and given its rule within a second: Config records one item, the creation.
        let message = synth::item_change(None, Some(&state), &capture)?;
        let topic = stack_output(&config, "TopicArn").await?;
        let published = aws_sdk_sns::Client::new(&config)
            .publish()
            .topic_arn(&topic)
            .message(message.to_string())
            .send()
            .await
            .with_context(|| format!("publishing to {topic}"))?;
        let id = published.message_id().unwrap_or("verify").to_owned();
        invocation = Some(
            emulator
                .invoke(&config, &synth::sns_event(&message, &id))
                .await?,
        );
        sns_message_id = Some(id);
    }
    let out = tokio::time::timeout(COMMAND_TIMEOUT, &mut output)
        .await
        .map_err(|_| anyhow!("`{shown}` did not finish within {COMMAND_TIMEOUT:?}"))?
        .context("waiting for sgwatch verify")?
        .with_context(|| format!("running `{shown}`"))?;
    Ok(Verification {
        run: CommandRun {
            command: shown,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        group,
        sns_message_id,
        invocation,
    })
}

/// An output of stack `sgwatch`.
pub async fn stack_output(config: &SdkConfig, name: &str) -> Result<String> {
    let stacks = aws_sdk_cloudformation::Client::new(config)
        .describe_stacks()
        .stack_name(STACK)
        .send()
        .await
        .with_context(|| format!("describing stack {STACK}"))?;
    stacks
        .stacks()
        .first()
        .and_then(|s| s.outputs().iter().find(|o| o.output_key() == Some(name)))
        .and_then(|o| o.output_value())
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("stack {STACK} has no {name} output"))
}
