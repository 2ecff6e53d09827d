//! [`StaffStore`] in memory: roles, catalogue edits and the fulfilment queue.

use super::*;

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
            member.session_version = member.session_version.saturating_add(1);
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
        release: Option<&SlotRelease>,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            let order = s.orders.get_mut(order_id).ok_or(Error::NotFound("order"))?;
            if order.status != from {
                return Err(Error::OrderStatusConflict);
            }
            order.status = to;
            order.updated_at = at;
            s.add_history(EntityKind::Order, order_id, to.as_str(), at);
            if let Some(release) = release {
                s.floor.release(release);
            }
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
            .map(crate::store::cursor::decode::<FulfilmentCursor>)
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
                    crate::store::cursor::encode(&FulfilmentCursor {
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
