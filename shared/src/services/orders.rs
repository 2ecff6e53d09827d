//! Use cases: orders.
