//! `status`'s check of the destinations' secrets: each SSM parameter the stack names (parameter
//! `DestinationParameters`) exists and is a SecureString. It is looked up with
//! `ssm:DescribeParameters`, which returns a parameter's name and type but never its value: the
//! URL is a secret the installer has no need to see (the handler's role reads it itself), and a
//! grant of `ssm:GetParameter` would let the installer decrypt every parameter the AWS managed key
//! `aws/ssm` protects ("Restricting access to Parameter Store parameters using IAM policies",
//! Systems Manager user guide). `DescribeParameters` has no resource-level permission, so its
//! grant is on `*`, which reveals names and types only.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType};

use crate::deploy::check::{Check, Level};
use crate::deploy::stack::StackParams;

const CHECK: &str = "destination parameter";

/// One check per parameter the deployed stack names (its parameters by name); none when it
/// names none.
pub async fn checks(config: &SdkConfig, stack_params: &BTreeMap<String, String>) -> Vec<Check> {
    let names = StackParams::from_map(stack_params.clone()).destination_parameters;
    if names.is_empty() {
        return Vec::new();
    }
    let ssm = crate::aws::ssm(config);
    let mut out = Vec::with_capacity(names.len());
    for name in &names {
        out.push(check(name, &describe(&ssm, name).await));
    }
    out
}

/// The type of parameter `name` (`None`: there is no such parameter), from its metadata alone.
pub async fn describe(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<Option<ParameterType>, String> {
    let filter = ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .values(name)
        .build()
        .map_err(|e| e.to_string())?;
    let out = ssm
        .describe_parameters()
        .parameter_filters(filter)
        .send()
        .await
        .map_err(|e| match (e.code(), e.message()) {
            (Some(code), message) => format!("{code} {}", message.unwrap_or_default()),
            _ => aws_sdk_ssm::error::DisplayErrorContext(&e).to_string(),
        })?;
    Ok(out
        .parameters()
        .iter()
        .find(|p| p.name() == Some(name))
        .map(|p| p.r#type().cloned().unwrap_or(ParameterType::String)))
}

/// The line for parameter `name`, from what [`describe`] found.
pub fn check(name: &str, found: &Result<Option<ParameterType>, String>) -> Check {
    let (level, detail) = match found {
        Ok(Some(ParameterType::SecureString)) => (Level::Ok, format!("{name} (SecureString)")),
        Ok(Some(_)) => (
            Level::Warn,
            format!(
                "{name} is not a SecureString: the URL is a secret; recreate it with --type SecureString"
            ),
        ),
        Ok(None) => (
            Level::Fail,
            format!(
                "{name} does not exist; the handler cannot post there: \
                 aws ssm put-parameter --type SecureString --name {name} --value <URL, or the routing key of a pagerduty destination>"
            ),
        ),
        Err(e) => (
            Level::Fail,
            format!("{name} cannot be looked up: {}", e.trim_end()),
        ),
    };
    Check {
        level,
        check: CHECK.to_owned(),
        detail,
    }
}
