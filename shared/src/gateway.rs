//! The payment gateway behind a trait. The default is a mock like the original's: configurable
//! latency and failure rate, and a ledger of every charge and refund for tests to count.

use crate::config::GatewayConfig;
use crate::domain::PaymentType;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::sync::Mutex;

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Charges `amount`; the gateway's transaction id, or 502PA000 with nothing charged.
    async fn charge(
        &self,
        order_id: &str,
        payment_type: PaymentType,
        amount: i64,
    ) -> Result<String>;
    /// Refunds a charge in full; 502PA000 if the gateway failed (nothing refunded). Idempotent
    /// per transaction id (as real gateways' cancel-by-transaction is): refunding an already
    /// refunded charge succeeds without refunding twice, so a retried cancellation is safe.
    async fn refund(&self, pg_transaction_id: &str, amount: i64) -> Result<()>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub pg_transaction_id: String,
    pub order_id: String,
    pub amount: i64,
}

#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub charges: Vec<LedgerEntry>,
    pub refunds: Vec<String>,
}

impl Ledger {
    /// Charges that were never refunded.
    pub fn net_charges(&self) -> Vec<&LedgerEntry> {
        self.charges
            .iter()
            .filter(|c| !self.refunds.contains(&c.pg_transaction_id))
            .collect()
    }
}

/// A gateway that sleeps a random latency, fails at a configured rate and remembers everything.
#[derive(Debug)]
pub struct MockGateway {
    config: Mutex<GatewayConfig>,
    ledger: Mutex<Ledger>,
}

impl MockGateway {
    pub fn new(config: GatewayConfig) -> Self {
        Self {
            config: Mutex::new(config),
            ledger: Mutex::default(),
        }
    }

    pub fn ledger(&self) -> Ledger {
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the behaviour at run time (tests).
    pub fn set_config(&self, config: GatewayConfig) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Sleeps the configured latency; then true if this call fails.
    async fn simulate(&self) -> bool {
        let config = *self.config.lock().unwrap_or_else(|p| p.into_inner());
        let span = config.max_latency.saturating_sub(config.min_latency);
        let extra = if span.is_zero() {
            std::time::Duration::ZERO
        } else {
            span.mul_f64(rand::random::<f64>())
        };
        let latency = config.min_latency + extra;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        config.failure_rate > 0.0 && rand::random::<f64>() < config.failure_rate
    }
}

#[async_trait]
impl PaymentGateway for MockGateway {
    async fn charge(
        &self,
        order_id: &str,
        _payment_type: PaymentType,
        amount: i64,
    ) -> Result<String> {
        if self.simulate().await {
            return Err(Error::GatewayFailed);
        }
        let pg_transaction_id = format!("pg_{}", crate::ids::new_id(chrono::Utc::now()));
        self.ledger
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .charges
            .push(LedgerEntry {
                pg_transaction_id: pg_transaction_id.clone(),
                order_id: order_id.to_owned(),
                amount,
            });
        Ok(pg_transaction_id)
    }

    async fn refund(&self, pg_transaction_id: &str, _amount: i64) -> Result<()> {
        if self.simulate().await {
            return Err(Error::GatewayFailed);
        }
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        if !ledger.refunds.iter().any(|r| r == pg_transaction_id) {
            ledger.refunds.push(pg_transaction_id.to_owned());
        }
        Ok(())
    }
}
