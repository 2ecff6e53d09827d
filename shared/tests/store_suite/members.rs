//! Members, the email guard and the withdrawn index.

use crate::harness::*;
use cafe::Error;
use cafe::domain::{EventType, MemberStatus, Role};
use cafe::store::{WITHDRAWN_SHARDS, withdrawn_shard};
use chrono::Duration;
use std::collections::HashSet;

pub async fn creates_and_finds_members(b: Backend) {
    let m = member("kim@example.com", t0());
    let event = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
    b.store
        .create_member(&m, &password(), &event)
        .await
        .expect("created");

    assert_eq!(
        b.store.get_member(&m.member_id).await.expect("read"),
        Some(m.clone())
    );
    assert_eq!(
        b.store
            .find_member_by_email("kim@example.com")
            .await
            .expect("by email"),
        Some(m.clone())
    );
    assert_eq!(
        b.store
            .find_member_by_email("lee@example.com")
            .await
            .expect("by email"),
        None
    );
    assert_eq!(b.store.get_member(&id(t0())).await.expect("read"), None);
    let history = b.store.member_history(&m.member_id).await.expect("history");
    assert_eq!(statuses(&history), ["SERVICE"]);
    assert_eq!(history[0].at, t0());
    assert!(b.committed(&event).await);
}

pub async fn refuses_a_taken_email_and_writes_nothing(b: Backend) {
    let first = signed_up(&b, "kim@example.com", t0()).await;
    let second = member("kim@example.com", t0());
    let event = member_event(
        EventType::MemberRegistered,
        &second.member_id,
        "SERVICE",
        t0(),
    );
    assert_eq!(
        b.store.create_member(&second, &password(), &event).await,
        Err(Error::EmailTaken)
    );
    assert_eq!(
        b.store.get_member(&second.member_id).await.expect("read"),
        None
    );
    assert!(
        b.store
            .member_history(&second.member_id)
            .await
            .expect("history")
            .is_empty()
    );
    assert!(!b.committed(&event).await);
    assert_eq!(
        b.store
            .find_member_by_email("kim@example.com")
            .await
            .expect("by email")
            .map(|m| m.member_id),
        Some(first.member_id)
    );
}

/// Sign-up writes the member and its first refresh token together: both, or (email taken)
/// neither.
pub async fn sign_up_writes_the_member_and_its_first_refresh_token_together(b: Backend) {
    use cafe::auth::refresh::{hash_refresh_token, new_refresh_token};
    use cafe::store::RefreshTokenRecord;
    let token_of = |member_id: &str| RefreshTokenRecord {
        token_hash: hash_refresh_token(&new_refresh_token()),
        member_id: member_id.into(),
        family_id: id(t0()),
        issued_at: t0(),
        expires_at: t0() + DAY * 14,
        session_version: 0,
    };
    let rotates = |hash: String| {
        let store = b.store.clone();
        async move {
            store
                .rotate_refresh_token(
                    &hash,
                    &hash_refresh_token(&new_refresh_token()),
                    t0(),
                    t0() + DAY,
                )
                .await
        }
    };
    let m = member("lee@example.com", t0());
    let event = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
    let first = token_of(&m.member_id);
    b.store
        .sign_up_member(&m, &password(), &event, &first)
        .await
        .expect("signed up");
    assert_eq!(
        b.store.get_member(&m.member_id).await.expect("read"),
        Some(m.clone())
    );
    let (with_history, history) = b
        .store
        .get_member_with_history(&m.member_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(with_history, m);
    assert_eq!(
        history
            .iter()
            .map(|h| h.status.as_str())
            .collect::<Vec<_>>(),
        ["SERVICE"]
    );
    assert!(b.committed(&event).await);
    assert_eq!(
        rotates(first.token_hash.clone())
            .await
            .expect("the first refresh token is stored")
            .family_id,
        first.family_id
    );

    let taken = member("lee@example.com", t0());
    let again = member_event(
        EventType::MemberRegistered,
        &taken.member_id,
        "SERVICE",
        t0(),
    );
    let refused = token_of(&taken.member_id);
    assert_eq!(
        b.store
            .sign_up_member(&taken, &password(), &again, &refused)
            .await,
        Err(Error::EmailTaken)
    );
    assert_eq!(
        b.store.get_member(&taken.member_id).await.expect("read"),
        None
    );
    assert_eq!(
        rotates(refused.token_hash.clone()).await,
        Err(Error::Unauthorized),
        "no token without its member"
    );
    assert!(!b.committed(&again).await);
}

pub async fn concurrent_signups_with_one_email_make_exactly_one_member(b: Backend) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = b.store.clone();
        tasks.push(tokio::spawn(async move {
            let m = member("race@example.com", t0());
            let event = member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
            store
                .create_member(&m, &password(), &event)
                .await
                .map(|()| m.member_id)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("joined") {
            Ok(member_id) => winners.push(member_id),
            Err(e) => assert_eq!(e, Error::EmailTaken),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one sign-up wins");
    let found = b
        .store
        .find_member_by_email("race@example.com")
        .await
        .expect("by email");
    assert_eq!(found.map(|m| m.member_id), Some(winners[0].clone()));
}

pub async fn withdraw_and_restore_follow_the_life_cycle(b: Backend) {
    let m = signed_up(&b, "kim@example.com", t0()).await;
    let at = t0() + Duration::hours(1);
    let withdrawn = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
    let after = b
        .store
        .withdraw_member(&m.member_id, at, &withdrawn)
        .await
        .expect("withdrawn");
    assert_eq!(after.status, MemberStatus::Withdrawn);
    assert_eq!(after.withdrawn_at, Some(at));
    assert_eq!(
        b.store.get_member(&m.member_id).await.expect("read"),
        Some(after.clone())
    );
    assert!(b.committed(&withdrawn).await);

    let again = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
    assert_eq!(
        b.store.withdraw_member(&m.member_id, at, &again).await,
        Err(Error::NotInService)
    );
    assert!(!b.committed(&again).await);

    let restored_at = at + DAY * 29;
    let restored = member_event(
        EventType::MemberRestored,
        &m.member_id,
        "SERVICE",
        restored_at,
    );
    let back = b
        .store
        .restore_member(&m.member_id, restored_at, &restored)
        .await
        .expect("restored");
    assert_eq!(back.status, MemberStatus::Service);
    assert_eq!(back.withdrawn_at, None);
    assert_eq!(
        b.store.get_member(&m.member_id).await.expect("read"),
        Some(back)
    );
    assert!(b.committed(&restored).await);
    assert_eq!(
        b.store
            .restore_member(&m.member_id, restored_at, &restored)
            .await,
        Err(Error::NotRestorable)
    );

    let history = b.store.member_history(&m.member_id).await.expect("history");
    assert_eq!(statuses(&history), ["SERVICE", "WITHDRAWN", "SERVICE"]);
    assert_eq!(history[1].at, at);

    let nobody = id(t0());
    let event = member_event(EventType::MemberWithdrawn, &nobody, "WITHDRAWN", at);
    assert_eq!(
        b.store.withdraw_member(&nobody, at, &event).await,
        Err(Error::NotFound("member"))
    );
    assert_eq!(
        b.store.restore_member(&nobody, at, &event).await,
        Err(Error::NotFound("member"))
    );
}

/// The request's own read (the authenticated member) stands in for the store's: the answers are
/// those of the by-id calls, and a stale read is refused by the write's condition.
pub async fn a_read_member_withdraws_and_restores_with_the_same_answers(b: Backend) {
    let m = signed_up(&b, "lee@example.com", t0()).await;
    let read = b
        .store
        .get_member(&m.member_id)
        .await
        .expect("read")
        .expect("member");
    let at = t0() + Duration::hours(2);
    let withdrawn = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
    let after = b
        .store
        .withdraw_read_member(&read, at, &withdrawn)
        .await
        .expect("withdrawn");
    assert_eq!(
        (after.status, after.withdrawn_at),
        (MemberStatus::Withdrawn, Some(at))
    );
    assert_eq!(
        b.store.get_member(&m.member_id).await.expect("read"),
        Some(after.clone())
    );
    assert!(b.committed(&withdrawn).await);

    // The same stale read again (it still says SERVICE): the stored state decides.
    let again = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
    assert_eq!(
        b.store.withdraw_read_member(&read, at, &again).await,
        Err(Error::NotInService)
    );
    assert!(!b.committed(&again).await);

    let restored_at = at + DAY;
    let restored = member_event(
        EventType::MemberRestored,
        &m.member_id,
        "SERVICE",
        restored_at,
    );
    let back = b
        .store
        .restore_read_member(&after, restored_at, &restored)
        .await
        .expect("restored");
    assert_eq!(
        (back.status, back.withdrawn_at),
        (MemberStatus::Service, None)
    );
    assert_eq!(
        b.store.get_member(&m.member_id).await.expect("read"),
        Some(back)
    );
    // A stale WITHDRAWN read of a member restored since: refused, nothing written.
    let twice = member_event(
        EventType::MemberRestored,
        &m.member_id,
        "SERVICE",
        restored_at,
    );
    assert_eq!(
        b.store
            .restore_read_member(&after, restored_at, &twice)
            .await,
        Err(Error::NotRestorable)
    );
    assert!(!b.committed(&twice).await);
    let history = b.store.member_history(&m.member_id).await.expect("history");
    assert_eq!(statuses(&history), ["SERVICE", "WITHDRAWN", "SERVICE"]);
}

pub async fn restore_is_refused_after_the_window(b: Backend) {
    let m = signed_up(&b, "kim@example.com", t0()).await;
    let event = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", t0());
    b.store
        .withdraw_member(&m.member_id, t0(), &event)
        .await
        .expect("withdrawn");
    let late = t0() + DAY * 30;
    let restored = member_event(EventType::MemberRestored, &m.member_id, "SERVICE", late);
    assert_eq!(
        b.store.restore_member(&m.member_id, late, &restored).await,
        Err(Error::NotRestorable)
    );
    assert!(!b.committed(&restored).await);
    let stored = b
        .store
        .get_member(&m.member_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.status, MemberStatus::Withdrawn);
    assert_eq!(
        b.store
            .member_history(&m.member_id)
            .await
            .expect("history")
            .len(),
        2
    );
}

/// Members until `count` of them share one shard.
async fn withdrawn_in_one_shard(b: &Backend, count: usize) -> (u32, Vec<cafe::domain::Member>) {
    let mut by_shard: Vec<Vec<cafe::domain::Member>> = vec![Vec::new(); WITHDRAWN_SHARDS as usize];
    let mut n = 0;
    loop {
        let m = member(&format!("m{n}@example.com"), t0());
        n += 1;
        let shard = withdrawn_shard(&m.member_id) as usize;
        if by_shard[shard].len() < count {
            by_shard[shard].push(m);
        }
        if let Some(shard) = by_shard.iter().position(|ms| ms.len() == count) {
            let members = by_shard.swap_remove(shard);
            for m in &members {
                let event =
                    member_event(EventType::MemberRegistered, &m.member_id, "SERVICE", t0());
                b.store
                    .create_member(m, &password(), &event)
                    .await
                    .expect("created");
            }
            return (shard as u32, members);
        }
    }
}

pub async fn due_withdrawals_page_oldest_first_and_end_members(b: Backend) {
    let (shard, members) = withdrawn_in_one_shard(&b, 6).await;
    // Withdrawn on days 5, 4, 3, 2, 1 and 0 after t0; due at the cutoff (day 3): the last four.
    for (i, m) in members.iter().enumerate() {
        let at = t0() + DAY * (5 - i as i32);
        let event = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
        b.store
            .withdraw_member(&m.member_id, at, &event)
            .await
            .expect("withdrawn");
    }
    // One restored member leaves the index.
    let restored = &members[1];
    let event = member_event(
        EventType::MemberRestored,
        &restored.member_id,
        "SERVICE",
        t0() + DAY * 6,
    );
    b.store
        .restore_member(&restored.member_id, t0() + DAY * 6, &event)
        .await
        .expect("restored");

    let cutoff = t0() + DAY * 3;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = b
            .store
            .due_withdrawals(shard, cutoff, cursor.as_deref(), 2)
            .await
            .expect("page");
        pages += 1;
        assert!(page.members.len() <= 2);
        assert!(page.items_read >= page.members.len() as u64);
        seen.extend(page.members);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
        assert!(pages < 10, "pagination must end");
    }
    let expected: Vec<(String, chrono::DateTime<chrono::Utc>)> = [5usize, 4, 3, 2]
        .iter()
        .map(|&i| (members[i].member_id.clone(), t0() + DAY * (5 - i as i32)))
        .collect();
    let got: Vec<_> = seen
        .iter()
        .map(|d| (d.member_id.clone(), d.withdrawn_at))
        .collect();
    assert_eq!(
        got, expected,
        "due members oldest first, restored and not-yet-due left out"
    );
    for other in (0..WITHDRAWN_SHARDS).filter(|s| *s != shard) {
        let page = b
            .store
            .due_withdrawals(other, cutoff, None, 10)
            .await
            .expect("page");
        assert!(
            page.members
                .iter()
                .all(|d| !members.iter().any(|m| m.member_id == d.member_id))
        );
    }

    let due = &seen[0];
    let now = t0() + DAY * 40;
    let ended = member_event(EventType::MemberExpired, &due.member_id, "END", now);
    assert!(
        b.store
            .end_member(&due.member_id, due.withdrawn_at, now, &ended)
            .await
            .expect("end")
    );
    assert!(b.committed(&ended).await);
    let again = member_event(EventType::MemberExpired, &due.member_id, "END", now);
    assert!(
        !b.store
            .end_member(&due.member_id, due.withdrawn_at, now, &again)
            .await
            .expect("end")
    );
    assert!(!b.committed(&again).await);
    let stored = b
        .store
        .get_member(&due.member_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.status, MemberStatus::End);
    assert_eq!(
        statuses(
            &b.store
                .member_history(&due.member_id)
                .await
                .expect("history")
        ),
        ["SERVICE", "WITHDRAWN", "END"]
    );
    let page = b
        .store
        .due_withdrawals(shard, cutoff, None, 10)
        .await
        .expect("page");
    let left: HashSet<_> = page.members.iter().map(|d| d.member_id.clone()).collect();
    assert!(
        !left.contains(&due.member_id),
        "an ended member leaves the index"
    );
    assert_eq!(left.len(), 3);
}

pub async fn end_member_is_refused_for_another_withdrawal(b: Backend) {
    let m = signed_up(&b, "kim@example.com", t0()).await;
    let at = t0() + DAY;
    let event = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
    b.store
        .withdraw_member(&m.member_id, at, &event)
        .await
        .expect("withdrawn");
    let ended = member_event(EventType::MemberExpired, &m.member_id, "END", at + DAY * 31);
    assert!(
        !b.store
            .end_member(&m.member_id, t0(), at + DAY * 31, &ended)
            .await
            .expect("end")
    );
    assert!(!b.committed(&ended).await);
    let service = signed_up(&b, "lee@example.com", t0()).await;
    assert!(
        !b.store
            .end_member(&service.member_id, t0(), at, &ended)
            .await
            .expect("end")
    );
    assert!(
        !b.store
            .end_member(&id(t0()), t0(), at, &ended)
            .await
            .expect("end")
    );
    let stored = b
        .store
        .get_member(&m.member_id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(stored.status, MemberStatus::Withdrawn);
}

pub async fn a_tampered_due_cursor_is_refused(b: Backend) {
    for bad in ["not base64 !", "e30", "eyJ4IjoxfQ"] {
        assert_eq!(
            b.store.due_withdrawals(0, t0(), Some(bad), 10).await,
            Err(Error::invalid("cursor")),
            "cursor {bad}"
        );
    }
}

pub async fn ending_erases_personal_data_and_frees_the_email(b: Backend) {
    let m = signed_up(&b, "kim@example.com", t0()).await;
    let at = t0() + DAY;
    let event = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
    b.store
        .withdraw_member(&m.member_id, at, &event)
        .await
        .expect("withdrawn");
    let end_at = at + DAY * 31;
    let ended = member_event(EventType::MemberExpired, &m.member_id, "END", end_at);
    assert!(
        b.store
            .end_member(&m.member_id, at, end_at, &ended)
            .await
            .expect("end")
    );
    let stored = b
        .store
        .get_member(&m.member_id)
        .await
        .expect("read")
        .expect("the ended member is still there");
    assert_eq!(stored.status, MemberStatus::End);
    assert!(stored.is_erased(), "personal data left: {stored:?}");
    assert_eq!(stored.created_at, m.created_at);
    assert_eq!(stored.withdrawn_at, Some(at));
    // Its history survives, without anything personal in it.
    let history = b.store.member_history(&m.member_id).await.expect("history");
    let statuses: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(statuses, ["SERVICE", "WITHDRAWN", "END"]);
    if let Some(dynamo) = &b.dynamo {
        // The raw items: no personal attribute on the profile, no email guard.
        let profile = dynamo
            .raw_item(&format!("MEMBER#{}", m.member_id), "PROFILE")
            .await
            .expect("read")
            .expect("profile");
        for attribute in cafe::domain::member::PERSONAL_ATTRIBUTES {
            assert!(
                !profile.contains_key(attribute),
                "{attribute} is still stored: {:?}",
                profile.keys().collect::<Vec<_>>()
            );
        }
        let guard = dynamo
            .raw_item("EMAIL#kim@example.com", "EMAIL")
            .await
            .expect("read");
        assert!(guard.is_none(), "the email guard is still there");
    }
    // Nobody finds the old member by the email, and the email can sign up again.
    assert_eq!(
        b.store
            .find_member_by_email("kim@example.com")
            .await
            .expect("lookup"),
        None
    );
    let again = signed_up(&b, "kim@example.com", end_at).await;
    assert_ne!(again.member_id, m.member_id);
    assert_eq!(
        b.store
            .find_member_by_email("kim@example.com")
            .await
            .expect("lookup")
            .map(|found| found.member_id),
        Some(again.member_id.clone())
    );
    // Ending again is a no-op, and leaves the new member's guard alone.
    assert!(
        !b.store
            .end_member(&m.member_id, at, end_at, &ended)
            .await
            .expect("second end")
    );
    assert!(
        b.store
            .find_member_by_email("kim@example.com")
            .await
            .expect("lookup")
            .is_some()
    );
}

pub async fn a_restored_member_is_not_erased(b: Backend) {
    let m = signed_up(&b, "park@example.com", t0()).await;
    let at = t0() + DAY;
    let event = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", at);
    b.store
        .withdraw_member(&m.member_id, at, &event)
        .await
        .expect("withdrawn");
    let restored = member_event(EventType::MemberRestored, &m.member_id, "SERVICE", at + DAY);
    b.store
        .restore_member(&m.member_id, at + DAY, &restored)
        .await
        .expect("restored");
    // The job read the member as withdrawn before the restore won.
    let ended = member_event(EventType::MemberExpired, &m.member_id, "END", at + DAY * 31);
    assert!(
        !b.store
            .end_member(&m.member_id, at, at + DAY * 31, &ended)
            .await
            .expect("end")
    );
    let stored = b
        .store
        .get_member(&m.member_id)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(stored.status, MemberStatus::Service);
    assert!(!stored.is_erased());
    assert_eq!(
        (&stored.name, &stored.email, &stored.birth),
        (&m.name, &m.email, &m.birth)
    );
    let (_, stored_password) = b
        .store
        .find_member_for_log_in("park@example.com")
        .await
        .expect("lookup")
        .expect("member");
    assert_eq!(stored_password, Some(password()));
    assert!(
        b.store
            .find_member_by_email("park@example.com")
            .await
            .expect("lookup")
            .is_some()
    );
}

/// Withdrawal, a role change and a log-out everywhere each move the session version on by one;
/// a restore does not (a session begun while withdrawn carries on). Concurrent log-outs
/// everywhere are each counted.
pub async fn session_versions_move_on_when_sessions_end(b: Backend) {
    let m = signed_up(&b, "sessions@example.com", t0()).await;
    let version = |b: &Backend, id: String| {
        let store = b.store.clone();
        async move {
            store
                .get_member(&id)
                .await
                .expect("read")
                .expect("member")
                .session_version
        }
    };
    assert_eq!(version(&b, m.member_id.clone()).await, 0);
    let role = member_event(EventType::MemberRoleChanged, &m.member_id, "STAFF", t0());
    b.store
        .set_member_role(&m.member_id, Role::Staff, t0(), &role)
        .await
        .expect("role granted");
    assert_eq!(version(&b, m.member_id.clone()).await, 1);
    let withdrawn = member_event(EventType::MemberWithdrawn, &m.member_id, "WITHDRAWN", t0());
    b.store
        .withdraw_member(&m.member_id, t0(), &withdrawn)
        .await
        .expect("withdrawn");
    assert_eq!(version(&b, m.member_id.clone()).await, 2);
    let restored = member_event(EventType::MemberRestored, &m.member_id, "SERVICE", t0());
    b.store
        .restore_member(&m.member_id, t0() + DAY, &restored)
        .await
        .expect("restored");
    assert_eq!(version(&b, m.member_id.clone()).await, 2);
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = b.store.clone();
            let id = m.member_id.clone();
            tokio::spawn(async move { store.end_sessions(&id).await })
        })
        .collect();
    for racer in racers {
        racer.await.expect("joined").expect("sessions ended");
    }
    assert_eq!(version(&b, m.member_id.clone()).await, 10);
    assert_eq!(
        b.store.end_sessions("01JC0FFEE0000000000000NONE").await,
        Err(Error::NotFound("member"))
    );
}
