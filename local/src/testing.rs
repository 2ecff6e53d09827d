//! Helpers for tests that call handlers directly: an in-memory app on a manual clock, request
//! builders that set path parameters like API Gateway does, and a sign-up shortcut.
//! Test support only: these helpers panic on anything unexpected.

use crate::dispatch;
use cafe::App;
use cafe::app::MemoryParts;
use cafe::clock::ManualClock;
use cafe::routes::{RouteMatch, match_route};
use lambda_http::{Body, RequestExt, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// An in-memory app on `cafe::testing::test_config()` with a manual clock.
pub struct TestApp {
    pub app: App,
    pub parts: MemoryParts,
    pub clock: Arc<ManualClock>,
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(cafe::testing::test_config()).await
    }

    pub async fn with_config(config: cafe::config::Config) -> Self {
        let clock = cafe::testing::manual_clock();
        let (app, parts) = App::in_memory(config, clock.clone())
            .await
            .expect("in-memory app");
        Self { app, parts, clock }
    }

    /// Routes `req` by its method and path and calls the handler: `(status, json body)`.
    pub async fn call(&self, req: lambda_http::Request) -> (u16, Value) {
        call(&self.app, req).await
    }

    pub async fn sign_up(&self) -> SignedUp {
        sign_up(&self.app).await
    }
}

/// What a sign-up answered.
#[derive(Debug, Clone)]
pub struct SignedUp {
    pub member_id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

/// Builds a `lambda_http::Request` as API Gateway would hand it to a function.
pub struct TestRequest {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: Vec<(String, String)>,
    body: Body,
    source_ip: Option<String>,
}

pub fn request(method: &str, path: &str) -> TestRequest {
    TestRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        query: HashMap::new(),
        headers: Vec::new(),
        body: Body::Empty,
        source_ip: None,
    }
}

impl TestRequest {
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Body::Text(body.to_string());
        self.header("content-type", "application/json")
    }

    /// A raw body (malformed JSON and the like).
    pub fn text(mut self, body: &str) -> Self {
        self.body = Body::Text(body.to_owned());
        self.header("content-type", "application/json")
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The caller's address, where API Gateway puts it (`requestContext.http.sourceIp`).
    pub fn from_ip(mut self, ip: &str) -> Self {
        self.source_ip = Some(ip.to_owned());
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.insert(name.to_owned(), value.to_owned());
        self
    }

    /// The request, with path parameters taken from the route that matches method and path.
    /// A query string in the path (`/orders?limit=2`) becomes query string parameters.
    pub fn build(mut self) -> lambda_http::Request {
        let uri = format!("https://cafe.example.com{}", self.path);
        if let Some((path, query)) = self.path.clone().split_once('?') {
            self.path = path.to_owned();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                self.query.insert(name.to_owned(), value.to_owned());
            }
        }
        let params: HashMap<String, String> = match match_route(&self.method, &self.path) {
            RouteMatch::Found { params, .. } => params.into_iter().collect(),
            _ => HashMap::new(),
        };
        let mut builder = http::Request::builder()
            .method(self.method.as_str())
            .uri(uri);
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let req = builder
            .body(self.body)
            .expect("test request")
            .with_path_parameters(params)
            .with_query_string_parameters(self.query);
        match self.source_ip {
            None => req,
            Some(ip) => {
                let mut context =
                    lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext::default(
                    );
                context.http.source_ip = Some(ip);
                req.with_request_context(lambda_http::request::RequestContext::ApiGatewayV2(
                    context,
                ))
            }
        }
    }
}

/// Routes `req` with `match_route` and calls its handler through [`dispatch`].
pub async fn call(app: &App, req: lambda_http::Request) -> (u16, Value) {
    let function = match match_route(req.method().as_str(), req.uri().path()) {
        RouteMatch::Found { route, .. } => route.function,
        other => panic!("no route for {} {}: {other:?}", req.method(), req.uri()),
    };
    let response = dispatch(function, req, app).await;
    (response.status().as_u16(), json_of(&response))
}

/// The response body as JSON (panics if it is not).
pub fn json_of(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("JSON body"),
        Body::Binary(raw) => serde_json::from_slice(raw).expect("JSON body"),
        _ => Value::Null,
    }
}

/// A valid sign-up body for `email`.
pub fn sign_up_body(email: &str) -> Value {
    json!({
        "name": "Kim Minji",
        "email": email,
        "phoneNumber": "010-1234-5678",
        "gender": "FEMALE",
        "birth": "1995-04-12",
        "password": "correct horse battery",
    })
}

/// The password of [`sign_up_body`].
pub const PASSWORD: &str = "correct horse battery";

/// A unique email for this process.
pub fn unique_email() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "member{}@cafe.example",
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Signs up a new member with a unique email and returns its id and tokens.
pub async fn sign_up(app: &App) -> SignedUp {
    let email = unique_email();
    let (status, body) = call(
        app,
        request("POST", "/member")
            .json(&sign_up_body(&email))
            .build(),
    )
    .await;
    assert_eq!(status, 201, "sign-up failed: {body}");
    let result = &body["result"];
    let field = |name: &str| {
        result[name]
            .as_str()
            .unwrap_or_else(|| panic!("sign-up answer lacks {name}: {body}"))
            .to_owned()
    };
    SignedUp {
        member_id: field("memberId"),
        access: field("accessToken"),
        refresh: field("refreshToken"),
        email,
    }
}

/// A member of `role`: signed up, given the role as `cafe-admin` does (never through an
/// endpoint), then logged in again so the access token carries it.
pub async fn staff(app: &App, role: cafe::domain::Role) -> SignedUp {
    let mut member = sign_up(app).await;
    cafe::services::staff::grant_role_offline(
        app.store.as_ref(),
        &member.member_id,
        role,
        app.clock.now(),
    )
    .await
    .expect("grant the role");
    // The role change ended the sign-up's session: a fresh log-in for both tokens.
    let (status, body) = call(
        app,
        request("POST", "/auth/login")
            .json(&serde_json::json!({"email": member.email, "password": PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(status, 200, "log-in failed: {body}");
    let token = |name: &str| body["result"][name].as_str().expect("token").to_owned();
    member.access = token("accessToken");
    member.refresh = token("refreshToken");
    member
}

/// Logs in with [`PASSWORD`] and returns the access token.
pub async fn log_in(app: &App, email: &str) -> String {
    let (status, body) = call(
        app,
        request("POST", "/auth/login")
            .json(&serde_json::json!({"email": email, "password": PASSWORD}))
            .build(),
    )
    .await;
    assert_eq!(status, 200, "log-in failed: {body}");
    body["result"]["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_owned()
}

/// Asserts the contract's failure envelope with `code`, and that the status matches the code.
pub fn assert_failure(status: u16, body: &Value, code: &str) {
    assert_eq!(body["status"], "fail", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["detailMessage"].is_string(), "{body}");
    assert_eq!(status.to_string(), code[..3], "{body}");
}

/// What a stub of API Gateway's management API has been asked: `(method, path)` per request.
pub type ManagementCalls = Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A stub of API Gateway's management endpoint on a free local port that answers every request
/// `410 GoneException`, as API Gateway does for a connection that has closed. Returns its URL
/// (use it as the endpoint, stage included) and the requests it received.
pub async fn gone_management_endpoint() -> (String, ManagementCalls) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the stub");
    let address = listener.local_addr().expect("stub address");
    let calls: ManagementCalls = Arc::default();
    let seen = calls.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    seen.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((req.method().to_string(), req.uri().path().to_owned()));
                    async move {
                        let mut response = hyper::Response::new(Full::new(Bytes::from_static(
                            br#"{"message":"Gone"}"#,
                        )));
                        *response.status_mut() = hyper::StatusCode::GONE;
                        response.headers_mut().insert(
                            "x-amzn-errortype",
                            hyper::header::HeaderValue::from_static("GoneException"),
                        );
                        response.headers_mut().insert(
                            hyper::header::CONTENT_TYPE,
                            hyper::header::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{address}/live"), calls)
}
