//! The handler's policy settings as command-line flags, shared by `install`, `plan` and `explain`
//! so the three accept (and validate) exactly the same thing; a rollout targets file holds the
//! same fields (snake_case keys), read into the same type.

use clap::Args;
use serde::{Deserialize, Serialize};
use sgwatch_handler::settings::{Policy, RawPolicy, SettingsError};
use sgwatch_handler::severity::Severity;

/// A settings flag the handler would refuse; names the flag (the handler's own error names its
/// environment variable, which a command-line user never sets).
#[derive(Debug, thiserror::Error)]
pub enum InvalidSetting {
    #[error("{flag} {value:?} is invalid: {why}")]
    Invalid {
        flag: String,
        value: String,
        why: String,
    },
    #[error("{flag} is required")]
    Missing { flag: String },
}

impl From<SettingsError> for InvalidSetting {
    fn from(err: SettingsError) -> Self {
        match err {
            SettingsError::Missing(name) => InvalidSetting::Missing {
                flag: flag_of(name),
            },
            SettingsError::Invalid { name, value, why } => InvalidSetting::Invalid {
                flag: flag_of(name),
                value,
                why,
            },
        }
    }
}

/// The flag behind a setting's variable: `SGWATCH_FALLBACK_RECIPIENT` → `--fallback-recipient`.
fn flag_of(variable: &str) -> String {
    format!(
        "--{}",
        variable
            .trim_start_matches("SGWATCH_")
            .to_ascii_lowercase()
            .replace('_', "-")
    )
}

// Not `deny_unknown_fields`: flattened into a target's settings, it sees every key of the target;
// the targets file rejects unknown keys where it is read (`rollout::parse_targets`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Args, Deserialize, Serialize)]
pub struct PolicyArgs {
    /// Gets the email when a group has no valid owner, when SES rejects an owner, and changes at or above --always-notify-at
    #[arg(long, value_name = "EMAIL")]
    pub fallback_recipient: Option<String>,
    /// Changes at or above this severity reach the fallback recipient even for untagged groups: critical, high, medium, low, info
    #[arg(long, value_name = "SEVERITY")]
    // In a targets file a misspelt severity is an error of the file, as the flag's would be.
    #[serde(default, deserialize_with = "severity")]
    pub always_notify_at: Option<String>,
    /// Tag that opts a group in (default NotifyOnChange)
    #[arg(long, value_name = "KEY")]
    pub notify_tag: Option<String>,
    /// Tag listing the owners' addresses (default OwnerDL)
    #[arg(long, value_name = "KEY")]
    pub owner_tag: Option<String>,
    /// Extra resource types to record and consider, comma-separated (AWS::EC2::SecurityGroup always is)
    #[arg(long, value_name = "TYPE,...")]
    pub resource_types: Option<String>,
    /// Also notify when only attachments (instances, network interfaces) changed
    #[arg(long)]
    #[serde(default)]
    pub notify_on_relationship_changes: bool,
}

/// A severity name as the handler reads it (`critical` … `info`).
fn severity<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let Some(name) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    match name.parse::<Severity>() {
        Ok(_) => Ok(Some(name)),
        Err(why) => Err(serde::de::Error::custom(format!(
            "always_notify_at {name:?}: {why}"
        ))),
    }
}

impl PolicyArgs {
    /// `self` with every unset setting taken from `defaults` (a rollout target over the file's
    /// defaults; a flag that is on in either is on).
    pub fn over(self, defaults: &PolicyArgs) -> PolicyArgs {
        let d = defaults.clone();
        PolicyArgs {
            fallback_recipient: self.fallback_recipient.or(d.fallback_recipient),
            always_notify_at: self.always_notify_at.or(d.always_notify_at),
            notify_tag: self.notify_tag.or(d.notify_tag),
            owner_tag: self.owner_tag.or(d.owner_tag),
            resource_types: self.resource_types.or(d.resource_types),
            notify_on_relationship_changes: self.notify_on_relationship_changes
                || d.notify_on_relationship_changes,
        }
    }

    /// Validates the flags with the handler's own rules.
    pub fn policy(&self) -> Result<Policy, InvalidSetting> {
        Ok(Policy::from_raw(&self.raw())?)
    }

    /// The flags as raw settings, for a command that adds its own (`explain`'s baseline and
    /// accounts, which install sets itself).
    pub fn raw(&self) -> RawPolicy {
        RawPolicy {
            notify_tag: self.notify_tag.clone(),
            owner_tag: self.owner_tag.clone(),
            resource_types: self.resource_types.clone(),
            fallback_recipient: self.fallback_recipient.clone(),
            always_notify_at: self.always_notify_at.clone(),
            notify_on_relationship_changes: Some(self.notify_on_relationship_changes.to_string()),
            ..RawPolicy::default()
        }
    }
}
