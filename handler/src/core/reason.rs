//! Why a decision is what it is, one [`Reason`] per finding, in the order the decision found
//! them. Their `Display` is the wording the email, the chat formats, the logs and `sgwatch
//! explain` show, joined by "; " ([`sentence`]). Pure.

use std::fmt;

use crate::core::severity::Severity;
use crate::core::text::one_line;

/// The reason a discovered group is not news.
pub const BASELINE_REASON: &str = "baseline: the group existed when recording started";

/// One finding of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The change is another account's (`SGWATCH_ACCOUNTS`).
    NotServed { account: String, accounts: String },
    /// The resource type is not among the watched ones.
    NotWatched {
        resource_type: String,
        watched: Vec<String>,
    },
    /// A group discovered before the baseline time: it existed when recording started.
    Baseline { captured: String, until: String },
    /// Only attachments changed, and those are not told.
    RelationshipsOnly,
    /// The notification carries no change at all.
    NoChange,
    /// The opt-in tag is absent (`value` none) or holds something other than Yes or true.
    NotOptedIn { tag: String, value: Option<String> },
    /// The opt-in tag's value.
    OptedIn { tag: String, value: String },
    /// The destinations the channels tag names.
    Channels { tag: String, names: Vec<String> },
    /// What the channels tag names that is no configured destination.
    ChannelsDropped { tag: String, summary: String },
    /// The owner tag is absent (`invalid` none) or holds no valid address, and what was done.
    NoOwner {
        tag: String,
        invalid: Option<String>,
        instead: Instead,
    },
    /// The owners the owner tag names, and what in it is no address.
    Owners {
        tag: String,
        dropped: Option<String>,
    },
    /// This change silenced whom the tags told before: what it changed, and the owners before it.
    Silenced {
        changes: Vec<TagChange>,
        previous_owners: Vec<String>,
    },
    /// The destinations the channels tag named before the change that silenced them.
    PreviousChannels { tag: String, names: Vec<String> },
    /// At or above `always_notify_at`: the fallback recipient or destination is told.
    AlwaysNotify {
        severity: Severity,
        level: Severity,
        told: Fallback,
    },
}

/// Who is told of a change to a group with no valid owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instead {
    /// The destinations of its channels tag (`tag`), and no one else.
    ChannelsOnly {
        tag: String,
    },
    FallbackRecipient,
    FallbackRecipientAndDestination,
    FallbackDestination,
    /// No one: there is no fallback.
    NoOne,
}

/// The fallback told at or above `always_notify_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Recipient,
    Destination,
}

/// A tag change that stops whom the tags told before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    OptInRemoved {
        tag: String,
        before: String,
    },
    OptInChanged {
        tag: String,
        before: String,
        now: String,
    },
    OwnersChanged {
        tag: String,
        before: Vec<String>,
        after: Vec<String>,
    },
}

/// The reasons as one sentence: each one's wording, joined by "; ".
pub fn sentence(reasons: &[Reason]) -> String {
    reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Addresses as a list, `(none)` when there is none.
pub fn address_list(list: &[String]) -> String {
    if list.is_empty() {
        "(none)".to_owned()
    } else {
        list.join(", ")
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NotServed { account, accounts } => write!(
                f,
                "account {} is not served by this function (SGWATCH_ACCOUNTS={accounts})",
                one_line(account)
            ),
            Reason::NotWatched {
                resource_type,
                watched,
            } => write!(
                f,
                "resource type {resource_type} is not watched (watched: {})",
                watched.join(", ")
            ),
            Reason::Baseline { captured, until } => write!(
                f,
                "{BASELINE_REASON} (discovered at {}, before SGWATCH_BASELINE_UNTIL={until})",
                one_line(captured)
            ),
            Reason::RelationshipsOnly => f.write_str(
                "only relationships changed (an instance or network interface attached or \
                 detached) and notify_on_relationship_changes is off",
            ),
            Reason::NoChange => f.write_str("the notification carries no change"),
            Reason::NotOptedIn { tag, value: None } => write!(f, "tag {tag} is absent"),
            Reason::NotOptedIn {
                tag,
                value: Some(v),
            } => write!(f, "tag {tag}={} is not Yes or true", one_line(v)),
            Reason::OptedIn { tag, value } => write!(f, "tag {tag}={}", one_line(value)),
            Reason::Channels { tag, names } => {
                write!(f, "destinations from tag {tag}: {}", names.join(", "))
            }
            Reason::ChannelsDropped { tag, summary } => write!(f, "tag {tag}: dropped {summary}"),
            Reason::NoOwner {
                tag,
                invalid,
                instead,
            } => no_owner(f, tag, invalid.as_deref(), instead),
            Reason::Owners { tag, dropped } => {
                write!(f, "recipients from tag {tag}")?;
                match dropped {
                    Some(summary) => write!(f, "; dropped {summary}"),
                    None => Ok(()),
                }
            }
            Reason::Silenced {
                changes,
                previous_owners,
            } => silenced(f, changes, previous_owners),
            Reason::PreviousChannels { tag, names } => write!(
                f,
                "destinations from tag {tag} before this change: {}",
                names.join(", ")
            ),
            Reason::AlwaysNotify {
                severity,
                level,
                told,
            } => write!(
                f,
                "severity {severity} is at or above always_notify_at ({}): the fallback {} is told",
                level.as_str(),
                match told {
                    Fallback::Recipient => "recipient",
                    Fallback::Destination => "destination",
                }
            ),
        }
    }
}

fn no_owner(
    f: &mut fmt::Formatter<'_>,
    tag: &str,
    invalid: Option<&str>,
    instead: &Instead,
) -> fmt::Result {
    match invalid {
        Some(summary) => write!(f, "tag {tag} has no valid address ({summary})")?,
        None => write!(f, "tag {tag} is absent")?,
    }
    match instead {
        Instead::ChannelsOnly { tag } => write!(f, "; told through tag {tag} only"),
        Instead::FallbackRecipient => f.write_str("; sent to the fallback recipient"),
        Instead::FallbackRecipientAndDestination => {
            f.write_str("; sent to the fallback recipient and destination")
        }
        Instead::FallbackDestination => f.write_str("; posted to the fallback destination"),
        Instead::NoOne => f.write_str(" and no fallback recipient is set"),
    }
}

fn silenced(
    f: &mut fmt::Formatter<'_>,
    changes: &[TagChange],
    previous_owners: &[String],
) -> fmt::Result {
    let what: Vec<String> = changes.iter().map(ToString::to_string).collect();
    write!(f, "{} by this change", what.join("; "))?;
    if !previous_owners.is_empty() {
        write!(
            f,
            "; {}: you were an owner before this change",
            address_list(previous_owners)
        )?;
    }
    Ok(())
}

impl fmt::Display for TagChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagChange::OptInRemoved { tag, before } => {
                write!(f, "tag {tag}={} was removed", one_line(before))
            }
            TagChange::OptInChanged { tag, before, now } => write!(
                f,
                "tag {tag} changed from {} to {}",
                one_line(before),
                one_line(now)
            ),
            TagChange::OwnersChanged { tag, before, after } => write!(
                f,
                "tag {tag} changed from {} to {}",
                address_list(before),
                address_list(after)
            ),
        }
    }
}
