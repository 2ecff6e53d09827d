//! Sessions end for good (issue 24, part 5): a role change or a withdrawal ends every session
//! the member had, a demoted clerk's token does not come back when the role is granted again,
//! refresh tokens do not outlive either, and `POST /auth/logout` ends one session or all of
//! them. Each test does what a member, a clerk or an admin would, over the handlers.

use cafe::domain::Role;
use cafe_local::testing::{
    SignedUp, TestApp, assert_failure, request, sign_up_body, staff, unique_email,
};
use serde_json::{Value, json};

async fn refresh(t: &TestApp, token: &str) -> (u16, Value) {
    t.call(
        request("POST", "/auth/refresh")
            .json(&json!({"refreshToken": token}))
            .build(),
    )
    .await
}

async fn logout(t: &TestApp, token: &str, everywhere: bool) -> (u16, Value) {
    t.call(
        request("POST", "/auth/logout")
            .json(&json!({"refreshToken": token, "everywhere": everywhere}))
            .build(),
    )
    .await
}

/// A fresh log-in: (access, refresh).
async fn log_in(t: &TestApp, email: &str) -> (String, String) {
    let (status, body) = t
        .call(
            request("POST", "/auth/login")
                .json(&json!({"email": email, "password": cafe_local::testing::PASSWORD}))
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = |name: &str| body["result"][name].as_str().expect("token").to_owned();
    (token("accessToken"), token("refreshToken"))
}

async fn set_role(t: &TestApp, admin: &SignedUp, member_id: &str, role: &str) {
    let (status, body) = t
        .call(
            request("PUT", &format!("/admin/members/{member_id}/role"))
                .bearer(&admin.access)
                .json(&json!({"role": role}))
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn queue(t: &TestApp, access: &str) -> (u16, Value) {
    t.call(request("GET", "/admin/orders").bearer(access).build())
        .await
}

async fn my_orders(t: &TestApp, access: &str) -> (u16, Value) {
    t.call(request("GET", "/orders").bearer(access).build())
        .await
}

#[tokio::test]
async fn a_demoted_clerks_token_stays_dead_when_the_role_is_granted_again() {
    let t = TestApp::new().await;
    let admin = staff(&t.app, Role::Admin).await;
    let clerk = staff(&t.app, Role::Staff).await;
    assert_eq!(queue(&t, &clerk.access).await.0, 200);

    set_role(&t, &admin, &clerk.member_id, "CUSTOMER").await;
    let (status, body) = queue(&t, &clerk.access).await;
    assert_failure(status, &body, "401CO000");
    // Re-promoted: the old token does not come back to life, anywhere, nor does its refresh.
    set_role(&t, &admin, &clerk.member_id, "STAFF").await;
    let (status, body) = queue(&t, &clerk.access).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = my_orders(&t, &clerk.access).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = refresh(&t, &clerk.refresh).await;
    assert_failure(status, &body, "401CO000");
    // The clerk logs in again and works.
    let (access, _) = log_in(&t, &clerk.email).await;
    assert_eq!(queue(&t, &access).await.0, 200);
}

#[tokio::test]
async fn a_granted_role_ends_the_customers_sessions_too() {
    let t = TestApp::new().await;
    let admin = staff(&t.app, Role::Admin).await;
    let member = t.sign_up().await;
    set_role(&t, &admin, &member.member_id, "STAFF").await;
    let (status, body) = my_orders(&t, &member.access).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = refresh(&t, &member.refresh).await;
    assert_failure(status, &body, "401CO000");
    let (access, _) = log_in(&t, &member.email).await;
    assert_eq!(
        queue(&t, &access).await.0,
        200,
        "the new role, after a log-in"
    );
}

#[tokio::test]
async fn a_withdrawal_ends_refresh_at_once_and_the_access_token_at_restore() {
    let t = TestApp::new().await;
    let member = t.sign_up().await;
    let path = format!("/member/{}", member.member_id);
    let (status, body) = t
        .call(
            request("DELETE", &format!("{path}/withdraw"))
                .bearer(&member.access)
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The refresh token dies with the withdrawal.
    let (status, body) = refresh(&t, &member.refresh).await;
    assert_failure(status, &body, "401CO000");
    // The access token keeps its contract while withdrawn: the profile and the past orders
    // answer, a new order is 403.
    let (status, body) = t
        .call(request("GET", &path).bearer(&member.access).build())
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(my_orders(&t, &member.access).await.0, 200);
    let (status, body) = t
        .call(
            request("POST", "/order")
                .bearer(&member.access)
                .json(&json!({"items": [{"itemId": "01JC0FFEE00000000000000C01", "quantity": 1}]}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "403CO000");
    // It restores…
    let (status, body) = t
        .call(
            request("POST", &format!("{path}/restore"))
                .bearer(&member.access)
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // …and then it is dead for good: nothing from before the withdrawal comes back.
    let (status, body) = my_orders(&t, &member.access).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = t
        .call(request("GET", &path).bearer(&member.access).build())
        .await;
    assert_failure(status, &body, "401CO000");
    let (access, _) = log_in(&t, &member.email).await;
    assert_eq!(my_orders(&t, &access).await.0, 200);
}

#[tokio::test]
async fn a_session_begun_while_withdrawn_carries_on_after_the_restore() {
    let t = TestApp::new().await;
    let member = t.sign_up().await;
    let path = format!("/member/{}", member.member_id);
    let (status, _) = t
        .call(
            request("DELETE", &format!("{path}/withdraw"))
                .bearer(&member.access)
                .build(),
        )
        .await;
    assert_eq!(status, 200);
    // Weeks later, on a new phone: log in (allowed while withdrawn), restore, keep going.
    let (access, refresh_token) = log_in(&t, &member.email).await;
    let (status, body) = t
        .call(
            request("POST", &format!("{path}/restore"))
                .bearer(&access)
                .build(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(my_orders(&t, &access).await.0, 200);
    let (status, body) = refresh(&t, &refresh_token).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn logging_out_ends_that_session_and_leaves_the_others() {
    let t = TestApp::new().await;
    let member = t.sign_up().await;
    let (_, laptop_refresh) = log_in(&t, &member.email).await;
    let (status, rotated) = refresh(&t, &member.refresh).await;
    assert_eq!(status, 200, "{rotated}");
    let phone_refresh = rotated["result"]["refreshToken"]
        .as_str()
        .expect("token")
        .to_owned();

    // The phone logs out with its current token: the family is revoked.
    let (status, body) = logout(&t, &phone_refresh, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["result"],
        json!({"memberId": member.member_id, "everywhere": false})
    );
    let (status, body) = refresh(&t, &phone_refresh).await;
    assert_failure(status, &body, "401CO000");
    // Logging out twice is not an error.
    assert_eq!(logout(&t, &phone_refresh, false).await.0, 200);
    // The laptop's session is untouched.
    let (status, body) = refresh(&t, &laptop_refresh).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn logging_out_everywhere_ends_every_token_at_once() {
    let t = TestApp::new().await;
    let member = t.sign_up().await;
    let (laptop_access, laptop_refresh) = log_in(&t, &member.email).await;
    let (status, body) = logout(&t, &member.refresh, true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["everywhere"], true);
    for access in [&member.access, &laptop_access] {
        let (status, body) = my_orders(&t, access).await;
        assert_failure(status, &body, "401CO000");
    }
    let (status, body) = refresh(&t, &laptop_refresh).await;
    assert_failure(status, &body, "401CO000");
    let (access, _) = log_in(&t, &member.email).await;
    assert_eq!(my_orders(&t, &access).await.0, 200);
}

#[tokio::test]
async fn a_log_out_with_a_bad_token_is_refused_and_changes_nothing() {
    let t = TestApp::new().await;
    let member = t.sign_up().await;
    for token in ["", "not-a-token", &"A".repeat(43)] {
        let (status, body) = logout(&t, token, true).await;
        assert_failure(status, &body, "401CO000");
    }
    // An access token is not a refresh token.
    let (status, body) = logout(&t, &member.access, true).await;
    assert_failure(status, &body, "401CO000");
    let (status, body) = t
        .call(
            request("POST", "/auth/logout")
                .json(&json!({"refreshToken": member.refresh, "all": true}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "400CO000");
    // Nothing ended.
    assert_eq!(my_orders(&t, &member.access).await.0, 200);
    let (status, body) = refresh(&t, &member.refresh).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_new_member_signs_up_with_a_session_that_works() {
    // The sign-up's own pair belongs to the first session (version 0).
    let t = TestApp::new().await;
    let (status, body) = t
        .call(
            request("POST", "/member")
                .json(&sign_up_body(&unique_email()))
                .build(),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let access = body["result"]["accessToken"].as_str().expect("token");
    assert_eq!(my_orders(&t, access).await.0, 200);
}
