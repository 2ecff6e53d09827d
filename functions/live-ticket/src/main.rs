use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(live_ticket::TOKEN_KEY).await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(live_ticket::handle(req, &app).await)
    }))
    .await
}
