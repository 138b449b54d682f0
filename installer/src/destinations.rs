//! `status`'s check of the destinations' secrets: each SSM parameter the stack names (parameter
//! `DestinationParameters`) exists and can be read. Its value is not decrypted: the URL is a
//! secret the installer has no need to see, and the handler's role reads it itself.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::ParameterType;

use crate::status::{Check, Level};

const CHECK: &str = "destination parameter";

/// One check per parameter the deployed stack names; none when it names none.
pub async fn checks(config: &SdkConfig, stack_params: &BTreeMap<String, String>) -> Vec<Check> {
    let names: Vec<&str> = stack_params
        .get("DestinationParameters")
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Vec::new();
    }
    let ssm = crate::aws::ssm(config);
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let read = ssm.get_parameter().name(name).send().await;
        out.push(check(name, read));
    }
    out
}

fn check(
    name: &str,
    read: Result<
        aws_sdk_ssm::operation::get_parameter::GetParameterOutput,
        aws_sdk_ssm::error::SdkError<GetParameterError>,
    >,
) -> Check {
    let (level, detail) = match read {
        Ok(out) => match out.parameter().and_then(|p| p.r#type()) {
            Some(ParameterType::SecureString) => (Level::Ok, format!("{name} (SecureString)")),
            _ => (
                Level::Warn,
                format!(
                    "{name} is not a SecureString: the URL is a secret; recreate it with --type SecureString"
                ),
            ),
        },
        Err(e) => match e.as_service_error() {
            Some(GetParameterError::ParameterNotFound(_)) => (
                Level::Fail,
                format!(
                    "{name} does not exist; the handler cannot post there: \
                     aws ssm put-parameter --type SecureString --name {name} --value <URL>"
                ),
            ),
            Some(s) => (
                Level::Fail,
                format!(
                    "{name} cannot be read: {} {}",
                    s.code().unwrap_or("error"),
                    s.message().unwrap_or_default()
                ),
            ),
            None => (
                Level::Fail,
                format!(
                    "{name} cannot be read: {}",
                    aws_sdk_ssm::error::DisplayErrorContext(&e)
                ),
            ),
        },
    };
    Check {
        level,
        check: CHECK.to_owned(),
        detail,
    }
}
