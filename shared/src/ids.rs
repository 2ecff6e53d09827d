//! Time-ordered identifiers (ULIDs): sortable as strings, unguessable enough to be opaque.

use chrono::{DateTime, Utc};

/// A new ULID whose time part is `at`, so ids created in order sort in order.
pub fn new_id(at: DateTime<Utc>) -> String {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    ulid::Ulid::from_parts(millis, rand::random::<u128>()).to_string()
}

/// True if `id` looks like an id this service issued (26 Crockford base32 characters).
/// Used to answer 404 early for ids that cannot exist, without a store round trip.
pub fn is_well_formed(id: &str) -> bool {
    id.len() == 26 && ulid::Ulid::from_string(id).is_ok()
}
