//! Items for sale, and the rules of staff edits to them (pure: the stores apply the result).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The highest price and stock a staff edit may set (whole KRW, units): far above any cafe's,
/// far below where sums could overflow.
pub const MAX_PRICE: i64 = 100_000_000;
pub const MAX_STOCK: i64 = 1_000_000;
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_REASON_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub item_id: String,
    pub name: String,
    /// Whole KRW. Orders copy it when made: a later change never touches them.
    pub price: i64,
    pub stock: i64,
    /// Inactive items are hidden from `GET /items` and cannot be ordered (400OR002).
    #[serde(default = "active_by_default")]
    pub active: bool,
    /// Bumped by every staff edit; an edit names the version it read and is refused (409IT000)
    /// if another edit came first. Sales move `stock` without bumping it.
    #[serde(default)]
    pub version: u64,
}

fn active_by_default() -> bool {
    true
}

/// How a stock change applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockMode {
    /// Adds `quantity` (a delivery; negative for breakage) to whatever the stock is at the write.
    Add,
    /// Sets the stock to `quantity` (a count of the shelf).
    Set,
}

/// The fields a `PATCH` may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemPatch {
    pub name: Option<String>,
    pub price: Option<i64>,
    pub active: Option<bool>,
}

/// 1–100 characters, not blank, plain text (no control, bidirectional or zero-width characters,
/// no `<` or `>`: [`crate::domain::text`]).
pub fn check_item_name(name: &str) -> Result<()> {
    if name.trim().is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || !crate::domain::text::is_plain_name(name)
    {
        return Err(Error::invalid("name"));
    }
    Ok(())
}

/// 0–100,000,000 KRW.
pub fn check_price(price: i64) -> Result<()> {
    if !(0..=MAX_PRICE).contains(&price) {
        return Err(Error::invalid("price"));
    }
    Ok(())
}

/// 1–200 characters, not blank: every stock change says why.
pub fn check_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::invalid("reason"));
    }
    Ok(())
}

/// A stock change's quantity: `SET` 0–1,000,000; `ADD` non-zero, within ±1,000,000.
pub fn check_stock_change(mode: StockMode, quantity: i64) -> Result<()> {
    let ok = match mode {
        StockMode::Set => (0..=MAX_STOCK).contains(&quantity),
        StockMode::Add => quantity != 0 && (-MAX_STOCK..=MAX_STOCK).contains(&quantity),
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("quantity"))
    }
}

impl Item {
    /// The item after `patch`, one version on; `None` when the patch sets what the item already
    /// has (nothing to write: a repeated or double-submitted edit). The caller's
    /// `expected_version` must be the current one (409IT000 otherwise).
    pub fn patched(&self, patch: &ItemPatch, expected_version: u64) -> Result<Option<Item>> {
        self.check_version(expected_version)?;
        let mut next = self.clone();
        if let Some(name) = &patch.name {
            check_item_name(name)?;
            next.name = name.trim().to_owned();
        }
        if let Some(price) = patch.price {
            check_price(price)?;
            next.price = price;
        }
        if let Some(active) = patch.active {
            next.active = active;
        }
        if next == *self {
            return Ok(None);
        }
        next.version = self.version + 1;
        Ok(Some(next))
    }

    /// The stock a change leads to from `self.stock` (never below 0: 400OR000).
    pub fn restocked(&self, mode: StockMode, quantity: i64) -> Result<i64> {
        let stock = match mode {
            StockMode::Set => quantity,
            StockMode::Add => self.stock.saturating_add(quantity),
        };
        if stock < 0 {
            return Err(Error::OutOfStock(self.item_id.clone()));
        }
        if stock > MAX_STOCK {
            return Err(Error::invalid("quantity"));
        }
        Ok(stock)
    }

    /// 409IT000 unless `expected` is the current version.
    pub fn check_version(&self, expected: u64) -> Result<()> {
        if self.version == expected {
            Ok(())
        } else {
            Err(Error::VersionConflict)
        }
    }

    /// Ordering needs an active item (400OR002).
    pub fn check_orderable(&self) -> Result<()> {
        if self.active {
            Ok(())
        } else {
            Err(Error::ItemUnavailable(self.item_id.clone()))
        }
    }
}

/// The original system's two items, seeded into a fresh local store and table.
pub fn seed_items() -> Vec<Item> {
    vec![
        Item {
            item_id: "01JC0FFEE00000000000000C01".into(),
            name: "Cola".into(),
            price: 1_500,
            stock: 10,
            active: true,
            version: 0,
        },
        Item {
            item_id: "01JC0FFEE00000000000000B02".into(),
            name: "Book".into(),
            price: 25_000,
            stock: 15,
            active: true,
            version: 0,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cola() -> Item {
        seed_items().remove(0)
    }

    #[test]
    fn a_patch_needs_the_current_version_and_moves_it_on() {
        let item = cola();
        let patch = ItemPatch {
            price: Some(1_800),
            ..ItemPatch::default()
        };
        let next = item.patched(&patch, 0).expect("patched").expect("changed");
        assert_eq!((next.price, next.version, next.stock), (1_800, 1, 10));
        assert_eq!(next.patched(&patch, 0), Err(Error::VersionConflict));
        // The same price again changes nothing: nothing to write.
        assert_eq!(next.patched(&patch, 1), Ok(None));
        let bad = ItemPatch {
            price: Some(-1),
            ..ItemPatch::default()
        };
        assert_eq!(item.patched(&bad, 0), Err(Error::invalid("price")));
    }

    #[test]
    fn stock_changes_never_go_below_zero() {
        let item = cola();
        assert_eq!(item.restocked(StockMode::Add, 5), Ok(15));
        assert_eq!(item.restocked(StockMode::Set, 3), Ok(3));
        assert_eq!(
            item.restocked(StockMode::Add, -11),
            Err(Error::OutOfStock(item.item_id.clone()))
        );
        assert!(check_stock_change(StockMode::Add, 0).is_err());
        assert!(check_stock_change(StockMode::Set, -1).is_err());
        assert!(check_reason(" ").is_err());
    }
}
