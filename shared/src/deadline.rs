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

    /// The deadline of the Lambda invocation that carries `req`, or [`DEFAULT_BUDGET`] from now.
    pub fn of_request(req: &Request, now: DateTime<Utc>) -> Self {
        match req.lambda_context_ref() {
            Some(context) if context.deadline > 0 => Self::at_system_time(context.deadline(), now),
            _ => Self::after(DEFAULT_BUDGET, now),
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
    fn a_past_deadline_leaves_nothing() {
        let now = Utc::now();
        let past = SystemTime::now() - Duration::from_secs(5);
        let deadline = Deadline::at_system_time(past, now);
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert!(!deadline.allows(Duration::from_millis(1)));
        assert!(deadline.allows(Duration::ZERO));
    }
}
