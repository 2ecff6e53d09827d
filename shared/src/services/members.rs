//! Use cases: members.
