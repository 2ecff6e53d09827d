//! Support for tests across the workspace (kept out of the request path).

pub mod pg;

use crate::clock::ManualClock;
use crate::config::{Argon2Params, Config};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;

/// The embedded default with the cheapest Argon2 parameters and a fixed secret.
pub fn test_config() -> Config {
    Config {
        argon2: Argon2Params::cheapest_for_tests(),
        ..Config::default()
    }
}

/// A fixed starting instant for manual clocks.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 9, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(epoch()))
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with scripts/test.sh, which starts Redis and moto")
    })
}

/// A member in `SERVICE` with placeholder personal data (email `<id>@<email_domain>`), stored
/// as sign-up stores it (`create_member` with its `MemberRegistered` event); withdrawn too when
/// `withdrawn` (the store's withdrawal, with its event). What a test that needs "a member" starts
/// from.
pub async fn stored_member(
    store: &dyn crate::store::Store,
    email_domain: &str,
    withdrawn: bool,
    now: DateTime<Utc>,
) -> crate::Result<crate::domain::Member> {
    use crate::domain::{DomainEvent, EventType, Gender, Member, MemberStatus};
    let member_id = crate::ids::new_id(now);
    let member = Member {
        email: format!("{}@{email_domain}", member_id.to_lowercase()),
        member_id,
        name: "Tester".into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Female),
        birth: chrono::NaiveDate::from_ymd_opt(1990, 5, 17),
        password_hash: "not-a-real-hash".into(),
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: now,
    };
    let registered = DomainEvent::member(
        EventType::MemberRegistered,
        &member.member_id,
        "SERVICE",
        now,
    );
    store.create_member(&member, &registered).await?;
    if !withdrawn {
        return Ok(member);
    }
    let event = DomainEvent::member(
        EventType::MemberWithdrawn,
        &member.member_id,
        "WITHDRAWN",
        now,
    );
    store.withdraw_member(&member.member_id, now, &event).await
}

/// The Redis server started by `scripts/test.sh`.
pub fn redis_url() -> String {
    required_env("CAFE_TEST_REDIS_URL")
}

/// The DynamoDB-compatible server (moto) started by `scripts/test.sh`.
pub fn dynamodb_endpoint() -> String {
    required_env("CAFE_TEST_DYNAMODB_ENDPOINT")
}

/// Fault injection for the crash tests (cargo feature `fault-injection`, which only the local
/// server enables; deployed functions are built without it and this is a no-op there). With
/// `CAFE_PAUSE_AT=<point>[,<point>…]`, a process that reaches `point` prints
/// `CAFE_PAUSED_AT <point>` on stderr and stops there for good, so a test can `kill -9` it at
/// exactly that step. Points: `payment:locked`, `payment:charged:<n>`, `payment:committed`,
/// `refund:refunded:<n>`, `cancel:committed`.
#[cfg(feature = "fault-injection")]
pub fn pause_point(point: &str) {
    static POINTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let points = POINTS.get_or_init(|| {
        std::env::var("CAFE_PAUSE_AT")
            .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
            .unwrap_or_default()
    });
    if points.iter().any(|p| p == point) {
        use std::io::Write;
        let mut stderr = std::io::stderr();
        let _ = writeln!(stderr, "CAFE_PAUSED_AT {point}");
        let _ = stderr.flush();
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

/// Without the `fault-injection` feature: nothing.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn pause_point(_point: &str) {}
