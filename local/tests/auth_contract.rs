//! The contract of login, refresh and bearer tokens, through the real handlers on an in-memory
//! app with a manual clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cafe::clock::Clock;
use cafe::domain::{DomainEvent, EventType, MemberStatus};
use cafe::store::{MemberStore, WithdrawalExpiryStore};
use cafe_local::testing::{PASSWORD, SignedUp, TestApp, assert_failure, request};
use chrono::Duration;
use serde_json::{Value, json};

async fn log_in(t: &TestApp, email: &str, password: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": password});
    t.call(request("POST", "/auth/login").json(&body).build())
        .await
}

async fn refresh(t: &TestApp, token: &str) -> (u16, Value) {
    let body = json!({"refreshToken": token});
    t.call(request("POST", "/auth/refresh").json(&body).build())
        .await
}

async fn get_profile(t: &TestApp, member_id: &str, token: &str) -> (u16, Value) {
    t.call(
        request("GET", &format!("/member/{member_id}"))
            .bearer(token)
            .build(),
    )
    .await
}

fn str_of<'v>(body: &'v Value, field: &str) -> &'v str {
    body["result"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {body}"))
}

/// Withdraws `me`, moves the clock past the window and ends them as the daily job would.
async fn end_member(t: &TestApp, me: &SignedUp) {
    let withdraw = format!("/member/{}/withdraw", me.member_id);
    let (status, _) = t
        .call(request("DELETE", &withdraw).bearer(&me.access).build())
        .await;
    assert_eq!(status, 200);
    let withdrawn_at = t
        .parts
        .store
        .get_member(&me.member_id)
        .await
        .expect("read")
        .and_then(|m| m.withdrawn_at)
        .expect("withdrawn");
    t.clock.advance(Duration::days(30));
    let now = withdrawn_at + Duration::days(30);
    let event = DomainEvent::member(EventType::MemberExpired, &me.member_id, "END", now);
    let ended = t
        .parts
        .store
        .end_member(&me.member_id, withdrawn_at, now, &event)
        .await;
    assert_eq!(ended, Ok(true));
}

#[tokio::test]
async fn login_answers_a_new_pair_in_any_email_case() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let (status, body) = log_in(&t, &me.email.to_uppercase(), PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(str_of(&body, "memberId"), me.member_id);
    assert_ne!(str_of(&body, "refreshToken"), me.refresh);
    let (status, _) = get_profile(&t, &me.member_id, str_of(&body, "accessToken")).await;
    assert_eq!(status, 200);
    // The login's refresh token starts a family of its own that works.
    let (status, _) = refresh(&t, str_of(&body, "refreshToken")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn login_gives_one_answer_for_a_wrong_password_and_an_unknown_email() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let (wrong_status, wrong) = log_in(&t, &me.email, "not the password").await;
    let (unknown_status, unknown) = log_in(&t, "nobody@cafe.example", PASSWORD).await;
    assert_failure(wrong_status, &wrong, "401ME000");
    assert_failure(unknown_status, &unknown, "401ME000");
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn login_refuses_malformed_bodies() {
    let t = TestApp::new().await;
    let cases = [
        ("not json".to_owned(), "body"),
        (json!({"password": PASSWORD}).to_string(), "email"),
        (json!({"email": "a@cafe.example"}).to_string(), "password"),
        (
            json!({"email": 1, "password": PASSWORD}).to_string(),
            "email",
        ),
        (
            json!({"email": "a@cafe.example", "password": 12345678}).to_string(),
            "password",
        ),
        (
            json!({"email": "a@cafe.example", "password": ""}).to_string(),
            "password",
        ),
        (
            json!({"email": "a@cafe.example", "password": PASSWORD, "x": 1}).to_string(),
            "x",
        ),
    ];
    for (raw, field) in cases {
        let (status, body) = t
            .call(request("POST", "/auth/login").text(&raw).build())
            .await;
        assert_failure(status, &body, "400CO000");
        assert_eq!(
            body["error"]["detailMessage"],
            format!("Parameter ({field}) is missing or invalid."),
            "{raw}"
        );
    }
}

#[tokio::test]
async fn refresh_rotates_the_pair() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    t.clock.advance(Duration::minutes(1));
    let (status, body) = refresh(&t, &me.refresh).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(str_of(&body, "memberId"), me.member_id);
    let next = str_of(&body, "refreshToken").to_owned();
    assert_ne!(next, me.refresh);
    assert_ne!(str_of(&body, "accessToken"), me.access);
    let (status, _) = get_profile(&t, &me.member_id, str_of(&body, "accessToken")).await;
    assert_eq!(status, 200);
    let (status, _) = refresh(&t, &next).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_whole_family() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let (status, first) = refresh(&t, &me.refresh).await;
    assert_eq!(status, 200);
    let successor = str_of(&first, "refreshToken").to_owned();
    // Presented again within the grace window (a second tab, a retry after a lost answer):
    // the very same pair, and the family lives on.
    t.clock.advance(Duration::seconds(9));
    let (status, again) = refresh(&t, &me.refresh).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, first, "the same pair, byte for byte");
    // Someone replays the used token after the window: refused, and the family dies with it.
    t.clock.advance(Duration::seconds(2));
    let (status, body) = refresh(&t, &me.refresh).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = refresh(&t, &successor).await;
    assert_failure(status, &body, "401CO000");
    // Another family (a separate login) is untouched.
    let (_, login) = log_in(&t, &me.email, PASSWORD).await;
    let (status, _) = refresh(&t, str_of(&login, "refreshToken")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_both_get_the_same_pair() {
    let t = std::sync::Arc::new(TestApp::new().await);
    let me = t.sign_up().await;
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let t = t.clone();
            let token = me.refresh.clone();
            tokio::spawn(async move { refresh(&t, &token).await })
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        let (status, body) = racer.await.expect("racer");
        assert_eq!(status, 200, "{body}");
        answers.push(body);
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    // The pair works: its access token reads the profile, its refresh token rotates.
    let access = str_of(&answers[0], "accessToken").to_owned();
    let (status, body) = t
        .call(
            request("GET", &format!("/member/{}", me.member_id))
                .bearer(&access)
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = refresh(&t, str_of(&answers[0], "refreshToken")).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn refresh_refuses_malformed_unknown_and_expired_tokens() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    for token in [
        "",
        "short",
        &"A".repeat(43),
        &format!("{}!", &me.refresh[..42]),
    ] {
        let (status, body) = refresh(&t, token).await;
        assert_failure(status, &body, "401CO000");
    }
    t.clock.advance(t.app.config.refresh_token_ttl);
    let (status, body) = refresh(&t, &me.refresh).await;
    assert_failure(status, &body, "401CO000");
    for raw in [
        json!({}).to_string(),
        json!({"refreshToken": 7}).to_string(),
        "{".into(),
    ] {
        let (status, body) = t
            .call(request("POST", "/auth/refresh").text(&raw).build())
            .await;
        assert_failure(status, &body, "400CO000");
    }
}

fn member_paths(member_id: &str) -> [(&'static str, String); 3] {
    [
        ("GET", format!("/member/{member_id}")),
        ("DELETE", format!("/member/{member_id}/withdraw")),
        ("POST", format!("/member/{member_id}/restore")),
    ]
}

fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

#[tokio::test]
async fn member_endpoints_refuse_missing_tampered_unsigned_and_expired_tokens() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let victim = t.sign_up().await;
    let now = t.clock.now().timestamp();
    let claims = json!({"sub": victim.member_id, "iat": now, "exp": now + 600});
    let signature = me.access.rsplit('.').next().expect("signature");
    let tampered = forge(&json!({"alg": "HS256", "typ": "JWT"}), &claims, signature);
    let unsigned = forge(&json!({"alg": "none", "typ": "JWT"}), &claims, "");
    let foreign = cafe::auth::AccessTokens::fixed(
        cafe::auth::SigningKeyset::generate(t.clock.now()),
        "cafe",
        "cafe-api",
        Duration::minutes(30),
    )
    .issue(
        &victim.member_id,
        cafe::domain::Role::Customer,
        0,
        t.clock.now(),
    )
    .await
    .expect("token");
    for (method, path) in member_paths(&victim.member_id) {
        let bare = request(method, &path).build();
        let (status, body) = t.call(bare).await;
        assert_failure(status, &body, "401CO000");
        let basic = request(method, &path).header("authorization", "Basic dXNlcjpwYXNz");
        let (status, body) = t.call(basic.build()).await;
        assert_failure(status, &body, "401CO000");
        for token in [
            "garbage",
            tampered.as_str(),
            unsigned.as_str(),
            foreign.as_str(),
        ] {
            let (status, body) = t.call(request(method, &path).bearer(token).build()).await;
            assert_failure(status, &body, "401CO000");
        }
    }
    // Auth comes before the ownership check: my valid token on my own path works until it expires.
    t.clock.advance(Duration::minutes(30));
    for (method, path) in member_paths(&me.member_id) {
        let (status, body) = t
            .call(request(method, &path).bearer(&me.access).build())
            .await;
        assert_failure(status, &body, "401CO000");
    }
    let victim_state = t
        .parts
        .store
        .get_member(&victim.member_id)
        .await
        .expect("read");
    assert_eq!(victim_state.map(|m| m.status), Some(MemberStatus::Service));
}

#[tokio::test]
async fn an_ended_members_tokens_and_password_are_refused() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let (_, pair) = log_in(&t, &me.email, PASSWORD).await;
    end_member(&t, &me).await;
    // A fresh access token for the ended member, as if issued just now.
    let access = t
        .app
        .tokens
        .issue(
            &me.member_id,
            cafe::domain::Role::Customer,
            0,
            t.clock.now(),
        )
        .await
        .expect("token");
    for (method, path) in member_paths(&me.member_id) {
        let (status, body) = t.call(request(method, &path).bearer(&access).build()).await;
        assert_failure(status, &body, "401CO000");
    }
    let (status, body) = refresh(&t, str_of(&pair, "refreshToken")).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = log_in(&t, &me.email, PASSWORD).await;
    assert_failure(status, &body, "401ME000");
}

#[tokio::test]
async fn an_ended_members_email_signs_up_again_and_the_old_token_stays_dead() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    end_member(&t, &me).await;
    // Nothing personal is left on the ended member.
    let stored = t
        .parts
        .store
        .get_member(&me.member_id)
        .await
        .expect("read")
        .expect("still stored");
    assert_eq!(stored.status, MemberStatus::End);
    assert!(stored.is_erased(), "{stored:?}");
    // The old credentials are gone: same answer as an unknown email.
    let (status, body) = log_in(&t, &me.email, PASSWORD).await;
    assert_failure(status, &body, "401ME000");
    // The email is free: a new member with a new id.
    let (status, body) = t
        .call(
            request("POST", "/member")
                .json(&cafe_local::testing::sign_up_body(&me.email))
                .build(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_ne!(str_of(&body, "memberId"), me.member_id);
    let (status, _) = log_in(&t, &me.email, PASSWORD).await;
    assert_eq!(status, 200);
    // The ended member's token and refresh token are still refused.
    let (status, body) = get_profile(&t, &me.member_id, &me.access).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = refresh(&t, &me.refresh).await;
    assert_failure(status, &body, "401CO000");
}
