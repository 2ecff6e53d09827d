//! Scenario 5: expiry scaling. A table of N members where 1% are withdrawn more than 30 days ago
//! (due) and another 1% withdrawn yesterday (not due); one run of the expiry job: its time, the
//! index entries it read and the members it ended. Reading only the sparse withdrawn index keeps
//! items read ÷ members ended near 1 whatever N is.

use crate::fixture::{self, BoxError, Services};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use cafe::domain::{DomainEvent, EventType, MemberStatus, StoredPassword};
use cafe::services::expiry::{ExpiryOptions, ExpirySummary, run_expiry};
use cafe::store::dynamo::DynamoStore;
use cafe::store::{MemberStore, MemoryStore, WithdrawalExpiryStore};
use chrono::{DateTime, Duration as Days, Utc};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const HASH: &str = "not-a-password-hash";
/// A BatchWriteItem carries at most 25 puts; unprocessed ones are sent again this often.
const BATCH: usize = 25;
const BATCH_ROUNDS: usize = 10;

struct Row {
    backend: &'static str,
    members: usize,
    due: usize,
    not_due: usize,
    seconds: f64,
    summary: ExpirySummary,
}

fn event(member_id: &str, status: MemberStatus, at: DateTime<Utc>) -> DomainEvent {
    DomainEvent::member(EventType::MemberRegistered, member_id, status.as_str(), at)
}

/// Signs up and withdraws one member at `withdrawn_at` through the store.
async fn withdrawn(
    store: &dyn MemberStore,
    created: DateTime<Utc>,
    withdrawn_at: DateTime<Utc>,
) -> Result<(), BoxError> {
    let member = fixture::new_member(created);
    store
        .create_member(
            &member,
            &StoredPassword::new(HASH),
            &event(&member.member_id, MemberStatus::Service, created),
        )
        .await?;
    store
        .withdraw_member(
            &member.member_id,
            withdrawn_at,
            &event(&member.member_id, MemberStatus::Withdrawn, withdrawn_at),
        )
        .await?;
    Ok(())
}

/// The withdrawn members of a table of `members`: 1% due, 1% not due (withdrawn yesterday).
fn withdrawal_times(members: usize, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let one_percent = (members / 100).max(1);
    let mut times = Vec::with_capacity(one_percent * 2);
    for i in 0..one_percent {
        times.push(now - Days::days(31) - Days::seconds(i as i64));
        times.push(now - Days::days(1) - Days::seconds(i as i64));
    }
    times
}

async fn timed_run(
    store: Arc<dyn WithdrawalExpiryStore>,
    now: DateTime<Utc>,
) -> Result<(f64, ExpirySummary), BoxError> {
    let started = Instant::now();
    let summary = run_expiry(store, now, &ExpiryOptions::default()).await?;
    Ok((started.elapsed().as_secs_f64(), summary))
}

async fn memory(members: usize) -> Result<Row, BoxError> {
    let store = Arc::new(MemoryStore::new());
    let now = Utc::now();
    let created = now - Days::days(90);
    let times = withdrawal_times(members, now);
    for _ in times.len()..members {
        let member = fixture::new_member(created);
        store
            .create_member(
                &member,
                &StoredPassword::new(HASH),
                &event(&member.member_id, MemberStatus::Service, created),
            )
            .await?;
    }
    for at in &times {
        withdrawn(store.as_ref(), created, *at).await?;
    }
    let (seconds, summary) = timed_run(store, now).await?;
    Ok(Row {
        backend: "embedded",
        members,
        due: times.len() / 2,
        not_due: times.len() / 2,
        seconds,
        summary,
    })
}

/// Never-withdrawn profiles written raw, 25 per BatchWriteItem (they only have to be there).
async fn seed_raw(
    store: &DynamoStore,
    count: usize,
    created: DateTime<Utc>,
) -> Result<(), BoxError> {
    let permits = Arc::new(Semaphore::new(8));
    let mut tasks = JoinSet::new();
    let mut left = count;
    while left > 0 {
        let size = left.min(BATCH);
        left -= size;
        let mut writes = Vec::with_capacity(size);
        for _ in 0..size {
            let member = fixture::new_member(created);
            let mut item: fixture::Attrs = serde_dynamo::aws_sdk_dynamodb_1::to_item(&member)?;
            item.insert(
                "pk".into(),
                aws_sdk_dynamodb::types::AttributeValue::S(format!("MEMBER#{}", member.member_id)),
            );
            item.insert(
                "sk".into(),
                aws_sdk_dynamodb::types::AttributeValue::S("PROFILE".into()),
            );
            writes.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                    .build(),
            );
        }
        let (client, table, permits) = (
            store.client().clone(),
            store.table_name().to_owned(),
            permits.clone(),
        );
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let mut pending = writes;
            for _ in 0..BATCH_ROUNDS {
                let out = client
                    .batch_write_item()
                    .request_items(&table, pending)
                    .send()
                    .await?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&table))
                    .unwrap_or_default();
                if pending.is_empty() {
                    return Ok::<_, BoxError>(());
                }
            }
            Err("BatchWriteItem kept items unprocessed".into())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// Reads from one table, writes to another: the expiry run on moto reads the sparse index of the
/// full-size table, and ends the due members in a small copy of them, because moto's
/// TransactWriteItems deep-copies the whole table per item (about 10 s per ending at 10,000
/// members here), which would measure moto's rollback, not the job.
struct Split {
    reads: DynamoStore,
    writes: DynamoStore,
}

#[async_trait::async_trait]
impl WithdrawalExpiryStore for Split {
    async fn due_withdrawals(
        &self,
        shard: u32,
        cutoff: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> cafe::Result<cafe::store::DuePage> {
        self.reads
            .due_withdrawals(shard, cutoff, cursor, limit)
            .await
    }

    async fn end_member(
        &self,
        member_id: &str,
        withdrawn_at: DateTime<Utc>,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> cafe::Result<bool> {
        self.writes
            .end_member(member_id, withdrawn_at, at, event)
            .await
    }
}

/// Signs up and withdraws the same member in both tables (one at a time: moto's transactions are
/// not safe to run concurrently).
async fn withdrawn_in_both(
    split: &Split,
    created: DateTime<Utc>,
    withdrawn_at: DateTime<Utc>,
) -> Result<(), BoxError> {
    let member = fixture::new_member(created);
    for store in [&split.reads, &split.writes] {
        let created_event = event(&member.member_id, MemberStatus::Service, created);
        let withdrawn_event = event(&member.member_id, MemberStatus::Withdrawn, withdrawn_at);
        let outcome = match store
            .create_member(&member, &StoredPassword::new(HASH), &created_event)
            .await
        {
            Ok(()) => {
                store
                    .withdraw_member(&member.member_id, withdrawn_at, &withdrawn_event)
                    .await
            }
            Err(error) => Err(error),
        };
        // A transaction moto was too slow to confirm may have been applied and then retried by
        // the SDK (the retry's condition fails): what counts is the stored state.
        if let Err(error) = outcome {
            let stored = store.get_member(&member.member_id).await?;
            if stored.is_none_or(|m| m.withdrawn_at != Some(withdrawn_at)) {
                return Err(error.into());
            }
        }
    }
    Ok(())
}

async fn moto(services: &Services, members: usize) -> Result<Row, BoxError> {
    let split = Split {
        reads: fixture::fresh_table(services, Duration::from_secs(20)).await?,
        writes: fixture::fresh_table(services, Duration::from_secs(20)).await?,
    };
    let now = Utc::now();
    let created = now - Days::days(90);
    let times = withdrawal_times(members, now);
    for at in &times {
        withdrawn_in_both(&split, created, *at).await?;
    }
    seed_raw(&split.reads, members - times.len(), created).await?;
    let started = Instant::now();
    // One ending at a time: concurrent TransactWriteItems make moto fail with
    // "dictionary changed size during iteration" (HTTP 500).
    let options = ExpiryOptions {
        concurrency: 1,
        ..ExpiryOptions::default()
    };
    let summary = run_expiry(Arc::new(split), now, &options).await?;
    Ok(Row {
        backend: "moto (see note)",
        members,
        due: times.len() / 2,
        not_due: times.len() / 2,
        seconds: started.elapsed().as_secs_f64(),
        summary,
    })
}

pub async fn run(
    services: Option<&Services>,
    quick: bool,
    report: &mut String,
) -> Result<(), BoxError> {
    let scale = |n: usize| if quick { n / 10 } else { n };
    let mut rows = Vec::new();
    for members in [scale(10_000), scale(100_000)] {
        eprintln!("expiry: embedded {members}");
        rows.push(memory(members).await?);
    }
    if let Some(services) = services {
        eprintln!("expiry: moto {}", scale(10_000));
        rows.push(moto(services, scale(10_000)).await?);
    }
    let options = ExpiryOptions::default();
    let _ = writeln!(
        report,
        "## 5. Expiry scaling\n\nN members, 1% withdrawn 31 days ago (due) and 1% withdrawn \
         yesterday (not due); one run of `cafe::services::expiry::run_expiry` (pages of {}, {} \
         ending writes in flight). Items read is the store's own count (DynamoDB's \
         `ScannedCount`, summed as `ExpirySummary.itemsRead`). On moto the never-withdrawn \
         members are written raw with BatchWriteItem; the withdrawn ones go through the store \
         (sign-up and withdrawal transactions), so they are in the sparse index exactly as in \
         production. On moto the run reads the index of the full table but ends the due \
         members in a second, small table holding only them, one at a time: moto's \
         TransactWriteItems deep-copies the whole table once per item of the transaction (its \
         rollback), about 10 s per ending at 10,000 members on this machine, and concurrent \
         transactions crash it (HTTP 500, `dictionary changed size during iteration`).\n",
        options.page_size, options.concurrency
    );
    let _ = writeln!(
        report,
        "| backend | members | due | withdrawn, not due | time (ms) | pages | items read | ended | items read ÷ ended | complete |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|"
    );
    for row in &rows {
        let s = &row.summary;
        let _ = writeln!(
            report,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {:.2} | {} |",
            row.backend,
            row.members,
            row.due,
            row.not_due,
            row.seconds * 1e3,
            s.pages,
            s.items_read,
            s.expired,
            s.items_read as f64 / (s.expired.max(1)) as f64,
            if s.complete && s.expired as usize == row.due {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    let _ = writeln!(report);
    Ok(())
}
