use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(live_disconnect::TOKEN_KEY).await?;
    run(service_fn(
        |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let app = &app;
            async move { Ok::<_, Error>(live_disconnect::handle(event.payload, app).await) }
        },
    ))
    .await
}
