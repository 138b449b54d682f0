//! `sgwatch hub install|plan|status|teardown`: the organization's one handler, in the security
//! or audit account. A hub is the full stack with `Hub=true`: an event bus the member accounts'
//! spokes put their events on, a queue feeding the function, and the one SES sender out of the
//! sandbox. Install, plan and teardown are the full stack's, with the hub's flags; status adds
//! the coverage map: every account × region heard from, its last heartbeat and change, and the
//! blind ones first.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use clap::{Args, Subcommand};
use serde::Serialize;
use sgwatch_handler::spokes::{self, Blind, Marks};

use crate::cmd::install::{self, InstallArgs};
use crate::cmd::status::{self, StatusArgs};
use crate::cmd::teardown::TeardownArgs;
use crate::deploy::stack::Deployed;
use crate::deploy::wanted::Hub;

#[derive(Debug, Clone, Subcommand)]
pub enum HubCommand {
    /// Installs or updates the hub in this account and region (idempotent)
    Install(HubInstallArgs),
    /// Shows what hub install would change; changes nothing
    Plan(HubInstallArgs),
    /// Checks the hub's chain, then lists every account × region and the blind ones
    Status(StatusArgs),
    /// Removes the hub and everything its install created, and nothing else
    Teardown(TeardownArgs),
}

#[derive(Debug, Clone, Args)]
pub struct HubInstallArgs {
    #[command(flatten)]
    pub install: InstallArgs,
    #[command(flatten)]
    pub hub: Hub,
}

impl HubInstallArgs {
    /// The full stack's install flags, as a hub.
    pub fn install_args(&self) -> InstallArgs {
        InstallArgs {
            hub: Some(self.hub.clone()),
            ..self.install.clone()
        }
    }
}

/// What hub install did, and what each spoke needs to know.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    #[serde(flatten)]
    pub install: install::Report,
    pub hub_bus_arn: String,
    pub hub_role_arn: String,
    /// The command that installs a spoke in a member account and region.
    pub spoke_command: String,
}

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.install)?;
        writeln!(f, "hub bus:  {}", self.hub_bus_arn)?;
        writeln!(f, "hub role: {}", self.hub_role_arn)?;
        writeln!(
            f,
            "in each member account and region: {}",
            self.spoke_command
        )
    }
}

/// `sgwatch hub install`.
pub async fn install(
    args: &HubInstallArgs,
    config: &SdkConfig,
    progress: bool,
) -> Result<Installed, crate::Error> {
    let report = install::install(&args.install_args(), config, progress).await?;
    let place = crate::aws::place(config).await?;
    let cf = crate::aws::cloudformation(config);
    let deployed = Deployed::require(&cf, &args.install.stack_name, &place).await?;
    let bus = deployed.outputs.hub_bus_arn.clone().unwrap_or_default();
    let role = deployed
        .outputs
        .handler_role_arn
        .clone()
        .unwrap_or_default();
    let org = args
        .hub
        .organization_id
        .as_deref()
        .map(|o| format!(" --organization-id {o}"))
        .unwrap_or_default();
    Ok(Installed {
        install: report,
        spoke_command: format!("sgwatch spoke install --hub {bus} --hub-role {role}{org}"),
        hub_bus_arn: bus,
        hub_role_arn: role,
    })
}

/// One account × region as `hub status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Covered {
    pub account: String,
    /// Empty for an account listed but never heard from (no region known).
    pub region: String,
    /// Seconds since the epoch.
    pub last_heartbeat: Option<u64>,
    pub last_change: Option<u64>,
    /// Why it is blind; none when the hub hears it.
    pub blind: Option<String>,
}

/// The coverage map: the blind first, in the order of [`Blind`], then the rest.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub spokes: Vec<Covered>,
    pub blind: usize,
    /// Where the list of accounts came from: `organizations`, `member-accounts` (the hub's
    /// `--member-accounts`) or `heard` (only the accounts heard from).
    pub accounts_from: &'static str,
}

/// `hub status`: the chain's checks and the coverage map.
#[derive(Debug, Clone, Serialize)]
pub struct HubStatus {
    #[serde(flatten)]
    pub status: status::Status,
    pub coverage: Coverage,
}

impl HubStatus {
    pub fn failed(&self) -> bool {
        self.status.failed() || self.coverage.blind > 0
    }
}

fn ago(now: u64, t: Option<u64>) -> String {
    match t {
        None => "never".to_owned(),
        Some(t) => {
            let secs = now.saturating_sub(t);
            match secs {
                s if s < 120 => format!("{s} s ago"),
                s if s < 7200 => format!("{} min ago", s / 60),
                s => format!("{} h ago", s / 3600),
            }
        }
    }
}

impl std::fmt::Display for HubStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.status)?;
        let now = now();
        let from = match self.coverage.accounts_from {
            "organizations" => "every account in the organization",
            "member-accounts" => "the hub's member accounts",
            _ => "the accounts heard from (Organizations cannot list them from here)",
        };
        writeln!(
            f,
            "coverage of {from}: {} account/region(s), {} blind:",
            self.coverage.spokes.len(),
            self.coverage.blind
        )?;
        for c in &self.coverage.spokes {
            let region = if c.region.is_empty() { "-" } else { &c.region };
            let state = match &c.blind {
                Some(why) => format!("BLIND ({why})"),
                None => "ok".to_owned(),
            };
            writeln!(
                f,
                "  {:<12} {:<15} {:<28} heartbeat {}, last change {}",
                c.account,
                region,
                state,
                ago(now, c.last_heartbeat),
                ago(now, c.last_change)
            )?;
        }
        Ok(())
    }
}

fn now() -> u64 {
    sgwatch_handler::dedupe::epoch_secs(std::time::SystemTime::now())
}

/// Reads the coverage map's items: one `BatchGetItem` of [`spokes::SHARDS`] keys.
pub async fn read_marks(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> Result<Marks, String> {
    let keys = spokes::shard_keys()
        .into_iter()
        .map(|k| {
            BTreeMap::from([("pk".to_owned(), AttributeValue::S(k))])
                .into_iter()
                .collect()
        })
        .collect::<Vec<_>>();
    let mut request = KeysAndAttributes::builder()
        .set_keys(Some(keys))
        .consistent_read(true)
        .build()
        .map_err(|e| e.to_string())?;
    let mut marks = Marks::new();
    // Unprocessed keys are asked again, as DynamoDB advises.
    for _ in 0..5 {
        let out = dynamodb
            .batch_get_item()
            .request_items(table, request.clone())
            .send()
            .await
            .map_err(|e| crate::aws::error_text(&e))?;
        for item in out
            .responses()
            .and_then(|r| r.get(table))
            .into_iter()
            .flatten()
        {
            read_item(item, &mut marks);
        }
        match out.unprocessed_keys().and_then(|u| u.get(table)) {
            Some(rest) if !rest.keys().is_empty() => request = rest.clone(),
            _ => break,
        }
    }
    Ok(marks)
}

fn read_item(item: &std::collections::HashMap<String, AttributeValue>, marks: &mut Marks) {
    for (name, value) in item {
        sgwatch_handler::coverage::add_attribute(marks, name, value);
    }
}

/// The coverage map from what was heard and the accounts the hub should hear from (the listed
/// members; an account never heard from is blind in every region). Pure.
pub fn coverage(
    marks: &Marks,
    expected: &BTreeSet<String>,
    accounts_from: &'static str,
    now: u64,
) -> Coverage {
    let mut spokes: Vec<(Option<Blind>, Covered)> = marks
        .iter()
        .map(|((account, region), seen)| {
            let blind = spokes::blind(Some(seen), now);
            (
                blind.clone(),
                Covered {
                    account: account.clone(),
                    region: region.clone(),
                    last_heartbeat: seen.last_heartbeat,
                    last_change: seen.last_change,
                    blind: blind.map(|b| b.to_string()),
                },
            )
        })
        .collect();
    let heard: BTreeSet<&str> = marks.keys().map(|(a, _)| a.as_str()).collect();
    for account in expected.iter().filter(|a| !heard.contains(a.as_str())) {
        spokes.push((
            Some(Blind::NoSpoke),
            Covered {
                account: account.clone(),
                region: String::new(),
                last_heartbeat: None,
                last_change: None,
                blind: Some(Blind::NoSpoke.to_string()),
            },
        ));
    }
    // The blind first, by why (silent, no spoke, then what hides changes), then by account and
    // region.
    spokes.sort_by(|(a, ca), (b, cb)| {
        (a.is_none(), a, &ca.account, &ca.region).cmp(&(b.is_none(), b, &cb.account, &cb.region))
    });
    let blind = spokes.iter().filter(|(b, _)| b.is_some()).count();
    Coverage {
        spokes: spokes.into_iter().map(|(_, c)| c).collect(),
        blind,
        accounts_from,
    }
}

/// The accounts the hub should hear from: every active account of the organization where
/// Organizations lets the caller list them (the management account or a delegated
/// administrator), else the hub's `--member-accounts`, else none (only those heard from).
async fn expected_accounts(
    organizations: &aws_sdk_organizations::Client,
    listed: BTreeSet<String>,
) -> (BTreeSet<String>, &'static str) {
    use aws_sdk_organizations::types::{AccountState, AccountStatus};
    let mut accounts = BTreeSet::new();
    let mut pages = organizations.list_accounts().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => accounts.extend(
                page.accounts()
                    .iter()
                    .filter(|a| match (a.state(), a.status()) {
                        (Some(state), _) => state == &AccountState::Active,
                        (None, status) => status == Some(&AccountStatus::Active),
                    })
                    .filter_map(|a| a.id().map(str::to_owned)),
            ),
            Err(e) => {
                tracing::debug!(error = %crate::aws::error_text(&e), "Organizations cannot list the accounts");
                accounts.clear();
                break;
            }
        }
    }
    // An organization lists at least its management account: none listed is no organization.
    match (accounts.is_empty(), listed.is_empty()) {
        (false, _) => (accounts, "organizations"),
        (true, false) => (listed, "member-accounts"),
        (true, true) => (listed, "heard"),
    }
}

/// `sgwatch hub status`.
pub async fn status(args: &StatusArgs, config: &SdkConfig) -> Result<HubStatus, crate::Error> {
    let chain = status::status(args, config).await?;
    let place = crate::aws::place(config).await?;
    let cf = crate::aws::cloudformation(config);
    let deployed = Deployed::require(&cf, &args.stack_name, &place).await?;
    let table = deployed
        .outputs
        .idempotency_table_name
        .clone()
        .unwrap_or_default();
    let listed: BTreeSet<String> = deployed
        .params
        .all
        .get("HubAccounts")
        .map(|a| {
            a.split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (expected, accounts_from) =
        expected_accounts(&crate::aws::organizations(config), listed).await;
    let marks = read_marks(&crate::aws::dynamodb(config), &table)
        .await
        .map_err(|detail| HubError::Coverage { table, detail })?;
    Ok(HubStatus {
        status: chain,
        coverage: coverage(&marks, &expected, accounts_from, now()),
    })
}

/// Why a hub command stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("the coverage map in table {table} cannot be read: {detail}")]
    Coverage { table: String, detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgwatch_handler::spokes::{Seen, Sight};

    fn seen(beat: Option<u64>, change: Option<u64>) -> Seen {
        Seen {
            last_heartbeat: beat,
            last_change: change,
            sight: None,
        }
    }

    #[test]
    fn the_blind_come_first_silent_then_without_a_spoke_then_hidden() {
        let now = 100_000;
        let marks = Marks::from([
            (
                ("111111111111".into(), "eu-west-1".into()),
                seen(Some(now - 60), Some(now - 5)),
            ),
            (
                ("222222222222".into(), "us-east-1".into()),
                seen(Some(now - 4 * 3600), None),
            ),
            (
                ("111111111111".into(), "us-east-1".into()),
                seen(Some(now - 1800), None),
            ),
            (
                ("222222222222".into(), "eu-west-1".into()),
                Seen {
                    sight: Some(vec![Sight::NoTrail]),
                    ..seen(Some(now - 60), None)
                },
            ),
            (
                ("444444444444".into(), "eu-west-1".into()),
                Seen {
                    sight: Some(vec![Sight::RecorderOff]),
                    ..seen(Some(now - 60), None)
                },
            ),
        ]);
        let expected = BTreeSet::from(["111111111111".to_owned(), "333333333333".to_owned()]);
        let c = coverage(&marks, &expected, "member-accounts", now);
        let order: Vec<(&str, &str, Option<&str>)> = c
            .spokes
            .iter()
            .map(|s| (s.account.as_str(), s.region.as_str(), s.blind.as_deref()))
            .collect();
        assert_eq!(
            order,
            vec![
                ("222222222222", "us-east-1", Some("no heartbeat for 4 h")),
                ("333333333333", "", Some("no spoke")),
                ("444444444444", "eu-west-1", Some("recorder off")),
                (
                    "222222222222",
                    "eu-west-1",
                    Some("no logging trail for the actor feed")
                ),
                ("111111111111", "eu-west-1", None),
                ("111111111111", "us-east-1", None),
            ]
        );
        assert_eq!(c.blind, 4);
    }

    #[test]
    fn the_map_is_read_from_the_items_attributes() {
        let mut marks = Marks::new();
        let item = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S("spokes/03".into())),
            (
                "beat:111111111111:eu-west-1".to_owned(),
                AttributeValue::N("500".into()),
            ),
            (
                "change:111111111111:eu-west-1".to_owned(),
                AttributeValue::N("400".into()),
            ),
            (
                "sight:111111111111:eu-west-1".to_owned(),
                AttributeValue::S("no-recorder no-trail".into()),
            ),
            ("beat:bogus".to_owned(), AttributeValue::N("1".into())),
        ]);
        read_item(&item, &mut marks);
        assert_eq!(
            marks,
            Marks::from([(
                ("111111111111".into(), "eu-west-1".into()),
                Seen {
                    sight: Some(vec![Sight::NoRecorder, Sight::NoTrail]),
                    ..seen(Some(500), Some(400))
                }
            )])
        );
    }

    #[tokio::test]
    async fn the_accounts_come_from_organizations_where_it_lists_them_else_the_members() {
        use aws_sdk_organizations::operation::list_accounts::{
            ListAccountsError, ListAccountsOutput,
        };
        use aws_sdk_organizations::types::error::AccessDeniedException;
        use aws_sdk_organizations::types::{Account, AccountState};
        use aws_smithy_mocks::{mock, mock_client, RuleMode};
        let account =
            |id: &str, state: AccountState| Account::builder().id(id).state(state).build();
        let first = mock!(aws_sdk_organizations::Client::list_accounts)
            .match_requests(|r| r.next_token().is_none())
            .then_output(move || {
                ListAccountsOutput::builder()
                    .accounts(account("111111111111", AccountState::Active))
                    .accounts(account("222222222222", AccountState::Suspended))
                    .next_token("page-2")
                    .build()
            });
        let second = mock!(aws_sdk_organizations::Client::list_accounts)
            .match_requests(|r| r.next_token() == Some("page-2"))
            .then_output(move || {
                ListAccountsOutput::builder()
                    .accounts(account("333333333333", AccountState::Active))
                    .accounts(account("444444444444", AccountState::Closed))
                    .build()
            });
        let org = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&first, &second]);
        let listed = BTreeSet::from(["999999999999".to_owned()]);
        assert_eq!(
            expected_accounts(&org, listed.clone()).await,
            (
                BTreeSet::from(["111111111111".to_owned(), "333333333333".to_owned()]),
                "organizations"
            )
        );
        let denied = mock!(aws_sdk_organizations::Client::list_accounts).then_error(|| {
            ListAccountsError::AccessDeniedException(
                AccessDeniedException::builder()
                    .message("not the management account")
                    .build(),
            )
        });
        let member = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&denied]);
        assert_eq!(
            expected_accounts(&member, listed.clone()).await,
            (listed.clone(), "member-accounts")
        );
        assert_eq!(expected_accounts(&member, BTreeSet::new()).await.1, "heard");
        // An organization lists at least its management account: an empty list is none.
        let none = mock!(aws_sdk_organizations::Client::list_accounts)
            .then_output(|| ListAccountsOutput::builder().build());
        let alone = mock_client!(aws_sdk_organizations, RuleMode::MatchAny, [&none]);
        assert_eq!(
            expected_accounts(&alone, listed.clone()).await,
            (listed, "member-accounts")
        );
    }
}
