//! Shared set-up of the order and payment tests: an [`App`] over any store and lock, a gateway
//! whose failures can be scripted, members, items and orders.
//!
//! Every scenario takes a [`Harness`], so the same scenario runs with the in-process lock and the
//! Redis lock, and over any `Arc<dyn Store>` (the memory store here, DynamoDB in its own suite).

#![allow(dead_code)]

use async_trait::async_trait;
use cafe::App;
use cafe::auth::PasswordHasher;
use cafe::clock::SystemClock;
use cafe::config::{GatewayConfig, LockConfig};
use cafe::domain::{Item, Member, PaymentType};
use cafe::gateway::{Charge, Ledger, MockGateway, PaymentGateway};
use cafe::lock::{LocalLock, Lock, RedisLock};
use cafe::services::orders::{self, CreateOrderRequest, LineRequest};
use cafe::services::payments::{PaymentPart, PaymentRequest};
use cafe::store::{MemoryStore, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A mock gateway (latency, failure rate, ledger) that can also fail one chosen call.
pub struct ScriptedGateway {
    inner: MockGateway,
    charges: AtomicUsize,
    refunds: AtomicUsize,
    /// 1-based number of the charge call that fails; 0 = none.
    fail_charge: AtomicUsize,
    fail_refund: AtomicUsize,
}

impl ScriptedGateway {
    pub fn new(config: GatewayConfig) -> Self {
        Self {
            inner: MockGateway::new(config),
            charges: AtomicUsize::new(0),
            refunds: AtomicUsize::new(0),
            fail_charge: AtomicUsize::new(0),
            fail_refund: AtomicUsize::new(0),
        }
    }

    pub fn ledger(&self) -> Ledger {
        self.inner.ledger()
    }

    pub fn set_config(&self, config: GatewayConfig) {
        self.inner.set_config(config);
    }

    /// Makes the `n`-th charge call from now fail.
    pub fn fail_charge_call(&self, n: usize) {
        self.fail_charge
            .store(self.charges.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }

    /// Makes the `n`-th refund call from now fail.
    pub fn fail_refund_call(&self, n: usize) {
        self.fail_refund
            .store(self.refunds.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }

    /// (charges, refunds, charges never refunded) of one order.
    pub fn counts(&self, order_id: &str) -> (usize, usize, usize) {
        let ledger = self.ledger();
        let charges: Vec<_> = ledger
            .charges
            .iter()
            .filter(|c| c.order_id == order_id)
            .collect();
        let refunds = charges
            .iter()
            .filter(|c| ledger.refunds.contains(&c.pg_transaction_id))
            .count();
        (charges.len(), refunds, charges.len() - refunds)
    }
}

#[async_trait]
impl PaymentGateway for ScriptedGateway {
    async fn charge(&self, charge: &Charge<'_>) -> cafe::Result<String> {
        let call = self.charges.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.fail_charge.load(Ordering::SeqCst) {
            return Err(cafe::Error::GatewayFailed);
        }
        self.inner.charge(charge).await
    }

    async fn refund(
        &self,
        pg_transaction_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> cafe::Result<()> {
        let call = self.refunds.fetch_add(1, Ordering::SeqCst) + 1;
        if call == self.fail_refund.load(Ordering::SeqCst) {
            return Err(cafe::Error::GatewayFailed);
        }
        self.inner
            .refund(pg_transaction_id, amount, idempotency_key)
            .await
    }

    async fn find_charge(&self, idempotency_key: &str) -> cafe::Result<Option<String>> {
        self.inner.find_charge(idempotency_key).await
    }
}

/// Gateway latency 0–2 ms, never failing: for tests where latency is not the point.
pub fn quick_gateway() -> GatewayConfig {
    GatewayConfig {
        min_latency: Duration::ZERO,
        max_latency: Duration::from_millis(2),
        failure_rate: 0.0,
        drop_rate: 0.0,
    }
}

pub fn lock_config(ttl_ms: u64, max_wait_ms: u64) -> LockConfig {
    LockConfig {
        ttl: Duration::from_millis(ttl_ms),
        max_wait: Duration::from_millis(max_wait_ms),
    }
}

pub fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// A DynamoDB store on a fresh table of the server `scripts/test.sh` started (moto).
pub async fn dynamo_store() -> Arc<dyn Store> {
    Arc::new(cafe::store::dynamo::testing::fresh_store(&cafe::testing::dynamodb_endpoint()).await)
}

pub fn local_lock(config: LockConfig) -> Arc<dyn Lock> {
    Arc::new(LocalLock::new(config))
}

/// A Redis lock on the server `scripts/test.sh` started.
pub fn redis_lock(config: LockConfig) -> Arc<dyn Lock> {
    redis_lock_at(&cafe::testing::redis_url(), config, Duration::from_secs(2))
}

pub fn redis_lock_at(url: &str, config: LockConfig, timeout: Duration) -> Arc<dyn Lock> {
    Arc::new(RedisLock::new(url, config, timeout).expect("redis lock"))
}

pub struct Harness {
    pub app: App,
    pub gateway: Arc<ScriptedGateway>,
}

pub fn harness(store: Arc<dyn Store>, lock: Arc<dyn Lock>, gateway: GatewayConfig) -> Arc<Harness> {
    harness_with(store, lock, gateway, cafe::testing::test_config().floor)
}

/// [`harness`] with the floor's limits and window set (`docs/floor.md`).
pub fn harness_with(
    store: Arc<dyn Store>,
    lock: Arc<dyn Lock>,
    gateway: GatewayConfig,
    floor: cafe::config::FloorConfig,
) -> Arc<Harness> {
    let mut config = cafe::testing::test_config();
    config.gateway = gateway;
    config.floor = floor;
    let scripted = Arc::new(ScriptedGateway::new(gateway));
    let app = App {
        tokens: cafe::app::access_tokens(&config, None).expect("token keys"),
        passwords: PasswordHasher::new(config.argon2).expect("hasher"),
        clock: Arc::new(SystemClock),
        store,
        lock,
        gateway: scripted.clone(),
        event_log: None,
        metrics: cafe::metrics::Metrics::disabled(),
        login_throttle: std::sync::Arc::new(cafe::throttle::LocalThrottle::default()),
        config,
    };
    Arc::new(Harness {
        app,
        gateway: scripted,
    })
}

impl Harness {
    /// A new `SERVICE` member.
    pub async fn member(&self) -> Member {
        let now = self.app.clock.now();
        cafe::testing::stored_member(self.app.store.as_ref(), "orders.test", false, now)
            .await
            .expect("member")
    }

    /// A new member that has withdrawn.
    pub async fn withdrawn_member(&self) -> Member {
        let now = self.app.clock.now();
        cafe::testing::stored_member(self.app.store.as_ref(), "orders.test", true, now)
            .await
            .expect("withdrawn member")
    }

    /// A new item with its own id, so tests never share stock.
    pub async fn item(&self, price: i64, stock: i64) -> Item {
        let item = Item {
            item_id: cafe::ids::new_id(self.app.clock.now()),
            name: "Test item".into(),
            price,
            stock,
            active: true,
            version: 0,
        };
        self.app.store.put_item(&item).await.expect("item");
        item
    }

    pub async fn stock(&self, item_id: &str) -> i64 {
        self.app
            .store
            .get_item(item_id)
            .await
            .expect("read item")
            .expect("item exists")
            .stock
    }

    pub async fn set_stock(&self, item: &Item, stock: i64) {
        let item = Item {
            stock,
            active: true,
            version: 0,
            ..item.clone()
        };
        self.app.store.put_item(&item).await.expect("item");
    }

    /// Places an order of `lines` (item id, quantity) and returns its id and total.
    pub async fn order(&self, member: &Member, lines: &[(&str, i64)]) -> (String, i64) {
        let request = CreateOrderRequest {
            items: lines
                .iter()
                .map(|(item_id, quantity)| LineRequest {
                    item_id: (*item_id).to_owned(),
                    quantity: *quantity,
                })
                .collect(),
        };
        let order = orders::create_order(&self.app, &member.member_id, &request)
            .await
            .expect("order");
        (order.order_id, order.total_price)
    }

    pub async fn order_status(&self, order_id: &str) -> cafe::domain::OrderStatus {
        self.app
            .store
            .get_order(order_id)
            .await
            .expect("read order")
            .expect("order exists")
            .status
    }
}

/// One card payment of `amount`.
pub fn card(order_id: &str, amount: i64) -> PaymentRequest {
    parts(order_id, &[(amount, PaymentType::Card)])
}

pub fn parts(order_id: &str, parts: &[(i64, PaymentType)]) -> PaymentRequest {
    PaymentRequest {
        order_id: order_id.to_owned(),
        payments: parts
            .iter()
            .map(|(amount, payment_type)| PaymentPart {
                amount: *amount,
                payment_type: *payment_type,
            })
            .collect(),
    }
}
