//! What the scheduled functions (`expire-withdrawals`, `payment-reconcile`) share: the event's
//! `now` override, the instant to stop by, and [`RunFailed`], the error a failed run reports.

use crate::app::App;
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use lambda_http::lambda_runtime::Diagnostic;
use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};

/// The `now` override of the event (RFC 3339, at the top level or in `detail`), if any.
pub fn requested_now(event: &Value) -> Result<Option<DateTime<Utc>>> {
    let raw = event
        .get("now")
        .or_else(|| event.get("detail").and_then(|d| d.get("now")));
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| Error::InvalidParameter("now".into())),
        Some(_) => Err(Error::InvalidParameter("now".into())),
    }
}

/// The instant a run acts at: the event's `now` (tests, `sam local invoke`), else the clock.
/// In production (`CAFE_ENV`) an event that sets `now` is refused before anything is touched: a
/// manual invoke with a future date must not end members or settle payments early.
pub fn run_at(event: &Value, app: &App) -> Result<DateTime<Utc>> {
    match requested_now(event)? {
        Some(_) if app.config.production => {
            tracing::error!("refused a run whose event sets `now`: not allowed in production");
            Err(Error::InvalidParameter(
                "now (the clock override is refused in production)".into(),
            ))
        }
        Some(now) => Ok(now),
        None => Ok(app.clock.now()),
    }
}

/// The instant to stop by: `deadline` minus `margin`, measured on the monotonic clock.
pub fn stop_by(deadline: SystemTime, margin: Duration) -> Instant {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .saturating_sub(margin);
    Instant::now() + left
}

/// One invocation as the Lambda runtime makes it: `run` given the event and the invocation's
/// deadline (when it is plausible); a failure is reported as [`RunFailed`]. What each scheduled
/// function's `invoke` (and so its `main`) is.
pub async fn invoke<T, Run>(
    event: lambda_http::lambda_runtime::LambdaEvent<Value>,
    run: impl FnOnce(Value, Option<SystemTime>) -> Run,
) -> std::result::Result<T, RunFailed>
where
    Run: std::future::Future<Output = Result<T>>,
{
    let deadline = crate::deadline::plausible(event.context.deadline());
    Ok(run(event.payload, deadline).await?)
}

/// A scheduled run that failed, as the Lambda runtime reports it. The runtime names an error by
/// its Rust type (`lambda_runtime::Diagnostic`), so a boxed error would be reported as
/// `&alloc::boxed::Box<dyn core::error::Error + …>`; this one is reported with `errorType`
/// [`RunFailed::ERROR_TYPE`] and `errorMessage` the contract code and the error
/// (`503CO000 payment settlement unavailable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailed(pub Error);

impl RunFailed {
    /// The `errorType` of every failed scheduled run.
    pub const ERROR_TYPE: &'static str = "RunFailed";
}

impl From<Error> for RunFailed {
    fn from(error: Error) -> Self {
        Self(error)
    }
}

impl std::fmt::Display for RunFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0.wire().code, self.0)
    }
}

impl std::error::Error for RunFailed {}

impl From<RunFailed> for Diagnostic {
    fn from(failed: RunFailed) -> Self {
        Diagnostic {
            error_type: RunFailed::ERROR_TYPE.to_owned(),
            error_message: failed.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_is_reported_by_name_with_its_contract_code() {
        let reported = Diagnostic::from(RunFailed::from(Error::Unavailable("payment settlement")));
        assert_eq!(reported.error_type, "RunFailed");
        assert_eq!(
            reported.error_message,
            "503CO000 payment settlement unavailable"
        );
    }
}
