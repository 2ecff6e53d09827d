//! The in-process gateway, like the original's mock: configurable latency and failure rate, and
//! a ledger of every charge and refund for tests to count. It keeps the real gateway's promises:
//! a charge repeated with its idempotency key answers the first transaction id, a refund repeated
//! refunds once.

use super::{Charge, PaymentGateway};
use crate::config::GatewayConfig;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub pg_transaction_id: String,
    pub order_id: String,
    pub amount: i64,
    /// The idempotency key the charge was made under.
    pub idempotency_key: String,
}

#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub charges: Vec<LedgerEntry>,
    /// Transaction ids, each refunded once.
    pub refunds: Vec<String>,
}

impl Ledger {
    /// Charges that were never refunded.
    pub fn net_charges(&self) -> Vec<&LedgerEntry> {
        let refunded: std::collections::HashSet<&str> =
            self.refunds.iter().map(String::as_str).collect();
        self.charges
            .iter()
            .filter(|c| !refunded.contains(c.pg_transaction_id.as_str()))
            .collect()
    }

    /// Net amount charged for `order_id`: its charges minus their refunds.
    pub fn net_for_order(&self, order_id: &str) -> i64 {
        self.net_charges()
            .iter()
            .filter(|c| c.order_id == order_id)
            .map(|c| c.amount)
            .sum()
    }
}

#[derive(Debug, Default)]
struct State {
    ledger: Ledger,
    /// Idempotency key → index in `ledger.charges`.
    by_key: HashMap<String, usize>,
}

/// A gateway that sleeps a random latency, fails at a configured rate and remembers everything.
#[derive(Debug)]
pub struct MockGateway {
    config: Mutex<GatewayConfig>,
    state: Mutex<State>,
}

impl MockGateway {
    pub fn new(config: GatewayConfig) -> Self {
        Self {
            config: Mutex::new(config),
            state: Mutex::default(),
        }
    }

    pub fn ledger(&self) -> Ledger {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ledger
            .clone()
    }

    /// Changes the behaviour at run time (tests).
    pub fn set_config(&self, config: GatewayConfig) {
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// True if the answer of a call that was carried out is to be lost.
    fn drops(&self) -> bool {
        let rate = self
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drop_rate;
        rate > 0.0 && rand::random::<f64>() < rate
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
    async fn charge(&self, charge: &Charge<'_>) -> Result<String> {
        if self.simulate().await {
            return Err(Error::GatewayFailed);
        }
        let dropped = self.drops();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&index) = state.by_key.get(charge.idempotency_key) {
            if dropped {
                return Err(Error::Unavailable("payment gateway"));
            }
            return Ok(state.ledger.charges[index].pg_transaction_id.clone());
        }
        let pg_transaction_id = format!("pg_{}", crate::ids::new_id(chrono::Utc::now()));
        let index = state.ledger.charges.len();
        state.ledger.charges.push(LedgerEntry {
            pg_transaction_id: pg_transaction_id.clone(),
            order_id: charge.order_id.to_owned(),
            amount: charge.amount,
            idempotency_key: charge.idempotency_key.to_owned(),
        });
        state
            .by_key
            .insert(charge.idempotency_key.to_owned(), index);
        if dropped {
            // Charged; the answer is lost on the way back.
            return Err(Error::Unavailable("payment gateway"));
        }
        Ok(pg_transaction_id)
    }

    async fn refund(
        &self,
        pg_transaction_id: &str,
        _amount: i64,
        _idempotency_key: &str,
    ) -> Result<()> {
        if self.simulate().await {
            return Err(Error::GatewayFailed);
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !state
            .ledger
            .charges
            .iter()
            .any(|c| c.pg_transaction_id == pg_transaction_id)
        {
            return Err(Error::GatewayFailed);
        }
        if !state.ledger.refunds.iter().any(|r| r == pg_transaction_id) {
            state.ledger.refunds.push(pg_transaction_id.to_owned());
        }
        drop(state);
        if self.drops() {
            return Err(Error::Unavailable("payment gateway"));
        }
        Ok(())
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<String>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Ok(state
            .by_key
            .get(idempotency_key)
            .map(|&index| state.ledger.charges[index].pg_transaction_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaymentType;

    fn charge(key: &str) -> Charge<'_> {
        Charge {
            idempotency_key: key,
            order_id: "o",
            payment_type: PaymentType::Card,
            amount: 1_500,
        }
    }

    #[tokio::test]
    async fn a_repeated_key_never_charges_twice() {
        let gateway = MockGateway::new(GatewayConfig {
            max_latency: std::time::Duration::ZERO,
            ..GatewayConfig::default()
        });
        let first = gateway.charge(&charge("a:0")).await.expect("charged");
        assert_eq!(gateway.charge(&charge("a:0")).await, Ok(first.clone()));
        let other = gateway.charge(&charge("a:1")).await.expect("charged");
        assert_ne!(first, other);
        assert_eq!(gateway.ledger().charges.len(), 2);
        assert_eq!(gateway.find_charge("a:0").await, Ok(Some(first.clone())));
        assert_eq!(gateway.find_charge("a:2").await, Ok(None));

        gateway.refund(&first, 1_500, "r:0").await.expect("refund");
        gateway.refund(&first, 1_500, "r:0").await.expect("again");
        assert_eq!(gateway.ledger().refunds, vec![first]);
        assert_eq!(gateway.ledger().net_for_order("o"), 1_500);
        assert_eq!(
            gateway.refund("pg_unknown", 1, "r:9").await,
            Err(Error::GatewayFailed)
        );
    }
}
