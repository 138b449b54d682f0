//! `sgwatch rollout`: one action over many accounts and regions.
//!
//! The targets file is read and checked whole before anything runs (errors name the line); each
//! account/region then runs with its own `sts:AssumeRole` credentials, concurrently up to a bound,
//! and one failing target never stops the others.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::aws::GlobalArgs;
use crate::cmd::{install, spoke, status, teardown};
use crate::deploy::package;
use crate::deploy::policy_args::PolicyArgs;
use crate::deploy::stack::Source;
use crate::deploy::wanted::InstallArgs;

/// What a rollout does in every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Install,
    Plan,
    Status,
    Teardown,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Install => "install",
            Action::Plan => "plan",
            Action::Status => "status",
            Action::Teardown => "teardown",
        })
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    /// The targets file (YAML: defaults and targets)
    #[arg(long, value_name = "FILE")]
    pub targets: PathBuf,
    /// How many account/regions run at once
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Handler zip to install everywhere (built once per architecture if absent)
    #[arg(long, value_name = "PATH")]
    pub handler_zip: Option<PathBuf>,
    /// CPU architecture of the Lambda where the targets file sets no `arch` (default arm64)
    #[arg(long, value_enum)]
    pub arch: Option<package::Arch>,
    /// Deploy spokes of the hub with this event bus instead of full stacks (see `sgwatch spoke`)
    #[arg(long = "hub", value_name = "BUS_ARN", requires = "hub_role")]
    pub hub: Option<String>,
    /// The hub handler's role, with --hub
    #[arg(long, value_name = "ROLE_ARN", requires = "hub")]
    pub hub_role: Option<String>,
    /// The organization, with --hub: each spoke's reader role then requires it of the hub
    #[arg(long, value_name = "ORG_ID", requires = "hub")]
    pub organization_id: Option<String>,
    /// install, plan, status or teardown
    #[arg(value_enum)]
    pub action: Action,
}

impl RolloutArgs {
    /// The spoke every target gets, with --hub.
    fn spoke(&self) -> Option<spoke::SpokeArgs> {
        Some(spoke::SpokeArgs {
            hub_bus: self.hub.clone()?,
            hub_role: self.hub_role.clone().unwrap_or_default(),
            organization_id: self.organization_id.clone(),
            name: spoke::SpokeNameArgs {
                stack_name: "sgwatch-spoke".into(),
                full_stack_name: "sgwatch".into(),
            },
            replace: spoke::ReplaceArgs::default(),
        })
    }
}

/// Why a rollout, or one of its targets, failed (beyond the command's own errors).
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    /// Status found broken links: each `check: detail`.
    #[error("{}", .0.join("; "))]
    Unhealthy(Vec<String>),
}

/// Settings a target can set or inherit from `defaults` (the install/plan flags, snake_case).
/// Unknown keys are refused by [`parse_targets`] (serde cannot refuse them through a flattened
/// field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct TargetSettings {
    pub role_name: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub regions: Option<Vec<String>>,
    pub sender: Option<String>,
    /// The handler's settings, as `install` takes them.
    #[serde(flatten)]
    pub policy: PolicyArgs,
    pub stack_name: Option<String>,
    /// `sns` or `eventbridge`; anything else is an error in the file, not a silent default.
    pub source: Option<Source>,
    pub extend_recorder: Option<bool>,
    /// `arm64` or `x86_64`, as `install --arch`; a target's or `defaults`' key wins over
    /// `rollout --arch`.
    pub arch: Option<package::Arch>,
}

impl TargetSettings {
    /// `self` with every unset field taken from `defaults`.
    fn over(self, defaults: &TargetSettings) -> TargetSettings {
        let d = defaults.clone();
        TargetSettings {
            role_name: self.role_name.or(d.role_name),
            role_arn: self.role_arn.or(d.role_arn),
            external_id: self.external_id.or(d.external_id),
            regions: self.regions.or(d.regions),
            sender: self.sender.or(d.sender),
            policy: self.policy.over(&d.policy),
            stack_name: self.stack_name.or(d.stack_name),
            source: self.source.or(d.source),
            extend_recorder: self.extend_recorder.or(d.extend_recorder),
            arch: self.arch.or(d.arch),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    #[serde(default)]
    defaults: TargetSettings,
    targets: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
struct RawTarget {
    account: Option<serde_yaml::Value>,
    #[serde(flatten)]
    settings: TargetSettings,
}

/// One account and region to act on, with everything it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub account: String,
    pub region: String,
    /// The role assumed in the account.
    pub role: Role,
    pub external_id: Option<String>,
    pub settings: TargetSettings,
}

/// The role a target names: a whole ARN, or a name in the target's account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Arn(String),
    Name(String),
}

impl Target {
    /// The role's ARN; a role given by name is in `partition`, the caller's own (`aws-cn` in
    /// China, `aws-us-gov` in GovCloud).
    pub fn role_arn(&self, partition: &str) -> String {
        match &self.role {
            Role::Arn(arn) => arn.clone(),
            Role::Name(name) => format!("arn:{partition}:iam::{}:role/{name}", self.account),
        }
    }
}

/// A targets file that cannot be used; says where and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TargetsError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// The first key of `defaults` or of a target that is no setting (a typo would otherwise be
/// silently ignored).
fn unknown_key(text: &str) -> Option<String> {
    let known = serde_yaml::to_value(TargetSettings::default()).ok()?;
    let known = known.as_mapping()?;
    let doc: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let targets = doc.get("targets").and_then(|t| t.as_sequence());
    doc.get("defaults")
        .into_iter()
        .chain(targets.into_iter().flatten())
        .filter_map(|m| m.as_mapping())
        .flat_map(|m| m.keys())
        .filter_map(|k| k.as_str())
        .find(|k| *k != "account" && !known.contains_key(*k))
        .map(str::to_owned)
}

/// Reads and checks a targets file, expanding each account to its regions.
pub fn parse_targets(file: &str, text: &str) -> Result<Vec<Target>, TargetsError> {
    let err = |line: usize, message: String| TargetsError {
        file: file.to_owned(),
        line,
        message,
    };
    let parsed: TargetsFile = serde_yaml::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1);
        err(line, format!("not a valid targets file: {e}"))
    })?;
    if let Some(key) = unknown_key(text) {
        return Err(err(
            line_of(text, &format!("{key}:"), 1),
            format!("not a valid targets file: unknown field `{key}`"),
        ));
    }
    if parsed.targets.is_empty() {
        return Err(err(
            line_of(text, "targets", 1),
            "`targets` is empty: list at least one account".into(),
        ));
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    // The n-th `- ` item under `targets:` is where target n starts.
    let starts = target_lines(text);
    for (i, raw) in parsed.targets.into_iter().enumerate() {
        let line = starts.get(i).copied().unwrap_or(1);
        let account = account(raw.account.as_ref(), i).map_err(|m| err(line, m))?;
        let settings = raw.settings.over(&parsed.defaults);
        let regions = settings.regions.clone().unwrap_or_default();
        if regions.is_empty() {
            return Err(err(
                line,
                format!("account {account} has no regions: set `regions` on it or in `defaults`"),
            ));
        }
        for region in &regions {
            if !is_region_shaped(region) {
                return Err(err(
                    line_of(text, region, line),
                    format!("unknown region {region:?} for account {account}"),
                ));
            }
            if !seen.insert((account.clone(), region.clone())) {
                return Err(err(
                    line,
                    format!("account {account} in {region} is listed twice"),
                ));
            }
        }
        let role = role(&settings, &account).map_err(|m| err(line, m))?;
        if settings.sender.as_deref().unwrap_or("").is_empty() {
            return Err(err(
                line,
                format!("account {account} has no `sender`: set it on the target or in `defaults`"),
            ));
        }
        for region in regions {
            out.push(Target {
                account: account.clone(),
                region,
                role: role.clone(),
                external_id: settings.external_id.clone(),
                settings: settings.clone(),
            });
        }
    }
    Ok(out)
}

/// Target `i`'s account id, checked: 12 digits, given as a string.
fn account(value: Option<&serde_yaml::Value>, i: usize) -> Result<String, String> {
    let account = match value {
        Some(serde_yaml::Value::String(s)) => s.trim().to_owned(),
        Some(serde_yaml::Value::Number(n)) if n.to_string().len() == 12 => n.to_string(),
        Some(serde_yaml::Value::Number(n)) => {
            return Err(format!("account {n} must be quoted (\"{n:0>12}\"): YAML reads it as a number and drops leading zeros"))
        }
        Some(other) => return Err(format!("account must be a 12-digit string, not {other:?}")),
        None => return Err(format!("target {} has no `account` (a 12-digit AWS account id)", i + 1)),
    };
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "account {account:?} is not a 12-digit AWS account id"
        ));
    }
    Ok(account)
}

/// The role a target's settings name for `account`.
fn role(settings: &TargetSettings, account: &str) -> Result<Role, String> {
    match (&settings.role_arn, &settings.role_name) {
        (Some(arn), _) => {
            if !arn.starts_with("arn:aws") || !arn.contains(":role/") {
                return Err(format!("role_arn {arn:?} is not an IAM role ARN"));
            }
            Ok(Role::Arn(arn.replace("{account}", account)))
        }
        (None, Some(name)) => Ok(Role::Name(name.clone())),
        (None, None) => Err(format!("account {account} has no role to assume: set `role_name` (or `role_arn`) on it or in `defaults`")),
    }
}

/// Whether `region` looks like a region name (`us-east-1`, `cn-north-1`, `us-gov-west-1`): the
/// SDK resolves it, so no list kept here goes stale as AWS opens regions.
fn is_region_shaped(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
        && parts[0].len() == 2
}

fn target_lines(text: &str) -> Vec<usize> {
    let mut in_targets = false;
    let mut lines = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.starts_with("targets:") {
            in_targets = true;
        } else if in_targets
            && !l.starts_with(' ')
            && !l.starts_with('-')
            && !l.trim().is_empty()
            && !l.starts_with('#')
        {
            in_targets = false;
        } else if in_targets && l.trim_start().starts_with("- ") {
            lines.push(n + 1);
        }
    }
    lines
}

fn line_of(text: &str, needle: &str, fallback: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(fallback.saturating_sub(1))
        .find(|(_, l)| l.contains(needle))
        .map(|(n, _)| n + 1)
        .unwrap_or(fallback)
}

/// How one target ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
        })
    }
}

/// The result of one target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub account: String,
    pub region: String,
    pub action: Action,
    pub result: Outcome,
    /// What changed (or would change), as the action reports it.
    pub changes: Vec<String>,
    pub error: Option<String>,
    pub duration_secs: f64,
}

/// Runs `action` on every target, at most `concurrency` at a time. `on_done` is called as each
/// finishes (for a progress line). Reports come back in target order.
pub async fn run_all<F, Fut>(
    targets: Vec<Target>,
    action: Action,
    concurrency: usize,
    run: F,
    on_done: impl Fn(&TargetReport),
) -> Vec<TargetReport>
where
    F: Fn(Target) -> Fut,
    Fut: Future<Output = Result<Vec<String>, crate::Error>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        let permits = Arc::clone(&permits);
        let (account, region) = (target.account.clone(), target.region.clone());
        let work = run(target);
        set.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let started = Instant::now();
            let outcome = work.await;
            let duration_secs = round_secs(started.elapsed());
            let report = match outcome {
                Ok(changes) => TargetReport {
                    account,
                    region,
                    action,
                    result: Outcome::Ok,
                    changes,
                    error: None,
                    duration_secs,
                },
                Err(e) => TargetReport {
                    account,
                    region,
                    action,
                    result: Outcome::Failed,
                    changes: vec![],
                    error: Some(e.to_string()),
                    duration_secs,
                },
            };
            (i, report)
        });
    }
    let mut done = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((i, report)) => {
                on_done(&report);
                done.insert(i, report);
            }
            // A panic in one target is that target's failure; it cannot be matched back to its
            // index, so it is reported after the others.
            Err(e) => {
                let report = TargetReport {
                    account: "?".into(),
                    region: "?".into(),
                    action,
                    result: Outcome::Failed,
                    changes: vec![],
                    error: Some(format!("the task failed: {e}")),
                    duration_secs: 0.0,
                };
                on_done(&report);
                done.insert(usize::MAX - done.len(), report);
            }
        }
    }
    done.into_values().collect()
}

fn round_secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

/// The final table: one row per account/region.
pub fn table(reports: &[TargetReport]) -> String {
    let mut out = format!(
        "{:<14} {:<16} {:<9} {:<7} {:>8}  {}\n",
        "ACCOUNT", "REGION", "ACTION", "RESULT", "SECONDS", "DETAIL"
    );
    for r in reports {
        let detail = match &r.error {
            Some(e) => e.replace('\n', " "),
            None if r.changes.is_empty() => "no changes".to_owned(),
            None => r.changes.join("; "),
        };
        out.push_str(&format!(
            "{:<14} {:<16} {:<9} {:<7} {:>8.2}  {}\n",
            r.account, r.region, r.action, r.result, r.duration_secs, detail
        ));
    }
    let failed = reports.iter().filter(|r| r.result != Outcome::Ok).count();
    out.push_str(&format!(
        "{} target(s), {} ok, {} failed\n",
        reports.len(),
        reports.len() - failed,
        failed
    ));
    out
}

/// Every target's report, in target order.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct Rollout(pub Vec<TargetReport>);

impl Rollout {
    pub fn failed(&self) -> bool {
        self.0.iter().any(|r| r.result != Outcome::Ok)
    }
}

impl std::fmt::Display for Rollout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&table(&self.0))
    }
}

/// Reads and checks the targets file (before anything else happens).
pub fn read_targets(path: &Path) -> Result<Vec<Target>, crate::Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RolloutError::Read {
        file: file.clone(),
        source,
    })?;
    Ok(parse_targets(&file, &text)?)
}

/// Runs the action on every target; `on_done` hears of each as it finishes.
pub async fn rollout(
    g: &GlobalArgs,
    args: &RolloutArgs,
    targets: Vec<Target>,
    on_done: impl Fn(&TargetReport),
) -> Result<Rollout, crate::Error> {
    let spoke = args.spoke();
    if let Some(spoke) = &spoke {
        spoke::check(spoke)?;
    }
    // Built (or checked) once per architecture the targets use, before any AWS call; a spoke
    // runs no code.
    let zips = match args.action {
        _ if spoke.is_some() => Vec::new(),
        Action::Status | Action::Teardown => Vec::new(),
        Action::Install | Action::Plan => {
            let mut arches: Vec<package::Arch> = Vec::new();
            for t in &targets {
                let arch = arch(t, args.arch);
                if !arches.contains(&arch) {
                    arches.push(arch);
                }
            }
            // Two architectures are built side by side, each in its own directory.
            let one = arches.len() == 1;
            let mut zips = Vec::new();
            for arch in arches {
                let dir = match one {
                    true => PathBuf::from("dist"),
                    false => Path::new("dist").join(arch.as_str()),
                };
                let zip = match &args.handler_zip {
                    Some(p) => package::check_zip(p, arch)?,
                    None => package::build(arch, &dir)?,
                };
                zips.push((arch, zip.path));
            }
            zips
        }
    };
    let base = crate::aws::load(g).await?;
    // Roles given by name are in the caller's partition, read from its own ARN.
    let partition = crate::aws::partition(&base).await?;
    let action = args.action;
    let flag = args.arch;
    let run = |t: Target| {
        let arch = arch(&t, flag);
        let zip = zips
            .iter()
            .find(|(a, _)| *a == arch)
            .map(|(_, z)| z.clone());
        let (base, g, partition, spoke) =
            (base.clone(), g.clone(), partition.clone(), spoke.clone());
        async move {
            match spoke {
                Some(spoke) => on_spoke(&base, &g, &t, &partition, action, &spoke).await,
                None => on_target(&base, &g, &t, &partition, action, arch, zip).await,
            }
        }
    };
    // A new account's spokes would race to make its one reader role: its first region goes in a
    // wave of its own, before the others.
    let (first, rest) = match spoke {
        Some(_) if action == Action::Install => first_region_of_each_account(targets),
        _ => (targets, Vec::new()),
    };
    let mut reports = run_all(first, action, args.concurrency, &run, &on_done).await;
    if !rest.is_empty() {
        reports.extend(run_all(rest, action, args.concurrency, &run, &on_done).await);
    }
    Ok(Rollout(reports))
}

/// The architecture a target's handler is built for: its own `arch` (or `defaults`'), else
/// `--arch`, else arm64.
fn arch(t: &Target, flag: Option<package::Arch>) -> package::Arch {
    t.settings.arch.or(flag).unwrap_or_default()
}

/// The install/plan flags a target's settings stand for.
fn install_args(t: &Target, arch: package::Arch, zip: Option<PathBuf>) -> InstallArgs {
    let s = &t.settings;
    InstallArgs {
        sender: s.sender.clone().unwrap_or_default(),
        policy: s.policy.clone(),
        arch,
        stack_name: stack_name(t),
        handler_zip: zip,
        source: s.source,
        extend_recorder: s.extend_recorder.unwrap_or(false),
        // Not a fleet setting yet: each account's quota decides whether it can reserve.
        reserved_concurrency: None,
        // Decided per account and region from its trails.
        actor_feed: None,
        // A hub is one stack, installed with `sgwatch hub install`.
        // The links are decided per stack: as deployed, else off.
        act_links: None,
        link_hours: None,
        keep_days: None,
        auto_revert: None,
        auto_revert_at: None,
        trusted_principals: None,
        coalesce: None,
        max_per_group_hour: None,
        digest: None,
        digest_at: None,
        digest_timezone: None,
        security_hub: None,
        page_at: None,
        pagerduty_url: None,
        hub: None,
    }
}

fn stack_name(t: &Target) -> String {
    t.settings
        .stack_name
        .clone()
        .unwrap_or_else(|| "sgwatch".to_owned())
}

/// One target: its own credentials, then the action; what changed, or why it failed.
async fn on_target(
    base: &SdkConfig,
    g: &GlobalArgs,
    t: &Target,
    partition: &str,
    action: Action,
    arch: package::Arch,
    zip: Option<PathBuf>,
) -> Result<Vec<String>, crate::Error> {
    let role = t.role_arn(partition);
    let config = crate::aws::assume(base, g, role, &t.region, t.external_id.as_deref()).await;
    match action {
        Action::Install => Ok(
            install::install(&install_args(t, arch, zip), &config, false)
                .await?
                .changes,
        ),
        Action::Plan => Ok(install::plan(&install_args(t, arch, zip), &config)
            .await?
            .changes),
        Action::Status => {
            let args = status::StatusArgs {
                stack_name: stack_name(t),
            };
            let st = status::status(&args, &config).await?;
            let failed: Vec<String> = st
                .checks
                .iter()
                .filter(|c| c.level == status::Level::Fail)
                .map(|c| format!("{}: {}", c.check, c.detail))
                .collect();
            if failed.is_empty() {
                Ok(vec![])
            } else {
                Err(RolloutError::Unhealthy(failed).into())
            }
        }
        Action::Teardown => {
            let args = teardown::TeardownArgs {
                stack_name: stack_name(t),
                keep_history: false,
            };
            Ok(teardown::teardown(&args, &config, false).await?.removed)
        }
    }
}

/// The targets split in two waves: each account's first region, then the others.
fn first_region_of_each_account(targets: Vec<Target>) -> (Vec<Target>, Vec<Target>) {
    let mut seen = HashSet::new();
    targets
        .into_iter()
        .partition(|t| seen.insert(t.account.clone()))
}

/// One target's spoke: its own credentials, then the action.
async fn on_spoke(
    base: &SdkConfig,
    g: &GlobalArgs,
    t: &Target,
    partition: &str,
    action: Action,
    args: &spoke::SpokeArgs,
) -> Result<Vec<String>, crate::Error> {
    let role = t.role_arn(partition);
    let config = crate::aws::assume(base, g, role, &t.region, t.external_id.as_deref()).await;
    match action {
        Action::Install => Ok(spoke::install(args, &config, false).await?.changes),
        Action::Plan => Ok(spoke::plan_only(args, &config).await?.changes),
        Action::Status => {
            let st = spoke::status(&args.name, &config).await?;
            let failed: Vec<String> = st
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.what, c.detail))
                .collect();
            if failed.is_empty() {
                Ok(vec![])
            } else {
                Err(RolloutError::Unhealthy(failed).into())
            }
        }
        Action::Teardown => Ok(spoke::teardown(&args.name, &config, false).await?.changes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
defaults:
  role_name: OrganizationAccountAccessRole   # assumed in each account
  regions: [us-east-1, eu-west-1]
  sender: alerts@example.com
  fallback_recipient: secops@example.com
targets:
  - account: "111122223333"
  - account: "444455556666"
    regions: [us-west-2]
    external_id: xyz
"#;

    #[test]
    fn expands_accounts_to_regions_with_defaults() {
        let t = parse_targets("targets.yaml", GOOD).unwrap();
        let pairs: Vec<(&str, &str)> = t
            .iter()
            .map(|t| (t.account.as_str(), t.region.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("111122223333", "us-east-1"),
                ("111122223333", "eu-west-1"),
                ("444455556666", "us-west-2")
            ]
        );
        assert_eq!(
            t[0].role_arn("aws"),
            "arn:aws:iam::111122223333:role/OrganizationAccountAccessRole"
        );
        assert_eq!(
            t[0].role_arn("aws-cn"),
            "arn:aws-cn:iam::111122223333:role/OrganizationAccountAccessRole"
        );
        assert_eq!(
            t[0].role_arn("aws-us-gov"),
            "arn:aws-us-gov:iam::111122223333:role/OrganizationAccountAccessRole"
        );
        assert_eq!(t[2].external_id.as_deref(), Some("xyz"));
        assert_eq!(
            t[2].settings.policy.fallback_recipient.as_deref(),
            Some("secops@example.com")
        );
    }

    #[test]
    fn the_architecture_comes_from_the_target_then_defaults_then_the_flag() {
        use package::Arch;
        let text = "defaults:\n  role_name: R\n  sender: a@example.com\n  regions: [us-east-1]\n  \
                    arch: x86_64\ntargets:\n  - account: \"111122223333\"\n  \
                    - account: \"444455556666\"\n    arch: arm64\n";
        let t = parse_targets("t.yaml", text).unwrap();
        assert_eq!(arch(&t[0], None), Arch::X86_64);
        assert_eq!(arch(&t[0], Some(Arch::Arm64)), Arch::X86_64);
        assert_eq!(arch(&t[1], Some(Arch::X86_64)), Arch::Arm64);
        assert_eq!(
            install_args(&t[0], arch(&t[0], None), None).arch,
            Arch::X86_64
        );
        let plain = parse_targets("t.yaml", GOOD).unwrap();
        assert_eq!(arch(&plain[0], None), Arch::Arm64);
        assert_eq!(arch(&plain[0], Some(Arch::X86_64)), Arch::X86_64);
        let e = error(&text.replace("arch: x86_64", "arch: amd64"));
        assert!(e.to_string().contains("amd64"), "{e}");
    }

    fn error(text: &str) -> TargetsError {
        parse_targets("t.yaml", text).unwrap_err()
    }

    #[test]
    fn bad_yaml_names_the_line() {
        let e =
            error("defaults:\n  regions: [us-east-1\ntargets:\n  - account: \"111122223333\"\n");
        assert!(e.line >= 2, "{e}");
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
    }

    #[test]
    fn missing_account_unknown_region_and_duplicates_name_the_line() {
        let base = "defaults:\n  role_name: R\n  sender: a@example.com\n  regions: [us-east-1]\ntargets:\n";
        let e = error(&format!(
            "{base}  - account: \"111122223333\"\n  - regions: [us-east-1]\n"
        ));
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("has no `account`"), "{e}");

        let e = error(&format!(
            "{base}  - account: \"111122223333\"\n    regions: [us-east-1, mars-north-1]\n"
        ));
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("unknown region \"mars-north-1\""), "{e}");

        let e = error(&format!(
            "{base}  - account: \"111122223333\"\n  - account: \"111122223333\"\n"
        ));
        assert_eq!(e.line, 7, "{e}");
        assert!(e.message.contains("listed twice"), "{e}");

        let e = error(&format!("{base}  - account: 11122223333\n"));
        assert!(e.message.contains("must be quoted"), "{e}");

        let e = error(&format!("{base}  - account: \"1234\"\n"));
        assert!(e.message.contains("not a 12-digit"), "{e}");

        let e = error("targets:\n  - account: \"111122223333\"\n    regions: [us-east-1]\n    sender: a@example.com\n");
        assert!(e.message.contains("no role to assume"), "{e}");

        let e = error(&format!(
            "{base}  - account: \"111122223333\"\n    colour: blue\n"
        ));
        assert!(e.message.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn a_misspelt_source_is_an_error_not_sns() {
        let base = "defaults:\n  role_name: R\n  sender: a@example.com\n  regions: [us-east-1]\ntargets:\n";
        let e = error(&format!(
            "{base}  - account: \"111122223333\"\n    source: evntbridge\n"
        ));
        assert!(e.message.contains("unknown variant `evntbridge`"), "{e}");
        let t = parse_targets(
            "t",
            &format!("{base}  - account: \"111122223333\"\n    source: eventbridge\n"),
        )
        .unwrap();
        assert_eq!(t[0].settings.source, Some(Source::Eventbridge));

        let e = error(&format!(
            "{base}  - account: \"111122223333\"\n    always_notify_at: hihg\n"
        ));
        assert!(e.message.contains("always_notify_at \"hihg\""), "{e}");
        let t = parse_targets(
            "t",
            &format!("{base}  - account: \"111122223333\"\n    always_notify_at: high\n"),
        )
        .unwrap();
        assert_eq!(
            t[0].settings.policy.always_notify_at.as_deref(),
            Some("high")
        );
    }

    #[test]
    fn the_partition_is_read_from_the_callers_arn() {
        use crate::aws::partition_of;
        assert_eq!(
            partition_of("arn:aws-cn:iam::111122223333:user/a"),
            "aws-cn"
        );
        assert_eq!(
            partition_of("arn:aws-us-gov:sts::111122223333:assumed-role/r/s"),
            "aws-us-gov"
        );
        assert_eq!(partition_of("arn:aws:iam::111122223333:root"), "aws");
        assert_eq!(partition_of(""), "aws");
    }

    #[test]
    fn regions_of_every_partition_are_taken_by_their_shape() {
        for region in [
            "us-east-1",
            "cn-north-1",
            "cn-northwest-1",
            "us-gov-west-1",
            "ap-southeast-7",
        ] {
            assert!(is_region_shaped(region), "{region}");
        }
        for region in [
            "mars-north-1",
            "us-east",
            "US-EAST-1",
            "us-east-1a",
            "",
            "east-1",
        ] {
            assert!(!is_region_shaped(region), "{region}");
        }
    }

    #[test]
    fn a_new_accounts_first_region_goes_before_its_others() {
        // GOOD: 111122223333 in us-east-1 and eu-west-1, 444455556666 in us-west-2.
        let (first, rest) = first_region_of_each_account(parse_targets("t", GOOD).unwrap());
        let places = |ts: &[Target]| -> Vec<(String, String)> {
            ts.iter()
                .map(|t| (t.account.clone(), t.region.clone()))
                .collect()
        };
        assert_eq!(
            places(&first),
            [
                ("111122223333".to_owned(), "us-east-1".to_owned()),
                ("444455556666".to_owned(), "us-west-2".to_owned()),
            ]
        );
        assert_eq!(
            places(&rest),
            [("111122223333".to_owned(), "eu-west-1".to_owned())]
        );
    }

    #[tokio::test]
    async fn one_failure_does_not_stop_the_others_and_order_is_kept() {
        let targets = parse_targets("t", GOOD).unwrap();
        let reports = run_all(
            targets,
            Action::Install,
            2,
            |t: Target| async move {
                if t.region == "eu-west-1" {
                    return Err(RolloutError::Unhealthy(vec![format!(
                        "SES identity alerts@example.com is not verified in {}",
                        t.region
                    )])
                    .into());
                }
                Ok(vec![format!("created stack in {}", t.region)])
            },
            |_| {},
        )
        .await;
        let results: Vec<(&str, String)> = reports
            .iter()
            .map(|r| (r.region.as_str(), r.result.to_string()))
            .collect();
        assert_eq!(
            results,
            [
                ("us-east-1", "ok".to_owned()),
                ("eu-west-1", "failed".to_owned()),
                ("us-west-2", "ok".to_owned())
            ]
        );
        assert!(table(&reports).contains("3 target(s), 2 ok, 1 failed"));
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let text = format!(
            "defaults:\n  role_name: R\n  sender: a@example.com\n  regions: [us-east-1, us-west-2]\ntargets:\n{}",
            (0..5).map(|i| format!("  - account: \"{:012}\"\n", i + 1)).collect::<String>()
        );
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (r, p) = (Arc::clone(&running), Arc::clone(&peak));
        let reports = run_all(
            parse_targets("t", &text).unwrap(),
            Action::Status,
            3,
            move |_t| {
                let (r, p) = (Arc::clone(&r), Arc::clone(&p));
                async move {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    r.fetch_sub(1, Ordering::SeqCst);
                    Ok(vec![])
                }
            },
            |_| {},
        )
        .await;
        assert_eq!(reports.len(), 10);
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}
