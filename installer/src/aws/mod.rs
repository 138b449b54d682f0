//! The AWS side of every command: [`flags`] (global flags and the SDK configuration they make),
//! [`identity`] (the account, region and partition we act in), and [`calls`] (the clients, which
//! log every API call when asked).

pub mod calls;
pub mod flags;
pub mod identity;

pub use calls::*;
pub use flags::{assume, load, ConfigError, GlobalArgs, Output};
pub use identity::{partition, partition_of, place, IdentityError, Place};

/// An AWS SDK error as one line: the service's code and message when it answered, else the chain
/// of causes (a connection refused, a credential provider that failed), without the debug dump.
/// The one way the installer turns an SDK error into text: like the SDK's `DisplayErrorContext`,
/// it follows `source()` down the chain, but leaves out the SDK's wrapper layers ("service
/// error", "dispatch failure") and the debug dump, so a message fits on a line.
pub fn error_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        // The SDK's outer layers say only "service error" / "dispatch failure": skip to the cause.
        if !matches!(
            text.as_str(),
            "service error" | "dispatch failure" | "io error" | "other"
        ) && parts.last() != Some(&text)
        {
            parts.push(text);
        }
        next = e.source();
    }
    let text = if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    };
    text.trim_end_matches('.').to_owned()
}
