//! The in-memory store of the embedded default: one mutex over all state, so every operation is
//! atomic exactly like its DynamoDB transaction. Committed events go to a [`MemoryEventLog`],
//! standing in for the table stream and its publisher.

use super::*;
use crate::domain::attempt::{AttemptState, PaymentAttempt};
use crate::domain::{EntityKind, MemberStatus, OrderStatus, PaymentStatus};
use crate::error::Error;
use crate::events::MemoryEventLog;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

#[derive(Debug)]
struct RefreshState {
    record: RefreshTokenRecord,
    used: bool,
    /// When it was rotated, into which successor, signed by which key (the grace replay).
    used_at: Option<DateTime<Utc>>,
    successor_hash: Option<String>,
    signing_kid: Option<String>,
}

impl RefreshState {
    fn fresh(record: RefreshTokenRecord) -> Self {
        Self {
            record,
            used: false,
            used_at: None,
            successor_hash: None,
            signing_kid: None,
        }
    }
}

#[derive(Debug, Clone)]
enum IdempotencyState {
    InProgress {
        started_at: DateTime<Utc>,
        /// The request that owns the record.
        owner: String,
        /// The payment attempt linked to it, once the request started charging.
        attempt: Option<String>,
    },
    Done(StoredResponse),
}

#[derive(Debug, Clone)]
struct IdempotencyRecord {
    request_hash: String,
    state: IdempotencyState,
    expires_at: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    members: HashMap<String, Member>,
    member_by_email: HashMap<String, String>,
    /// (shard, withdrawn_at, member_id): the sparse withdrawn index.
    withdrawn: BTreeSet<(u32, DateTime<Utc>, String)>,
    history: HashMap<(EntityKind, String), Vec<HistoryEntry>>,
    refresh_tokens: HashMap<String, RefreshState>,
    revoked_families: HashSet<String>,
    items: HashMap<String, Item>,
    orders: HashMap<String, Order>,
    /// member_id → order ids (ULIDs sort by creation time).
    orders_by_member: HashMap<String, BTreeSet<String>>,
    idempotency: HashMap<(String, String), IdempotencyRecord>,
    attempts: HashMap<String, PaymentAttempt>,
}

impl State {
    /// A new member with its email guard and first history row.
    fn add_member(&mut self, member: &Member) -> Result<()> {
        if self.member_by_email.contains_key(&member.email) {
            return Err(Error::EmailTaken);
        }
        if self.members.contains_key(&member.member_id) {
            return Err(Error::Internal("member id collision".into()));
        }
        self.member_by_email
            .insert(member.email.clone(), member.member_id.clone());
        self.members
            .insert(member.member_id.clone(), member.clone());
        self.add_history(
            EntityKind::Member,
            &member.member_id,
            member.status.as_str(),
            member.created_at,
        );
        Ok(())
    }

    fn add_history(&mut self, kind: EntityKind, id: &str, status: &str, at: DateTime<Utc>) {
        self.history
            .entry((kind, id.to_owned()))
            .or_default()
            .push(HistoryEntry {
                status: status.to_owned(),
                at,
            });
    }

    fn history(&self, kind: EntityKind, id: &str) -> Vec<HistoryEntry> {
        self.history
            .get(&(kind, id.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// Thread-safe in-memory implementation of every store trait.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    events: Option<Arc<MemoryEventLog>>,
}

impl MemoryStore {
    /// An empty store whose committed events are dropped.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose committed events are appended to `events`.
    pub fn with_event_log(events: Arc<MemoryEventLog>) -> Self {
        Self {
            state: Mutex::default(),
            events: Some(events),
        }
    }

    /// Runs `change` under the lock; its events are relayed only if it commits.
    fn commit<T>(
        &self,
        events: &[DomainEvent],
        change: impl FnOnce(&mut State) -> Result<T>,
    ) -> Result<T> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let out = change(&mut state)?;
        if let Some(log) = &self.events {
            log.record(events);
        }
        Ok(out)
    }

    fn read<T>(&self, query: impl FnOnce(&State) -> T) -> T {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        query(&state)
    }
}

#[async_trait]
impl MemberStore for MemoryStore {
    async fn create_member(&self, member: &Member, event: &DomainEvent) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| s.add_member(member))
    }

    async fn sign_up_member(
        &self,
        member: &Member,
        event: &DomainEvent,
        first_refresh_token: &RefreshTokenRecord,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            s.add_member(member)?;
            s.refresh_tokens.insert(
                first_refresh_token.token_hash.clone(),
                RefreshState::fresh(first_refresh_token.clone()),
            );
            Ok(())
        })
    }

    async fn get_member(&self, member_id: &str) -> Result<Option<Member>> {
        Ok(self.read(|s| s.members.get(member_id).cloned()))
    }

    async fn find_member_by_email(&self, email: &str) -> Result<Option<Member>> {
        Ok(self.read(|s| {
            s.member_by_email
                .get(email)
                .and_then(|id| s.members.get(id))
                .cloned()
        }))
    }

    async fn withdraw_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        self.commit(std::slice::from_ref(event), |s| {
            let member = s
                .members
                .get_mut(member_id)
                .ok_or(Error::NotFound("member"))?;
            member.check_can_withdraw()?;
            member.status = MemberStatus::Withdrawn;
            member.withdrawn_at = Some(at);
            let updated = member.clone();
            s.withdrawn
                .insert((withdrawn_shard(member_id), at, member_id.to_owned()));
            s.add_history(EntityKind::Member, member_id, "WITHDRAWN", at);
            Ok(updated)
        })
    }

    async fn restore_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        self.commit(std::slice::from_ref(event), |s| {
            let member = s
                .members
                .get_mut(member_id)
                .ok_or(Error::NotFound("member"))?;
            member.check_can_restore(at)?;
            let withdrawn_at = member.withdrawn_at.take();
            member.status = MemberStatus::Service;
            let updated = member.clone();
            if let Some(w) = withdrawn_at {
                s.withdrawn
                    .remove(&(withdrawn_shard(member_id), w, member_id.to_owned()));
            }
            s.add_history(EntityKind::Member, member_id, "SERVICE", at);
            Ok(updated)
        })
    }

    async fn member_history(&self, member_id: &str) -> Result<Vec<HistoryEntry>> {
        Ok(self.read(|s| s.history(EntityKind::Member, member_id)))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct DueCursor {
    at: DateTime<Utc>,
    id: String,
}

#[async_trait]
impl WithdrawalExpiryStore for MemoryStore {
    async fn due_withdrawals(
        &self,
        shard: u32,
        cutoff: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DuePage> {
        let after = cursor.map(super::cursor::decode::<DueCursor>).transpose()?;
        let limit = limit.max(1);
        Ok(self.read(|s| {
            let start = match &after {
                Some(c) => std::ops::Bound::Excluded((shard, c.at, c.id.clone())),
                None => std::ops::Bound::Included((shard, DateTime::<Utc>::MIN_UTC, String::new())),
            };
            let end = std::ops::Bound::Included((shard, cutoff, String::from("\u{10FFFF}")));
            let members: Vec<DueWithdrawal> = s
                .withdrawn
                .range((start, end))
                .take(limit)
                .map(|(_, at, id)| DueWithdrawal {
                    member_id: id.clone(),
                    withdrawn_at: *at,
                })
                .collect();
            let next_cursor = if members.len() == limit {
                members.last().and_then(|m| {
                    super::cursor::encode(&DueCursor {
                        at: m.withdrawn_at,
                        id: m.member_id.clone(),
                    })
                    .ok()
                })
            } else {
                None
            };
            DuePage {
                items_read: members.len() as u64,
                members,
                next_cursor,
            }
        }))
    }

    async fn end_member(
        &self,
        member_id: &str,
        withdrawn_at: DateTime<Utc>,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<bool> {
        let ended = self.commit(std::slice::from_ref(event), |s| {
            let Some(member) = s.members.get_mut(member_id) else {
                return Err(Error::NotFound("member"));
            };
            if member.status != MemberStatus::Withdrawn || member.withdrawn_at != Some(withdrawn_at)
            {
                return Err(Error::NotRestorable);
            }
            member.status = MemberStatus::End;
            // The email is free again, and nothing personal stays (docs/retention.md).
            if s.member_by_email.get(&member.email).map(String::as_str) == Some(member_id) {
                s.member_by_email.remove(&member.email);
            }
            member.erase_personal_data();
            s.withdrawn.remove(&(
                withdrawn_shard(member_id),
                withdrawn_at,
                member_id.to_owned(),
            ));
            s.add_history(EntityKind::Member, member_id, "END", at);
            Ok(())
        });
        match ended {
            Ok(()) => Ok(true),
            Err(Error::NotRestorable | Error::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }
}

#[async_trait]
impl RefreshTokenStore for MemoryStore {
    async fn store_refresh_token(&self, record: &RefreshTokenRecord) -> Result<()> {
        self.commit(&[], |s| {
            s.refresh_tokens.insert(
                record.token_hash.clone(),
                RefreshState::fresh(record.clone()),
            );
            Ok(())
        })
    }

    async fn rotate_refresh_token_marked(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        next_expires_at: DateTime<Utc>,
        mark: &RotationMark,
    ) -> Result<RefreshRotation> {
        self.commit(&[], |s| {
            let presented = s
                .refresh_tokens
                .get_mut(presented_hash)
                .ok_or(Error::Unauthorized)?;
            let family = presented.record.family_id.clone();
            let successor = |issued_at: DateTime<Utc>| RefreshTokenRecord {
                token_hash: next_hash.to_owned(),
                member_id: presented.record.member_id.clone(),
                family_id: family.clone(),
                issued_at,
                expires_at: next_expires_at,
            };
            if presented.used {
                let replay = replay_allowed(
                    presented.used_at,
                    presented.successor_hash.as_deref(),
                    next_hash,
                    now,
                    mark.grace,
                );
                match (replay, presented.signing_kid.clone()) {
                    (Some(used_at), Some(kid)) if !s.revoked_families.contains(&family) => {
                        return Ok(RefreshRotation {
                            successor: successor(used_at),
                            rotated_at: used_at,
                            signing_kid: kid,
                            replayed: true,
                        });
                    }
                    _ => {
                        s.revoked_families.insert(family);
                        return Err(Error::Unauthorized);
                    }
                }
            }
            if presented.record.expires_at <= now || s.revoked_families.contains(&family) {
                return Err(Error::Unauthorized);
            }
            let next = successor(now);
            presented.used = true;
            presented.used_at = Some(now);
            presented.successor_hash = Some(next_hash.to_owned());
            presented.signing_kid = Some(mark.signing_kid.clone());
            s.refresh_tokens
                .insert(next.token_hash.clone(), RefreshState::fresh(next.clone()));
            Ok(RefreshRotation {
                successor: next,
                rotated_at: now,
                signing_kid: mark.signing_kid.clone(),
                replayed: false,
            })
        })
    }
}

#[async_trait]
impl ItemStore for MemoryStore {
    async fn list_items(&self) -> Result<Vec<Item>> {
        let mut items: Vec<Item> = self.read(|s| s.items.values().cloned().collect());
        items.sort_by(|a, b| a.item_id.cmp(&b.item_id));
        Ok(items)
    }

    async fn get_item(&self, item_id: &str) -> Result<Option<Item>> {
        Ok(self.read(|s| s.items.get(item_id).cloned()))
    }

    async fn get_items(&self, item_ids: &[String]) -> Result<Vec<Item>> {
        Ok(self.read(|s| {
            item_ids
                .iter()
                .filter_map(|id| s.items.get(id).cloned())
                .collect()
        }))
    }

    async fn get_member_and_items(
        &self,
        member_id: &str,
        item_ids: &[String],
    ) -> Result<(Option<Member>, Vec<Item>)> {
        Ok(self.read(|s| {
            let items = item_ids
                .iter()
                .filter_map(|id| s.items.get(id).cloned())
                .collect();
            (s.members.get(member_id).cloned(), items)
        }))
    }

    async fn put_item(&self, item: &Item) -> Result<()> {
        self.commit(&[], |s| {
            s.items.insert(item.item_id.clone(), item.clone());
            Ok(())
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct OrderCursor {
    /// The member the cursor was issued to: another member's cursor is refused.
    member: String,
    before: String,
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn create_order(&self, order: &Order, event: &DomainEvent) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            if s.orders.contains_key(&order.order_id) {
                return Err(Error::Internal("order id collision".into()));
            }
            s.orders.insert(order.order_id.clone(), order.clone());
            s.orders_by_member
                .entry(order.member_id.clone())
                .or_default()
                .insert(order.order_id.clone());
            s.add_history(
                EntityKind::Order,
                &order.order_id,
                order.status.as_str(),
                order.created_at,
            );
            Ok(())
        })
    }

    async fn get_order(&self, order_id: &str) -> Result<Option<Order>> {
        Ok(self.read(|s| s.orders.get(order_id).cloned()))
    }

    async fn list_orders(
        &self,
        member_id: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage> {
        let before = match cursor
            .map(super::cursor::decode::<OrderCursor>)
            .transpose()?
        {
            Some(c) if c.member != member_id => return Err(Error::invalid("cursor")),
            Some(c) => Some(c.before),
            None => None,
        };
        let limit = limit.max(1);
        Ok(self.read(|s| {
            let Some(ids) = s.orders_by_member.get(member_id) else {
                return OrderPage::default();
            };
            let newer_first: Box<dyn Iterator<Item = &String>> = match &before {
                Some(b) => Box::new(ids.range::<String, _>(..b.clone()).rev()),
                None => Box::new(ids.iter().rev()),
            };
            let mut page: Vec<Order> = Vec::with_capacity(limit + 1);
            for id in newer_first.take(limit + 1) {
                if let Some(order) = s.orders.get(id) {
                    page.push(order.clone());
                }
            }
            let next_cursor = if page.len() > limit {
                page.truncate(limit);
                page.last().and_then(|o| {
                    super::cursor::encode(&OrderCursor {
                        member: member_id.to_owned(),
                        before: o.order_id.clone(),
                    })
                    .ok()
                })
            } else {
                None
            };
            OrderPage {
                orders: page,
                next_cursor,
            }
        }))
    }

    async fn order_history(&self, order_id: &str) -> Result<Vec<HistoryEntry>> {
        Ok(self.read(|s| s.history(EntityKind::Order, order_id)))
    }

    async fn complete_payment(&self, completion: &PaymentCompletion) -> Result<()> {
        self.commit(&completion.events, |s| {
            let attempt_id = &completion.attempt.attempt_id;
            // Our own earlier commit of this attempt: done already (as DynamoDB answers a
            // re-sent transaction).
            if s.attempts.get(attempt_id).map(|a| a.state) == Some(AttemptState::Completed) {
                return Ok(());
            }
            let order = s
                .orders
                .get(&completion.order_id)
                .ok_or(Error::NotFound("order"))?;
            order.check_payable()?;
            for line in &completion.lines {
                let item = s.items.get(&line.item_id).ok_or(Error::NotFound("item"))?;
                if item.stock < line.quantity {
                    return Err(Error::OutOfStock(line.item_id.clone()));
                }
            }
            if s.attempts.get(attempt_id).map(|a| a.state) != Some(AttemptState::Charged) {
                return Err(Error::Unavailable("payment settlement"));
            }
            for line in &completion.lines {
                if let Some(item) = s.items.get_mut(&line.item_id) {
                    item.stock -= line.quantity;
                }
            }
            if let Some(order) = s.orders.get_mut(&completion.order_id) {
                order.status = OrderStatus::Completed;
                order.updated_at = completion.at;
                order.payments = completion.payments.clone();
            }
            let mut completed = completion.attempt.clone();
            completed.state = AttemptState::Completed;
            s.attempts.insert(attempt_id.clone(), completed);
            if let (Some(key), Some(answer)) =
                (&completion.attempt.idempotency_key, &completion.answer)
            {
                let slot = (completion.attempt.member_id.clone(), key.clone());
                if let Some(record) = s.idempotency.get_mut(&slot)
                    && matches!(&record.state,
                        IdempotencyState::InProgress { attempt: Some(a), .. } if a == attempt_id)
                {
                    record.state = IdempotencyState::Done(answer.clone());
                    record.expires_at = completion.at + IDEMPOTENCY_RETENTION;
                }
            }
            s.add_history(
                EntityKind::Order,
                &completion.order_id,
                "COMPLETED",
                completion.at,
            );
            for payment in &completion.payments {
                s.add_history(
                    EntityKind::Payment,
                    &payment.payment_id,
                    "PAID",
                    completion.at,
                );
            }
            Ok(())
        })
    }

    async fn cancel_pending_order(
        &self,
        order_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            let order = s.orders.get_mut(order_id).ok_or(Error::NotFound("order"))?;
            if order.status != OrderStatus::PendingPayment {
                return Err(Error::OrderStatusConflict);
            }
            order.status = OrderStatus::Cancelled;
            order.updated_at = at;
            s.add_history(EntityKind::Order, order_id, "CANCELLED", at);
            Ok(())
        })
    }

    async fn cancel_completed_order(&self, cancellation: &CompletedCancellation) -> Result<()> {
        self.commit(&cancellation.events, |s| {
            let order = s
                .orders
                .get_mut(&cancellation.order_id)
                .ok_or(Error::NotFound("order"))?;
            if order.status != OrderStatus::Completed {
                return Err(Error::OrderStatusConflict);
            }
            order.status = OrderStatus::Cancelled;
            order.updated_at = cancellation.at;
            for payment in order.payments.iter_mut() {
                if cancellation
                    .payments
                    .iter()
                    .any(|cancelled| cancelled.payment_id == payment.payment_id)
                {
                    payment.status = PaymentStatus::Canceled;
                }
            }
            for line in &cancellation.lines {
                if let Some(item) = s.items.get_mut(&line.item_id) {
                    item.stock += line.quantity;
                }
            }
            s.add_history(
                EntityKind::Order,
                &cancellation.order_id,
                "CANCELLED",
                cancellation.at,
            );
            for payment in &cancellation.payments {
                s.add_history(
                    EntityKind::Payment,
                    &payment.payment_id,
                    "CANCELED",
                    cancellation.at,
                );
            }
            s.attempts.insert(
                cancellation.refund.attempt_id.clone(),
                cancellation.refund.clone(),
            );
            Ok(())
        })
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin_idempotent(
        &self,
        member_id: &str,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyBegin> {
        self.commit(&[], |s| {
            let slot = (member_id.to_owned(), key.to_owned());
            if let Some(existing) = s.idempotency.get(&slot)
                && existing.expires_at > now
            {
                let same_body = existing.request_hash == request_hash;
                match &existing.state {
                    IdempotencyState::Done(response) if same_body => {
                        return Ok(IdempotencyBegin::Replay(response.clone()));
                    }
                    // Charged: it waits for its attempt, however old.
                    IdempotencyState::InProgress {
                        attempt: Some(_), ..
                    } if same_body => return Ok(IdempotencyBegin::Pending),
                    // Stale and nothing charged: its request died; take it over.
                    IdempotencyState::InProgress {
                        started_at,
                        attempt: None,
                        ..
                    } if *started_at + IDEMPOTENCY_LEASE <= now => {}
                    _ => return Ok(IdempotencyBegin::Conflict),
                }
            }
            let owner = crate::ids::new_id(now);
            s.idempotency.insert(
                slot,
                IdempotencyRecord {
                    request_hash: request_hash.to_owned(),
                    state: IdempotencyState::InProgress {
                        started_at: now,
                        owner: owner.clone(),
                        attempt: None,
                    },
                    expires_at: now + IDEMPOTENCY_RETENTION,
                },
            );
            Ok(IdempotencyBegin::Started(owner))
        })
    }

    async fn finish_idempotent(
        &self,
        owner: &IdempotencyOwner,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.commit(&[], |s| {
            let slot = (owner.member_id.clone(), owner.key.clone());
            match s.idempotency.get_mut(&slot) {
                Some(record) if owned_by(record, &owner.token) => {
                    record.state = IdempotencyState::Done(response.clone());
                    record.expires_at = now + IDEMPOTENCY_RETENTION;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    async fn abandon_idempotent(&self, owner: &IdempotencyOwner) -> Result<bool> {
        self.commit(&[], |s| {
            let slot = (owner.member_id.clone(), owner.key.clone());
            match s.idempotency.get(&slot) {
                Some(record)
                    if owned_by(record, &owner.token)
                        && matches!(
                            record.state,
                            IdempotencyState::InProgress { attempt: None, .. }
                        ) =>
                {
                    s.idempotency.remove(&slot);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

/// The position after the last attempt of a page of the due index.
#[derive(serde::Serialize, serde::Deserialize)]
struct AttemptCursor {
    deadline: DateTime<Utc>,
    attempt_id: String,
}

/// True while `record` is in progress and owned by `token`.
fn owned_by(record: &IdempotencyRecord, token: &str) -> bool {
    matches!(&record.state, IdempotencyState::InProgress { owner, .. } if owner == token)
}

#[async_trait]
impl PaymentAttemptStore for MemoryStore {
    async fn start_attempt(
        &self,
        attempt: &PaymentAttempt,
        idempotency: Option<&IdempotencyOwner>,
    ) -> Result<()> {
        self.commit(&[], |s| {
            if s.attempts.contains_key(&attempt.attempt_id) {
                return Err(Error::Internal("attempt id collision".into()));
            }
            if let Some(owner) = idempotency {
                let slot = (owner.member_id.clone(), owner.key.clone());
                match s.idempotency.get_mut(&slot) {
                    Some(IdempotencyRecord {
                        state:
                            IdempotencyState::InProgress {
                                owner: current,
                                attempt: linked @ None,
                                ..
                            },
                        ..
                    }) if *current == owner.token => {
                        *linked = Some(attempt.attempt_id.clone());
                    }
                    _ => return Err(Error::IdempotencyConflict),
                }
            }
            s.attempts
                .insert(attempt.attempt_id.clone(), attempt.clone());
            Ok(())
        })
    }

    async fn update_attempt(
        &self,
        attempt: &PaymentAttempt,
        expected: AttemptState,
    ) -> Result<bool> {
        self.commit(&[], |s| match s.attempts.get_mut(&attempt.attempt_id) {
            Some(stored) if stored.state == expected => {
                *stored = attempt.clone();
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn settle_refunded(&self, attempt: &PaymentAttempt) -> Result<bool> {
        self.commit(&[], |s| {
            match s.attempts.get_mut(&attempt.attempt_id) {
                Some(stored) if stored.state == AttemptState::Refunding => {
                    *stored = PaymentAttempt {
                        state: AttemptState::Refunded,
                        ..attempt.clone()
                    };
                }
                _ => return Ok(false),
            }
            if let Some(key) = &attempt.idempotency_key {
                let slot = (attempt.member_id.clone(), key.clone());
                if matches!(s.idempotency.get(&slot), Some(IdempotencyRecord {
                    state: IdempotencyState::InProgress { attempt: Some(a), .. }, ..
                }) if *a == attempt.attempt_id)
                {
                    s.idempotency.remove(&slot);
                }
            }
            Ok(true)
        })
    }

    async fn get_attempt(&self, attempt_id: &str) -> Result<Option<PaymentAttempt>> {
        Ok(self.read(|s| s.attempts.get(attempt_id).cloned()))
    }

    async fn due_attempts(
        &self,
        shard: u32,
        now: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DueAttemptPage> {
        let mut due: Vec<(DateTime<Utc>, String)> = self.read(|s| {
            s.attempts
                .values()
                .filter(|a| {
                    !a.state.is_settled()
                        && a.deadline <= now
                        && attempt_shard(&a.attempt_id) == shard
                })
                .map(|a| (a.deadline, a.attempt_id.clone()))
                .collect()
        });
        due.sort();
        // The cursor holds the position (deadline, id) of the last attempt of the previous page.
        let after = cursor
            .map(super::cursor::decode::<AttemptCursor>)
            .transpose()?;
        let page: Vec<(DateTime<Utc>, String)> = due
            .into_iter()
            .filter(|(deadline, id)| {
                after
                    .as_ref()
                    .is_none_or(|c| (*deadline, id.as_str()) > (c.deadline, c.attempt_id.as_str()))
            })
            .take(limit.max(1) + 1)
            .collect();
        let more = page.len() > limit.max(1);
        let page: Vec<_> = page.into_iter().take(limit.max(1)).collect();
        let next_cursor = match page.last() {
            Some((deadline, id)) if more => Some(super::cursor::encode(&AttemptCursor {
                deadline: *deadline,
                attempt_id: id.clone(),
            })?),
            _ => None,
        };
        Ok(DueAttemptPage {
            attempt_ids: page.into_iter().map(|(_, id)| id).collect(),
            next_cursor,
        })
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct FulfilmentCursor {
    /// The status the cursor was issued for: another status's cursor is refused.
    status: OrderStatus,
    after: String,
}

#[async_trait]
impl StaffStore for MemoryStore {
    async fn set_member_role(
        &self,
        member_id: &str,
        role: Role,
        _at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            let member = s
                .members
                .get_mut(member_id)
                .ok_or(Error::NotFound("member"))?;
            if member.status != MemberStatus::Service {
                return Err(Error::NotInService);
            }
            member.role = role;
            Ok(())
        })
    }

    async fn create_item(&self, item: &Item, at: DateTime<Utc>, event: &DomainEvent) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            if s.items.contains_key(&item.item_id) {
                return Err(Error::Internal("item id collision".into()));
            }
            s.items.insert(item.item_id.clone(), item.clone());
            s.add_history(EntityKind::Item, &item.item_id, "CREATED", at);
            Ok(())
        })
    }

    async fn update_item(
        &self,
        item: &Item,
        history: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            let stored = s
                .items
                .get_mut(&item.item_id)
                .ok_or(Error::NotFound("item"))?;
            if stored.version.checked_add(1) != Some(item.version) {
                return Err(Error::VersionConflict);
            }
            stored.name.clone_from(&item.name);
            stored.price = item.price;
            stored.active = item.active;
            stored.version = item.version;
            s.add_history(EntityKind::Item, &item.item_id, history, at);
            Ok(())
        })
    }

    async fn change_stock(&self, change: &StockChange) -> Result<()> {
        self.commit(std::slice::from_ref(&change.event), |s| {
            let stored = s
                .items
                .get_mut(&change.item_id)
                .ok_or(Error::NotFound("item"))?;
            if stored.version != change.expected_version {
                return Err(Error::VersionConflict);
            }
            let stock = match change.mode {
                StockMode::Set => change.quantity,
                StockMode::Add => stored.stock.saturating_add(change.quantity),
            };
            if stock < 0 {
                return Err(Error::OutOfStock(change.item_id.clone()));
            }
            stored.stock = stock;
            stored.version += 1;
            s.add_history(
                EntityKind::Item,
                &change.item_id,
                &change.history,
                change.at,
            );
            Ok(())
        })
    }

    async fn advance_order(
        &self,
        order_id: &str,
        from: OrderStatus,
        to: OrderStatus,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            let order = s.orders.get_mut(order_id).ok_or(Error::NotFound("order"))?;
            if order.status != from {
                return Err(Error::OrderStatusConflict);
            }
            order.status = to;
            order.updated_at = at;
            s.add_history(EntityKind::Order, order_id, to.as_str(), at);
            Ok(())
        })
    }

    async fn fulfilment_orders(
        &self,
        status: OrderStatus,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage> {
        let after = match cursor
            .map(super::cursor::decode::<FulfilmentCursor>)
            .transpose()?
        {
            Some(c) if c.status != status => return Err(Error::invalid("cursor")),
            Some(c) => Some(c.after),
            None => None,
        };
        let limit = limit.max(1);
        Ok(self.read(|s| {
            let mut matching: Vec<&Order> = s
                .orders
                .values()
                .filter(|o| o.status == status)
                .filter(|o| after.as_ref().is_none_or(|a| o.order_id > *a))
                .collect();
            // Order ids are ULIDs: oldest first.
            matching.sort_by(|a, b| a.order_id.cmp(&b.order_id));
            let mut page: Vec<Order> = matching
                .into_iter()
                .take(limit + 1)
                .map(|o| Order {
                    payments: Vec::new(),
                    ..o.clone()
                })
                .collect();
            let next_cursor = if page.len() > limit {
                page.truncate(limit);
                page.last().and_then(|o| {
                    super::cursor::encode(&FulfilmentCursor {
                        status,
                        after: o.order_id.clone(),
                    })
                    .ok()
                })
            } else {
                None
            };
            OrderPage {
                orders: page,
                next_cursor,
            }
        }))
    }
}
