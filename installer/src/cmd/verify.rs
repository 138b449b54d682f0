//! `sgwatch verify`: proves the whole chain on a live account with one real change, and times it.
//!
//! It creates a throwaway security group (tagged to notify the recipient, and marked as
//! sgwatch's), allows one harmless rule (tcp/3389 from 192.0.2.0/24, TEST-NET-1, reserved for
//! documentation by RFC 5737 and routed nowhere), then waits for the handler's record of that
//! group in the idempotency table ([`sgwatch_handler::dedupe`]): Config's capture time, when the
//! handler decided, when SES accepted the email and its message id. The group is deleted at the
//! end, on a timeout, on an error and on Ctrl-C. (Its deletion is a change too: the recipient gets
//! one more email, for the deletion.)

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_ec2::types::{Filter, IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use clap::Args;
use serde::Serialize;
use sgwatch_handler::ledger::{Entry, Item, Status};
use sgwatch_handler::settings::Policy;

use crate::aws::{error_text, Place};
use crate::deploy::stack::{self, Deployed};

/// The tag that marks a group as made by `sgwatch verify` (its value is the run id). The handler
/// never takes such a group's discovery for the baseline of groups that existed at install.
pub const MARKER_TAG: &str = sgwatch_handler::decide::VERIFY_TAG;
/// The value of the notify tag that opts the throwaway group in (the handler's rule,
/// [`sgwatch_handler::decide::opt_in`], takes it).
pub const OPT_IN: &str = "Yes";
/// The rule verify opens: RDP from TEST-NET-1 (RFC 5737), an address range used only in
/// documentation, so the rule lets nothing in.
pub const RULE_CIDR: &str = "192.0.2.0/24";
pub const RULE_PORT: i32 = 3389;

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// CloudFormation stack name
    #[arg(long, default_value = "sgwatch")]
    pub stack_name: String,
    /// The VPC to create the throwaway group in (default: the region's default VPC)
    #[arg(long, value_name = "vpc-...")]
    pub vpc_id: Option<String>,
    /// Who gets the test email (default: the stack's fallback recipient)
    #[arg(long)]
    pub recipient: Option<String>,
    /// A destination of the stack the throwaway group also names in its channels tag
    /// (repeatable): the change is posted there too, and the timeline shows it. A pagerduty
    /// destination gets a change event, which pages no one
    #[arg(long = "destination", value_name = "NAME")]
    pub destinations: Vec<String>,
    /// How long to wait for AWS Config and the handler: 90s, 15m, 1h
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How often to look for the handler's record
    #[arg(long, default_value = "3s", value_parser = parse_duration, hide = true)]
    pub poll: Duration,
}

/// Whether a change made now can reach the handler within `timeout`: not when the recorder
/// records security groups once a day.
pub fn precheck(
    found: &crate::deploy::recorder::Found,
    timeout: Duration,
) -> Result<(), VerifyError> {
    match found.daily_security_groups() {
        Some(daily) => Err(VerifyError::DailyRecording {
            daily,
            timeout: format!("{} s", timeout.as_secs()),
        }),
        None => Ok(()),
    }
}

/// `90`, `90s`, `15m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 15m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    if secs == 0 {
        return Err("the duration must be more than zero".to_owned());
    }
    Ok(Duration::from_secs(secs))
}

/// Why verify could not run its check; each says what to do. (A check that ran and found no
/// email is a [`Verified`] whose email step is missing, not an error.)
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no recipient: the stack {stack} has no fallback recipient; pass --recipient EMAIL")]
    NoRecipient { stack: String },
    #[error("--destination {name}: the stack has no such destination (configured: {configured})")]
    NoSuchDestination { name: String, configured: String },
    #[error(
        "{place} has no default VPC: pass --vpc-id with the VPC to create the throwaway group in"
    )]
    NoDefaultVpc { place: Place },
    #[error("cannot {what} ({place}): {detail}")]
    Ec2 {
        what: String,
        place: Place,
        detail: String,
    },
    #[error("cannot {what}: {detail}{}", deleted_note(.deleted))]
    Change {
        what: String,
        detail: String,
        deleted: Result<(), String>,
    },
    #[error(
        "no email within {timeout}: the handler has not recorded a decision for {group} \
         (AWS Config may take several minutes to record a change; check `sgwatch status` and the \
         function's log group){}", deleted_note(.deleted)
    )]
    Timeout {
        timeout: String,
        group: String,
        deleted: Result<(), String>,
    },
    #[error(
        "{daily}: AWS Config would report verify's change only at its next daily capture, up to \
         24 hours from now, so verify would time out after {timeout}. Set the recorder's \
         recording frequency to continuous (or a CONTINUOUS override for \
         AWS::EC2::SecurityGroup) and run verify again; no group was created"
    )]
    DailyRecording { daily: String, timeout: String },
    #[error("interrupted while waiting for {group}{}", deleted_note(.deleted))]
    Interrupted {
        group: String,
        deleted: Result<(), String>,
    },
    #[error("cannot read the idempotency table {table} ({place}): {detail}{}", deleted_note(.deleted))]
    Table {
        table: String,
        place: Place,
        detail: String,
        deleted: Result<(), String>,
    },
}

fn deleted_note(deleted: &Result<(), String>) -> String {
    match deleted {
        Ok(()) => "; the throwaway group was deleted".to_owned(),
        Err(e) => format!("; the throwaway group could NOT be deleted ({e}): delete it yourself"),
    }
}

/// One step of the chain and when it happened.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: &'static str,
    /// RFC 3339, UTC.
    pub at: String,
    /// Seconds after the change was made.
    pub after_secs: f64,
    pub detail: String,
}

/// What verify did and saw.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub run_id: String,
    pub group_id: String,
    pub group_name: String,
    pub vpc_id: String,
    pub recipient: String,
    /// change made, Config captured it, handler decided, email accepted by SES: those seen.
    pub steps: Vec<Step>,
    pub ses_message_ids: Vec<String>,
    /// Whether SES accepted the email (the exit code is 0 only then).
    pub email_accepted: bool,
    /// Why not, when it was not.
    pub problem: Option<String>,
    pub group_deleted: bool,
    pub deletion_error: Option<String>,
    /// The alarms that tell someone when sgwatch itself fails (empty: the stack has none).
    pub alarms: Vec<String>,
    /// Whom they email (the fallback recipient), when anyone.
    pub alarms_email: Option<String>,
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "verify {}: group {} ({}) in {}, tagged to notify {}",
            self.run_id, self.group_id, self.group_name, self.vpc_id, self.recipient
        )?;
        for s in &self.steps {
            writeln!(
                f,
                "  {:<20} {:<26} {:>+8.1} s  {}",
                s.step, s.at, s.after_secs, s.detail
            )?;
        }
        match &self.problem {
            None => writeln!(
                f,
                "ok: a change to a tagged group reached its owners through AWS Config, the \
                 topic, the function and SES"
            )?,
            Some(p) => writeln!(f, "FAILED: {p}")?,
        }
        match (self.alarms.is_empty(), &self.alarms_email) {
            (true, _) => writeln!(
                f,
                "no alarms tell anyone when sgwatch fails: run `sgwatch install` to add them"
            )?,
            (false, Some(to)) => writeln!(
                f,
                "when sgwatch fails, these alarms email {to}: {}",
                self.alarms.join(", ")
            )?,
            (false, None) => writeln!(
                f,
                "when sgwatch fails, these alarms go off but email no one (no fallback recipient): {}",
                self.alarms.join(", ")
            )?,
        }
        match (&self.group_deleted, &self.deletion_error) {
            (true, _) => writeln!(
                f,
                "group {} deleted (its deletion is a change too: {} gets one more email)",
                self.group_id, self.recipient
            ),
            (false, e) => writeln!(
                f,
                "group {} could NOT be deleted ({}): delete it yourself",
                self.group_id,
                e.as_deref().unwrap_or("unknown error")
            ),
        }
    }
}

/// The handler's record of one configuration state of the group, as read from the table.
pub type Ledger = Item;

/// Finished without any email accepted (a post or a parked record is not one).
pub fn rejected(l: &Ledger) -> bool {
    l.status == Some(Status::Sent) && !l.accepted()
}

/// The record to report among the group's: the first one with an email, else one that ended
/// without, else none yet.
pub fn settled(ledgers: &[Ledger]) -> Option<&Ledger> {
    let first_by = |f: fn(&Ledger) -> bool| {
        ledgers
            .iter()
            .filter(|l| f(l))
            .min_by_key(|l| l.accepted_at_ms.or(l.decided_at_ms).unwrap_or(u64::MAX))
    };
    first_by(Ledger::accepted).or_else(|| first_by(rejected))
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::from(t)
        .fmt(Format::DateTime)
        .unwrap_or_else(|_| "?".to_owned())
}

fn from_ms(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

fn after(t: SystemTime, start: SystemTime) -> f64 {
    match t.duration_since(start) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// How long verify waits, once SES accepted the email, for the posts and findings after it.
const AFTER_EMAIL: Duration = Duration::from_secs(30);

/// The steps a ledger shows, after the change made at `made`. Pure.
pub fn steps(made: SystemTime, rule: &str, ledger: Option<&Ledger>) -> Vec<Step> {
    let mut out = vec![Step {
        step: "change made",
        at: rfc3339(made),
        after_secs: 0.0,
        detail: rule.to_owned(),
    }];
    let Some(l) = ledger else { return out };
    if let Some(captured) = l
        .capture_time
        .as_deref()
        .and_then(|t| DateTime::from_str(t, Format::DateTime).ok())
        .and_then(|t| SystemTime::try_from(t).ok())
    {
        out.push(Step {
            step: "Config captured it",
            at: rfc3339(captured),
            after_secs: after(captured, made),
            detail: "configurationItemCaptureTime".to_owned(),
        });
    }
    if let Some(ms) = l.decided_at_ms {
        out.push(Step {
            step: "handler decided",
            at: rfc3339(from_ms(ms)),
            after_secs: after(from_ms(ms), made),
            detail: "to notify".to_owned(),
        });
    }
    if let (true, Some(ms)) = (l.accepted(), l.accepted_at_ms) {
        let to: Vec<&str> = l.emails().collect();
        out.push(Step {
            step: "email accepted",
            at: rfc3339(from_ms(ms)),
            after_secs: after(from_ms(ms), made),
            detail: format!(
                "by SES for {}, message id {}",
                to.join(", "),
                l.ses_message_ids.join(", ")
            ),
        });
    }
    out.extend(posted(made, l));
    out
}

/// The destinations and Security Hub the handler told of the change, as its record lists them
/// once the delivery is done. The record keeps no time for each: they are shown at the time the
/// delivery was, within the invocation that sent the email.
fn posted(made: SystemTime, l: &Ledger) -> Vec<Step> {
    let Some(ms) = l.accepted_at_ms.or(l.decided_at_ms) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in &l.delivered {
        let (step, detail) = match entry {
            Entry::Destination(name) => ("posted", format!("to destination {name}")),
            Entry::Findings => (
                "finding imported",
                "into Security Hub: a test finding, archived from the start".to_owned(),
            ),
            _ => continue,
        };
        out.push(Step {
            step,
            at: rfc3339(from_ms(ms)),
            after_secs: after(from_ms(ms), made),
            detail,
        });
    }
    out
}

/// What verify takes from the deployed stack: where the handler records its decisions, whom the
/// throwaway group names, and by which tags, as the handler reads them.
struct Setup {
    table: String,
    recipient: String,
    notify_tag: String,
    owner_tag: String,
    channels_tag: String,
    /// The destinations the group names, checked against the stack's.
    destinations: String,
}

impl Setup {
    fn from_stack(args: &VerifyArgs, deployed: &Deployed) -> Result<Setup, crate::Error> {
        let table = stack::required(
            &deployed.outputs.idempotency_table_name,
            &args.stack_name,
            "IdempotencyTableName",
        )?
        .to_owned();
        let recipient = args
            .recipient
            .clone()
            .or_else(|| deployed.params.fallback_recipient.clone())
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| VerifyError::NoRecipient {
                stack: args.stack_name.clone(),
            })?;
        // The stack's tags, else the handler's defaults.
        let defaults = Policy::default();
        let configured = deployed
            .params
            .all
            .get("Destinations")
            .cloned()
            .unwrap_or_default();
        let configured =
            sgwatch_handler::destination::parse_destinations(&configured).unwrap_or_default();
        for name in &args.destinations {
            if !configured.iter().any(|d| d.name.eq_ignore_ascii_case(name)) {
                let names: Vec<&str> = configured.iter().map(|d| d.name.as_str()).collect();
                return Err(VerifyError::NoSuchDestination {
                    name: name.clone(),
                    configured: if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    },
                }
                .into());
            }
        }
        Ok(Setup {
            channels_tag: deployed
                .params
                .all
                .get("ChannelsTag")
                .cloned()
                .unwrap_or(defaults.channels_tag.clone()),
            destinations: args.destinations.join(","),
            table,
            recipient,
            notify_tag: (deployed.params.notify_tag.clone()).unwrap_or(defaults.notify_tag),
            owner_tag: (deployed.params.owner_tag.clone()).unwrap_or(defaults.owner_tag),
        })
    }

    /// The throwaway group's tags: opted in, naming the recipient, marked as this run's.
    fn tags<'a>(&'a self, run_id: &'a str, group_name: &'a str) -> Vec<(&'a str, &'a str)> {
        let mut tags = vec![
            (self.notify_tag.as_str(), OPT_IN),
            (&self.owner_tag, &self.recipient),
            (MARKER_TAG, run_id),
            ("Name", group_name),
        ];
        if !self.destinations.is_empty() {
            tags.push((&self.channels_tag, &self.destinations));
        }
        tags
    }
}

/// Runs the check. Errors are for a check that could not run (or finish); the group is deleted
/// whatever happens once it exists.
pub async fn run(
    args: &VerifyArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Verified, crate::Error> {
    let place = crate::aws::place(config).await?;
    let cf = crate::aws::cloudformation(config);
    let deployed = Deployed::require(&cf, &args.stack_name, &place).await?;
    let setup = Setup::from_stack(args, &deployed)?;
    // A recorder that records groups daily would leave verify waiting for nothing: said now.
    // (One that cannot be read is no reason not to try.)
    if let Ok(found) =
        crate::deploy::recorder::find(&crate::aws::configservice(config), &place).await
    {
        precheck(&found, args.timeout)?;
    }

    let ec2 = crate::aws::ec2(config);
    let vpc_id = match &args.vpc_id {
        Some(v) => v.clone(),
        None => default_vpc(&ec2, &place).await?,
    };
    let run_id = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
        .to_string();
    let group_name = format!("sgwatch-verify-{run_id}");
    let tags = setup.tags(&run_id, &group_name);
    let group_id = create_group(&ec2, &place, &vpc_id, &group_name, &tags).await?;

    // From here on the group exists: every way out deletes it, Ctrl-C included.
    let waited = change_and_wait(config, &place, &group_id, &setup.table, args, progress).await;
    let deleted = delete_group(&ec2, &group_id).await;
    let (made, ledger) = match waited {
        Ok(done) => done,
        Err(w) => {
            return Err(w
                .into_error(args, group_id, setup.table, place, deleted)
                .into())
        }
    };
    let rule = format!("AuthorizeSecurityGroupIngress tcp/{RULE_PORT} from {RULE_CIDR}");
    Ok(Verified {
        run_id,
        group_id,
        group_name,
        vpc_id,
        recipient: setup.recipient,
        steps: steps(made, &rule, Some(&ledger)),
        ses_message_ids: ledger.ses_message_ids.clone(),
        email_accepted: ledger.accepted(),
        problem: problem(&ledger),
        group_deleted: deleted.is_ok(),
        deletion_error: deleted.err(),
        alarms: if deployed.outputs.alarm_topic_arn.is_some() {
            crate::deploy::alarms::names(&args.stack_name)
        } else {
            Vec::new()
        },
        alarms_email: deployed.params.fallback_recipient.clone(),
    })
}

/// Makes the change to the group, then waits for the handler's record of it (or Ctrl-C).
async fn change_and_wait(
    config: &SdkConfig,
    place: &Place,
    group_id: &str,
    table: &str,
    args: &VerifyArgs,
    progress: bool,
) -> Result<(SystemTime, Ledger), Waited> {
    let ec2 = crate::aws::ec2(config);
    let dynamodb = crate::aws::dynamodb(config);
    let prefix = format!("{}/{}/{group_id}/", place.account, place.region);
    let work = async {
        authorize(&ec2, place, group_id).await?;
        let made = SystemTime::now();
        let ledger = wait(&dynamodb, table, &prefix, args, progress).await?;
        Ok::<_, Waited>((made, ledger))
    };
    let waited = tokio::select! {
        done = work => done,
        _ = tokio::signal::ctrl_c() => Err(Waited::Interrupted),
    };
    if progress && std::io::stderr().is_terminal() {
        eprintln!();
    }
    waited
}

/// Why SES accepted no email, when it did not.
fn problem(ledger: &Ledger) -> Option<String> {
    (!ledger.accepted()).then(|| {
        format!(
            "the handler decided to notify, but SES accepted no email ({}); `sgwatch redrive` \
             lists what it parked and why",
            if ledger.delivered.is_empty() {
                "nothing was delivered".to_owned()
            } else {
                format!(
                    "ledger: {}",
                    ledger
                        .delivered
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        )
    })
}

enum Waited {
    Timeout,
    Interrupted,
    Table(String),
    Ec2(String, String),
}

impl Waited {
    /// The error verify ends on, with whether the group was then deleted.
    fn into_error(
        self,
        args: &VerifyArgs,
        group: String,
        table: String,
        place: Place,
        deleted: Result<(), String>,
    ) -> VerifyError {
        match self {
            Waited::Timeout => VerifyError::Timeout {
                timeout: format!("{} s", args.timeout.as_secs()),
                group,
                deleted,
            },
            Waited::Interrupted => VerifyError::Interrupted { group, deleted },
            Waited::Table(detail) => VerifyError::Table {
                table,
                place,
                detail,
                deleted,
            },
            Waited::Ec2(what, detail) => VerifyError::Change {
                what,
                detail,
                deleted,
            },
        }
    }
}

/// Polls the table until the group's record settles, with a progress line on stderr.
async fn wait(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    prefix: &str,
    args: &VerifyArgs,
    progress: bool,
) -> Result<Ledger, Waited> {
    let start = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = None::<Instant>;
    let mut settled_at = None::<Instant>;
    loop {
        let ledgers = records(dynamodb, table, prefix)
            .await
            .map_err(Waited::Table)?;
        if let Some(l) = settled(&ledgers) {
            // The posts and the findings follow the email within the same invocation: the record
            // is marked sent once they are done. Wait a little for that, not for ever.
            let done = matches!(l.status, Some(Status::Sent | Status::Parked));
            if done || settled_at.is_some_and(|t| t.elapsed() >= AFTER_EMAIL) {
                return Ok(l.clone());
            }
            settled_at.get_or_insert_with(Instant::now);
        }
        let elapsed = start.elapsed();
        if elapsed >= args.timeout {
            return Err(Waited::Timeout);
        }
        if progress
            && (terminal || last_line.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)))
        {
            let state = if ledgers.is_empty() {
                "waiting for AWS Config to record the change and the handler to decide"
            } else {
                "the handler decided; waiting for SES to accept the email"
            };
            let line = format!(
                "{state}: {} of {}",
                crate::cmd::redrive::age(elapsed.as_secs()),
                crate::cmd::redrive::age(args.timeout.as_secs())
            );
            if terminal {
                eprint!("\r{line}\x1b[K");
            } else {
                eprintln!("{line}");
            }
            let _ = std::io::stderr().flush();
            last_line = Some(Instant::now());
        }
        tokio::time::sleep(args.poll.min(args.timeout.saturating_sub(elapsed))).await;
    }
}

/// The handler's records whose key starts with `prefix` (account/region/group/): one per
/// configuration state of the group. The key holds the state id, which only Config knows, so
/// the table is scanned with a key filter; it keeps one small record per notification, for 15 days.
async fn records(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    prefix: &str,
) -> Result<Vec<Ledger>, String> {
    let mut out = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = dynamodb
            .scan()
            .table_name(table)
            .filter_expression("begins_with(pk, :prefix)")
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| error_text(&e))?;
        out.extend(page.items().iter().map(Item::from_item));
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return Ok(out),
        }
    }
}

async fn default_vpc(ec2: &aws_sdk_ec2::Client, place: &Place) -> Result<String, VerifyError> {
    let out = ec2
        .describe_vpcs()
        .filters(Filter::builder().name("is-default").values("true").build())
        .send()
        .await
        .map_err(|e| VerifyError::Ec2 {
            what: "look for the default VPC".to_owned(),
            place: place.clone(),
            detail: error_text(&e),
        })?;
    out.vpcs()
        .iter()
        .find_map(|v| v.vpc_id().map(str::to_owned))
        .ok_or_else(|| VerifyError::NoDefaultVpc {
            place: place.clone(),
        })
}

async fn create_group(
    ec2: &aws_sdk_ec2::Client,
    place: &Place,
    vpc_id: &str,
    name: &str,
    tags: &[(&str, &str)],
) -> Result<String, VerifyError> {
    let mut spec = TagSpecification::builder().resource_type(ResourceType::SecurityGroup);
    for (key, value) in tags {
        spec = spec.tags(Tag::builder().key(*key).value(*value).build());
    }
    let out = ec2
        .create_security_group()
        .group_name(name)
        .description("Throwaway group of sgwatch verify; deleted when the check ends")
        .vpc_id(vpc_id)
        .tag_specifications(spec.build())
        .send()
        .await
        .map_err(|e| VerifyError::Ec2 {
            what: format!("create the throwaway security group {name} in {vpc_id}"),
            place: place.clone(),
            detail: error_text(&e),
        })?;
    out.group_id()
        .map(str::to_owned)
        .ok_or_else(|| VerifyError::Ec2 {
            what: format!("create the throwaway security group {name}"),
            place: place.clone(),
            detail: "CreateSecurityGroup returned no group id".to_owned(),
        })
}

async fn authorize(ec2: &aws_sdk_ec2::Client, place: &Place, group: &str) -> Result<(), Waited> {
    ec2.authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(RULE_PORT)
                .to_port(RULE_PORT)
                .ip_ranges(
                    IpRange::builder()
                        .cidr_ip(RULE_CIDR)
                        .description("sgwatch verify: TEST-NET-1, reaches nothing")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            Waited::Ec2(
                format!("allow tcp/{RULE_PORT} from {RULE_CIDR} into {group} in {place}"),
                error_text(&e),
            )
        })
}

/// Deletes the group, retrying a little: EC2 may refuse for a few seconds after a change
/// (DependencyViolation) though nothing uses it.
async fn delete_group(ec2: &aws_sdk_ec2::Client, group: &str) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(2 * u64::from(attempt))).await;
        }
        match ec2.delete_security_group().group_id(group).send().await {
            Ok(_) => return Ok(()),
            Err(e) => {
                use aws_sdk_ec2::error::ProvideErrorMetadata;
                if e.code() == Some("InvalidGroup.NotFound") {
                    return Ok(());
                }
                last = error_text(&e);
            }
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgwatch_handler::ledger::Entry;

    fn ledger(status: &str, delivered: &[&str], accepted: Option<u64>) -> Ledger {
        Ledger {
            key: "111122223333/us-east-1/sg-1/7".to_owned(),
            status: status.parse().ok(),
            delivered: delivered.iter().map(|d| Entry::parse(d)).collect(),
            ses_message_ids: accepted
                .map(|_| vec!["0100-abc".to_owned()])
                .unwrap_or_default(),
            capture_time: Some("2026-11-28T12:00:05.000Z".to_owned()),
            decided_at_ms: Some(1_795_867_207_000),
            accepted_at_ms: accepted,
            ..Ledger::default()
        }
    }

    #[test]
    fn a_daily_recorder_is_said_before_any_group_is_made() {
        use aws_sdk_config::types::{ConfigurationRecorder, RecordingFrequency, RecordingMode};
        let found = |frequency| crate::deploy::recorder::Found {
            recorder: Some(
                ConfigurationRecorder::builder()
                    .name("default")
                    .recording_mode(
                        RecordingMode::builder()
                            .recording_frequency(frequency)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            ),
            ..Default::default()
        };
        let fifteen = Duration::from_secs(900);
        assert!(precheck(&found(RecordingFrequency::Continuous), fifteen).is_ok());
        let said = precheck(&found(RecordingFrequency::Daily), fifteen)
            .unwrap_err()
            .to_string();
        assert!(
            said.starts_with("recorder default records daily")
                && said.contains("would time out after 900 s")
                && said.contains("no group was created"),
            "{said}"
        );
    }

    #[test]
    fn the_throwaway_group_is_opted_in_by_the_handler_s_rule() {
        let notify_tag = Policy::default().notify_tag;
        let tags = std::collections::BTreeMap::from([(notify_tag.clone(), OPT_IN.to_owned())]);
        assert_eq!(
            sgwatch_handler::decide::opt_in(&tags, &notify_tag),
            Ok(OPT_IN)
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_record_with_an_email_settles_the_check() {
        let sending = ledger("sending", &[], None);
        assert_eq!(settled(std::slice::from_ref(&sending)), None);
        let sent = ledger("sent", &["owner@corp.example"], Some(1_795_867_208_000));
        assert_eq!(settled(&[sending.clone(), sent.clone()]), Some(&sent));
        let parked = ledger("sent", &["failure-queue"], None);
        assert!(rejected(&parked));
        assert_eq!(settled(std::slice::from_ref(&parked)), Some(&parked));
        assert_eq!(settled(&[parked, sent.clone()]), Some(&sent));
    }

    #[test]
    fn a_post_to_a_destination_is_not_an_accepted_email() {
        let posted = ledger("sent", &["destination:secops"], Some(1_795_867_208_000));
        assert!(!posted.accepted(), "a Slack post counted as an email");
        assert!(rejected(&posted));
        let sent = ledger("sent", &["owner@corp.example"], Some(1_795_867_209_000));
        assert_eq!(settled(&[posted, sent.clone()]), Some(&sent));
    }

    #[test]
    fn each_step_is_timed_from_the_change() {
        let made = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_867_200_000);
        let l = ledger("sent", &["owner@corp.example"], Some(1_795_867_208_500));
        let s = steps(made, "rule", Some(&l));
        let names: Vec<&str> = s.iter().map(|s| s.step).collect();
        assert_eq!(
            names,
            [
                "change made",
                "Config captured it",
                "handler decided",
                "email accepted"
            ]
        );
        let after: Vec<f64> = s.iter().map(|s| s.after_secs).collect();
        assert_eq!(after, [0.0, 5.0, 7.0, 8.5]);
        assert!(s[3].detail.contains("0100-abc"), "{}", s[3].detail);
        assert_eq!(steps(made, "rule", None).len(), 1);
    }

    #[test]
    fn the_timeline_shows_each_destination_posted_to_and_the_finding_imported() {
        let made = SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_867_200_000);
        let l = ledger(
            "sent",
            &[
                "owner@corp.example",
                "destination:oncall",
                "destination:secops-chat",
                "securityhub",
            ],
            Some(1_795_867_208_500),
        );
        let s = steps(made, "rule", Some(&l));
        let shown: Vec<(&str, &str)> = s[4..].iter().map(|s| (s.step, s.detail.as_str())).collect();
        assert_eq!(
            shown,
            [
                ("posted", "to destination oncall"),
                ("posted", "to destination secops-chat"),
                (
                    "finding imported",
                    "into Security Hub: a test finding, archived from the start"
                ),
            ]
        );
        assert!(s[4..].iter().all(|s| s.after_secs == 8.5));
    }
}
