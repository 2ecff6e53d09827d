use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env_for(payment_create::TOKEN_KEY, payment_create::GATEWAY).await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(payment_create::handle(req, &app).await)
    }))
    .await
}
