use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env_for(order_cancel::TOKEN_KEY, order_cancel::GATEWAY).await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(order_cancel::handle(req, &app).await)
    }))
    .await
}
