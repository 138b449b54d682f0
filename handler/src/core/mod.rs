//! The pure core: from a message to a decision and its words, with no AWS call, no SDK
//! configuration and no async runtime, so the Lambda and `sgwatch explain` decide byte for byte
//! alike and everything here is tested without AWS.
//!
//! `message` reads the inputs; `rules`, `severity`, `recipients` and `destination` are the
//! vocabulary; `decide` (with `reason`) makes the decision; `feed` and `who` say who made a
//! change; `render` (with `text` and `visible`) words it; `settings` reads the policy and
//! `explain` shows it all as JSON; `quiet` routes a change (now, to the digest, or held) and `digest` words the daily digest. `spokes` is the hub's view of its spokes, and `handover` decides, while a full stack hands a
//! region over to the hub, which of the two tells each change.

pub mod autorevert;
pub mod decide;
pub mod destination;
pub mod digest;
pub mod explain;
pub mod exposure;
pub mod feed;
pub mod finding;
pub mod handover;
pub mod link;
pub mod message;
pub mod page;
pub mod quiet;
pub mod reason;
pub mod recipients;
pub mod remedy;
pub mod render;
pub mod rules;
pub mod settings;
pub mod severity;
pub mod spokes;
pub mod text;
pub mod trust;
pub mod visible;
pub mod who;
