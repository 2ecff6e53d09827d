//! The in-memory store of the embedded default: one mutex over all state, so every operation is
//! atomic exactly like its DynamoDB transaction. Committed events go to a [`MemoryEventLog`],
//! standing in for the table stream and its publisher.
//!
//! One file per store trait, at the same path as its DynamoDB twin in `store/dynamo/`.

use super::*;
use crate::domain::attempt::{AttemptState, PaymentAttempt};
use crate::domain::{EntityKind, MemberStatus, OrderStatus, PaymentStatus};
use crate::error::Error;
use crate::events::MemoryEventLog;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;

mod attempts;
mod expiry;
mod floor;
mod idempotency;
mod items;
mod live;
mod members;
mod orders;
mod staff;
mod tokens;

use idempotency::{IdempotencyRecord, IdempotencyState};
use tokens::RefreshState;

#[derive(Default)]
struct State {
    members: HashMap<String, Member>,
    /// member_id → stored password, apart from the profile as on DynamoDB.
    passwords: HashMap<String, StoredPassword>,
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
    floor: floor::Floor,
    live: live::Live,
}

impl State {
    /// A new member with its password, its email guard and first history row.
    fn add_member(&mut self, member: &Member, password: &StoredPassword) -> Result<()> {
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
        self.passwords
            .insert(member.member_id.clone(), password.clone());
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
