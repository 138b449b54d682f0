//! The Lambda entry point: logs set up by the runtime's own initialisation, settings checked once,
//! SDK clients prepared once, then the runtime loop.

// The invocation's future nests every step of a record's handling; its layout needs more than
// the default query depth.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use sgwatch_handler::{aws, logs, process, settings::Settings};

fn main() -> Result<(), Error> {
    // The act function runs from the handler's zip (one build signs and checks the links): its
    // handler is `act`, the binary beside this one, which takes over this process.
    if std::env::var("_HANDLER").as_deref() == Ok("act") {
        use std::os::unix::process::CommandExt;
        let root = std::env::var_os("LAMBDA_TASK_ROOT").unwrap_or_else(|| "/var/task".into());
        let act = std::path::Path::new(&root).join("act");
        let error = std::process::Command::new(&act).exec();
        return Err(format!("cannot start {}: {error}", act.display()).into());
    }
    // Lambda's logging controls set AWS_LAMBDA_LOG_FORMAT (and AWS_LAMBDA_LOG_LEVEL) from the
    // function's LoggingConfig; when nothing chose a format, keep the JSON lines (one `decision`
    // line per notification) that docs/FAILURE-SEMANTICS.md documents. This runs before any
    // thread exists, the one time changing the environment is sound.
    // https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-logformat.html
    if std::env::var_os("AWS_LAMBDA_LOG_FORMAT").is_none() {
        std::env::set_var("AWS_LAMBDA_LOG_FORMAT", "JSON");
    }
    // Addresses at INFO and above keep only their domain (logs.rs).
    logs::init();

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Error> {
    // A wrong setting stops the function here, once, with one clear message.
    let settings =
        Settings::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let config = aws::load_from_env().await;
    let services = process::Services::new(&config, &settings)
        .with_failure_queue(&config, settings.failure_queue_url.clone())
        .with_config_bucket(settings.config_bucket.clone());
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
