//! Where a function's init time goes: runs the steps of `App::from_env` on the AWS backend one
//! by one, in a fresh process, and prints each step's duration in microseconds (one line,
//! `step=µs …`). Run it with the environment of a function (see `scripts/bench.sh`).

use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut last = start;
    let mut out = Vec::new();
    let mut lap = |name: &str| {
        let now = Instant::now();
        out.push(format!("{name}={}", (now - last).as_micros()));
        last = now;
    };
    cafe::telemetry::init();
    lap("telemetry");
    let config = cafe::config::Config::from_env(cafe::config::TokenKey::Verifies)?;
    lap("config");
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(config.dynamodb_endpoint.clone().unwrap_or_default())
        .load()
        .await;
    lap("aws_config_load");
    let _client = aws_sdk_dynamodb::Client::new(&shared);
    lap("dynamodb_client");
    let _second = cafe::store::dynamo::build_client(
        config.dynamodb_endpoint.as_deref(),
        config.dependency_timeout,
    )
    .await;
    lap("build_client_again");
    let _lock = cafe::lock::RedisLock::new(
        config
            .redis_url
            .as_deref()
            .unwrap_or("redis://127.0.0.1:6379"),
        config.lock,
        config.dependency_timeout,
    )?;
    lap("redis_lock");
    let _passwords = cafe::auth::PasswordHasher::new(config.argon2)?;
    lap("password_hasher");
    let _app = cafe::App::from_env(cafe::config::TokenKey::Verifies).await?;
    lap("app_from_env_again");
    println!("{} total={}", out.join(" "), start.elapsed().as_micros());
    Ok(())
}
