//! Integration tests of the handler crate: one binary (linking the AWS SDK once), a module per concern.

mod lying_characters;
mod malformed;
mod no_panic;
