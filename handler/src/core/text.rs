//! Text helpers every output shares, a leaf: a value on one line that shows what it would hide,
//! and the time of day of an RFC 3339 time.

use crate::core::visible::visible;

/// A resource-supplied value on one line, showing what it would hide: every control, format or
/// separator character is written as `<U+XXXX>` ([`visible`]).
pub fn one_line(value: &str) -> String {
    visible(value).into_owned()
}

/// `09:13:58Z` of `2026-11-20T09:13:58Z`: the date is the change's, shown beside it.
pub fn time_of_day(rfc3339: &str) -> &str {
    rfc3339
        .split_once('T')
        .map(|(_, t)| t)
        .filter(|t| !t.is_empty())
        .unwrap_or(rfc3339)
}
