//! A stored status timeline as the API shows it (members and orders).

use crate::clock::rfc3339;
use crate::domain::HistoryEntry;
use serde::Serialize;

/// One row of a member's or an order's status timeline on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryRow {
    pub status: String,
    pub at: String,
}

/// A stored timeline as the API shows it, oldest first.
pub fn history_rows(history: Vec<HistoryEntry>) -> Vec<HistoryRow> {
    history
        .into_iter()
        .map(|entry| HistoryRow {
            status: entry.status,
            at: rfc3339(entry.at),
        })
        .collect()
}
