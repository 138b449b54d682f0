//! The commands `main.rs` dispatches to, one module each: its arguments, what it does, and the
//! report it prints. They stand on [`crate::deploy`] (the parts of a deployment) and
//! [`crate::aws`].

pub mod explain;
pub mod hub;
pub mod install;
pub mod redrive;
pub mod rollout;
pub mod spoke;
pub mod status;
pub mod teardown;
pub mod test_event;
pub mod verify;
