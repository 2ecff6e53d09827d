//! Mutual exclusion for paying and cancelling: an optimisation for fairness and to avoid charging
//! a card that cannot be fulfilled. Correctness never depends on it: the store's conditional
//! writes are the fence.

pub mod local;
pub mod redis;

use crate::domain::Order;
use crate::error::Result;
use crate::metrics::Metrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

pub use self::redis::RedisLock;
pub use local::LocalLock;

/// Proof of holding a set of keys; hand it back to [`Lock::release`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLease {
    /// Sorted, deduplicated.
    pub keys: Vec<String>,
    /// Random per holder: only this holder's release deletes the keys.
    pub token: String,
}

#[async_trait]
pub trait Lock: Send + Sync {
    /// Takes every key, in sorted order (so two holders never deadlock), waiting with jittered
    /// backoff up to the configured bound; then 409PA001. Keys already taken are given back when
    /// a later one cannot be had. The lock service unreachable → 503CO000.
    async fn acquire(&self, keys: &[String]) -> Result<LockLease>;
    /// Gives back the keys that still carry this lease's token.
    async fn release(&self, lease: &LockLease) -> Result<()>;
}

/// The lock key of an order.
pub fn order_key(order_id: &str) -> String {
    format!("cafe:lock:order:{order_id}")
}

/// The lock key of an item.
pub fn item_key(item_id: &str) -> String {
    format!("cafe:lock:item:{item_id}")
}

/// The lock keys of paying or cancelling `order`: the order and each of its items.
pub fn keys_of_order(order: &Order) -> Vec<String> {
    std::iter::once(order_key(&order.order_id))
        .chain(order.items.iter().map(|line| item_key(&line.item_id)))
        .collect()
}

/// Gives the lock back; a failure is logged, not answered (the keys expire by their TTL, and the
/// outcome of the request is already decided).
pub async fn release_logged(lock: &dyn Lock, lease: &LockLease) {
    if let Err(error) = lock.release(lease).await {
        tracing::warn!(%error, keys = lease.keys.len(), "could not release the lock");
    }
}

/// Sorts and deduplicates keys: the one acquisition order every holder follows.
pub fn sorted_keys(keys: &[String]) -> Vec<String> {
    let mut keys = keys.to_vec();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A lock whose every acquisition is timed into [`Metrics::lock_wait`] (409PA001 counted as
/// `LockBusy`), each call in a `dependency` span.
pub struct ObservedLock {
    inner: Arc<dyn Lock>,
    metrics: Metrics,
}

impl ObservedLock {
    pub fn new(inner: Arc<dyn Lock>, metrics: Metrics) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl Lock for ObservedLock {
    async fn acquire(&self, keys: &[String]) -> Result<LockLease> {
        let started = Instant::now();
        let outcome = self
            .inner
            .acquire(keys)
            .instrument(crate::spans::dependency_span("lock", "acquire"))
            .await;
        let busy = matches!(outcome, Err(crate::Error::LockBusy));
        // A lock service that did not answer is a dependency failure, not a wait.
        if outcome.is_ok() || busy {
            self.metrics.lock_wait(started.elapsed(), busy);
        }
        outcome
    }

    async fn release(&self, lease: &LockLease) -> Result<()> {
        self.inner
            .release(lease)
            .instrument(crate::spans::dependency_span("lock", "release"))
            .await
    }
}
