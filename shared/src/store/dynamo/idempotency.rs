//! Idempotency records: `IDEMPOTENCY#<memberId>#<key>` / `IDEMPOTENCY`. Starting is one
//! conditional put that succeeds only over nothing, an expired record or a stale in-progress one
//! with no payment attempt linked, so two racers can never both start. Each start writes a fresh
//! owner token; finishing and abandoning are conditional on it, so a request whose record was
//! taken over can never overwrite or delete its successor's.

use super::tx::Expr;
use super::written::{WRITE_TOKEN, fresh_token, written_by};
use super::{DynamoStore, key, n, s, sdk_error, shape_error, table};
use crate::error::Result;
use crate::store::{
    IDEMPOTENCY_LEASE, IDEMPOTENCY_RETENTION, IdempotencyBegin, IdempotencyOwner, IdempotencyStore,
    StoredResponse,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_dynamo::aws_sdk_dynamodb_1::from_item;
use tracing::Instrument;

const SK: &str = "IDEMPOTENCY";
pub(crate) const IN_PROGRESS: &str = "IN_PROGRESS";
pub(crate) const DONE: &str = "DONE";
/// The payment attempt an in-progress record waits for, once its request started charging.
pub(crate) const ATTEMPT_ATTRIBUTE: &str = "attemptId";

fn record_pk(member_id: &str, key: &str) -> String {
    format!("IDEMPOTENCY#{member_id}#{key}")
}

pub(crate) fn record_key(member_id: &str, key_: &str) -> super::Attrs {
    key(record_pk(member_id, key_), SK)
}

/// The update that stores a final answer (the response and a fresh expiry).
pub(crate) fn answer_update(response: &StoredResponse, now: DateTime<Utc>) -> (&'static str, Expr) {
    let expires_at = now + IDEMPOTENCY_RETENTION;
    let expr = Expr::new()
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
    (
        "SET #state = :done, #status = :status, #body = :body, #expires = :expires, #ttl = :ttl",
        expr,
    )
}

/// The fields of a record read back when starting failed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Existing {
    request_hash: String,
    state: String,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    response_status: Option<u16>,
    #[serde(default)]
    response_body: Option<String>,
    #[serde(default)]
    attempt_id: Option<String>,
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
        let owner = crate::ids::new_id(now);
        let mut item = record_key(member_id, key_);
        item.insert("requestHash".into(), s(request_hash));
        item.insert("state".into(), s(IN_PROGRESS));
        item.insert("owner".into(), s(&owner));
        item.insert("startedAtMs".into(), n(now.timestamp_millis()));
        item.insert("expiresAtMs".into(), n(expires_at.timestamp_millis()));
        item.insert(table::TTL_ATTRIBUTE.into(), n(expires_at.timestamp()));
        let expr = Expr::new()
            .name("#pk", table::PK)
            .name("#expires", "expiresAtMs")
            .name("#state", "state")
            .name("#started", "startedAtMs")
            .name("#attempt", ATTEMPT_ATTRIBUTE)
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
                 OR (#state = :inProgress AND #started <= :stale \
                     AND attribute_not_exists(#attempt))",
            )
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "PutItem"))
            .await;
        let err = match put {
            Ok(_) => return Ok(IdempotencyBegin::Started(owner)),
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
        if existing.owner.as_deref() == Some(owner.as_str()) {
            // Our own put (the owner token is fresh per start), re-sent by the SDK after its
            // answer was lost: we hold the key.
            return Ok(IdempotencyBegin::Started(owner));
        }
        if existing.request_hash != request_hash {
            return Ok(IdempotencyBegin::Conflict);
        }
        if existing.state != DONE {
            return Ok(if existing.attempt_id.is_some() {
                IdempotencyBegin::Pending
            } else {
                IdempotencyBegin::Conflict
            });
        }
        Ok(IdempotencyBegin::Replay(StoredResponse {
            status: existing.response_status.unwrap_or(500),
            body: existing.response_body.unwrap_or_default(),
        }))
    }

    async fn finish_idempotent(
        &self,
        owner: &IdempotencyOwner,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (update, expr) = answer_update(response, now);
        let write_token = fresh_token();
        let update = format!("{update}, #writeToken = :writeToken");
        let expr = expr
            .name("#owner", "owner")
            .name("#writeToken", WRITE_TOKEN)
            .value(":inProgress", s(IN_PROGRESS))
            .value(":token", s(&owner.token))
            .value(":writeToken", s(&write_token));
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(record_key(&owner.member_id, &owner.key)))
            .update_expression(update)
            .condition_expression("#state = :inProgress AND #owner = :token")
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "UpdateItem"))
            .await;
        match updated {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                // Done by this call: the SDK re-sent the update after its answer was lost. Else
                // taken over (or gone): the record is someone else's; leave it.
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(written_by(failed.item(), &write_token))
                }
                _ => Err(sdk_error(err)),
            },
        }
    }

    async fn abandon_idempotent(&self, owner: &IdempotencyOwner) -> Result<bool> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(record_key(&owner.member_id, &owner.key)))
            .condition_expression(
                "#state = :inProgress AND #owner = :token AND attribute_not_exists(#attempt)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#attempt", ATTEMPT_ATTRIBUTE)
            .expression_attribute_values(":inProgress", s(IN_PROGRESS))
            .expression_attribute_values(":token", s(&owner.token))
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "DeleteItem"))
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                // Finished, taken over, waiting for an attempt, or gone (perhaps by this very
                // delete, re-sent by the SDK after its answer was lost: released either way).
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(sdk_error(err)),
            },
        }
    }
}
