//! The staff side: granting roles, editing the catalogue, fulfilling paid orders. Every use case
//! takes the already authenticated staff member (see [`crate::App::authenticate_staff`]); the
//! rules are in the domain (`Item::patched`, `OrderStatus::fulfilment_predecessor`), the
//! atomic writes in [`crate::store::StaffStore`].

use crate::clock::rfc3339;
use crate::deps::{HasClock, HasConfig, HasStore};
use crate::domain::item::{
    ItemPatch, StockMode, check_item_name, check_price, check_reason, check_stock_change,
};
use crate::domain::{DomainEvent, EventType, Item, Member, Order, OrderLine, OrderStatus, Role};
use crate::error::{Error, Result};
use crate::http::Validate;
use crate::services::orders::ListQuery;
use crate::store::{SlotRelease, StockChange};
use serde::{Deserialize, Serialize};

/// An item as customers see it (`GET /items`, `GET /items/{itemId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicItem {
    pub item_id: String,
    pub name: String,
    pub price: i64,
    pub stock: i64,
}

impl From<&Item> for PublicItem {
    fn from(item: &Item) -> Self {
        Self {
            item_id: item.item_id.clone(),
            name: item.name.clone(),
            price: item.price,
            stock: item.stock,
        }
    }
}

/// The active items, for customers; inactive ones are hidden.
pub async fn public_items(deps: &impl HasStore) -> Result<Vec<PublicItem>> {
    let items = deps.store().list_items().await?;
    Ok(items
        .iter()
        .filter(|item| item.active)
        .map(PublicItem::from)
        .collect())
}

/// One active item, for customers: unknown or inactive → 404CO000.
pub async fn public_item(deps: &impl HasStore, item_id: &str) -> Result<PublicItem> {
    match deps.store().get_item(item_id).await? {
        Some(item) if item.active => Ok(PublicItem::from(&item)),
        _ => Err(Error::NotFound("item")),
    }
}

// ---- Roles ----

/// `PUT /admin/members/{memberId}/role` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RoleRequest {
    pub role: String,
}

impl Validate for RoleRequest {
    fn validate(&self) -> Result<()> {
        Role::parse(&self.role)
            .map(drop)
            .ok_or_else(|| Error::invalid("role"))
    }
}

/// `PUT /admin/members/{memberId}/role` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleChange {
    pub member_id: String,
    pub role: Role,
}

/// An admin sets another member's role. Their own → 400CO000 `memberId` (an admin cannot lock
/// the cafe out by demoting the last admin by mistake; `cafe-admin` grants from outside);
/// unknown member → 404CO000; not in service → 400ME001.
pub async fn grant_role(
    deps: &(impl HasStore + HasClock),
    admin: &Member,
    member_id: &str,
    request: &RoleRequest,
) -> Result<RoleChange> {
    let role = Role::parse(&request.role).ok_or_else(|| Error::invalid("role"))?;
    if !crate::ids::is_well_formed(member_id) {
        return Err(Error::NotFound("member"));
    }
    if member_id == admin.member_id {
        return Err(Error::invalid("memberId"));
    }
    let at = deps.clock().now();
    let event = DomainEvent::role(member_id, role.as_str(), &admin.member_id, at);
    deps.store()
        .set_member_role(member_id, role, at, &event)
        .await
        .map_err(|error| match error {
            Error::NotInService => Error::RoleNeedsService,
            other => other,
        })?;
    tracing::info!(member_id, role = role.as_str(), granted_by = %admin.member_id, "role changed");
    Ok(RoleChange {
        member_id: member_id.to_owned(),
        role,
    })
}

// ---- Catalogue ----

/// An item as staff see it: with its active flag and the version an edit must name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StaffItem {
    pub item_id: String,
    pub name: String,
    pub price: i64,
    pub stock: i64,
    pub active: bool,
    pub version: u64,
}

impl From<Item> for StaffItem {
    fn from(item: Item) -> Self {
        Self {
            item_id: item.item_id,
            name: item.name,
            price: item.price,
            stock: item.stock,
            active: item.active,
            version: item.version,
        }
    }
}

/// `POST /admin/items` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewItemRequest {
    pub name: String,
    pub price: i64,
    pub stock: i64,
    #[serde(default)]
    pub active: Option<bool>,
}

impl Validate for NewItemRequest {
    fn validate(&self) -> Result<()> {
        check_item_name(&self.name)?;
        check_price(self.price)?;
        check_stock_change(StockMode::Set, self.stock).map_err(|_| Error::invalid("stock"))
    }
}

/// Adds an item (version 0) to the catalogue.
pub async fn create_item(
    deps: &(impl HasStore + HasClock),
    staff: &Member,
    request: &NewItemRequest,
) -> Result<StaffItem> {
    request.validate()?;
    let at = deps.clock().now();
    let item = Item {
        item_id: crate::ids::new_id(at),
        name: request.name.trim().to_owned(),
        price: request.price,
        stock: request.stock,
        active: request.active.unwrap_or(true),
        version: 0,
    };
    let event = DomainEvent::item(EventType::ItemCreated, &item, &staff.member_id, None, at);
    deps.store().create_item(&item, at, &event).await?;
    tracing::info!(item_id = %item.item_id, staff_id = %staff.member_id, "item created");
    Ok(StaffItem::from(item))
}

/// `PATCH /admin/items/{itemId}` body: the version read, and at least one field to change.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ItemPatchRequest {
    pub version: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub price: Option<i64>,
    #[serde(default)]
    pub active: Option<bool>,
}

impl Validate for ItemPatchRequest {
    fn validate(&self) -> Result<()> {
        if let Some(name) = &self.name {
            check_item_name(name)?;
        }
        if let Some(price) = self.price {
            check_price(price)?;
        }
        if self.name.is_none() && self.price.is_none() && self.active.is_none() {
            // Nothing asked: say what may be.
            return Err(Error::invalid("name, price or active"));
        }
        Ok(())
    }
}

/// Every item as staff see it, inactive ones too, with its version (`GET /admin/items`), by id.
/// One `Query` of the catalogue index, like `GET /items`.
pub async fn all_items(deps: &impl HasStore) -> Result<Vec<StaffItem>> {
    let items = deps.store().list_items().await?;
    Ok(items.into_iter().map(StaffItem::from).collect())
}

/// Loads an item for staff: an id that cannot exist or an unknown one → 404CO000.
async fn load_item(deps: &impl HasStore, item_id: &str) -> Result<Item> {
    if !crate::ids::is_well_formed(item_id) {
        return Err(Error::NotFound("item"));
    }
    deps.store()
        .get_item(item_id)
        .await?
        .ok_or(Error::NotFound("item"))
}

/// Changes name, price or active flag, only from the version the staff member read (409IT000).
/// Orders already made keep the price they were made at (their lines copy it). A patch that sets
/// what the item already has writes nothing and answers the item as it is (same version): a
/// repeated edit succeeds instead of failing.
pub async fn update_item(
    deps: &(impl HasStore + HasClock),
    staff: &Member,
    item_id: &str,
    request: &ItemPatchRequest,
) -> Result<StaffItem> {
    request.validate()?;
    let current = load_item(deps, item_id).await?;
    let patch = ItemPatch {
        name: request.name.clone(),
        price: request.price,
        active: request.active,
    };
    let Some(next) = current.patched(&patch, request.version)? else {
        tracing::info!(item_id, staff_id = %staff.member_id, "item edit changed nothing");
        return Ok(StaffItem::from(current));
    };
    let at = deps.clock().now();
    let event = DomainEvent::item(EventType::ItemUpdated, &next, &staff.member_id, None, at);
    let history = update_history(&current, &next);
    deps.store()
        .update_item(&next, &history, at, &event)
        .await?;
    tracing::info!(item_id, staff_id = %staff.member_id, version = next.version, "item updated");
    // The stock as it is now (sales move it without a version).
    Ok(StaffItem::from(load_item(deps, item_id).await?))
}

/// `UPDATED name price active`: which fields changed.
fn update_history(before: &Item, after: &Item) -> String {
    let mut fields = vec!["UPDATED"];
    if before.name != after.name {
        fields.push("name");
    }
    if before.price != after.price {
        fields.push("price");
    }
    if before.active != after.active {
        fields.push(if after.active {
            "activated"
        } else {
            "deactivated"
        });
    }
    fields.join(" ")
}

/// `POST /admin/items/{itemId}/stock` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StockRequest {
    pub mode: StockMode,
    pub quantity: i64,
    pub reason: String,
    pub version: u64,
}

impl Validate for StockRequest {
    fn validate(&self) -> Result<()> {
        check_stock_change(self.mode, self.quantity)?;
        check_reason(&self.reason)
    }
}

/// Adds to or sets an item's stock, with a reason, from the version read (409IT000). `ADD`
/// adds to the stock as it is at the write, so sales racing the restock are never lost.
pub async fn change_stock(
    deps: &(impl HasStore + HasClock),
    staff: &Member,
    item_id: &str,
    request: &StockRequest,
) -> Result<StaffItem> {
    request.validate()?;
    let current = load_item(deps, item_id).await?;
    current.check_version(request.version)?;
    // Checked against the stock read; the store checks again at the write.
    current.restocked(request.mode, request.quantity)?;
    let at = deps.clock().now();
    let reason = request.reason.trim();
    let history = match request.mode {
        StockMode::Add => format!("STOCK_ADD {:+}: {reason}", request.quantity),
        StockMode::Set => format!("STOCK_SET {}: {reason}", request.quantity),
    };
    let mut announced = current.clone();
    announced.version = current.version + 1;
    let mut event = DomainEvent::item(
        EventType::ItemStockChanged,
        &announced,
        &staff.member_id,
        Some(reason),
        at,
    );
    // The stock after an ADD is only known at the write: the event carries the change.
    event.detail["mode"] = serde_json::json!(request.mode);
    event.detail["quantity"] = serde_json::json!(request.quantity);
    if request.mode == StockMode::Add {
        event.detail["stock"] = serde_json::Value::Null;
    } else {
        event.detail["stock"] = serde_json::json!(request.quantity);
    }
    let change = StockChange {
        item_id: current.item_id.clone(),
        mode: request.mode,
        quantity: request.quantity,
        expected_version: request.version,
        history,
        at,
        event,
    };
    deps.store().change_stock(&change).await?;
    tracing::info!(item_id, staff_id = %staff.member_id, quantity = request.quantity, "stock changed");
    Ok(StaffItem::from(load_item(deps, item_id).await?))
}

// ---- Fulfilment ----

/// One order in the staff queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedOrder {
    pub order_id: String,
    pub member_id: String,
    pub status: OrderStatus,
    pub total_price: i64,
    pub items: Vec<OrderLine>,
    /// The pickup number to call (orders paid before the floor existed have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pickup_number: Option<u32>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Order> for QueuedOrder {
    fn from(order: &Order) -> Self {
        Self {
            order_id: order.order_id.clone(),
            member_id: order.member_id.clone(),
            status: order.status,
            total_price: order.total_price,
            items: order.items.clone(),
            pickup_number: order.pickup_number,
            created_at: rfc3339(order.created_at),
            updated_at: rfc3339(order.updated_at),
        }
    }
}

/// `GET /admin/orders` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedOrders {
    pub orders: Vec<QueuedOrder>,
    pub next_cursor: Option<String>,
}

/// `status` of `GET /admin/orders`: `COMPLETED` (default), `PREPARING` or `READY`; anything
/// else → 400CO000 `status`.
pub fn parse_queue_status(status: Option<&str>) -> Result<OrderStatus> {
    match status {
        None => Ok(OrderStatus::Completed),
        Some(text) => OrderStatus::parse(text)
            .filter(|s| s.is_in_fulfilment())
            .ok_or_else(|| Error::invalid("status")),
    }
}

/// Orders in one fulfilment status, oldest first, a page at a time.
pub async fn queued_orders(
    deps: &impl HasStore,
    status: OrderStatus,
    query: &ListQuery,
) -> Result<QueuedOrders> {
    let page = deps
        .store()
        .fulfilment_orders(status, query.limit, query.cursor.as_deref())
        .await?;
    Ok(QueuedOrders {
        orders: page.orders.iter().map(QueuedOrder::from).collect(),
        next_cursor: page.next_cursor,
    })
}

/// `PUT /admin/orders/{orderId}/status` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FulfilmentRequest {
    pub status: String,
}

impl Validate for FulfilmentRequest {
    fn validate(&self) -> Result<()> {
        fulfilment_target(&self.status).map(drop)
    }
}

fn fulfilment_target(status: &str) -> Result<OrderStatus> {
    OrderStatus::parse(status)
        .filter(|s| s.fulfilment_predecessor().is_some())
        .ok_or_else(|| Error::invalid("status"))
}

/// `PUT /admin/orders/{orderId}/status` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfilmentStep {
    pub order_id: String,
    pub status: OrderStatus,
}

/// Moves a paid order one fulfilment step on: `COMPLETED → PREPARING → READY → PICKED_UP`.
/// Asking for the status the order already has answers 200 again (a retry after a lost answer);
/// any other jump → 400OR001; unknown order → 404CO000.
pub async fn advance_order(
    deps: &(impl HasStore + HasClock + HasConfig),
    staff: &Member,
    order_id: &str,
    request: &FulfilmentRequest,
) -> Result<FulfilmentStep> {
    let target = fulfilment_target(&request.status)?;
    if !crate::ids::is_well_formed(order_id) {
        return Err(Error::NotFound("order"));
    }
    let order = deps
        .store()
        .get_order(order_id)
        .await?
        .ok_or(Error::NotFound("order"))?;
    let step = FulfilmentStep {
        order_id: order.order_id.clone(),
        status: target,
    };
    if order.status == target {
        return Ok(step);
    }
    let from = target
        .fulfilment_predecessor()
        .ok_or_else(|| Error::invalid("status"))?;
    if order.status != from {
        return Err(Error::OrderStatusConflict);
    }
    let at = deps.clock().now();
    let mut event = DomainEvent::order(
        EventType::OrderFulfilmentAdvanced,
        &order.order_id,
        &order.member_id,
        target.as_str(),
        order.total_price,
        at,
    );
    event.detail["staffId"] = serde_json::json!(staff.member_id);
    if let Some(number) = order.pickup_number {
        event.detail["pickupNumber"] = serde_json::json!(number);
    }
    // Made: the order's floor slot is given back, and its make time (since PREPARING) counted.
    let release = if target == OrderStatus::Ready {
        let day = crate::domain::floor::business_day(at, deps.config().floor.timezone);
        let seconds = (at - order.updated_at).num_seconds().max(0);
        SlotRelease::of(&order, Some((day, seconds)))
    } else {
        None
    };
    match deps
        .store()
        .advance_order(&order.order_id, from, target, at, &event, release.as_ref())
        .await
    {
        Ok(()) => {}
        // Another staff member (or this one's retry) made the same step first.
        Err(Error::OrderStatusConflict) => {
            let now = deps.store().get_order(order_id).await?;
            if now.map(|o| o.status) != Some(target) {
                return Err(Error::OrderStatusConflict);
            }
        }
        Err(other) => return Err(other),
    }
    tracing::info!(order_id, status = target.as_str(), staff_id = %staff.member_id, "fulfilment step");
    Ok(step)
}

/// Sets a member's role from outside the API (the `cafe-admin` command: how the first admin is
/// made). Finds the member by email or id; records the same event an admin's grant does, with
/// `grantedBy` naming the tool.
pub async fn grant_role_offline(
    store: &dyn crate::store::Store,
    member: &str,
    role: Role,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Member> {
    let found = if member.contains('@') {
        store
            .find_member_by_email(&crate::domain::member::normalize_email(member))
            .await?
    } else {
        store.get_member(member).await?
    };
    let mut found = found.ok_or(Error::NotFound("member"))?;
    let event = DomainEvent::role(&found.member_id, role.as_str(), "cafe-admin", now);
    store
        .set_member_role(&found.member_id, role, now, &event)
        .await?;
    found.role = role;
    Ok(found)
}
