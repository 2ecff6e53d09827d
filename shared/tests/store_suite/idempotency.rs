//! Idempotency records: start, replay, conflict, takeover, expiry.

use crate::harness::*;
use cafe::store::{IDEMPOTENCY_LEASE, IDEMPOTENCY_RETENTION, IdempotencyBegin, StoredResponse};
use chrono::Duration;

fn answer() -> StoredResponse {
    StoredResponse {
        status: 201,
        body: r#"{"orderId":"o-1"}"#.into(),
    }
}

pub async fn begin_finish_replay_and_conflict(b: Backend) {
    let s = &b.store;
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Started)
    );
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Conflict),
        "the first request is still running"
    );
    assert_eq!(
        s.begin_idempotent("m2", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Started),
        "keys are scoped to the member"
    );
    s.finish_idempotent("m1", "k1", &answer(), t0())
        .await
        .expect("finished");
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
    s.finish_idempotent("m1", "never", &answer(), t0())
        .await
        .expect("no-op");
    assert_eq!(
        s.begin_idempotent("m1", "never", "h1", t0()).await,
        Ok(IdempotencyBegin::Started)
    );
}

pub async fn stale_and_expired_records_are_taken_over(b: Backend) {
    let s = &b.store;
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Started)
    );
    let almost = t0() + IDEMPOTENCY_LEASE - Duration::seconds(1);
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", almost).await,
        Ok(IdempotencyBegin::Conflict)
    );
    let stale = t0() + IDEMPOTENCY_LEASE;
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h2", stale).await,
        Ok(IdempotencyBegin::Started),
        "a request that died does not hold its key forever"
    );
    s.finish_idempotent("m1", "k1", &answer(), stale)
        .await
        .expect("finished");
    let before_expiry = stale + IDEMPOTENCY_RETENTION - Duration::seconds(1);
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h2", before_expiry).await,
        Ok(IdempotencyBegin::Replay(answer()))
    );
    let expired = stale + IDEMPOTENCY_RETENTION;
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h3", expired).await,
        Ok(IdempotencyBegin::Started)
    );
}

pub async fn abandon_forgets_only_in_progress_keys(b: Backend) {
    let s = &b.store;
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Started)
    );
    s.abandon_idempotent("m1", "k1").await.expect("abandoned");
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Started)
    );
    s.finish_idempotent("m1", "k1", &answer(), t0())
        .await
        .expect("finished");
    s.abandon_idempotent("m1", "k1").await.expect("no-op");
    assert_eq!(
        s.begin_idempotent("m1", "k1", "h1", t0()).await,
        Ok(IdempotencyBegin::Replay(answer())),
        "a finished answer survives abandon"
    );
    s.abandon_idempotent("m1", "unknown").await.expect("no-op");
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
            IdempotencyBegin::Started => started += 1,
            IdempotencyBegin::Conflict => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1);
}
