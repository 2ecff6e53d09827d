//! Idempotency records: start, replay, conflict, takeover, expiry; owned by the request that
//! started them; held by a linked payment attempt until it settles.

use crate::harness::*;
use cafe::domain::PaymentType;
use cafe::domain::attempt::{AttemptKind, AttemptPart, AttemptState, PaymentAttempt};
use cafe::store::{
    IDEMPOTENCY_LEASE, IDEMPOTENCY_RETENTION, IdempotencyBegin, IdempotencyOwner, Store,
    StoredResponse,
};
use chrono::{DateTime, Duration, Utc};

fn answer() -> StoredResponse {
    StoredResponse {
        status: 201,
        body: r#"{"orderId":"o-1"}"#.into(),
    }
}

/// Starts `key` for `member` and returns its owner; panics on anything but a start.
async fn start(
    s: &dyn Store,
    member: &str,
    key: &str,
    hash: &str,
    at: DateTime<Utc>,
) -> IdempotencyOwner {
    match s.begin_idempotent(member, key, hash, at).await {
        Ok(IdempotencyBegin::Started(token)) => IdempotencyOwner {
            member_id: member.into(),
            key: key.into(),
            token,
        },
        other => panic!("expected a start of {member}/{key}, got {other:?}"),
    }
}

fn attempt(member: &str, key: &str) -> PaymentAttempt {
    PaymentAttempt {
        attempt_id: cafe::ids::new_id(t0()),
        kind: AttemptKind::Payment,
        order_id: cafe::ids::new_id(t0()),
        member_id: member.into(),
        parts: vec![AttemptPart {
            payment_type: PaymentType::Card,
            amount: 1_500,
            pg_transaction_id: None,
            payment_id: None,
            refunded: false,
        }],
        state: AttemptState::Charging,
        deadline: t0() + Duration::seconds(45),
        committed_at: None,
        commit_sequence: None,
        idempotency_key: Some(key.into()),
        created_at: t0(),
        floor: None,
    }
}

pub async fn begin_finish_replay_and_conflict(b: Backend) {
    let s = b.store.as_ref();
    let owner = start(s, "m1", "k1", "h1", t0()).await;
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Conflict),
        "the first request is still running"
    );
    start(s, "m2", "k1", "h1", t0()).await; // keys are scoped to the member
    assert_eq!(s.finish_idempotent(&owner, &answer(), t0()).await, Ok(true));
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0() + Duration::hours(1))
            .await,
        Ok(IdempotencyBegin::Replay(answer()))
    );
    assert_eq!(
        s.begin_idempotent("m1", "k1", "other body", t0()).await,
        Ok(IdempotencyBegin::Conflict)
    );
    // Finishing an unknown key is a no-op and creates nothing.
    let stranger = IdempotencyOwner {
        member_id: "m1".into(),
        key: "never".into(),
        token: "not-a-token".into(),
    };
    assert_eq!(
        s.finish_idempotent(&stranger, &answer(), t0()).await,
        Ok(false)
    );
    start(s, "m1", "never", "h1", t0()).await;
}

pub async fn stale_and_expired_records_are_taken_over(b: Backend) {
    let s = b.store.as_ref();
    start(s, "m1", "k1", "h1", t0()).await;
    let almost = t0() + IDEMPOTENCY_LEASE - Duration::seconds(1);
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", almost).await,
        Ok(IdempotencyBegin::Conflict)
    );
    let stale = t0() + IDEMPOTENCY_LEASE;
    // A request that died does not hold its key forever.
    let second = start(s, "m1", "k1", "h2", stale).await;
    assert_eq!(
        s.finish_idempotent(&second, &answer(), stale).await,
        Ok(true)
    );
    let before_expiry = stale + IDEMPOTENCY_RETENTION - Duration::seconds(1);
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h2", before_expiry).await,
        Ok(IdempotencyBegin::Replay(answer()))
    );
    let expired = stale + IDEMPOTENCY_RETENTION;
    start(s, "m1", "k1", "h3", expired).await;
}

/// The first request's late finish or abandon, after its record was taken over, must not touch
/// the second request's record.
pub async fn a_taken_over_record_belongs_to_its_new_owner(b: Backend) {
    let s = b.store.as_ref();
    let first = start(s, "m1", "k1", "h1", t0()).await;
    let second = start(s, "m1", "k1", "h1", t0() + IDEMPOTENCY_LEASE).await;
    assert_ne!(first.token, second.token);
    let late = StoredResponse {
        status: 400,
        body: "late".into(),
    };
    assert_eq!(s.finish_idempotent(&first, &late, t0()).await, Ok(false));
    assert_eq!(s.abandon_idempotent(&first).await, Ok(false));
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0() + IDEMPOTENCY_LEASE)
            .await,
        Ok(IdempotencyBegin::Conflict),
        "still the second request's, in progress"
    );
    assert_eq!(
        s.finish_idempotent(&second, &answer(), t0()).await,
        Ok(true)
    );
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0() + IDEMPOTENCY_LEASE)
            .await,
        Ok(IdempotencyBegin::Replay(answer()))
    );
}

pub async fn abandon_forgets_only_in_progress_keys(b: Backend) {
    let s = b.store.as_ref();
    let owner = start(s, "m1", "k1", "h1", t0()).await;
    assert_eq!(s.abandon_idempotent(&owner).await, Ok(true));
    let owner = start(s, "m1", "k1", "h1", t0()).await;
    assert_eq!(s.finish_idempotent(&owner, &answer(), t0()).await, Ok(true));
    assert_eq!(s.abandon_idempotent(&owner).await, Ok(false));
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Replay(answer())),
        "a finished answer survives abandon"
    );
    let unknown = IdempotencyOwner {
        member_id: "m1".into(),
        key: "unknown".into(),
        token: owner.token.clone(),
    };
    assert_eq!(s.abandon_idempotent(&unknown).await, Ok(false));
}

/// Once an attempt is linked, the key waits for it: no abandon, no takeover however stale; a
/// refunded attempt releases it.
pub async fn a_linked_attempt_holds_its_key_until_it_settles(b: Backend) {
    let s = b.store.as_ref();
    let owner = start(s, "m1", "k1", "h1", t0()).await;
    let mut linked = attempt("m1", "k1");
    s.start_attempt(&linked, Some(&owner))
        .await
        .expect("linked");
    assert_eq!(
        s.get_attempt(&linked.attempt_id).await.expect("read"),
        Some(linked.clone())
    );
    assert_eq!(s.abandon_idempotent(&owner).await, Ok(false));
    let much_later = t0() + IDEMPOTENCY_LEASE * 10;
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", much_later).await,
        Ok(IdempotencyBegin::Pending)
    );
    assert_eq!(
        s.begin_idempotent("m1", "k1", "other body", much_later)
            .await,
        Ok(IdempotencyBegin::Conflict)
    );
    // A second attempt cannot link the same record.
    assert_eq!(
        s.start_attempt(&attempt("m1", "k1"), Some(&owner)).await,
        Err(cafe::Error::IdempotencyConflict)
    );

    linked.state = AttemptState::Refunding;
    assert_eq!(
        s.update_attempt(&linked, AttemptState::Charging).await,
        Ok(true)
    );
    assert_eq!(
        s.update_attempt(&linked, AttemptState::Charging).await,
        Ok(false),
        "no longer CHARGING"
    );
    assert_eq!(s.settle_refunded(&linked).await, Ok(true));
    assert_eq!(s.settle_refunded(&linked).await, Ok(false), "settled once");
    let settled = s.get_attempt(&linked.attempt_id).await.expect("read");
    assert_eq!(settled.map(|a| a.state), Some(AttemptState::Refunded));
    start(s, "m1", "k1", "h1", t0()).await; // released: the retry runs anew
}

/// The due index holds unsettled attempts past their deadline, oldest first, and nothing else.
pub async fn due_attempts_are_the_unsettled_ones_past_their_deadline(b: Backend) {
    let s = b.store.as_ref();
    let mut made = Vec::new();
    for i in 0..12i64 {
        let mut a = attempt("m1", "unused");
        a.idempotency_key = None;
        a.deadline = t0() + Duration::seconds(i);
        s.start_attempt(&a, None).await.expect("attempt");
        made.push(a);
    }
    // Settled ones leave the index.
    let mut done = made[3].clone();
    done.state = AttemptState::Completed;
    assert_eq!(
        s.update_attempt(&done, AttemptState::Charging).await,
        Ok(true)
    );
    let now = t0() + Duration::seconds(9);
    let mut found = Vec::new();
    for shard in 0..cafe::store::ATTEMPT_SHARDS {
        let mut cursor = None;
        loop {
            let page = s
                .due_attempts(shard, now, cursor.as_deref(), 2)
                .await
                .expect("page");
            for id in &page.attempt_ids {
                assert_eq!(cafe::store::attempt_shard(id), shard);
            }
            found.extend(page.attempt_ids);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let mut expected: Vec<String> = made[..10]
        .iter()
        .filter(|a| a.attempt_id != done.attempt_id)
        .map(|a| a.attempt_id.clone())
        .collect();
    expected.sort();
    found.sort();
    assert_eq!(found, expected);
    assert!(
        s.due_attempts(0, now, Some("not a cursor"), 2)
            .await
            .is_err(),
        "a forged cursor is refused"
    );
}

pub async fn concurrent_begins_start_exactly_once(b: Backend) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = b.store.clone();
        tasks.push(tokio::spawn(async move {
            store.begin_idempotent("m1", "race", "h1", t0()).await
        }));
    }
    let mut started = 0;
    for task in tasks {
        match task.await.expect("joined").expect("answered") {
            IdempotencyBegin::Started(_) => started += 1,
            IdempotencyBegin::Conflict => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1);
}
