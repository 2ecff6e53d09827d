//! A payment's commit that reaches DynamoDB (moto) but whose answer is lost.
//!
//! An SDK interceptor lets the completing `TransactWriteItems` through to the store and replaces
//! its answer with a 500 — so the SDK retries it on its own, exactly as it does after a timeout
//! on real AWS — and then answers that retry, and any further one, with
//! `TransactionInProgressException`. The payment must settle by re-sending the identical
//! transaction under its `ClientRequestToken` — never by reading the order back — and end
//! completed exactly once, with its charge kept and nothing refunded.

#[path = "order_support/mod.rs"]
mod order_support;

use aws_sdk_dynamodb::config::{
    ConfigBag, Intercept, RuntimeComponents,
    interceptors::BeforeDeserializationInterceptorContextMut,
    interceptors::BeforeSerializationInterceptorContextRef,
};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use cafe::domain::OrderStatus;
use cafe::domain::attempt::AttemptState;
use cafe::services::payments;
use cafe::store::dynamo::DynamoStore;
use cafe::store::{OrderStore, PaymentAttemptStore};
use order_support::{card, harness, local_lock, lock_config, quick_gateway};
use std::sync::{Arc, Mutex};

/// What the interceptor does to each send of the tokened transaction.
#[derive(Debug, Default)]
struct Script {
    /// Completing operations (SDK calls) seen so far.
    operations: usize,
    /// HTTP attempts of the current operation.
    attempts: usize,
    /// Answers replaced: (operation, attempt, status).
    replaced: Vec<(usize, usize, u16)>,
    /// Raw answers that reached the test untouched.
    passed: usize,
}

#[derive(Debug, Clone, Default)]
struct LoseTheFirstAnswer {
    script: Arc<Mutex<Script>>,
    /// Set for the operation in flight when it carries a token.
    armed: Arc<Mutex<bool>>,
}

fn error_body(code: &str) -> String {
    format!(
        r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{code}","message":"injected by the test"}}"#
    )
}

impl Intercept for LoseTheFirstAnswer {
    fn name(&self) -> &'static str {
        "LoseTheFirstAnswer"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The completing transaction: the one that writes the attempt COMPLETED.
        let tokened = context
            .input()
            .downcast_ref::<TransactWriteItemsInput>()
            .is_some_and(|i| {
                i.client_request_token().is_some()
                    && i.transact_items().iter().any(|item| {
                        item.put().is_some_and(|put| {
                            let text =
                                |name: &str| put.item().get(name).and_then(|v| v.as_s().ok());
                            text("pk").is_some_and(|pk| pk.starts_with("ATTEMPT#"))
                                && text("state").map(String::as_str) == Some("COMPLETED")
                        })
                    })
            });
        *self.armed.lock().expect("armed") = tokened;
        if tokened {
            let mut script = self.script.lock().expect("script");
            script.operations += 1;
            script.attempts = 0;
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !*self.armed.lock().expect("armed") {
            return Ok(());
        }
        let mut script = self.script.lock().expect("script");
        script.attempts += 1;
        let (operation, attempt) = (script.operations, script.attempts);
        let replacement = match (operation, attempt) {
            // The commit happened; its answer is lost on the way back.
            (1, 1) => Some((500, "InternalServerError")),
            // The SDK's own retries of it: DynamoDB says a transaction with this token is
            // still in progress.
            (1, _) => Some((400, "TransactionInProgressException")),
            // The application's own re-send with the token: the real answer.
            _ => None,
        };
        match replacement {
            Some((status, code)) => {
                script.replaced.push((operation, attempt, status));
                let mut response = aws_smithy_runtime_api::http::Response::new(
                    aws_smithy_runtime_api::http::StatusCode::try_from(status)?,
                    aws_smithy_types::body::SdkBody::from(error_body(code)),
                );
                response
                    .headers_mut()
                    .insert("content-type", "application/x-amz-json-1.0");
                response.headers_mut().insert("x-amzn-errortype", code);
                *context.response_mut() = response;
            }
            None => script.passed += 1,
        }
        Ok(())
    }
}

async fn store_losing_answers(script: LoseTheFirstAnswer) -> Arc<DynamoStore> {
    let endpoint = cafe::testing::dynamodb_endpoint();
    let aws = cafe::aws::Aws::load(Some(&endpoint), std::time::Duration::from_secs(10)).await;
    let plain = aws.dynamodb();
    let name = format!("cafe-lost-{}", ulid::Ulid::new().to_string().to_lowercase());
    cafe::store::dynamo::table::create_table_with(&plain, &name, false)
        .await
        .expect("table");
    let config = aws_sdk_dynamodb::config::Builder::from(aws.sdk_config())
        .interceptor(script)
        .build();
    Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        name,
        400,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_then_transaction_in_progress_completes_exactly_once() {
    let script = LoseTheFirstAnswer::default();
    let store = store_losing_answers(script.clone()).await;
    let h = harness(
        store.clone(),
        local_lock(lock_config(10_000, 500)),
        quick_gateway(),
    );
    let member = h.member().await;
    let item = h.item(1_500, 10).await;
    let (order_id, total) = h.order(&member, &[(&item.item_id, 2)]).await;

    let receipt = payments::pay(&h.app, &member.member_id, &card(&order_id, total))
        .await
        .expect("the commit went through, so the payment succeeded");
    assert_eq!(receipt.status, OrderStatus::Completed);

    {
        let script = script.script.lock().expect("script");
        assert_eq!(
            script.replaced.first(),
            Some(&(1, 1, 500)),
            "the first answer was lost: {script:?}"
        );
        assert!(
            script
                .replaced
                .iter()
                .any(|(op, attempt, status)| *op == 1 && *attempt >= 2 && *status == 400),
            "its retry answered TransactionInProgress: {script:?}"
        );
        assert!(
            script.operations >= 2 && script.passed >= 1,
            "settled by re-sending the transaction with its token: {script:?}"
        );
    }
    // Completed exactly once: stock taken once, one payment row, one COMPLETED history row.
    assert_eq!(h.order_status(&order_id).await, OrderStatus::Completed);
    assert_eq!(h.stock(&item.item_id).await, 8);
    let order = store
        .get_order(&order_id)
        .await
        .expect("read")
        .expect("order");
    assert_eq!(order.payments, receipt.payments);
    assert_eq!(order.payments.len(), 1);
    let history = store.order_history(&order_id).await.expect("history");
    let statuses: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(statuses, ["PENDING_PAYMENT", "COMPLETED"]);
    let payment_rows = store
        .raw_partition(&cafe::store::dynamo::order_pk(&order_id))
        .await
        .expect("partition");
    let rows = payment_rows
        .iter()
        .filter(|r| {
            r.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.starts_with("PAYMENT#"))
        })
        .count();
    assert_eq!(rows, 1);
    // Nothing refunded; the charge kept.
    let ledger = h.gateway.ledger();
    assert_eq!((ledger.charges.len(), ledger.refunds.len()), (1, 0));
    // The attempt is settled COMPLETED and out of the due index.
    let attempt_key = ledger.charges[0]
        .idempotency_key
        .split(':')
        .next()
        .expect("attempt id")
        .to_owned();
    let attempt = store
        .get_attempt(&attempt_key)
        .await
        .expect("read")
        .expect("attempt");
    assert_eq!(attempt.state, AttemptState::Completed);
}
