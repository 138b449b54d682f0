//! Quiet by design: where a change that notifies goes (now, to the daily digest, or held through
//! its group's quiet period) and why. Pure: the time, the actor and the settings are given.
//!
//! In order, the first that applies (after `sgwatch verify`'s own group, never held):
//! 1. A change to the tags that decide (the opt-in, the owners, `sgwatch:quiet-until`) goes now:
//!    nobody may quietly mute someone else's group.
//! 2. CRITICAL goes now, always.
//! 3. A group tagged `sgwatch:quiet-until=<RFC 3339 time>` holds the rest until then, at most
//!    [`MAX_QUIET_DAYS`] ahead (a later time is refused, and the email says so); they go out in
//!    the first digest after it.
//! 4. A change made by a trusted principal ([`crate::core::trust`]) goes to the digest unless it
//!    is HIGH or CRITICAL.
//! 5. A change at or below the digest level (`SGWATCH_DIGEST`: `low`, `info`) goes to the digest.
//! 6. With coalescing on (`SGWATCH_COALESCE_SECONDS`), anything else joins its group's window:
//!    one email for the changes made within it, when it ends.
//! 7. Anything else goes now.

use std::collections::BTreeMap;
use std::fmt;

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;
use serde::Serialize;

use crate::core::link::rfc3339;
use crate::core::severity::Severity;
use crate::core::trust::{trusted_by, Pattern};
use crate::core::who::ActorLookup;

/// The tag that holds a group's non-critical emails until a time.
pub const QUIET_TAG: &str = "sgwatch:quiet-until";
/// The furthest ahead a quiet period may reach.
pub const MAX_QUIET_DAYS: u64 = 30;

/// Where a change goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Emailed in this invocation.
    Now,
    /// Into the recipients' next daily digest.
    Digest,
    /// Held through the group's quiet period: into the first digest after it ends.
    Held,
    /// With the group's other changes in its coalescing window: one email when it ends.
    Coalesce,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Route::Now => "now",
            Route::Digest => "digest",
            Route::Held => "held",
            Route::Coalesce => "coalesce",
        })
    }
}

/// The route of one change, why, and what its email (or digest line) says of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routed {
    pub route: Route,
    pub why: String,
    /// Epoch seconds before which a held change is not sent (the end of the quiet period); 0
    /// for the next digest.
    #[serde(skip_serializing_if = "is_zero")]
    pub not_before: u64,
    /// What the email says: who is trusted, the quiet period and whether it stands.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Whether the rate limit may hold it back (never CRITICAL, `sgwatch verify`'s group, or a
    /// change to the tags that decide).
    #[serde(skip)]
    pub limited: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What routing reads of a change.
pub struct Change<'a> {
    pub severity: Severity,
    /// The group's tags now, and before the change (none for a new group).
    pub tags: &'a BTreeMap<String, String>,
    pub tags_before: &'a BTreeMap<String, String>,
    /// The tags that decide who is told (the opt-in and the owners'), by key.
    pub deciding_tags: &'a [&'a str],
    pub actor: &'a ActorLookup,
}

/// The noise settings (`SGWATCH_DIGEST` and `SGWATCH_TRUSTED_PRINCIPALS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Quiet {
    /// Changes at or below this severity go to the daily digest; `None` when it is off.
    pub digest: Option<Severity>,
    /// Seconds a group's changes are gathered into one email (`SGWATCH_COALESCE_SECONDS`); 0
    /// when each goes alone.
    pub coalesce: u64,
    /// Most emails about one group in a clock hour (`SGWATCH_MAX_PER_GROUP_HOUR`); 0 for no
    /// limit.
    pub max_per_group_hour: u64,
}

/// A quiet period as the tag states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Period {
    /// No tag.
    None,
    /// Holds until then (epoch seconds), which is ahead.
    Until(u64),
    /// Over: the time has passed.
    Over(u64),
    /// Refused: further ahead than [`MAX_QUIET_DAYS`].
    TooFar(u64),
    /// Refused: not an RFC 3339 time.
    Unreadable,
}

/// The quiet period of a group's tags at `now` (epoch seconds).
pub fn period(tags: &BTreeMap<String, String>, now: u64) -> Period {
    let Some(value) = tag(tags, QUIET_TAG) else {
        return Period::None;
    };
    let Some(until) = DateTime::from_str(value.trim(), Format::DateTimeWithOffset)
        .ok()
        .and_then(|t| u64::try_from(t.secs()).ok())
    else {
        return Period::Unreadable;
    };
    if until <= now {
        Period::Over(until)
    } else if until - now > MAX_QUIET_DAYS * 24 * 3600 {
        Period::TooFar(until)
    } else {
        Period::Until(until)
    }
}

/// A tag's value by key, the key compared without case as the opt-in's is.
fn tag<'t>(tags: &'t BTreeMap<String, String>, key: &str) -> Option<&'t str> {
    tags.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// What the email says of the quiet period, when there is one to speak of.
fn period_note(p: &Period) -> Option<String> {
    match p {
        Period::None | Period::Over(_) => None,
        Period::Until(t) => Some(format!(
            "This group is quiet until {} ({QUIET_TAG}): changes below CRITICAL are held until then and sent as a digest.",
            rfc3339(*t)
        )),
        Period::TooFar(t) => Some(format!(
            "{QUIET_TAG} asks for quiet until {}, more than {MAX_QUIET_DAYS} days ahead: refused, so every change is told as usual.",
            rfc3339(*t)
        )),
        Period::Unreadable => Some(format!(
            "{QUIET_TAG} is not an RFC 3339 time (such as 2026-12-24T18:00:00Z): ignored, so every change is told as usual."
        )),
    }
}

/// The tags that decide who is told and when (the quiet tag among them) that `change` changes.
fn deciding_tags_changed<'a>(change: &Change<'a>) -> Vec<&'a str> {
    [QUIET_TAG]
        .iter()
        .chain(change.deciding_tags)
        .copied()
        .filter(|k| tag(change.tags_before, k) != tag(change.tags, k))
        .collect()
}

/// Where `change` goes at `now` (epoch seconds), and why.
pub fn route(q: &Quiet, trusted: &[Pattern], change: &Change<'_>, now: u64) -> Routed {
    let period = period(change.tags, now);
    let mut notes: Vec<String> = period_note(&period).into_iter().collect();
    let trusted_by = trusted_by(trusted, change.actor);
    if let Some(p) = trusted_by {
        notes.push(format!("Made by a trusted principal (pattern {p})."));
    }
    let now_because = |why: String, notes: Vec<String>| Routed {
        route: Route::Now,
        why,
        not_before: 0,
        notes,
        limited: false,
    };
    let changed = deciding_tags_changed(change);
    if change.tags.contains_key(crate::core::decide::VERIFY_TAG) {
        return now_because(
            "sgwatch verify times the chain with this group: its changes are never held".to_owned(),
            notes,
        );
    }
    if !changed.is_empty() {
        return now_because(
            format!(
                "it changes {}, which decides who is told and when",
                changed.join(", ")
            ),
            notes,
        );
    }
    if change.severity == Severity::Critical {
        return now_because("CRITICAL is never delayed".to_owned(), notes);
    }
    if let Period::Until(until) = period {
        return Routed {
            route: Route::Held,
            why: format!("the group is quiet until {} ({QUIET_TAG})", rfc3339(until)),
            not_before: until,
            notes,
            limited: false,
        };
    }
    let why = trusted_by
        .filter(|_| change.severity < Severity::High)
        .map(|p| format!("made by a trusted principal (pattern {p}) and below HIGH"))
        .or_else(|| {
            q.digest
                .filter(|level| change.severity <= *level)
                .map(|level| {
                    format!(
                        "{} is at or below the digest level ({})",
                        change.severity.as_str().to_uppercase(),
                        level.as_str()
                    )
                })
        });
    let (route, why) = match why {
        Some(why) => (Route::Digest, why),
        None if q.coalesce > 0 => (
            Route::Coalesce,
            format!(
                "gathered with the group's other changes within {} s into one email",
                q.coalesce
            ),
        ),
        None => (Route::Now, "no noise control holds it".to_owned()),
    };
    Routed {
        limited: route != Route::Digest,
        route,
        why,
        not_before: 0,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::trust::parse;
    use crate::core::who::Caller;

    const NOW: u64 = 1_796_000_000;
    const HOUR: u64 = 3600;

    fn by(principal: &str) -> ActorLookup {
        ActorLookup::Feed(vec![Caller {
            principal: principal.into(),
            session_issuer: None,
            session_name: None,
            source_ip: None,
            invoked_by: None,
            calls: Vec::new(),
        }])
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    struct Case {
        severity: Severity,
        tags: BTreeMap<String, String>,
        before: BTreeMap<String, String>,
        actor: ActorLookup,
        digest: Option<Severity>,
    }

    impl Case {
        fn new(severity: Severity) -> Case {
            let owners = tags(&[("NotifyOnChange", "Yes"), ("OwnerDL", "a@x.example")]);
            Case {
                severity,
                tags: owners.clone(),
                before: owners,
                actor: by("arn:aws:iam::111122223333:user/dept-b-admin"),
                digest: None,
            }
        }

        fn quiet_until(mut self, t: &str) -> Case {
            self.tags.insert(QUIET_TAG.into(), t.into());
            self.before.insert(QUIET_TAG.into(), t.into());
            self
        }

        fn route(&self) -> Routed {
            let trusted = parse("arn:aws:iam::111122223333:role/deploy-*").unwrap();
            let change = Change {
                severity: self.severity,
                tags: &self.tags,
                tags_before: &self.before,
                deciding_tags: &["NotifyOnChange", "OwnerDL"],
                actor: &self.actor,
            };
            route(
                &Quiet {
                    digest: self.digest,
                    coalesce: 0,
                    max_per_group_hour: 0,
                },
                &trusted,
                &change,
                NOW,
            )
        }
    }

    #[test]
    fn a_trusted_pipeline_goes_to_the_digest_below_high_and_now_from_high() {
        for (severity, expected) in [
            (Severity::Info, Route::Digest),
            (Severity::Low, Route::Digest),
            (Severity::Medium, Route::Digest),
            (Severity::High, Route::Now),
            (Severity::Critical, Route::Now),
        ] {
            let mut c = Case::new(severity);
            c.actor = by("arn:aws:iam::111122223333:role/deploy-prod");
            let r = c.route();
            assert_eq!(r.route, expected, "{severity:?}: {r:?}");
            assert!(
                r.notes
                    .contains(&"Made by a trusted principal (pattern arn:aws:iam::111122223333:role/deploy-*).".to_owned()),
                "{r:?}"
            );
        }
        // Anyone else's change goes now, and an unknown actor is never trusted.
        assert_eq!(Case::new(Severity::Low).route().route, Route::Now);
        let mut c = Case::new(Severity::Low);
        c.actor = ActorLookup::Unknown("no trail".into());
        assert_eq!(c.route().route, Route::Now);
    }

    #[test]
    fn the_digest_level_takes_changes_at_or_below_it() {
        for (level, severity, expected) in [
            (Some(Severity::Low), Severity::Info, Route::Digest),
            (Some(Severity::Low), Severity::Low, Route::Digest),
            (Some(Severity::Low), Severity::Medium, Route::Now),
            (Some(Severity::Info), Severity::Low, Route::Now),
            (Some(Severity::Info), Severity::Info, Route::Digest),
            (None, Severity::Info, Route::Now),
        ] {
            let mut c = Case::new(severity);
            c.digest = level;
            assert_eq!(c.route().route, expected, "{level:?} {severity:?}");
        }
    }

    #[test]
    fn a_quiet_period_holds_all_but_critical_until_it_ends() {
        let r = Case::new(Severity::High)
            .quiet_until("2026-12-01T08:00:00Z")
            .route();
        // 2026-12-01T08:00:00Z is 1_796_112_000: 31 h after NOW.
        assert_eq!(r.route, Route::Held, "{r:?}");
        assert_eq!(r.not_before, 1_796_112_000);
        assert_eq!(
            r.why,
            "the group is quiet until 2026-12-01T08:00:00Z (sgwatch:quiet-until)"
        );
        let r = Case::new(Severity::Critical)
            .quiet_until("2026-12-01T08:00:00Z")
            .route();
        assert_eq!(r.route, Route::Now);
        assert_eq!(r.why, "CRITICAL is never delayed");
        // With an offset, as RFC 3339 allows.
        let r = Case::new(Severity::Low)
            .quiet_until("2026-12-01T09:00:00+01:00")
            .route();
        assert_eq!((r.route, r.not_before), (Route::Held, 1_796_112_000));
        // Over: nothing held, nothing said.
        let r = Case::new(Severity::Low)
            .quiet_until("2026-11-01T00:00:00Z")
            .route();
        assert_eq!(r.route, Route::Now);
        assert!(r.notes.is_empty(), "{r:?}");
    }

    #[test]
    fn a_quiet_period_too_far_ahead_or_unreadable_is_refused_and_told() {
        let r = Case::new(Severity::Low)
            .quiet_until("2027-06-01T00:00:00Z")
            .route();
        assert_eq!(r.route, Route::Now);
        assert_eq!(r.notes, ["sgwatch:quiet-until asks for quiet until 2027-06-01T00:00:00Z, more than 30 days ahead: refused, so every change is told as usual."]);
        // Thirty days ahead is allowed; a second more is not.
        let limit = NOW + MAX_QUIET_DAYS * 24 * HOUR;
        let at = |t: u64| {
            Case::new(Severity::Low)
                .quiet_until(&rfc3339(t))
                .route()
                .route
        };
        assert_eq!(at(limit), Route::Held);
        assert_eq!(at(limit + 1), Route::Now);
        let r = Case::new(Severity::Low).quiet_until("next tuesday").route();
        assert_eq!(r.route, Route::Now);
        assert!(r.notes[0].contains("is not an RFC 3339 time"), "{r:?}");
    }

    #[test]
    fn changing_the_quiet_tag_or_the_owners_is_told_at_once() {
        // Setting quiet: told now, even by a trusted pipeline, even with every small change in
        // the digest.
        let mut c = Case::new(Severity::Info);
        c.tags.insert(QUIET_TAG.into(), rfc3339(NOW + 5 * HOUR));
        c.actor = by("arn:aws:iam::111122223333:role/deploy-prod");
        c.digest = Some(Severity::Low);
        let r = c.route();
        assert_eq!(r.route, Route::Now, "{r:?}");
        assert!(r.why.contains("sgwatch:quiet-until"), "{r:?}");
        assert!(
            r.notes[0].starts_with("This group is quiet until "),
            "{r:?}"
        );
        // Lifting it, too.
        let mut c = Case::new(Severity::Info).quiet_until(&rfc3339(NOW + HOUR));
        c.tags.remove(QUIET_TAG);
        assert_eq!(c.route().route, Route::Now);
        // And the owners, during a quiet period (the key compared without case).
        let mut c = Case::new(Severity::Info).quiet_until(&rfc3339(NOW + HOUR));
        c.tags.insert("OwnerDL".into(), "b@x.example".into());
        let r = c.route();
        assert_eq!(r.route, Route::Now);
        assert!(r.why.contains("OwnerDL"), "{r:?}");
    }
}

#[cfg(test)]
mod coalescing {
    use super::*;

    #[test]
    fn with_coalescing_on_what_nothing_else_holds_joins_the_window_and_critical_does_not() {
        let owners: BTreeMap<String, String> =
            [("NotifyOnChange", "Yes"), ("OwnerDL", "a@x.example")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
        let actor = ActorLookup::Unknown("no trail".into());
        let q = Quiet {
            digest: Some(Severity::Low),
            coalesce: 60,
            max_per_group_hour: 10,
        };
        let at = |severity| {
            let change = Change {
                severity,
                tags: &owners,
                tags_before: &owners,
                deciding_tags: &["NotifyOnChange", "OwnerDL"],
                actor: &actor,
            };
            route(&q, &[], &change, 1_796_000_000)
        };
        assert_eq!(at(Severity::High).route, Route::Coalesce);
        assert_eq!(
            at(Severity::Medium).why,
            "gathered with the group's other changes within 60 s into one email"
        );
        assert_eq!(at(Severity::Low).route, Route::Digest);
        assert_eq!(at(Severity::Critical).route, Route::Now);
        // `sgwatch verify`'s group: timed, so never held.
        let mut marked = owners.clone();
        marked.insert("sgwatch:verify".into(), "1795867200000".into());
        let change = Change {
            severity: Severity::Low,
            tags: &marked,
            tags_before: &marked,
            deciding_tags: &["NotifyOnChange", "OwnerDL"],
            actor: &actor,
        };
        assert_eq!(route(&q, &[], &change, 1_796_000_000).route, Route::Now);
    }
}
