use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(auth_logout::TOKEN_KEY).await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(auth_logout::handle(req, &app).await)
    }))
    .await
}
