//! The contract of sign-up, profile, withdraw, restore and items, through the real handlers
//! (`dispatch`) on an in-memory app with a manual clock. Login, refresh and tokens are in
//! `auth_contract.rs`.

use cafe::domain::{EventType, MemberStatus};
use cafe::store::{ItemStore, MemberStore};
use cafe_local::testing::{TestApp, assert_failure, request, sign_up_body, unique_email};
use chrono::Duration;
use serde_json::{Value, json};

fn sign_up_request(body: &Value) -> lambda_http::Request {
    request("POST", "/member").json(body).build()
}

#[tokio::test]
async fn sign_up_stores_a_service_member_with_history_and_event() {
    let t = TestApp::new().await;
    let (status, body) = t
        .call(sign_up_request(&sign_up_body("Mixed.Case@Cafe.Example")))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "success");
    let result = &body["result"];
    let member_id = result["memberId"].as_str().expect("memberId");
    assert!(cafe::ids::is_well_formed(member_id));
    assert!(
        result["accessToken"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert!(
        result["refreshToken"]
            .as_str()
            .is_some_and(|t| t.len() == 43)
    );

    let stored = t
        .parts
        .store
        .get_member(member_id)
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(stored.status, MemberStatus::Service);
    assert_eq!(stored.email, "mixed.case@cafe.example");
    assert_eq!(stored.name, "Kim Minji");
    let (_, password) = t
        .parts
        .store
        .find_member_for_log_in("mixed.case@cafe.example")
        .await
        .expect("read")
        .expect("found");
    let password = password.expect("a stored password");
    assert!(password.phc().starts_with("$argon2id$"));
    assert!(!password.phc().contains("correct horse"));
    assert_eq!(stored.created_at, cafe::testing::epoch());
    let history = t
        .parts
        .store
        .member_history(member_id)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].status.as_str(), history[0].at),
        ("SERVICE", cafe::testing::epoch())
    );
    let events = t.parts.events.events();
    assert_eq!(t.parts.events.types(), vec![EventType::MemberRegistered]);
    assert_eq!(events[0].detail["memberId"], member_id);
}

#[tokio::test]
async fn sign_up_refuses_bodies_that_are_not_a_json_object() {
    let t = TestApp::new().await;
    let trailing = format!("{} trailing", sign_up_body(&unique_email()));
    for raw in [
        "",
        "not json",
        "[1,2]",
        "{",
        r#"{"name":"a","#,
        &trailing,
        "null",
    ] {
        let (status, body) = t.call(request("POST", "/member").text(raw).build()).await;
        assert_failure(status, &body, "400CO000");
        assert_eq!(
            body["error"]["detailMessage"], "Parameter (body) is missing or invalid.",
            "{raw}"
        );
    }
    assert!(t.parts.events.events().is_empty());
}

#[tokio::test]
async fn sign_up_names_each_missing_field() {
    let t = TestApp::new().await;
    for field in [
        "name",
        "email",
        "phoneNumber",
        "gender",
        "birth",
        "password",
    ] {
        let mut body = sign_up_body(&unique_email());
        body.as_object_mut().expect("object").remove(field);
        let (status, answer) = t.call(sign_up_request(&body)).await;
        assert_failure(status, &answer, "400CO000");
        assert_eq!(
            answer["error"]["detailMessage"],
            format!("Parameter ({field}) is missing or invalid.")
        );
    }
    assert!(t.parts.events.events().is_empty());
}

#[tokio::test]
async fn sign_up_names_each_mistyped_or_out_of_range_field() {
    let t = TestApp::new().await;
    let cases: Vec<(&str, Value)> = vec![
        ("name", json!(1)),
        ("name", json!("")),
        ("name", json!("   ")),
        ("name", json!("a".repeat(51))),
        ("name", json!(null)),
        ("email", json!(5)),
        ("email", json!("no-at-sign")),
        ("email", json!("a@nodot")),
        ("email", json!("two@@cafe.example")),
        ("email", json!("a b@cafe.example")),
        ("email", json!("@cafe.example")),
        ("email", json!(format!("{}@cafe.example", "a".repeat(250)))),
        ("phoneNumber", json!(1012345678)),
        ("phoneNumber", json!("01012345678")),
        ("phoneNumber", json!("010-1234-567")),
        ("phoneNumber", json!("012-1234-5678")),
        ("gender", json!("OTHER")),
        ("gender", json!("male")),
        ("gender", json!(1)),
        ("birth", json!("1995-13-01")),
        ("birth", json!("19950412")),
        ("birth", json!(19950412)),
        // The manual clock's today (2026-01-15) and the future are not past dates.
        ("birth", json!("2026-01-15")),
        ("birth", json!("2030-01-01")),
        ("password", json!("short")),
        ("password", json!(12345678)),
        ("password", json!("p".repeat(129))),
    ];
    for (field, value) in cases {
        let mut body = sign_up_body(&unique_email());
        body[field] = value.clone();
        let (status, answer) = t.call(sign_up_request(&body)).await;
        assert_failure(status, &answer, "400CO000");
        assert_eq!(
            answer["error"]["detailMessage"],
            format!("Parameter ({field}) is missing or invalid."),
            "{field} = {value}"
        );
    }
    let mut body = sign_up_body(&unique_email());
    body["admin"] = json!(true);
    let (status, answer) = t.call(sign_up_request(&body)).await;
    assert_failure(status, &answer, "400CO000");
    assert_eq!(
        answer["error"]["detailMessage"],
        "Parameter (admin) is missing or invalid."
    );
    assert!(t.parts.events.events().is_empty(), "nothing may be stored");
}

#[tokio::test]
async fn sign_up_refuses_a_registered_email_in_any_case() {
    let t = TestApp::new().await;
    let (status, _) = t
        .call(sign_up_request(&sign_up_body("Kim@Cafe.Example")))
        .await;
    assert_eq!(status, 201);
    for again in ["Kim@Cafe.Example", "kim@cafe.example", "KIM@CAFE.EXAMPLE"] {
        let (status, body) = t.call(sign_up_request(&sign_up_body(again))).await;
        assert_failure(status, &body, "400ME000");
    }
    assert_eq!(t.parts.events.types(), vec![EventType::MemberRegistered]);
}

#[tokio::test]
async fn profile_shows_the_member_and_history_but_never_the_hash() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let path = format!("/member/{}", me.member_id);
    let (status, body) = t
        .call(request("GET", &path).bearer(&me.access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"],
        json!({
            "memberId": me.member_id,
            "name": "Kim Minji",
            "email": me.email,
            "phoneNumber": "010-1234-5678",
            "gender": "FEMALE",
            "birth": "1995-04-12",
            "status": "SERVICE",
            "role": "CUSTOMER",
            "createdAt": "2026-01-15T09:00:00.000Z",
            "history": [{"status": "SERVICE", "at": "2026-01-15T09:00:00.000Z"}],
        })
    );
    assert!(!body.to_string().contains("argon2"));
}

#[tokio::test]
async fn member_endpoints_refuse_another_members_id() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let other = t.sign_up().await;
    for (method, path) in [
        ("GET", format!("/member/{}", other.member_id)),
        ("DELETE", format!("/member/{}/withdraw", other.member_id)),
        ("POST", format!("/member/{}/restore", other.member_id)),
    ] {
        let (status, body) = t
            .call(request(method, &path).bearer(&me.access).build())
            .await;
        assert_failure(status, &body, "403CO000");
    }
    let untouched = t
        .parts
        .store
        .get_member(&other.member_id)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(untouched.status, MemberStatus::Service);
}

#[tokio::test]
async fn withdraw_moves_to_withdrawn_with_history_and_event() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    t.clock.advance(Duration::minutes(5));
    let withdraw = format!("/member/{}/withdraw", me.member_id);
    let (status, body) = t
        .call(request("DELETE", &withdraw).bearer(&me.access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], "WITHDRAWN");
    assert_eq!(body["result"]["withdrawnAt"], "2026-01-15T09:05:00.000Z");

    let stored = t
        .parts
        .store
        .get_member(&me.member_id)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(stored.status, MemberStatus::Withdrawn);
    assert_eq!(
        stored.withdrawn_at,
        Some(cafe::testing::epoch() + Duration::minutes(5))
    );
    let history = t
        .parts
        .store
        .member_history(&me.member_id)
        .await
        .expect("history");
    let statuses: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(statuses, ["SERVICE", "WITHDRAWN"]);
    assert_eq!(
        t.parts.events.types(),
        vec![EventType::MemberRegistered, EventType::MemberWithdrawn]
    );

    // The token stays valid after withdrawal, and the profile shows it.
    let (status, profile) = t
        .call(
            request("GET", &format!("/member/{}", me.member_id))
                .bearer(&me.access)
                .build(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(profile["result"]["status"], "WITHDRAWN");
    assert_eq!(profile["result"]["withdrawnAt"], "2026-01-15T09:05:00.000Z");
    assert_eq!(profile["result"]["history"][1]["status"], "WITHDRAWN");

    // Twice → 400ME001, nothing written.
    let (status, body) = t
        .call(request("DELETE", &withdraw).bearer(&me.access).build())
        .await;
    assert_failure(status, &body, "400ME001");
    assert_eq!(
        t.parts
            .store
            .member_history(&me.member_id)
            .await
            .expect("history")
            .len(),
        2
    );
    assert_eq!(t.parts.events.events().len(), 2);
}

#[tokio::test]
async fn restore_within_thirty_days_brings_the_member_back() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let withdraw = format!("/member/{}/withdraw", me.member_id);
    let (status, _) = t
        .call(request("DELETE", &withdraw).bearer(&me.access).build())
        .await;
    assert_eq!(status, 200);
    t.clock.advance(Duration::days(30) - Duration::seconds(1));
    // The first access token expired long ago; a withdrawn member may still log in.
    let access = log_in(&t, &me.email).await;
    let restore = format!("/member/{}/restore", me.member_id);
    let (status, body) = t
        .call(request("POST", &restore).bearer(&access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["status"], "SERVICE");
    assert!(body["result"].get("withdrawnAt").is_none());

    let stored = t
        .parts
        .store
        .get_member(&me.member_id)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(
        (stored.status, stored.withdrawn_at),
        (MemberStatus::Service, None)
    );
    let history = t
        .parts
        .store
        .member_history(&me.member_id)
        .await
        .expect("history");
    let statuses: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(statuses, ["SERVICE", "WITHDRAWN", "SERVICE"]);
    assert_eq!(
        t.parts.events.types(),
        vec![
            EventType::MemberRegistered,
            EventType::MemberWithdrawn,
            EventType::MemberRestored
        ]
    );

    // Not withdrawn any more → 400ME002.
    let (status, body) = t
        .call(request("POST", &restore).bearer(&access).build())
        .await;
    assert_failure(status, &body, "400ME002");
}

#[tokio::test]
async fn restore_after_thirty_days_is_refused() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let withdraw = format!("/member/{}/withdraw", me.member_id);
    let (status, _) = t
        .call(request("DELETE", &withdraw).bearer(&me.access).build())
        .await;
    assert_eq!(status, 200);
    t.clock.advance(Duration::days(30));
    let access = log_in(&t, &me.email).await;
    let restore = format!("/member/{}/restore", me.member_id);
    let (status, body) = t
        .call(request("POST", &restore).bearer(&access).build())
        .await;
    assert_failure(status, &body, "400ME002");
    let stored = t
        .parts
        .store
        .get_member(&me.member_id)
        .await
        .expect("read")
        .expect("member");
    assert_eq!(stored.status, MemberStatus::Withdrawn);
    assert_eq!(t.parts.events.events().len(), 2);
}

#[tokio::test]
async fn restore_of_a_member_in_service_is_refused() {
    let t = TestApp::new().await;
    let me = t.sign_up().await;
    let restore = format!("/member/{}/restore", me.member_id);
    let (status, body) = t
        .call(request("POST", &restore).bearer(&me.access).build())
        .await;
    assert_failure(status, &body, "400ME002");
}

#[tokio::test]
async fn items_are_listed_and_fetched_one_by_one() {
    let t = TestApp::new().await;
    let (status, body) = t.call(request("GET", "/items").build()).await;
    assert_eq!(status, 200, "{body}");
    let items = body["result"]["items"].as_array().expect("items");
    let stored = t.parts.store.list_items().await.expect("items");
    assert_eq!(items.len(), 2);
    let public: Vec<_> = stored
        .iter()
        .map(cafe::services::staff::PublicItem::from)
        .collect();
    assert_eq!(
        serde_json::to_value(&public).expect("json"),
        body["result"]["items"]
    );
    assert!(
        items
            .iter()
            .any(|i| i["name"] == "Cola" && i["price"] == 1500 && i["stock"] == 10)
    );
    assert!(
        items
            .iter()
            .any(|i| i["name"] == "Book" && i["price"] == 25000 && i["stock"] == 15)
    );

    let cola = "01JC0FFEE00000000000000C01";
    let (status, body) = t
        .call(request("GET", &format!("/items/{cola}")).build())
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["result"],
        json!({"itemId": cola, "name": "Cola", "price": 1500, "stock": 10})
    );
    let (status, body) = t
        .call(request("GET", "/items/01JC0FFEE00000000000000X99").build())
        .await;
    assert_failure(status, &body, "404CO000");
}

async fn log_in(t: &TestApp, email: &str) -> String {
    let body = json!({"email": email, "password": cafe_local::testing::PASSWORD});
    let (status, answer) = t
        .call(request("POST", "/auth/login").json(&body).build())
        .await;
    assert_eq!(status, 200, "{answer}");
    answer["result"]["accessToken"]
        .as_str()
        .expect("token")
        .to_owned()
}
