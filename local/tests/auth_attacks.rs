//! Attacks on authentication and ownership. Every forged or unusable token is tried on every
//! endpoint that needs one and must get 401CO000 with nothing stored changed; a member reaching
//! for another member's id or order gets 403CO000 on every id-bearing endpoint; a withdrawn
//! member may not order or pay (403CO000); an ended member's token is dead (401CO000). Login
//! answers an unknown email, a wrong password and an ended member identically, after the same
//! amount of work.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cafe::auth::SigningKeyset;
use cafe::auth::keys::SigningKey;
use cafe::clock::Clock;
use cafe::config::KeySetting;
use cafe::domain::{DomainEvent, EventType};
use cafe::store::{MemberStore, WithdrawalExpiryStore};
use common::{Raw, World, raw};
use hmac::{Hmac, Mac};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Every endpoint that needs a token, aimed at `w.a`'s own resources with valid bodies, so that
/// a token that got through would succeed.
fn protected(w: &World) -> Vec<Raw> {
    let a = &w.a.member_id;
    vec![
        raw("GET", "/member/{memberId}").param("memberId", a),
        raw("DELETE", "/member/{memberId}/withdraw").param("memberId", a),
        raw("POST", "/member/{memberId}/restore").param("memberId", a),
        raw("POST", "/order").json(&json!({"items": [{"itemId": common::COLA, "quantity": 1}]})),
        raw("GET", "/order/{orderId}").param("orderId", &w.a_pending),
        raw("GET", "/orders"),
        raw("DELETE", "/order/{orderId}/cancel").param("orderId", &w.a_pending),
        raw("POST", "/payment")
            .json(&json!({"orderId": w.a_pending, "payments": [{"amount": 1500, "type": "CARD"}]})),
    ]
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("hmac key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha512(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(key).expect("hmac key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// A JWT with `header` and `claims`, signed by `sign` over `header.claims`.
fn jwt(header: Value, claims: Value, sign: impl Fn(&str) -> Vec<u8>) -> String {
    let signing_input = format!("{}.{}", b64(&header), b64(&claims));
    let signature = URL_SAFE_NO_PAD.encode(sign(&signing_input));
    format!("{signing_input}.{signature}")
}

/// The service's signing keyset (the test app's inline one).
fn keyset(w: &World) -> SigningKeyset {
    match &w.t.app.config.token_signing_keys {
        KeySetting::Inline(keyset) => keyset.clone(),
        other => panic!("the test app signs with an inline keyset, not {other:?}"),
    }
}

/// An EdDSA token over `claims` signed by `key`, naming `key`'s id.
fn signed_by(key: &SigningKey, claims: Value) -> String {
    let encoding = key.encoding_key().expect("encoding key");
    jwt(
        json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid}),
        claims,
        |input| {
            let signature =
                jsonwebtoken::crypto::sign(input.as_bytes(), &encoding, Algorithm::EdDSA)
                    .expect("signed");
            URL_SAFE_NO_PAD.decode(signature).expect("base64url")
        },
    )
}

/// An EdDSA token signed with the service's real current key.
fn eddsa(w: &World, claims: Value) -> String {
    signed_by(&keyset(w).current, claims)
}

/// The public key's bytes as text, what an attacker would use as an HMAC secret.
fn public_x(w: &World) -> Vec<u8> {
    keyset(w).public_jwks().expect("jwks").keys[0]
        .x
        .clone()
        .into_bytes()
}

fn now(w: &World) -> i64 {
    w.t.clock.now().timestamp()
}

fn valid_claims(w: &World) -> Value {
    let now = now(w);
    json!({"sub": w.a.member_id, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600})
}

const ISS: &str = "cafe";
const AUD: &str = "cafe-api";

/// Sends `authorization` (or none) to every protected endpoint: each must answer 401CO000 and
/// change nothing.
async fn refused_everywhere(w: &World, authorization: Option<&str>) {
    let mut failures = Vec::new();
    for req in protected(w) {
        let req = match authorization {
            Some(value) => req.header("authorization", value),
            None => req,
        };
        let label = format!("{} {}", req.method, req.template);
        let before = w.snapshot().await;
        let answer = w.send(req).await;
        let after = w.snapshot().await;
        if let Some(problem) = answer.check_failure(&["401CO000"]) {
            failures.push(format!("{label}: {problem}"));
        }
        if before != after {
            failures.push(format!("{label}: changed stored {}", before.diff(&after)));
        }
    }
    assert!(
        failures.is_empty(),
        "token {authorization:?}:\n{}",
        failures.join("\n")
    );
}

async fn refused_token(w: &World, token: &str) {
    refused_everywhere(w, Some(&format!("Bearer {token}"))).await;
}

#[tokio::test]
async fn the_forging_helpers_make_tokens_the_service_accepts() {
    // Guards every test below: a well-formed EdDSA token with the real key gets through, so
    // their 401s come from the one thing each of them breaks.
    let w = World::new().await;
    let token = eddsa(&w, valid_claims(&w));
    let path = format!("/member/{}", w.a.member_id);
    let (status, body) =
        w.t.call(
            cafe_local::testing::request("GET", &path)
                .bearer(&token)
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn no_or_malformed_authorization_is_401() {
    let w = World::new().await;
    refused_everywhere(&w, None).await;
    for header in [
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        &w.a.access,
        "Token abc",
        "Bearer a.b",
    ] {
        refused_everywhere(&w, Some(header)).await;
    }
}

#[tokio::test]
async fn a_tampered_signature_is_401() {
    let w = World::new().await;
    let mut token = w.a.access.clone();
    let last = token.pop().expect("non-empty token");
    token.push(if last == 'A' { 'B' } else { 'A' });
    refused_token(&w, &token).await;
    let (signing_input, _) = w.a.access.rsplit_once('.').expect("three parts");
    refused_token(&w, &format!("{signing_input}.")).await;
}

#[tokio::test]
async fn claims_swapped_under_a_valid_signature_are_401() {
    let w = World::new().await;
    let parts: Vec<&str> = w.b.access.split('.').collect();
    let claims = b64(&valid_claims(&w));
    refused_token(&w, &format!("{}.{claims}.{}", parts[0], parts[2])).await;
}

#[tokio::test]
async fn alg_none_is_401() {
    let w = World::new().await;
    for alg in ["none", "None", "NONE", "nOnE"] {
        let kid = keyset(&w).current.kid;
        let token = jwt(
            json!({"alg": alg, "typ": "JWT", "kid": kid}),
            valid_claims(&w),
            |_| Vec::new(),
        );
        refused_token(&w, &token).await;
    }
}

#[tokio::test]
async fn hmac_tokens_keyed_with_the_public_key_are_401() {
    // Algorithm confusion: the public key is public, so an HMAC keyed with it proves nothing.
    let w = World::new().await;
    let x = public_x(&w);
    let kid = keyset(&w).current.kid;
    for (alg, sign) in [
        ("HS256", hmac_sha256 as fn(&[u8], &str) -> Vec<u8>),
        ("HS512", hmac_sha512),
        ("RS256", hmac_sha256),
        ("ES256", hmac_sha256),
    ] {
        let token = jwt(
            json!({"alg": alg, "typ": "JWT", "kid": kid}),
            valid_claims(&w),
            |input| sign(&x, input),
        );
        refused_token(&w, &token).await;
    }
}

#[tokio::test]
async fn a_token_signed_by_any_key_but_the_auth_key_is_401() {
    let w = World::new().await;
    let ours = keyset(&w);
    // Another Ed25519 key claiming our key's id, and under an id nobody published.
    let mut foreign = cafe::auth::SigningKeyset::generate(chrono::Utc::now());
    refused_token(&w, &signed_by(&foreign.current, valid_claims(&w))).await;
    foreign.current.kid = ours.current.kid.clone();
    refused_token(&w, &signed_by(&foreign.current, valid_claims(&w))).await;
    // No kid at all, over a valid signature.
    let encoding = ours.current.encoding_key().expect("key");
    let no_kid = jwt(
        json!({"alg": "EdDSA", "typ": "JWT"}),
        valid_claims(&w),
        |input| {
            let signature =
                jsonwebtoken::crypto::sign(input.as_bytes(), &encoding, Algorithm::EdDSA)
                    .expect("signed");
            URL_SAFE_NO_PAD.decode(signature).expect("base64url")
        },
    );
    refused_token(&w, &no_kid).await;
}

#[tokio::test]
async fn a_token_for_another_issuer_or_audience_is_401() {
    let w = World::new().await;
    let now = now(&w);
    let sub = w.a.member_id.clone();
    for claims in [
        json!({"sub": sub, "iss": "evil", "aud": AUD, "iat": now, "exp": now + 600}),
        json!({"sub": sub, "iss": ISS, "aud": "another-api", "iat": now, "exp": now + 600}),
        json!({"sub": sub, "aud": AUD, "iat": now, "exp": now + 600}),
        json!({"sub": sub, "iss": ISS, "iat": now, "exp": now + 600}),
        json!({"sub": sub, "iss": ISS, "aud": [], "iat": now, "exp": now + 600}),
    ] {
        refused_token(&w, &eddsa(&w, claims)).await;
    }
}

#[tokio::test]
async fn a_token_signed_by_a_rotated_out_key_is_401() {
    // Two rotations later the old current key is no longer published: its tokens are dead
    // (their 30 minutes are long over by then in a real rotation schedule).
    let w = World::new().await;
    let first = keyset(&w);
    let rotated_twice = first
        .rotated(chrono::Utc::now())
        .rotated(chrono::Utc::now());
    let mut config = w.t.app.config.clone();
    config.token_signing_keys = KeySetting::Inline(rotated_twice);
    let rotated_verifier = cafe::app::access_tokens(&config, None).expect("tokens");
    let token = eddsa(&w, valid_claims(&w));
    assert_eq!(
        rotated_verifier.verify(&token, w.t.clock.now()).await,
        Err(cafe::Error::Unauthorized)
    );
    assert_eq!(
        w.t.app
            .tokens
            .verify(&token, w.t.clock.now())
            .await
            .as_deref(),
        Ok(w.a.member_id.as_str()),
        "the same token verifies where the key is still published"
    );
}

#[tokio::test]
async fn an_expired_token_is_401() {
    let w = World::new().await;
    let now = now(&w);
    for exp in [now, now - 1, now - 86_400] {
        let token = eddsa(
            &w,
            json!({"sub": w.a.member_id, "iss": ISS, "aud": AUD, "iat": now - 1800, "exp": exp}),
        );
        refused_token(&w, &token).await;
    }
    // And a real token once the service clock has passed its lifetime.
    w.t.clock.advance(chrono::Duration::minutes(30));
    refused_token(&w, &w.a.access).await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_401() {
    let w = World::new().await;
    let now = now(&w);
    let token = eddsa(
        &w,
        json!({"sub": w.a.member_id, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600, "nbf": now + 60}),
    );
    refused_token(&w, &token).await;
}

#[tokio::test]
async fn a_token_without_a_usable_sub_is_401() {
    let w = World::new().await;
    let now = now(&w);
    for claims in [
        json!({"iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}),
        json!({"sub": "", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}),
        json!({"sub": null, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}),
        json!({"sub": 42, "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}),
        json!({"sub": "01JD00000000000000000000ZZ", "iss": ISS, "aud": AUD, "iat": now, "exp": now + 600}),
        json!({"sub": w.a.member_id, "iss": ISS, "aud": AUD, "exp": now + 600}),
        json!({"sub": w.a.member_id, "iss": ISS, "aud": AUD, "iat": now}),
        json!({"sub": w.a.member_id, "iss": ISS, "aud": AUD, "iat": now, "exp": "never"}),
    ] {
        refused_token(&w, &eddsa(&w, claims)).await;
    }
}

#[tokio::test]
async fn an_ended_members_token_is_401() {
    let w = World::new().await;
    let store = &w.t.parts.store;
    let member = store
        .get_member(&w.w.member_id)
        .await
        .expect("read")
        .expect("member");
    let withdrawn_at = member.withdrawn_at.expect("withdrawn");
    let at = w.t.clock.now();
    let event = DomainEvent::member(EventType::MemberExpired, &w.w.member_id, "END", at);
    assert!(
        store
            .end_member(&w.w.member_id, withdrawn_at, at, &event)
            .await
            .expect("end")
    );
    let mut failures = Vec::new();
    // Its own id on the member endpoints, and every other protected endpoint.
    let own = |template: &'static str, method: &'static str| {
        raw(method, template).param("memberId", &w.w.member_id)
    };
    let mut requests = vec![
        own("/member/{memberId}", "GET"),
        own("/member/{memberId}/withdraw", "DELETE"),
        own("/member/{memberId}/restore", "POST"),
    ];
    requests.extend(protected(&w).into_iter().skip(3));
    for req in requests {
        let label = format!("{} {}", req.method, req.template);
        let before = w.snapshot().await;
        let answer = w.send(req.bearer(&w.w.access)).await;
        if let Some(problem) = answer.check_failure(&["401CO000"]) {
            failures.push(format!("{label}: {problem}"));
        }
        if before != w.snapshot().await {
            failures.push(format!("{label}: changed stored state"));
        }
    }
    let (status, body) =
        w.t.call(
            cafe_local::testing::request("POST", "/auth/refresh")
                .json(&json!({"refreshToken": w.w.refresh}))
                .build(),
        )
        .await;
    if status != 401 || body["error"]["code"] != "401CO000" {
        failures.push(format!("refresh of an ended member: {status} {body}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_withdrawn_member_may_not_order_or_pay() {
    let w = World::new().await;
    let m = w.t.sign_up().await;
    let body = json!({"items": [{"itemId": common::COLA, "quantity": 1}]});
    let answer = w
        .send(raw("POST", "/order").bearer(&m.access).json(&body))
        .await;
    assert_eq!(answer.status, 201, "{:?}", answer.json);
    let order_id = answer
        .json
        .as_ref()
        .and_then(|b| b["result"]["orderId"].as_str())
        .expect("id")
        .to_owned();
    let answer = w
        .send(
            raw("DELETE", "/member/{memberId}/withdraw")
                .param("memberId", &m.member_id)
                .bearer(&m.access),
        )
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let before = w.snapshot().await;
    let order = w
        .send(raw("POST", "/order").bearer(&m.access).json(&body))
        .await;
    assert_eq!(order.check_failure(&["403CO000"]), None);
    let pay = json!({"orderId": order_id, "payments": [{"amount": 1500, "type": "CARD"}]});
    let paid = w
        .send(raw("POST", "/payment").bearer(&m.access).json(&pay))
        .await;
    assert_eq!(paid.check_failure(&["403CO000"]), None);
    assert_eq!(
        before,
        w.snapshot().await,
        "a withdrawn member changed stored state"
    );
}

#[tokio::test]
async fn another_members_id_or_order_is_403_on_every_id_bearing_endpoint() {
    let w = World::new().await;
    let b = &w.b.member_id;
    let requests = vec![
        raw("GET", "/member/{memberId}").param("memberId", b),
        raw("DELETE", "/member/{memberId}/withdraw").param("memberId", b),
        raw("POST", "/member/{memberId}/restore").param("memberId", b),
        raw("GET", "/order/{orderId}").param("orderId", &w.b_pending),
        raw("DELETE", "/order/{orderId}/cancel").param("orderId", &w.b_pending),
        raw("POST", "/payment")
            .json(&json!({"orderId": w.b_pending, "payments": [{"amount": 1500, "type": "CARD"}]})),
        // The withdrawn member's id from an in-service member (restore is the tempting one).
        raw("POST", "/member/{memberId}/restore").param("memberId", &w.w.member_id),
        raw("GET", "/member/{memberId}").param("memberId", &w.w.member_id),
    ];
    let mut failures = Vec::new();
    for req in requests {
        let label = format!("{} {} {:?}", req.method, req.template, req.params);
        let before = w.snapshot().await;
        let answer = w.send(req.bearer(&w.a.access)).await;
        if let Some(problem) = answer.check_failure(&["403CO000"]) {
            failures.push(format!("{label}: {problem}"));
        }
        let body = answer.json.map(|b| b.to_string()).unwrap_or_default();
        if body.contains(b) || body.contains(&w.b.email) {
            failures.push(format!(
                "{label}: the answer leaks the other member: {body}"
            ));
        }
        if before != w.snapshot().await {
            failures.push(format!("{label}: changed stored state"));
        }
    }
    // The list shows only the caller's orders.
    let list = w.send(raw("GET", "/orders").bearer(&w.a.access)).await;
    let listed = list.json.map(|b| b.to_string()).unwrap_or_default();
    if list.status != 200 || listed.contains(&w.b_pending) || !listed.contains(&w.a_pending) {
        failures.push(format!("GET /orders: {} {listed}", list.status));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn login(w: &World, email: &str, password: &str) -> (u16, Value, Duration) {
    let body = json!({"email": email, "password": password});
    let started = Instant::now();
    let answer = w.send(raw("POST", "/auth/login").json(&body)).await;
    (
        answer.status,
        answer.json.unwrap_or(Value::Null),
        started.elapsed(),
    )
}

#[tokio::test]
async fn login_answers_unknown_email_wrong_password_and_ended_member_the_same() {
    let w = World::new().await;
    let store = &w.t.parts.store;
    let member = store
        .get_member(&w.w.member_id)
        .await
        .expect("read")
        .expect("member");
    let at = w.t.clock.now();
    let event = DomainEvent::member(EventType::MemberExpired, &w.w.member_id, "END", at);
    assert!(
        store
            .end_member(
                &w.w.member_id,
                member.withdrawn_at.expect("withdrawn"),
                at,
                &event
            )
            .await
            .expect("end")
    );
    let unknown = login(&w, "nobody@cafe.example", cafe_local::testing::PASSWORD).await;
    let wrong = login(&w, &w.a.email, "not the password").await;
    let ended = login(&w, &w.w.email, cafe_local::testing::PASSWORD).await;
    let other_case = login(&w, &w.a.email.to_uppercase(), "not the password").await;
    assert_eq!(unknown.0, 401);
    assert_eq!(unknown.1["error"]["code"], "401ME000");
    for (label, answer) in [
        ("wrong password", &wrong),
        ("ended member", &ended),
        ("upper-case email", &other_case),
    ] {
        assert_eq!((answer.0, &answer.1), (unknown.0, &unknown.1), "{label}");
    }
}

/// The fastest of the samples: what the work itself costs. A busy machine (parallel tests, a
/// build beside them) only adds time, and a median of 15 can still catch it on one side only
/// (CI once saw 5.6 ms against 2.6 ms that way); a skipped verification lowers the minimum.
fn fastest(samples: Vec<Duration>) -> Duration {
    samples.into_iter().min().unwrap_or_default()
}

#[tokio::test]
async fn login_takes_about_as_long_for_an_unknown_email_as_for_a_wrong_password() {
    // Realistic enough Argon2 that a skipped verification would stand out against the noise.
    let mut config = cafe::testing::test_config();
    config.argon2.memory_kib = 4 * 1024;
    config.argon2.iterations = 2;
    // 15 wrong passwords for one email: above the throttle's default, which is tested below.
    config.login_throttle.per_email = 100;
    let t = cafe_local::testing::TestApp::with_config(config).await;
    let member = t.sign_up().await;
    let send = |email: String, password: &'static str| {
        let req = raw("POST", "/auth/login").json(&json!({"email": email, "password": password}));
        let app = &t.app;
        async move {
            let started = Instant::now();
            let answer = req.send(app).await;
            (answer.status, started.elapsed())
        }
    };
    let (mut unknown, mut wrong, mut invalid) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved, so that a slow moment of the machine hits every kind alike.
    for i in 0..15 {
        let (status, took) = send(format!("nobody{i}@cafe.example"), "some password").await;
        assert_eq!(status, 401);
        unknown.push(took);
        let (status, took) = send(member.email.clone(), "some password").await;
        assert_eq!(status, 401);
        wrong.push(took);
        // Refused before any password work: the floor the other two must stand well above.
        let (status, took) = send(format!("nobody{i}"), "some password").await;
        assert_eq!(status, 400);
        invalid.push(took);
    }
    let (unknown, wrong, invalid) = (fastest(unknown), fastest(wrong), fastest(invalid));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unknown email {unknown:?} vs wrong password {wrong:?} (ratio {ratio:.2})"
    );
    assert!(
        invalid * 3 < unknown && invalid * 3 < wrong,
        "password work does not show: invalid {invalid:?}, unknown {unknown:?}, wrong {wrong:?}"
    );
}

/// A log-in from `ip` (what API Gateway puts in `requestContext.http.sourceIp`).
async fn login_from(
    t: &cafe_local::testing::TestApp,
    email: &str,
    password: &str,
    ip: &str,
) -> (u16, Value, Option<String>) {
    let req = cafe_local::testing::request("POST", "/auth/login")
        .json(&json!({"email": email, "password": password}))
        .from_ip(ip)
        .build();
    let response = cafe_local::dispatch("auth-login", req, &t.app).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    (status, cafe_local::testing::json_of(&response), retry_after)
}

#[tokio::test]
async fn the_eleventh_failed_login_in_a_minute_is_429_for_that_email_only() {
    let t = cafe_local::testing::TestApp::new().await;
    let target = t.sign_up().await;
    let bystander = t.sign_up().await;
    // Ten wrong passwords, each from another address: the email's own limit.
    for i in 0..10 {
        let (status, body, _) = login_from(
            &t,
            &target.email,
            "wrong password",
            &format!("198.51.100.{i}"),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("401ME000")),
            "{body}"
        );
    }
    t.clock.advance(chrono::Duration::seconds(20));
    // The 11th, even with the right password: refused before any password check.
    let (status, body, retry_after) = login_from(
        &t,
        &target.email,
        cafe_local::testing::PASSWORD,
        "198.51.100.99",
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["status"], "fail");
    assert_eq!(body["error"]["code"], "429CO000");
    assert!(body["error"]["detailMessage"].is_string());
    assert_eq!(
        retry_after.as_deref(),
        Some("40"),
        "the first failure leaves the window in 40 s"
    );
    // In any case of the email.
    let (status, _, _) = login_from(&t, &target.email.to_uppercase(), "x", "198.51.100.98").await;
    assert_eq!(status, 429);
    // Another email from the same addresses is not affected.
    let (status, body, _) = login_from(
        &t,
        &bystander.email,
        cafe_local::testing::PASSWORD,
        "198.51.100.1",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A minute after the first failures, the right password works again.
    t.clock.advance(chrono::Duration::seconds(41));
    let (status, body, _) = login_from(
        &t,
        &target.email,
        cafe_local::testing::PASSWORD,
        "198.51.100.99",
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_throttled_known_email_and_unknown_email_get_the_same_answer() {
    let t = cafe_local::testing::TestApp::new().await;
    let known = t.sign_up().await;
    let unknown = "nobody-at-all@cafe.example";
    let mut answers = Vec::new();
    for email in [known.email.as_str(), unknown] {
        for _ in 0..10 {
            let (status, _, _) = login_from(&t, email, "wrong password", "192.0.2.10").await;
            assert_eq!(status, 401);
        }
        let (status, body, retry_after) =
            login_from(&t, email, "wrong password", "192.0.2.11").await;
        answers.push((status, body, retry_after));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, 429);
}

#[tokio::test]
async fn many_emails_from_one_address_are_throttled_per_address() {
    let t = cafe_local::testing::TestApp::new().await;
    let member = t.sign_up().await;
    // Credential stuffing: one try per email from one address; the address allows 50.
    for i in 0..50 {
        let (status, _, _) = login_from(
            &t,
            &format!("victim{i}@cafe.example"),
            "guess",
            "203.0.113.50",
        )
        .await;
        assert_eq!(status, 401, "attempt {i}");
    }
    let (status, _, retry_after) = login_from(
        &t,
        &member.email,
        cafe_local::testing::PASSWORD,
        "203.0.113.50",
    )
    .await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    // The member, from their own address, logs in.
    let (status, _, _) = login_from(
        &t,
        &member.email,
        cafe_local::testing::PASSWORD,
        "203.0.113.51",
    )
    .await;
    assert_eq!(status, 200);
}

/// A log-in from `ip`, presenting `device_token` when given: status and body.
async fn login_on_device(
    t: &cafe_local::testing::TestApp,
    email: &str,
    password: &str,
    ip: &str,
    device_token: Option<&str>,
) -> (u16, Value) {
    let mut body = json!({"email": email, "password": password});
    if let Some(token) = device_token {
        body["deviceToken"] = json!(token);
    }
    let req = cafe_local::testing::request("POST", "/auth/login")
        .json(&body)
        .from_ip(ip)
        .build();
    let response = cafe_local::dispatch("auth-login", req, &t.app).await;
    let status = response.status().as_u16();
    (status, cafe_local::testing::json_of(&response))
}

/// The owner's device token: what their last successful log-in answered.
async fn owners_device(t: &cafe_local::testing::TestApp, email: &str) -> String {
    let (status, body) =
        login_on_device(t, email, cafe_local::testing::PASSWORD, "192.0.2.200", None).await;
    assert_eq!(status, 200, "{body}");
    body["result"]["deviceToken"]
        .as_str()
        .expect("a log-in answers a device token")
        .to_owned()
}

#[tokio::test]
async fn an_attacker_at_one_address_cannot_stop_the_owner_logging_in_from_their_device() {
    let t = cafe_local::testing::TestApp::new().await;
    let owner = t.sign_up().await;
    let mut device = owners_device(&t, &owner.email).await;
    // The attacker keeps the email locked for strangers: ten failures a window, every window.
    for round in 0..3 {
        let mut refused = 0;
        for _ in 0..15 {
            let (status, _) =
                login_on_device(&t, &owner.email, "guess", "203.0.113.66", None).await;
            assert!(status == 401 || status == 429, "{status}");
            refused += usize::from(status == 429);
        }
        assert_eq!(
            refused, 5,
            "round {round}: the email is locked for strangers"
        );
        // The owner, on their device (another address), gets in; and again with the renewed
        // token the answer carries.
        let (status, body) = login_on_device(
            &t,
            &owner.email,
            cafe_local::testing::PASSWORD,
            "198.51.100.20",
            Some(&device),
        )
        .await;
        assert_eq!(status, 200, "round {round}: {body}");
        device = body["result"]["deviceToken"]
            .as_str()
            .expect("renewed")
            .to_owned();
        // A stranger with the right password but no device token is still held back: that is
        // the price of the lock, and what the device token lifts.
        let (status, _) = login_on_device(
            &t,
            &owner.email,
            cafe_local::testing::PASSWORD,
            "198.51.100.21",
            None,
        )
        .await;
        assert_eq!(status, 429);
        t.clock.advance(chrono::Duration::seconds(61));
    }
}

#[tokio::test]
async fn a_nat_neighbours_failures_do_not_lock_a_bystander_who_has_a_device_token() {
    let t = cafe_local::testing::TestApp::new().await;
    let bystander = t.sign_up().await;
    let device = owners_device(&t, &bystander.email).await;
    let nat = "100.64.0.1";
    // A neighbour behind the same address tries a leaked list: the address's 50, then refused.
    for i in 0..60 {
        let (status, _) =
            login_on_device(&t, &format!("leaked{i}@cafe.example"), "guess", nat, None).await;
        assert_eq!(status, if i < 50 { 401 } else { 429 }, "attempt {i}");
    }
    // The bystander's trusted device, same address: in.
    let (status, body) = login_on_device(
        &t,
        &bystander.email,
        cafe_local::testing::PASSWORD,
        nat,
        Some(&device),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Without the token they share the neighbour's fate.
    let (status, _) = login_on_device(
        &t,
        &bystander.email,
        cafe_local::testing::PASSWORD,
        nat,
        None,
    )
    .await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn guessing_stays_within_the_documented_rate_per_account() {
    let t = cafe_local::testing::TestApp::new().await;
    let victim = t.sign_up().await;
    // The attacker's own account gives them a real device token, for the wrong email.
    let attacker = t.sign_up().await;
    let attackers_device = owners_device(&t, &attacker.email).await;
    let victims_device = owners_device(&t, &victim.email).await;
    let forged = {
        let (id, rest) = victims_device.split_once('.').expect("id");
        let (expires, _) = rest.split_once('.').expect("expiry");
        format!("{id}.{expires}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    };
    let stretched = {
        let (id, rest) = victims_device.split_once('.').expect("id");
        let (_, mac) = rest.split_once('.').expect("mac");
        format!("{id}.99999999999.{mac}")
    };
    let per_email = cafe::config::LoginThrottleConfig::default().per_email;
    for window in 0..2 {
        let mut guesses = 0;
        // Every trick but the real token, from a fresh address each time.
        for i in 0..40 {
            let token = match i % 4 {
                0 => None,
                1 => Some(attackers_device.as_str()),
                2 => Some(forged.as_str()),
                _ => Some(stretched.as_str()),
            };
            let ip = format!("203.0.113.{}", i + 1);
            let (status, body) = login_on_device(&t, &victim.email, "guess", &ip, token).await;
            match status {
                401 => guesses += 1,
                429 => {}
                other => panic!("{other}: {body}"),
            }
        }
        assert_eq!(
            guesses, per_email,
            "window {window}: password checks per account per window"
        );
        t.clock.advance(chrono::Duration::seconds(61));
    }
}

#[tokio::test]
async fn a_stolen_device_token_alone_buys_only_its_own_few_guesses() {
    let t = cafe_local::testing::TestApp::new().await;
    let owner = t.sign_up().await;
    let device = owners_device(&t, &owner.email).await;
    let per_device = cafe::config::LoginThrottleConfig::default().per_device;
    let mut guesses = 0;
    for i in 0..(per_device + 5) {
        let (status, _) = login_on_device(
            &t,
            &owner.email,
            "guess",
            &format!("198.51.100.{i}"),
            Some(&device),
        )
        .await;
        guesses += u32::from(status == 401);
    }
    assert_eq!(guesses, per_device);
    // The device is locked for the window; the email, for strangers, is not.
    let (status, _) = login_on_device(
        &t,
        &owner.email,
        cafe_local::testing::PASSWORD,
        "198.51.100.99",
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_malformed_device_token_is_a_400_naming_it() {
    let t = cafe_local::testing::TestApp::new().await;
    let owner = t.sign_up().await;
    for bad in [
        json!(""),
        json!("has space"),
        json!("x".repeat(257)),
        json!(5),
    ] {
        let req = cafe_local::testing::request("POST", "/auth/login")
            .json(&json!({"email": owner.email, "password": "x", "deviceToken": bad}))
            .build();
        let response = cafe_local::dispatch("auth-login", req, &t.app).await;
        let body = cafe_local::testing::json_of(&response);
        assert_eq!(response.status().as_u16(), 400, "{body}");
        assert!(
            body["error"]["detailMessage"]
                .as_str()
                .is_some_and(|m| m.contains("deviceToken")),
            "{body}"
        );
    }
}

/// A sign-up of a fresh email from `ip` with `password`: status, body and `Retry-After`.
async fn sign_up_from(
    t: &cafe_local::testing::TestApp,
    ip: &str,
    password: &str,
) -> (u16, Value, Option<String>) {
    sign_up_as(t, &cafe_local::testing::unique_email(), ip, password).await
}

/// [`sign_up_from`] with a chosen email.
async fn sign_up_as(
    t: &cafe_local::testing::TestApp,
    email: &str,
    ip: &str,
    password: &str,
) -> (u16, Value, Option<String>) {
    let mut body = cafe_local::testing::sign_up_body(email);
    body["password"] = json!(password);
    let req = cafe_local::testing::request("POST", "/member")
        .json(&body)
        .from_ip(ip)
        .build();
    let response = cafe_local::dispatch("member-signup", req, &t.app).await;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    (status, cafe_local::testing::json_of(&response), retry_after)
}

/// The member id stored for `email`, if any.
async fn stored(t: &cafe_local::testing::TestApp, email: &str) -> Option<String> {
    cafe::store::MemberStore::find_member_by_email(t.parts.store.as_ref(), email)
        .await
        .expect("read")
        .map(|m| m.member_id)
}

#[tokio::test]
async fn sign_ups_are_throttled_per_source_address_before_any_hash() {
    let t = cafe_local::testing::TestApp::new().await;
    let limit = cafe::config::SignupThrottleConfig::default().per_source;
    for i in 0..limit {
        let (status, body, _) = sign_up_from(&t, "203.0.113.80", "correct horse battery").await;
        assert_eq!(status, 201, "sign-up {i}: {body}");
    }
    let refused = cafe_local::testing::unique_email();
    let (status, body, retry_after) =
        sign_up_as(&t, &refused, "203.0.113.80", "correct horse battery").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "429CO000");
    assert!(retry_after.is_some_and(|s| s.parse::<u32>().is_ok_and(|s| s > 0)));
    assert_eq!(stored(&t, &refused).await, None, "nobody stored");
    // Another address signs up; after the window, this one may again.
    let (status, _, _) = sign_up_from(&t, "203.0.113.81", "correct horse battery").await;
    assert_eq!(status, 201);
    t.clock.advance(chrono::Duration::seconds(601));
    let (status, _, _) = sign_up_from(&t, "203.0.113.80", "correct horse battery").await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn the_most_common_breached_passwords_are_refused_at_sign_up() {
    let t = cafe_local::testing::TestApp::new().await;
    for common in [
        "12345678",
        "password",
        "Password1",
        "        ",
        "qwertyuiop",
        "aaaaaaaa",
    ] {
        let email = cafe_local::testing::unique_email();
        let (status, body, _) = sign_up_as(&t, &email, "192.0.2.30", common).await;
        assert_eq!(stored(&t, &email).await, None, "{common:?} stored nothing");
        assert_eq!(status, 400, "{common:?}: {body}");
        assert_eq!(body["error"]["code"], "400ME003", "{common:?}: {body}");
        assert!(
            body["error"]["detailMessage"]
                .as_str()
                .is_some_and(|m| m.contains("common")),
            "{body}"
        );
    }
    let (status, body, _) = sign_up_from(&t, "192.0.2.30", "kimchi stew at 7").await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_password_hash_does_not_hold_up_the_other_requests_of_the_process() {
    // An Argon2 cost well above the tests' (tens of milliseconds), on ONE runtime thread: a hash
    // computed on that thread would let nothing else run until it is done.
    let mut config = cafe::testing::test_config();
    config.argon2.memory_kib = 32 * 1024;
    config.argon2.iterations = 3;
    let t = cafe_local::testing::TestApp::with_config(config).await;
    let app = &t.app;
    let done = std::sync::atomic::AtomicBool::new(false);
    let sign_up = async {
        let (status, body) = cafe_local::testing::call(
            app,
            cafe_local::testing::request("POST", "/member")
                .json(&cafe_local::testing::sign_up_body(
                    &cafe_local::testing::unique_email(),
                ))
                .build(),
        )
        .await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (status, body)
    };
    let browse = async {
        let mut served_meanwhile = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let (status, _) = cafe_local::testing::call(
                app,
                cafe_local::testing::request("GET", "/items").build(),
            )
            .await;
            assert_eq!(status, 200);
            served_meanwhile += 1;
            tokio::task::yield_now().await;
        }
        served_meanwhile
    };
    let ((status, body), served) = tokio::join!(sign_up, browse);
    assert_eq!(status, 201, "{body}");
    assert!(
        served >= 5,
        "only {served} menu reads were served while the password was hashed"
    );
}
