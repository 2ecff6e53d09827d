//! The payment gateway behind a trait, shaped like a Korean PG's API (Toss Payments style):
//! a charge is a confirmation sent with an `Idempotency-Key`, a refund is a cancel of one
//! transaction. Two implementations: [`MockGateway`] in process (the embedded default: latency,
//! failure rate, a ledger for tests) and [`HttpGateway`] over HTTP to a gateway server (the
//! project's `cafe-pg`, whose ledger lives in a file and so survives a crash of the caller).
//!
//! What a caller can rely on:
//! - **`charge` is idempotent per key.** Payments use `<attemptId>:<n>` for part `n`, so a charge
//!   repeated after a timeout, a crash or by the reconciler answers the first one's transaction
//!   id and never charges twice.
//! - **`refund` is idempotent per transaction id** (the key only names the request).
//! - **Errors say what happened.** [`Error::GatewayFailed`] (502PA000): the gateway answered and
//!   refused, nothing was charged or refunded. [`Error::Unavailable`] (503): no answer (timeout,
//!   connection refused, a 5xx): the outcome is unknown and the same call may be repeated.

mod http;
mod mock;

pub use crate::config::GatewayUse;
pub use http::HttpGateway;
pub use mock::{Ledger, LedgerEntry, MockGateway};

use crate::domain::PaymentType;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// One part of a payment to charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge<'a> {
    /// `<attemptId>:<n>`: the same key always means the same charge.
    pub idempotency_key: &'a str,
    pub order_id: &'a str,
    pub payment_type: PaymentType,
    pub amount: i64,
}

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Charges `charge.amount`: the gateway's transaction id. A repeat with the same
    /// idempotency key answers the same id without charging again.
    async fn charge(&self, charge: &Charge<'_>) -> Result<String>;
    /// Refunds a charge in full. Refunding an already refunded charge succeeds without refunding
    /// twice, so a retried cancellation or reconciliation is safe.
    async fn refund(
        &self,
        pg_transaction_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<()>;
    /// The transaction made under `idempotency_key`, if any: what a request that died charged.
    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<String>>;
}

/// The gateway of a function that moves no money (in production): every call fails closed, so a
/// gateway call added to such a function by mistake can never reach the in-process mock.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGateway;

impl NoGateway {
    fn refused<T>() -> Result<T> {
        tracing::error!("a payment gateway call in a function that moves no money");
        Err(Error::Internal(
            "this function has no payment gateway".into(),
        ))
    }
}

#[async_trait]
impl PaymentGateway for NoGateway {
    async fn charge(&self, _: &Charge<'_>) -> Result<String> {
        Self::refused()
    }

    async fn refund(&self, _: &str, _: i64, _: &str) -> Result<()> {
        Self::refused()
    }

    async fn find_charge(&self, _: &str) -> Result<Option<String>> {
        Self::refused()
    }
}

/// Bounds one gateway call: past `timeout` the outcome is unknown (503, repeatable).
pub async fn bounded<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!(?timeout, "payment gateway call timed out; outcome unknown");
            Err(Error::Unavailable("payment gateway"))
        }
    }
}

/// A gateway whose every call is timed into [`Metrics::gateway_call`] and runs in a
/// `dependency` span (what the X-Ray subsegment and the log lines inside it are named by). A call
/// cut off by [`bounded`] counts as a failure: it is measured when dropped unanswered.
pub struct ObservedGateway {
    inner: Arc<dyn PaymentGateway>,
    metrics: Metrics,
}

impl ObservedGateway {
    pub fn new(inner: Arc<dyn PaymentGateway>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }

    async fn observe<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let mut measured = Measured {
            metrics: &self.metrics,
            operation,
            started: Instant::now(),
            failed: true,
        };
        let outcome = call
            .instrument(crate::spans::dependency_span("gateway", operation))
            .await;
        measured.failed = outcome.is_err();
        outcome
    }
}

/// Writes the call's measurement when it ends, answered or dropped.
struct Measured<'a> {
    metrics: &'a Metrics,
    operation: &'static str,
    started: Instant,
    failed: bool,
}

impl Drop for Measured<'_> {
    fn drop(&mut self) {
        self.metrics
            .gateway_call(self.operation, self.started.elapsed(), self.failed);
    }
}

#[async_trait]
impl PaymentGateway for ObservedGateway {
    async fn charge(&self, charge: &Charge<'_>) -> Result<String> {
        self.observe("charge", self.inner.charge(charge)).await
    }

    async fn refund(
        &self,
        pg_transaction_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<()> {
        let refund = self
            .inner
            .refund(pg_transaction_id, amount, idempotency_key);
        self.observe("refund", refund).await
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<String>> {
        self.observe("lookup", self.inner.find_charge(idempotency_key))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Never answers.
    struct Silent;

    #[async_trait]
    impl PaymentGateway for Silent {
        async fn charge(&self, _: &Charge<'_>) -> Result<String> {
            std::future::pending().await
        }
        async fn refund(&self, _: &str, _: i64, _: &str) -> Result<()> {
            std::future::pending().await
        }
        async fn find_charge(&self, _: &str) -> Result<Option<String>> {
            Ok(None)
        }
    }

    #[tokio::test]
    async fn a_call_cut_off_by_its_timeout_counts_as_a_gateway_failure() {
        let (metrics, measured) = Metrics::recording();
        let gateway = ObservedGateway::new(Arc::new(Silent), metrics);
        let charge = Charge {
            idempotency_key: "a:0",
            order_id: "o",
            payment_type: PaymentType::Card,
            amount: 1000,
        };
        let outcome = bounded(Duration::from_millis(20), gateway.charge(&charge)).await;
        assert!(matches!(outcome, Err(Error::Unavailable(_))));
        assert_eq!(
            measured.sum("GatewayFailures", &[("Operation", "charge")]),
            1.0
        );
        assert!(measured.sum("GatewayLatency", &[]) >= 20.0);
        assert_eq!(gateway.find_charge("a:0").await.ok(), Some(None));
        assert_eq!(
            measured.sum("GatewayFailures", &[("Operation", "lookup")]),
            0.0
        );
        assert_eq!(measured.count("GatewayLatency"), 2);
    }
}
