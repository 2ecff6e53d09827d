//! `payment-reconcile`: run every 5 minutes by an EventBridge schedule; settles every payment
//! attempt whose request died (a charge with no record of its outcome, a commit with no answer, a
//! refund left undone — see `cafe::services::reconcile` and `docs/payments.md`). The event's
//! optional `now` (RFC 3339) replaces the clock outside production only.

use cafe::services::reconcile::{ReconcileOptions, ReconcileSummary, run_reconcile};
use cafe::{App, Error};
use serde_json::Value;
use std::time::{Duration, SystemTime};

/// This function checks no token, so it never reads the token key.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::NotUsed;
/// Charges, refunds or reconciles: in production this function refuses to start without a real
/// payment gateway (`PAYMENT_GATEWAY_URL`, https, and `PAYMENT_GATEWAY_SECRET_ARN`).
pub const GATEWAY: cafe::gateway::GatewayUse = cafe::gateway::GatewayUse::MovesMoney;

/// Time kept in hand before the Lambda deadline: the attempt in flight (its gateway calls and
/// its commit) must finish inside it.
pub const SAFETY_MARGIN: Duration = Duration::from_secs(30);

/// Runs one reconciliation pass and answers its summary. Attempts that could not be settled now
/// (the gateway or the store failing) make the invocation fail after the summary is logged; the
/// next run (or the schedule's retry) picks them up.
pub async fn handle(
    event: Value,
    deadline: Option<SystemTime>,
    app: &App,
) -> Result<ReconcileSummary, Error> {
    let now = cafe::scheduled::run_at(&event, app)?;
    let options = ReconcileOptions {
        stop_by: deadline.map(|d| cafe::scheduled::stop_by(d, SAFETY_MARGIN)),
        ..ReconcileOptions::default()
    };
    let summary = run_reconcile(app, now, &options).await?;
    if summary.failed > 0 {
        return Err(Error::Unavailable("payment settlement"));
    }
    Ok(summary)
}

/// One invocation as the Lambda runtime makes it: [`handle`] within the invocation's deadline; a
/// failure is reported as [`cafe::scheduled::RunFailed`] (`errorType` `RunFailed`).
pub async fn invoke(
    event: lambda_runtime::LambdaEvent<Value>,
    app: &App,
) -> Result<ReconcileSummary, cafe::scheduled::RunFailed> {
    cafe::scheduled::invoke(event, |payload, deadline| handle(payload, deadline, app)).await
}
