//! A payment whose atomic write committed but was answered as a failure — what a retried
//! `TransactWriteItems` after a timeout looks like — must keep its charges and answer success;
//! a write that really lost must refund.

#[path = "order_support/mod.rs"]
mod order_support;

use async_trait::async_trait;
use cafe::domain::{DomainEvent, HistoryEntry, Item, Member, Order, OrderStatus};
use cafe::error::{Error, Result};
use cafe::services::payments;
use cafe::store::*;
use chrono::{DateTime, Utc};
use order_support::{card, harness, local_lock, lock_config, quick_gateway};
use std::sync::Arc;

/// A memory store whose `complete_payment` answers 400OR001 after it committed (`commit: true`)
/// or without committing (`commit: false`).
struct ConflictAfterWrite {
    inner: MemoryStore,
    commit: bool,
}

#[async_trait]
impl OrderStore for ConflictAfterWrite {
    async fn create_order(&self, order: &Order, event: &DomainEvent) -> Result<()> {
        self.inner.create_order(order, event).await
    }
    async fn get_order(&self, order_id: &str) -> Result<Option<Order>> {
        self.inner.get_order(order_id).await
    }
    async fn list_orders(&self, m: &str, limit: usize, cursor: Option<&str>) -> Result<OrderPage> {
        self.inner.list_orders(m, limit, cursor).await
    }
    async fn order_history(&self, order_id: &str) -> Result<Vec<HistoryEntry>> {
        self.inner.order_history(order_id).await
    }
    async fn complete_payment(&self, completion: &PaymentCompletion) -> Result<()> {
        if self.commit {
            self.inner.complete_payment(completion).await?;
        }
        Err(Error::OrderStatusConflict)
    }
    async fn cancel_pending_order(
        &self,
        id: &str,
        at: DateTime<Utc>,
        e: &DomainEvent,
    ) -> Result<()> {
        self.inner.cancel_pending_order(id, at, e).await
    }
    async fn cancel_completed_order(&self, c: &CompletedCancellation) -> Result<()> {
        self.inner.cancel_completed_order(c).await
    }
}

#[async_trait]
impl MemberStore for ConflictAfterWrite {
    async fn create_member(&self, member: &Member, event: &DomainEvent) -> Result<()> {
        self.inner.create_member(member, event).await
    }
    async fn get_member(&self, member_id: &str) -> Result<Option<Member>> {
        self.inner.get_member(member_id).await
    }
    async fn find_member_by_email(&self, email: &str) -> Result<Option<Member>> {
        self.inner.find_member_by_email(email).await
    }
    async fn withdraw_member(
        &self,
        id: &str,
        at: DateTime<Utc>,
        e: &DomainEvent,
    ) -> Result<Member> {
        self.inner.withdraw_member(id, at, e).await
    }
    async fn restore_member(&self, id: &str, at: DateTime<Utc>, e: &DomainEvent) -> Result<Member> {
        self.inner.restore_member(id, at, e).await
    }
    async fn member_history(&self, member_id: &str) -> Result<Vec<HistoryEntry>> {
        self.inner.member_history(member_id).await
    }
}

#[async_trait]
impl WithdrawalExpiryStore for ConflictAfterWrite {
    async fn due_withdrawals(
        &self,
        shard: u32,
        cutoff: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DuePage> {
        self.inner
            .due_withdrawals(shard, cutoff, cursor, limit)
            .await
    }
    async fn end_member(
        &self,
        id: &str,
        withdrawn_at: DateTime<Utc>,
        at: DateTime<Utc>,
        e: &DomainEvent,
    ) -> Result<bool> {
        self.inner.end_member(id, withdrawn_at, at, e).await
    }
}

#[async_trait]
impl RefreshTokenStore for ConflictAfterWrite {
    async fn store_refresh_token(&self, record: &RefreshTokenRecord) -> Result<()> {
        self.inner.store_refresh_token(record).await
    }
    async fn rotate_refresh_token(
        &self,
        presented: &str,
        next: &str,
        now: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<RefreshTokenRecord> {
        self.inner
            .rotate_refresh_token(presented, next, now, expires)
            .await
    }
}

#[async_trait]
impl ItemStore for ConflictAfterWrite {
    async fn list_items(&self) -> Result<Vec<Item>> {
        self.inner.list_items().await
    }
    async fn get_item(&self, item_id: &str) -> Result<Option<Item>> {
        self.inner.get_item(item_id).await
    }
    async fn get_items(&self, item_ids: &[String]) -> Result<Vec<Item>> {
        self.inner.get_items(item_ids).await
    }
    async fn put_item(&self, item: &Item) -> Result<()> {
        self.inner.put_item(item).await
    }
}

#[async_trait]
impl IdempotencyStore for ConflictAfterWrite {
    async fn begin_idempotent(
        &self,
        m: &str,
        key: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyBegin> {
        self.inner.begin_idempotent(m, key, hash, now).await
    }
    async fn finish_idempotent(
        &self,
        m: &str,
        key: &str,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.inner.finish_idempotent(m, key, response, now).await
    }
    async fn abandon_idempotent(&self, m: &str, key: &str) -> Result<()> {
        self.inner.abandon_idempotent(m, key).await
    }
}

async fn pay_with_conflict_answer(
    commit: bool,
) -> (
    Result<payments::PaymentReceipt>,
    OrderStatus,
    i64,
    usize,
    usize,
) {
    let store = Arc::new(ConflictAfterWrite {
        inner: MemoryStore::new(),
        commit,
    });
    let h = harness(store, local_lock(lock_config(10_000, 500)), quick_gateway());
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 2)]).await;
    let outcome = payments::pay(&h.app, &member, &card(&order_id, total)).await;
    let ledger = h.gateway.ledger();
    (
        outcome,
        h.order_status(&order_id).await,
        h.stock(&item.item_id).await,
        ledger.charges.len(),
        ledger.refunds.len(),
    )
}

#[tokio::test]
async fn a_conflict_answer_after_our_own_commit_keeps_the_charge_and_succeeds() {
    let (outcome, status, stock, charges, refunds) = pay_with_conflict_answer(true).await;
    let receipt = outcome.expect("the payment committed, so it succeeded");
    assert_eq!(receipt.status, OrderStatus::Completed);
    assert_eq!((status, stock), (OrderStatus::Completed, 8));
    assert_eq!(
        (charges, refunds),
        (1, 0),
        "the kept order keeps its charge"
    );
}

#[tokio::test]
async fn a_conflict_without_our_commit_refunds_and_answers_400or001() {
    let (outcome, status, stock, charges, refunds) = pay_with_conflict_answer(false).await;
    assert_eq!(outcome.err(), Some(Error::OrderStatusConflict));
    assert_eq!((status, stock), (OrderStatus::PendingPayment, 10));
    assert_eq!(
        (charges, refunds),
        (1, 1),
        "the charge of the lost write is refunded"
    );
}
