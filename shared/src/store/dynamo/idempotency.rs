//! Idempotency records: `IDEMPOTENCY#<memberId>#<key>` / `IDEMPOTENCY`. Starting is one
//! conditional put that succeeds only over nothing, an expired record or a stale in-progress one,
//! so two racers can never both start.

use super::tx::Expr;
use super::{DynamoStore, key, n, s, sdk_error, shape_error, table};
use crate::error::Result;
use crate::store::{
    IDEMPOTENCY_LEASE, IDEMPOTENCY_RETENTION, IdempotencyBegin, IdempotencyStore, StoredResponse,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

const SK: &str = "IDEMPOTENCY";
const IN_PROGRESS: &str = "IN_PROGRESS";
const DONE: &str = "DONE";

fn record_pk(member_id: &str, key: &str) -> String {
    format!("IDEMPOTENCY#{member_id}#{key}")
}

/// The fields of a record read back when starting failed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Existing {
    request_hash: String,
    state: String,
    #[serde(default)]
    response_status: Option<u16>,
    #[serde(default)]
    response_body: Option<String>,
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn begin_idempotent(
        &self,
        member_id: &str,
        key_: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyBegin> {
        let expires_at = now + IDEMPOTENCY_RETENTION;
        let mut item = key(record_pk(member_id, key_), SK);
        item.insert("requestHash".into(), s(request_hash));
        item.insert("state".into(), s(IN_PROGRESS));
        item.insert("startedAtMs".into(), n(now.timestamp_millis()));
        item.insert("expiresAtMs".into(), n(expires_at.timestamp_millis()));
        item.insert(table::TTL_ATTRIBUTE.into(), n(expires_at.timestamp()));
        let expr = Expr::new()
            .name("#pk", table::PK)
            .name("#expires", "expiresAtMs")
            .name("#state", "state")
            .name("#started", "startedAtMs")
            .value(":now", n(now.timestamp_millis()))
            .value(":inProgress", s(IN_PROGRESS))
            .value(":stale", n((now - IDEMPOTENCY_LEASE).timestamp_millis()));
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(#pk) OR #expires <= :now \
                 OR (#state = :inProgress AND #started <= :stale)",
            )
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let err = match put {
            Ok(_) => return Ok(IdempotencyBegin::Started),
            Err(err) => err,
        };
        let existing = match err.as_service_error() {
            Some(PutItemError::ConditionalCheckFailedException(failed)) => failed.item().cloned(),
            _ => return Err(sdk_error(err)),
        };
        // A live record: the one that made our put fail.
        let Some(existing) = existing else {
            return Ok(IdempotencyBegin::Conflict);
        };
        let existing: Existing = from_item(existing).map_err(shape_error)?;
        if existing.request_hash != request_hash || existing.state != DONE {
            return Ok(IdempotencyBegin::Conflict);
        }
        Ok(IdempotencyBegin::Replay(StoredResponse {
            status: existing.response_status.unwrap_or(500),
            body: existing.response_body.unwrap_or_default(),
        }))
    }

    async fn finish_idempotent(
        &self,
        member_id: &str,
        key_: &str,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let expires_at = now + IDEMPOTENCY_RETENTION;
        let expr = Expr::new()
            .name("#pk", table::PK)
            .name("#state", "state")
            .name("#status", "responseStatus")
            .name("#body", "responseBody")
            .name("#expires", "expiresAtMs")
            .name("#ttl", table::TTL_ATTRIBUTE)
            .value(":done", s(DONE))
            .value(":status", n(i64::from(response.status)))
            .value(":body", s(&response.body))
            .value(":expires", n(expires_at.timestamp_millis()))
            .value(":ttl", n(expires_at.timestamp()));
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(record_pk(member_id, key_), SK)))
            .update_expression(
                "SET #state = :done, #status = :status, #body = :body, \
                 #expires = :expires, #ttl = :ttl",
            )
            .condition_expression("attribute_exists(#pk)")
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            // Nothing to finish (the record expired or was abandoned): as in memory, a no-op.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_error(err)),
        }
    }

    async fn abandon_idempotent(&self, member_id: &str, key_: &str) -> Result<()> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(record_pk(member_id, key_), SK)))
            .condition_expression("#state = :inProgress")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":inProgress", s(IN_PROGRESS))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Finished (or gone) records are kept: only an in-progress key is forgotten.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(DeleteItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_error(err)),
        }
    }
}
