//! One way to make a timed API call, in process (`cafe_local::dispatch`, no HTTP) or over HTTP to
//! the local server. Only the call itself is timed: building the request and parsing the answer
//! are not.

use crate::fixture::BoxError;
use cafe::App;
use cafe::routes::{RouteMatch, match_route};
use lambda_http::Body;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub enum Caller {
    Dispatch(Arc<App>),
    Http {
        client: reqwest::Client,
        base: String,
    },
}

/// What a call answered and how long it took.
pub struct Answer {
    pub elapsed: Duration,
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// A string field of the success envelope's `result`.
    pub fn result_str(&self, field: &str) -> Result<String, BoxError> {
        self.body["result"][field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("answer lacks result.{field}: {}", self.body).into())
    }

    /// The error code of a failure envelope, or "".
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

fn parse(raw: &[u8]) -> Value {
    serde_json::from_slice(raw).unwrap_or(Value::Null)
}

impl Caller {
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        bearer: Option<&str>,
    ) -> Result<Answer, BoxError> {
        match self {
            Caller::Dispatch(app) => {
                let bare = path.split('?').next().unwrap_or(path);
                let function = match match_route(method, bare) {
                    RouteMatch::Found { route, .. } => route.function,
                    other => return Err(format!("no route {method} {path}: {other:?}").into()),
                };
                let mut request = cafe_local::testing::request(method, path);
                if let Some(body) = body {
                    request = request.json(body);
                }
                if let Some(token) = bearer {
                    request = request.bearer(token);
                }
                let request = request.build();
                let started = Instant::now();
                let response = cafe_local::dispatch(function, request, app).await;
                let elapsed = started.elapsed();
                let status = response.status().as_u16();
                let body = match response.body() {
                    Body::Text(text) => parse(text.as_bytes()),
                    Body::Binary(raw) => parse(raw),
                    _ => Value::Null,
                };
                Ok(Answer {
                    elapsed,
                    status,
                    body,
                })
            }
            Caller::Http { client, base } => {
                let method = reqwest::Method::from_bytes(method.as_bytes())?;
                let mut request = client.request(method, format!("{base}{path}"));
                if let Some(body) = body {
                    request = request.json(body);
                }
                if let Some(token) = bearer {
                    request = request.bearer_auth(token);
                }
                let request = request.build()?;
                let started = Instant::now();
                let response = client.execute(request).await?;
                let status = response.status().as_u16();
                let raw = response.bytes().await?;
                let elapsed = started.elapsed();
                Ok(Answer {
                    elapsed,
                    status,
                    body: parse(&raw),
                })
            }
        }
    }
}
