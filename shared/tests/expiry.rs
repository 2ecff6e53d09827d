//! The withdrawal expiry job against the store contract: on the in-memory store and on DynamoDB
//! (moto). The scenarios take an `Arc<dyn Store>` and count ended members through history rows, so
//! both backends run the same assertions; the memory runs also check the MemberExpired events.

use cafe::domain::{DomainEvent, EventType, Gender, Member, MemberStatus};
use cafe::events::MemoryEventLog;
use cafe::services::expiry::{ExpiryOptions, ExpirySummary, run_expiry};
use cafe::store::{MemoryStore, Store, WithdrawalExpiryStore};
use cafe::{Error, testing};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::HashSet;
use std::sync::Arc;

const OLD: usize = 300;
const RECENT: usize = 200;
const NEVER_WITHDRAWN: usize = 9_500;

fn member(at: DateTime<Utc>, n: usize) -> Member {
    let member_id = cafe::ids::new_id(at);
    Member {
        email: format!("m{n}-{}@example.com", member_id.to_lowercase()),
        member_id,
        name: format!("Member {n}"),
        phone_number: "010-1234-5678".into(),
        gender: Gender::Female,
        birth: NaiveDate::from_ymd_opt(1990, 1, 1).expect("valid date"),
        password_hash: "not-a-real-hash".into(),
        status: MemberStatus::Service,
        withdrawn_at: None,
        created_at: at,
    }
}

fn expiry_store(store: &Arc<dyn Store>) -> Arc<dyn WithdrawalExpiryStore> {
    store.clone()
}

/// Creates a member through the store and withdraws it at `withdrawn_at`.
async fn withdrawn_member(store: &Arc<dyn Store>, n: usize, withdrawn_at: DateTime<Utc>) -> String {
    let created_at = withdrawn_at - Duration::days(100);
    let m = member(created_at, n);
    let registered = DomainEvent::member(
        EventType::MemberRegistered,
        &m.member_id,
        "SERVICE",
        created_at,
    );
    store
        .create_member(&m, &registered)
        .await
        .expect("create member");
    let withdrawn = DomainEvent::member(
        EventType::MemberWithdrawn,
        &m.member_id,
        "WITHDRAWN",
        withdrawn_at,
    );
    store
        .withdraw_member(&m.member_id, withdrawn_at, &withdrawn)
        .await
        .expect("withdraw member");
    m.member_id
}

/// Members `n0..n0+count` withdrawn at the times `at(i)`, created 16 at a time.
async fn withdrawn_members(
    store: &Arc<dyn Store>,
    n0: usize,
    count: usize,
    at: impl Fn(usize) -> DateTime<Utc>,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    for chunk_start in (0..count).step_by(16) {
        let mut set = tokio::task::JoinSet::new();
        for i in chunk_start..(chunk_start + 16).min(count) {
            let store = store.clone();
            let when = at(i);
            set.spawn(async move { (i, withdrawn_member(&store, n0 + i, when).await) });
        }
        let mut chunk: Vec<(usize, String)> = set.join_all().await;
        chunk.sort();
        ids.extend(chunk.into_iter().map(|(_, id)| id));
    }
    ids
}

/// Count of END rows in each member's history (must be 0 or 1, never more).
async fn end_rows(store: &Arc<dyn Store>, ids: &[String]) -> Vec<usize> {
    let mut counts = Vec::with_capacity(ids.len());
    for id in ids {
        let history = store.member_history(id).await.expect("history");
        counts.push(history.iter().filter(|h| h.status == "END").count());
    }
    counts
}

async fn status_of(store: &Arc<dyn Store>, id: &str) -> MemberStatus {
    store
        .get_member(id)
        .await
        .expect("get member")
        .expect("member exists")
        .status
}

fn expired_ids(log: &MemoryEventLog) -> Vec<String> {
    log.events()
        .into_iter()
        .filter(|e| e.event_type == EventType::MemberExpired)
        .map(|e| e.detail["memberId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// 300 due, 200 recent (the noise members are seeded by the caller): exactly 300 end, the index
/// reads stay within 500 + one per page, and a rerun ends nobody.
async fn ends_exactly_the_due_members(store: Arc<dyn Store>, log: Option<&MemoryEventLog>) {
    let now = testing::epoch();
    let old = withdrawn_members(&store, 0, OLD, |i| {
        now - Duration::days(31) - Duration::minutes(i as i64 * 7)
    })
    .await;
    let recent = withdrawn_members(&store, OLD, RECENT, |i| {
        now - Duration::days(1 + (i as i64 % 29)) - Duration::minutes(i as i64)
    })
    .await;
    if let Some(log) = log {
        log.take();
    }

    let options = ExpiryOptions {
        page_size: 50,
        ..ExpiryOptions::default()
    };
    let first = run_expiry(expiry_store(&store), now, &options)
        .await
        .expect("run");
    assert_eq!(first.expired, OLD as u64, "{first:?}");
    assert_eq!((first.skipped, first.failed), (0, 0));
    assert!(first.complete);
    assert!(first.shards.iter().all(|s| s.done));
    assert!(
        first.items_read <= (OLD + RECENT) as u64 + first.pages,
        "read {} index items in {} pages",
        first.items_read,
        first.pages
    );
    assert!(first.items_read >= OLD as u64);
    let json = serde_json::to_value(&first).expect("summary json");
    assert_eq!(json["itemsRead"], first.items_read);
    assert_eq!(json["expired"], OLD as u64);

    for id in &old {
        assert_eq!(status_of(&store, id).await, MemberStatus::End);
    }
    for id in &recent {
        assert_eq!(status_of(&store, id).await, MemberStatus::Withdrawn);
    }
    assert!(end_rows(&store, &old).await.iter().all(|&n| n == 1));
    assert!(end_rows(&store, &recent).await.iter().all(|&n| n == 0));
    if let Some(log) = log {
        let ended: HashSet<String> = expired_ids(log).into_iter().collect();
        assert_eq!(ended, old.iter().cloned().collect::<HashSet<_>>());
        assert_eq!(log.events().len(), OLD);
        assert!(log.events().iter().all(|e| e.detail["status"] == "END"));
    }

    let rerun = run_expiry(expiry_store(&store), now, &options)
        .await
        .expect("rerun");
    assert_eq!((rerun.expired, rerun.skipped), (0, 0), "{rerun:?}");
    assert!(rerun.complete);
    assert!(rerun.items_read <= rerun.pages, "{rerun:?}");
    assert!(end_rows(&store, &old).await.iter().all(|&n| n == 1));
    if let Some(log) = log {
        assert_eq!(log.events().len(), OLD);
    }
}

/// Restores race the job, member by member: each member ends up restored or ended, never both.
async fn restore_races_the_job(store: Arc<dyn Store>, rounds: usize, per_round: usize) {
    let base = testing::epoch();
    let (mut job_wins, mut restore_wins) = (0, 0);
    for round in 0..rounds {
        let withdrawn_at = base + Duration::days(round as i64 * 40);
        let ids = withdrawn_members(&store, 100_000 + round * per_round, per_round, |_| {
            withdrawn_at
        })
        .await;
        // The restore happens on day 29 by its clock, the job on day 31 by its own: both are
        // allowed by the rules, and only the conditional writes decide who wins.
        let restore_at = withdrawn_at + Duration::days(29);
        let job_now = withdrawn_at + Duration::days(31);
        // Both sides start together from opposite ends: the job goes oldest first (then by id),
        // the restores by descending id, so they meet and contend somewhere in the middle.
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let mut by_id_desc = ids.clone();
        by_id_desc.sort_unstable_by(|a, b| b.cmp(a));
        let restorer = {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut restores = tokio::task::JoinSet::new();
                for id in by_id_desc {
                    let store = store.clone();
                    restores.spawn(async move {
                        let event = DomainEvent::member(
                            EventType::MemberRestored,
                            &id,
                            "SERVICE",
                            restore_at,
                        );
                        let outcome = store.restore_member(&id, restore_at, &event).await;
                        (id, outcome.map(|_| ()))
                    });
                    tokio::task::yield_now().await;
                }
                restores.join_all().await
            })
        };
        let options = ExpiryOptions {
            page_size: 7,
            concurrency: 4,
            ..ExpiryOptions::default()
        };
        start.wait().await;
        let summary = run_expiry(expiry_store(&store), job_now, &options)
            .await
            .expect("run");
        let outcomes = restorer.await.expect("restorer");
        let mut restored = HashSet::new();
        for (id, outcome) in outcomes {
            match outcome {
                Ok(()) => {
                    restored.insert(id);
                }
                Err(Error::NotRestorable) => {}
                Err(other) => panic!("restore failed unexpectedly: {other:?}"),
            }
        }
        assert_eq!(
            summary.expired as usize + restored.len(),
            per_round,
            "{summary:?}"
        );
        job_wins += summary.expired;
        restore_wins += restored.len();
        assert!(summary.complete);
        for id in &ids {
            let status = status_of(&store, id).await;
            let history: Vec<String> = store
                .member_history(id)
                .await
                .expect("history")
                .into_iter()
                .map(|h| h.status)
                .collect();
            if restored.contains(id) {
                assert_eq!(status, MemberStatus::Service, "restore won for {id}");
                assert_eq!(history, ["SERVICE", "WITHDRAWN", "SERVICE"]);
            } else {
                assert_eq!(status, MemberStatus::End, "job won for {id}");
                assert_eq!(history, ["SERVICE", "WITHDRAWN", "END"]);
            }
        }
    }
    // Over all rounds each side must have won somewhere, or nothing was raced.
    assert!(
        job_wins > 0 && restore_wins > 0,
        "job {job_wins}, restore {restore_wins}"
    );
}

/// A run stopped by its page limit, one stopped by a deadline already passed, then a full run:
/// every due member ends exactly once.
async fn cut_off_then_rerun(store: Arc<dyn Store>, log: Option<&MemoryEventLog>) {
    let now = testing::epoch();
    let due = withdrawn_members(&store, 200_000, 120, |i| {
        now - Duration::days(30) - Duration::seconds(i as i64 * 13)
    })
    .await;
    if let Some(log) = log {
        log.take();
    }
    let limited = ExpiryOptions {
        page_size: 10,
        max_pages: Some(3),
        ..ExpiryOptions::default()
    };
    let first = run_expiry(expiry_store(&store), now, &limited)
        .await
        .expect("first");
    assert!(!first.complete, "{first:?}");
    assert_eq!(first.pages, 3);
    assert!(first.expired > 0 && first.expired <= 30, "{first:?}");
    assert!(first.shards.iter().filter(|s| s.pages == 1).count() == 3);

    let hurried = ExpiryOptions {
        page_size: 10,
        stop_by: Some(std::time::Instant::now()),
        ..ExpiryOptions::default()
    };
    let second = run_expiry(expiry_store(&store), now, &hurried)
        .await
        .expect("second");
    assert!(!second.complete, "{second:?}");
    assert_eq!(second.pages, 1);
    assert!(second.expired > 0 && second.expired <= 10, "{second:?}");

    let last = run_expiry(expiry_store(&store), now, &ExpiryOptions::default())
        .await
        .expect("last");
    assert!(last.complete);
    assert_eq!(
        first.expired + second.expired + last.expired,
        due.len() as u64
    );
    assert_eq!(first.skipped + second.skipped + last.skipped, 0);
    assert!(end_rows(&store, &due).await.iter().all(|&n| n == 1));
    if let Some(log) = log {
        let ids = expired_ids(log);
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), due.len());
        assert_eq!(distinct.len(), due.len());
    }
}

fn memory() -> (Arc<dyn Store>, Arc<MemoryEventLog>) {
    let log = Arc::new(MemoryEventLog::new());
    (Arc::new(MemoryStore::with_event_log(log.clone())), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_ends_exactly_the_due_members_among_ten_thousand() {
    let (store, log) = memory();
    let at = testing::epoch() - Duration::days(400);
    for n in 0..NEVER_WITHDRAWN {
        let m = member(at, 1_000_000 + n);
        let event = DomainEvent::member(EventType::MemberRegistered, &m.member_id, "SERVICE", at);
        store.create_member(&m, &event).await.expect("seed");
    }
    ends_exactly_the_due_members(store, Some(&log)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_restore_racing_the_job_wins_or_loses_never_both() {
    let (store, _log) = memory();
    restore_races_the_job(store, 20, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_run_cut_off_then_rerun_ends_each_member_once() {
    let (store, log) = memory();
    cut_off_then_rerun(store, Some(&log)).await;
}

#[tokio::test]
async fn nothing_due_reads_nothing_and_is_complete() {
    let (store, _log) = memory();
    let summary: ExpirySummary = run_expiry(
        expiry_store(&store),
        testing::epoch(),
        &ExpiryOptions::default(),
    )
    .await
    .expect("run");
    assert_eq!((summary.expired, summary.items_read), (0, 0));
    assert!(summary.complete);
    assert_eq!(summary.pages, u64::from(cafe::store::WITHDRAWN_SHARDS));
}
