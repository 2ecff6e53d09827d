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

pub use http::HttpGateway;
pub use mock::{Ledger, LedgerEntry, MockGateway};

use crate::domain::PaymentType;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::time::Duration;

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
