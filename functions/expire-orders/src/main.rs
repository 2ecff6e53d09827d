use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(expire_orders::TOKEN_KEY).await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let app = &app;
        async move { expire_orders::invoke(event, app).await }
    }))
    .await
}
