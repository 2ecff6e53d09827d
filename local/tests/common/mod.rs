//! Shared by the hardening suites: a populated in-memory world, raw requests that set path
//! parameters to anything (as API Gateway hands them over, already decoded), and a snapshot of
//! every piece of stored state a request could change.

#![allow(dead_code)]

use cafe::domain::{DomainEvent, HistoryEntry, Item, Member, Order};
use cafe::gateway::LedgerEntry;
use cafe::routes::ROUTES;
use cafe::store::{ItemStore, MemberStore, OrderStore};
use cafe_local::testing::{SignedUp, TestApp, request};
use lambda_http::{Body, RequestExt};
use serde_json::{Value, json};
use std::collections::HashMap;

pub const COLA: &str = "01JC0FFEE00000000000000C01";
pub const BOOK: &str = "01JC0FFEE00000000000000B02";

/// Members and orders in every state a hostile request might aim at.
pub struct World {
    pub t: TestApp,
    /// In service, with a pending order (one cola, 1 500), a paid one and a cancelled one.
    pub a: SignedUp,
    pub a_pending: String,
    pub a_paid: String,
    pub a_cancelled: String,
    /// In service, with a pending order.
    pub b: SignedUp,
    pub b_pending: String,
    /// Withdrawn (its token still verifies).
    pub w: SignedUp,
    /// A `STAFF` member and an `ADMIN`, with tokens carrying their roles.
    pub staff: SignedUp,
    pub admin: SignedUp,
}

impl World {
    pub async fn new() -> Self {
        let t = TestApp::new().await;
        let a = t.sign_up().await;
        let b = t.sign_up().await;
        let w = t.sign_up().await;
        let a_pending = order(&t, &a, COLA).await;
        let a_paid = order(&t, &a, BOOK).await;
        let (status, body) = t
            .call(
                request("POST", "/payment")
                    .bearer(&a.access)
                    .json(&json!({"orderId": a_paid, "payments": [{"amount": 25_000, "type": "CARD"}]}))
                    .build(),
            )
            .await;
        assert_eq!(status, 200, "fixture payment: {body}");
        let a_cancelled = order(&t, &a, COLA).await;
        let path = format!("/order/{a_cancelled}/cancel");
        let (status, body) = t
            .call(request("DELETE", &path).bearer(&a.access).build())
            .await;
        assert_eq!(status, 200, "fixture cancel: {body}");
        let b_pending = order(&t, &b, COLA).await;
        let path = format!("/member/{}/withdraw", w.member_id);
        let (status, body) = t
            .call(request("DELETE", &path).bearer(&w.access).build())
            .await;
        assert_eq!(status, 200, "fixture withdraw: {body}");
        let staff = cafe_local::testing::staff(&t.app, cafe::domain::Role::Staff).await;
        let admin = cafe_local::testing::staff(&t.app, cafe::domain::Role::Admin).await;
        Self {
            staff,
            admin,
            t,
            a,
            a_pending,
            a_paid,
            a_cancelled,
            b,
            b_pending,
            w,
        }
    }

    pub fn members(&self) -> [&SignedUp; 5] {
        [&self.a, &self.b, &self.w, &self.staff, &self.admin]
    }

    /// Everything stored that a request could change.
    pub async fn snapshot(&self) -> Snapshot {
        let store = &self.t.parts.store;
        let mut members = Vec::new();
        let mut orders = Vec::new();
        for m in self.members() {
            let member = store.get_member(&m.member_id).await.expect("member read");
            let history = store
                .member_history(&m.member_id)
                .await
                .expect("history read");
            members.push((member, history));
            let mut cursor: Option<String> = None;
            loop {
                let page = store
                    .list_orders(&m.member_id, 100, cursor.as_deref())
                    .await
                    .expect("orders read");
                for listed in page.orders {
                    let stored = store.get_order(&listed.order_id).await.expect("order read");
                    let history = store
                        .order_history(&listed.order_id)
                        .await
                        .expect("history read");
                    orders.push((stored, history));
                }
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        let mut items = store.list_items().await.expect("items read");
        items.sort_by(|x, y| x.item_id.cmp(&y.item_id));
        let ledger = self.t.parts.gateway.ledger();
        Snapshot {
            members,
            orders,
            items,
            events: self.t.parts.events.events(),
            charges: ledger.charges,
            refunds: ledger.refunds,
        }
    }

    pub async fn send(&self, req: Raw) -> Answer {
        req.send(&self.t.app).await
    }
}

async fn order(t: &TestApp, member: &SignedUp, item: &str) -> String {
    let body = json!({"items": [{"itemId": item, "quantity": 1}]});
    let (status, answer) = t
        .call(
            request("POST", "/order")
                .bearer(&member.access)
                .json(&body)
                .build(),
        )
        .await;
    assert_eq!(status, 201, "fixture order: {answer}");
    answer["result"]["orderId"]
        .as_str()
        .expect("order id")
        .to_owned()
}

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub members: Vec<(Option<Member>, Vec<HistoryEntry>)>,
    pub orders: Vec<(Option<Order>, Vec<HistoryEntry>)>,
    pub items: Vec<Item>,
    pub events: Vec<DomainEvent>,
    pub charges: Vec<LedgerEntry>,
    pub refunds: Vec<String>,
}

impl Snapshot {
    /// A short description of what differs (for failure messages).
    pub fn diff(&self, after: &Snapshot) -> String {
        let mut parts = Vec::new();
        if self.members != after.members {
            parts.push("members or their history");
        }
        if self.orders != after.orders {
            parts.push("orders, payments or their history");
        }
        if self.items != after.items {
            parts.push("items or stock");
        }
        if self.events != after.events {
            parts.push("events");
        }
        if self.charges != after.charges || self.refunds != after.refunds {
            parts.push("gateway ledger");
        }
        parts.join(", ")
    }
}

/// A request with arbitrary path parameters, headers and body bytes, dispatched straight to the
/// route's handler (what the Lambda receives from API Gateway).
#[derive(Debug, Clone)]
pub struct Raw {
    pub method: &'static str,
    pub template: &'static str,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Option<Vec<u8>>,
}

pub fn raw(method: &'static str, template: &'static str) -> Raw {
    assert!(
        ROUTES
            .iter()
            .any(|r| r.method == method && r.path == template),
        "{method} {template} is not a route"
    );
    Raw {
        method,
        template,
        params: Vec::new(),
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
    }
}

impl Raw {
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_owned(), value.as_ref().to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// A JSON body with `content-type: application/json`.
    pub fn json(self, body: &Value) -> Self {
        self.bytes(body.to_string())
            .header("content-type", "application/json")
    }

    /// Raw body bytes, no content type.
    pub fn bytes(mut self, body: impl AsRef<[u8]>) -> Self {
        self.body = Some(body.as_ref().to_vec());
        self
    }

    fn function(&self) -> &'static str {
        ROUTES
            .iter()
            .find(|r| r.method == self.method && r.path == self.template)
            .map(|r| r.function)
            .expect("route")
    }

    pub fn build(&self) -> lambda_http::Request {
        // The URI only has to parse: handlers read the decoded path parameters.
        let path = self
            .template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        let mut builder = lambda_http::http::Request::builder()
            .method(self.method)
            .uri(format!("https://cafe.example.com{path}"));
        for (name, value) in &self.headers {
            let value = lambda_http::http::HeaderValue::from_bytes(value).expect("header value");
            builder = builder.header(name.as_str(), value);
        }
        let body = match &self.body {
            None => Body::Empty,
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => Body::Text(text.to_owned()),
                Err(_) => Body::Binary(bytes.clone()),
            },
        };
        let params: HashMap<String, String> = self.params.iter().cloned().collect();
        let query: HashMap<String, String> = self.query.iter().cloned().collect();
        builder
            .body(body)
            .expect("request")
            .with_path_parameters(params)
            .with_query_string_parameters(query)
    }

    pub async fn send(&self, app: &cafe::App) -> Answer {
        let response = cafe_local::dispatch(self.function(), self.build(), app).await;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").is_some();
        let json = match response.body() {
            Body::Text(text) => serde_json::from_str(text).ok(),
            Body::Binary(bytes) => serde_json::from_slice(bytes).ok(),
            Body::Empty => None,
            _ => None,
        };
        Answer {
            status,
            json,
            retry_after,
        }
    }
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// `None` when the body is not JSON (always a failure of the contract).
    pub json: Option<Value>,
    pub retry_after: bool,
}

impl Answer {
    pub fn code(&self) -> Option<&str> {
        self.json.as_ref()?.pointer("/error/code")?.as_str()
    }

    /// `None` if this is a contract failure envelope whose code is one of `codes` and whose
    /// HTTP status is the code's first three digits; else what is wrong.
    pub fn check_failure(&self, codes: &[&str]) -> Option<String> {
        let Some(body) = &self.json else {
            return Some(format!("{} with a body that is not JSON", self.status));
        };
        let code = self.code().unwrap_or("");
        let envelope_ok = body["status"] == "fail"
            && body["error"]["detailMessage"]
                .as_str()
                .is_some_and(|m| !m.is_empty());
        if !envelope_ok || !codes.contains(&code) || !code.starts_with(&self.status.to_string()) {
            return Some(format!("{} {body}, expected {codes:?}", self.status));
        }
        None
    }
}
