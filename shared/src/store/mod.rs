//! Storage behind small traits shaped as domain operations.
//!
//! Every mutating operation is atomic: a status change, its history record and its outbox
//! event(s) are written together or not at all (one `TransactWriteItems` on DynamoDB, one critical
//! section in memory). Conditions on status and stock are checked inside the same atomic step, so
//! correctness never depends on the Redis lock.

pub mod cursor;
pub mod dynamo;
pub mod memory;

use crate::domain::attempt::{AttemptState, PaymentAttempt};
use crate::domain::item::StockMode;
use crate::domain::{
    DomainEvent, HistoryEntry, Item, Member, Order, OrderLine, OrderStatus, Payment, Role,
    StoredPassword,
};
use crate::error::Result;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

pub use memory::MemoryStore;

/// The sparse index of withdrawn members is spread over this many partitions, so that a day with
/// many withdrawals never makes one hot partition; the expiry job queries every shard.
pub const WITHDRAWN_SHARDS: u32 = 4;

/// The shard of a member in the withdrawn index (stable: derived from the id).
pub fn withdrawn_shard(member_id: &str) -> u32 {
    member_id.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    }) % WITHDRAWN_SHARDS
}

#[async_trait]
pub trait MemberStore: Send + Sync {
    /// Creates a `SERVICE` member with its password; the (lowercased) email must be free → else
    /// 400ME000. The password is stored apart from the profile (on DynamoDB in the credentials
    /// table, in the same transaction), so no read of the member ever carries it.
    async fn create_member(
        &self,
        member: &Member,
        password: &StoredPassword,
        event: &DomainEvent,
    ) -> Result<()>;
    /// [`MemberStore::create_member`] with the member's first refresh token in the same write
    /// (sign-up): one `TransactWriteItems` on DynamoDB, and never a member without its session.
    async fn sign_up_member(
        &self,
        member: &Member,
        password: &StoredPassword,
        event: &DomainEvent,
        first_refresh_token: &RefreshTokenRecord,
    ) -> Result<()>;
    async fn get_member(&self, member_id: &str) -> Result<Option<Member>>;
    /// `email` is already normalised (lowercase).
    async fn find_member_by_email(&self, email: &str) -> Result<Option<Member>>;
    /// The member with this (normalised) email and its stored password: log-in's one read of
    /// the password. `None` for an unknown email; a member without a stored password (`END`)
    /// comes with `None` as its password.
    async fn find_member_for_log_in(
        &self,
        email: &str,
    ) -> Result<Option<(Member, Option<StoredPassword>)>>;
    /// `SERVICE` → `WITHDRAWN` with `withdrawn_at = at`; else 400ME001 (404 if unknown).
    async fn withdraw_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member>;
    /// `WITHDRAWN` (less than 30 days before `at`) → `SERVICE`; else 400ME002 (404 if unknown).
    async fn restore_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member>;
    /// [`MemberStore::withdraw_member`] for a member the caller has just read (the
    /// authenticated one): a store may take it as its own read, since the write's condition is
    /// the fence. The same answers.
    async fn withdraw_read_member(
        &self,
        member: &Member,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        self.withdraw_member(&member.member_id, at, event).await
    }
    /// [`MemberStore::restore_member`] for a member the caller has just read; as
    /// [`MemberStore::withdraw_read_member`].
    async fn restore_read_member(
        &self,
        member: &Member,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        self.restore_member(&member.member_id, at, event).await
    }
    /// Oldest first.
    async fn member_history(&self, member_id: &str) -> Result<Vec<HistoryEntry>>;
    /// Ends every session of the member (log-out everywhere): moves `session_version` on, so
    /// every access token and refresh family issued before is refused. Unknown → 404CO000.
    async fn end_sessions(&self, member_id: &str) -> Result<()>;
    /// The member with its history (oldest first): one `Query` of the member's partition on
    /// DynamoDB, where the profile and its history rows live together.
    async fn get_member_with_history(
        &self,
        member_id: &str,
    ) -> Result<Option<(Member, Vec<HistoryEntry>)>> {
        match self.get_member(member_id).await? {
            Some(member) => Ok(Some((member, self.member_history(member_id).await?))),
            None => Ok(None),
        }
    }
}

/// A member found in the withdrawn index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueWithdrawal {
    pub member_id: String,
    pub withdrawn_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuePage {
    pub members: Vec<DueWithdrawal>,
    /// Opaque; `None` when the shard is exhausted.
    pub next_cursor: Option<String>,
    /// Items the store read to answer (DynamoDB's ScannedCount): the cost of the page.
    pub items_read: u64,
}

#[async_trait]
pub trait WithdrawalExpiryStore: Send + Sync {
    /// One page of shard `shard`'s members withdrawn at or before `cutoff`, oldest first.
    /// Never scans: only withdrawn members are in the index, keyed by withdrawal time.
    async fn due_withdrawals(
        &self,
        shard: u32,
        cutoff: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DuePage>;
    /// `WITHDRAWN` with exactly `withdrawn_at` → `END`, leaving the index, with history and event.
    /// `Ok(false)` when the member is no longer in that state (restored, or already ended).
    async fn end_member(
        &self,
        member_id: &str,
        withdrawn_at: DateTime<Utc>,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<bool>;
}

/// A refresh token as stored: only the SHA-256 of the token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_hash: String,
    pub member_id: String,
    /// All tokens descending from one login share a family; reuse revokes the family.
    pub family_id: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The member's session version when the family began (`Member::session_version`); every
    /// successor keeps it, and a refresh is refused once the member's has moved on.
    pub session_version: u32,
}

/// What a rotation records on the used token, so that the same token presented again within
/// the grace window gets the identical successor pair instead of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationMark {
    /// The key the successor access token is signed with.
    pub signing_kid: String,
    /// How long after its rotation a token may be presented again (two tabs, a retry after a
    /// lost answer) and get the same successor. Zero: any reuse revokes the family.
    pub grace: Duration,
}

/// The outcome of a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRotation {
    /// The successor token's record.
    pub successor: RefreshTokenRecord,
    /// When the presented token was rotated (now, or the first rotation's time on a replay).
    pub rotated_at: DateTime<Utc>,
    /// The key the successor access token is (or was) signed with.
    pub signing_kid: String,
    /// True when this presentation repeated a rotation within the grace window.
    pub replayed: bool,
}

/// Whether a used token's rotation may be replayed: within the grace window of its rotation,
/// asking for the very successor it got (the successor is derived from the token, so a repeat
/// names the same one).
pub fn replay_allowed(
    used_at: Option<DateTime<Utc>>,
    successor_hash: Option<&str>,
    next_hash: &str,
    now: DateTime<Utc>,
    grace: Duration,
) -> Option<DateTime<Utc>> {
    let used_at = used_at?;
    let within = now >= used_at - Duration::seconds(1) && now - used_at <= grace;
    (within && grace > Duration::zero() && successor_hash == Some(next_hash)).then_some(used_at)
}

#[async_trait]
pub trait RefreshTokenStore: Send + Sync {
    /// Stores the first token of a new family (login, sign-up).
    async fn store_refresh_token(&self, record: &RefreshTokenRecord) -> Result<()>;
    /// Atomically marks `presented_hash` used (recording when, its successor and `mark`) and
    /// stores its successor `next_hash` in the same family (member and family are taken from the
    /// presented token). Unknown, expired or revoked → 401CO000. Already used: within
    /// `mark.grace` of its rotation and naming the same successor → the first rotation again
    /// (`replayed`); otherwise 401CO000 and the whole family is revoked.
    async fn rotate_refresh_token_marked(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        next_expires_at: DateTime<Utc>,
        mark: &RotationMark,
    ) -> Result<RefreshRotation>;

    /// Log-out: revokes the whole family of the presented token, used or not, and answers the
    /// member it belongs to; `None` for a token never issued (or long expired and deleted).
    /// Revoking a revoked family again is harmless.
    async fn revoke_refresh_family(
        &self,
        presented_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>>;

    /// A rotation with no grace: any reuse revokes the family.
    async fn rotate_refresh_token(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        next_expires_at: DateTime<Utc>,
    ) -> Result<RefreshTokenRecord> {
        let mark = RotationMark {
            signing_kid: String::new(),
            grace: Duration::zero(),
        };
        self.rotate_refresh_token_marked(presented_hash, next_hash, now, next_expires_at, &mark)
            .await
            .map(|rotation| rotation.successor)
    }
}

#[async_trait]
pub trait ItemStore: Send + Sync {
    async fn list_items(&self) -> Result<Vec<Item>>;
    async fn get_item(&self, item_id: &str) -> Result<Option<Item>>;
    /// The items that exist among `item_ids`, in any order.
    async fn get_items(&self, item_ids: &[String]) -> Result<Vec<Item>>;
    /// The member's profile and the items that exist among `item_ids`, read together: one
    /// `BatchGetItem` on DynamoDB, so the authenticating read of an order or a payment joins
    /// the item read it needs anyway instead of being a round trip of its own.
    async fn get_member_and_items(
        &self,
        member_id: &str,
        item_ids: &[String],
    ) -> Result<(Option<Member>, Vec<Item>)>;
    /// Creates or replaces an item (seeding and tests).
    async fn put_item(&self, item: &Item) -> Result<()>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderPage {
    /// Newest first.
    pub orders: Vec<Order>,
    pub next_cursor: Option<String>,
}

/// Everything a successful payment writes in one atomic step, all of it derived from its
/// attempt, so that a re-sent commit is the identical transaction.
#[derive(Debug, Clone)]
pub struct PaymentCompletion {
    pub order_id: String,
    /// Each line's stock is decremented by its quantity, only if it stays ≥ 0 (else 400OR000).
    pub lines: Vec<OrderLine>,
    /// Stored `PAID`, each with a history row.
    pub payments: Vec<Payment>,
    pub at: DateTime<Utc>,
    pub events: Vec<DomainEvent>,
    /// `CHARGED`, with its commit instant: moved to `COMPLETED` in the same write.
    pub attempt: PaymentAttempt,
    /// The answer stored under the attempt's `Idempotency-Key`, if it has one.
    pub answer: Option<StoredResponse>,
    /// The pickup number the order gets (the attempt's), with the payment instant.
    pub pickup_number: Option<u32>,
}

impl PaymentCompletion {
    /// The completion of a `CHARGED` attempt for an order with `lines`.
    pub fn of(
        attempt: &PaymentAttempt,
        lines: &[OrderLine],
        answer: Option<StoredResponse>,
    ) -> crate::error::Result<Self> {
        let payments = attempt.payments()?;
        let events = attempt.completion_events(&payments)?;
        let at = attempt.committed_at.unwrap_or(attempt.created_at);
        Ok(Self {
            order_id: attempt.order_id.clone(),
            lines: lines.to_vec(),
            payments,
            at,
            events,
            attempt: attempt.clone(),
            answer,
            pickup_number: attempt.pickup_number(),
        })
    }
}

/// Everything cancelling a paid order writes in one atomic step.
#[derive(Debug, Clone)]
pub struct CompletedCancellation {
    pub order_id: String,
    /// Stock given back.
    pub lines: Vec<OrderLine>,
    /// The order's payments (all `PAID` while it was `COMPLETED`), now `CANCELED`: each row is
    /// marked, each gets a history row, and the order row keeps the list (what `GET /orders`
    /// shows without reading the order's partition).
    pub payments: Vec<Payment>,
    pub at: DateTime<Utc>,
    pub events: Vec<DomainEvent>,
    /// The refund attempt (`REFUNDING`) that guarantees the money goes back, written in the
    /// same step.
    pub refund: PaymentAttempt,
    /// The floor slot the order held, given back in the same step (`None` for an order paid
    /// before the floor existed).
    pub release: Option<SlotRelease>,
}

/// A floor slot given back in the write that ends an order's making: `READY`, or cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRelease {
    /// Whose per-member count goes down with the shop's.
    pub member_id: String,
    /// On `READY`: the business day and the seconds it took from `PREPARING`, added to the
    /// day's make times (the wait estimate's input).
    pub made: Option<(String, i64)>,
}

impl SlotRelease {
    /// The release of `order`'s slot, if it holds one (it has a pickup number).
    pub fn of(order: &Order, made: Option<(String, i64)>) -> Option<Self> {
        order.pickup_number.map(|_| Self {
            member_id: order.member_id.clone(),
            made,
        })
    }
}

/// A change of the shop's state by staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopChange {
    pub open: bool,
    pub message: Option<String>,
    pub staff_id: String,
    pub at: DateTime<Utc>,
}

/// The floor's counters: pickup numbers, the shop's state, the slots of paid orders (reserved
/// by [`PaymentAttemptStore::start_attempt`], given back by a refund, `READY` or a
/// cancellation, each inside that write) and the day's make times. See `docs/floor.md`.
#[async_trait]
pub trait FloorStore: Send + Sync {
    /// The next pickup number of business day `day`, from 1: one atomic increment, so no two
    /// callers ever get the same number (a number taken by a payment that then fails is lost).
    async fn take_pickup_number(&self, day: &str) -> Result<u32>;
    /// The shop's state with the make times of business day `day`. A shop never set is open.
    async fn floor_state(&self, day: &str) -> Result<crate::domain::floor::FloorState>;
    /// Opens or closes the shop with its message, with its outbox event, atomically.
    async fn set_shop(&self, change: &ShopChange, event: &DomainEvent) -> Result<()>;
    /// The member's paid orders not yet `READY` (what their limit counts).
    async fn open_orders_of(&self, member_id: &str) -> Result<i64>;
    /// The orders ahead of `order_id` in the staff queue: every `PREPARING` order, and the
    /// `COMPLETED` ones placed before it (the queue is oldest first). Counted on the queue
    /// index, never read whole.
    async fn orders_ahead(&self, order_id: &str) -> Result<i64>;
}

#[async_trait]
pub trait OrderStore: Send + Sync {
    /// Stores a new `PENDING_PAYMENT` order with its first history row; the shop closed →
    /// 409SH000 (checked in the same write), nothing written.
    async fn create_order(&self, order: &Order, event: &DomainEvent) -> Result<()>;
    /// The order with its payments.
    async fn get_order(&self, order_id: &str) -> Result<Option<Order>>;
    /// A member's orders newest first; a cursor not issued by this store → 400CO000 (cursor).
    async fn list_orders(
        &self,
        member_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage>;
    /// Oldest first.
    async fn order_history(&self, order_id: &str) -> Result<Vec<HistoryEntry>>;
    /// The order with its payments and its history (oldest first): one `Query` of the order's
    /// partition on DynamoDB, where all three live.
    async fn get_order_with_history(
        &self,
        order_id: &str,
    ) -> Result<Option<(Order, Vec<HistoryEntry>)>> {
        match self.get_order(order_id).await? {
            Some(order) => Ok(Some((order, self.order_history(order_id).await?))),
            None => Ok(None),
        }
    }
    /// `PENDING_PAYMENT` → `COMPLETED` with stock taken, payments stored, the attempt
    /// `CHARGED` → `COMPLETED` and its idempotency answer stored, atomically. Not pending →
    /// 400OR001; a line short of stock → 400OR000; the attempt no longer `CHARGED` (the
    /// reconciler took it over) → 503; nothing written then. Our own earlier commit of the same
    /// attempt (a lost answer) → `Ok`. An outcome still unknown after the store's own retries →
    /// 503, and the attempt stays `CHARGED` for the reconciler.
    async fn complete_payment(&self, completion: &PaymentCompletion) -> Result<()>;
    /// Pending orders created before `before`, oldest first, a page at a time (the
    /// `expire-orders` sweep's work list: never a scan). Orders placed before the floor existed
    /// are not listed; they still cannot be paid past the window.
    async fn pending_orders_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage>;
    /// `PENDING_PAYMENT` → `EXPIRED` with its history row and event; `Ok(false)` when the order
    /// is no longer pending (paid or cancelled meanwhile: nothing written).
    async fn expire_order(
        &self,
        order_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<bool>;
    /// `PENDING_PAYMENT` → `CANCELLED`; else 400OR001.
    async fn cancel_pending_order(
        &self,
        order_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()>;
    /// `COMPLETED` → `CANCELLED` with stock given back, payments `CANCELED` and the refund
    /// attempt written; else 400OR001.
    async fn cancel_completed_order(&self, cancellation: &CompletedCancellation) -> Result<()>;
}

/// A page of unsettled attempts past their deadline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueAttemptPage {
    pub attempt_ids: Vec<String>,
    /// Opaque; `None` when the shard is exhausted.
    pub next_cursor: Option<String>,
}

/// The unsettled attempts are indexed over this many partitions (like the withdrawn members).
pub const ATTEMPT_SHARDS: u32 = 4;

/// The member's in-progress idempotency record, as owned by one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyOwner {
    pub member_id: String,
    pub key: String,
    /// Made by `begin_idempotent` for this request; only it may finish or abandon the record.
    pub token: String,
}

#[async_trait]
pub trait PaymentAttemptStore: Send + Sync {
    /// Writes a new attempt. With `idempotency`, the member's in-progress record is linked to it
    /// in the same atomic write (from then on the key is released or answered only when the
    /// attempt settles); a record no longer owned by that token → 409PA002, nothing written.
    /// With a floor slot (`attempt.floor`), the slot is reserved in the same write: the shop
    /// closed → 409SH000, its paid orders not yet `READY` at the slot's limit → 409SH001, the
    /// member's at theirs → 409SH002; nothing written then.
    async fn start_attempt(
        &self,
        attempt: &PaymentAttempt,
        idempotency: Option<&IdempotencyOwner>,
    ) -> Result<()>;
    /// Replaces the attempt if it is still in `expected` state: `Ok(false)` when it is not
    /// (someone else moved it on). Settled attempts leave the due index.
    async fn update_attempt(
        &self,
        attempt: &PaymentAttempt,
        expected: AttemptState,
    ) -> Result<bool>;
    /// `REFUNDING` → `REFUNDED`; a payment's idempotency record linked to it is released in the
    /// same write, so the client's retry runs anew, and its floor slot given back.
    /// `Ok(false)` if it was not `REFUNDING`.
    async fn settle_refunded(&self, attempt: &PaymentAttempt) -> Result<bool>;
    async fn get_attempt(&self, attempt_id: &str) -> Result<Option<PaymentAttempt>>;
    /// Unsettled attempts of `shard` whose deadline is at or before `now`, oldest first.
    async fn due_attempts(
        &self,
        shard: u32,
        now: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DueAttemptPage>;
}

/// The shard of an attempt in the due index (stable: derived from the id).
pub fn attempt_shard(attempt_id: &str) -> u32 {
    withdrawn_shard(attempt_id) % ATTEMPT_SHARDS
}

/// The stored answer of a finished idempotent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is now recorded as in progress, owned by this token: go ahead.
    Started(String),
    /// The same key and body finished before: answer this.
    Replay(StoredResponse),
    /// Another body under this key, or the first request is still running → 409PA002.
    Conflict,
    /// The first request charged and its attempt is not settled yet → 409PA002 with
    /// `Retry-After`; the settled answer comes later.
    Pending,
}

/// An in-progress record older than this is taken over (its request died), unless it is linked
/// to an unsettled payment attempt: then it waits for the attempt.
pub const IDEMPOTENCY_LEASE: Duration = Duration::seconds(60);
/// Idempotency records expire after this.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::hours(24);

#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Records `key` (scoped to `member_id`) as in progress for `request_hash`, unless a live
    /// record exists. Records past their expiry count as absent.
    async fn begin_idempotent(
        &self,
        member_id: &str,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyBegin>;
    /// Stores the final answer; kept for [`IDEMPOTENCY_RETENTION`]. Only the owner's token
    /// may; a record owned by another request (taken over) is left as it is (`Ok(false)`).
    async fn finish_idempotent(
        &self,
        owner: &IdempotencyOwner,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Forgets an in-progress key whose request ended with nothing changed (so a retry may run).
    /// Only the owner's token may, and never while an attempt is linked (`Ok(false)`).
    async fn abandon_idempotent(&self, owner: &IdempotencyOwner) -> Result<bool>;
}

/// A stock change by staff, written with its history row and event in one atomic step.
#[derive(Debug, Clone)]
pub struct StockChange {
    pub item_id: String,
    pub mode: StockMode,
    pub quantity: i64,
    /// The version the staff member read: the write happens only if it is still current.
    pub expected_version: u64,
    /// The item's history row (`STOCK_ADD +20: delivery`).
    pub history: String,
    pub at: DateTime<Utc>,
    pub event: DomainEvent,
}

/// What the staff side writes: roles, the catalogue and the fulfilment of paid orders. Each
/// change is one atomic write with its history row and outbox event.
#[async_trait]
pub trait StaffStore: Send + Sync {
    /// Sets a `SERVICE` member's role; unknown → 404CO000, not in service → 400ME001.
    async fn set_member_role(
        &self,
        member_id: &str,
        role: Role,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()>;
    /// Adds a new item to the catalogue (history `CREATED`).
    async fn create_item(&self, item: &Item, at: DateTime<Utc>, event: &DomainEvent) -> Result<()>;
    /// Replaces the name, price and active flag of `item.item_id` with `item`'s, only if the
    /// stored version is `item.version - 1` (409IT000 otherwise, 404CO000 if unknown); the
    /// stock is left as sales have left it. History `history`.
    async fn update_item(
        &self,
        item: &Item,
        history: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()>;
    /// Applies a stock change if the version is still `expected_version` (409IT000), moving it
    /// one on. `ADD` adds to the stock at the write (sales in between are kept); a result below
    /// zero → 400OR000; unknown → 404CO000.
    async fn change_stock(&self, change: &StockChange) -> Result<()>;
    /// `from` → `to` (a fulfilment step); the order not in `from` → 400OR001, unknown → 404CO000.
    /// With `release` (the step to `READY` of an order holding a floor slot), the slot is given
    /// back in the same write.
    async fn advance_order(
        &self,
        order_id: &str,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
        event: &DomainEvent,
        release: Option<&SlotRelease>,
    ) -> Result<()>;
    /// Orders in `status` (one of the fulfilment statuses), oldest first; without payments.
    async fn fulfilment_orders(
        &self,
        status: OrderStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage>;
}

/// The live channel's tickets, connections and subscriptions (`docs/live.md`). Every row
/// expires (tickets after 30 s, connections after API Gateway's 2-hour limit) and every read
/// filters on that expiry, because DynamoDB's TTL deletion lags.
#[async_trait]
pub trait LiveStore: Send + Sync {
    /// Stores a ticket (by its hash) for `grant`, good until `expires_at`.
    async fn put_live_ticket(
        &self,
        ticket_hash: &str,
        grant: &crate::domain::live::Grant,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// Redeems a ticket once: removes it and answers its grant, or `None` when it is unknown,
    /// already redeemed or expired at `now`. Of concurrent redemptions exactly one gets it.
    async fn redeem_live_ticket(
        &self,
        ticket_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::domain::live::Grant>>;
    /// Records a connection (by API Gateway's connection id) and who is on it.
    async fn put_live_connection(
        &self,
        connection_id: &str,
        grant: &crate::domain::live::Grant,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// The grant of a connection that has not expired at `now`.
    async fn get_live_connection(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<crate::domain::live::Grant>>;
    /// Subscribes a connection to `key` until `expires_at` (its connection's expiry).
    async fn add_live_subscription(
        &self,
        connection_id: &str,
        key: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// The connections subscribed to `key` that have not expired at `now`.
    async fn live_listeners(&self, key: &str, now: DateTime<Utc>) -> Result<Vec<String>>;
    /// Forgets a connection and its subscriptions (its `$disconnect`, or a 410 Gone).
    async fn remove_live_connection(&self, connection_id: &str) -> Result<()>;
}

/// Everything the functions need from storage.
pub trait Store:
    MemberStore
    + WithdrawalExpiryStore
    + RefreshTokenStore
    + ItemStore
    + OrderStore
    + IdempotencyStore
    + PaymentAttemptStore
    + StaffStore
    + FloorStore
    + LiveStore
{
}

impl<T> Store for T where
    T: MemberStore
        + WithdrawalExpiryStore
        + RefreshTokenStore
        + ItemStore
        + OrderStore
        + IdempotencyStore
        + PaymentAttemptStore
        + StaffStore
        + FloorStore
        + LiveStore
{
}

pub type SharedStore = Arc<dyn Store>;
