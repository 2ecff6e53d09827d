//! Building and committing one `TransactWriteItems`, and reading its cancellation reasons.

use super::{Attrs, DynamoStore, sdk_error, table};
use crate::domain::{DomainEvent, EntityKind};
use crate::error::{Error, Result};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use tracing::Instrument;

/// A transaction cancelled by another transaction on the same items is tried again this many
/// times (nothing was written), then answered 503.
const CONFLICT_ATTEMPTS: u32 = 5;

/// An idempotent transaction (one with a `ClientRequestToken`) whose outcome is unknown — no
/// answer, a 5xx, `TransactionInProgressException` — is re-sent identically this many times in
/// all before the outcome is left to the reconciler.
pub(crate) const UNKNOWN_OUTCOME_SENDS: u32 = 4;

/// Why one write of a cancelled transaction did not happen.
#[derive(Debug, Clone)]
pub(crate) struct Reason {
    /// Its condition was false.
    pub failed: bool,
    /// The item as it was (ALL_OLD), if it existed and the write asked for it.
    pub old: Option<Attrs>,
}

/// The expression of one conditional write: names (`#x`) and values (`:x`) it uses.
#[derive(Default)]
pub(crate) struct Expr {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn build_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("transaction item: {e}"))
}

/// The writes of one transaction, in order (cancellation reasons come back in the same order).
pub(crate) struct TxItems<'a> {
    store: &'a DynamoStore,
    items: Vec<TransactWriteItem>,
    /// Positions of the outbox rows: each event's id is fresh, so finding one of them stored
    /// means this transaction already applied.
    outbox_rows: Vec<usize>,
    /// False when a send that finds its own events stored is read as cancelled all the same.
    own_events_mean_applied: bool,
}

impl<'a> TxItems<'a> {
    pub fn new(store: &'a DynamoStore) -> Self {
        Self {
            store,
            items: Vec::new(),
            outbox_rows: Vec::new(),
            own_events_mean_applied: true,
        }
    }

    /// A cancelled send is read as it is even when it found its own events stored: for a write
    /// whose answer says whether this very call made the change (`end_member`), where a
    /// re-send's "not this call" is harmless and calling it again with the same event must
    /// answer "not this call".
    pub fn own_events_not_applied(mut self) -> Self {
        self.own_events_mean_applied = false;
        self
    }

    fn push_put(
        &mut self,
        table_name: &str,
        item: Attrs,
        condition: Option<&str>,
    ) -> Result<usize> {
        let mut put = Put::builder()
            .table_name(table_name)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(condition) = condition {
            put = put
                .condition_expression(condition)
                .expression_attribute_names("#pk", table::PK);
        }
        let index = self.items.len();
        self.items.push(
            TransactWriteItem::builder()
                .put(put.build().map_err(build_error)?)
                .build(),
        );
        Ok(index)
    }

    /// Creates or replaces an item.
    pub fn put(&mut self, item: Attrs) -> Result<usize> {
        let store = self.store;
        self.push_put(&store.table, item, None)
    }

    /// Creates an item that must not exist yet.
    pub fn put_new(&mut self, item: Attrs) -> Result<usize> {
        let store = self.store;
        self.put_new_in(&store.table, item)
    }

    /// [`TxItems::put_new`] in another table of the store (the credentials table): a
    /// transaction may span tables.
    pub fn put_new_in(&mut self, table_name: &str, item: Attrs) -> Result<usize> {
        self.push_put(table_name, item, Some("attribute_not_exists(#pk)"))
    }

    /// Creates or replaces `item` only if `condition` holds on the stored item; on failure its
    /// reason carries the old item.
    pub fn put_if(&mut self, item: Attrs, condition: &str, expr: Expr) -> Result<usize> {
        let put = Put::builder()
            .table_name(&self.store.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let index = self.items.len();
        self.items
            .push(TransactWriteItem::builder().put(put).build());
        Ok(index)
    }

    /// A history row whose sort key is fixed by the caller (`sequence`), so a rebuilt
    /// transaction writes the same row.
    pub fn history_with_sequence(
        &mut self,
        kind: EntityKind,
        id: &str,
        status: &str,
        at: DateTime<Utc>,
        sequence: &str,
    ) -> Result<()> {
        let row = self
            .store
            .history_row_with_sequence(kind, id, status, at, sequence)?;
        self.put(row).map(drop)
    }

    /// A delete, conditional or not.
    pub fn delete(&mut self, key: Attrs, condition: Option<&str>, expr: Expr) -> Result<usize> {
        let store = self.store;
        self.delete_in(&store.table, key, condition, expr)
    }

    /// [`TxItems::delete`] in another table of the store.
    pub fn delete_in(
        &mut self,
        table_name: &str,
        key: Attrs,
        condition: Option<&str>,
        expr: Expr,
    ) -> Result<usize> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(table_name)
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let index = self.items.len();
        self.items
            .push(TransactWriteItem::builder().delete(delete).build());
        Ok(index)
    }

    /// A conditional update; on failure its reason carries the old item.
    pub fn update(
        &mut self,
        key: Attrs,
        update: &str,
        condition: Option<&str>,
        expr: Expr,
    ) -> Result<usize> {
        let update = Update::builder()
            .table_name(&self.store.table)
            .set_key(Some(key))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_owned))
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let index = self.items.len();
        self.items
            .push(TransactWriteItem::builder().update(update).build());
        Ok(index)
    }

    /// A condition on an item the transaction does not write.
    pub fn check(&mut self, key: Attrs, condition: &str, expr: Expr) -> Result<usize> {
        let check = ConditionCheck::builder()
            .table_name(&self.store.table)
            .set_key(Some(key))
            .condition_expression(condition)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)?;
        let index = self.items.len();
        self.items
            .push(TransactWriteItem::builder().condition_check(check).build());
        Ok(index)
    }

    pub fn history(
        &mut self,
        kind: EntityKind,
        id: &str,
        status: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let row = self.store.history_row(kind, id, status, at)?;
        self.put(row).map(drop)
    }

    pub fn outbox(&mut self, events: &[DomainEvent]) -> Result<()> {
        for event in events {
            let row = self.put_new(super::outbox_row(event)?)?;
            self.outbox_rows.push(row);
        }
        Ok(())
    }

    /// True when a cancelled send found one of its own outbox rows stored: events are fresh per
    /// call (or, for a payment's commit, derived from its attempt), so the transaction had
    /// applied and this was a re-send of it after a late answer (the SDK's, on a per-try
    /// timeout; moto ignores `ClientRequestToken`, and DynamoDB forgets it after 10 minutes).
    fn applied_already(&self, reasons: &[Reason]) -> bool {
        self.own_events_mean_applied
            && self.outbox_rows.iter().any(|&row| {
                reasons
                    .get(row)
                    .is_some_and(|r| r.failed && r.old.is_some())
            })
    }

    /// Commits all writes or none. `Ok(Err(reasons))` when a condition failed: one reason per
    /// write, in order. A transaction that writes events and finds one of them already stored
    /// had applied (see [`TxItems::applied_already`]): `Ok(Ok(()))`.
    pub async fn commit(self) -> Result<std::result::Result<(), Vec<Reason>>> {
        self.send(None).await
    }

    /// [`TxItems::commit`] with a `ClientRequestToken`: a re-send of the identical transaction
    /// is answered as the first one was (for 10 minutes on DynamoDB), so an unknown outcome is
    /// settled by sending it again — never by a read that can race a commit still in flight.
    /// No answer, a 5xx or `TransactionInProgressException` → sent again, up to
    /// [`UNKNOWN_OUTCOME_SENDS`] times in all; then 503 with the outcome still unknown.
    pub async fn commit_idempotent(
        self,
        token: &str,
    ) -> Result<std::result::Result<(), Vec<Reason>>> {
        self.send(Some(token)).await
    }

    async fn send(self, token: Option<&str>) -> Result<std::result::Result<(), Vec<Reason>>> {
        if self.items.is_empty() {
            return Ok(Ok(()));
        }
        let mut unknown_sends = 0;
        let mut attempt = 0;
        while attempt < CONFLICT_ATTEMPTS {
            attempt += 1;
            // Always a token, so the SDK's own retries of this send (after a timeout) are
            // idempotent on DynamoDB: the caller's, kept across re-sends, or a fresh one per
            // send (a send cancelled by a conflict wrote nothing; the next is a new request).
            let request_token = match token {
                Some(token) => token.to_owned(),
                None => ulid::Ulid::new().to_string(),
            };
            let sent = self
                .store
                .client
                .transact_write_items()
                .set_transact_items(Some(self.items.clone()))
                .client_request_token(request_token)
                .send()
                .instrument(crate::spans::dependency_span(
                    "dynamodb",
                    "TransactWriteItems",
                ))
                .await;
            if let (Some(_), Err(err)) = (token, &sent)
                && outcome_unknown(err)
            {
                unknown_sends += 1;
                if unknown_sends >= UNKNOWN_OUTCOME_SENDS {
                    tracing::warn!(
                        sends = unknown_sends,
                        "transaction outcome still unknown; left for reconciliation"
                    );
                    return Err(Error::Unavailable("dynamodb"));
                }
                tracing::info!(
                    sends = unknown_sends,
                    error = %aws_sdk_dynamodb::error::DisplayErrorContext(err),
                    "transaction outcome unknown; sending it again with its token"
                );
                tokio::time::sleep(std::time::Duration::from_millis(
                    50 * u64::from(unknown_sends),
                ))
                .await;
                // Not a conflict: it does not use up a conflict attempt.
                attempt -= 1;
                continue;
            }
            let err = match sent {
                Ok(_) => return Ok(Ok(())),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) =
                err.as_service_error()
            {
                // A rebuilt transaction differs from the first one sent under its token: a bug.
                tracing::error!("a re-sent transaction differs from the first under its token");
                return Err(Error::Internal("transaction rebuilt differently".into()));
            }
            let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                err.as_service_error()
            else {
                return Err(sdk_error(err));
            };
            let reasons = cancelled.cancellation_reasons();
            let code = |r: &aws_sdk_dynamodb::types::CancellationReason| {
                r.code().unwrap_or("None").to_owned()
            };
            if reasons.iter().any(|r| code(r) == "ConditionalCheckFailed") {
                let reasons: Vec<Reason> = reasons
                    .iter()
                    .map(|r| Reason {
                        failed: code(r) == "ConditionalCheckFailed",
                        old: r.item().cloned().filter(|item| !item.is_empty()),
                    })
                    .collect();
                if self.applied_already(&reasons) {
                    tracing::info!("a re-sent transaction found its own events stored: applied");
                    return Ok(Ok(()));
                }
                return Ok(Err(reasons));
            }
            let codes: Vec<String> = reasons.iter().map(code).collect();
            if codes.iter().any(|c| c == "TransactionConflict") {
                tracing::info!(attempt, "transaction conflict; trying again");
                let jitter = rand::random::<u64>() % 20;
                tokio::time::sleep(std::time::Duration::from_millis(
                    10 * u64::from(attempt + 1) + jitter,
                ))
                .await;
                continue;
            }
            if codes
                .iter()
                .any(|c| c == "ThrottlingError" || c == "ProvisionedThroughputExceeded")
            {
                tracing::warn!(?codes, "transaction throttled");
                return Err(Error::Unavailable("dynamodb"));
            }
            tracing::error!(?codes, "transaction cancelled for an unexpected reason");
            return Err(Error::Internal(format!(
                "transaction cancelled: {}",
                codes.join(",")
            )));
        }
        tracing::warn!("transaction kept conflicting");
        Err(Error::Unavailable("dynamodb"))
    }
}

/// True when a transaction may or may not have committed: no answer, a 5xx, or
/// `TransactionInProgressException` (the SDK's own retry of a slow first send).
fn outcome_unknown(
    err: &aws_sdk_dynamodb::error::SdkError<
        TransactWriteItemsError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
) -> bool {
    use aws_sdk_dynamodb::error::SdkError;
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(ctx) => {
            matches!(
                ctx.err(),
                TransactWriteItemsError::TransactionInProgressException(_)
                    | TransactWriteItemsError::InternalServerError(_)
            ) || ctx.raw().status().is_server_error()
        }
        _ => false,
    }
}
