use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app =
        cafe::App::from_env_for(payment_reconcile::TOKEN_KEY, payment_reconcile::GATEWAY).await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let app = &app;
        async move { payment_reconcile::invoke(event, app).await }
    }))
    .await
}
