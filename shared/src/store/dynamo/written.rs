//! Recognising a write's own earlier success.
//!
//! The SDK sends a write again when its answer does not come within the per-try timeout (see
//! `crate::aws`). If the first send applied, the re-send meets its result and fails its
//! condition, and without more the write would read its own work as another process's. So every
//! conditional write that moves state carries a token of its own in the item ([`WRITE_TOKEN`]:
//! fresh per call, or derived from what the write is when a rebuilt write must be identical)
//! and asks for the item as it was when the condition failed (`ALL_OLD`): an item carrying the
//! write's token is that write, already applied. See `docs/payments.md`.

use super::{Attrs, attr_str, s};

/// The attribute holding the token of the write that last wrote the item.
pub(crate) const WRITE_TOKEN: &str = "writeToken";

/// A token for one call of a write (the SDK's re-sends of it carry the same).
pub(crate) fn fresh_token() -> String {
    ulid::Ulid::new().to_string()
}

/// `item` carrying `token`.
pub(crate) fn with_token(mut item: Attrs, token: &str) -> Attrs {
    item.insert(WRITE_TOKEN.into(), s(token));
    item
}

/// True when the item a failed condition found was written by the write holding `token`.
pub(crate) fn written_by(old: Option<&Attrs>, token: &str) -> bool {
    old.and_then(|item| attr_str(item, WRITE_TOKEN)) == Some(token)
}
