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
    // One flag per destination, repeated; the handler reads them as one list.
    if variable == "SGWATCH_DESTINATIONS" {
        return "--destination".to_owned();
    }
    if variable == "SGWATCH_TRUSTED_PRINCIPALS" {
        return "--trusted-principal".to_owned();
    }
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
    /// A destination besides email, NAME=KIND:PARAM: KIND slack, teams or webhook, PARAM the SSM SecureString holding its URL (a webhook adds :KEY-PARAM, its signing key). Repeatable
    #[arg(long = "destination", value_name = "NAME=KIND:PARAM")]
    #[serde(default, rename = "destinations")]
    pub destinations: Vec<String>,
    /// Tag naming, comma-separated, the destinations a group's changes are posted to (default NotifyChannels)
    #[arg(long, value_name = "KEY")]
    pub channels_tag: Option<String>,
    /// A destination told wherever the fallback recipient is (no owner, changes at or above --always-notify-at)
    #[arg(long, value_name = "NAME")]
    pub fallback_destination: Option<String>,
    /// The customer managed KMS key (ARN) that encrypts the destinations' parameters; not needed for the AWS managed key aws/ssm
    #[arg(long, value_name = "KEY-ARN")]
    pub destination_kms_key: Option<String>,
    /// Let destinations be at private addresses (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7): a receiver inside the VPC. Link-local and instance-metadata addresses are refused all the same
    #[arg(long)]
    #[serde(default)]
    pub allow_private_destinations: bool,
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
            destinations: if self.destinations.is_empty() {
                d.destinations
            } else {
                self.destinations
            },
            channels_tag: self.channels_tag.or(d.channels_tag),
            fallback_destination: self.fallback_destination.or(d.fallback_destination),
            destination_kms_key: self.destination_kms_key.or(d.destination_kms_key),
            allow_private_destinations: self.allow_private_destinations
                || d.allow_private_destinations,
        }
    }

    /// Validates the flags with the handler's own rules.
    pub fn policy(&self) -> Result<Policy, InvalidSetting> {
        if let Some(key) = &self.destination_kms_key {
            kms_key_arn(key)?;
        }
        let policy = Policy::from_raw(&self.raw())?;
        let parameters = destination_parameters(&policy);
        if parameters.len() > MAX_DESTINATION_PARAMETERS {
            return Err(InvalidSetting::Invalid {
                flag: "--destination".to_owned(),
                value: self.destinations.join(" "),
                why: format!(
                    "the destinations name {} SSM parameters; the stack grants at most {MAX_DESTINATION_PARAMETERS}",
                    parameters.len()
                ),
            });
        }
        let topics = chatbot_topics(&policy);
        if topics.len() > MAX_CHATBOT_TOPICS {
            return Err(InvalidSetting::Invalid {
                flag: "--destination".to_owned(),
                value: self.destinations.join(" "),
                why: format!(
                    "the chatbot destinations name {} SNS topics; the stack grants at most {MAX_CHATBOT_TOPICS}",
                    topics.len()
                ),
            });
        }
        Ok(policy)
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
            destinations: (!self.destinations.is_empty()).then(|| self.destinations.join(",")),
            channels_tag: self.channels_tag.clone(),
            fallback_destination: self.fallback_destination.clone(),
            allow_private_destinations: Some(self.allow_private_destinations.to_string()),
            ..RawPolicy::default()
        }
    }
}

/// The most SSM parameters the stack's role can be granted (its `DestinationParameters` slots).
pub const MAX_DESTINATION_PARAMETERS: usize = 10;

/// Every SSM parameter the destinations read, without repeats, for the stack's grant.
pub fn destination_parameters(policy: &Policy) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in policy.destinations.iter().flat_map(|d| d.parameters()) {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_owned());
        }
    }
    out
}

/// The most SNS topics the stack's role can publish to (its `ChatbotTopics` parameter).
pub const MAX_CHATBOT_TOPICS: usize = 10;

/// Every SNS topic the chatbot destinations publish to, without repeats, for the stack's grant.
pub fn chatbot_topics(policy: &Policy) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for topic in policy.destinations.iter().filter_map(|d| d.topic()) {
        if !out.iter().any(|t| t == topic) {
            out.push(topic.to_owned());
        }
    }
    out
}

/// A KMS key ARN, `arn:PARTITION:kms:REGION:ACCOUNT:key/ID` (an alias cannot be granted).
fn kms_key_arn(value: &str) -> Result<(), InvalidSetting> {
    let parts: Vec<&str> = value.split(':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "kms"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].strip_prefix("key/").is_some_and(|id| {
            !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(())
    } else {
        Err(InvalidSetting::Invalid {
            flag: "--destination-kms-key".to_owned(),
            value: value.to_owned(),
            why: "expected a key ARN like arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".to_owned(),
        })
    }
}

#[cfg(test)]
mod destination_tests {
    use super::*;

    fn args(destinations: &[&str]) -> PolicyArgs {
        PolicyArgs {
            destinations: destinations.iter().map(|d| d.to_string()).collect(),
            ..PolicyArgs::default()
        }
    }

    #[test]
    fn destinations_are_checked_before_any_call_and_errors_name_the_flag() {
        let ok = args(&[
            "secops=slack:/sgwatch/secops",
            "siem=webhook:/sgwatch/siem:/sgwatch/key",
        ]);
        let policy = ok.policy().unwrap();
        assert_eq!(
            destination_parameters(&policy),
            ["/sgwatch/secops", "/sgwatch/siem", "/sgwatch/key"]
        );
        let err = args(&["secops=slack:no-slash"]).policy().unwrap_err();
        assert!(err.to_string().starts_with("--destination "), "{err}");
        let err = PolicyArgs {
            fallback_destination: Some("nope".into()),
            ..ok.clone()
        }
        .policy()
        .unwrap_err();
        assert!(
            err.to_string().starts_with("--fallback-destination "),
            "{err}"
        );
        let err = PolicyArgs {
            destination_kms_key: Some("alias/aws/ssm".into()),
            ..ok.clone()
        }
        .policy()
        .unwrap_err();
        assert!(
            err.to_string().starts_with("--destination-kms-key "),
            "{err}"
        );
        let many: Vec<String> = (0..11).map(|i| format!("d{i}=slack:/p/{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let err = args(&many).policy().unwrap_err();
        assert!(err.to_string().contains("at most 10"), "{err}");
    }

    #[test]
    fn a_targets_file_names_them_under_destinations() {
        let from_file: PolicyArgs = serde_yaml::from_str(
            "destinations: [secops=slack:/sgwatch/secops, team-a=teams:/sgwatch/team-a]\n\
             channels_tag: Channels\nfallback_destination: secops\n",
        )
        .unwrap();
        let policy = from_file.policy().unwrap();
        assert_eq!(policy.destinations.len(), 2);
        assert_eq!(policy.channels_tag, "Channels");
        assert_eq!(policy.fallback_destination.as_deref(), Some("secops"));
        // A target's own list replaces the defaults' (as any setting does).
        let target = args(&["siem=webhook:/s/url:/s/key"]).over(&from_file);
        assert_eq!(target.destinations, ["siem=webhook:/s/url:/s/key"]);
        assert_eq!(PolicyArgs::default().over(&from_file).destinations.len(), 2);
    }
}
