//! The `act` function's entry point: the owners' Revert and Keep links, behind a Lambda
//! function URL. Its own binary and role: it can revoke an ingress rule of a group that opts in,
//! and nothing the handler can.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use sgwatch_handler::act::{self, ActServices};
use sgwatch_handler::{aws, logs, settings::Settings};

fn main() -> Result<(), Error> {
    // As the handler: JSON log lines unless the function's logging config chose otherwise.
    if std::env::var_os("AWS_LAMBDA_LOG_FORMAT").is_none() {
        std::env::set_var("AWS_LAMBDA_LOG_FORMAT", "JSON");
    }
    logs::init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Error> {
    let settings =
        Settings::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let (_, table) = act::required(&settings)
        .inspect_err(|e| tracing::error!(error = %e, "invalid settings"))?;
    let config = aws::load_from_env().await;
    let services = ActServices::new(&config, table);
    let (settings, services) = (&settings, &services);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let page = act::respond(
            &event.payload,
            settings,
            services,
            std::time::SystemTime::now(),
        )
        .await;
        Ok::<_, Error>(act::response(&page))
    }))
    .await
}
