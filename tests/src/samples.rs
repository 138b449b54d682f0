//! The RDP fixture's messages as a person receives them, for the browser test, the screenshots in
//! `docs/` and the Block Kit sample beside them: Department B's admin opened RDP to the world on
//! Department A's group.

use serde_json::Value;
use sgwatch_handler::actor::{Actor, ActorLookup};
use sgwatch_handler::decide::{analyze, decide, Decision};
use sgwatch_handler::message::{parse_message, ConfigMessage};
use sgwatch_handler::render::{render, Email};
use sgwatch_handler::settings::Policy;

/// Who made the change, as CloudTrail would tell it.
pub fn actor() -> ActorLookup {
    ActorLookup::Found(Actor {
        arn: Some("arn:aws:iam::123456789012:user/dept-b-admin".into()),
        source_ip: Some("203.0.113.7".into()),
        time: Some("2026-11-20T09:13:58Z".into()),
        event_name: Some("AuthorizeSecurityGroupIngress".into()),
        event_id: None,
        invoked_by: None,
    })
}

/// The decision for `tests/fixtures/rdp-opened.json` under the default settings.
pub fn rdp_decision() -> Decision {
    let message = crate::fixture::json("rdp-opened.json");
    match parse_message(&message) {
        Ok(ConfigMessage::ItemChange(change)) => decide(
            analyze(&change).expect("the fixture's changes read"),
            &Policy::default(),
        ),
        other => panic!("rdp-opened.json is not an item change: {other:?}"),
    }
}

/// The email the owners get.
pub fn rdp_email() -> Email {
    render(&rdp_decision(), &actor())
}

/// The Block Kit message a Slack channel gets.
pub fn rdp_slack() -> Value {
    sgwatch_handler::slack::message(&rdp_decision(), &actor())
}
