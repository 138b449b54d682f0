//! The parts of a deployment, below the commands: the install pipeline ([`observe`] reads the
//! account, [`plan`] decides, [`apply`] makes the calls) and one module per kind of AWS resource
//! or setting it deploys.

pub mod actor_feed;
pub mod alarms;
pub mod apply;
pub mod artifacts;
pub mod baseline;
pub mod check;
pub mod destinations;
pub mod handover;
pub mod observe;
pub mod package;
pub mod plan;
pub mod policy_args;
pub mod preflight;
pub mod recorder;
pub mod security;
pub mod simulate;
pub mod stack;
pub mod topic;
pub mod wanted;
