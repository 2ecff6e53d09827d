//! The live channel's rows (`docs/live.md`): tickets redeemed once and only before they expire
//! (even when raced), connections and their subscriptions found by key until they expire (reads
//! filter on the expiry: TTL deletion lags), and forgetting a connection forgets its
//! subscriptions.

use crate::harness::*;
use cafe::domain::Role;
use cafe::domain::live::{Grant, ticket_hash};
use chrono::Duration;

pub async fn tickets_are_redeemed_once_and_only_before_they_expire(b: Backend) {
    let grant = Grant::member("m-1", Role::Staff);
    let expires = t0() + Duration::seconds(30);
    b.store
        .put_live_ticket(&ticket_hash("one"), &grant, expires)
        .await
        .expect("put");
    assert_eq!(
        b.store.redeem_live_ticket(&ticket_hash("one"), t0()).await,
        Ok(Some(grant.clone()))
    );
    assert_eq!(
        b.store.redeem_live_ticket(&ticket_hash("one"), t0()).await,
        Ok(None),
        "a used ticket"
    );
    b.store
        .put_live_ticket(&ticket_hash("late"), &grant, expires)
        .await
        .expect("put");
    assert_eq!(
        b.store
            .redeem_live_ticket(&ticket_hash("late"), expires + Duration::seconds(1))
            .await,
        Ok(None),
        "an expired ticket"
    );
    assert_eq!(
        b.store
            .redeem_live_ticket(&ticket_hash("never"), t0())
            .await,
        Ok(None),
        "an unknown ticket"
    );

    // Raced: exactly one redemption gets it.
    b.store
        .put_live_ticket(&ticket_hash("raced"), &grant, expires)
        .await
        .expect("put");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = b.store.clone();
        tasks.push(tokio::spawn(async move {
            store.redeem_live_ticket(&ticket_hash("raced"), t0()).await
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await.expect("task").expect("redeem").is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

pub async fn subscriptions_are_found_by_key_until_they_expire_and_go_with_their_connection(
    b: Backend,
) {
    let until = t0() + Duration::hours(2);
    let staff = Grant::member("s-1", Role::Staff);
    b.store
        .put_live_connection("c-1", &staff, until)
        .await
        .expect("connection");
    b.store
        .put_live_connection("c-2", &Grant::anonymous(), until)
        .await
        .expect("connection");
    assert_eq!(
        b.store.get_live_connection("c-1", t0()).await,
        Ok(Some(staff))
    );
    assert_eq!(
        b.store.get_live_connection("c-2", t0()).await,
        Ok(Some(Grant::anonymous()))
    );
    for (connection, key) in [("c-1", "STAFF"), ("c-1", "DISPLAY"), ("c-2", "DISPLAY")] {
        b.store
            .add_live_subscription(connection, key, until)
            .await
            .expect("subscribe");
    }
    assert_eq!(
        b.store.live_listeners("DISPLAY", t0()).await,
        Ok(vec!["c-1".to_owned(), "c-2".to_owned()])
    );
    assert_eq!(
        b.store.live_listeners("STAFF", t0()).await,
        Ok(vec!["c-1".to_owned()])
    );
    assert_eq!(b.store.live_listeners("MEMBER#m-9", t0()).await, Ok(vec![]));
    // Past the connection's 2 hours: not read back, whether or not TTL has deleted it.
    let later = until + Duration::seconds(1);
    assert_eq!(b.store.live_listeners("DISPLAY", later).await, Ok(vec![]));
    assert_eq!(b.store.get_live_connection("c-1", later).await, Ok(None));

    b.store.remove_live_connection("c-1").await.expect("remove");
    assert_eq!(
        b.store.live_listeners("DISPLAY", t0()).await,
        Ok(vec!["c-2".to_owned()])
    );
    assert_eq!(b.store.live_listeners("STAFF", t0()).await, Ok(vec![]));
    assert_eq!(b.store.get_live_connection("c-1", t0()).await, Ok(None));
    // Removing it again (a 410 after its `$disconnect`) is harmless.
    b.store.remove_live_connection("c-1").await.expect("again");
    // A subscription needs its connection.
    assert!(
        b.store
            .add_live_subscription("c-1", "STAFF", until)
            .await
            .is_err()
    );
}
