//! The Lambda entry point: JSON logs, settings checked once, SDK clients built once, then the
//! runtime loop.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use sgwatch_handler::{aws, process, settings::Settings};

/// `RUST_LOG` as a single level (`error` … `trace`); `info` when unset or unreadable.
fn log_level() -> tracing::Level {
    std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(tracing::Level::INFO)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_max_level(log_level())
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .init();

    // A wrong setting stops the function here, once, with one clear message.
    let settings =
        Settings::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let config = aws::load_from_env().await;
    let services = process::Services::new(&config, &settings)
        .with_failure_queue(&config, std::env::var("SGWATCH_FAILURE_QUEUE_URL").ok())
        .with_config_bucket(std::env::var("SGWATCH_CONFIG_BUCKET").ok());
    let (settings, services) = (&settings, &services);

    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The request id owns the claims this invocation takes; the deadline bounds its sends.
        let invocation =
            process::Invocation::lambda(&event.context.request_id, event.context.deadline);
        let report =
            process::handle_invocation(&event.payload, &invocation, settings, services).await?;
        Ok::<_, Error>(report)
    }))
    .await
}
