use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    cafe::telemetry::init();
    let app = cafe::App::from_env(shop_board::TOKEN_KEY).await?;
    run(service_fn(|req| async {
        Ok::<_, Error>(shop_board::handle(req, &app).await)
    }))
    .await
}
