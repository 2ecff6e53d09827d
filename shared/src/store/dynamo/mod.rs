//! The DynamoDB implementation of every store trait, on the single table of `docs/dynamodb.md`.

mod errors;
pub mod table;
