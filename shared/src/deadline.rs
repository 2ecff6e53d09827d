//! The time a request may still spend: the Lambda invocation's deadline (from its context), or a
//! default budget where there is none (the local server, tests). Payments check it before they
//! charge anything, so a charge is never started that the function cannot see through to its
//! commit before Lambda stops it.

use chrono::{DateTime, Utc};
use lambda_http::{Request, RequestExt};
use std::time::{Duration, Instant, SystemTime};

/// The budget of a request that carries no Lambda context: payment-create's Lambda timeout.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(29);

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    /// On the monotonic clock, for waiting.
    at: Instant,
    /// On the wall clock, for what is stored (an attempt's deadline).
    wall: DateTime<Utc>,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration, now: DateTime<Utc>) -> Self {
        Self {
            at: Instant::now() + budget,
            wall: now + chrono::Duration::from_std(budget).unwrap_or(chrono::TimeDelta::MAX),
        }
    }

    /// The deadline of the Lambda invocation that carries `req`, or [`DEFAULT_BUDGET`] from now
    /// when it carries none, or one that cannot be true (see [`plausible`]).
    pub fn of_request(req: &Request, now: DateTime<Utc>) -> Self {
        match req
            .lambda_context_ref()
            .and_then(|context| plausible(context.deadline()))
        {
            Some(deadline) => Self::at_system_time(deadline, now),
            None => Self::after(DEFAULT_BUDGET, now),
        }
    }

    /// A deadline given on the system clock (Lambda's context).
    pub fn at_system_time(deadline: SystemTime, now: DateTime<Utc>) -> Self {
        let left = deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Self::after(left, now)
    }

    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// The deadline on the wall clock.
    pub fn wall(&self) -> DateTime<Utc> {
        self.wall
    }

    /// True if at least `needed` is left.
    pub fn allows(&self, needed: Duration) -> bool {
        self.remaining() >= needed
    }
}

/// An invocation's deadline as the Runtime API gave it, unless it cannot be one: at the start of
/// an invocation Lambda's deadline is always ahead (its timeout is at least 1 s), so one more
/// than a minute in the past is a malformed header — cargo-lambda 1.9.2's emulator sends the
/// constant `600000`, i.e. 1970-01-01T00:10:00Z — and is ignored, with a warning, in favour of the
/// configured budget. Trusting it would refuse every payment and cut every scheduled run short.
pub fn plausible(deadline: SystemTime) -> Option<SystemTime> {
    let floor = SystemTime::now().checked_sub(Duration::from_secs(60))?;
    if deadline >= floor {
        Some(deadline)
    } else {
        tracing::warn!(
            deadline_ms = deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            "the invocation's deadline is long past, so it cannot be real; using the default budget"
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_lambda_context_gets_the_default_budget() {
        let now = Utc::now();
        let req = lambda_http::Request::default();
        let deadline = Deadline::of_request(&req, now);
        assert!(deadline.remaining() <= DEFAULT_BUDGET);
        assert!(deadline.remaining() > DEFAULT_BUDGET - Duration::from_secs(1));
        assert_eq!(
            deadline.wall(),
            now + chrono::Duration::from_std(DEFAULT_BUDGET).expect("budget")
        );
    }

    #[test]
    fn a_deadline_that_cannot_be_real_is_ignored() {
        let emulator = SystemTime::UNIX_EPOCH + Duration::from_millis(600_000);
        assert_eq!(plausible(emulator), None);
        let ahead = SystemTime::now() + Duration::from_secs(15);
        assert_eq!(plausible(ahead), Some(ahead));
        let just_past = SystemTime::now() - Duration::from_secs(2);
        assert_eq!(
            plausible(just_past),
            Some(just_past),
            "a slow start is still real"
        );
    }

    #[test]
    fn a_past_deadline_leaves_nothing() {
        let now = Utc::now();
        let past = SystemTime::now() - Duration::from_secs(5);
        let deadline = Deadline::at_system_time(past, now);
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert!(!deadline.allows(Duration::from_millis(1)));
        assert!(deadline.allows(Duration::ZERO));
    }
}
