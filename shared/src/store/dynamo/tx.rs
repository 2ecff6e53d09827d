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

/// A transaction cancelled by another transaction on the same items is tried again this many
/// times (nothing was written), then answered 503.
const CONFLICT_ATTEMPTS: u32 = 5;

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
}

impl<'a> TxItems<'a> {
    pub fn new(store: &'a DynamoStore) -> Self {
        Self {
            store,
            items: Vec::new(),
        }
    }

    fn push_put(&mut self, item: Attrs, condition: Option<&str>) -> Result<usize> {
        let mut put = Put::builder()
            .table_name(&self.store.table)
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
        self.push_put(item, None)
    }

    /// Creates an item that must not exist yet.
    pub fn put_new(&mut self, item: Attrs) -> Result<usize> {
        self.push_put(item, Some("attribute_not_exists(#pk)"))
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
            self.put_new(super::outbox_row(event)?)?;
        }
        Ok(())
    }

    /// Commits all writes or none. `Ok(Err(reasons))` when a condition failed: one reason per
    /// write, in order.
    pub async fn commit(self) -> Result<std::result::Result<(), Vec<Reason>>> {
        if self.items.is_empty() {
            return Ok(Ok(()));
        }
        for attempt in 0..CONFLICT_ATTEMPTS {
            let sent = self
                .store
                .client
                .transact_write_items()
                .set_transact_items(Some(self.items.clone()))
                .send()
                .await;
            let err = match sent {
                Ok(_) => return Ok(Ok(())),
                Err(err) => err,
            };
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
                return Ok(Err(reasons
                    .iter()
                    .map(|r| Reason {
                        failed: code(r) == "ConditionalCheckFailed",
                        old: r.item().cloned().filter(|item| !item.is_empty()),
                    })
                    .collect()));
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
