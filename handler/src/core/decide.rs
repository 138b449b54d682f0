//! From a configuration item change to a decision: what changed, how dangerous it is, whether to
//! email and whom. Pure: no I/O, so the Lambda and `sgwatch explain` decide byte for byte alike.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::Serialize;
use serde_json::Value;

use crate::core::destination::{parse_channels_tag, Channels};
use crate::core::exposure::Exposure;
use crate::core::message::{
    ChangeType, ChangedProperty, ConfigurationItem, Facts, ItemChange, ItemStatus, StateId,
};
use crate::core::reason::{address_list, Fallback, Instead, Reason, TagChange};
use crate::core::recipients::{parse_owner_tag, Recipients};
use crate::core::remedy::KnownRule;
use crate::core::rules::{diff, Change, Direction, RuleSet};
use crate::core::settings::Policy;
use crate::core::severity::{classify, overall, Severity};
use crate::core::text::one_line;

/// A non-rule property that changed, e.g. the description or a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PropertyChange {
    pub name: String,
    pub previous: Option<String>,
    pub updated: Option<String>,
}

/// The group and the moment, as far as the notification tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub resource_type: String,
    pub resource_id: String,
    pub name: Option<String>,
    pub account: String,
    /// The account's name in the organization, where a hub could read it.
    pub account_name: Option<String>,
    pub region: String,
    /// What the change did: `CREATE`, `UPDATE` or `DELETE`.
    pub change_type: ChangeType,
    pub capture_time: Option<String>,
    /// `configurationStateId`, the identity of this configuration state.
    pub state_id: Option<StateId>,
    /// `configurationItemStatus`, e.g. `OK`, `ResourceDiscovered`, `ResourceDeleted`.
    pub status: Option<ItemStatus>,
}

/// What changed, independent of who is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub subject: Subject,
    /// Most severe first.
    pub changes: Vec<Change>,
    pub properties: Vec<PropertyChange>,
    pub severity: Severity,
    /// Only `Relationships.*` changed (an instance or ENI attached or detached).
    pub relationship_only: bool,
    /// The tags that decide: the current ones, or the last known ones of a deleted group.
    pub tags: BTreeMap<String, String>,
    /// The tags before this change: the current ones with the diff's tag changes undone; none
    /// for a new group; the last known ones for a deleted group.
    pub previous_tags: BTreeMap<String, String>,
    /// A test notification sent by `sgwatch test-event`.
    pub test: bool,
    /// The group's rules with their ids, where they were read (to name the rule a command
    /// removes; see [`crate::core::remedy`]).
    pub known_rules: Vec<KnownRule>,
    /// The owners' Revert and Keep links, one pair per rule added open to the internet, where
    /// the stack signs them (see [`crate::core::link`]).
    pub links: Vec<crate::core::link::Links>,
    /// The rules (as `ingress tcp/3389 from 0.0.0.0/0`) auto-revert removed: the alert gives no
    /// command or link to remove them.
    pub reverted: Vec<String>,
    /// What the group is attached to: from EC2 where it was read, else AWS Config's relationships.
    pub exposure: Option<Exposure>,
}

/// Whether to email, whom, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub analysis: Analysis,
    pub notify: bool,
    /// Why, each finding in the order it was found; [`Decision::reason`] says it in words.
    pub reasons: Vec<Reason>,
    pub recipients: Vec<String>,
    /// The destinations (configured names) the change is posted to besides the email.
    pub destinations: Vec<String>,
    /// What happened to the opt-in or the owners, in plain words for the email, e.g.
    /// "NotifyOnChange was removed: you will not be told of further changes to this group".
    pub notes: Vec<String>,
}

impl Decision {
    /// Why, in words: each reason's wording, joined by "; ".
    pub fn reason(&self) -> String {
        crate::core::reason::sentence(&self.reasons)
    }
}

/// A notification sgwatch cannot make sense of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the changes of {resource_id}: {detail}")]
pub struct AnalysisError {
    pub resource_id: String,
    pub detail: String,
}

/// Works out what changed in one configuration item change.
pub fn analyze(change: &ItemChange) -> Result<Analysis, AnalysisError> {
    let item = &change.configuration_item;
    let error = |detail: String| AnalysisError {
        resource_id: item.resource_id.clone(),
        detail,
    };
    let diff_type = change
        .configuration_item_diff
        .as_ref()
        .and_then(|d| d.change_type.clone());
    let change_type = diff_type.unwrap_or_else(|| inferred_change_type(item));
    let changed = change
        .configuration_item_diff
        .as_ref()
        .map(|d| &d.changed_properties);
    let mut read = read_properties(changed).map_err(error)?;
    // A new group arrives with no changed properties: everything in it was added.
    let nothing_listed = changed.is_none_or(|c| c.is_empty());
    if change_type == ChangeType::Create && nothing_listed {
        if let Some(configuration) = &item.configuration {
            read.updated
                .add_configuration(configuration)
                .map_err(error)?;
        }
    }

    let rule_diff = diff(&read.previous, &read.updated);
    let mut properties = read.properties;
    for d in &rule_diff.descriptions {
        properties.push(PropertyChange {
            name: format!("Rule description ({})", d.rule),
            previous: d.previous.clone(),
            updated: d.rule.description.clone(),
        });
    }
    let changes = rule_diff.changes;
    let relationship_only =
        changes.is_empty() && read.relationships > 0 && read.relationships == properties.len();
    let tags = deciding_tags(item, read.previous_configuration);
    let previous_tags = previous_tags(&change_type, &tags, changed);
    let mut analysis = Analysis {
        subject: Subject {
            resource_type: item.resource_type.clone(),
            resource_id: item.resource_id.clone(),
            name: group_name(item, read.previous_configuration),
            account: item.aws_account_id.clone(),
            account_name: None,
            region: item.aws_region.clone(),
            change_type,
            capture_time: item.configuration_item_capture_time.clone(),
            state_id: item.configuration_state_id.clone(),
            status: item.configuration_item_status.clone(),
        },
        changes,
        properties,
        severity: Severity::Info,
        relationship_only,
        tags,
        previous_tags,
        test: change.test,
        known_rules: Vec::new(),
        links: Vec::new(),
        reverted: Vec::new(),
        exposure: item
            .relationships
            .as_deref()
            .map(crate::core::exposure::from_relationships),
    };
    analysis.rate();
    Ok(analysis)
}

/// The diff's changed properties, read: the rules before and after, the other properties, how
/// many of them are relationships, and the whole previous configuration when the diff has it.
struct ReadProperties<'a> {
    previous: RuleSet,
    updated: RuleSet,
    properties: Vec<PropertyChange>,
    relationships: usize,
    previous_configuration: Option<&'a Value>,
}

/// Reads the diff's changed properties ([`ReadProperties`]).
fn read_properties(
    changed: Option<&BTreeMap<String, ChangedProperty>>,
) -> Result<ReadProperties<'_>, String> {
    let mut read = ReadProperties {
        previous: RuleSet::default(),
        updated: RuleSet::default(),
        properties: Vec::new(),
        relationships: 0,
        previous_configuration: None,
    };
    for (key, prop) in changed.into_iter().flatten() {
        let (before, after) = (&prop.previous_value, &prop.updated_value);
        match PropertyKind::of(key) {
            PropertyKind::WholeConfiguration => {
                read.previous.add_configuration(before)?;
                read.updated.add_configuration(after)?;
                if !before.is_null() {
                    read.previous_configuration = Some(before);
                }
            }
            PropertyKind::Rules(direction) => {
                read.previous.add_value(direction, before)?;
                read.updated.add_value(direction, after)?;
            }
            PropertyKind::Relationship => {
                read.relationships += 1;
                push_property(&mut read.properties, key, before, after);
            }
            PropertyKind::Other(name) => push_property(&mut read.properties, name, before, after),
        }
    }
    Ok(read)
}

/// The tags before this change: none for a new group, the last known ones for a deleted group,
/// else the current ones with the diff's tag changes undone.
fn previous_tags(
    change_type: &ChangeType,
    tags: &BTreeMap<String, String>,
    changed: Option<&BTreeMap<String, ChangedProperty>>,
) -> BTreeMap<String, String> {
    match change_type {
        ChangeType::Create => BTreeMap::new(),
        ChangeType::Delete => tags.clone(),
        _ => {
            let tag_changes: Vec<(&Value, &Value)> = changed
                .into_iter()
                .flatten()
                .filter(|(key, _)| is_tag_key(key))
                .map(|(_, p)| (&p.previous_value, &p.updated_value))
                .collect();
            tags_before(tags, &tag_changes)
        }
    }
}

impl Analysis {
    /// Rates the changes again, most severe first, and the whole change by the worst of them:
    /// after what a prefix list holds was looked up.
    pub fn rate(&mut self) {
        self.changes.sort_by_key(|c| Reverse(classify(c)));
        self.severity = overall(&self.changes);
    }
}

/// The tag `sgwatch verify` marks its throwaway group with. Such a group was made after install,
/// on purpose, to be noticed: its discovery is never the baseline.
pub const VERIFY_TAG: &str = "sgwatch:verify";

/// Decides who, if anyone, is told about an analysed change.
pub fn decide(analysis: Analysis, policy: &Policy) -> Decision {
    let verdict = match gate(&analysis, policy) {
        Some(reason) => Verdict {
            reasons: vec![reason],
            ..Verdict::default()
        },
        None => route(&analysis, policy),
    };
    Decision {
        analysis,
        notify: verdict.notify,
        reasons: verdict.reasons,
        recipients: verdict.recipients,
        destinations: verdict.destinations,
        notes: verdict.notes,
    }
}

/// Why the change is told to no one whatever the tags say, when it is.
fn gate(a: &Analysis, policy: &Policy) -> Option<Reason> {
    if !policy.accounts.serves(&a.subject.account) {
        Some(Reason::NotServed {
            account: a.subject.account.clone(),
            accounts: policy.accounts.to_string(),
        })
    } else if !policy.resource_types.contains(&a.subject.resource_type) {
        Some(Reason::NotWatched {
            resource_type: a.subject.resource_type.clone(),
            watched: policy.resource_types.clone(),
        })
    } else if let Some(reason) = baseline(a, policy) {
        Some(reason)
    } else if a.relationship_only && !policy.notify_on_relationship_changes {
        Some(Reason::RelationshipsOnly)
    } else if a.changes.is_empty()
        && a.properties.is_empty()
        && a.subject.change_type == ChangeType::Update
    {
        Some(Reason::NoChange)
    } else {
        None
    }
}

/// What routing found: whether to tell, why (each reason in the order it was found), whom.
#[derive(Default)]
struct Verdict {
    notify: bool,
    reasons: Vec<Reason>,
    recipients: Vec<String>,
    destinations: Vec<String>,
    notes: Vec<String>,
}

/// Why a discovered group is the baseline, when it is: AWS Config reports every existing group as
/// `ResourceDiscovered` when recording starts, and those are not changes anyone made.
fn baseline(a: &Analysis, policy: &Policy) -> Option<Reason> {
    let until = policy.baseline_until?;
    if a.subject.status != Some(ItemStatus::ResourceDiscovered) || a.tags.contains_key(VERIFY_TAG) {
        return None;
    }
    // Without a readable capture time the item cannot be placed before the baseline: it is news.
    let captured = a.subject.capture_time.as_deref()?;
    let at = DateTime::from_str(captured, Format::DateTimeWithOffset).ok()?;
    (at < until).then(|| Reason::Baseline {
        captured: captured.to_owned(),
        until: until
            .fmt(Format::DateTime)
            .unwrap_or_else(|_| until.secs().to_string()),
    })
}

/// The tag-based routing of a change to a watched resource: the owners after the change, the
/// owners before it when the change silenced them, the fallback recipient where the policy says.
fn route(a: &Analysis, policy: &Policy) -> Verdict {
    let mut v = Verdict::default();
    let opted_in = current_owners(a, policy, &mut v);
    silenced_owners(a, policy, opted_in, &mut v);
    always_notify(a, policy, &mut v);
    v.notify = !v.recipients.is_empty() || !v.destinations.is_empty();
    v
}

/// The owners and channels the group's tags name now, or the fallback when it names no owner.
/// Whether the group is opted in.
fn current_owners(a: &Analysis, policy: &Policy, v: &mut Verdict) -> bool {
    let (notify_tag, owner_tag) = (&policy.notify_tag, &policy.owner_tag);
    let value = match opt_in(&a.tags, notify_tag) {
        Ok(value) => value,
        Err(why) => {
            v.reasons.push(why);
            return false;
        }
    };
    v.reasons.push(Reason::OptedIn {
        tag: notify_tag.clone(),
        value: value.to_owned(),
    });
    current_channels(a, policy, v);
    let owners = owners(&a.tags, owner_tag);
    if owners.valid.is_empty() {
        let invalid = a
            .tags
            .contains_key(owner_tag)
            .then(|| owners.rejected_summary());
        no_owner(owner_tag, invalid, policy, v);
    } else {
        v.reasons.push(Reason::Owners {
            tag: owner_tag.clone(),
            dropped: (!owners.rejected.is_empty()).then(|| owners.rejected_summary()),
        });
        v.recipients.extend(owners.valid);
    }
    true
}

/// The destinations the channels tag names, in addition to the owners or instead of them.
fn current_channels(a: &Analysis, policy: &Policy, v: &mut Verdict) {
    let tag = &policy.channels_tag;
    let Some(c) = channels(&a.tags, policy) else {
        return;
    };
    if !c.known.is_empty() {
        v.reasons.push(Reason::Channels {
            tag: tag.clone(),
            names: c.known.clone(),
        });
        v.destinations.extend(c.known.iter().cloned());
    }
    if !c.rejected.is_empty() {
        v.reasons.push(Reason::ChannelsDropped {
            tag: tag.clone(),
            summary: c.rejected_summary(),
        });
    }
}

/// A group opted in with no valid owner (its owner tag absent, or `invalid`): told through its
/// channels, else the fallback.
fn no_owner(owner_tag: &str, invalid: Option<String>, policy: &Policy, v: &mut Verdict) {
    let instead = if !v.destinations.is_empty() {
        Instead::ChannelsOnly {
            tag: policy.channels_tag.clone(),
        }
    } else {
        match (&policy.fallback_recipient, &policy.fallback_destination) {
            (Some(fallback), None) => {
                v.recipients.push(fallback.clone());
                Instead::FallbackRecipient
            }
            (Some(fallback), Some(to)) => {
                v.recipients.push(fallback.clone());
                v.destinations.push(to.clone());
                Instead::FallbackRecipientAndDestination
            }
            (None, Some(to)) => {
                v.destinations.push(to.clone());
                Instead::FallbackDestination
            }
            (None, None) => Instead::NoOne,
        }
    };
    v.reasons.push(Reason::NoOwner {
        tag: owner_tag.to_owned(),
        invalid,
        instead,
    });
}

/// No silent opt-out: whoever was told before this change hears of the change that stops it.
/// Unchanged tags can neither remove the opt-in nor change the owners.
fn silenced_owners(a: &Analysis, policy: &Policy, opted_in: bool, v: &mut Verdict) {
    let (notify_tag, owner_tag) = (&policy.notify_tag, &policy.owner_tag);
    if a.previous_tags == a.tags {
        return;
    }
    let Ok(before) = opt_in(&a.previous_tags, notify_tag) else {
        return;
    };
    let previous = owners(&a.previous_tags, owner_tag).valid;
    // The channels told before an opt-out hear of it too.
    let previous_channels: Vec<String> = if opted_in {
        Vec::new()
    } else {
        channels(&a.previous_tags, policy)
            .map(|c| c.known)
            .unwrap_or_default()
    };
    let changes = if opted_in {
        owners_changed(a, owner_tag, &previous, v)
    } else {
        opted_out(a, notify_tag, before, v)
    };
    if changes.is_empty() || (previous.is_empty() && previous_channels.is_empty()) {
        return;
    }
    if !opted_in {
        // The opt-out is the rule that decided, not the tag's absence.
        v.reasons.clear();
    }
    v.reasons.push(Reason::Silenced {
        changes,
        previous_owners: previous.clone(),
    });
    if !previous_channels.is_empty() {
        v.reasons.push(Reason::PreviousChannels {
            tag: policy.channels_tag.clone(),
            names: previous_channels.clone(),
        });
    }
    for p in previous {
        if !contains(&v.recipients, &p) {
            v.recipients.push(p);
        }
    }
    for c in previous_channels {
        if !v.destinations.contains(&c) {
            v.destinations.push(c);
        }
    }
}

/// What removing or changing the opt-in tag (its value `before`) did, with a note for the email.
fn opted_out(a: &Analysis, notify_tag: &str, before: &str, v: &mut Verdict) -> Vec<TagChange> {
    let tag = notify_tag.to_owned();
    let before = before.to_owned();
    match a.tags.get(notify_tag) {
        None => {
            v.notes.push(format!(
                "{notify_tag} was removed: you will not be told of further changes to this group"
            ));
            vec![TagChange::OptInRemoved { tag, before }]
        }
        Some(now) => {
            v.notes.push(format!(
                "{notify_tag} was changed from {} to {}: you will not be told of further changes to this group",
                one_line(&before),
                one_line(now)
            ));
            vec![TagChange::OptInChanged {
                tag,
                before,
                now: now.clone(),
            }]
        }
    }
}

/// What changing the owners from `previous` did, with a note for the email; nothing when the
/// owners are the same.
fn owners_changed(
    a: &Analysis,
    owner_tag: &str,
    previous: &[String],
    v: &mut Verdict,
) -> Vec<TagChange> {
    let after = owners(&a.tags, owner_tag).valid;
    if same_addresses(previous, &after) {
        return Vec::new();
    }
    v.notes.push(format!(
        "the owners changed from {} to {} (tag {owner_tag})",
        address_list(previous),
        address_list(&after)
    ));
    vec![TagChange::OwnersChanged {
        tag: owner_tag.to_owned(),
        before: previous.to_vec(),
        after,
    }]
}

/// At or above `always_notify_at`, the fallback recipient and destination are told whatever the
/// tags say.
fn always_notify(a: &Analysis, policy: &Policy, v: &mut Verdict) {
    let Some(level) = policy.always_notify_at.filter(|level| a.severity >= *level) else {
        return;
    };
    let told = |told| Reason::AlwaysNotify {
        severity: a.severity,
        level,
        told,
    };
    if let Some(fallback) = &policy.fallback_recipient {
        if !contains(&v.recipients, fallback) {
            v.recipients.push(fallback.clone());
            v.reasons.push(told(Fallback::Recipient));
        }
    }
    if let Some(to) = &policy.fallback_destination {
        if !v.destinations.contains(to) {
            v.destinations.push(to.clone());
            v.reasons.push(told(Fallback::Destination));
        }
    }
}

/// The destinations a group's channels tag names; `None` when the group has no such tag.
fn channels(tags: &BTreeMap<String, String>, policy: &Policy) -> Option<Channels> {
    tags.get(&policy.channels_tag)
        .map(|value| parse_channels_tag(value, &policy.destinations))
}

/// `Ok(value)` when `tags` opt the group in (tag `notify_tag` is `Yes` or `true`, in any case),
/// else why not. The one opt-in rule: the installer's baseline and `verify` use it too.
pub fn opt_in<'t>(tags: &'t BTreeMap<String, String>, notify_tag: &str) -> Result<&'t str, Reason> {
    match tags.get(notify_tag) {
        Some(v)
            if v.trim().eq_ignore_ascii_case("yes") || v.trim().eq_ignore_ascii_case("true") =>
        {
            Ok(v)
        }
        other => Err(Reason::NotOptedIn {
            tag: notify_tag.to_owned(),
            value: other.cloned(),
        }),
    }
}

fn owners(tags: &BTreeMap<String, String>, owner_tag: &str) -> Recipients {
    parse_owner_tag(tags.get(owner_tag).map(String::as_str).unwrap_or(""))
}

/// Addresses compare without regard to case, as mail systems treat them in practice.
fn contains(list: &[String], address: &str) -> bool {
    list.iter().any(|a| a.eq_ignore_ascii_case(address))
}

fn same_addresses(a: &[String], b: &[String]) -> bool {
    a.iter().all(|x| contains(b, x)) && b.iter().all(|x| contains(a, x))
}

enum PropertyKind<'a> {
    /// `Configuration`: the whole group (created or deleted).
    WholeConfiguration,
    /// `Configuration.IpPermissions[.N]` or `Configuration.IpPermissionsEgress[.N]`.
    Rules(Direction),
    /// `Relationships.N`.
    Relationship,
    /// Anything else, named without the `Configuration.` prefix.
    Other(&'a str),
}

impl<'a> PropertyKind<'a> {
    fn of(key: &'a str) -> PropertyKind<'a> {
        if key == "Configuration" {
            return PropertyKind::WholeConfiguration;
        }
        if key.starts_with("Relationships") {
            return PropertyKind::Relationship;
        }
        let rest = key.strip_prefix("Configuration.").unwrap_or(key);
        let mut parts = rest.split('.');
        let head = parts.next().unwrap_or_default();
        let index_ok = match (parts.next(), parts.next()) {
            (None, _) => true,
            (Some(i), None) => i.parse::<usize>().is_ok(),
            _ => false,
        };
        match head {
            "IpPermissions" if index_ok => PropertyKind::Rules(Direction::Ingress),
            "IpPermissionsEgress" if index_ok => PropertyKind::Rules(Direction::Egress),
            _ => PropertyKind::Other(rest),
        }
    }
}

fn push_property(out: &mut Vec<PropertyChange>, name: &str, previous: &Value, updated: &Value) {
    if previous == updated {
        return;
    }
    let text = |v: &Value| (!v.is_null()).then(|| value_text(v));
    out.push(PropertyChange {
        name: name.to_owned(),
        previous: text(previous),
        updated: text(updated),
    });
}

/// A property value as a person reads it: strings as they are, tags as `key=value`,
/// relationships as `type id`, anything else as compact JSON.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(o) => match (o.get("key"), o.get("value"), o.get("resourceId")) {
            (Some(Value::String(k)), Some(v), _) => format!("{k}={}", value_text(v)),
            (_, _, Some(Value::String(id))) => {
                match o.get("resourceType").and_then(Value::as_str) {
                    Some(t) => format!("{t} {id}"),
                    None => id.clone(),
                }
            }
            _ => value.to_string(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn inferred_change_type(item: &ConfigurationItem) -> ChangeType {
    match &item.configuration_item_status {
        Some(ItemStatus::ResourceDiscovered) => ChangeType::Create,
        _ if item.is_deleted() => ChangeType::Delete,
        _ => ChangeType::Update,
    }
}

fn group_name(item: &ConfigurationItem, previous: Option<&Value>) -> Option<String> {
    let from = |v: Option<&Value>| {
        v.and_then(|c| c.get("groupName"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    item.resource_name
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| from(item.configuration.as_ref()))
        .or_else(|| from(previous))
}

/// The current tags; for a deleted group (whose tags arrive empty), the last known ones.
fn deciding_tags(item: &ConfigurationItem, previous: Option<&Value>) -> BTreeMap<String, String> {
    if !item.tags.is_empty() {
        return item.tags.clone();
    }
    let from_list = |configuration: Option<&Value>| -> BTreeMap<String, String> {
        configuration
            .and_then(|c| c.get("tags"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| {
                let key = t.get("key")?.as_str()?;
                let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
                Some((key.to_owned(), value.to_owned()))
            })
            .collect()
    };
    let current = from_list(item.configuration.as_ref());
    if current.is_empty() {
        from_list(previous)
    } else {
        current
    }
}

/// `Configuration.Tags` or `Configuration.Tags.N`.
fn is_tag_key(key: &str) -> bool {
    key.strip_prefix("Configuration.Tags").is_some_and(|rest| {
        rest.is_empty()
            || rest
                .strip_prefix('.')
                .is_some_and(|i| i.parse::<usize>().is_ok())
    })
}

/// The tags before the change: `current` with the diff's tag changes undone.
///
/// The diff is keyed by array position, but tag keys are unique in a group, so the tags at
/// unchanged positions are `current` less the updated values, and the rest are the previous values.
fn tags_before(
    current: &BTreeMap<String, String>,
    changes: &[(&Value, &Value)],
) -> BTreeMap<String, String> {
    let mut before = current.clone();
    for (_, updated) in changes {
        for (key, _) in tag_pairs(updated) {
            before.remove(&key);
        }
    }
    for (previous, _) in changes {
        before.extend(tag_pairs(previous));
    }
    before
}

/// The `{key, value}` pairs of a tag diff value: one tag, or a whole list.
fn tag_pairs(value: &Value) -> Vec<(String, String)> {
    let one = |t: &Value| {
        let key = t.get("key")?.as_str()?;
        let value = t.get("value").and_then(Value::as_str).unwrap_or_default();
        Some((key.to_owned(), value.to_owned()))
    };
    match value {
        Value::Array(list) => list.iter().filter_map(one).collect(),
        other => one(other).into_iter().collect(),
    }
}

impl Subject {
    /// The account as the email shows it: `Security-Prod (123456789012)` when its name is known.
    pub fn account_label(&self) -> String {
        match self
            .account_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
        {
            Some(name) => format!("{name} ({})", self.account),
            None => self.account.clone(),
        }
    }

    /// What identifies this subject's notification `message_id` in logs and parked records.
    pub fn facts(&self, message_id: &str) -> Facts {
        Facts {
            message_id: message_id.to_owned(),
            resource_type: Some(self.resource_type.clone()),
            resource_id: Some(self.resource_id.clone()),
            account: Some(self.account.clone()),
            region: Some(self.region.clone()),
            state_id: self.state_id.as_ref().map(StateId::to_string),
            capture_time: self.capture_time.clone(),
            change_type: Some(self.change_type.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::{parse_message, ConfigMessage};
    use serde_json::json;

    pub(crate) fn item_change(v: Value) -> ItemChange {
        match parse_message(&v).unwrap() {
            ConfigMessage::ItemChange(c) => c,
            other => panic!("not an item change: {other:?}"),
        }
    }

    fn fixture() -> Value {
        let path = format!(
            "{}/../tests/fixtures/rdp-opened.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// Sets the tags in both places AWS Config reports them.
    fn with_tags(mut v: Value, tags: Value) -> Value {
        let list: Vec<Value> = tags
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        v["configurationItem"]["configuration"]["tags"] = Value::Array(list);
        v["configurationItem"]["tags"] = tags;
        v
    }

    fn decide_json(v: Value, policy: &Policy) -> Decision {
        decide(analyze(&item_change(v)).unwrap(), policy)
    }

    #[test]
    fn rdp_opened_notifies_the_owner_at_critical() {
        let d = decide_json(fixture(), &Policy::default());
        assert!(d.notify);
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert_eq!(
            d.reason(),
            "tag NotifyOnChange=Yes; recipients from tag OwnerDL"
        );
        assert_eq!(d.analysis.severity, Severity::Critical);
        assert_eq!(d.analysis.changes.len(), 1);
        assert_eq!(
            d.analysis.changes[0].rule.to_string(),
            "ingress tcp/3389 from 0.0.0.0/0"
        );
        assert_eq!(d.analysis.subject.name.as_deref(), Some("shared-http"));
        assert_eq!(d.analysis.subject.change_type, ChangeType::Update);
        assert_eq!(
            d.analysis.subject.state_id.as_ref().map(StateId::as_str),
            Some("1763629447512")
        );
    }

    #[test]
    fn opt_in_accepts_yes_and_true_in_any_case_and_nothing_else() {
        for (value, notify) in [
            ("Yes", true),
            ("yes", true),
            ("TRUE", true),
            (" true ", true),
            ("No", false),
            ("1", false),
            ("", false),
        ] {
            let v = with_tags(
                fixture(),
                json!({"NotifyOnChange": value, "OwnerDL": "a@corp.example"}),
            );
            assert_eq!(
                decide_json(v, &Policy::default()).notify,
                notify,
                "{value:?}"
            );
        }
        let d = decide_json(with_tags(fixture(), json!({})), &Policy::default());
        assert!(!d.notify);
        assert_eq!(d.reason(), "tag NotifyOnChange is absent");
    }

    #[test]
    fn tag_keys_are_settings() {
        let policy = Policy {
            notify_tag: "sg:notify".into(),
            owner_tag: "sg:owners".into(),
            ..Policy::default()
        };
        let v = with_tags(
            fixture(),
            json!({"sg:notify": "yes", "sg:owners": "x@corp.example y@corp.example"}),
        );
        let d = decide_json(v, &policy);
        assert!(d.notify);
        assert_eq!(d.recipients, ["x@corp.example", "y@corp.example"]);
        assert!(
            !decide_json(fixture(), &policy).notify,
            "default tags no longer count"
        );
    }

    fn with_destinations() -> Policy {
        Policy {
            destinations: crate::core::destination::parse_destinations(
                "secops=slack:/sgwatch/secops,team-a=teams:/sgwatch/team-a,siem=webhook:/sgwatch/siem:/sgwatch/siem-key",
            )
            .unwrap(),
            ..Policy::default()
        }
    }

    #[test]
    fn the_channels_tag_adds_destinations_and_drops_unknown_names() {
        let v = with_tags(
            fixture(),
            json!({"NotifyOnChange": "Yes", "OwnerDL": "a@corp.example", "NotifyChannels": "Team-A, nope ,siem"}),
        );
        let d = decide_json(v, &with_destinations());
        assert!(d.notify);
        assert_eq!(d.recipients, ["a@corp.example"]);
        assert_eq!(d.destinations, ["team-a", "siem"]);
        assert_eq!(
            d.reason(),
            "tag NotifyOnChange=Yes; destinations from tag NotifyChannels: team-a, siem; \
             tag NotifyChannels: dropped \"nope\": not a configured destination \
             (configured: secops, team-a, siem); recipients from tag OwnerDL"
        );
        // Without the tag, nothing changes: the owners only, the reason as before.
        let d = decide_json(fixture(), &with_destinations());
        assert!(d.destinations.is_empty());
        assert_eq!(
            d.reason(),
            "tag NotifyOnChange=Yes; recipients from tag OwnerDL"
        );
    }

    #[test]
    fn channels_alone_are_enough_and_the_fallback_stays_out() {
        let v = with_tags(
            fixture(),
            json!({"NotifyOnChange": "Yes", "NotifyChannels": "secops"}),
        );
        let policy = Policy {
            fallback_recipient: Some("fallback@corp.example".into()),
            ..with_destinations()
        };
        let d = decide_json(v, &policy);
        assert!(d.notify);
        assert!(d.recipients.is_empty());
        assert_eq!(d.destinations, ["secops"]);
        assert!(
            d.reason()
                .ends_with("tag OwnerDL is absent; told through tag NotifyChannels only"),
            "{}",
            d.reason()
        );
        // A group that is not opted in is not posted about, whatever its channels.
        let v = with_tags(fixture(), json!({"NotifyChannels": "secops"}));
        let d = decide_json(v, &policy);
        assert!(!d.notify);
        assert!(d.destinations.is_empty());
    }

    #[test]
    fn the_fallback_destination_is_told_where_the_fallback_recipient_is() {
        let policy = Policy {
            fallback_destination: Some("secops".into()),
            always_notify_at: Some(Severity::High),
            ..with_destinations()
        };
        // No owner: the fallback destination.
        let v = with_tags(fixture(), json!({"NotifyOnChange": "Yes"}));
        let d = decide_json(v, &policy);
        assert!(d.notify);
        assert!(d.recipients.is_empty());
        assert_eq!(d.destinations, ["secops"]);
        assert!(
            matches!(
                d.reasons.last(),
                Some(Reason::NoOwner {
                    invalid: None,
                    instead: Instead::FallbackDestination,
                    ..
                })
            ),
            "{:?}",
            d.reasons
        );
        // Untagged, critical: always_notify_at reaches the fallback destination.
        let d = decide_json(with_tags(fixture(), json!({})), &policy);
        assert!(d.notify);
        assert_eq!(d.destinations, ["secops"]);
        assert!(
            d.reasons.contains(&Reason::AlwaysNotify {
                severity: Severity::Critical,
                level: Severity::High,
                told: Fallback::Destination,
            }),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn an_opt_out_is_told_to_the_channels_of_before() {
        let path = format!(
            "{}/../tests/fixtures/opt-in-removed.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        // The removed tags held a channel too.
        let props = v["configurationItemDiff"]["changedProperties"]
            .as_object_mut()
            .unwrap();
        props.insert(
            "Configuration.Tags.9".into(),
            json!({"previousValue": {"key": "NotifyChannels", "value": "secops"}, "updatedValue": null, "changeType": "DELETE"}),
        );
        let d = decide_json(v, &with_destinations());
        assert!(d.notify);
        assert_eq!(d.destinations, ["secops"]);
        assert!(
            d.reasons.contains(&Reason::PreviousChannels {
                tag: "NotifyChannels".into(),
                names: vec!["secops".into()],
            }),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn no_valid_owner_goes_to_fallback_or_nowhere() {
        let v = with_tags(
            fixture(),
            json!({"NotifyOnChange": "Yes", "OwnerDL": "nobody\r\nBcc: x@evil.example"}),
        );
        let d = decide_json(v.clone(), &Policy::default());
        assert!(!d.notify);
        assert!(
            matches!(
                d.reasons.last(),
                Some(Reason::NoOwner {
                    invalid: Some(_),
                    instead: Instead::NoOne,
                    ..
                })
            ),
            "{:?}",
            d.reasons
        );
        let policy = Policy {
            fallback_recipient: Some("secops@corp.example".into()),
            ..Policy::default()
        };
        let d = decide_json(v, &policy);
        assert!(d.notify);
        assert_eq!(d.recipients, ["secops@corp.example"]);
        assert!(
            matches!(
                d.reasons.last(),
                Some(Reason::NoOwner {
                    instead: Instead::FallbackRecipient,
                    ..
                })
            ),
            "{:?}",
            d.reasons
        );
        let d = decide_json(
            with_tags(fixture(), json!({"NotifyOnChange": "Yes"})),
            &policy,
        );
        assert!(
            d.reasons.contains(&Reason::NoOwner {
                tag: "OwnerDL".into(),
                invalid: None,
                instead: Instead::FallbackRecipient,
            }),
            "{:?}",
            d.reasons
        );
    }

    #[test]
    fn always_notify_at_reaches_the_fallback_for_untagged_groups() {
        let policy = Policy {
            fallback_recipient: Some("secops@corp.example".into()),
            always_notify_at: Some(Severity::High),
            ..Policy::default()
        };
        let untagged = with_tags(fixture(), json!({}));
        let d = decide_json(untagged.clone(), &policy);
        assert!(d.notify);
        assert_eq!(d.recipients, ["secops@corp.example"]);
        assert!(
            d.reasons.contains(&Reason::AlwaysNotify {
                severity: Severity::Critical,
                level: Severity::High,
                told: Fallback::Recipient,
            }),
            "{:?}",
            d.reasons
        );
        // Tagged groups: owners and the fallback.
        let d = decide_json(fixture(), &policy);
        assert_eq!(
            d.recipients,
            ["platform-team@example.com", "secops@corp.example"]
        );
        // Below the threshold: nothing for untagged groups.
        let policy = Policy {
            always_notify_at: Some(Severity::Critical),
            ..policy
        };
        let mut low = untagged;
        low["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["fromPort"] = json!(80);
        low["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["toPort"] = json!(80);
        assert!(!decide_json(low, &policy).notify);
    }

    #[test]
    fn unwatched_types_are_ignored() {
        let mut v = fixture();
        v["configurationItem"]["resourceType"] = json!("AWS::EC2::Instance");
        let d = decide_json(v.clone(), &Policy::default());
        assert!(!d.notify);
        assert!(matches!(d.reasons[..], [Reason::NotWatched { .. }]));
        let policy = Policy {
            resource_types: vec![
                "AWS::EC2::SecurityGroup".into(),
                "AWS::EC2::Instance".into(),
            ],
            ..Policy::default()
        };
        assert!(decide_json(v, &policy).notify);
    }

    fn relationship_only() -> Value {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Relationships.1": {
                "previousValue": null,
                "updatedValue": {"resourceId": "eni-0abc", "resourceName": null, "resourceType": "AWS::EC2::NetworkInterface", "name": "Is associated with NetworkInterface"},
                "changeType": "CREATE"
            }
        });
        v
    }

    #[test]
    fn relationship_only_changes_notify_only_when_asked() {
        let d = decide_json(relationship_only(), &Policy::default());
        assert!(!d.notify);
        assert_eq!(d.reasons, [Reason::RelationshipsOnly]);
        let policy = Policy {
            notify_on_relationship_changes: true,
            ..Policy::default()
        };
        let d = decide_json(relationship_only(), &policy);
        assert!(d.notify);
        assert_eq!(d.analysis.severity, Severity::Info);
        assert_eq!(
            d.analysis.properties[0].updated.as_deref(),
            Some("AWS::EC2::NetworkInterface eni-0abc")
        );
    }

    #[test]
    fn index_shifts_report_only_the_removed_rule() {
        let r = |port: i64, cidr: &str| json!({"ipProtocol": "tcp", "fromPort": port, "toPort": port, "ipv4Ranges": [{"cidrIp": cidr}], "ipRanges": [cidr]});
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.IpPermissions.0": {"previousValue": r(22, "0.0.0.0/0"), "updatedValue": r(80, "0.0.0.0/0"), "changeType": "UPDATE"},
            "Configuration.IpPermissions.1": {"previousValue": r(80, "0.0.0.0/0"), "updatedValue": r(443, "0.0.0.0/0"), "changeType": "UPDATE"},
            "Configuration.IpPermissions.2": {"previousValue": r(443, "0.0.0.0/0"), "updatedValue": r(5432, "10.0.0.0/8"), "changeType": "UPDATE"},
            "Configuration.IpPermissions.3": {"previousValue": r(5432, "10.0.0.0/8"), "updatedValue": null, "changeType": "DELETE"},
        });
        let d = decide_json(v, &Policy::default());
        assert_eq!(d.analysis.changes.len(), 1);
        assert_eq!(
            d.analysis.changes[0].rule.to_string(),
            "ingress tcp/22 from 0.0.0.0/0"
        );
        assert_eq!(d.analysis.severity, Severity::Low, "removals are low");
    }

    #[test]
    fn non_rule_properties_are_reported_by_name_at_info() {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.Description": {"previousValue": "old", "updatedValue": "new", "changeType": "UPDATE"},
            "Configuration.Tags.2": {"previousValue": null, "updatedValue": {"key": "Env", "value": "prod"}, "changeType": "CREATE"},
        });
        let d = decide_json(v, &Policy::default());
        assert!(d.notify);
        assert_eq!(d.analysis.severity, Severity::Info);
        let names: Vec<(&str, Option<&str>, Option<&str>)> = d
            .analysis
            .properties
            .iter()
            .map(|p| (p.name.as_str(), p.previous.as_deref(), p.updated.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                ("Description", Some("old"), Some("new")),
                ("Tags.2", None, Some("Env=prod"))
            ]
        );
    }

    #[test]
    fn created_group_reports_all_its_rules_as_added() {
        let mut v = fixture();
        v["configurationItem"]["configurationItemStatus"] = json!("ResourceDiscovered");
        v["configurationItemDiff"] = json!({"changedProperties": {}, "changeType": "CREATE"});
        let d = decide_json(v, &Policy::default());
        assert_eq!(d.analysis.subject.change_type, ChangeType::Create);
        let shown: Vec<String> = d
            .analysis
            .changes
            .iter()
            .map(|c| c.rule.to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "ingress tcp/3389 from 0.0.0.0/0",
                "ingress tcp/80 from 0.0.0.0/0",
                "egress all to 0.0.0.0/0"
            ]
        );
        assert_eq!(d.analysis.severity, Severity::Critical);
        assert!(d.notify);
    }

    #[test]
    fn deleted_group_uses_the_tags_of_its_last_state() {
        let mut v = fixture();
        let last = v["configurationItem"]["configuration"].take();
        v["configurationItem"]["configuration"] = Value::Null;
        v["configurationItem"]["tags"] = json!({});
        v["configurationItem"]["configurationItemStatus"] = json!("ResourceDeleted");
        v["configurationItemDiff"] = json!({
            "changedProperties": {"Configuration": {"previousValue": last, "updatedValue": null, "changeType": "DELETE"}},
            "changeType": "DELETE"
        });
        let d = decide_json(v, &Policy::default());
        assert!(d.notify, "{}", d.reason());
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert_eq!(d.analysis.subject.change_type, ChangeType::Delete);
        assert_eq!(d.analysis.changes.len(), 3);
        assert!(d
            .analysis
            .changes
            .iter()
            .all(|c| c.action == crate::core::rules::Action::Removed));
        assert_eq!(d.analysis.severity, Severity::Low);
        assert!(d.analysis.properties.is_empty());
    }

    #[test]
    fn empty_update_is_not_worth_an_email() {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"] = json!({});
        let d = decide_json(v, &Policy::default());
        assert!(!d.notify);
        assert_eq!(d.reasons, [Reason::NoChange]);
    }

    #[test]
    fn mistyped_rule_is_an_analysis_error() {
        let mut v = fixture();
        v["configurationItemDiff"]["changedProperties"]["Configuration.IpPermissions.1"]
            ["updatedValue"]["ipv4Ranges"] = json!("0.0.0.0/0");
        let err = analyze(&item_change(v)).unwrap_err();
        assert!(err.to_string().contains("sg-0123456789abcdef0"), "{err}");
    }

    fn named(name: &str) -> Value {
        let path = format!("{}/../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn stripping_the_tags_still_tells_the_owners_before_it() {
        let d = decide_json(named("opt-in-removed.json"), &Policy::default());
        assert!(d.notify, "{}", d.reason());
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert_eq!(d.analysis.severity, Severity::Critical);
        assert_eq!(
            d.analysis.changes[0].rule.to_string(),
            "ingress tcp/22 from 0.0.0.0/0"
        );
        assert_eq!(
            d.reason(),
            "tag NotifyOnChange=Yes was removed by this change; platform-team@example.com: \
             you were an owner before this change"
        );
        assert_eq!(
            d.notes,
            ["NotifyOnChange was removed: you will not be told of further changes to this group"]
        );
        assert!(d.analysis.tags.is_empty());
        assert_eq!(
            d.analysis.previous_tags,
            BTreeMap::from([
                ("NotifyOnChange".to_owned(), "Yes".to_owned()),
                ("OwnerDL".to_owned(), "platform-team@example.com".to_owned())
            ])
        );
        let names: Vec<&str> = d
            .analysis
            .properties
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["Tags.0", "Tags.1"]);
    }

    #[test]
    fn switching_the_opt_in_to_no_tells_the_owners_once_more() {
        let mut v = named("rdp-opened.json");
        v["configurationItem"]["tags"]["NotifyOnChange"] = json!("No");
        v["configurationItem"]["configuration"]["tags"][0]["value"] = json!("No");
        v["configurationItemDiff"]["changedProperties"]["Configuration.Tags.0"] = json!({
            "previousValue": {"key": "NotifyOnChange", "value": "Yes"},
            "updatedValue": {"key": "NotifyOnChange", "value": "No"},
            "changeType": "UPDATE"
        });
        let d = decide_json(v, &Policy::default());
        assert!(d.notify);
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert!(
            d.reason()
                .starts_with("tag NotifyOnChange changed from Yes to No by this change"),
            "{}",
            d.reason()
        );
        assert!(d.notes[0].contains("you will not be told of further changes"));
    }

    #[test]
    fn replaced_owners_and_the_new_ones_are_both_told() {
        let d = decide_json(named("owners-replaced.json"), &Policy::default());
        assert!(d.notify);
        assert_eq!(
            d.recipients,
            ["dept-b@example.com", "platform-team@example.com"]
        );
        assert_eq!(
            d.notes,
            ["the owners changed from platform-team@example.com to dept-b@example.com (tag OwnerDL)"]
        );
        assert!(
            d.reason()
                .contains("platform-team@example.com: you were an owner before this change"),
            "{}",
            d.reason()
        );
        assert_eq!(d.analysis.severity, Severity::Info);
    }

    #[test]
    fn adding_an_owner_tells_both_without_repeats() {
        let mut v = named("owners-replaced.json");
        let both = "Platform-Team@example.com, dept-b@example.com";
        v["configurationItem"]["tags"]["OwnerDL"] = json!(both);
        v["configurationItem"]["configuration"]["tags"][1]["value"] = json!(both);
        v["configurationItemDiff"]["changedProperties"]["Configuration.Tags.1"]["updatedValue"]
            ["value"] = json!(both);
        let d = decide_json(v, &Policy::default());
        assert_eq!(
            d.recipients,
            ["Platform-Team@example.com", "dept-b@example.com"]
        );
    }

    #[test]
    fn tags_before_undo_position_shifts() {
        // [Env, NotifyOnChange, OwnerDL] → [Env, OwnerDL]: position 1 now holds OwnerDL, 2 is gone.
        let mut v = with_tags(
            named("rdp-opened.json"),
            json!({"Env": "prod", "OwnerDL": "platform-team@example.com"}),
        );
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.Tags.1": {
                "previousValue": {"key": "NotifyOnChange", "value": "yes"},
                "updatedValue": {"key": "OwnerDL", "value": "platform-team@example.com"},
                "changeType": "UPDATE"
            },
            "Configuration.Tags.2": {
                "previousValue": {"key": "OwnerDL", "value": "platform-team@example.com"},
                "updatedValue": null,
                "changeType": "DELETE"
            }
        });
        let d = decide_json(v, &Policy::default());
        assert_eq!(
            d.analysis.previous_tags,
            BTreeMap::from([
                ("Env".to_owned(), "prod".to_owned()),
                ("NotifyOnChange".to_owned(), "yes".to_owned()),
                ("OwnerDL".to_owned(), "platform-team@example.com".to_owned())
            ])
        );
        assert!(d.notify);
        assert_eq!(d.notes.len(), 1, "{:?}", d.notes);
    }

    #[test]
    fn opting_in_or_unrelated_tags_tell_nobody_new() {
        // Opting in: nobody was an owner before.
        let mut v = named("rdp-opened.json");
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.Tags.0": {"previousValue": null, "updatedValue": {"key": "NotifyOnChange", "value": "Yes"}, "changeType": "CREATE"}
        });
        let d = decide_json(v, &Policy::default());
        assert_eq!(d.recipients, ["platform-team@example.com"]);
        assert!(d.notes.is_empty());
        assert_eq!(
            d.reason(),
            "tag NotifyOnChange=Yes; recipients from tag OwnerDL"
        );
        // A group that was never opted in stays quiet when its other tags change.
        let mut v = with_tags(named("rdp-opened.json"), json!({"Env": "test"}));
        v["configurationItemDiff"]["changedProperties"] = json!({
            "Configuration.Tags.0": {"previousValue": {"key": "Env", "value": "prod"}, "updatedValue": {"key": "Env", "value": "test"}, "changeType": "UPDATE"}
        });
        let d = decide_json(v, &Policy::default());
        assert!(!d.notify);
        assert_eq!(d.reason(), "tag NotifyOnChange is absent");
    }

    #[test]
    fn a_new_group_has_no_owners_before_and_a_deleted_one_keeps_its_own() {
        let d = decide_json(named("discovered.json"), &Policy::default());
        assert!(d.analysis.previous_tags.is_empty());
        assert!(d.notes.is_empty());
        assert_eq!(d.recipients, ["platform-team@example.com"]);
    }

    fn at(time: &str) -> Option<DateTime> {
        Some(DateTime::from_str(time, Format::DateTimeWithOffset).unwrap())
    }

    #[test]
    fn groups_discovered_before_the_baseline_are_not_news() {
        let policy = Policy {
            baseline_until: at("2026-11-20T09:30:00Z"),
            ..Policy::default()
        };
        let d = decide_json(named("discovered.json"), &policy);
        assert!(!d.notify);
        assert_eq!(
            d.reason(),
            "baseline: the group existed when recording started \
             (discovered at 2026-11-20T09:14:07.512Z, before SGWATCH_BASELINE_UNTIL=2026-11-20T09:30:00Z)"
        );
        // Discovered after the baseline: a new group, as without the setting.
        let later = Policy {
            baseline_until: at("2026-11-20T09:14:07Z"),
            ..Policy::default()
        };
        let d = decide_json(named("discovered.json"), &later);
        assert!(d.notify);
        assert_eq!(d.analysis.severity, Severity::Critical);
        assert!(decide_json(named("discovered.json"), &Policy::default()).notify);
        // Only discoveries are the baseline: a change before the moment is still news.
        assert!(decide_json(named("rdp-opened.json"), &policy).notify);
        // An unreadable capture time cannot be placed before the baseline.
        let mut v = named("discovered.json");
        v["configurationItem"]["configurationItemCaptureTime"] = json!("soon");
        assert!(decide_json(v, &policy).notify);
        // `sgwatch verify`'s throwaway group is made after install to be noticed: never baseline.
        let mut v = named("discovered.json");
        v["configurationItem"]["tags"]["sgwatch:verify"] = json!("1795867200000");
        assert!(decide_json(v, &policy).notify);
    }

    #[test]
    fn other_accounts_are_skipped() {
        let policy = Policy {
            accounts: crate::core::settings::Accounts::Only(vec!["111122223333".into()]),
            ..Policy::default()
        };
        let d = decide_json(named("rdp-opened.json"), &policy);
        assert!(!d.notify);
        assert_eq!(
            d.reason(),
            "account 123456789012 is not served by this function (SGWATCH_ACCOUNTS=111122223333)"
        );
        let mut v = named("rdp-opened.json");
        v["configurationItem"]["awsAccountId"] = json!("111122223333");
        assert!(decide_json(v, &policy).notify);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Tags a group may carry: the opt-in in several spellings or absent, owners from a small
        /// pool (so before and after often overlap), or absent.
        fn tags() -> impl Strategy<Value = BTreeMap<String, String>> {
            let opt_in = prop_oneof![
                Just(None),
                Just(Some("Yes")),
                Just(Some("true")),
                Just(Some("No")),
                Just(Some("")),
            ];
            let pool = [
                "a@corp.example",
                "b@corp.example",
                "C@corp.example",
                "c@corp.example",
            ];
            let owners = proptest::option::of(proptest::sample::subsequence(pool.to_vec(), 1..=3));
            let other = proptest::option::of("[a-z]{1,6}");
            (opt_in, owners, other).prop_map(|(opt_in, owners, other)| {
                let mut t = BTreeMap::new();
                if let Some(v) = opt_in {
                    t.insert("NotifyOnChange".to_owned(), v.to_owned());
                }
                if let Some(o) = owners {
                    t.insert("OwnerDL".to_owned(), o.join(", "));
                }
                if let Some(v) = other {
                    t.insert("Env".to_owned(), v);
                }
                t
            })
        }

        /// The notification AWS Config sends for `before` → `after`: the tag list diffed by
        /// position, as Config keys it.
        fn notification(
            before: &BTreeMap<String, String>,
            after: &BTreeMap<String, String>,
        ) -> Value {
            let list = |t: &BTreeMap<String, String>| -> Vec<Value> {
                t.iter()
                    .map(|(k, v)| json!({"key": k, "value": v}))
                    .collect()
            };
            let (b, a) = (list(before), list(after));
            let mut v = with_tags(fixture(), json!(after));
            let changed = &mut v["configurationItemDiff"]["changedProperties"];
            for i in 0..b.len().max(a.len()) {
                let (p, u) = (b.get(i).cloned(), a.get(i).cloned());
                if p == u {
                    continue;
                }
                let change_type = match (&p, &u) {
                    (None, _) => "CREATE",
                    (_, None) => "DELETE",
                    _ => "UPDATE",
                };
                changed[format!("Configuration.Tags.{i}")] = json!({
                    "previousValue": p, "updatedValue": u, "changeType": change_type
                });
            }
            v
        }

        fn opted_in(t: &BTreeMap<String, String>) -> bool {
            t.get("NotifyOnChange")
                .is_some_and(|v| v.eq_ignore_ascii_case("yes") || v.eq_ignore_ascii_case("true"))
        }

        fn owner_set(t: &BTreeMap<String, String>) -> Vec<String> {
            parse_owner_tag(t.get("OwnerDL").map(String::as_str).unwrap_or("")).valid
        }

        proptest! {
            #[test]
            fn previous_owners_hear_exactly_when_the_opt_in_or_owners_changed(
                before in tags(),
                after in tags(),
            ) {
                let d = decide_json(notification(&before, &after), &Policy::default());
                prop_assert_eq!(&d.analysis.previous_tags, &before);
                let (was, is) = (opted_in(&before), opted_in(&after));
                let (previous, current) = (owner_set(&before), owner_set(&after));
                let changed = was && (!is || !same_addresses(&previous, &current));
                for p in &previous {
                    let expected = changed || (is && contains(&current, p));
                    prop_assert_eq!(
                        contains(&d.recipients, p), expected,
                        "{} before={:?} after={:?} recipients={:?}", p, before, after, d.recipients
                    );
                }
                if is {
                    for c in &current {
                        prop_assert!(contains(&d.recipients, c));
                    }
                }
                for (i, r) in d.recipients.iter().enumerate() {
                    prop_assert!(!contains(&d.recipients[..i], r), "repeated {}", r);
                }
                let told_before = d.reasons.iter().any(|r| {
                    matches!(r, Reason::Silenced { previous_owners, .. } if !previous_owners.is_empty())
                });
                prop_assert_eq!(told_before, changed && !previous.is_empty());
            }
        }
    }
}
