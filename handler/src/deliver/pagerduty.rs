//! PagerDuty (Events API v2): a `trigger` per rule a change opens to the internet at or above
//! `SGWATCH_PAGE_AT`, and a `resolve` per such rule a change removes, each under the rule's
//! identity as `dedup_key` ([`crate::core::finding`]): a retry, or a second change to the same
//! rule, never pages twice, and the removal resolves the incident the opening raised. The routing
//! key is the destination's SSM parameter; the endpoint is `SGWATCH_PAGERDUTY_URL`.
//!
//! `sgwatch verify`'s group pages no one: it sends a change event instead (`/v2/change/enqueue`),
//! which PagerDuty shows on the service's timeline and which opens no incident.

use std::time::Instant;

use serde_json::{json, Value};

use crate::core::decide::Decision;
use crate::core::destination::Destination;
use crate::core::finding::{cut, is_verify, pager_events};
use crate::core::render::subject;
use crate::core::settings::SecuritySettings;
use crate::core::who::ActorLookup;
use crate::deliver::post::{Payload, PostError, Poster};

/// The change-events endpoint beside `events_url` (`…/v2/enqueue` → `…/v2/change/enqueue`).
pub fn change_url(events_url: &str) -> String {
    match events_url.strip_suffix("/v2/enqueue") {
        Some(base) => format!("{base}/v2/change/enqueue"),
        None => events_url.to_owned(),
    }
}

/// The change event `sgwatch verify`'s change sends: it proves the routing key and the path
/// without paging anyone.
pub fn change_event(d: &Decision, routing_key: &str) -> Value {
    let s = &d.analysis.subject;
    let mut event = json!({
        "routing_key": routing_key,
        "payload": {
            "summary": cut(&format!("sgwatch verify: {}", subject(d)), 1024),
            "source": s.resource_id,
            "custom_details": {
                "what": "a test change made by sgwatch verify; it pages no one",
                "account": s.account,
                "region": s.region,
            },
        },
    });
    if let Some(time) = s.capture_time.as_deref().filter(|t| !t.is_empty()) {
        event["payload"]["timestamp"] = json!(time);
    }
    event
}

/// Sends the change's events to `destination`; how many were sent (none: nothing to page).
pub async fn page(
    poster: &Poster,
    destination: &Destination,
    d: &Decision,
    actor: &ActorLookup,
    security: &SecuritySettings,
    deadline: Option<Instant>,
) -> Result<usize, PostError> {
    let name = destination.name.as_str();
    let verify = is_verify(d);
    // Nothing to page reads no key.
    let probe = pager_events(d, actor, "", security.page_at);
    if probe.is_empty() && !verify {
        return Ok(0);
    }
    let key = poster
        .parameter_until(name, &destination.parameter, deadline)
        .await?;
    let key = key.trim();
    let (url, events) = if verify {
        (
            change_url(&security.pagerduty_url),
            vec![change_event(d, key)],
        )
    } else {
        (
            security.pagerduty_url.clone(),
            pager_events(d, actor, key, security.page_at),
        )
    };
    for event in &events {
        let payload = Payload {
            body: serde_json::to_vec(event).unwrap_or_default(),
            headers: Vec::new(),
        };
        poster
            .post_to(destination, &url, &payload, deadline)
            .await
            .map_err(|e| match e {
                // The endpoint is a setting, not the parameter (which holds the routing key).
                PostError::Url { reason, .. } => PostError::Url {
                    destination: name.to_owned(),
                    parameter: "SGWATCH_PAGERDUTY_URL (not a parameter: the stack's setting)"
                        .to_owned(),
                    reason,
                },
                other => other,
            })?;
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_events_go_beside_the_events_endpoint() {
        assert_eq!(
            change_url("https://events.eu.pagerduty.com/v2/enqueue"),
            "https://events.eu.pagerduty.com/v2/change/enqueue"
        );
    }
}
