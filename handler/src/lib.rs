//! sgwatch's Lambda handler: reads AWS Config notifications about security groups, works out
//! what changed and how dangerous it is, and emails the group's owners through SES.
//!
//! The decision path (`message` → `decide` (with `rules`, `severity`, `recipients`) → `render`)
//! is pure and shared with `sgwatch explain`: it is the `core/` folder. `deliver/` holds the
//! email, the posts and their formats; the AWS calls live at the edge (`actor`, `mail`,
//! `oversized`) and `process` ties them together for one Lambda invocation. The notifications
//! AWS Config would send, for test events, the demo and the tests, are built by the separate
//! `sgwatch-synth` crate (`handler/synth/`), so this library and the Lambda carry none of that.
//!
//! Who made a change comes first from the actor feed: CloudTrail's `AWS API Call via CloudTrail`
//! events, which the same function receives from EventBridge seconds after each call (`feed`
//! reads them, `feed_store` keeps them per group); `actor`'s `LookupEvents` is the fallback. A
//! call that itself opens a watched group to the world is told at once (`early`).

pub mod core;
pub mod deliver;

pub mod act;
pub mod actor;
pub mod aws;
pub mod coalesce;
pub mod context;
pub mod coverage;
pub mod dedupe;
pub mod early;
pub mod feed_store;
pub mod findings;
pub mod groups;
pub mod handovers;
pub mod held;
pub mod ledger;
pub mod links;
pub mod logs;
pub mod members;
pub mod oversized;
pub mod prefix_lists;
pub mod process;
pub mod rate;
pub mod sight;

// The public paths other crates use (the installer, the tests, the benchmarks): one flat facade
// over the folders.
pub use crate::core::{
    autorevert, decide, destination, digest, explain, exposure, feed, finding, handover, link,
    message, page, quiet, reason, recipients, remedy, render, rules, settings, severity, spokes,
    text, trust, visible, who,
};
pub use crate::deliver::{chatbot, mail, pagerduty, post, slack, teams, webhook};
