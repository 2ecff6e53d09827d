//! Use cases: payments.
