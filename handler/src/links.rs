//! The owners' links at the edge: signing them for an alert (KMS `GenerateMac`), and what the
//! owners did with them, as the ledger table keeps it: the token that acted, a rule kept, a rule
//! reverted. The handler reads the last two before it tells a change; the `act` function
//! ([`crate::act`]) writes all three.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::MacAlgorithmSpec;
use aws_smithy_types::error::display::DisplayErrorContext;
use sha2::{Digest, Sha256};

use crate::core::decide::Decision;
use crate::core::link::{self, Act, Grant, Links, RuleRef};
use crate::core::remedy;
use crate::core::rules::{Action, Change, Direction};
use crate::dedupe::Dedupe;
use crate::ledger::{attr, Item, Key};

/// How long the record of a used token or a revert is kept after the token's life.
const KEEP_RECORD_SECS: u64 = 14 * 24 * 3600;

/// Signs links for alerts: the act function's URL, the stack's HMAC key, the links' life.
#[derive(Debug, Clone)]
pub struct Signer {
    pub kms: aws_sdk_kms::Client,
    pub key: String,
    pub url: String,
    pub hours: u64,
}

impl Signer {
    /// The Revert and Keep links of each rule `d` added open to the internet, for the alert kept
    /// in the ledger under `alert`. One MAC per rule.
    pub async fn links(&self, d: &Decision, alert: &Key, now: u64) -> Result<Vec<Links>, String> {
        let s = &d.analysis.subject;
        let mut out = Vec::new();
        let wanted =
            d.analysis.changes.iter().filter(|c| {
                remedy::wanted(c) && !d.analysis.reverted.contains(&c.rule.to_string())
            });
        for c in wanted {
            let id = remedy::rule_id(c, &d.analysis.known_rules);
            let grant = Grant {
                account: s.account.clone(),
                region: s.region.clone(),
                group: s.resource_id.clone(),
                rule: RuleRef::of_change(c, id),
                state: alert.to_string(),
                expires: now + self.hours * 3600,
            };
            let text = grant.signed_text();
            let out_mac = self
                .kms
                .generate_mac()
                .key_id(&self.key)
                .mac_algorithm(MacAlgorithmSpec::HmacSha256)
                .message(Blob::new(text.as_bytes()))
                .send()
                .await
                .map_err(|e| format!("KMS GenerateMac: {}", DisplayErrorContext(&e)))?;
            let mac = out_mac.mac().map(Blob::as_ref).unwrap_or_default();
            let token = link::token(&text, mac);
            out.push(Links {
                rule: c.rule.to_string(),
                revert: link::url(&self.url, Act::Revert, &token),
                keep: link::url(&self.url, Act::Keep, &token),
            });
        }
        Ok(out)
    }
}

/// The key under which the ledger keeps that `token` acted.
pub fn token_key(token: &str) -> Key {
    Key::Act {
        token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
    }
}

/// What a used token did, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Used {
    pub act: String,
    pub at: String,
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn text(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn number(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

async fn get(
    table: &Dedupe,
    key: &Key,
) -> Result<Option<std::collections::HashMap<String, AttributeValue>>, String> {
    let out = table
        .client
        .get_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("DynamoDB GetItem {key}: {}", DisplayErrorContext(&e)))?;
    Ok(out.item().cloned())
}

/// What `token` did, if it acted.
pub async fn used(table: &Dedupe, token: &str) -> Result<Option<Used>, String> {
    Ok(get(table, &token_key(token)).await?.map(|item| Used {
        act: text(&item, attr::ACT),
        at: text(&item, attr::AT),
    }))
}

/// Takes `token` for `act` at `at`: `Err(Some(used))` when it acted before.
pub async fn take(
    table: &Dedupe,
    token: &str,
    grant: &Grant,
    act: Act,
    at: &str,
) -> Result<(), Option<Used>> {
    let key = token_key(token);
    let result = table
        .client
        .put_item()
        .table_name(&table.table)
        .item(attr::KEY, s(&key.to_string()))
        .item(attr::ACT, s(act.as_str()))
        .item(attr::AT, s(at))
        .item(attr::EXPIRES_AT, n(grant.expires + KEEP_RECORD_SECS))
        .condition_expression("attribute_not_exists(pk)")
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(SdkError::ServiceError(e))
            if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
        {
            Err(used(table, token).await.ok().flatten().or(Some(Used {
                act: "act".into(),
                at: "an earlier time".into(),
            })))
        }
        Err(e) => {
            tracing::error!(error = %DisplayErrorContext(&e), "the link could not be recorded as used");
            Err(None)
        }
    }
}

/// Gives `token` back after its act failed, so the owner can try again.
pub async fn give_back(table: &Dedupe, token: &str) {
    let key = token_key(token);
    if let Err(e) = table
        .client
        .delete_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .send()
        .await
    {
        tracing::error!(key = %key, error = %DisplayErrorContext(&e), "a link whose act failed stays used");
    }
}

fn kept_key(account: &str, region: &str, group: &str, rule: &RuleRef) -> Key {
    Key::Kept {
        account: account.to_owned(),
        region: region.to_owned(),
        group: group.to_owned(),
        rule: rule.key(),
    }
}

fn reverted_key(account: &str, region: &str, group: &str, rule: &RuleRef) -> Key {
    Key::Reverted {
        account: account.to_owned(),
        region: region.to_owned(),
        group: group.to_owned(),
        rule: rule.key(),
    }
}

/// Records that the owners keep `grant`'s rule until `until` (epoch seconds).
pub async fn record_kept(
    table: &Dedupe,
    grant: &Grant,
    at: &str,
    until: u64,
    told: &[String],
) -> Result<(), String> {
    let key = kept_key(&grant.account, &grant.region, &grant.group, &grant.rule);
    put(table, &key, at, until, &told.join(", ")).await
}

/// How a rule was reverted, as the ledger keeps it (`told`).
pub const AUTO_REVERT: &str = "auto-revert";

/// Records that `grant`'s rule was removed through its link sent to `told`.
pub async fn record_reverted(
    table: &Dedupe,
    grant: &Grant,
    at: &str,
    now: u64,
    told: &[String],
) -> Result<(), String> {
    let key = reverted_key(&grant.account, &grant.region, &grant.group, &grant.rule);
    let told = if told.is_empty() {
        "the owners".to_owned()
    } else {
        told.join(", ")
    };
    put(table, &key, at, now + KEEP_RECORD_SECS, &told).await
}

/// Records that auto-revert removed `rule` from `group` at `at`.
pub async fn record_auto_reverted(
    table: &Dedupe,
    (account, region, group): (&str, &str, &str),
    rule: &RuleRef,
    at: &str,
    now: u64,
) -> Result<(), String> {
    let key = reverted_key(account, region, group, rule);
    put(table, &key, at, now + KEEP_RECORD_SECS, AUTO_REVERT).await
}

/// One UpdateItem (the handler's role may update and read the table, not put).
async fn put(table: &Dedupe, key: &Key, at: &str, until: u64, told: &str) -> Result<(), String> {
    table
        .client
        .update_item()
        .table_name(&table.table)
        .key(attr::KEY, s(&key.to_string()))
        .update_expression("SET #at = :at, #until = :until, #told = :told, #expires = :until")
        .expression_attribute_names("#at", attr::AT)
        .expression_attribute_names("#until", attr::UNTIL)
        .expression_attribute_names("#told", attr::TOLD)
        .expression_attribute_names("#expires", attr::EXPIRES_AT)
        .expression_attribute_values(":at", s(at))
        .expression_attribute_values(":until", n(until))
        .expression_attribute_values(":told", s(told))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("DynamoDB UpdateItem {key}: {}", DisplayErrorContext(&e)))
}

/// Whom the alert kept under `alert` (a ledger key) was emailed to, as the ledger says.
pub async fn told(table: &Dedupe, alert: &str) -> Result<Vec<String>, String> {
    let out = table
        .client
        .get_item()
        .table_name(&table.table)
        .key(attr::KEY, s(alert))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| format!("DynamoDB GetItem {alert}: {}", DisplayErrorContext(&e)))?;
    Ok(out
        .item()
        .map(|i| Item::from_item(i).emails().map(str::to_owned).collect())
        .unwrap_or_default())
}

/// A rule the owners keep, as the handler finds it for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// The rule, as the email writes it.
    pub rule: String,
    pub at: String,
    pub until: u64,
}

/// A rule removed through a link or by auto-revert, as the handler finds it for a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reverted {
    pub rule: String,
    pub at: String,
    /// Whom the link's alert was sent to, or [`AUTO_REVERT`].
    pub told: String,
}

impl Reverted {
    /// The alert's line for the change the revert caused.
    pub fn note(&self) -> String {
        if self.told == AUTO_REVERT {
            format!(
                "{} was reverted automatically by sgwatch at {} (auto-revert)",
                self.rule, self.at
            )
        } else {
            format!(
                "{} was reverted through sgwatch at {} by a link sent to {}",
                self.rule, self.at, self.told
            )
        }
    }
}

/// The rules among `changes` that the owners of `group` keep at `now`: added ingress rules open
/// to the internet with a standing Keep.
pub async fn kept(
    table: &Dedupe,
    (account, region, group): (&str, &str, &str),
    changes: &[Change],
    now: u64,
) -> Result<Vec<Kept>, String> {
    let mut out = Vec::new();
    for c in changes.iter().filter(|c| remedy::wanted(c)) {
        let key = kept_key(account, region, group, &RuleRef::of_change(c, None));
        if let Some(item) = get(table, &key).await? {
            let until = number(&item, attr::UNTIL).unwrap_or_default();
            if until > now {
                out.push(Kept {
                    rule: c.rule.to_string(),
                    at: text(&item, attr::AT),
                    until,
                });
            }
        }
    }
    Ok(out)
}

/// The record of `rule`'s revert on `group`, if there is a standing one.
pub async fn reverted_rule(
    table: &Dedupe,
    (account, region, group): (&str, &str, &str),
    rule: &RuleRef,
    now: u64,
) -> Result<Option<Reverted>, String> {
    let key = reverted_key(account, region, group, rule);
    Ok(get(table, &key)
        .await?
        .filter(|item| number(item, attr::UNTIL).is_some_and(|until| until > now))
        .map(|item| Reverted {
            rule: rule.describe(),
            at: text(&item, attr::AT),
            told: text(&item, attr::TOLD),
        }))
}

/// The rules among `changes` removed through a link: removed ingress rules open to the internet
/// with a record of the revert.
pub async fn reverted(
    table: &Dedupe,
    (account, region, group): (&str, &str, &str),
    changes: &[Change],
    now: u64,
) -> Result<Vec<Reverted>, String> {
    let mut out = Vec::new();
    let removed = changes.iter().filter(|c| {
        c.action == Action::Removed && c.rule.direction == Direction::Ingress && c.rule.is_world()
    });
    for c in removed {
        let key = reverted_key(account, region, group, &RuleRef::of_change(c, None));
        if let Some(item) = get(table, &key).await? {
            if number(&item, attr::UNTIL).is_some_and(|until| until > now) {
                out.push(Reverted {
                    rule: c.rule.to_string(),
                    at: text(&item, attr::AT),
                    told: text(&item, attr::TOLD),
                });
            }
        }
    }
    Ok(out)
}

/// The ledger key of the exception a Keep of `grant` records, as `kept/…` names it.
pub fn kept_item(grant: &Grant) -> String {
    kept_key(&grant.account, &grant.region, &grant.group, &grant.rule).to_string()
}
