//! Use cases: one async function per domain operation, naming in its signature the capabilities
//! it uses (`crate::deps`: `deps: &(impl HasStore + HasClock)`), never the whole `App`. Handlers
//! call exactly one of these, passing the app.

pub mod expiry;
pub mod floor;
pub mod history;
pub mod live;
pub mod members;
pub mod orders;
pub mod payments;
pub mod reconcile;
pub mod refunds;
pub mod staff;
