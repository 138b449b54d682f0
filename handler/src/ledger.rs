//! The delivery ledger: one DynamoDB item per thing sgwatch tells (a configuration state, an
//! early warning, a record that could not be read), holding who and what was told. The handler
//! writes it ([`crate::dedupe`]); `sgwatch verify` and `sgwatch redrive` read it. Its key space,
//! its attributes, its entries and the records the handler parks in the failure queue are
//! defined here and nowhere else.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::core::decide::Subject;
pub use crate::core::message::Facts;
use crate::core::message::{ItemChange, StateId};

/// The attributes of a ledger item.
pub mod attr {
    /// The partition key: a [`super::Key`].
    pub const KEY: &str = "pk";
    /// A [`super::Status`].
    pub const STATUS: &str = "status";
    /// The request id of the invocation holding the claim.
    pub const OWNER: &str = "owner";
    /// Epoch seconds when the claim's lease ends.
    pub const LEASE_UNTIL: &str = "lease_until";
    /// Epoch seconds after which DynamoDB's TTL removes the item.
    pub const EXPIRES_AT: &str = "expires_at";
    /// A string set of [`super::Entry`]s.
    pub const DELIVERED: &str = "delivered";
    /// The message ids SES accepted the emails under.
    pub const SES_MESSAGE_IDS: &str = "ses_message_ids";
    /// Config's `configurationItemCaptureTime` of the state, as written.
    pub const CAPTURE_TIME: &str = "capture_time";
    /// Epoch milliseconds of the first decision to notify.
    pub const DECIDED_AT_MS: &str = "decided_at_ms";
    /// Epoch milliseconds of the first email SES accepted.
    pub const ACCEPTED_AT_MS: &str = "accepted_at_ms";
    /// What an owner's link did: `revert` or `keep` ([`crate::core::link::Act`]).
    pub const ACT: &str = "act";
    /// When an owner's link acted, RFC 3339.
    pub const AT: &str = "at";
    /// Epoch seconds until which a kept rule raises no alert.
    pub const UNTIL: &str = "until";
    /// The addresses the alert whose link acted was sent to, comma-separated.
    pub const TOLD: &str = "told";
    /// A string set of the lines held for a recipient's digest ([`crate::core::digest::Line`]).
    pub const LINES: &str = "lines";
    /// A string set of the recipients that have had lines held.
    pub const RECIPIENTS: &str = "recipients";
    /// A count: the emails about a group in an hour.
    pub const COUNT: &str = "n";
    /// When a rule recorded open was closed (epoch seconds).
    pub const CLOSED: &str = "closed";
}

/// The key of a ledger item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A configuration state: `ACCOUNT/REGION/RESOURCE/STATE`, the state being Config's state id
    /// or, for an item that carries none, `sha256:` and a hash of the item and its diff.
    State {
        account: String,
        region: String,
        resource: String,
        state: String,
    },
    /// An early warning, by the call that made it: `early/ACCOUNT/REGION/GROUP/EVENT-ID`. It
    /// cannot be a state's, whose keys start with the account id.
    Early {
        account: String,
        region: String,
        group: String,
        event_id: String,
    },
    /// A record that could not be read, by its SNS message id: `unreadable/MESSAGE-ID`.
    Unreadable { message_id: String },
    /// A hub's spoke gone silent, by its last heartbeat: `silent/ACCOUNT/REGION/LAST-BEAT`, so a
    /// silence is told once, and again only after the spoke beat and fell silent anew.
    Silent {
        account: String,
        region: String,
        last_heartbeat: u64,
    },
    /// A Revert or Keep link that acted, by the sha256 of its token: `act/HASH`. A token acts
    /// once: its item is written only if absent.
    Act { token_sha256: String },
    /// A rule its owners keep, by what it allows: `kept/ACCOUNT/REGION/GROUP/RULE`, the rule as
    /// [`crate::core::link::RuleRef::key`] writes it.
    Kept {
        account: String,
        region: String,
        group: String,
        rule: String,
    },
    /// A rule removed through a Revert link: `reverted/ACCOUNT/REGION/GROUP/RULE`, so the change
    /// the revert causes is told as what it is.
    Reverted {
        account: String,
        region: String,
        group: String,
        rule: String,
    },
    /// The changes held for a recipient's next digest: `held/RECIPIENT`.
    Held { recipient: String },
    /// The recipients that have had changes held: `held`.
    HeldIndex,
    /// A digest sent, by its recipient and a hash of its lines: `digest/RECIPIENT/HASH`.
    Digest { recipient: String, hash: String },
    /// A group's coalescing window, with the changes made in it: `window/ACCOUNT/REGION/GROUP`.
    Window {
        account: String,
        region: String,
        group: String,
    },
    /// A coalesced email sent, by its recipient and a hash of its lines:
    /// `coalesced/RECIPIENT/HASH`.
    Coalesced { recipient: String, hash: String },
    /// The emails about a group in a clock hour, counted against the rate limit:
    /// `rate/ACCOUNT/REGION/GROUP/HOUR` (the hour's first second, epoch seconds).
    Rate {
        account: String,
        region: String,
        group: String,
        hour: u64,
    },
    /// The summary of what the rate limit held back in that hour:
    /// `ratesummary/ACCOUNT/REGION/GROUP/HOUR`.
    RateSummary {
        account: String,
        region: String,
        group: String,
        hour: u64,
    },
    /// A rule open to the internet that security teams' tools were told of, by its identity
    /// ([`crate::core::finding::id`]): `open/ACCOUNT/REGION/GROUP/ingress/RULE`.
    Open { id: String },
}

impl Key {
    /// The key of a configuration state, when it has a state id.
    pub fn state(subject: &Subject) -> Option<Key> {
        let state = subject
            .state_id
            .as_ref()
            .map(StateId::as_str)
            .filter(|s| !s.is_empty())?;
        Some(Key::State {
            account: subject.account.clone(),
            region: subject.region.clone(),
            resource: subject.resource_id.clone(),
            state: state.to_owned(),
        })
    }

    /// The key of a change, by its state id or, for an item that carries none, by a hash of the
    /// item and its diff: every delivery of one notification holds the same item, so a retry
    /// finds the ledger of the first attempt instead of sending again.
    pub fn of_change(subject: &Subject, change: &ItemChange) -> Key {
        Key::state(subject).unwrap_or_else(|| {
            let mut hash = Sha256::new();
            // Serialising plain data (strings, maps, JSON values) cannot fail.
            hash.update(serde_json::to_vec(change).unwrap_or_default());
            Key::State {
                account: subject.account.clone(),
                region: subject.region.clone(),
                resource: subject.resource_id.clone(),
                state: format!("sha256:{}", hex::encode(hash.finalize())),
            }
        })
    }

    /// The key of an early warning about `group`, made by the call `event_id`.
    pub fn early(account: &str, region: &str, group: &str, event_id: &str) -> Key {
        Key::Early {
            account: account.to_owned(),
            region: region.to_owned(),
            group: group.to_owned(),
            event_id: event_id.to_owned(),
        }
    }

    /// The key of an unreadable record; none without a message id (`-`).
    pub fn unreadable(message_id: &str) -> Option<Key> {
        (message_id != "-").then(|| Key::Unreadable {
            message_id: message_id.to_owned(),
        })
    }

    /// What every state key of `resource` starts with, to find its states.
    pub fn states_of(account: &str, region: &str, resource: &str) -> String {
        format!("{account}/{region}/{resource}/")
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::State {
                account,
                region,
                resource,
                state,
            } => write!(f, "{account}/{region}/{resource}/{state}"),
            Key::Early {
                account,
                region,
                group,
                event_id,
            } => write!(f, "early/{account}/{region}/{group}/{event_id}"),
            Key::Unreadable { message_id } => write!(f, "unreadable/{message_id}"),
            Key::Silent {
                account,
                region,
                last_heartbeat,
            } => write!(f, "silent/{account}/{region}/{last_heartbeat}"),
            Key::Act { token_sha256 } => write!(f, "act/{token_sha256}"),
            Key::Kept {
                account,
                region,
                group,
                rule,
            } => write!(f, "kept/{account}/{region}/{group}/{rule}"),
            Key::Reverted {
                account,
                region,
                group,
                rule,
            } => write!(f, "reverted/{account}/{region}/{group}/{rule}"),
            Key::Held { recipient } => write!(f, "held/{recipient}"),
            Key::HeldIndex => f.write_str("held"),
            Key::Digest { recipient, hash } => write!(f, "digest/{recipient}/{hash}"),
            Key::Window {
                account,
                region,
                group,
            } => write!(f, "window/{account}/{region}/{group}"),
            Key::Coalesced { recipient, hash } => write!(f, "coalesced/{recipient}/{hash}"),
            Key::Rate {
                account,
                region,
                group,
                hour,
            } => write!(f, "rate/{account}/{region}/{group}/{hour}"),
            Key::RateSummary {
                account,
                region,
                group,
                hour,
            } => write!(f, "ratesummary/{account}/{region}/{group}/{hour}"),
            Key::Open { id } => write!(f, "open/{id}"),
        }
    }
}

/// Where a claim stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// An invocation holds the claim until its lease ends.
    Sending,
    /// Settled: everyone was told, or parked with no one left to tell.
    Sent,
    /// Some were rejected for good and are in the failure queue; a replay may claim it again.
    Parked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Parked => "parked",
        }
    }
}

impl FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Status, String> {
        match s {
            "sending" => Ok(Status::Sending),
            "sent" => Ok(Status::Sent),
            "parked" => Ok(Status::Parked),
            other => Err(format!("unknown ledger status {other:?}")),
        }
    }
}

/// Who or what a ledger item says was told; stored in lower case (`A@x` and `a@x` are one
/// mailbox to SES, and destination names are compared without case).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    /// An email SES accepted for this address.
    Email(String),
    /// A post a destination took: `destination:NAME`.
    Destination(String),
    /// The fallback recipient told that SES rejected `rejected`: `notice:FALLBACK:REJECTED`.
    Notice { fallback: String, rejected: String },
    /// The record parked in the failure queue: `failure-queue`.
    Parked,
    /// The change held for this address's digest: `held:ADDRESS`.
    Held(String),
    /// The change's findings imported into Security Hub: `securityhub`.
    Findings,
}

const DESTINATION: &str = "destination:";
const NOTICE: &str = "notice:";
const PARKED: &str = "failure-queue";
const HELD: &str = "held:";
const FINDINGS: &str = "securityhub";

impl Entry {
    pub fn email(address: &str) -> Entry {
        Entry::Email(address.to_ascii_lowercase())
    }

    pub fn held(address: &str) -> Entry {
        Entry::Held(address.to_ascii_lowercase())
    }

    pub fn destination(name: &str) -> Entry {
        Entry::Destination(name.to_ascii_lowercase())
    }

    pub fn notice(fallback: &str, rejected: &str) -> Entry {
        Entry::Notice {
            fallback: fallback.to_ascii_lowercase(),
            rejected: rejected.to_ascii_lowercase(),
        }
    }

    /// An entry as stored.
    pub fn parse(stored: &str) -> Entry {
        let stored = stored.to_ascii_lowercase();
        if stored == PARKED {
            return Entry::Parked;
        }
        if stored == FINDINGS {
            return Entry::Findings;
        }
        if let Some(name) = stored.strip_prefix(DESTINATION) {
            return Entry::Destination(name.to_owned());
        }
        if let Some(address) = stored.strip_prefix(HELD) {
            return Entry::Held(address.to_owned());
        }
        // An address holds no colon: the fallback's ends at the first.
        if let Some((fallback, rejected)) =
            stored.strip_prefix(NOTICE).and_then(|n| n.split_once(':'))
        {
            return Entry::notice(fallback, rejected);
        }
        Entry::Email(stored)
    }

    /// The address, when this is an email.
    pub fn as_email(&self) -> Option<&str> {
        match self {
            Entry::Email(address) => Some(address),
            _ => None,
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Email(address) => f.write_str(address),
            Entry::Destination(name) => write!(f, "{DESTINATION}{name}"),
            Entry::Notice { fallback, rejected } => write!(f, "{NOTICE}{fallback}:{rejected}"),
            Entry::Parked => f.write_str(PARKED),
            Entry::Held(address) => write!(f, "{HELD}{address}"),
            Entry::Findings => f.write_str(FINDINGS),
        }
    }
}

/// A ledger item as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    /// The key as stored (a [`Key`]'s text, or a feed item's).
    pub key: String,
    pub status: Option<Status>,
    pub owner: Option<String>,
    pub lease_until: Option<u64>,
    pub expires_at: Option<u64>,
    pub delivered: BTreeSet<Entry>,
    pub ses_message_ids: Vec<String>,
    pub capture_time: Option<String>,
    pub decided_at_ms: Option<u64>,
    pub accepted_at_ms: Option<u64>,
}

type Attributes = HashMap<String, AttributeValue>;

impl Item {
    /// The item from its attributes; an attribute missing or of another type is absent.
    pub fn from_item(item: &Attributes) -> Item {
        let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let n = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let ss = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_ss().ok())
                .cloned()
                .unwrap_or_default()
        };
        Item {
            key: s(attr::KEY).unwrap_or_default(),
            status: s(attr::STATUS).and_then(|s| s.parse().ok()),
            owner: s(attr::OWNER),
            lease_until: n(attr::LEASE_UNTIL),
            expires_at: n(attr::EXPIRES_AT),
            delivered: ss(attr::DELIVERED)
                .iter()
                .map(|e| Entry::parse(e))
                .collect(),
            ses_message_ids: ss(attr::SES_MESSAGE_IDS),
            capture_time: s(attr::CAPTURE_TIME).filter(|t| !t.is_empty()),
            decided_at_ms: n(attr::DECIDED_AT_MS),
            accepted_at_ms: n(attr::ACCEPTED_AT_MS),
        }
    }

    /// The attributes of the item, as the handler writes them.
    pub fn to_item(&self) -> Attributes {
        let mut out = Attributes::new();
        out.insert(attr::KEY.to_owned(), AttributeValue::S(self.key.clone()));
        let mut s = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.insert(k.to_owned(), AttributeValue::S(v));
            }
        };
        s(attr::STATUS, self.status.map(|s| s.as_str().to_owned()));
        s(attr::OWNER, self.owner.clone());
        s(attr::CAPTURE_TIME, self.capture_time.clone());
        let numbers = [
            (attr::LEASE_UNTIL, self.lease_until),
            (attr::EXPIRES_AT, self.expires_at),
            (attr::DECIDED_AT_MS, self.decided_at_ms),
            (attr::ACCEPTED_AT_MS, self.accepted_at_ms),
        ];
        for (k, v) in numbers {
            if let Some(v) = v {
                out.insert(k.to_owned(), AttributeValue::N(v.to_string()));
            }
        }
        // DynamoDB holds no empty set: an empty one is no attribute.
        let delivered: Vec<String> = self.delivered.iter().map(Entry::to_string).collect();
        for (k, set) in [
            (attr::DELIVERED, delivered),
            (attr::SES_MESSAGE_IDS, self.ses_message_ids.clone()),
        ] {
            if !set.is_empty() {
                out.insert(k.to_owned(), AttributeValue::Ss(set));
            }
        }
        out
    }

    /// The addresses SES accepted an email for.
    pub fn emails(&self) -> impl Iterator<Item = &str> {
        self.delivered.iter().filter_map(Entry::as_email)
    }

    /// Some email of this item was accepted by SES (a post or a parked record is not one).
    pub fn accepted(&self) -> bool {
        self.emails().next().is_some()
    }
}

/// The `source` of every record the handler parks itself.
pub const PARKED_SOURCE: &str = "sgwatch";

/// A record the handler parks in the failure queue: what nobody could be told of a change, or a
/// record that could not be read at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParkedRecord {
    /// Always [`PARKED_SOURCE`].
    pub source: String,
    pub reason: String,
    pub facts: Facts,
    #[serde(flatten)]
    pub what: Parked,
}

/// What a parked record holds besides its facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Parked {
    /// A change: the recipients SES rejected and the destinations that refused it, for good.
    #[serde(rename_all = "camelCase")]
    Change {
        subject: String,
        rejected: Vec<RejectedRecipient>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refused: Vec<RefusedDestination>,
        /// The ledger's entries when it was parked.
        delivered: Vec<String>,
        /// The original event (this record alone): `sgwatch redrive` gives it to the function
        /// again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event: Option<Value>,
        /// Why the event is not here (it did not fit the queue's message size).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        event_omitted: Option<String>,
    },
    /// A record that could not be read: the start of its body
    /// ([`crate::core::message::BODY_EXCERPT_BYTES`] of the SNS message or, without one, the record).
    Unreadable { body: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRecipient {
    pub recipient: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDestination {
    pub destination: String,
    pub reason: String,
}

impl ParkedRecord {
    /// The handler's own record in `value`, when it is one.
    pub fn from_value(value: &Value) -> Option<ParkedRecord> {
        (value["source"] == PARKED_SOURCE)
            .then(|| serde_json::from_value(value.clone()).ok())
            .flatten()
    }

    /// The event to give the function again, when the record holds one.
    pub fn event(&self) -> Option<&Value> {
        match &self.what {
            Parked::Change { event, .. } => event.as_ref().filter(|e| e.is_object()),
            Parked::Unreadable { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_read_as_stored() {
        let key = Key::early("111122223333", "eu-west-1", "sg-1", "e-9");
        assert_eq!(key.to_string(), "early/111122223333/eu-west-1/sg-1/e-9");
        assert_eq!(
            Key::unreadable("m-1").unwrap().to_string(),
            "unreadable/m-1"
        );
        assert_eq!(Key::unreadable("-"), None);
    }

    #[test]
    fn entries_round_trip_through_their_stored_form() {
        for (stored, entry) in [
            ("a@corp.example", Entry::email("A@Corp.example")),
            ("destination:secops", Entry::destination("SecOps")),
            (
                "notice:sec@x.example:b@corp.example",
                Entry::notice("sec@x.example", "b@corp.example"),
            ),
            ("failure-queue", Entry::Parked),
        ] {
            assert_eq!(Entry::parse(stored), entry);
            assert_eq!(entry.to_string(), stored);
        }
    }

    #[test]
    fn only_an_email_is_accepted() {
        let mut item = Item {
            key: "k".into(),
            status: Some(Status::Sent),
            ..Item::default()
        };
        item.delivered.insert(Entry::destination("secops"));
        item.delivered.insert(Entry::Parked);
        item.delivered
            .insert(Entry::notice("f@x.example", "r@y.example"));
        assert!(!item.accepted());
        item.delivered.insert(Entry::email("owner@corp.example"));
        assert!(item.accepted());
        assert_eq!(item.emails().collect::<Vec<_>>(), ["owner@corp.example"]);
        assert_eq!(Item::from_item(&item.to_item()), item);
    }

    #[test]
    fn parked_records_read_back_as_written() {
        let change = json!({"source": "sgwatch", "reason": "r", "facts": {"messageId": "m"},
            "subject": "s", "rejected": [{"recipient": "b@x.example", "reason": "no"}],
            "delivered": ["a@x.example"], "event": {"Records": []}});
        let record = ParkedRecord::from_value(&change).expect("a change record");
        assert_eq!(serde_json::to_value(&record).unwrap(), change);
        assert_eq!(record.event(), Some(&json!({"Records": []})));
        let unreadable = json!({"source": "sgwatch", "reason": "r",
            "facts": {"messageId": "m"}, "body": "{not json"});
        let record = ParkedRecord::from_value(&unreadable).expect("an unreadable record");
        assert_eq!(serde_json::to_value(&record).unwrap(), unreadable);
        assert_eq!(record.event(), None);
        assert_eq!(ParkedRecord::from_value(&json!({"source": "other"})), None);
    }
}
