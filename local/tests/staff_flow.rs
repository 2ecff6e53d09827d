//! The staff side over the handlers, as a cafe runs it: an admin made by `cafe-admin` grants a
//! clerk STAFF; the clerk adds an item, reprices and restocks it, takes it off sale; customers see
//! exactly the active catalogue and keep the prices they ordered at; the clerk works a paid order
//! through PREPARING, READY and PICKED_UP while its owner watches, and can no longer cancel it.

use cafe::domain::{EventType, Role};
use cafe_local::testing::{TestApp, assert_failure, request};
use serde_json::{Value, json};

const COLA: &str = "01JC0FFEE00000000000000C01";

async fn ok(t: &TestApp, req: lambda_http::Request, status: u16) -> Value {
    let (got, body) = t.call(req).await;
    assert_eq!(got, status, "{body}");
    body["result"].clone()
}

#[tokio::test]
async fn a_cafe_day_from_the_staff_side() {
    let t = TestApp::new().await;
    let admin = cafe_local::testing::staff(&t.app, Role::Admin).await;
    let clerk = t.sign_up().await;
    let customer = t.sign_up().await;

    // The role change ended the clerk's sessions: the old token is refused (401) until they log
    // in again (docs/auth.md, "Sessions").
    let granted = ok(
        &t,
        request("PUT", &format!("/admin/members/{}/role", clerk.member_id))
            .bearer(&admin.access)
            .json(&json!({"role": "STAFF"}))
            .build(),
        200,
    )
    .await;
    assert_eq!(
        granted,
        json!({"memberId": clerk.member_id, "role": "STAFF"})
    );
    let (status, body) = t
        .call(
            request("GET", "/admin/orders")
                .bearer(&clerk.access)
                .build(),
        )
        .await;
    assert_failure(status, &body, "401CO000");
    let clerk_access = cafe_local::testing::log_in(&t.app, &clerk.email).await;
    // An admin cannot change their own role (no accidental lock-out).
    let (status, body) = t
        .call(
            request("PUT", &format!("/admin/members/{}/role", admin.member_id))
                .bearer(&admin.access)
                .json(&json!({"role": "CUSTOMER"}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "400CO000");

    // Catalogue.
    let latte = ok(
        &t,
        request("POST", "/admin/items")
            .bearer(&clerk_access)
            .json(&json!({"name": " Latte ", "price": 4_500, "stock": 3}))
            .build(),
        201,
    )
    .await;
    let latte_id = latte["itemId"].as_str().expect("itemId").to_owned();
    assert_eq!(
        (
            latte["name"].clone(),
            latte["version"].clone(),
            latte["active"].clone()
        ),
        (json!("Latte"), json!(0), json!(true))
    );
    let listed = ok(&t, request("GET", "/items").build(), 200).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    assert!(
        listed["items"][0].get("version").is_none(),
        "customers see no staff fields"
    );

    // An order at 4 500, then a new price: the order keeps its price.
    let order = ok(
        &t,
        request("POST", "/order")
            .bearer(&customer.access)
            .json(&json!({"items": [{"itemId": latte_id, "quantity": 2}]}))
            .build(),
        201,
    )
    .await;
    let order_id = order["orderId"].as_str().expect("orderId").to_owned();
    let repriced = ok(
        &t,
        request("PATCH", &format!("/admin/items/{latte_id}"))
            .bearer(&clerk_access)
            .json(&json!({"version": 0, "price": 5_000}))
            .build(),
        200,
    )
    .await;
    assert_eq!(
        (repriced["price"].clone(), repriced["version"].clone()),
        (json!(5_000), json!(1))
    );
    // A second edit from the same read loses nothing: it is refused.
    let (status, body) = t
        .call(
            request("PATCH", &format!("/admin/items/{latte_id}"))
                .bearer(&clerk_access)
                .json(&json!({"version": 0, "name": "Cafe latte"}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "409IT000");
    let restocked = ok(
        &t,
        request("POST", &format!("/admin/items/{latte_id}/stock"))
            .bearer(&clerk_access)
            .json(&json!({"mode": "ADD", "quantity": 7, "reason": "delivery", "version": 1}))
            .build(),
        200,
    )
    .await;
    assert_eq!(
        (restocked["stock"].clone(), restocked["version"].clone()),
        (json!(10), json!(2))
    );

    // Paid at the price it was ordered at.
    let paid = ok(
        &t,
        request("POST", "/payment")
            .bearer(&customer.access)
            .json(&json!({"orderId": order_id, "payments": [{"amount": 9_000, "type": "CARD"}]}))
            .build(),
        200,
    )
    .await;
    assert_eq!(paid["status"], "COMPLETED", "{paid}");

    // Off sale: hidden and not orderable; orders already paid are untouched.
    ok(
        &t,
        request("PATCH", &format!("/admin/items/{latte_id}"))
            .bearer(&clerk_access)
            .json(&json!({"version": 2, "active": false}))
            .build(),
        200,
    )
    .await;
    let listed = ok(&t, request("GET", "/items").build(), 200).await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    let (status, body) = t
        .call(request("GET", &format!("/items/{latte_id}")).build())
        .await;
    assert_failure(status, &body, "404CO000");
    let (status, body) = t
        .call(
            request("POST", "/order")
                .bearer(&customer.access)
                .json(&json!({"items": [{"itemId": latte_id, "quantity": 1}]}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "400OR002");

    // Fulfilment: the queue, oldest first, then one step at a time.
    let queue = ok(
        &t,
        request("GET", "/admin/orders")
            .query("status", "COMPLETED")
            .bearer(&clerk_access)
            .build(),
        200,
    )
    .await;
    assert_eq!(queue["orders"][0]["orderId"], order_id.as_str(), "{queue}");
    assert_eq!(queue["orders"][0]["totalPrice"], 9_000);
    let advance = |status: &str| {
        request("PUT", &format!("/admin/orders/{order_id}/status"))
            .bearer(&clerk_access)
            .json(&json!({"status": status}))
            .build()
    };
    ok(&t, advance("PREPARING"), 200).await;
    // Asked again (a retry after a lost answer): the same answer.
    let again = ok(&t, advance("PREPARING"), 200).await;
    assert_eq!(again, json!({"orderId": order_id, "status": "PREPARING"}));
    // Cancelling is refused once preparing started.
    let (status, body) = t
        .call(
            request("DELETE", &format!("/order/{order_id}/cancel"))
                .bearer(&customer.access)
                .build(),
        )
        .await;
    assert_failure(status, &body, "400OR001");
    let (status, body) = t.call(advance("PICKED_UP")).await;
    assert_failure(status, &body, "400OR001");
    ok(&t, advance("READY"), 200).await;
    ok(&t, advance("PICKED_UP"), 200).await;
    let seen = ok(
        &t,
        request("GET", &format!("/order/{order_id}"))
            .bearer(&customer.access)
            .build(),
        200,
    )
    .await;
    assert_eq!(seen["status"], "PICKED_UP");
    let steps: Vec<&str> = seen["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "PENDING_PAYMENT",
            "COMPLETED",
            "PREPARING",
            "READY",
            "PICKED_UP"
        ]
    );
    let queue = ok(
        &t,
        request("GET", "/admin/orders")
            .query("status", "READY")
            .bearer(&clerk_access)
            .build(),
        200,
    )
    .await;
    assert_eq!(queue["orders"], json!([]));

    // Every change announced once, in order.
    let kinds: Vec<EventType> = t
        .parts
        .events
        .events()
        .iter()
        .map(|e| e.event_type)
        .filter(|k| {
            matches!(
                k,
                EventType::MemberRoleChanged
                    | EventType::ItemCreated
                    | EventType::ItemUpdated
                    | EventType::ItemStockChanged
                    | EventType::OrderFulfilmentAdvanced
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            EventType::MemberRoleChanged, // the first admin (cafe-admin)
            EventType::MemberRoleChanged,
            EventType::ItemCreated,
            EventType::ItemUpdated,
            EventType::ItemStockChanged,
            EventType::ItemUpdated,
            EventType::OrderFulfilmentAdvanced,
            EventType::OrderFulfilmentAdvanced,
            EventType::OrderFulfilmentAdvanced,
        ]
    );
}

#[tokio::test]
async fn the_stored_role_is_the_authority() {
    let t = TestApp::new().await;
    let admin = cafe_local::testing::staff(&t.app, Role::Admin).await;
    let clerk = cafe_local::testing::staff(&t.app, Role::Staff).await;
    let queue = || {
        request("GET", "/admin/orders")
            .bearer(&clerk.access)
            .build()
    };
    ok(&t, queue(), 200).await;
    // Demoted: the role change ended the clerk's sessions → 401 at once (and for good:
    // `sessions.rs` re-promotes and the token stays dead).
    ok(
        &t,
        request("PUT", &format!("/admin/members/{}/role", clerk.member_id))
            .bearer(&admin.access)
            .json(&json!({"role": "CUSTOMER"}))
            .build(),
        200,
    )
    .await;
    let (status, body) = t.call(queue()).await;
    assert_failure(status, &body, "401CO000");

    // A staff member who withdraws: their valid STAFF token no longer works for staff calls.
    let leaver = cafe_local::testing::staff(&t.app, Role::Staff).await;
    ok(
        &t,
        request("DELETE", &format!("/member/{}/withdraw", leaver.member_id))
            .bearer(&leaver.access)
            .build(),
        200,
    )
    .await;
    let (status, body) = t
        .call(
            request("POST", "/admin/items")
                .bearer(&leaver.access)
                .json(&json!({"name": "Tea", "price": 3_000, "stock": 1}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "403CO000");
    // And an admin cannot grant a role to a withdrawn member.
    let (status, body) = t
        .call(
            request("PUT", &format!("/admin/members/{}/role", leaver.member_id))
                .bearer(&admin.access)
                .json(&json!({"role": "STAFF"}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "400ME001");
    let (status, body) = t
        .call(
            request(
                "PUT",
                &format!(
                    "/admin/members/{}/role",
                    cafe::ids::new_id(chrono::Utc::now())
                ),
            )
            .bearer(&admin.access)
            .json(&json!({"role": "STAFF"}))
            .build(),
        )
        .await;
    assert_failure(status, &body, "404CO000");
    let _ = COLA;
}

#[tokio::test]
async fn a_clerk_is_told_what_happened_when_an_edit_changes_nothing_or_a_grant_cannot_be_made() {
    let t = TestApp::new().await;
    let admin = cafe_local::testing::staff(&t.app, Role::Admin).await;
    let clerk = cafe_local::testing::staff(&t.app, Role::Staff).await;
    let item = ok(
        &t,
        request("POST", "/admin/items")
            .bearer(&clerk.access)
            .json(&json!({"name": "Latte", "price": 4500, "stock": 30}))
            .build(),
        201,
    )
    .await;
    let path = format!("/admin/items/{}", item["itemId"].as_str().expect("id"));
    // The same price again (a double tap): the item as it is, same version, nothing written.
    let events_before = t.parts.events.types().len();
    let same = ok(
        &t,
        request("PATCH", &path)
            .bearer(&clerk.access)
            .json(&json!({"version": 0, "price": 4500}))
            .build(),
        200,
    )
    .await;
    assert_eq!(same, item);
    assert_eq!(t.parts.events.types().len(), events_before, "no event");
    // Nothing asked at all: the answer names what may be asked.
    let (status, body) = t
        .call(
            request("PATCH", &path)
                .bearer(&clerk.access)
                .json(&json!({"version": 0}))
                .build(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["detailMessage"],
        "Parameter (name, price or active) is missing or invalid."
    );
    // A role for a withdrawn member: said as such, not as a withdrawal refused.
    let leaving = t.sign_up().await;
    let (status, _) = t
        .call(
            request("DELETE", &format!("/member/{}/withdraw", leaving.member_id))
                .bearer(&leaving.access)
                .build(),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = t
        .call(
            request("PUT", &format!("/admin/members/{}/role", leaving.member_id))
                .bearer(&admin.access)
                .json(&json!({"role": "STAFF"}))
                .build(),
        )
        .await;
    assert_failure(status, &body, "400ME001");
    assert_eq!(
        body["error"]["detailMessage"],
        "Only a member in service can be given a role."
    );
}
