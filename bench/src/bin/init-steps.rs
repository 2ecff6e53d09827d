//! Where a function's init time goes: runs the steps of `App::from_env` on the AWS backend one
//! by one, in a fresh process, and prints each step's duration in microseconds (one line,
//! `step=µs …`). Run it with the environment of a function (see `docs/benchmarks.md`);
//! `init-steps chain` first times the SDK's default provider chains, for comparison.

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
    // What every function does: region and credentials from the Lambda environment when it
    // holds them (`cafe::aws::environment_identity`). `init-steps chain` times the
    // SDK's full provider chains first instead, as the functions did before.
    let chain_first = std::env::args().nth(1).as_deref() == Some("chain");
    if chain_first {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(endpoint) = &config.dynamodb_endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let _chain = loader.load().await;
        lap("aws_config_provider_chains");
    }
    let shared = cafe::aws::sdk_config(
        config.dynamodb_endpoint.as_deref(),
        config.dependency_timeout,
    )
    .await;
    lap("sdk_config");
    let _client = aws_sdk_dynamodb::Client::new(&shared);
    lap("dynamodb_client");
    // The first and a second EventBridge client (events-publisher builds one): the first pays
    // for what the EventBridge crate sets up once per process, the second for the client alone.
    let _events = aws_sdk_eventbridge::Client::new(&shared);
    lap("eventbridge_client");
    let _events_again = aws_sdk_eventbridge::Client::new(&shared);
    lap("eventbridge_client_again");
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
    lap("app_from_env_whole");
    println!("{} total={}", out.join(" "), start.elapsed().as_micros());
    Ok(())
}
