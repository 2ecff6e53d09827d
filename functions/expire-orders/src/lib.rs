//! `expire-orders`: run every minute by an EventBridge schedule; moves every `PENDING_PAYMENT`
//! order older than `ORDER_PAYMENT_WINDOW` to `EXPIRED`, with its history row and an
//! `OrderExpired` event (`docs/floor.md`). Payment refuses such an order (400OR003) whether or
//! not the sweep has reached it yet. The event's optional `now` (RFC 3339) replaces the clock
//! for `sam local invoke` and tests, never in production ([`cafe::scheduled::run_at`]).

use cafe::services::floor::{UnpaidSweep, expire_unpaid};
use cafe::{App, Error};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

/// Time kept in hand before the Lambda deadline for the page in flight.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(10);

/// Runs one sweep. Orders whose write failed make the invocation fail (after the summary is
/// logged), so the schedule's retry picks them up.
pub async fn handle(
    event: Value,
    deadline: Option<SystemTime>,
    app: &App,
) -> Result<UnpaidSweep, Error> {
    let now = cafe::scheduled::run_at(&event, app)?;
    let stop_by = deadline.map(|d| cafe::scheduled::stop_by(d, SAFETY_MARGIN));
    let sweep = expire_unpaid(
        app.store.as_ref(),
        now,
        app.config.floor.payment_window,
        stop_by,
    )
    .await?;
    if sweep.failed > 0 {
        return Err(Error::Unavailable("DynamoDB"));
    }
    Ok(sweep)
}

/// One invocation as the Lambda runtime makes it: [`handle`] within the invocation's deadline; a
/// failure is reported as [`cafe::scheduled::RunFailed`] (`errorType` `RunFailed`).
pub async fn invoke(
    event: lambda_runtime::LambdaEvent<Value>,
    app: &App,
) -> Result<UnpaidSweep, cafe::scheduled::RunFailed> {
    cafe::scheduled::invoke(event, |payload, deadline| handle(payload, deadline, app)).await
}
