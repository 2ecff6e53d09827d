//! Use case: the daily expiry of withdrawn members (`WITHDRAWN` → `END` after 30 days).
//!
//! The job reads only the sparse withdrawn index, shard by shard and page by page (round-robin,
//! so a run cut short has advanced every shard), and ends the due members with up to
//! `concurrency` conditional writes in flight. It is idempotent (an ended or restored member is
//! no longer `WITHDRAWN` with that `withdrawnAt`, so `end_member` answers `Ok(false)`) and
//! resumable (ended members leave the index, so the next run re-queries and finds only the rest).

use crate::domain::member::expiry_cutoff;
use crate::domain::{DomainEvent, EventType, MemberStatus};
use crate::error::{Error, Result};
use crate::store::{DueWithdrawal, WITHDRAWN_SHARDS, WithdrawalExpiryStore};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// How a run pages, how parallel it is and when it must stop.
#[derive(Debug, Clone)]
pub struct ExpiryOptions {
    /// Index entries asked for per page.
    pub page_size: usize,
    /// Ending writes in flight at once.
    pub concurrency: usize,
    /// Stop after the page in progress once this instant has passed (the Lambda deadline minus
    /// a safety margin). At least one page is always processed, so every run makes progress.
    pub stop_by: Option<Instant>,
    /// Stop after this many pages (tests, and a manual brake).
    pub max_pages: Option<u64>,
}

impl Default for ExpiryOptions {
    fn default() -> Self {
        Self {
            page_size: 100,
            concurrency: 8,
            stop_by: None,
            max_pages: None,
        }
    }
}

/// How far a run got in one shard of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardProgress {
    pub shard: u32,
    pub pages: u64,
    /// True when the shard had no more due members.
    pub done: bool,
    /// The `withdrawnAt` of the last due member read from this shard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reached: Option<DateTime<Utc>>,
}

/// What a run did; logged and returned by the scheduled function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirySummary {
    /// Members this run moved to `END`.
    pub expired: u64,
    /// Members found due but already restored or ended by someone else.
    pub skipped: u64,
    /// Members whose write failed (a dependency error); the next run retries them.
    pub failed: u64,
    pub pages: u64,
    /// Index entries read, from the store's own accounting.
    pub items_read: u64,
    /// False when the run stopped early (deadline, page limit or failures).
    pub complete: bool,
    pub cutoff: DateTime<Utc>,
    pub shards: Vec<ShardProgress>,
}

enum Outcome {
    Ended,
    Skipped,
    Failed,
}

struct Tally {
    expired: u64,
    skipped: u64,
    failed: u64,
}

impl Tally {
    fn add(&mut self, joined: std::result::Result<Outcome, tokio::task::JoinError>) {
        match joined {
            Ok(Outcome::Ended) => self.expired += 1,
            Ok(Outcome::Skipped) => self.skipped += 1,
            Ok(Outcome::Failed) => self.failed += 1,
            Err(e) => {
                tracing::error!(error = %e, "an expiry task did not finish");
                self.failed += 1;
            }
        }
    }
}

async fn end_one(
    store: Arc<dyn WithdrawalExpiryStore>,
    due: DueWithdrawal,
    now: DateTime<Utc>,
) -> Outcome {
    let event = DomainEvent::member(
        EventType::MemberExpired,
        &due.member_id,
        MemberStatus::End.as_str(),
        now,
    );
    match store
        .end_member(&due.member_id, due.withdrawn_at, now, &event)
        .await
    {
        Ok(true) => Outcome::Ended,
        Ok(false) => Outcome::Skipped,
        Err(e) => {
            tracing::error!(member_id = %due.member_id, error = %e, "could not end a withdrawn member");
            Outcome::Failed
        }
    }
}

/// Ends every member withdrawn at or before `expiry_cutoff(now)`, within `options`' limits.
/// A failing index query ends the run with that error (after the writes in flight finish);
/// failing writes are counted and left for the next run.
pub async fn run_expiry(
    store: Arc<dyn WithdrawalExpiryStore>,
    now: DateTime<Utc>,
    options: &ExpiryOptions,
) -> Result<ExpirySummary> {
    let cutoff = expiry_cutoff(now);
    let page_size = options.page_size.max(1);
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut tally = Tally {
        expired: 0,
        skipped: 0,
        failed: 0,
    };
    let mut shards: Vec<ShardProgress> = (0..WITHDRAWN_SHARDS)
        .map(|shard| ShardProgress {
            shard,
            pages: 0,
            done: false,
            reached: None,
        })
        .collect();
    let mut cursors: Vec<Option<String>> = vec![None; shards.len()];
    let (mut pages, mut items_read) = (0u64, 0u64);
    let mut query_error: Option<Error> = None;

    'run: loop {
        let mut progressed = false;
        for (progress, cursor) in shards.iter_mut().zip(cursors.iter_mut()) {
            if progress.done {
                continue;
            }
            let page = match store
                .due_withdrawals(progress.shard, cutoff, cursor.as_deref(), page_size)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    query_error = Some(e);
                    break 'run;
                }
            };
            progressed = true;
            pages += 1;
            progress.pages += 1;
            items_read += page.items_read;
            if let Some(last) = page.members.last() {
                progress.reached = Some(last.withdrawn_at);
            }
            for due in page.members {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("expiry semaphore closed".into()))?;
                while let Some(done) = tasks.try_join_next() {
                    tally.add(done);
                }
                let store = store.clone();
                tasks.spawn(async move {
                    let outcome = end_one(store, due, now).await;
                    drop(permit);
                    outcome
                });
            }
            *cursor = page.next_cursor;
            progress.done = cursor.is_none();
            let out_of_pages = options.max_pages.is_some_and(|max| pages >= max);
            let out_of_time = options.stop_by.is_some_and(|by| Instant::now() >= by);
            if out_of_pages || out_of_time {
                break 'run;
            }
        }
        if !progressed {
            break;
        }
    }
    while let Some(done) = tasks.join_next().await {
        tally.add(done);
    }
    if let Some(e) = query_error {
        tracing::error!(error = %e, expired = tally.expired, pages, "expiry stopped: the withdrawn index could not be read");
        return Err(e);
    }
    let summary = ExpirySummary {
        expired: tally.expired,
        skipped: tally.skipped,
        failed: tally.failed,
        pages,
        items_read,
        complete: tally.failed == 0 && shards.iter().all(|s| s.done),
        cutoff,
        shards,
    };
    tracing::info!(
        expired = summary.expired,
        skipped = summary.skipped,
        failed = summary.failed,
        pages = summary.pages,
        items_read = summary.items_read,
        complete = summary.complete,
        "withdrawal expiry run finished"
    );
    Ok(summary)
}
