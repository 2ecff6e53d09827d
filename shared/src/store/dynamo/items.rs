//! Items for sale: `ITEM#<id>` / `ITEM`, plus one `CATALOG` / `ITEM#<id>` row each so the list
//! is one Query and one batch read instead of a table scan.

use super::{Attrs, DynamoStore, TxItems, attr_str, key, s, sdk_error, shape_error, table};
use crate::domain::Item;
use crate::error::{Error, Result};
use crate::store::ItemStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::collections::HashMap;
use tracing::Instrument;

pub(crate) const ITEM_SK: &str = "ITEM";
pub(crate) const CATALOG_PK: &str = "CATALOG";
/// BatchGetItem takes at most 100 keys.
const BATCH: usize = 100;
/// Unprocessed keys (throttling) are asked again this many times, then 503.
const BATCH_ROUNDS: usize = 5;

pub(crate) fn item_pk(item_id: &str) -> String {
    format!("ITEM#{item_id}")
}

impl DynamoStore {
    async fn batch_get(&self, keys: Vec<Attrs>) -> Result<Vec<Attrs>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| Error::Internal(format!("batch keys: {e}")))?,
            );
            let mut rounds = 0;
            while let Some(request) = pending.take() {
                rounds += 1;
                if rounds > BATCH_ROUNDS {
                    return Err(Error::Unavailable("dynamodb"));
                }
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(HashMap::from([(self.table.clone(), request)])))
                    .send()
                    .instrument(crate::telemetry::dependency_span(
                        "dynamodb",
                        "BatchGetItem",
                    ))
                    .await
                    .map_err(sdk_error)?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.table).unwrap_or_default());
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * rounds as u64)).await;
                }
            }
        }
        Ok(found)
    }
}

fn to_items(raw: Vec<Attrs>) -> Result<Vec<Item>> {
    raw.into_iter()
        .map(|item| from_item(item).map_err(shape_error))
        .collect()
}

#[async_trait]
impl ItemStore for DynamoStore {
    async fn list_items(&self) -> Result<Vec<Item>> {
        let ids: Vec<String> = self
            .raw_partition(CATALOG_PK)
            .await?
            .iter()
            .filter_map(|row| attr_str(row, "itemId").map(str::to_owned))
            .collect();
        let mut items = self.get_items(&ids).await?;
        items.sort_by(|a, b| a.item_id.cmp(&b.item_id));
        Ok(items)
    }

    async fn get_item(&self, item_id: &str) -> Result<Option<Item>> {
        match self.raw_item(&item_pk(item_id), ITEM_SK).await? {
            Some(item) => from_item(item).map(Some).map_err(shape_error),
            None => Ok(None),
        }
    }

    async fn get_items(&self, item_ids: &[String]) -> Result<Vec<Item>> {
        let mut ids: Vec<&String> = item_ids.iter().collect();
        ids.sort_unstable();
        ids.dedup();
        let keys = ids
            .into_iter()
            .map(|id| key(item_pk(id), ITEM_SK))
            .collect();
        to_items(self.batch_get(keys).await?)
    }

    async fn put_item(&self, item: &Item) -> Result<()> {
        let mut row: Attrs = to_item(item).map_err(shape_error)?;
        row.insert(table::PK.into(), s(item_pk(&item.item_id)));
        row.insert(table::SK.into(), s(ITEM_SK));
        let mut entry = key(CATALOG_PK, item_pk(&item.item_id));
        entry.insert("itemId".into(), s(&item.item_id));
        let mut tx = TxItems::new(self);
        tx.put(row)?;
        tx.put(entry)?;
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(_) => Err(Error::Internal("item write cancelled".into())),
        }
    }
}
