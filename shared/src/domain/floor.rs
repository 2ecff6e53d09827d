//! The cafe floor (see `docs/floor.md`): pickup numbers per local business day, the shop open
//! or closed, the capacity of the bar (paid orders not yet `READY`, in all and per member) and
//! the wait estimate. Pure rules; the counters live in the store.

use crate::error::{Error, Result};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

/// The longest message staff may show with the shop's state.
pub const MAX_SHOP_MESSAGE: usize = 200;

/// Before the first order of the day is made, a make time of this many seconds is assumed.
pub const DEFAULT_MAKE_SECONDS: i64 = 180;

/// The shop's business day at `at`: its local date (`YYYY-MM-DD`) in `timezone`, so numbers
/// start again at local midnight.
pub fn business_day(at: DateTime<Utc>, timezone: FixedOffset) -> String {
    at.with_timezone(&timezone).format("%Y-%m-%d").to_string()
}

/// What a payment's attempt holds on the floor: the slot it reserved (under these limits,
/// the fence of the write that started it) and, once every part is charged, its pickup number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FloorSlot {
    pub max_in_progress: i64,
    pub max_open_per_member: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pickup_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub business_day: Option<String>,
}

/// The shop as stored: open or closed, the message, how many paid orders are not yet `READY`,
/// and the make times of the business day asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FloorState {
    pub open: bool,
    pub message: Option<String>,
    pub in_progress: i64,
    pub updated_at: Option<DateTime<Utc>>,
    /// Orders made `READY` on the day, and the seconds they took from `PREPARING`, in all.
    pub made: i64,
    pub make_seconds: i64,
}

impl FloorState {
    /// Mean seconds from `PREPARING` to `READY` over the orders made on the day; the default
    /// before the first one.
    pub fn mean_make_seconds(&self) -> i64 {
        if self.made > 0 {
            (self.make_seconds / self.made).max(1)
        } else {
            DEFAULT_MAKE_SECONDS
        }
    }
}

/// The estimated wait, in whole minutes (no finer: the estimate is not that good), for an order
/// with `ahead` paid orders before it still to be made: its own make time and one per order
/// ahead, each the day's mean make time (`PREPARING` → `READY`). That is the wait at one barista
/// working through the queue in order; with more it over-estimates, the side a customer forgives.
pub fn estimated_wait_minutes(ahead: i64, mean_make_seconds: i64) -> i64 {
    let seconds = (ahead.max(0) + 1).saturating_mul(mean_make_seconds.max(1));
    (seconds + 59) / 60
}

/// Checks a shop message: at most [`MAX_SHOP_MESSAGE`] characters, no control characters.
pub fn check_shop_message(message: &str) -> Result<()> {
    if message.chars().count() > MAX_SHOP_MESSAGE || message.chars().any(char::is_control) {
        return Err(Error::invalid("message"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_business_day_turns_at_local_midnight() {
        let seoul = FixedOffset::east_opt(9 * 3600).expect("offset");
        let before = Utc
            .with_ymd_and_hms(2026, 12, 5, 14, 59, 59)
            .single()
            .expect("time");
        let after = Utc
            .with_ymd_and_hms(2026, 12, 5, 15, 0, 0)
            .single()
            .expect("time");
        assert_eq!(business_day(before, seoul), "2026-12-05");
        assert_eq!(business_day(after, seoul), "2026-12-06");
        let utc = FixedOffset::east_opt(0).expect("offset");
        assert_eq!(business_day(after, utc), "2026-12-05");
    }

    #[test]
    fn the_wait_is_whole_minutes_per_order_ahead() {
        assert_eq!(estimated_wait_minutes(0, 180), 3);
        assert_eq!(estimated_wait_minutes(2, 100), 5);
        assert_eq!(estimated_wait_minutes(-3, 1), 1);
        let empty = FloorState::default();
        assert_eq!(empty.mean_make_seconds(), DEFAULT_MAKE_SECONDS);
    }

    #[test]
    fn messages_are_short_plain_text() {
        assert!(check_shop_message("Back at 2pm").is_ok());
        assert!(check_shop_message(&"x".repeat(201)).is_err());
        assert!(check_shop_message("a\u{0}b").is_err());
    }
}
