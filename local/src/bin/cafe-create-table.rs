//! Creates the DynamoDB table and its credentials table (from the same definitions the code
//! uses) if they are missing and seeds the two items if they are missing (with `SEED_STOCK`
//! units each when set). Safe to run again: it never overwrites.
//!
//! `TABLE_NAME` (default `cafe`; the credentials table is `<TABLE_NAME>-credentials`),
//! `DYNAMODB_ENDPOINT` (e.g. moto's `http://127.0.0.1:5000`;
//! unset = AWS), plus the usual AWS credentials and region variables.

use cafe::store::ItemStore;
use cafe::store::dynamo::{DynamoStore, build_client, table};
use std::process::ExitCode;
use std::time::Duration;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

async fn run() -> cafe::Result<()> {
    let table_name = var("TABLE_NAME").unwrap_or_else(|| "cafe".into());
    let endpoint = var("DYNAMODB_ENDPOINT");
    let where_ = endpoint.as_deref().unwrap_or("AWS");
    let client = build_client(endpoint.as_deref(), Duration::from_secs(10)).await;
    let credentials = table::credentials_table_for(&table_name);
    if table::table_exists(&client, &table_name).await? {
        println!("table {table_name} already exists at {where_}");
        // A table made before passwords had a table of their own.
        if table::table_exists(&client, &credentials).await? {
            println!("table {credentials} already exists at {where_}");
        } else {
            table::create_credentials_table(&client, &credentials).await?;
            println!("created table {credentials} at {where_} (on-demand, no stream)");
        }
    } else {
        table::create_table(&client, &table_name).await?;
        println!(
            "created tables {table_name} (on-demand, 5 GSIs, stream, TTL on `ttl`) and {credentials} (no stream) at {where_}"
        );
    }
    let store = DynamoStore::new(client, table_name, 400);
    let stock = cafe_local::seed_stock().map_err(cafe::Error::Internal)?;
    for mut item in cafe::domain::item::seed_items() {
        if let Some(stock) = stock {
            item.stock = stock;
        }
        if store.get_item(&item.item_id).await?.is_some() {
            println!("item {} ({}) already present", item.item_id, item.name);
        } else {
            store.put_item(&item).await?;
            println!(
                "seeded item {} ({}, {} KRW, stock {})",
                item.item_id, item.name, item.price, item.stock
            );
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cafe-create-table: {e}");
            ExitCode::FAILURE
        }
    }
}
