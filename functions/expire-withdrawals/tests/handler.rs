//! The scheduled handler on the embedded default: the `now` override, the clock otherwise, the
//! deadline, and the sample event of `events/`.

use cafe::domain::{DomainEvent, EventType, Gender, Member, MemberStatus};
use cafe::{App, Error, testing};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use std::time::SystemTime;

async fn app() -> (App, std::sync::Arc<cafe::clock::ManualClock>) {
    let clock = testing::manual_clock();
    let (app, _parts) = App::in_memory(testing::test_config(), clock.clone())
        .await
        .expect("app");
    (app, clock)
}

async fn withdrawn(app: &App, at: DateTime<Utc>) -> String {
    let member_id = cafe::ids::new_id(at);
    let member = Member {
        email: format!("{}@example.com", member_id.to_lowercase()),
        member_id: member_id.clone(),
        name: "Scheduled".into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Female),
        birth: chrono::NaiveDate::from_ymd_opt(1990, 5, 6),
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: at - Duration::days(10),
        session_version: 0,
    };
    let event = DomainEvent::member(EventType::MemberRegistered, &member_id, "SERVICE", at);
    app.store
        .create_member(
            &member,
            &cafe::domain::StoredPassword::new("not-a-real-hash"),
            &event,
        )
        .await
        .expect("create");
    let event = DomainEvent::member(EventType::MemberWithdrawn, &member_id, "WITHDRAWN", at);
    app.store
        .withdraw_member(&member_id, at, &event)
        .await
        .expect("withdraw");
    member_id
}

async fn status(app: &App, id: &str) -> MemberStatus {
    app.store
        .get_member(id)
        .await
        .expect("get")
        .expect("exists")
        .status
}

fn sample() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/expire-withdrawals.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json")
}

#[tokio::test]
async fn the_sample_event_ends_members_due_at_its_now() {
    let (app, _clock) = app().await;
    let measured = app.metrics.start_recording();
    // The sample's `now` is 2026-02-14T18:00:00Z: due means withdrawn by 2026-01-15T18:00:00Z.
    let due = withdrawn(&app, "2026-01-15T18:00:00Z".parse().expect("time")).await;
    let not_yet = withdrawn(&app, "2026-01-15T18:00:00.001Z".parse().expect("time")).await;
    let summary = expire_withdrawals::handle(sample(), None, &app)
        .await
        .expect("run");
    assert_eq!((summary.expired, summary.skipped), (1, 0));
    assert!(summary.complete);
    assert_eq!(status(&app, &due).await, MemberStatus::End);
    assert_eq!(status(&app, &not_yet).await, MemberStatus::Withdrawn);
    let wire = serde_json::to_value(&summary).expect("json");
    assert_eq!(wire["expired"], 1);
    assert_eq!(wire["cutoff"], "2026-01-15T18:00:00Z");
    assert!(wire["itemsRead"].is_u64() && wire["pages"].is_u64());
    assert_eq!(measured.sum("MembersEnded", &[]), 1.0);
    assert_eq!(measured.sum("ExpiryFailures", &[]), 0.0);
}

#[tokio::test]
async fn without_now_the_clock_decides_and_now_may_sit_in_detail() {
    let (app, clock) = app().await;
    let id = withdrawn(&app, testing::epoch()).await;
    let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    clock.advance(Duration::days(29));
    let early = expire_withdrawals::handle(scheduled.clone(), None, &app)
        .await
        .expect("run");
    assert_eq!(early.expired, 0);
    let in_detail = json!({"detail": {"now": "2026-02-14T09:00:00Z"}});
    let late = expire_withdrawals::handle(in_detail, None, &app)
        .await
        .expect("run");
    assert_eq!(late.expired, 1);
    assert_eq!(status(&app, &id).await, MemberStatus::End);
}

#[tokio::test]
async fn a_malformed_now_is_refused() {
    let (app, _clock) = app().await;
    for bad in [
        json!({"now": "yesterday"}),
        json!({"now": 17}),
        json!({"detail": {"now": "2026-13-01"}}),
    ] {
        let outcome = expire_withdrawals::handle(bad, None, &app).await;
        assert_eq!(
            outcome.map(|s| s.expired),
            Err(Error::InvalidParameter("now".into()))
        );
    }
}

#[tokio::test]
async fn near_the_deadline_it_stops_after_one_page_and_says_so() {
    let (app, clock) = app().await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(withdrawn(&app, testing::epoch() + Duration::seconds(i)).await);
    }
    clock.advance(Duration::days(31));
    let cut = expire_withdrawals::handle(json!({}), Some(SystemTime::now()), &app)
        .await
        .expect("run");
    assert!(!cut.complete);
    assert_eq!(cut.pages, 1);
    assert!(cut.expired < 40);
    let rest = expire_withdrawals::handle(json!({}), None, &app)
        .await
        .expect("run");
    assert!(rest.complete);
    assert_eq!(cut.expired + rest.expired, 40);
    for id in &ids {
        assert_eq!(status(&app, id).await, MemberStatus::End);
    }
}

#[tokio::test]
async fn production_refuses_the_now_override_and_ends_nobody() {
    let clock = testing::manual_clock();
    let config = cafe::config::Config {
        production: true,
        ..testing::test_config()
    };
    let (app, _parts) = App::in_memory(config, clock.clone()).await.expect("app");
    // Due by the sample's `now` (2026-02-14), not by the clock (2026-01-15).
    let member = withdrawn(&app, "2026-01-10T00:00:00Z".parse().expect("time")).await;
    let refused = expire_withdrawals::handle(sample(), None, &app).await;
    assert!(
        matches!(refused, Err(Error::InvalidParameter(ref field)) if field.starts_with("now")),
        "{refused:?}"
    );
    assert_eq!(status(&app, &member).await, MemberStatus::Withdrawn);

    // The scheduled event (no `now`) runs on the clock: nobody is due yet on 2026-01-15.
    let scheduled = json!({"version": "0", "detail-type": "Scheduled Event", "detail": {}});
    let summary = expire_withdrawals::handle(scheduled.clone(), None, &app)
        .await
        .expect("run");
    assert_eq!(summary.expired, 0);
    clock.advance(Duration::days(27));
    let summary = expire_withdrawals::handle(scheduled, None, &app)
        .await
        .expect("run");
    assert_eq!(summary.expired, 1);
    assert_eq!(status(&app, &member).await, MemberStatus::End);
}

#[tokio::test]
async fn a_refused_run_is_reported_as_a_named_error() {
    let config = cafe::config::Config {
        production: true,
        ..testing::test_config()
    };
    let (app, _parts) = App::in_memory(config, testing::manual_clock())
        .await
        .expect("app");
    let event = lambda_runtime::LambdaEvent::new(sample(), lambda_runtime::Context::default());
    let refused = expire_withdrawals::invoke(event, &app)
        .await
        .expect_err("`now` is refused in production");
    let reported = lambda_runtime::Diagnostic::from(refused);
    assert_eq!(reported.error_type, "RunFailed");
    assert!(
        reported.error_message.starts_with("400CO000 parameter now"),
        "{}",
        reported.error_message
    );
}
