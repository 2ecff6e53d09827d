//! What a use case may use, one small trait per capability.
//!
//! A use case names in its signature the capabilities it touches — `create_order(deps: &(impl
//! HasStore + HasClock), …)` — and can reach nothing else. [`App`](crate::App) has every one of
//! them and is what handlers pass; a test may pass anything that has the few a use case names.
//! A use case that needs many (paying) names a bundle defined beside it.

use crate::auth::{AccessTokens, PasswordHasher};
use crate::clock::Clock;
use crate::config::Config;
use crate::gateway::PaymentGateway;
use crate::lock::Lock;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::throttle::LoginThrottle;

/// Every stored aggregate (DynamoDB or memory).
pub trait HasStore: Sync {
    fn store(&self) -> &dyn Store;
}

/// The time of day.
pub trait HasClock: Sync {
    fn clock(&self) -> &dyn Clock;
}

/// The lock over orders and items (Redis or in-process).
pub trait HasLock: Sync {
    fn lock(&self) -> &dyn Lock;
}

/// The payment gateway: charges, look-ups, refunds.
pub trait HasGateway: Sync {
    fn gateway(&self) -> &dyn PaymentGateway;
}

/// The process's configuration (timeouts, limits, token lifetimes).
pub trait HasConfig: Sync {
    fn config(&self) -> &Config;
}

/// Operational metrics (EMF on Lambda).
pub trait HasMetrics: Sync {
    fn metrics(&self) -> &Metrics;
}

/// Access tokens: issued by the auth functions, verified by the rest.
pub trait HasTokens: Sync {
    fn tokens(&self) -> &AccessTokens;
}

/// Argon2id hashing and verification of passwords.
pub trait HasPasswords: Sync {
    fn passwords(&self) -> &PasswordHasher;
}

/// Failed log-ins per email and source address.
pub trait HasLoginThrottle: Sync {
    fn login_throttle(&self) -> &dyn LoginThrottle;
}

/// Calls `$callback!` with the list of every capability: its trait, its method and what it
/// lends. One list serves the `Arc` impls below and `App`'s (`crate::app`).
macro_rules! with_capabilities {
    ($callback:ident) => {
        $callback! {
            HasStore::store -> &dyn Store;
            HasClock::clock -> &dyn Clock;
            HasLock::lock -> &dyn Lock;
            HasGateway::gateway -> &dyn PaymentGateway;
            HasConfig::config -> &Config;
            HasMetrics::metrics -> &Metrics;
            HasTokens::tokens -> &AccessTokens;
            HasPasswords::passwords -> &PasswordHasher;
            HasLoginThrottle::login_throttle -> &dyn LoginThrottle;
        }
    };
}
pub(crate) use with_capabilities;

/// What has a capability lends it through an `Arc` too (tasks and tests share the app so).
macro_rules! through_arc {
    ($($capability:ident :: $method:ident -> $lent:ty;)*) => {$(
        impl<T: $capability + Send + ?Sized> $capability for std::sync::Arc<T> {
            fn $method(&self) -> $lent {
                (**self).$method()
            }
        }
    )*};
}

with_capabilities!(through_arc);
