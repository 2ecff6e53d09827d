//! What both test files of `payment-create` start from.

use cafe::App;
use cafe::domain::{DomainEvent, EventType, Gender, Member, MemberStatus};

/// A member in `SERVICE` (or withdrawn) and an access token for them.
pub async fn member(app: &App, withdrawn: bool) -> (Member, String) {
    let now = app.clock.now();
    let member_id = cafe::ids::new_id(now);
    let member = Member {
        email: format!("{}@pay.test", member_id.to_lowercase()),
        member_id,
        name: "Payer".into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Male),
        birth: Some("1988-03-04".parse().expect("date")),
        password_hash: "x".into(),
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: now,
    };
    let event = DomainEvent::member(
        EventType::MemberRegistered,
        &member.member_id,
        "SERVICE",
        now,
    );
    app.store
        .create_member(&member, &event)
        .await
        .expect("member");
    if withdrawn {
        let event = DomainEvent::member(
            EventType::MemberWithdrawn,
            &member.member_id,
            "WITHDRAWN",
            now,
        );
        app.store
            .withdraw_member(&member.member_id, now, &event)
            .await
            .expect("withdraw");
    }
    let token = app
        .tokens
        .issue(&member.member_id, cafe::domain::Role::Customer, now)
        .await
        .expect("token");
    (member, token)
}
