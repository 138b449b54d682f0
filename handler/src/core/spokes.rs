//! The hub's view of its spokes: the hourly heartbeat each spoke puts on the hub's bus, where the
//! hub keeps what it last saw of each account × region, and which of them are blind.
//!
//! The coverage map lives in the stack's table in [`SHARDS`] items, `spokes/00` … `spokes/15`,
//! an account's regions always in the same one. Each heartbeat and each change sets one
//! attribute, `beat:ACCOUNT:REGION` or `change:ACCOUNT:REGION` (seconds since the epoch), by one
//! `UpdateItem`; `sgwatch hub status` reads the whole map with one `BatchGetItem`. Sixteen items
//! hold 500 accounts × 17 regions well under DynamoDB's 400 KB an item.
//!
//! On each heartbeat the hub also looks at what the spoke's region lets it see (its recorder and
//! its trails, through the account's reader role) and keeps that as `sight:ACCOUNT:REGION`, a
//! string of [`Sight`] codes (`ok` when nothing is amiss).

use serde_json::Value;

/// The `source` of a heartbeat (a custom source: EventBridge refuses `aws.` ones from callers).
pub const HEARTBEAT_SOURCE: &str = "sgwatch.spoke";
/// The `detail-type` of a heartbeat.
pub const HEARTBEAT_DETAIL_TYPE: &str = "sgwatch spoke heartbeat";
/// The `source` of the hub's own hourly look at its coverage map (a scheduled rule's input).
pub const COVERAGE_CHECK_SOURCE: &str = "sgwatch.hub";
/// The `detail-type` of that look.
pub const COVERAGE_CHECK_DETAIL_TYPE: &str = "sgwatch coverage check";
/// A spoke beats once an hour; after three hours without one it is blind.
pub const SILENT_AFTER_SECS: u64 = 3 * 3600;
/// How many items the coverage map is spread over.
pub const SHARDS: u32 = 16;

/// A spoke's heartbeat, as the hub received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The account EventBridge says put the event (the spoke's).
    pub account: String,
    /// The region the spoke runs in (from its detail: the event itself is the hub's region).
    pub region: String,
    /// The spoke's stack, for the logs.
    pub stack: String,
    /// When it was put (the event's `time`, RFC 3339); the hub never takes it as later than
    /// when the heartbeat arrived.
    pub sent: Option<String>,
}

/// Why an event is no heartbeat the hub takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeartbeatError {
    #[error("the heartbeat has no {0}")]
    Missing(&'static str),
    #[error("the heartbeat names account {claimed} but was put by account {put_by}")]
    ForeignAccount { claimed: String, put_by: String },
    #[error("the heartbeat's {field} is not one AWS would write: {value:?}")]
    Invalid { field: &'static str, value: String },
}

/// Whether `event` is an EventBridge event from a spoke's heartbeat schedule.
pub fn is_heartbeat(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some(HEARTBEAT_SOURCE)
}

/// Whether `event` is the hub's hourly look at its coverage map.
pub fn is_coverage_check(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some(COVERAGE_CHECK_SOURCE)
        && event.get("detail-type").and_then(Value::as_str) == Some(COVERAGE_CHECK_DETAIL_TYPE)
}

/// Reads a heartbeat. The account must be the one that put the event: a member account cannot
/// beat for another.
pub fn parse_heartbeat(event: &Value) -> Result<Heartbeat, HeartbeatError> {
    let text = |v: Option<&Value>, what: &'static str| {
        v.and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(HeartbeatError::Missing(what))
    };
    if event.get("detail-type").and_then(Value::as_str) != Some(HEARTBEAT_DETAIL_TYPE) {
        return Err(HeartbeatError::Missing("heartbeat detail-type"));
    }
    let put_by = text(event.get("account"), "account")?;
    let detail = event.get("detail");
    let claimed = text(detail.and_then(|d| d.get("account")), "detail.account")?;
    let region = text(detail.and_then(|d| d.get("region")), "detail.region")?;
    let stack = text(detail.and_then(|d| d.get("stack")), "detail.stack").unwrap_or_default();
    if !is_account(&put_by) {
        return Err(HeartbeatError::Invalid {
            field: "account",
            value: put_by,
        });
    }
    if claimed != put_by {
        return Err(HeartbeatError::ForeignAccount { claimed, put_by });
    }
    if !is_region(&region) {
        return Err(HeartbeatError::Invalid {
            field: "region",
            value: region,
        });
    }
    Ok(Heartbeat {
        account: put_by,
        region,
        stack,
        sent: event.get("time").and_then(Value::as_str).map(str::to_owned),
    })
}

/// An organization's id: `o-` and 10 to 32 lower-case letters or digits.
pub fn is_organization_id(s: &str) -> bool {
    s.strip_prefix("o-").is_some_and(|rest| {
        (10..=32).contains(&rest.len())
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// Twelve digits.
pub fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A region's shape: lower-case letters, digits and dashes, like `eu-west-1` or `us-gov-west-1`.
pub fn is_region(s: &str) -> bool {
    (4..=25).contains(&s.len())
        && s.contains('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The coverage item holding `account`'s regions (FNV-1a of the account, so every process
/// agrees).
pub fn shard_key(account: &str) -> String {
    let hash = account.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("spokes/{:02}", hash % SHARDS)
}

/// Every coverage item's key.
pub fn shard_keys() -> Vec<String> {
    (0..SHARDS).map(|n| format!("spokes/{n:02}")).collect()
}

/// What an attribute of a coverage item records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Heartbeat,
    Change,
    /// What the region lets the hub see (a string of [`Sight`] codes, not a time).
    Sight,
}

impl Mark {
    fn prefix(self) -> &'static str {
        match self {
            Mark::Heartbeat => "beat",
            Mark::Change => "change",
            Mark::Sight => "sight",
        }
    }
}

/// The attribute that records `mark` for an account × region.
pub fn attribute(mark: Mark, account: &str, region: &str) -> String {
    format!("{}:{account}:{region}", mark.prefix())
}

/// Reads an attribute name back: what it records, for which account and region.
pub fn parse_attribute(name: &str) -> Option<(Mark, &str, &str)> {
    let mut parts = name.splitn(3, ':');
    let mark = match parts.next()? {
        "beat" => Mark::Heartbeat,
        "change" => Mark::Change,
        "sight" => Mark::Sight,
        _ => return None,
    };
    let account = parts.next().filter(|a| is_account(a))?;
    let region = parts.next().filter(|r| is_region(r))?;
    Some((mark, account, region))
}

/// What the hub last saw of one account × region (seconds since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    pub last_heartbeat: Option<u64>,
    pub last_change: Option<u64>,
    /// What the region let the hub see at its last heartbeat; `None` until the hub has looked.
    pub sight: Option<Vec<Sight>>,
}

/// What the hub has seen of every account × region.
pub type Marks = std::collections::BTreeMap<(String, String), Seen>;

/// Adds one attribute of a coverage item to `marks`; other attributes are left alone.
pub fn add_mark(marks: &mut Marks, attribute_name: &str, secs: u64) {
    let Some((mark, account, region)) = parse_attribute(attribute_name) else {
        return;
    };
    let seen = marks
        .entry((account.to_owned(), region.to_owned()))
        .or_default();
    match mark {
        Mark::Heartbeat => seen.last_heartbeat = Some(secs),
        Mark::Change => seen.last_change = Some(secs),
        Mark::Sight => {}
    }
}

/// Adds a `sight:` attribute of a coverage item (its string value) to `marks`.
pub fn add_sight(marks: &mut Marks, attribute_name: &str, codes: &str) {
    let Some((Mark::Sight, account, region)) = parse_attribute(attribute_name) else {
        return;
    };
    marks
        .entry((account.to_owned(), region.to_owned()))
        .or_default()
        .sight = Some(Sight::parse_codes(codes));
}

/// What keeps a spoke's region from showing the hub its changes, as the hub saw on a heartbeat,
/// in the order `hub status` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sight {
    /// The region has no configuration recorder: Config records no change.
    NoRecorder,
    /// The recorder leaves out `AWS::EC2::SecurityGroup`.
    GroupsNotRecorded,
    /// The recorder is stopped.
    RecorderOff,
    /// Security groups are recorded once a day, not continuously: a change reaches the hub up to
    /// a day late.
    NotContinuous,
    /// No logging trail covers the region with write management events: no security-group call
    /// reaches the hub, so no early warning and no actor within seconds.
    NoTrail,
    /// The reader role could not read the region (the hub's log says why).
    Unreadable,
}

impl Sight {
    /// The code kept in the coverage map.
    pub fn code(self) -> &'static str {
        match self {
            Sight::NoRecorder => "no-recorder",
            Sight::RecorderOff => "recorder-off",
            Sight::GroupsNotRecorded => "groups-not-recorded",
            Sight::NotContinuous => "not-continuous",
            Sight::NoTrail => "no-trail",
            Sight::Unreadable => "unreadable",
        }
    }

    /// The codes of `sight`, as kept: `ok` when it is empty.
    pub fn codes(sight: &[Sight]) -> String {
        if sight.is_empty() {
            return "ok".to_owned();
        }
        sight.iter().map(|s| s.code()).collect::<Vec<_>>().join(" ")
    }

    /// Reads kept codes back; an unknown code is left out (a newer hub may know more).
    pub fn parse_codes(codes: &str) -> Vec<Sight> {
        let all = [
            Sight::NoRecorder,
            Sight::GroupsNotRecorded,
            Sight::RecorderOff,
            Sight::NotContinuous,
            Sight::NoTrail,
            Sight::Unreadable,
        ];
        let mut out: Vec<Sight> = codes
            .split_whitespace()
            .filter_map(|c| all.iter().copied().find(|s| s.code() == c))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

impl std::fmt::Display for Sight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sight::NoRecorder => "no configuration recorder",
            Sight::RecorderOff => "recorder off",
            Sight::GroupsNotRecorded => "the recorder leaves out security groups",
            Sight::NotContinuous => "security groups recorded daily, not continuously",
            Sight::NoTrail => "no logging trail for the actor feed",
            Sight::Unreadable => "the reader role cannot read it",
        })
    }
}

/// Why an account × region is blind, in the order `hub status` names them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Blind {
    /// Heartbeats stopped.
    Silent { hours: u64 },
    /// Changes came, but never a heartbeat: the spoke's schedule is missing or cannot put.
    NoHeartbeat,
    /// The account is in the organization (or the list) but no spoke has ever beaten there.
    NoSpoke,
    /// The spoke beats, but its region hides changes from the hub (each reason, in order).
    Hidden(Vec<Sight>),
}

impl std::fmt::Display for Blind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blind::Silent { hours } => write!(f, "no heartbeat for {hours} h"),
            Blind::NoHeartbeat => f.write_str("changes but never a heartbeat"),
            Blind::NoSpoke => f.write_str("no spoke"),
            Blind::Hidden(sight) => {
                let reasons: Vec<String> = sight.iter().map(Sight::to_string).collect();
                f.write_str(&reasons.join("; "))
            }
        }
    }
}

/// Whether what was seen of an account × region makes it blind at `now`.
pub fn blind(seen: Option<&Seen>, now: u64) -> Option<Blind> {
    let Some(seen) = seen else {
        return Some(Blind::NoSpoke);
    };
    match seen.last_heartbeat {
        None => Some(Blind::NoHeartbeat),
        Some(beat) if now.saturating_sub(beat) > SILENT_AFTER_SECS => Some(Blind::Silent {
            hours: now.saturating_sub(beat) / 3600,
        }),
        Some(_) => match seen.sight.as_deref() {
            Some(sight) if !sight.is_empty() => Some(Blind::Hidden(sight.to_vec())),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn beat(put_by: &str, claimed: &str, region: &str) -> Value {
        json!({
            "version": "0", "id": "e1", "detail-type": HEARTBEAT_DETAIL_TYPE,
            "source": HEARTBEAT_SOURCE, "account": put_by, "region": "us-east-1",
            "time": "2026-12-05T10:00:00Z", "resources": [],
            "detail": {"account": claimed, "region": region, "stack": "sgwatch-spoke"},
        })
    }

    #[test]
    fn a_heartbeat_names_the_account_that_put_it_and_the_spokes_region() {
        let e = beat("111122223333", "111122223333", "eu-west-1");
        assert!(is_heartbeat(&e));
        assert_eq!(
            parse_heartbeat(&e),
            Ok(Heartbeat {
                account: "111122223333".into(),
                region: "eu-west-1".into(),
                stack: "sgwatch-spoke".into(),
                sent: Some("2026-12-05T10:00:00Z".into()),
            })
        );
    }

    #[test]
    fn an_account_cannot_beat_for_another_or_for_a_made_up_region() {
        assert_eq!(
            parse_heartbeat(&beat("111122223333", "444455556666", "eu-west-1")),
            Err(HeartbeatError::ForeignAccount {
                claimed: "444455556666".into(),
                put_by: "111122223333".into(),
            })
        );
        for region in ["", "EU-WEST-1", "eu west 1", "eu-west-1\n", "x"] {
            assert!(
                matches!(
                    parse_heartbeat(&beat("111122223333", "111122223333", region)),
                    Err(HeartbeatError::Invalid {
                        field: "region",
                        ..
                    })
                ),
                "{region:?}"
            );
        }
        let mut other = beat("111122223333", "111122223333", "eu-west-1");
        other["detail-type"] = json!("something else");
        assert!(parse_heartbeat(&other).is_err());
    }

    #[test]
    fn an_accounts_regions_share_one_item_and_attributes_read_back() {
        let key = shard_key("111122223333");
        assert!(shard_keys().contains(&key));
        assert_eq!(shard_keys().len(), SHARDS as usize);
        let spread: std::collections::BTreeSet<String> = (0..200u64)
            .map(|n| shard_key(&format!("{:012}", 100_000_000_000 + n * 7919)))
            .collect();
        assert_eq!(spread.len(), SHARDS as usize, "200 accounts use every item");
        let a = attribute(Mark::Heartbeat, "111122223333", "eu-west-1");
        assert_eq!(a, "beat:111122223333:eu-west-1");
        assert_eq!(
            parse_attribute(&a),
            Some((Mark::Heartbeat, "111122223333", "eu-west-1"))
        );
        assert_eq!(
            parse_attribute("change:111122223333:us-east-2"),
            Some((Mark::Change, "111122223333", "us-east-2"))
        );
        assert_eq!(parse_attribute("expires_at"), None);
        assert_eq!(parse_attribute("beat:1:eu-west-1"), None);
    }

    #[test]
    fn a_spoke_is_blind_after_three_hours_without_a_heartbeat_or_when_there_is_none() {
        let now = 1_000_000;
        let seen = |beat: Option<u64>, change: Option<u64>| Seen {
            last_heartbeat: beat,
            last_change: change,
            sight: None,
        };
        assert_eq!(blind(Some(&seen(Some(now - 3600), None)), now), None);
        assert_eq!(blind(Some(&seen(Some(now - 3 * 3600), None)), now), None);
        assert_eq!(
            blind(Some(&seen(Some(now - 3 * 3600 - 1), None)), now),
            Some(Blind::Silent { hours: 3 })
        );
        assert_eq!(
            blind(Some(&seen(None, Some(now - 7200))), now),
            Some(Blind::NoHeartbeat)
        );
        assert_eq!(blind(None, now), Some(Blind::NoSpoke));
        assert_eq!(
            Blind::Silent { hours: 5 }.to_string(),
            "no heartbeat for 5 h"
        );
    }

    #[test]
    fn a_beating_spoke_whose_region_hides_changes_is_blind_for_each_reason_in_order() {
        let now = 1_000_000;
        let mut marks = Marks::new();
        add_mark(&mut marks, "beat:111122223333:eu-west-1", now - 60);
        add_sight(
            &mut marks,
            "sight:111122223333:eu-west-1",
            "no-trail recorder-off something-newer",
        );
        add_mark(&mut marks, "beat:111122223333:us-east-1", now - 60);
        add_sight(&mut marks, "sight:111122223333:us-east-1", "ok");
        let hidden = &marks[&("111122223333".into(), "eu-west-1".into())];
        assert_eq!(
            hidden.sight.as_deref(),
            Some(&[Sight::RecorderOff, Sight::NoTrail][..])
        );
        let blind_there = blind(Some(hidden), now).unwrap();
        assert_eq!(
            blind_there.to_string(),
            "recorder off; no logging trail for the actor feed"
        );
        assert!(Blind::NoSpoke < blind_there, "no spoke is named first");
        assert_eq!(
            blind(
                Some(&marks[&("111122223333".into(), "us-east-1".into())]),
                now
            ),
            None
        );
        // A silent spoke is silent whatever it showed before.
        assert_eq!(
            blind(Some(hidden), now + 4 * 3600),
            Some(Blind::Silent { hours: 4 })
        );
        assert_eq!(
            Sight::codes(&[Sight::NoRecorder, Sight::NotContinuous]),
            "no-recorder not-continuous"
        );
        assert_eq!(Sight::codes(&[]), "ok");
        assert_eq!(
            parse_attribute("sight:111122223333:eu-west-1"),
            Some((Mark::Sight, "111122223333", "eu-west-1"))
        );
    }
}
