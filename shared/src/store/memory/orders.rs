//! [`OrderStore`] in memory: orders, their payments and history, paged per member.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct OrderCursor {
    /// The member the cursor was issued to: another member's cursor is refused.
    member: String,
    before: String,
}

/// The position after the last order of a page of the pending sweep.
#[derive(serde::Serialize, serde::Deserialize)]
struct PendingCursor {
    after: String,
}

#[async_trait]
impl OrderStore for MemoryStore {
    async fn create_order(&self, order: &Order, event: &DomainEvent) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            s.floor.check_open()?;
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
            .map(crate::store::cursor::decode::<OrderCursor>)
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
                    crate::store::cursor::encode(&OrderCursor {
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
                order.pickup_number = completion.pickup_number;
                order.paid_at = Some(completion.at);
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

    async fn pending_orders_before(
        &self,
        before: DateTime<Utc>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<OrderPage> {
        let after = cursor
            .map(crate::store::cursor::decode::<PendingCursor>)
            .transpose()?
            .map(|c| c.after);
        let limit = limit.max(1);
        self.read(|s| {
            let mut due: Vec<&Order> = s
                .orders
                .values()
                .filter(|o| o.status == OrderStatus::PendingPayment && o.created_at < before)
                .filter(|o| after.as_ref().is_none_or(|a| o.order_id > *a))
                .collect();
            due.sort_by(|a, b| a.order_id.cmp(&b.order_id));
            let mut orders: Vec<Order> = due.into_iter().take(limit + 1).cloned().collect();
            let next_cursor = if orders.len() > limit {
                orders.truncate(limit);
                orders
                    .last()
                    .map(|o| {
                        crate::store::cursor::encode(&PendingCursor {
                            after: o.order_id.clone(),
                        })
                    })
                    .transpose()?
            } else {
                None
            };
            Ok(OrderPage {
                orders,
                next_cursor,
            })
        })
    }

    async fn expire_order(
        &self,
        order_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<bool> {
        let expired = self.commit(std::slice::from_ref(event), |s| {
            match s.orders.get_mut(order_id) {
                Some(order) if order.status == OrderStatus::PendingPayment => {
                    order.status = OrderStatus::Expired;
                    order.updated_at = at;
                }
                Some(_) => return Err(Error::OrderStatusConflict),
                None => return Err(Error::NotFound("order")),
            }
            s.add_history(EntityKind::Order, order_id, "EXPIRED", at);
            Ok(())
        });
        match expired {
            Ok(()) => Ok(true),
            Err(Error::OrderStatusConflict | Error::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
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
            if let Some(release) = &cancellation.release {
                s.floor.release(release);
            }
            Ok(())
        })
    }
}
