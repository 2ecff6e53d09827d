//! The tables' shape (see `docs/dynamodb.md`): attribute and index names, the pure
//! [`table_spec`] that `template.yaml` is checked against, and [`create_table`] for tests and the
//! local emulator.

use crate::error::{Error, Result};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use tracing::Instrument;

/// Partition key of the table.
pub const PK: &str = "pk";
/// Sort key of the table.
pub const SK: &str = "sk";
/// A member's orders, newest first.
pub const GSI_ORDERS_BY_MEMBER: &str = "orders-by-member";
/// `MEMBER#<memberId>`, only on order items.
pub const GSI1_PK: &str = "gsi1pk";
/// `ORDER#<orderId>` (ULID: sorts by creation time).
pub const GSI1_SK: &str = "gsi1sk";
/// Sparse index of `WITHDRAWN` members keyed by withdrawal time.
pub const GSI_WITHDRAWN: &str = "withdrawn-by-time";
/// `WITHDRAWN#<shard>`, only on withdrawn member profiles.
pub const WITHDRAWN_PK: &str = "wpk";
/// `<withdrawnAt RFC 3339 millis Z>#<memberId>`.
pub const WITHDRAWN_SK: &str = "wsk";
/// Sparse index of unsettled payment attempts keyed by deadline (the reconciler's work list).
pub const GSI_ATTEMPTS_DUE: &str = "attempts-by-deadline";
/// `ATTEMPTS#<shard>`, only on attempts that are not settled.
pub const ATTEMPT_PK: &str = "apk";
/// `<deadline RFC 3339 millis Z>#<attemptId>`.
pub const ATTEMPT_SK: &str = "ask";
/// Epoch seconds after which DynamoDB deletes the item.
/// Sparse index of paid orders staff still work on (`COMPLETED`, `PREPARING`, `READY`), one
/// partition per status, oldest order first: the fulfilment queue.
pub const GSI_FULFILMENT: &str = "orders-by-fulfilment";
/// `FULFIL#<status>` while the order is in a fulfilment status; removed after.
pub const FULFILMENT_PK: &str = "fpk";
/// The order id (a ULID: creation order).
pub const FULFILMENT_SK: &str = "fsk";
/// The items for sale, whole (projected): `GET /items` is one `Query` of it.
pub const GSI_CATALOG: &str = "items-catalog";
/// `CATALOG`, on every item row.
pub const CATALOG_PK: &str = "cpk";
/// The item id.
pub const CATALOG_SK: &str = "csk";
pub const TTL_ATTRIBUTE: &str = "ttl";

/// How an index copies attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionSpec {
    All,
    KeysOnly,
}

/// A key attribute: name and DynamoDB scalar type (`S`, `N` or `B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub name: &'static str,
    pub attribute_type: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition_key: KeySpec,
    pub sort_key: KeySpec,
    pub projection: ProjectionSpec,
}

/// Everything about the table that the code relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub partition_key: KeySpec,
    pub sort_key: KeySpec,
    pub global_secondary_indexes: Vec<IndexSpec>,
    pub ttl_attribute: &'static str,
    /// `PAY_PER_REQUEST`.
    pub billing_mode: &'static str,
    /// `NEW_AND_OLD_IMAGES`: the outbox publisher reads the stream.
    pub stream_view_type: &'static str,
}

const fn string_key(name: &'static str) -> KeySpec {
    KeySpec {
        name,
        attribute_type: "S",
    }
}

/// The table as the code expects it.
pub fn table_spec() -> TableSpec {
    TableSpec {
        partition_key: string_key(PK),
        sort_key: string_key(SK),
        global_secondary_indexes: vec![
            IndexSpec {
                name: GSI_ORDERS_BY_MEMBER,
                partition_key: string_key(GSI1_PK),
                sort_key: string_key(GSI1_SK),
                projection: ProjectionSpec::All,
            },
            IndexSpec {
                name: GSI_WITHDRAWN,
                partition_key: string_key(WITHDRAWN_PK),
                sort_key: string_key(WITHDRAWN_SK),
                projection: ProjectionSpec::KeysOnly,
            },
            IndexSpec {
                name: GSI_ATTEMPTS_DUE,
                partition_key: string_key(ATTEMPT_PK),
                sort_key: string_key(ATTEMPT_SK),
                projection: ProjectionSpec::KeysOnly,
            },
            IndexSpec {
                name: GSI_FULFILMENT,
                partition_key: string_key(FULFILMENT_PK),
                sort_key: string_key(FULFILMENT_SK),
                projection: ProjectionSpec::All,
            },
            IndexSpec {
                name: GSI_CATALOG,
                partition_key: string_key(CATALOG_PK),
                sort_key: string_key(CATALOG_SK),
                projection: ProjectionSpec::All,
            },
        ],
        ttl_attribute: TTL_ATTRIBUTE,
        billing_mode: "PAY_PER_REQUEST",
        stream_view_type: "NEW_AND_OLD_IMAGES",
    }
}

/// The credentials table: one item per member that has a password, `pk` = `MEMBER#<id>` and
/// `passwordHash`. Apart from the main table because that one has a stream, and every stream
/// reader would see what its items hold; this one has none (docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialsSpec {
    pub partition_key: KeySpec,
    /// `PAY_PER_REQUEST`.
    pub billing_mode: &'static str,
}

/// The attribute of a credentials item holding the Argon2id PHC string.
pub const PASSWORD_HASH: &str = "passwordHash";

/// The credentials table as the code expects it.
pub fn credentials_spec() -> CredentialsSpec {
    CredentialsSpec {
        partition_key: string_key(PK),
        billing_mode: "PAY_PER_REQUEST",
    }
}

/// The credentials table's name when none is configured: `<table>-credentials`.
pub fn credentials_table_for(table_name: &str) -> String {
    format!("{table_name}-credentials")
}

/// Creates the credentials table ([`credentials_spec`]: on-demand, no stream, no index).
pub async fn create_credentials_table(client: &Client, table_name: &str) -> Result<()> {
    let spec = credentials_spec();
    client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(spec.partition_key)?)
        .key_schema(key(spec.partition_key.name, KeyType::Hash)?)
        .send()
        .instrument(crate::spans::dependency_span("dynamodb", "CreateTable"))
        .await
        .map_err(super::errors::sdk_error)?;
    wait_until_active(client, table_name).await
}

fn build_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("table definition: {e}"))
}

fn key(name: &str, key_type: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(key_type)
        .build()
        .map_err(build_error)
}

fn attribute(spec: KeySpec) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(spec.name)
        .attribute_type(ScalarAttributeType::from(spec.attribute_type))
        .build()
        .map_err(build_error)
}

/// Creates the table from [`table_spec`] (on-demand, every index, stream, TTL) and its
/// credentials table ([`credentials_table_for`]).
pub async fn create_table(client: &Client, table_name: &str) -> Result<()> {
    create_table_with(client, table_name, true).await
}

/// [`create_table`], optionally without the stream. Test tables leave it out: moto copies
/// every stream record of a table on each transaction (hundreds of milliseconds per write on a
/// table with a GSI and a few hundred items), and no store test reads the stream.
pub async fn create_table_with(client: &Client, table_name: &str, stream: bool) -> Result<()> {
    create_main_table(client, table_name, stream).await?;
    create_credentials_table(client, &credentials_table_for(table_name)).await
}

async fn create_main_table(client: &Client, table_name: &str, stream: bool) -> Result<()> {
    let spec = table_spec();
    let mut definitions = vec![attribute(spec.partition_key)?, attribute(spec.sort_key)?];
    let mut indexes = Vec::new();
    for index in &spec.global_secondary_indexes {
        definitions.push(attribute(index.partition_key)?);
        definitions.push(attribute(index.sort_key)?);
        let projection = match index.projection {
            ProjectionSpec::All => ProjectionType::All,
            ProjectionSpec::KeysOnly => ProjectionType::KeysOnly,
        };
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .key_schema(key(index.partition_key.name, KeyType::Hash)?)
                .key_schema(key(index.sort_key.name, KeyType::Range)?)
                .projection(Projection::builder().projection_type(projection).build())
                .build()
                .map_err(build_error)?,
        );
    }
    let stream = if stream {
        Some(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(build_error)?,
        )
    } else {
        None
    };
    client
        .create_table()
        .table_name(table_name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(definitions))
        .key_schema(key(spec.partition_key.name, KeyType::Hash)?)
        .key_schema(key(spec.sort_key.name, KeyType::Range)?)
        .set_global_secondary_indexes(Some(indexes))
        .set_stream_specification(stream)
        .send()
        .instrument(crate::spans::dependency_span("dynamodb", "CreateTable"))
        .await
        .map_err(super::errors::sdk_error)?;
    wait_until_active(client, table_name).await?;
    client
        .update_time_to_live()
        .table_name(table_name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(spec.ttl_attribute)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .instrument(crate::spans::dependency_span(
            "dynamodb",
            "UpdateTimeToLive",
        ))
        .await
        .map_err(super::errors::sdk_error)?;
    Ok(())
}

/// DynamoDB creates tables asynchronously; TTL can be set only once the table is active.
async fn wait_until_active(client: &Client, table_name: &str) -> Result<()> {
    for _ in 0..120 {
        let described = client
            .describe_table()
            .table_name(table_name)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "DescribeTable"))
            .await
            .map_err(super::errors::sdk_error)?;
        let status = described.table.and_then(|t| t.table_status);
        if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err(Error::Internal(format!(
        "table {table_name} did not become active"
    )))
}

/// True if the table exists.
pub async fn table_exists(client: &Client, table_name: &str) -> Result<bool> {
    match client
        .describe_table()
        .table_name(table_name)
        .send()
        .instrument(crate::spans::dependency_span("dynamodb", "DescribeTable"))
        .await
    {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(e) => Err(super::errors::sdk_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_names_match_the_constants() {
        let spec = table_spec();
        assert_eq!(spec.partition_key.name, "pk");
        assert_eq!(spec.sort_key.name, "sk");
        let names: Vec<_> = spec
            .global_secondary_indexes
            .iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(
            names,
            [
                "orders-by-member",
                "withdrawn-by-time",
                "attempts-by-deadline",
                "orders-by-fulfilment",
                "items-catalog"
            ]
        );
        assert_eq!(spec.ttl_attribute, "ttl");
    }
}
