//! Moving a member account × region from its own full stack to the organization's hub, with no
//! change told twice and none missed.
//!
//! While `sgwatch spoke install --replace-stack` runs, both the full stack's function and the hub
//! hear every change of the region: the full stack through its Config topic, the hub through the
//! spoke's rules. Which one tells a change is decided by one marker, the SSM parameter
//! [`PARAMETER`] in that account and region, which both read ([`Marker`]):
//! - absent: no handover; the full stack (if any) and the hub each tell what they hear;
//! - `pending`: the spoke is being installed; the full stack still tells everything, the hub
//!   nothing of that region;
//! - a time T: changes captured (calls made) before T are the full stack's, from T the hub's.
//!
//! The value names its account and region after the state (`2026-12-05T12:00:00Z 111122223333
//! eu-west-1`): a full stack that hears other accounts' changes (from an organization's Config
//! topic) leaves only its own region's to the hub.
//!
//! Both read the same marker, and the installer sets T further ahead than either keeps its reading
//! ([`KEPT_FOR_SECS`]), so both sides decide each change on the same T. A change whose time is
//! unknown is the hub's: the hub is the side that stays.

use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

/// The marker's name, in each member account and region.
pub const PARAMETER: &str = "/sgwatch/handover";

/// The marker's value while the spoke is being installed.
pub const PENDING: &str = "pending";

/// How long a full stack keeps a reading of its marker, and the hub a `pending` one, before
/// reading it again. The installer sets T at least this far ahead (90 s by default), so every
/// reader that can act on T has read it before T comes.
pub const KEPT_FOR_SECS: u64 = 60;

/// How long the hub keeps a reading of a region with no marker or with T set: a spoke's region
/// is read about once an hour, not once a change. A region that had no marker when the hub last
/// read it must have had a spoke then, so this delays a handover only in a region whose spoke was
/// removed and replaced by a full stack within the hour (and there, changes may be told twice,
/// never missed).
pub const HUB_KEEPS_SETTLED_SECS: u64 = 3600;

/// What the marker says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// No handover here.
    Absent,
    /// The spoke is being installed: the full stack tells everything.
    Pending,
    /// From this time (seconds since the epoch) the hub tells, before it the full stack.
    At(i64),
}

/// A marker's value that is not `STATE ACCOUNT REGION`, the state `pending` or an RFC 3339 time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the handover marker {PARAMETER} holds {0:?}, not \"pending\" or an RFC 3339 time followed \
     by the account and the region"
)]
pub struct BadMarker(pub String);

impl Marker {
    /// Reads the parameter's value: the marker, for the account and region it names.
    pub fn parse(value: &str) -> Result<(Marker, &str, &str), BadMarker> {
        let bad = || BadMarker(value.to_owned());
        let mut words = value.split_whitespace();
        let (Some(state), Some(account), Some(region), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(bad());
        };
        let marker = if state == PENDING {
            Marker::Pending
        } else {
            DateTime::from_str(state, Format::DateTimeWithOffset)
                .map(|t| Marker::At(t.secs()))
                .map_err(|_| bad())?
        };
        Ok((marker, account, region))
    }

    /// What `account` × `region` is told to hear: this marker, read only there.
    pub fn for_place(value: &str, account: &str, region: &str) -> Result<Marker, BadMarker> {
        let (marker, a, r) = Marker::parse(value)?;
        Ok(if a == account && r == region {
            marker
        } else {
            Marker::Absent
        })
    }

    /// The state's word: `pending` or the time (`None`: no parameter).
    pub fn state(self) -> Option<String> {
        match self {
            Marker::Absent => None,
            Marker::Pending => Some(PENDING.to_owned()),
            Marker::At(secs) => DateTime::from_secs(secs).fmt(Format::DateTime).ok(),
        }
    }

    /// The parameter's value for this marker in `account` × `region` (`None`: no parameter).
    pub fn value(self, account: &str, region: &str) -> Option<String> {
        self.state().map(|s| format!("{s} {account} {region}"))
    }

    /// Whether the hub tells a change of this region that happened at `at` (an RFC 3339 time).
    pub fn hub_tells(self, at: Option<&str>) -> bool {
        match self {
            Marker::Absent => true,
            Marker::Pending => false,
            Marker::At(t) => seconds(at).is_none_or(|at| at >= t),
        }
    }

    /// Whether the region's full stack tells a change that happened at `at`: all of them with no
    /// handover or while it is pending, and those before T once T is set.
    pub fn full_stack_tells(self, at: Option<&str>) -> bool {
        match self {
            Marker::Absent | Marker::Pending => true,
            Marker::At(_) => !self.hub_tells(at),
        }
    }

    /// Whether the full stack still sends early warnings: not once T is set, so that a call just
    /// before T, whose item Config may capture after it, is told once, by the hub, whole.
    pub fn full_stack_warns(self) -> bool {
        matches!(self, Marker::Absent | Marker::Pending)
    }

    /// Why a side leaves a change to the other, for the log.
    pub fn left_to(self, hub: bool) -> String {
        let t = self.state().unwrap_or_default();
        match (self, hub) {
            (Marker::Pending, _) => {
                "the account's full stack tells it: the spoke's handover is pending".into()
            }
            (_, true) => format!("the account's full stack tells changes before {t}"),
            (_, false) => format!("the hub tells changes from {t} on"),
        }
    }
}

/// `at` in seconds since the epoch, when it is an RFC 3339 time.
fn seconds(at: Option<&str>) -> Option<i64> {
    let at = at?.trim();
    DateTime::from_str(at, Format::DateTimeWithOffset)
        .ok()
        .map(|t| t.secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-12-05T12:00:00Z";

    #[test]
    fn each_change_is_told_by_exactly_one_side_once_a_handover_starts() {
        let (at, _, _) = Marker::parse(&format!("{T} 111122223333 eu-west-1")).unwrap();
        assert_eq!(
            at.value("111122223333", "eu-west-1").as_deref(),
            Some("2026-12-05T12:00:00Z 111122223333 eu-west-1")
        );
        for time in [
            Some("2026-12-05T11:59:59.999Z"),
            Some("2026-12-05T12:00:00.000Z"),
            Some("2026-12-05T13:00:00+01:00"),
            Some("2026-12-05T12:00:01Z"),
            Some("not a time"),
            None,
        ] {
            for marker in [Marker::Pending, at] {
                assert_ne!(
                    marker.hub_tells(time),
                    marker.full_stack_tells(time),
                    "{marker:?} {time:?}"
                );
            }
            // No handover: whoever hears it tells it.
            assert!(Marker::Absent.hub_tells(time) && Marker::Absent.full_stack_tells(time));
        }
        assert!(at.full_stack_tells(Some("2026-12-05T11:59:59Z")));
        assert!(at.hub_tells(Some("2026-12-05T12:00:00Z")));
        // An unknown time is the hub's: the side that stays.
        assert!(at.hub_tells(None));
        assert!(!Marker::Pending.hub_tells(Some("2026-12-05T12:00:00Z")));
    }

    #[test]
    fn a_marker_is_pending_or_a_time_for_one_account_and_region() {
        let here = |v: &str| Marker::for_place(v, "111122223333", "eu-west-1");
        assert_eq!(
            here(" pending 111122223333  eu-west-1\n"),
            Ok(Marker::Pending)
        );
        assert_eq!(
            here("2026-12-05T13:00:00+01:00 111122223333 eu-west-1"),
            here(&format!("{T} 111122223333 eu-west-1"))
        );
        // Another account's or region's marker says nothing of this one.
        assert_eq!(here("pending 444455556666 eu-west-1"), Ok(Marker::Absent));
        assert_eq!(here("pending 111122223333 us-east-1"), Ok(Marker::Absent));
        for bad in [
            "",
            "pending",
            "Pending 111122223333 eu-west-1",
            "2026-12-05 111122223333 eu-west-1",
            "1733400000 111122223333 eu-west-1",
            "pending 111122223333 eu-west-1 extra",
        ] {
            assert_eq!(here(bad), Err(BadMarker(bad.to_owned())), "{bad}");
        }
        assert_eq!(Marker::Absent.value("111122223333", "eu-west-1"), None);
        assert!(Marker::Absent.full_stack_warns() && Marker::Pending.full_stack_warns());
        assert!(!here(&format!("{T} 111122223333 eu-west-1"))
            .unwrap()
            .full_stack_warns());
    }
}
