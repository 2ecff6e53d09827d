//! Refresh token rotation and reuse detection.

use crate::harness::*;
use cafe::Error;
use cafe::auth::refresh::{hash_refresh_token, new_refresh_token};
use cafe::store::{RefreshTokenRecord, RotationMark};
use chrono::Duration;

fn first_token(member_id: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: hash_refresh_token(&new_refresh_token()),
        member_id: member_id.into(),
        family_id: id(t0()),
        issued_at: t0(),
        expires_at: t0() + DAY * 14,
        session_version: 0,
    }
}

fn fresh_hash() -> String {
    hash_refresh_token(&new_refresh_token())
}

pub async fn rotation_issues_a_successor_in_the_same_family(b: Backend) {
    let first = first_token("member-1");
    b.store.store_refresh_token(&first).await.expect("stored");
    let now = t0() + Duration::minutes(5);
    let second_hash = fresh_hash();
    let second = b
        .store
        .rotate_refresh_token(&first.token_hash, &second_hash, now, now + DAY * 14)
        .await
        .expect("rotated");
    assert_eq!(
        second,
        RefreshTokenRecord {
            token_hash: second_hash.clone(),
            member_id: "member-1".into(),
            family_id: first.family_id.clone(),
            issued_at: now,
            expires_at: now + DAY * 14,
            session_version: 0,
        }
    );
    let third = b
        .store
        .rotate_refresh_token(&second_hash, &fresh_hash(), now, now + DAY * 14)
        .await
        .expect("the successor rotates too");
    assert_eq!(third.family_id, first.family_id);
}

pub async fn reusing_a_used_token_revokes_the_family(b: Backend) {
    let first = first_token("member-1");
    b.store.store_refresh_token(&first).await.expect("stored");
    let now = t0() + Duration::minutes(5);
    let second = b
        .store
        .rotate_refresh_token(&first.token_hash, &fresh_hash(), now, now + DAY * 14)
        .await
        .expect("rotated");
    assert_eq!(
        b.store
            .rotate_refresh_token(&first.token_hash, &fresh_hash(), now, now + DAY * 14)
            .await,
        Err(Error::Unauthorized),
        "a used token is refused"
    );
    assert_eq!(
        b.store
            .rotate_refresh_token(&second.token_hash, &fresh_hash(), now, now + DAY * 14)
            .await,
        Err(Error::Unauthorized),
        "reuse revoked the whole family, including the unused successor"
    );
    let other = first_token("member-1");
    b.store.store_refresh_token(&other).await.expect("stored");
    b.store
        .rotate_refresh_token(&other.token_hash, &fresh_hash(), now, now + DAY * 14)
        .await
        .expect("another family is untouched");
}

pub async fn expired_and_unknown_tokens_are_refused(b: Backend) {
    let first = first_token("member-1");
    b.store.store_refresh_token(&first).await.expect("stored");
    assert_eq!(
        b.store
            .rotate_refresh_token(
                &first.token_hash,
                &fresh_hash(),
                first.expires_at,
                first.expires_at + DAY
            )
            .await,
        Err(Error::Unauthorized)
    );
    assert_eq!(
        b.store
            .rotate_refresh_token(&fresh_hash(), &fresh_hash(), t0(), t0() + DAY)
            .await,
        Err(Error::Unauthorized)
    );
    // An expired token is refused without burning it: the family is not revoked.
    let now = first.expires_at - Duration::seconds(1);
    b.store
        .rotate_refresh_token(&first.token_hash, &fresh_hash(), now, now + DAY)
        .await
        .expect("still valid a second before expiry");
}

pub async fn concurrent_rotations_let_exactly_one_through(b: Backend) {
    let first = first_token("member-1");
    b.store.store_refresh_token(&first).await.expect("stored");
    let now = t0() + Duration::minutes(5);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = b.store.clone();
        let presented = first.token_hash.clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate_refresh_token(&presented, &fresh_hash(), now, now + DAY * 14)
                .await
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("joined") {
            Ok(record) => winners.push(record),
            Err(e) => assert_eq!(e, Error::Unauthorized),
        }
    }
    assert_eq!(winners.len(), 1, "one rotation wins");
    assert_eq!(
        b.store
            .rotate_refresh_token(&winners[0].token_hash, &fresh_hash(), now, now + DAY * 14)
            .await,
        Err(Error::Unauthorized),
        "the losers presented a used token: the family is revoked"
    );
}

fn grace(seconds: i64) -> RotationMark {
    RotationMark {
        signing_kid: "kid-1".into(),
        grace: Duration::seconds(seconds),
    }
}

pub async fn a_repeat_within_the_grace_replays_the_rotation_and_later_revokes(b: Backend) {
    let first = first_token("member-1");
    b.store.store_refresh_token(&first).await.expect("stored");
    let now = t0() + Duration::minutes(5);
    let successor = fresh_hash();
    let rotated = b
        .store
        .rotate_refresh_token_marked(&first.token_hash, &successor, now, now + DAY, &grace(10))
        .await
        .expect("rotated");
    assert!(!rotated.replayed);
    assert_eq!(rotated.rotated_at, now);
    let later = now + Duration::seconds(10);
    let replay = b
        .store
        .rotate_refresh_token_marked(
            &first.token_hash,
            &successor,
            later,
            later + DAY,
            &grace(10),
        )
        .await
        .expect("replayed within the window");
    assert!(replay.replayed);
    assert_eq!(replay.rotated_at, now, "the first rotation's time");
    assert_eq!(replay.signing_kid, "kid-1");
    assert_eq!(replay.successor.token_hash, successor);
    assert_eq!(replay.successor.family_id, first.family_id);
    // Asking for another successor is not a repeat: reuse, the family dies.
    let other = b
        .store
        .rotate_refresh_token_marked(
            &first.token_hash,
            &fresh_hash(),
            later,
            later + DAY,
            &grace(10),
        )
        .await;
    assert_eq!(other, Err(Error::Unauthorized));
    assert_eq!(
        b.store
            .rotate_refresh_token(&successor, &fresh_hash(), later, later + DAY)
            .await,
        Err(Error::Unauthorized),
        "revoked with its family"
    );
    // After the window a repeat revokes too.
    let second = first_token("member-1");
    b.store.store_refresh_token(&second).await.expect("stored");
    let next = fresh_hash();
    b.store
        .rotate_refresh_token_marked(&second.token_hash, &next, now, now + DAY, &grace(10))
        .await
        .expect("rotated");
    let late = now + Duration::seconds(11);
    assert_eq!(
        b.store
            .rotate_refresh_token_marked(&second.token_hash, &next, late, late + DAY, &grace(10))
            .await,
        Err(Error::Unauthorized)
    );
    assert_eq!(
        b.store
            .rotate_refresh_token(&next, &fresh_hash(), late, late + DAY)
            .await,
        Err(Error::Unauthorized),
        "a late repeat revoked the family"
    );
}

pub async fn concurrent_repeats_of_one_rotation_all_get_it(b: Backend) {
    let first = first_token("member-1");
    b.store.store_refresh_token(&first).await.expect("stored");
    let now = t0() + Duration::minutes(5);
    // The successor is derived from the presented token, so every racer names the same one.
    let successor = fresh_hash();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = b.store.clone();
        let presented = first.token_hash.clone();
        let successor = successor.clone();
        tasks.push(tokio::spawn(async move {
            store
                .rotate_refresh_token_marked(&presented, &successor, now, now + DAY, &grace(10))
                .await
        }));
    }
    let mut firsts = 0;
    for task in tasks {
        let rotation = task.await.expect("joined").expect("every racer succeeds");
        assert_eq!(rotation.rotated_at, now);
        assert_eq!(rotation.successor.token_hash, successor);
        assert_eq!(rotation.signing_kid, "kid-1");
        if !rotation.replayed {
            firsts += 1;
        }
    }
    assert_eq!(firsts, 1, "exactly one rotation happened");
    b.store
        .rotate_refresh_token(&successor, &fresh_hash(), now, now + DAY)
        .await
        .expect("the family lives: its successor rotates");
}

/// Log-out: the presented token's family is revoked, used or not, whichever token of it is
/// presented; other families of the member stand; an unknown token names nobody.
pub async fn logging_out_revokes_the_whole_family_and_only_it(b: Backend) {
    let first = first_token("member-1");
    let other = first_token("member-1");
    b.store.store_refresh_token(&first).await.expect("stored");
    b.store.store_refresh_token(&other).await.expect("stored");
    let now = t0() + Duration::minutes(5);
    let successor = fresh_hash();
    b.store
        .rotate_refresh_token(&first.token_hash, &successor, now, now + DAY * 14)
        .await
        .expect("rotated");
    // The used first token logs its family out: the successor is revoked with it.
    assert_eq!(
        b.store
            .revoke_refresh_family(&first.token_hash, now)
            .await
            .expect("logged out"),
        Some("member-1".to_owned())
    );
    assert_eq!(
        b.store
            .rotate_refresh_token(&successor, &fresh_hash(), now, now + DAY * 14)
            .await,
        Err(Error::Unauthorized),
        "the family's live token is revoked"
    );
    // Again: the same answer, nothing else changes.
    assert_eq!(
        b.store
            .revoke_refresh_family(&successor, now)
            .await
            .expect("logged out again"),
        Some("member-1".to_owned())
    );
    let rotated = b
        .store
        .rotate_refresh_token(&other.token_hash, &fresh_hash(), now, now + DAY * 14)
        .await
        .expect("another family of the member still refreshes");
    assert_eq!(rotated.family_id, other.family_id);
    assert_eq!(
        b.store
            .revoke_refresh_family(&fresh_hash(), now)
            .await
            .expect("answered"),
        None
    );
}

/// A successor keeps the session version its family began under.
pub async fn a_successor_keeps_its_familys_session_version(b: Backend) {
    let first = RefreshTokenRecord {
        session_version: 3,
        ..first_token("member-1")
    };
    b.store.store_refresh_token(&first).await.expect("stored");
    let now = t0() + Duration::minutes(5);
    let second = b
        .store
        .rotate_refresh_token(&first.token_hash, &fresh_hash(), now, now + DAY * 14)
        .await
        .expect("rotated");
    assert_eq!(second.session_version, 3);
}
