//! [`HttpGateway`]: the [`PaymentGateway`] over HTTP to a Toss-Payments-style API — the
//! project's `cafe-pg` (see `pg/src/main.rs` for the API), or a real PG of that shape.
//!
//! | call | request | answer |
//! |---|---|---|
//! | `charge` | `POST /v1/payments/confirm`, `Idempotency-Key: <key>`, `{orderId, amount, method}` | the `paymentKey` |
//! | `refund` | `POST /v1/payments/{paymentKey}/cancel`, `Idempotency-Key: <key>`, `{cancelReason, cancelAmount}` | `status: "CANCELED"` |
//! | `find_charge` | `GET /v1/payments/by-idempotency-key/{key}` | the `paymentKey` (DONE or CANCELED: it was charged), or none on 404 `NOT_FOUND_PAYMENT` |
//!
//! Errors, as the trait promises:
//! - the gateway answered and refused (a 4xx such as `REJECT_*`, `INVALID_REQUEST`,
//!   `NOT_FOUND_PAYMENT` on a cancel): [`Error::GatewayFailed`], nothing was charged or refunded;
//! - no answer (the timeout, a connection refused or reset, a body cut short), a 5xx, 409
//!   `ALREADY_PROCESSING_REQUEST`, 408, 429, an answer that makes no sense, or 401 (the secret
//!   key is refused: logged as a configuration error): [`Error::Unavailable`]`("payment
//!   gateway")`, the outcome is unknown and the same call may be repeated.
//!
//! Every call, connecting included, is bounded by the one `timeout`. The client is hyper's (with
//! rustls and the webpki roots for https), already in every function's dependency tree through
//! the AWS SDK; it keeps idle connections for 20 s. The secret key is never logged: it lives only
//! in a header value marked sensitive, and `Debug` leaves it out.

use super::{Charge, Ledger, LedgerEntry, PaymentGateway, bounded};
use crate::error::{Error, Result};
use async_trait::async_trait;
use base64::Engine as _;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

const UNAVAILABLE: Error = Error::Unavailable("payment gateway");
/// Answers past this are not read (the ledger of a long test run stays far below).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// How long an idle pooled connection is kept: below the idle timeouts of servers and load
/// balancers in front of them, so a reused connection is rarely one the other side has closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);
const CANCEL_REASON: &str = "cafe order canceled";

/// A [`PaymentGateway`] over HTTP; see the module documentation.
pub struct HttpGateway {
    /// `scheme://authority[/path]`, without a trailing slash.
    base_url: String,
    /// `Basic base64(<secretKey>:)`, marked sensitive.
    authorization: HeaderValue,
    timeout: Duration,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl std::fmt::Debug for HttpGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGateway")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What the gateway answered.
enum Reply {
    /// 2xx with a JSON body.
    Done(Value),
    /// A 4xx that means "refused; nothing happened".
    Refused { status: StatusCode, code: String },
}

impl HttpGateway {
    /// A client of the gateway at `base_url` (`http://` or `https://`, no credentials, query or
    /// fragment), presenting `secret_key`, each call bounded by `timeout`.
    pub fn new(base_url: &str, secret_key: &str, timeout: Duration) -> Result<Self> {
        let invalid = |why: &str| Error::Internal(format!("payment gateway URL: {why}"));
        let base_url = base_url.trim().trim_end_matches('/');
        let uri: http::Uri = base_url.parse().map_err(|_| invalid("not a URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(invalid("the scheme must be http or https"));
        }
        let Some(authority) = uri.authority() else {
            return Err(invalid("no host"));
        };
        if authority.as_str().contains('@') {
            return Err(invalid("credentials belong in the secret key, not the URL"));
        }
        if uri.query().is_some() || base_url.contains('#') {
            return Err(invalid("no query or fragment"));
        }
        if secret_key.is_empty() {
            return Err(Error::Internal(
                "payment gateway secret key is empty".into(),
            ));
        }
        if timeout.is_zero() {
            return Err(Error::Internal("payment gateway timeout is zero".into()));
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{secret_key}:"));
        let mut authorization = HeaderValue::from_str(&format!("Basic {encoded}"))
            .map_err(|_| Error::Internal("payment gateway secret key is not a header".into()))?;
        authorization.set_sensitive(true);

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|error| Error::Internal(format!("payment gateway TLS: {error}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(https);
        Ok(Self {
            base_url: base_url.to_owned(),
            authorization,
            timeout,
            client,
        })
    }

    /// Every charge the gateway holds (`GET /v1/ledger`, a `cafe-pg` extension) as the mock's
    /// [`Ledger`]: the charges in order, and as refunds the ids of the cancelled ones.
    pub async fn ledger(&self) -> Result<Ledger> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry {
            payment_key: String,
            order_id: String,
            amount: i64,
            idempotency_key: String,
            status: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            charges: Vec<Entry>,
        }
        let answer = match self.call(Method::GET, "/v1/ledger", None, None).await? {
            Reply::Done(body) => serde_json::from_value::<Answer>(body)
                .map_err(|error| nonsense("ledger", &error.to_string()))?,
            Reply::Refused { status, code } => {
                tracing::warn!(%status, code, "payment gateway refused to list its ledger");
                return Err(Error::GatewayFailed);
            }
        };
        let mut ledger = Ledger::default();
        for entry in answer.charges {
            if entry.status == "CANCELED" {
                ledger.refunds.push(entry.payment_key.clone());
            }
            ledger.charges.push(LedgerEntry {
                pg_transaction_id: entry.payment_key,
                order_id: entry.order_id,
                amount: entry.amount,
                idempotency_key: entry.idempotency_key,
            });
        }
        Ok(ledger)
    }

    /// One request, bounded by the timeout, classified.
    async fn call(
        &self,
        method: Method,
        path: &str,
        idempotency_key: Option<&str>,
        body: Option<Value>,
    ) -> Result<Reply> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json");
        if let Some(key) = idempotency_key {
            let value = HeaderValue::from_str(key).map_err(|_| {
                Error::Internal("an idempotency key is not a valid header value".into())
            })?;
            request = request.header("Idempotency-Key", value);
        }
        let body = match body {
            Some(body) => {
                request = request.header(CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .map_err(|error| Error::Internal(format!("payment gateway request: {error}")))?;
        let (status, bytes) = bounded(self.timeout, async {
            let response = self.client.request(request).await.map_err(|error| {
                tracing::warn!(
                    error = %chain(&error),
                    "payment gateway did not answer; outcome unknown"
                );
                UNAVAILABLE
            })?;
            let status = response.status();
            let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|error| {
                    tracing::warn!(
                        %status,
                        error = %error,
                        "payment gateway answer cut short; outcome unknown"
                    );
                    UNAVAILABLE
                })?
                .to_bytes();
            Ok((status, bytes))
        })
        .await?;
        classify(status, &bytes)
    }
}

/// Sorts an answer into done, refused, or unknown (`Err(Unavailable)`).
fn classify(status: StatusCode, bytes: &[u8]) -> Result<Reply> {
    if status.is_success() {
        return serde_json::from_slice(bytes)
            .map(Reply::Done)
            .map_err(|_| nonsense("answer", "a 2xx without a JSON body"));
    }
    let code = serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|body| body.get("code")?.as_str().map(str::to_owned))
        .unwrap_or_default();
    match status.as_u16() {
        401 => {
            tracing::error!(
                %status,
                code,
                "payment gateway refused the secret key: a configuration error (check the key for this gateway)"
            );
            Err(UNAVAILABLE)
        }
        // Still processing, too slow or too many: nothing decided, the same call may be repeated.
        408 | 409 | 425 | 429 => {
            tracing::warn!(%status, code, "payment gateway asked to retry later; outcome unknown");
            Err(UNAVAILABLE)
        }
        400..=499 => Ok(Reply::Refused { status, code }),
        _ => {
            tracing::warn!(%status, code, "payment gateway failed; outcome unknown");
            Err(UNAVAILABLE)
        }
    }
}

/// A 2xx the client cannot make sense of: what happened is unknown, so it is not a refusal.
fn nonsense(what: &str, why: &str) -> Error {
    tracing::error!(
        what,
        why,
        "payment gateway answer makes no sense; outcome unknown"
    );
    UNAVAILABLE
}

/// An error and its sources, one line (hyper's own message is only the outermost).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        text.push_str(": ");
        text.push_str(&next.to_string());
        source = next.source();
    }
    text
}

/// A path segment: unreserved characters and `:` as they are, everything else `%XX`.
fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn refused(operation: &'static str, status: StatusCode, code: &str) -> Error {
    tracing::info!(operation, %status, code, "payment gateway refused; nothing changed");
    Error::GatewayFailed
}

#[async_trait]
impl PaymentGateway for HttpGateway {
    async fn charge(&self, charge: &Charge<'_>) -> Result<String> {
        let body = json!({
            "orderId": charge.order_id,
            "amount": charge.amount,
            "method": charge.payment_type,
        });
        match self
            .call(
                Method::POST,
                "/v1/payments/confirm",
                Some(charge.idempotency_key),
                Some(body),
            )
            .await?
        {
            Reply::Done(answer) => {
                let status = answer.get("status").and_then(Value::as_str);
                match (answer.get("paymentKey").and_then(Value::as_str), status) {
                    (Some(key), Some("DONE")) if !key.is_empty() => Ok(key.to_owned()),
                    _ => Err(nonsense(
                        "confirm",
                        "no paymentKey, or a status other than DONE",
                    )),
                }
            }
            Reply::Refused { status, code } => Err(refused("charge", status, &code)),
        }
    }

    async fn refund(
        &self,
        pg_transaction_id: &str,
        amount: i64,
        idempotency_key: &str,
    ) -> Result<()> {
        let path = format!("/v1/payments/{}/cancel", segment(pg_transaction_id));
        let body = json!({"cancelReason": CANCEL_REASON, "cancelAmount": amount});
        match self
            .call(Method::POST, &path, Some(idempotency_key), Some(body))
            .await?
        {
            Reply::Done(answer) => match answer.get("status").and_then(Value::as_str) {
                Some("CANCELED") => Ok(()),
                _ => Err(nonsense("cancel", "a status other than CANCELED")),
            },
            Reply::Refused { status, code } => Err(refused("refund", status, &code)),
        }
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<String>> {
        let path = format!(
            "/v1/payments/by-idempotency-key/{}",
            segment(idempotency_key)
        );
        match self.call(Method::GET, &path, None, None).await? {
            Reply::Done(answer) => {
                let key = answer.get("paymentKey").and_then(Value::as_str);
                match (key, answer.get("status").and_then(Value::as_str)) {
                    // Cancelled since counts: it was charged.
                    (Some(key), Some("DONE" | "CANCELED" | "PARTIAL_CANCELED"))
                        if !key.is_empty() =>
                    {
                        Ok(Some(key.to_owned()))
                    }
                    // Never completed: nothing was charged.
                    (Some(_), Some("ABORTED" | "EXPIRED")) => Ok(None),
                    _ => Err(nonsense(
                        "lookup",
                        "no paymentKey, or a status still in flight",
                    )),
                }
            }
            Reply::Refused { status, code }
                if status == StatusCode::NOT_FOUND && code == "NOT_FOUND_PAYMENT" =>
            {
                Ok(None)
            }
            Reply::Refused { status, code } => Err(refused("find_charge", status, &code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_as_the_trait_promises() {
        let refused = |status: u16, body: &str| match classify(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
        ) {
            Ok(Reply::Refused { code, .. }) => Some(code),
            Ok(Reply::Done(_)) => panic!("done"),
            Err(error) => {
                assert_eq!(error, UNAVAILABLE);
                None
            }
        };
        let decline = r#"{"code":"REJECT_CARD_PAYMENT","message":"no"}"#;
        assert_eq!(
            refused(400, decline).as_deref(),
            Some("REJECT_CARD_PAYMENT")
        );
        assert_eq!(
            refused(422, r#"{"code":"INVALID_REQUEST"}"#).as_deref(),
            Some("INVALID_REQUEST")
        );
        assert_eq!(refused(404, "not json").as_deref(), Some(""));
        for unknown in [401, 408, 409, 429, 500, 502, 503, 504, 302] {
            assert_eq!(refused(unknown, decline), None, "{unknown}");
        }
        assert!(matches!(
            classify(StatusCode::OK, b"{}"),
            Ok(Reply::Done(_))
        ));
        assert_eq!(classify(StatusCode::OK, b"<html>").err(), Some(UNAVAILABLE));
    }

    #[test]
    fn the_url_is_checked_and_the_key_never_shows() {
        let ok = HttpGateway::new(
            "https://api.example.com/",
            "sk_secret",
            Duration::from_secs(1),
        )
        .expect("valid");
        assert_eq!(ok.base_url, "https://api.example.com");
        assert!(!format!("{ok:?}").contains("sk_secret"));
        assert!(ok.authorization.is_sensitive());
        for bad in [
            "api.example.com",
            "ftp://api.example.com",
            "https://user:pw@api.example.com",
            "https://api.example.com/?a=b",
            "not a url",
        ] {
            assert!(
                HttpGateway::new(bad, "sk", Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
        assert!(HttpGateway::new("http://127.0.0.1:1", "", Duration::from_secs(1)).is_err());
        assert!(HttpGateway::new("http://127.0.0.1:1", "sk", Duration::ZERO).is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(segment("01JC:0"), "01JC:0");
        assert_eq!(segment("a/b c%"), "a%2Fb%20c%25");
    }
}
