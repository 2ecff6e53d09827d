//! [`FloorStore`] in memory: the pickup counters, the shop's state and the floor slots, changed
//! only inside the critical section of the write they belong to.

use super::*;
use crate::domain::floor::{FloorSlot, FloorState};

/// The floor's counters.
#[derive(Default)]
pub(super) struct Floor {
    /// `None` until staff first set it: open, no message.
    shop: Option<(bool, Option<String>, DateTime<Utc>)>,
    in_progress: i64,
    per_member: HashMap<String, i64>,
    /// Business day → (last pickup number, orders made, their make seconds).
    days: HashMap<String, (u32, i64, i64)>,
}

impl Floor {
    fn open(&self) -> (bool, Option<String>) {
        match &self.shop {
            Some((open, message, _)) => (*open, message.clone()),
            None => (true, None),
        }
    }

    /// Closed → 409SH000 with the message (a new order's check).
    pub(super) fn check_open(&self) -> Result<()> {
        match self.open() {
            (true, _) => Ok(()),
            (false, message) => Err(Error::ShopClosed(message)),
        }
    }

    /// Reserves `slot` for `member_id` (the fence of [`PaymentAttemptStore::start_attempt`]).
    pub(super) fn reserve(&mut self, member_id: &str, slot: &FloorSlot) -> Result<()> {
        let (open, message) = self.open();
        if !open {
            return Err(Error::ShopClosed(message));
        }
        // `Retry-After` is filled in by the payment, as on DynamoDB.
        if self.in_progress >= slot.max_in_progress {
            return Err(Error::ShopFull(0));
        }
        let mine = self.per_member.get(member_id).copied().unwrap_or(0);
        if mine >= slot.max_open_per_member {
            return Err(Error::TooManyOpenOrders(0));
        }
        self.in_progress += 1;
        *self.per_member.entry(member_id.to_owned()).or_default() += 1;
        Ok(())
    }

    /// Gives a slot back (a refund, `READY`, a cancellation), adding a make time on `READY`.
    pub(super) fn release(&mut self, release: &SlotRelease) {
        self.in_progress -= 1;
        *self
            .per_member
            .entry(release.member_id.clone())
            .or_default() -= 1;
        if let Some((day, seconds)) = &release.made {
            let stats = self.days.entry(day.clone()).or_default();
            stats.1 += 1;
            stats.2 += seconds;
        }
    }
}

#[async_trait]
impl FloorStore for MemoryStore {
    async fn take_pickup_number(&self, day: &str) -> Result<u32> {
        self.commit(&[], |s| {
            let stats = s.floor.days.entry(day.to_owned()).or_default();
            stats.0 += 1;
            Ok(stats.0)
        })
    }

    async fn floor_state(&self, day: &str) -> Result<FloorState> {
        Ok(self.read(|s| {
            let (open, message) = s.floor.open();
            let (_, made, make_seconds) = s.floor.days.get(day).copied().unwrap_or_default();
            FloorState {
                open,
                message,
                in_progress: s.floor.in_progress,
                updated_at: s.floor.shop.as_ref().map(|(_, _, at)| *at),
                made,
                make_seconds,
            }
        }))
    }

    async fn set_shop(&self, change: &ShopChange, event: &DomainEvent) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            s.floor.shop = Some((change.open, change.message.clone(), change.at));
            Ok(())
        })
    }

    async fn open_orders_of(&self, member_id: &str) -> Result<i64> {
        Ok(self.read(|s| s.floor.per_member.get(member_id).copied().unwrap_or(0)))
    }

    async fn orders_ahead(&self, order_id: &str) -> Result<i64> {
        Ok(self.read(|s| {
            s.orders
                .values()
                .filter(|o| {
                    o.status == OrderStatus::Preparing
                        || (o.status == OrderStatus::Completed && o.order_id.as_str() < order_id)
                })
                .count() as i64
        }))
    }
}
