//! The live channel's rows. A ticket is `LIVETICKET#<hash>` / `TICKET`, redeemed by one
//! conditional delete (it must exist and not have expired), so it is single use even under
//! concurrent redemptions. A connection is `LIVECONN#<id>` / `CONN` with the keys it subscribed
//! to; each subscription is `LIVETOPIC#<key>` / `<connection id>`, so the sender finds a key's
//! listeners with one query. Every row carries `ttl` (epoch seconds) and reads filter on it.

use super::{DynamoStore, key, n, s, sdk_error, table};
use crate::domain::Role;
use crate::domain::live::Grant;
use crate::error::{Error, Result};
use crate::store::LiveStore;
use crate::store::dynamo::{Attrs, attr_str};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};
use tracing::Instrument;

const TICKET_SK: &str = "TICKET";
const CONNECTION_SK: &str = "CONN";

fn ticket_pk(hash: &str) -> String {
    format!("LIVETICKET#{hash}")
}

fn connection_pk(id: &str) -> String {
    format!("LIVECONN#{id}")
}

fn topic_pk(key: &str) -> String {
    format!("LIVETOPIC#{key}")
}

fn grant_attrs(grant: &Grant, item: &mut Attrs) {
    if let Some(member_id) = &grant.member_id {
        item.insert("memberId".into(), s(member_id.as_str()));
    }
    item.insert("role".into(), s(grant.role.as_str()));
}

fn grant_of(item: &Attrs) -> Result<Grant> {
    let role = attr_str(item, "role")
        .and_then(Role::parse)
        .ok_or_else(|| Error::Internal("live row without a role".into()))?;
    Ok(Grant {
        member_id: attr_str(item, "memberId").map(str::to_owned),
        role,
    })
}

fn ttl_of(item: &Attrs) -> i64 {
    item.get("ttl")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[async_trait]
impl LiveStore for DynamoStore {
    async fn put_live_ticket(
        &self,
        ticket_hash: &str,
        grant: &Grant,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut item = key(ticket_pk(ticket_hash), TICKET_SK);
        grant_attrs(grant, &mut item);
        item.insert("ttl".into(), n(expires_at.timestamp()));
        item.insert("expiresAtMs".into(), n(expires_at.timestamp_millis()));
        self.put_raw(item).await
    }

    async fn redeem_live_ticket(
        &self,
        ticket_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(ticket_pk(ticket_hash), TICKET_SK)))
            .condition_expression("attribute_exists(#pk) AND #exp > :now")
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_names("#exp", "expiresAtMs")
            .expression_attribute_values(":now", n(now.timestamp_millis()))
            .return_values(ReturnValue::AllOld)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "DeleteItem"))
            .await;
        match deleted {
            Ok(out) => match out.attributes {
                Some(item) => grant_of(&item).map(Some),
                None => Ok(None),
            },
            Err(err) => match err.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(None),
                _ => Err(sdk_error(err)),
            },
        }
    }

    async fn put_live_connection(
        &self,
        connection_id: &str,
        grant: &Grant,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let mut item = key(connection_pk(connection_id), CONNECTION_SK);
        grant_attrs(grant, &mut item);
        item.insert("ttl".into(), n(expires_at.timestamp()));
        self.put_raw(item).await
    }

    async fn get_live_connection(
        &self,
        connection_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Grant>> {
        let item = self
            .raw_item(&connection_pk(connection_id), CONNECTION_SK)
            .await?;
        match item {
            Some(item) if ttl_of(&item) > now.timestamp() => grant_of(&item).map(Some),
            _ => Ok(None),
        }
    }

    async fn add_live_subscription(
        &self,
        connection_id: &str,
        key_name: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        // The connection row first, so a removal always knows every key it must clean up.
        let noted = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(connection_pk(connection_id), CONNECTION_SK)))
            .update_expression("ADD #topics :key")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#topics", "topics")
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_values(":key", AttributeValue::Ss(vec![key_name.to_owned()]))
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "UpdateItem"))
            .await;
        if let Err(err) = noted {
            return match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::NotFound("connection"))
                }
                _ => Err(sdk_error(err)),
            };
        }
        let mut item = key(topic_pk(key_name), connection_id);
        item.insert("ttl".into(), n(expires_at.timestamp()));
        self.put_raw(item).await
    }

    async fn live_listeners(&self, key_name: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
        let rows = self
            .query_all(
                self.client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("#pk = :pk")
                    .filter_expression("#ttl > :now")
                    .expression_attribute_names("#pk", table::PK)
                    .expression_attribute_names("#ttl", "ttl")
                    .expression_attribute_values(":pk", s(topic_pk(key_name)))
                    .expression_attribute_values(":now", n(now.timestamp())),
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| attr_str(row, table::SK).map(str::to_owned))
            .collect())
    }

    async fn remove_live_connection(&self, connection_id: &str) -> Result<()> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(connection_pk(connection_id), CONNECTION_SK)))
            .return_values(ReturnValue::AllOld)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "DeleteItem"))
            .await
            .map_err(sdk_error)?;
        let keys: Vec<String> = out
            .attributes
            .as_ref()
            .and_then(|item| item.get("topics"))
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        for key_name in keys {
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(topic_pk(&key_name), connection_id)))
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "DeleteItem"))
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
    }
}

impl DynamoStore {
    /// Every outbox event still in the table (a scan): what `cafe-local` polls over the AWS
    /// backend to play the stream locally. Not for production: the stream carries them there.
    pub async fn outbox_events(&self) -> Result<Vec<crate::domain::DomainEvent>> {
        let mut events = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(#pk, :outbox)")
                .expression_attribute_names("#pk", table::PK)
                .expression_attribute_values(":outbox", s("OUTBOX#"))
                .set_exclusive_start_key(start.take())
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "Scan"))
                .await
                .map_err(sdk_error)?;
            for item in out.items.unwrap_or_default() {
                if let Some(Ok(event)) = attr_str(&item, "event").map(serde_json::from_str) {
                    events.push(event);
                }
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(events),
            }
        }
    }
}
