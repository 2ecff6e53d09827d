//! Use cases: expiry.
