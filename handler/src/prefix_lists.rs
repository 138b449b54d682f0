//! Managed prefix lists, at the edge: a rule whose source is a prefix list opens the group to
//! whatever the list holds, so the list is read (`ec2:GetManagedPrefixListEntries`, granted on
//! prefix lists only) before the change is rated. A list holding a range wider than the largest
//! private one is the world; one that cannot be read is rated high and the email says so
//! ([`crate::core::severity`]).
//!
//! Entries are kept per container for a few minutes: a burst of changes naming the same list
//! reads it once, and an edited list is seen again soon after.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};

use crate::core::rules::{Action, Change, Direction, Listed, Source};

/// How long a list's entries are trusted without reading them again.
pub const TTL: Duration = Duration::from_secs(300);

/// Most lists read for one change: each is a call, and the invocation has a deadline. The rest
/// stay unknown (and are rated high).
pub const MAX_LISTS: usize = 20;

/// The entries read so far, by list id, with when they were read. Failures are not kept: a list
/// that could not be read is tried again with the next change.
#[derive(Default)]
pub struct PrefixLists {
    cache: Mutex<HashMap<String, (Instant, Vec<String>)>>,
}

impl std::fmt::Debug for PrefixLists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cached = self.cache.lock().map(|c| c.len()).unwrap_or_default();
        f.debug_struct("PrefixLists")
            .field("cached", &cached)
            .finish()
    }
}

/// The container's lists: one cache for every invocation the container serves.
pub fn container() -> &'static PrefixLists {
    static LISTS: OnceLock<PrefixLists> = OnceLock::new();
    LISTS.get_or_init(PrefixLists::default)
}

/// Whether `id` looks like a prefix list id (`pl-` and hex): anything else is not sent to EC2.
fn plausible(id: &str) -> bool {
    id.strip_prefix("pl-").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// The prefix lists whose entries decide how `changes` are rated: sources of added ingress rules.
pub fn wanted(changes: &[Change]) -> Vec<String> {
    let mut ids: Vec<String> = changes
        .iter()
        .filter(|c| c.action == Action::Added && c.rule.direction == Direction::Ingress)
        .filter_map(|c| match &c.rule.source {
            Source::PrefixList(id) => Some(id.clone()),
            _ => None,
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Sets what each prefix-list source of `changes` holds, from `found`.
pub fn apply(changes: &mut [Change], found: &BTreeMap<String, Listed>) {
    for c in changes {
        if let Source::PrefixList(id) = &c.rule.source {
            if let Some(listed) = found.get(id) {
                c.rule.listed = Some(listed.clone());
            }
        }
    }
}

impl PrefixLists {
    /// What each of `ids` holds: read, or unknown with the reason.
    pub async fn resolve(
        &self,
        ec2: &aws_sdk_ec2::Client,
        ids: &[String],
    ) -> BTreeMap<String, Listed> {
        let mut out = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let listed = if !plausible(id) {
                Listed::Unknown("not a prefix list id".to_owned())
            } else if i >= MAX_LISTS {
                Listed::Unknown(format!(
                    "not read: more than {MAX_LISTS} lists in one change"
                ))
            } else {
                match self.entries(ec2, id).await {
                    Ok(cidrs) => Listed::Entries(cidrs),
                    Err(why) => {
                        tracing::warn!(prefix_list = %id, reason = %why, "prefix list not read; its rules are rated high");
                        Listed::Unknown(why)
                    }
                }
            };
            out.insert(id.clone(), listed);
        }
        out
    }

    /// The CIDRs of list `id`, from the cache or from EC2.
    pub async fn entries(
        &self,
        ec2: &aws_sdk_ec2::Client,
        id: &str,
    ) -> Result<Vec<String>, String> {
        if let Some(cidrs) = self.cache.lock().ok().and_then(|c| {
            c.get(id)
                .filter(|(at, _)| at.elapsed() < TTL)
                .map(|(_, cidrs)| cidrs.clone())
        }) {
            return Ok(cidrs);
        }
        let mut cidrs = Vec::new();
        let mut pages = ec2
            .get_managed_prefix_list_entries()
            .prefix_list_id(id)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| match e.code() {
                Some(code) => format!(
                    "GetManagedPrefixListEntries {id}: {code}: {}",
                    e.message().unwrap_or_default()
                ),
                None => format!(
                    "GetManagedPrefixListEntries {id}: {}",
                    DisplayErrorContext(&e)
                ),
            })?;
            cidrs.extend(
                page.entries()
                    .iter()
                    .filter_map(|e| e.cidr().map(str::to_owned)),
            );
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(id.to_owned(), (Instant::now(), cidrs.clone()));
        }
        Ok(cidrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::get_managed_prefix_list_entries::GetManagedPrefixListEntriesOutput;
    use aws_sdk_ec2::types::PrefixListEntry;
    use aws_sdk_ec2::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[tokio::test]
    async fn entries_are_read_once_and_failures_are_unknown_with_the_reason() {
        let office = mock!(Client::get_managed_prefix_list_entries)
            .match_requests(|r| r.prefix_list_id() == Some("pl-0aaa"))
            .then_output(|| {
                GetManagedPrefixListEntriesOutput::builder()
                    .entries(PrefixListEntry::builder().cidr("0.0.0.0/1").build())
                    .entries(PrefixListEntry::builder().cidr("128.0.0.0/1").build())
                    .build()
            });
        let denied = mock!(Client::get_managed_prefix_list_entries)
            .match_requests(|r| r.prefix_list_id() == Some("pl-0bbb"))
            .then_http_response(|| {
                aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
                    aws_smithy_types::body::SdkBody::from(
                        "<Response><Errors><Error><Code>UnauthorizedOperation</Code>\
                         <Message>You are not authorized to perform this operation.</Message>\
                         </Error></Errors><RequestID>r</RequestID></Response>",
                    ),
                )
            });
        let ec2 = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, [&office, &denied]);
        let lists = PrefixLists::default();
        let ids = vec![
            "pl-0aaa".to_owned(),
            "pl-0bbb".to_owned(),
            "pl-<script>".to_owned(),
        ];
        let found = lists.resolve(&ec2, &ids).await;
        assert_eq!(
            found["pl-0aaa"],
            Listed::Entries(vec!["0.0.0.0/1".into(), "128.0.0.0/1".into()])
        );
        let Listed::Unknown(why) = &found["pl-0bbb"] else {
            panic!("{:?}", found["pl-0bbb"])
        };
        assert!(why.contains("UnauthorizedOperation"), "{why}");
        assert_eq!(
            found["pl-<script>"],
            Listed::Unknown("not a prefix list id".into())
        );
        // Cached for the container: the second change reads nothing.
        lists.resolve(&ec2, &ids[..1]).await;
        assert_eq!(office.num_calls(), 1);
        assert!(format!("{lists:?}").contains("cached: 1"));
    }
}
