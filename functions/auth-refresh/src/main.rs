use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(auth_refresh::TOKEN_KEY).await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(auth_refresh::handle(req, &app).await)
    }))
    .await
}
