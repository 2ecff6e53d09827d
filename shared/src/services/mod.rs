//! Use cases: one async function per domain operation, taking the narrowest dependencies it needs.
//! Handlers call exactly one of these.

pub mod expiry;
pub mod members;
pub mod orders;
pub mod payments;
