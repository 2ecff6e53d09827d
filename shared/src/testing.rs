//! Support for tests across the workspace (kept out of the request path).

use crate::clock::ManualClock;
use crate::config::{Argon2Params, Config};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;

/// The embedded default with the cheapest Argon2 parameters and a fixed secret.
pub fn test_config() -> Config {
    Config {
        argon2: Argon2Params::cheapest_for_tests(),
        ..Config::default()
    }
}

/// A fixed starting instant for manual clocks.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 9, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(epoch()))
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test.sh, which starts Redis and moto")
    })
}

/// The Redis server started by `scripts/test.sh`.
pub fn redis_url() -> String {
    required_env("CAFE_TEST_REDIS_URL")
}

/// The DynamoDB-compatible server (moto) started by `scripts/test.sh`.
pub fn dynamodb_endpoint() -> String {
    required_env("CAFE_TEST_DYNAMODB_ENDPOINT")
}
