//! Items for sale.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub item_id: String,
    pub name: String,
    /// Whole KRW.
    pub price: i64,
    pub stock: i64,
}

/// The original system's two items, seeded into a fresh local store and table.
pub fn seed_items() -> Vec<Item> {
    vec![
        Item {
            item_id: "01JC0FFEE00000000000000C01".into(),
            name: "Cola".into(),
            price: 1_500,
            stock: 10,
        },
        Item {
            item_id: "01JC0FFEE00000000000000B02".into(),
            name: "Book".into(),
            price: 25_000,
            stock: 15,
        },
    ]
}
