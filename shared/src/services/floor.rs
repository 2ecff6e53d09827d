//! The cafe floor seen from outside (`docs/floor.md`): `GET /shop` (open or not, the message,
//! the orders being made, the estimated wait) and `PUT /admin/shop` (staff open or close it).
//! Pickup numbers and the capacity fence live in the payment's writes; this is their reading.

use crate::clock::rfc3339;
use crate::deps::{HasClock, HasConfig, HasStore};
use crate::domain::floor::{FloorState, business_day, check_shop_message, estimated_wait_minutes};
use crate::domain::{DomainEvent, Member};
use crate::error::Result;
use crate::http::Validate;
use crate::store::ShopChange;
use serde::{Deserialize, Serialize};

/// `GET /shop` and `PUT /admin/shop` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShopView {
    pub open: bool,
    pub message: Option<String>,
    /// Paid orders not yet `READY` (with the payments still in flight).
    pub orders_in_progress: i64,
    /// How many more may be paid before payments are refused (409SH001).
    pub room: i64,
    /// Whole minutes a new order can expect to wait (see [`estimated_wait_minutes`]).
    pub estimated_wait_minutes: i64,
    /// The day's mean make time (`PREPARING` → `READY`) the estimate uses, in whole seconds,
    /// and how many orders it is the mean of (0: the default is used).
    pub mean_make_seconds: i64,
    pub made_today: i64,
    pub updated_at: Option<String>,
}

fn view(state: &FloorState, max_in_progress: i64) -> ShopView {
    ShopView {
        open: state.open,
        message: state.message.clone(),
        orders_in_progress: state.in_progress.max(0),
        room: (max_in_progress - state.in_progress).max(0),
        estimated_wait_minutes: estimated_wait_minutes(
            state.in_progress.max(0),
            state.mean_make_seconds(),
        ),
        mean_make_seconds: state.mean_make_seconds(),
        made_today: state.made,
        updated_at: state.updated_at.map(rfc3339),
    }
}

/// The shop now (public).
pub async fn shop(deps: &(impl HasStore + HasClock + HasConfig)) -> Result<ShopView> {
    let day = business_day(deps.clock().now(), deps.config().floor.timezone);
    let state = deps.store().floor_state(&day).await?;
    Ok(view(&state, deps.config().floor.max_in_progress))
}

/// `PUT /admin/shop` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShopRequest {
    pub open: bool,
    #[serde(default)]
    pub message: Option<String>,
}

impl Validate for ShopRequest {
    fn validate(&self) -> Result<()> {
        match &self.message {
            Some(message) => check_shop_message(message),
            None => Ok(()),
        }
    }
}

/// Opens or closes the shop with a message (staff), with a `ShopStatusChanged` event. While
/// closed, new orders and payments are refused (409SH000) before anything is charged; orders
/// already paid are still made.
pub async fn set_shop(
    deps: &(impl HasStore + HasClock + HasConfig),
    staff: &Member,
    request: &ShopRequest,
) -> Result<ShopView> {
    request.validate()?;
    let at = deps.clock().now();
    let message = request
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let change = ShopChange {
        open: request.open,
        message: message.clone(),
        staff_id: staff.member_id.clone(),
        at,
    };
    let event = DomainEvent::shop(request.open, message.as_deref(), &staff.member_id, at);
    deps.store().set_shop(&change, &event).await?;
    tracing::info!(open = request.open, staff_id = %staff.member_id, "shop status set");
    shop(deps).await
}

/// What one run of the unpaid-order sweep did (`expire-orders`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnpaidSweep {
    /// Orders moved to `EXPIRED`.
    pub expired: u64,
    /// Found due but paid or cancelled meanwhile.
    pub skipped: u64,
    /// Writes that failed (a dependency error); the next run retries them.
    pub failed: u64,
    pub pages: u64,
    /// False when the run stopped before the list was exhausted (deadline, failures).
    pub complete: bool,
}

/// Moves every `PENDING_PAYMENT` order older than the payment window to `EXPIRED`, with its
/// history row and an `OrderExpired` event, page by page from the store's pending list (never
/// a scan). Idempotent: an order paid or cancelled meanwhile is skipped by the write's
/// condition. Stops after the page in progress once `stop_by` has passed.
pub async fn expire_unpaid(
    store: &dyn crate::store::Store,
    now: chrono::DateTime<chrono::Utc>,
    window: chrono::Duration,
    stop_by: Option<std::time::Instant>,
) -> Result<UnpaidSweep> {
    let cutoff = now - window;
    let mut sweep = UnpaidSweep::default();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .pending_orders_before(cutoff, 100, cursor.as_deref())
            .await?;
        sweep.pages += 1;
        for order in &page.orders {
            let event = DomainEvent::order(
                crate::domain::EventType::OrderExpired,
                &order.order_id,
                &order.member_id,
                crate::domain::OrderStatus::Expired.as_str(),
                order.total_price,
                now,
            );
            match store.expire_order(&order.order_id, now, &event).await {
                Ok(true) => sweep.expired += 1,
                Ok(false) => sweep.skipped += 1,
                Err(error) => {
                    tracing::warn!(order_id = %order.order_id, %error, "could not expire; retried next run");
                    sweep.failed += 1;
                }
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            sweep.complete = sweep.failed == 0;
            break;
        }
        if stop_by.is_some_and(|at| std::time::Instant::now() >= at) {
            break;
        }
    }
    tracing::info!(
        expired = sweep.expired,
        skipped = sweep.skipped,
        failed = sweep.failed,
        pages = sweep.pages,
        "unpaid orders swept"
    );
    Ok(sweep)
}

/// `GET /shop/board` answer: the pickup display's numbers, nothing personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Board {
    /// Today's pickup numbers of paid orders being made (`COMPLETED` or `PREPARING`), oldest
    /// first.
    pub making: Vec<u32>,
    /// Today's pickup numbers of orders `READY`, oldest first.
    pub ready: Vec<u32>,
    pub at: String,
}

/// Pages of the fulfilment queue the board reads per status, of [`BOARD_PAGE`] orders each: a
/// display shows a few dozen numbers at most.
const BOARD_PAGES: usize = 3;
const BOARD_PAGE: usize = 100;

/// The pickup display's board (public): today's numbers being made and ready, oldest first,
/// read from the same fulfilment queue as `GET /admin/orders`. Orders of an earlier business
/// day (their numbers repeat today's) and orders without a number are left out.
pub async fn board(deps: &(impl HasStore + HasClock + HasConfig)) -> Result<Board> {
    use crate::domain::OrderStatus;
    let now = deps.clock().now();
    let timezone = deps.config().floor.timezone;
    let today = business_day(now, timezone);
    let mut lists: [Vec<(chrono::DateTime<chrono::Utc>, u32)>; 2] = [Vec::new(), Vec::new()];
    for (status, list) in [
        (OrderStatus::Completed, 0),
        (OrderStatus::Preparing, 0),
        (OrderStatus::Ready, 1),
    ] {
        let mut cursor: Option<String> = None;
        for _ in 0..BOARD_PAGES {
            let page = deps
                .store()
                .fulfilment_orders(status, BOARD_PAGE, cursor.as_deref())
                .await?;
            for order in &page.orders {
                let paid = order.paid_at.unwrap_or(order.created_at);
                if let Some(number) = order.pickup_number
                    && business_day(paid, timezone) == today
                {
                    lists[list].push((paid, number));
                }
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
    }
    let [mut making, mut ready] = lists;
    making.sort();
    ready.sort();
    Ok(Board {
        making: making.into_iter().map(|(_, n)| n).collect(),
        ready: ready.into_iter().map(|(_, n)| n).collect(),
        at: rfc3339(now),
    })
}
