//! Giving money back: every charged part of a payment attempt refunded at the gateway under its
//! own key, then the attempt settled `REFUNDED`. Used by a payment that will not complete, by the
//! cancellation of a paid order, and by the reconciler; whatever does not go through is left
//! `REFUNDING` for the reconciler.

use crate::deps::{HasConfig, HasGateway, HasMetrics, HasStore};
use crate::domain::attempt::{AttemptState, PaymentAttempt};
use crate::gateway::bounded;

/// What refunding uses: the attempt's store, the gateway (and its timeout), the metrics.
pub trait RefundDeps: HasStore + HasGateway + HasConfig + HasMetrics {}

impl<T: HasStore + HasGateway + HasConfig + HasMetrics + ?Sized> RefundDeps for T {}

/// Moves the attempt from `from` to `REFUNDING`, refunds every charged part and settles it
/// `REFUNDED`. What does not go through (a refund refused or unanswered, a write failing) is
/// left `REFUNDING` for the reconciler; `true` once settled.
pub(crate) async fn refund_attempt(
    deps: &impl RefundDeps,
    attempt: &mut PaymentAttempt,
    from: AttemptState,
) -> bool {
    let settled = refund_now(deps, attempt, from).await;
    if !settled {
        deps.metrics().left_to_reconciliation(true);
    }
    settled
}

async fn refund_now(
    deps: &impl RefundDeps,
    attempt: &mut PaymentAttempt,
    from: AttemptState,
) -> bool {
    if from != AttemptState::Refunding {
        attempt.state = AttemptState::Refunding;
        match deps.store().update_attempt(attempt, from).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(attempt_id = %attempt.attempt_id, "attempt moved on; not refunding it here");
                return false;
            }
            Err(error) => {
                tracing::error!(attempt_id = %attempt.attempt_id, %error,
                    "could not mark the attempt refunding; left to reconciliation");
                return false;
            }
        }
    }
    let mut all_refunded = true;
    for n in 0..attempt.parts.len() {
        if attempt.parts[n].refunded {
            continue;
        }
        let Some(pg_transaction_id) = attempt.parts[n].pg_transaction_id.clone() else {
            // Never charged (or not known to be: the reconciler looks it up first).
            attempt.parts[n].refunded = true;
            continue;
        };
        let key = attempt.refund_key(n);
        let refund = deps
            .gateway()
            .refund(&pg_transaction_id, attempt.parts[n].amount, &key);
        match bounded(deps.config().gateway_timeout, refund).await {
            Ok(()) => {
                attempt.parts[n].refunded = true;
                crate::fault::pause_point(&format!("refund:refunded:{n}"));
            }
            Err(error) => {
                tracing::error!(attempt_id = %attempt.attempt_id, %pg_transaction_id, %error,
                    "refund failed; left to reconciliation");
                all_refunded = false;
            }
        }
    }
    if !all_refunded {
        // Keep what went through, so the reconciler refunds only the rest.
        if let Err(error) = deps
            .store()
            .update_attempt(attempt, AttemptState::Refunding)
            .await
        {
            tracing::warn!(%error, "could not record the refunds made so far");
        }
        return false;
    }
    match deps.store().settle_refunded(attempt).await {
        Ok(settled) => {
            if settled {
                attempt.state = AttemptState::Refunded;
            }
            settled
        }
        Err(error) => {
            tracing::error!(attempt_id = %attempt.attempt_id, %error,
                "refunded but not recorded; the reconciler settles it");
            false
        }
    }
}
