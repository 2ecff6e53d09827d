//! Items for sale: `ITEM#<id>` / `ITEM`, each carrying the `items-catalog` index's keys, so the
//! list is one `Query` of that index (projected whole) instead of a table scan.
//!
//! Tables from before the index also hold one `CATALOG` / `ITEM#<id>` row per item, and their
//! item rows lack the index keys: [`DynamoStore::backfill_catalog_index`] (`cafe-admin
//! backfill-catalog`) gives them the keys once the index exists (`docs/deploy.md`).

use super::members::PROFILE;
use super::{Attrs, DynamoStore, attr_str, key, member_pk, s, sdk_error, shape_error, table};
use crate::domain::{Item, Member};
use crate::error::{Error, Result};
use crate::store::ItemStore;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use std::collections::HashMap;
use tracing::Instrument;

pub(crate) const ITEM_SK: &str = "ITEM";
/// The `items-catalog` partition of every item; before the index, the partition of the rows
/// listing the item ids.
pub(crate) const CATALOG_PK: &str = "CATALOG";
/// BatchGetItem takes at most 100 keys.
const BATCH: usize = 100;
/// Unprocessed keys (throttling) are asked again this many times, then 503.
const BATCH_ROUNDS: usize = 5;

pub(crate) fn item_pk(item_id: &str) -> String {
    format!("ITEM#{item_id}")
}

impl DynamoStore {
    /// Gives the item rows of a table from before the `items-catalog` index its keys: every
    /// item the old `CATALOG` partition lists, whose row lacks them, is updated (only if the
    /// row exists and still lacks them, so a rerun, or an item written meanwhile, is left
    /// alone). Returns how many rows it updated. Run once after the deploy that adds the index.
    pub async fn backfill_catalog_index(&self) -> Result<usize> {
        let mut updated = 0;
        for entry in self.raw_partition(CATALOG_PK).await? {
            let Some(item_id) = attr_str(&entry, "itemId") else {
                continue;
            };
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(key(item_pk(item_id), ITEM_SK)))
                .update_expression("SET #cpk = :cpk, #csk = :csk")
                .condition_expression("attribute_exists(#pk) AND attribute_not_exists(#cpk)")
                .expression_attribute_names("#pk", table::PK)
                .expression_attribute_names("#cpk", table::CATALOG_PK)
                .expression_attribute_names("#csk", table::CATALOG_SK)
                .expression_attribute_values(":cpk", s(CATALOG_PK))
                .expression_attribute_values(":csk", s(item_id))
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "UpdateItem"))
                .await;
            match result {
                Ok(_) => updated += 1,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(error) => return Err(sdk_error(error)),
            }
        }
        Ok(updated)
    }

    pub(crate) async fn batch_get(&self, keys: Vec<Attrs>) -> Result<Vec<Attrs>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH) {
            let mut tables = self
                .batch_get_tables(HashMap::from([(self.table.clone(), chunk.to_vec())]))
                .await?;
            found.extend(tables.remove(&self.table).unwrap_or_default());
        }
        Ok(found)
    }

    /// One `BatchGetItem` (strongly consistent) of at most [`BATCH`] keys over one or more
    /// tables, with its unprocessed keys asked again (a few rounds, then 503): table → items found.
    pub(crate) async fn batch_get_tables(
        &self,
        keys: HashMap<String, Vec<Attrs>>,
    ) -> Result<HashMap<String, Vec<Attrs>>> {
        let mut request = HashMap::new();
        for (table_name, keys) in keys {
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(|e| Error::Internal(format!("batch keys: {e}")))?;
            request.insert(table_name, keys);
        }
        let mut found: HashMap<String, Vec<Attrs>> = HashMap::new();
        let mut pending = Some(request);
        let mut rounds = 0;
        while let Some(request) = pending.take() {
            rounds += 1;
            if rounds > BATCH_ROUNDS {
                return Err(Error::Unavailable("dynamodb"));
            }
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "BatchGetItem"))
                .await
                .map_err(sdk_error)?;
            for (table_name, items) in out.responses.unwrap_or_default() {
                found.entry(table_name).or_default().extend(items);
            }
            pending = out
                .unprocessed_keys
                .map(|u| {
                    u.into_iter()
                        .filter(|(_, k)| !k.keys().is_empty())
                        .collect::<HashMap<_, _>>()
                })
                .filter(|u| !u.is_empty());
            if pending.is_some() {
                tokio::time::sleep(std::time::Duration::from_millis(20 * rounds as u64)).await;
            }
        }
        Ok(found)
    }
}

/// The keys of the distinct ids among `item_ids`.
fn item_keys(item_ids: &[String]) -> Vec<Attrs> {
    let mut ids: Vec<&String> = item_ids.iter().collect();
    ids.sort_unstable();
    ids.dedup();
    ids.into_iter()
        .map(|id| key(item_pk(id), ITEM_SK))
        .collect()
}

/// The stored row of `item`: its keys and the `items-catalog` index's.
pub(crate) fn item_row(item: &Item) -> Result<Attrs> {
    let mut row: Attrs = to_item(item).map_err(shape_error)?;
    row.insert(table::PK.into(), s(item_pk(&item.item_id)));
    row.insert(table::SK.into(), s(ITEM_SK));
    row.insert(table::CATALOG_PK.into(), s(CATALOG_PK));
    row.insert(table::CATALOG_SK.into(), s(&item.item_id));
    Ok(row)
}

fn to_items(raw: Vec<Attrs>) -> Result<Vec<Item>> {
    raw.into_iter()
        .map(|item| from_item(item).map_err(shape_error))
        .collect()
}

#[async_trait]
impl ItemStore for DynamoStore {
    /// One `Query` of the `items-catalog` index (item id order). An index read is eventually
    /// consistent: a sale or an edit shows here within about a second; ordering and paying
    /// read the stock strongly consistent, and the stock conditions decide.
    async fn list_items(&self) -> Result<Vec<Item>> {
        to_items(
            self.query_all(
                self.client
                    .query()
                    .table_name(&self.table)
                    .index_name(table::GSI_CATALOG)
                    .key_condition_expression("#cpk = :cpk")
                    .expression_attribute_names("#cpk", table::CATALOG_PK)
                    .expression_attribute_values(":cpk", s(CATALOG_PK)),
            )
            .await?,
        )
    }

    async fn get_item(&self, item_id: &str) -> Result<Option<Item>> {
        match self.raw_item(&item_pk(item_id), ITEM_SK).await? {
            Some(item) => from_item(item).map(Some).map_err(shape_error),
            None => Ok(None),
        }
    }

    async fn get_items(&self, item_ids: &[String]) -> Result<Vec<Item>> {
        to_items(self.batch_get(item_keys(item_ids)).await?)
    }

    async fn get_member_and_items(
        &self,
        member_id: &str,
        item_ids: &[String],
    ) -> Result<(Option<Member>, Vec<Item>)> {
        let mut keys = vec![key(member_pk(member_id), PROFILE)];
        keys.extend(item_keys(item_ids));
        let mut member = None;
        let mut items = Vec::new();
        for row in self.batch_get(keys).await? {
            if attr_str(&row, table::SK) == Some(PROFILE) {
                member = Some(from_item(row).map_err(shape_error)?);
            } else {
                items.push(from_item(row).map_err(shape_error)?);
            }
        }
        Ok((member, items))
    }

    async fn put_item(&self, item: &Item) -> Result<()> {
        self.put_raw(item_row(item)?).await
    }
}
