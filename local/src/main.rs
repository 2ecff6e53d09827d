//! `cafe-local`: every function on `http://127.0.0.1:$PORT` (default 3000, or `--port N`),
//! in memory, seeded with the original's two items. Its limits on slow, idle and too many
//! clients (`HEADER_READ_TIMEOUT_MS`, `BODY_READ_TIMEOUT_MS`, `IDLE_TIMEOUT_MS`,
//! `MAX_CONNECTIONS`, `SHUTDOWN_TIMEOUT_MS`) are described in `server.rs`. `SEED_STOCK=N` gives
//! the seeded items N units each on the embedded default (a load test sells more than 10 colas).
//! `CAFE_DEV_ADMIN=email:password` signs up a development-only admin at start (in memory only,
//! refused in production: `local/src/dev_admin.rs`). The web screens under `site/` are served
//! at `/` (`local/src/site.rs`; `CAFE_SITE_DIR` overrides the directory).

use cafe_local::{Limits, serve_with};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    cafe::telemetry::init();
    let port = port()?;
    let limits = Limits::from_env()?;
    let app = cafe::App::from_env_for(
        cafe::config::TokenKey::SignsAndVerifies,
        cafe::gateway::GatewayUse::MovesMoney,
    )
    .await?;
    if let Some(stock) = cafe_local::seed_stock()?
        && app.config.backend == cafe::config::Backend::Memory
    {
        cafe_local::restock_seed_items(&app, stock).await?;
        println!("seeded items stocked with {stock} each (SEED_STOCK)");
    }
    if let Some(spec) = cafe_local::dev_admin::from_env() {
        let member_id = cafe_local::dev_admin::create(&app, &spec).await?;
        println!(
            "development admin {} (member {member_id}) from CAFE_DEV_ADMIN",
            spec.split(':').next().unwrap_or_default()
        );
    }
    if app.config.token_keys_generated {
        tracing::warn!(
            "TOKEN_SIGNING_KEYS is not set: signing with an Ed25519 keyset generated for this run; tokens die with the process"
        );
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let address = listener.local_addr()?;
    println!("cafe-local serving on http://{address}");
    // Ctrl-C stops accepting and lets the requests in flight finish, for up to
    // SHUTDOWN_TIMEOUT_MS (the limits and their variables: local/src/server.rs).
    let mut signal_error = None;
    let shutdown = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            signal_error = Some(error);
        }
    };
    serve_with(listener, Arc::new(app), limits, shutdown).await;
    match signal_error {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// `--port N`, else `PORT`, else 3000.
fn port() -> Result<u16, String> {
    let mut args = std::env::args().skip(1);
    let mut from_flag = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => from_flag = args.next(),
            other => match other.strip_prefix("--port=") {
                Some(value) => from_flag = Some(value.to_owned()),
                None => {
                    return Err(format!(
                        "unknown argument {other}; usage: cafe-local [--port N]"
                    ));
                }
            },
        }
    }
    match from_flag.or_else(|| std::env::var("PORT").ok()) {
        None => Ok(3000),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| format!("invalid port {raw}")),
    }
}
