use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(live_sender::TOKEN_KEY).await?;
    // `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`: the stage is part of it.
    let endpoint = std::env::var("LIVE_MANAGEMENT_ENDPOINT")
        .map_err(|_| "LIVE_MANAGEMENT_ENDPOINT is required")?;
    let aws = cafe::aws::Aws::load(None, app.config.dependency_timeout).await;
    let poster: Arc<dyn cafe::services::live::Poster> = Arc::new(live_sender::ManagementApi::new(
        aws.api_gateway_management(&endpoint),
    ));
    run(service_fn(
        |event: LambdaEvent<cafe::events::eventbridge::BusEvent>| {
            let (app, poster) = (&app, poster.clone());
            async move {
                live_sender::handle(event.payload, app, poster)
                    .await
                    .map_err(Error::from)
            }
        },
    ))
    .await
}
