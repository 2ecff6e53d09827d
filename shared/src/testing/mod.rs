//! Support for tests across the workspace (kept out of the request path).

pub mod pg;

use crate::clock::ManualClock;
use crate::config::{Argon2Params, Config};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;

/// The embedded default with the cheapest Argon2 parameters and a fixed secret, and a floor
/// without capacity limits (tests that are not about the floor pay many orders per member and
/// never mark them `READY`; the floor's own tests set the limits they test).
pub fn test_config() -> Config {
    Config {
        argon2: Argon2Params::cheapest_for_tests(),
        floor: crate::config::FloorConfig {
            max_in_progress: 1_000_000_000,
            max_open_per_member: 1_000_000_000,
            ..crate::config::FloorConfig::default()
        },
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
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: now,
        session_version: 0,
    };
    let registered = DomainEvent::member(
        EventType::MemberRegistered,
        &member.member_id,
        "SERVICE",
        now,
    );
    let password = crate::domain::StoredPassword::new("not-a-real-hash");
    store.create_member(&member, &password, &registered).await?;
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
