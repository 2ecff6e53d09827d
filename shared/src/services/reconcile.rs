//! Use case: settling payment attempts whose request died (`payment-reconcile`, every 5 minutes).
//!
//! The run reads only the sparse `attempts-by-deadline` index — attempts not settled and past
//! their deadline — shard by shard, page by page, and settles each one:
//! - `CHARGING`: the parts with no recorded transaction are looked up at the gateway by their
//!   idempotency key (never charged anew). All charged → marked `CHARGED` and committed as below;
//!   otherwise every charged part is refunded.
//! - `CHARGED`: the completing transaction is sent again — the identical transaction, with the
//!   attempt's `ClientRequestToken` — so it commits if the order is still payable and the stock
//!   holds (and is answered as already done if the dead request's commit went through); refused →
//!   every part is refunded.
//! - `REFUNDING` (a payment that will not complete, or a cancelled paid order): every part not
//!   yet refunded is refunded, then the attempt is settled `REFUNDED`.
//!
//! Every step is conditional on the attempt's state, so a run is idempotent, two runs can overlap
//! and a run cut short resumes on the next one (settled attempts leave the index). A run is
//! bounded by a number of attempts and by its deadline.

use crate::deps::{HasClock, HasConfig, HasGateway, HasMetrics, HasStore};
use crate::domain::attempt::{AttemptKind, AttemptState, PaymentAttempt};
use crate::error::{Error, Result};
use crate::gateway::bounded;
use crate::services::payments::{commit_attempt, number_and_mark_charged};
use crate::services::refunds::refund_attempt;
use crate::store::ATTEMPT_SHARDS;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Instant;

/// How much a run does at most and when it must stop.
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// Index entries asked for per page.
    pub page_size: usize,
    /// Attempts settled (or tried) per run at most.
    pub max_attempts: u64,
    /// No new attempt is started once this instant has passed (the Lambda deadline minus a
    /// margin); the one in progress finishes.
    pub stop_by: Option<Instant>,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            page_size: 50,
            max_attempts: 500,
            stop_by: None,
        }
    }
}

/// What a run did; logged and returned by the scheduled function.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileSummary {
    /// Payments completed by their re-sent commit (or found completed).
    pub completed: u64,
    /// Attempts whose every charge is now refunded.
    pub refunded: u64,
    /// Attempts already settled by someone else when reached.
    pub skipped: u64,
    /// Attempts that could not be settled now (gateway or store down); the next run retries.
    pub failed: u64,
    /// Attempts due that this run saw but had no time or room for (at least: the rest of the
    /// page it stopped in); with `failed`, the backlog the next run starts from.
    pub left: u64,
    pub pages: u64,
    /// False when the run stopped early (limit, deadline) or some attempt failed.
    pub complete: bool,
    pub now: DateTime<Utc>,
}

/// What a reconciliation run uses: the store, the gateway, the clock, the configuration and the
/// metrics.
pub trait ReconcileDeps: HasStore + HasGateway + HasClock + HasConfig + HasMetrics {}

impl<T: HasStore + HasGateway + HasClock + HasConfig + HasMetrics + ?Sized> ReconcileDeps for T {}

enum Settled {
    Completed,
    Refunded,
    Skipped,
    Failed,
}

/// Settles every attempt due at `now` (within the options' bounds).
pub async fn run_reconcile(
    deps: &impl ReconcileDeps,
    now: DateTime<Utc>,
    options: &ReconcileOptions,
) -> Result<ReconcileSummary> {
    let started = Instant::now();
    let mut summary = ReconcileSummary {
        now,
        ..ReconcileSummary::default()
    };
    let mut stopped_early = false;
    'shards: for shard in 0..ATTEMPT_SHARDS {
        let mut cursor: Option<String> = None;
        loop {
            let page = deps
                .store()
                .due_attempts(shard, now, cursor.as_deref(), options.page_size.max(1))
                .await?;
            summary.pages += 1;
            for (index, attempt_id) in page.attempt_ids.iter().enumerate() {
                let tried = summary.completed + summary.refunded + summary.skipped + summary.failed;
                let late = options.stop_by.is_some_and(|stop| Instant::now() >= stop);
                if tried >= options.max_attempts || late {
                    stopped_early = true;
                    summary.left = (page.attempt_ids.len() - index) as u64;
                    break 'shards;
                }
                match settle(deps, attempt_id).await {
                    Settled::Completed => summary.completed += 1,
                    Settled::Refunded => summary.refunded += 1,
                    Settled::Skipped => summary.skipped += 1,
                    Settled::Failed => summary.failed += 1,
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    summary.complete = !stopped_early && summary.failed == 0;
    tracing::info!(
        completed = summary.completed,
        refunded = summary.refunded,
        skipped = summary.skipped,
        failed = summary.failed,
        left = summary.left,
        pages = summary.pages,
        complete = summary.complete,
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "reconciliation run"
    );
    deps.metrics().reconcile_run(
        summary.completed + summary.refunded,
        summary.failed,
        summary.failed + summary.left,
    );
    Ok(summary)
}

/// Settles one attempt, whatever state it was left in.
async fn settle(deps: &impl ReconcileDeps, attempt_id: &str) -> Settled {
    let attempt = match deps.store().get_attempt(attempt_id).await {
        Ok(Some(attempt)) => attempt,
        Ok(None) => return Settled::Skipped,
        Err(error) => {
            tracing::warn!(attempt_id, %error, "could not read the attempt");
            return Settled::Failed;
        }
    };
    if attempt.state.is_settled() {
        return Settled::Skipped;
    }
    tracing::info!(attempt_id, state = attempt.state.as_str(), order_id = %attempt.order_id,
        "settling an attempt whose request is gone");
    match (attempt.kind, attempt.state) {
        (AttemptKind::Payment, AttemptState::Charging) => settle_charging(deps, attempt).await,
        (AttemptKind::Payment, AttemptState::Charged) => settle_charged(deps, attempt).await,
        (_, AttemptState::Refunding) => refund(deps, attempt, AttemptState::Refunding).await,
        // A cancel refund is written REFUNDING; any other state is settled or impossible.
        (AttemptKind::CancelRefund, _) | (_, AttemptState::Completed | AttemptState::Refunded) => {
            Settled::Skipped
        }
    }
}

/// A payment that died while charging: find out what it charged, by key.
async fn settle_charging(deps: &impl ReconcileDeps, mut attempt: PaymentAttempt) -> Settled {
    for n in 0..attempt.parts.len() {
        if attempt.parts[n].pg_transaction_id.is_some() {
            continue;
        }
        let key = attempt.charge_key(n);
        match bounded(
            deps.config().gateway_timeout,
            deps.gateway().find_charge(&key),
        )
        .await
        {
            Ok(found) => attempt.parts[n].pg_transaction_id = found,
            Err(error) => {
                tracing::warn!(attempt_id = %attempt.attempt_id, part = n, %error,
                    "could not look the charge up; retried next run");
                return Settled::Failed;
            }
        }
    }
    let payable = attempt.all_charged()
        && match deps.store().get_order(&attempt.order_id).await {
            Ok(Some(order)) => order.check_payable().is_ok(),
            Ok(None) => false,
            Err(error) => {
                tracing::warn!(%error, "could not read the order; retried next run");
                return Settled::Failed;
            }
        };
    if !payable {
        return refund(deps, attempt, AttemptState::Charging).await;
    }
    if let Err(error) = number_and_mark_charged(deps, &mut attempt).await {
        tracing::warn!(%error, "could not take the pickup number; retried next run");
        return Settled::Failed;
    }
    match deps
        .store()
        .update_attempt(&attempt, AttemptState::Charging)
        .await
    {
        Ok(true) => settle_charged(deps, attempt).await,
        Ok(false) => Settled::Skipped,
        Err(error) => {
            tracing::warn!(%error, "could not mark the attempt charged; retried next run");
            Settled::Failed
        }
    }
}

/// Every part charged: send the completing transaction again (identical, with its token).
async fn settle_charged(deps: &impl ReconcileDeps, attempt: PaymentAttempt) -> Settled {
    let order = match deps.store().get_order(&attempt.order_id).await {
        Ok(Some(order)) => order,
        Ok(None) => return refund(deps, attempt, AttemptState::Charged).await,
        Err(error) => {
            tracing::warn!(%error, "could not read the order; retried next run");
            return Settled::Failed;
        }
    };
    match commit_attempt(deps, &attempt, &order.items).await {
        Ok(_) => Settled::Completed,
        // Refused by the order or the stock: commit_attempt refunded what it could.
        Err(Error::OutOfStock(_) | Error::NotFound(_) | Error::OrderStatusConflict) => {
            match deps.store().get_attempt(&attempt.attempt_id).await {
                Ok(Some(after)) if after.state == AttemptState::Refunded => Settled::Refunded,
                _ => Settled::Failed,
            }
        }
        Err(error) => {
            tracing::warn!(attempt_id = %attempt.attempt_id, %error,
                "commit still unsettled; retried next run");
            Settled::Failed
        }
    }
}

async fn refund(
    deps: &impl ReconcileDeps,
    mut attempt: PaymentAttempt,
    from: AttemptState,
) -> Settled {
    if refund_attempt(deps, &mut attempt, from).await {
        Settled::Refunded
    } else {
        Settled::Failed
    }
}
