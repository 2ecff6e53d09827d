//! The DynamoDB implementation of every store trait, on the single table of `docs/dynamodb.md`.
//!
//! Every domain operation is one `TransactWriteItems` (status change + history row + outbox
//! row(s)) or one conditional write. Failed conditions come back as cancellation reasons and are
//! mapped to contract errors by the operation that knows what each write meant.

mod attempts;
mod errors;
mod expiry;
mod floor;
mod idempotency;
mod items;
mod live;
mod members;
mod orders;
mod staff;
pub mod table;
pub mod testing;
mod tokens;
mod tx;
mod written;

use crate::config::Config;
use crate::domain::{DomainEvent, EntityKind, HistoryEntry};
use crate::error::Result;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use tracing::Instrument;

pub(crate) use errors::{sdk_error, shape_error};
pub use members::PasswordBackfill;
pub(crate) use tx::{Reason, TxItems};

/// A raw DynamoDB item.
pub type Attrs = HashMap<String, AttributeValue>;

/// Outbox rows live a week: the stream publisher reads them within seconds.
const OUTBOX_RETENTION: Duration = Duration::days(7);

/// Every store trait on one DynamoDB table, plus members' passwords in a table of their own
/// (no stream: [`table::credentials_spec`]). Cheap to clone: the SDK client is shared.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
    credentials_table: String,
    history_retention: Duration,
}

impl DynamoStore {
    /// The store on `table`, with the passwords in its companion table
    /// ([`table::credentials_table_for`]) unless [`DynamoStore::with_credentials_table`] names
    /// another.
    pub fn new(client: Client, table: String, history_retention_days: i64) -> Self {
        Self {
            client,
            credentials_table: table::credentials_table_for(&table),
            table,
            history_retention: Duration::days(history_retention_days.max(1)),
        }
    }

    /// The table holding members' passwords (`CREDENTIALS_TABLE_NAME` on AWS, where
    /// CloudFormation names it).
    pub fn with_credentials_table(mut self, name: impl Into<String>) -> Self {
        self.credentials_table = name.into();
        self
    }

    /// Builds the one SDK client of the process from the configuration (endpoint override,
    /// standard retries, bounded timeouts).
    pub async fn from_config(config: &Config) -> Self {
        let aws = crate::aws::Aws::load(
            config.dynamodb_endpoint.as_deref(),
            config.dependency_timeout,
        )
        .await;
        Self::from_aws(&aws, config)
    }

    /// The store over the process's shared AWS configuration.
    pub fn from_aws(aws: &crate::aws::Aws, config: &Config) -> Self {
        let store = Self::new(
            aws.dynamodb(),
            config.table_name.clone(),
            config.history_retention_days,
        );
        match &config.credentials_table_name {
            Some(name) => store.with_credentials_table(name),
            None => store,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    pub fn credentials_table_name(&self) -> &str {
        &self.credentials_table
    }

    /// Reads one raw item (strongly consistent); for tests and tools.
    pub async fn raw_item(&self, pk: &str, sk: &str) -> Result<Option<Attrs>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "GetItem"))
            .await
            .map_err(sdk_error)?;
        Ok(out.item)
    }

    /// Writes one raw item, unconditionally (the same item written again is the same write, so
    /// a re-send after a late answer is harmless).
    pub(crate) async fn put_raw(&self, item: Attrs) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "PutItem"))
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    /// All raw items of one partition (strongly consistent), sort key order.
    pub async fn raw_partition(&self, pk: &str) -> Result<Vec<Attrs>> {
        self.query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", table::PK)
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true),
        )
        .await
    }

    /// Every item `query` matches, page after page (one request each).
    pub(crate) async fn query_all(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<Attrs>> {
        let mut items = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let out = query
                .clone()
                .set_exclusive_start_key(start.take())
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "Query"))
                .await
                .map_err(sdk_error)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(items),
            }
        }
    }

    /// The history row of one status change.
    pub(crate) fn history_row(
        &self,
        kind: EntityKind,
        id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<Attrs> {
        self.history_row_with_sequence(kind, id, status, at, &sequence_id())
    }

    /// [`DynamoStore::history_row`] with a given sequence id (rebuilt transactions).
    pub(crate) fn history_row_with_sequence(
        &self,
        kind: EntityKind,
        id: &str,
        status: &str,
        at: DateTime<Utc>,
        sequence: &str,
    ) -> Result<Attrs> {
        let row = HistoryRow {
            pk: entity_pk(kind, id),
            sk: format!("HISTORY#{}#{sequence}", crate::clock::rfc3339(at)),
            status: status.to_owned(),
            at,
            ttl: (at + self.history_retention).timestamp(),
        };
        serde_dynamo::aws_sdk_dynamodb_1::to_item(row).map_err(shape_error)
    }

    /// A timeline, oldest first.
    pub(crate) async fn history(&self, kind: EntityKind, id: &str) -> Result<Vec<HistoryEntry>> {
        self.query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :history)")
                .expression_attribute_names("#pk", table::PK)
                .expression_attribute_names("#sk", table::SK)
                .expression_attribute_values(":pk", s(entity_pk(kind, id)))
                .expression_attribute_values(":history", s("HISTORY#"))
                .consistent_read(true),
        )
        .await?
        .into_iter()
        .map(history_entry)
        .collect()
    }
}

/// True for a history row (`HISTORY#…` sort key) among the rows of an entity's partition.
pub(crate) fn is_history_row(row: &Attrs) -> bool {
    attr_str(row, table::SK).is_some_and(|sk| sk.starts_with("HISTORY#"))
}

/// The entry of one history row.
pub(crate) fn history_entry(row: Attrs) -> Result<HistoryEntry> {
    let row: HistoryRow = serde_dynamo::aws_sdk_dynamodb_1::from_item(row).map_err(shape_error)?;
    Ok(HistoryEntry {
        status: row.status,
        at: row.at,
    })
}

/// Builds a DynamoDB client: standard retry mode (3 attempts), each attempt and the whole
/// operation bounded by `timeout`, a short connect timeout so an unreachable endpoint fails fast.
pub async fn build_client(endpoint: Option<&str>, timeout: std::time::Duration) -> Client {
    crate::aws::Aws::load(endpoint, timeout).await.dynamodb()
}

#[derive(Serialize, Deserialize)]
struct HistoryRow {
    pk: String,
    sk: String,
    status: String,
    at: DateTime<Utc>,
    ttl: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutboxRow {
    pk: String,
    sk: &'static str,
    event_type: &'static str,
    event: String,
    ttl: i64,
}

/// The outbox row announcing `event`, written in the same transaction as the change.
pub(crate) fn outbox_row(event: &DomainEvent) -> Result<Attrs> {
    let json = serde_json::to_string(event)
        .map_err(|e| crate::error::Error::Internal(format!("event encoding: {e}")))?;
    let row = OutboxRow {
        pk: outbox_pk(&event.event_id),
        sk: "EVENT",
        event_type: event.event_type.as_str(),
        event: json,
        ttl: (event.occurred_at + OUTBOX_RETENTION).timestamp(),
    };
    serde_dynamo::aws_sdk_dynamodb_1::to_item(row).map_err(shape_error)
}

/// A ULID strictly increasing within this process, so history rows written in the same
/// millisecond keep their order.
fn sequence_id() -> String {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut guard = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let generator = guard.get_or_insert_with(ulid::Generator::new);
    generator
        .generate()
        .unwrap_or_else(|_| ulid::Ulid::new())
        .to_string()
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn key(pk: impl Into<String>, sk: impl Into<String>) -> Attrs {
    HashMap::from([(table::PK.to_owned(), s(pk)), (table::SK.to_owned(), s(sk))])
}

pub(crate) fn entity_pk(kind: EntityKind, id: &str) -> String {
    match kind {
        EntityKind::Member => member_pk(id),
        EntityKind::Order => order_pk(id),
        EntityKind::Payment => format!("PAYMENT#{id}"),
        EntityKind::Item => items::item_pk(id),
    }
}

pub fn member_pk(member_id: &str) -> String {
    format!("MEMBER#{member_id}")
}

pub fn order_pk(order_id: &str) -> String {
    format!("ORDER#{order_id}")
}

pub fn outbox_pk(event_id: &str) -> String {
    format!("OUTBOX#{event_id}")
}

/// Reads a string attribute of a raw item.
pub(crate) fn attr_str<'a>(item: &'a Attrs, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
