//! The live channel's use cases (`docs/live.md`): issuing a ticket (`POST /live/ticket`),
//! redeeming it on connect, subscribing, and fanning committed events out to the connections
//! that may hear them. Delivery itself is a [`Poster`]: API Gateway's management API on AWS
//! (`functions/live-sender`), the local server's sockets in `cafe-local`.

use crate::clock::rfc3339;
use crate::deps::{HasClock, HasStore};
use crate::domain::live::{
    self, CONNECTION_TTL, ClientFrame, Grant, OrderChange, TICKET_TTL, Topic,
};
use crate::domain::{DomainEvent, Member, Order, OrderStatus};
use crate::error::{Error, Result};
use async_trait::async_trait;
use serde::Serialize;
use std::collections::HashSet;

/// `POST /live/ticket`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TicketAnswer {
    pub ticket: String,
    pub expires_at: String,
    pub url: String,
}

/// Issues a single-use ticket for `member` (already authenticated, in service), good for 30 s.
pub async fn issue_ticket(
    deps: &(impl HasStore + HasClock),
    member: &Member,
    url: String,
) -> Result<TicketAnswer> {
    member.check_in_service()?;
    let (ticket, hash) = live::new_ticket();
    let expires_at = deps.clock().now() + TICKET_TTL;
    deps.store()
        .put_live_ticket(
            &hash,
            &Grant::member(&member.member_id, member.role),
            expires_at,
        )
        .await?;
    Ok(TicketAnswer {
        ticket,
        expires_at: rfc3339(expires_at),
        url,
    })
}

/// `$connect`: redeems the ticket (once) and records the connection; no ticket is an anonymous
/// connection (display only). An unknown, used, expired or forged ticket → 401CO000.
pub async fn connect(
    deps: &(impl HasStore + HasClock),
    connection_id: &str,
    ticket: Option<&str>,
) -> Result<Grant> {
    let now = deps.clock().now();
    let grant = match ticket {
        None => Grant::anonymous(),
        Some(ticket) if !live::ticket_is_well_formed(ticket) => return Err(Error::Unauthorized),
        Some(ticket) => deps
            .store()
            .redeem_live_ticket(&live::ticket_hash(ticket), now)
            .await?
            .ok_or(Error::Unauthorized)?,
    };
    deps.store()
        .put_live_connection(connection_id, &grant, now + CONNECTION_TTL)
        .await?;
    Ok(grant)
}

/// `$disconnect`: forgets the connection and its subscriptions.
pub async fn disconnect(deps: &impl HasStore, connection_id: &str) -> Result<()> {
    deps.store().remove_live_connection(connection_id).await
}

/// One client frame (`subscribe` or `ping`) on a connection: the frame to answer with. Every
/// refusal is an error frame; nothing is subscribed then.
pub async fn on_frame(
    deps: &(impl HasStore + HasClock),
    connection_id: &str,
    text: &str,
) -> Result<String> {
    let topic = match live::parse_frame(text) {
        Ok(ClientFrame::Ping) => return Ok(live::pong()),
        Ok(ClientFrame::Subscribe(topic)) => topic,
        Err(error) => return Ok(live::error_frame(&error)),
    };
    let now = deps.clock().now();
    let Some(grant) = deps.store().get_live_connection(connection_id, now).await? else {
        return Ok(live::error_frame(&Error::Unauthorized));
    };
    let owner = match &topic {
        Topic::Order(order_id) if grant.member_id.is_some() => deps
            .store()
            .get_order(order_id)
            .await?
            .map(|order| order.member_id),
        _ => None,
    };
    match live::subscription_key(&grant, &topic, owner.as_deref()) {
        Ok(key) => {
            deps.store()
                .add_live_subscription(connection_id, &key, now + CONNECTION_TTL)
                .await?;
            Ok(live::subscribed(&topic))
        }
        Err(error) => Ok(live::error_frame(&error)),
    }
}

/// What happened to one post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Posted {
    Delivered,
    /// The connection is gone (API Gateway's 410): it is forgotten.
    Gone,
    /// Anything else: logged and counted; the other listeners still get theirs.
    Failed(String),
}

/// Delivers one message to one connection.
#[async_trait]
pub trait Poster: Send + Sync {
    async fn post(&self, connection_id: &str, message: &str) -> Posted;
}

/// What a fan-out did (also `live-sender`'s answer to its invocation).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FanOut {
    pub delivered: usize,
    pub gone: usize,
    pub failed: usize,
}

/// Every `(connection id, message)` a batch of committed events is delivered as: each status
/// change once, to each connection that may hear it once (a connection on both `orders` and
/// `order` gets it once). The order is read for its owner and pickup number.
pub async fn plan(
    deps: &(impl HasStore + HasClock),
    events: &[DomainEvent],
) -> Result<Vec<(String, String)>> {
    let now = deps.clock().now();
    let mut out = Vec::new();
    let mut announced: HashSet<(String, OrderStatus)> = HashSet::new();
    let mut orders: std::collections::HashMap<String, Option<Order>> = Default::default();
    for change in live::status_changes(events) {
        if announced.contains(&(change.order_id.clone(), change.status)) {
            continue;
        }
        // The parts of one payment name the same order: it is read once.
        if !orders.contains_key(&change.order_id) {
            let read = deps.store().get_order(&change.order_id).await?;
            orders.insert(change.order_id.clone(), read);
        }
        let Some(Some(order)) = orders.get(&change.order_id).cloned() else {
            continue;
        };
        if !live::announces(&change, &order) {
            continue;
        }
        announced.insert((change.order_id.clone(), change.status));
        let change = OrderChange {
            order_id: change.order_id,
            member_id: order.member_id,
            status: change.status,
            pickup_number: order.pickup_number,
            at: change.at,
        };
        let mut seen: HashSet<(String, String)> = HashSet::new();
        for (key, message) in live::deliveries(&change) {
            for connection_id in deps.store().live_listeners(&key, now).await? {
                if seen.insert((connection_id.clone(), message.clone())) {
                    out.push((connection_id, message.clone()));
                }
            }
        }
    }
    Ok(out)
}

/// Posts every planned message; a gone connection is forgotten, a failed post is logged, and
/// neither stops the others.
pub async fn deliver(
    deps: &impl HasStore,
    poster: &dyn Poster,
    planned: &[(String, String)],
) -> FanOut {
    let mut result = FanOut::default();
    for (connection_id, message) in planned {
        record(
            deps,
            &mut result,
            connection_id,
            poster.post(connection_id, message).await,
        )
        .await;
    }
    result
}

/// Counts one post's outcome, forgetting a gone connection.
pub async fn record(
    deps: &impl HasStore,
    result: &mut FanOut,
    connection_id: &str,
    posted: Posted,
) {
    match posted {
        Posted::Delivered => result.delivered += 1,
        Posted::Gone => {
            result.gone += 1;
            if let Err(error) = deps.store().remove_live_connection(connection_id).await {
                tracing::warn!(%error, connection_id, "could not forget a gone connection");
            }
        }
        Posted::Failed(reason) => {
            result.failed += 1;
            tracing::warn!(connection_id, %reason, "posting to a connection failed");
        }
    }
}

/// [`plan`] then [`deliver`].
pub async fn fan_out(
    deps: &(impl HasStore + HasClock),
    poster: &dyn Poster,
    events: &[DomainEvent],
) -> Result<FanOut> {
    let planned = plan(deps, events).await?;
    Ok(deliver(deps, poster, &planned).await)
}
