//! Integration tests of sgwatch end to end: one binary (linking the AWS SDK once), a module per concern.

mod act;
mod auto_revert;
mod burst;
mod delivery;
mod destinations;
mod e2e;
mod email_browser;
mod feed;
mod handler_aws;
mod handover;
mod harness;
mod history;
mod hub;
mod hub_scale;
mod hub_templates;
mod iam_enforced;
mod installer_policy;
mod ledger;
mod logs;
mod quiet;
mod redrive;
mod send_once;
mod templates;
mod tidy;
mod unreadable;
mod verify;
