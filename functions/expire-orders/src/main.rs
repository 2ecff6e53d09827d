use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(expire_orders::TOKEN_KEY).await?;
    run(service_fn(|event: LambdaEvent<Value>| {
        let app = &app;
        async move {
            let deadline = cafe::deadline::plausible(event.context.deadline());
            expire_orders::handle(event.payload, deadline, app)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
