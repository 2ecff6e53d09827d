//! Time-ordered identifiers (ULIDs): sortable as strings, unguessable enough to be opaque.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The last id this process made in each recent millisecond: ids made within one millisecond
/// follow it, even when clocks at other times interleave (tests with clocks of their own).
static LAST: Mutex<BTreeMap<u64, ulid::Ulid>> = Mutex::new(BTreeMap::new());

/// Milliseconds remembered; the oldest are forgotten past this.
const REMEMBERED: usize = 256;

/// A new ULID whose time part is `at`, so ids created in order sort in order — within one
/// millisecond too: an id made in the same millisecond as this process's previous one is that
/// one plus one (random part incremented), so two orders created back to back list in the order
/// they were made. The time part is always `at`'s, never bent by another clock.
pub fn new_id(at: DateTime<Utc>) -> String {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let fresh = || ulid::Ulid::from_parts(millis, rand::random::<u128>());
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let id = match last.get(&millis) {
        Some(previous) => previous.increment().unwrap_or_else(fresh),
        None => fresh(),
    };
    last.insert(millis, id);
    while last.len() > REMEMBERED {
        last.pop_first();
    }
    id.to_string()
}

/// True if `id` looks like an id this service issued (26 Crockford base32 characters).
/// Used to answer 404 early for ids that cannot exist, without a store round trip.
pub fn is_well_formed(id: &str) -> bool {
    id.len() == 26 && ulid::Ulid::from_string(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_in_one_millisecond_sort_in_the_order_they_were_made() {
        let at = Utc::now();
        let ids: Vec<String> = (0..1_000).map(|_| new_id(at)).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        // The time part is `at`'s.
        let first = ulid::Ulid::from_string(&ids[0]).expect("ulid");
        assert_eq!(
            first.timestamp_ms(),
            u64::try_from(at.timestamp_millis()).expect("after 1970")
        );
        // An earlier clock gets its own time, not the later one's.
        let earlier = at - chrono::Duration::days(1);
        let id = ulid::Ulid::from_string(&new_id(earlier)).expect("ulid");
        assert_eq!(
            id.timestamp_ms(),
            u64::try_from(earlier.timestamp_millis()).expect("after 1970")
        );
    }
}
