//! Payment attempts: `ATTEMPT#<attemptId>` / `ATTEMPT`. While an attempt is not settled it
//! carries the keys of the sparse `attempts-by-deadline` index (`apk` = `ATTEMPTS#<shard>`,
//! `ask` = `<deadline>#<attemptId>`), which is the reconciler's work list; settling removes them
//! and sets a TTL, so the index only ever holds money in motion.

use super::idempotency::{ATTEMPT_ATTRIBUTE, record_key};
use super::tx::Expr;
use super::written::{fresh_token, with_token, written_by};
use super::{Attrs, DynamoStore, TxItems, attr_str, key, n, s, sdk_error, shape_error, table};
use crate::domain::attempt::{AttemptState, PaymentAttempt};
use crate::error::{Error, Result};
use crate::store::{DueAttemptPage, IdempotencyOwner, PaymentAttemptStore, attempt_shard, cursor};
use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
use tracing::Instrument;

const ATTEMPT_SK: &str = "ATTEMPT";
/// Settled attempts are kept this long (for support and audits), then TTL removes them.
const SETTLED_RETENTION: Duration = Duration::days(90);

pub(crate) fn attempt_key(attempt_id: &str) -> Attrs {
    key(format!("ATTEMPT#{attempt_id}"), ATTEMPT_SK)
}

fn due_partition(attempt_id: &str) -> String {
    format!("ATTEMPTS#{}", attempt_shard(attempt_id))
}

fn due_sort_key(attempt: &PaymentAttempt) -> String {
    format!(
        "{}#{}",
        crate::clock::rfc3339(attempt.deadline),
        attempt.attempt_id
    )
}

/// The attempt as stored: its fields, its key, and the index keys while it is not settled.
pub(crate) fn attempt_item(attempt: &PaymentAttempt) -> Result<Attrs> {
    let mut item: Attrs = to_item(attempt).map_err(shape_error)?;
    item.extend(attempt_key(&attempt.attempt_id));
    if attempt.state.is_settled() {
        let expires = attempt.deadline.max(attempt.created_at) + SETTLED_RETENTION;
        item.insert(table::TTL_ATTRIBUTE.into(), n(expires.timestamp()));
    } else {
        item.insert(
            table::ATTEMPT_PK.into(),
            s(due_partition(&attempt.attempt_id)),
        );
        item.insert(table::ATTEMPT_SK.into(), s(due_sort_key(attempt)));
    }
    Ok(item)
}

/// The condition and names of "the stored attempt is in state `:expected`".
pub(crate) fn in_state(expected: AttemptState) -> Expr {
    Expr::new()
        .name("#state", "state")
        .value(":expected", s(expected.as_str()))
}

pub(crate) const IN_STATE: &str = "#state = :expected";

/// The position after the last attempt of a page: its `ask`.
#[derive(Serialize, Deserialize)]
struct DueCursor {
    ask: String,
}

#[async_trait]
impl PaymentAttemptStore for DynamoStore {
    async fn start_attempt(
        &self,
        attempt: &PaymentAttempt,
        idempotency: Option<&IdempotencyOwner>,
    ) -> Result<()> {
        let token = fresh_token();
        let item = with_token(attempt_item(attempt)?, &token);
        if idempotency.is_none() && attempt.floor.is_none() {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", table::PK)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "PutItem"))
                .await;
            return match put {
                Ok(_) => Ok(()),
                Err(err) => match err.as_service_error() {
                    // Our own put, re-sent by the SDK after its answer was lost.
                    Some(PutItemError::ConditionalCheckFailedException(failed))
                        if written_by(failed.item(), &token) =>
                    {
                        Ok(())
                    }
                    Some(PutItemError::ConditionalCheckFailedException(_)) => {
                        Err(Error::Internal("attempt id collision".into()))
                    }
                    _ => Err(sdk_error(err)),
                },
            };
        }
        // The attempt, the link from the member's idempotency record (from now on the key
        // waits for the attempt to settle) and the floor slot it reserves, together.
        let mut tx = TxItems::new(self);
        let put = tx.put_new(item)?;
        let link = match idempotency {
            Some(owner) => Some(tx.update(
                record_key(&owner.member_id, &owner.key),
                "SET #attempt = :attempt",
                Some("#state = :inProgress AND #owner = :owner AND attribute_not_exists(#attempt)"),
                Expr::new()
                    .name("#attempt", ATTEMPT_ATTRIBUTE)
                    .name("#state", "state")
                    .name("#owner", "owner")
                    .value(":attempt", s(&attempt.attempt_id))
                    .value(":inProgress", s(super::idempotency::IN_PROGRESS))
                    .value(":owner", s(&owner.token)),
            )?),
            None => None,
        };
        let reservation = match &attempt.floor {
            Some(slot) => Some(super::floor::reserve(&mut tx, &attempt.member_id, slot)?),
            None => None,
        };
        match tx.commit().await? {
            Ok(()) => Ok(()),
            // The attempt carries this call's token: this transaction applied (it is all or
            // nothing) and this was the SDK's re-send of it after a lost answer.
            Err(reasons) if written_by(reasons.get(put).and_then(|r| r.old.as_ref()), &token) => {
                Ok(())
            }
            Err(reasons) if link.is_some_and(|l| reasons.get(l).is_some_and(|r| r.failed)) => {
                Err(Error::IdempotencyConflict)
            }
            Err(reasons) => match reservation
                .as_ref()
                .and_then(|r| super::floor::refusal(r, &reasons))
            {
                Some(refused) => Err(refused),
                None => Err(Error::Internal("attempt id collision".into())),
            },
        }
    }

    async fn update_attempt(
        &self,
        attempt: &PaymentAttempt,
        expected: AttemptState,
    ) -> Result<bool> {
        let expr = in_state(expected);
        let token = fresh_token();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(with_token(attempt_item(attempt)?, &token)))
            .condition_expression(IN_STATE)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "PutItem"))
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(err) => match err.as_service_error() {
                // The attempt carries this call's token: the SDK re-sent this write after its
                // answer was lost, and the first send applied. Anything else moved it on.
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(written_by(failed.item(), &token))
                }
                _ => Err(sdk_error(err)),
            },
        }
    }

    async fn settle_refunded(&self, attempt: &PaymentAttempt) -> Result<bool> {
        let settled = PaymentAttempt {
            state: AttemptState::Refunded,
            ..attempt.clone()
        };
        let token = fresh_token();
        let mut tx = TxItems::new(self);
        let moved = tx.put_if(
            with_token(attempt_item(&settled)?, &token),
            IN_STATE,
            in_state(AttemptState::Refunding),
        )?;
        if let Some(key_) = &attempt.idempotency_key {
            // Released, so the client's retry with the same key runs anew (nothing is charged
            // any more); a record linked to another request, or already gone, stays as it is.
            tx.delete(
                record_key(&attempt.member_id, key_),
                Some("attribute_not_exists(#pk) OR #attempt = :attempt"),
                Expr::new()
                    .name("#pk", table::PK)
                    .name("#attempt", ATTEMPT_ATTRIBUTE)
                    .value(":attempt", s(&attempt.attempt_id)),
            )?;
        }
        // The slot the payment reserved, given back with the money.
        if let Some(release) = super::floor::release_of_attempt(attempt) {
            super::floor::release(&mut tx, &release)?;
        }
        match tx.commit().await? {
            Ok(()) => Ok(true),
            // Settled as we meant it: the SDK's re-send of this transaction after a lost answer.
            Err(reasons) if reasons.get(moved).is_some_and(|r| r.failed) => Ok(written_by(
                reasons.get(moved).and_then(|r| r.old.as_ref()),
                &token,
            )),
            Err(_) => {
                // The record is linked to another attempt: settle ours (and give its slot
                // back), leave the record.
                let Some(release) = super::floor::release_of_attempt(attempt) else {
                    return self.update_attempt(&settled, AttemptState::Refunding).await;
                };
                let mut tx = TxItems::new(self);
                tx.put_if(
                    attempt_item(&settled)?,
                    IN_STATE,
                    in_state(AttemptState::Refunding),
                )?;
                super::floor::release(&mut tx, &release)?;
                Ok(tx.commit().await?.is_ok())
            }
        }
    }

    async fn get_attempt(&self, attempt_id: &str) -> Result<Option<PaymentAttempt>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(attempt_key(attempt_id)))
            .consistent_read(true)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "GetItem"))
            .await
            .map_err(sdk_error)?;
        out.item
            .map(|item| from_item(item).map_err(shape_error))
            .transpose()
    }

    async fn due_attempts(
        &self,
        shard: u32,
        now: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DueAttemptPage> {
        let start = match cursor {
            Some(c) => {
                let ask = cursor::decode::<DueCursor>(c)?.ask;
                let (_, attempt_id) = ask
                    .split_once('#')
                    .ok_or_else(|| Error::invalid("cursor"))?;
                if attempt_shard(attempt_id) != shard || ask.len() > 200 {
                    return Err(Error::invalid("cursor"));
                }
                let mut start = attempt_key(attempt_id);
                start.insert(table::ATTEMPT_PK.into(), s(due_partition(attempt_id)));
                start.insert(table::ATTEMPT_SK.into(), s(ask.clone()));
                Some(start)
            }
            None => None,
        };
        let upper = format!("{}#\u{10FFFF}", crate::clock::rfc3339(now));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::GSI_ATTEMPTS_DUE)
            .key_condition_expression("#apk = :apk AND #ask <= :upper")
            .expression_attribute_names("#apk", table::ATTEMPT_PK)
            .expression_attribute_names("#ask", table::ATTEMPT_SK)
            .expression_attribute_values(":apk", s(format!("ATTEMPTS#{shard}")))
            .expression_attribute_values(":upper", s(upper))
            .scan_index_forward(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "Query"))
            .await
            .map_err(sdk_error)?;
        let mut attempt_ids = Vec::new();
        let mut last_ask = None;
        for item in out.items.unwrap_or_default() {
            if let Some(ask) = attr_str(&item, table::ATTEMPT_SK)
                && let Some((_, id)) = ask.split_once('#')
            {
                attempt_ids.push(id.to_owned());
                last_ask = Some(ask.to_owned());
            }
        }
        let more = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let next_cursor = match last_ask {
            Some(ask) if more => Some(cursor::encode(&DueCursor { ask })?),
            _ => None,
        };
        Ok(DueAttemptPage {
            attempt_ids,
            next_cursor,
        })
    }
}
