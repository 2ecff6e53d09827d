//! Test support: a [`DynamoStore`] on its own freshly created table, so tests never share state.
//!
//! moto's server runs requests concurrently and its `TransactWriteItems` is not atomic under
//! concurrency; `scripts/test.sh` runs it behind a lock (see `docs/dynamodb.md`).

use super::{DynamoStore, build_client, table};

/// A store on a new uniquely named table at `endpoint` (moto in tests), created like the real
/// one but without the stream (see [`table::create_table_with`]). Panics when the endpoint
/// cannot be used: a test must fail loudly rather than skip.
pub async fn fresh_store(endpoint: &str) -> DynamoStore {
    // Generous: under a loaded CI machine moto answers slowly, and a timed-out attempt that the SDK
    // retries can meet its own committed write.
    let client = build_client(Some(endpoint), std::time::Duration::from_secs(60)).await;
    let name = format!("cafe-test-{}", ulid::Ulid::new().to_string().to_lowercase());
    if let Err(e) = table::create_table_with(&client, &name, false).await {
        panic!("cannot create table {name} at {endpoint}: {e}");
    }
    DynamoStore::new(client, name, 400)
}
