//! `expire-withdrawals`: run daily by an EventBridge schedule (03:00 KST); ends every member
//! withdrawn 30 or more days ago. The event's optional `now` (RFC 3339, at the top level or in
//! `detail`) replaces the clock, for `sam local invoke` and tests — never in production
//! (`CAFE_ENV`, see `Config::production`): there a manual invoke with a future `now` would end
//! members early, irreversibly, so an event that carries one is refused and nothing is touched.

use cafe::services::expiry::{ExpiryOptions, ExpirySummary, run_expiry};
use cafe::{App, Error};
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;

/// Time kept in hand before the Lambda deadline: the page in flight and its writes must finish
/// inside it.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(15);

/// The `now` override of the event, if any (see [`cafe::scheduled::requested_now`]).
pub use cafe::scheduled::requested_now;

/// The instant to stop by: the deadline minus [`SAFETY_MARGIN`], measured on the monotonic clock.
pub fn stop_by(deadline: SystemTime) -> Instant {
    cafe::scheduled::stop_by(deadline, SAFETY_MARGIN)
}

/// Runs one expiry pass. A run that stops early (deadline) answers its summary with
/// `complete: false`; the next run finishes the rest. Members whose write failed make the
/// invocation fail (after the summary is logged), so the schedule's retry picks them up.
pub async fn handle(
    event: Value,
    deadline: Option<SystemTime>,
    app: &App,
) -> Result<ExpirySummary, Error> {
    let now = cafe::scheduled::run_at(&event, app)?;
    let options = ExpiryOptions {
        stop_by: deadline.map(stop_by),
        ..ExpiryOptions::default()
    };
    let summary = run_expiry(app.store.clone(), now, &options).await?;
    app.metrics.expiry_run(summary.expired, summary.failed);
    if summary.failed > 0 {
        return Err(Error::Unavailable("DynamoDB"));
    }
    Ok(summary)
}

/// One invocation as the Lambda runtime makes it: [`handle`] within the invocation's deadline; a
/// failure is reported as [`cafe::scheduled::RunFailed`] (`errorType` `RunFailed`).
pub async fn invoke(
    event: lambda_runtime::LambdaEvent<Value>,
    app: &App,
) -> Result<ExpirySummary, cafe::scheduled::RunFailed> {
    cafe::scheduled::invoke(event, |payload, deadline| handle(payload, deadline, app)).await
}
