//! `cafe-keys`: the token keys in Secrets Manager (docs/auth.md has the runbook).
//!
//! ```text
//! cafe-keys rotate [--force]     next → current → previous, a new next (the first run creates
//!                                the keyset); the public JWKS is written before the private set
//! cafe-keys show                 the published JWKS (public keys only)
//! cafe-keys development signing|verifying
//!                                the fixed development keyset or its JWKS (emulators, benches;
//!                                never for production)
//! ```
//!
//! `TOKEN_SIGNING_KEYS_ARN` and `TOKEN_VERIFYING_KEYS_ARN` name the two secrets (the stack's
//! outputs), `SECRETS_MANAGER_ENDPOINT` overrides the endpoint (moto), plus the usual AWS
//! credentials and region variables. `ROTATION_MIN_INTERVAL_SECONDS` (default 3600) is how long
//! the next key must have been published before it may start signing.

use cafe::auth::SigningKeyset;
use cafe::auth::rotation::{self, DEFAULT_MIN_INTERVAL};
use std::process::ExitCode;
use std::time::Duration;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &str) -> cafe::Result<String> {
    var(name).ok_or_else(|| cafe::Error::Internal(format!("{name} is not set")))
}

async fn client() -> aws_sdk_secretsmanager::Client {
    let endpoint = var("SECRETS_MANAGER_ENDPOINT");
    cafe::aws::Aws::load(endpoint.as_deref(), Duration::from_secs(10))
        .await
        .secrets_manager()
}

async fn run(args: &[String]) -> cafe::Result<()> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["rotate", flags @ ..] => {
            let force = match flags {
                [] => false,
                ["--force"] => true,
                _ => return Err(usage()),
            };
            let min_interval = match var("ROTATION_MIN_INTERVAL_SECONDS") {
                Some(text) => chrono::Duration::seconds(text.parse().map_err(|_| {
                    cafe::Error::Internal("ROTATION_MIN_INTERVAL_SECONDS is not a number".into())
                })?),
                None => DEFAULT_MIN_INTERVAL,
            };
            let report = rotation::rotate(
                &client().await,
                &required("TOKEN_SIGNING_KEYS_ARN")?,
                &required("TOKEN_VERIFYING_KEYS_ARN")?,
                chrono::Utc::now(),
                min_interval,
                force,
            )
            .await?;
            if report.rotated {
                println!(
                    "rotated: {} now signs, {} is published as next, {} stays published as previous",
                    report.current_kid,
                    report.next_kid,
                    report.previous_kid.as_deref().unwrap_or("-")
                );
            } else {
                println!(
                    "created the first keyset: {} signs, {} is published as next",
                    report.current_kid, report.next_kid
                );
            }
            println!("published key ids: {}", report.published.join(", "));
            Ok(())
        }
        ["show"] => {
            let arn = required("TOKEN_VERIFYING_KEYS_ARN")?;
            let text = cafe::secrets::fetch_secret_string(&arn, &client().await).await?;
            println!("{text}");
            Ok(())
        }
        ["development", "signing"] => {
            println!("{}", SigningKeyset::development().to_json());
            Ok(())
        }
        ["development", "verifying"] => {
            let jwks = SigningKeyset::development().public_jwks()?;
            println!("{}", rotation::jwks_json(&jwks)?);
            Ok(())
        }
        _ => Err(usage()),
    }
}

fn usage() -> cafe::Error {
    cafe::Error::Internal(
        "usage: cafe-keys rotate [--force] | show | development signing|verifying".into(),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cafe-keys: {e}");
            ExitCode::FAILURE
        }
    }
}
