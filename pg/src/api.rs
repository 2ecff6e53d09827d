//! The HTTP API and the state behind it (the crate documentation describes both).

use crate::Config;
use crate::ledger::{LedgerFile, Record};
use base64::Engine as _;
use chrono::{FixedOffset, SecondsFormat, Utc};
use http::{HeaderMap, Method, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpListener;

/// Request bodies past this are refused.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// The whole body must arrive within this after the head.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_KEY_LEN: usize = 300;

type Response = hyper::Response<Full<Bytes>>;

/// What a confirm asked for: a key reused with another one of these is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConfirmBody {
    order_id: String,
    amount: i64,
    method: String,
}

#[derive(Debug, Clone)]
enum ConfirmKey {
    /// Its first request is still being processed.
    Processing(ConfirmBody),
    Charged {
        body: ConfirmBody,
        payment_key: String,
    },
    Declined {
        body: ConfirmBody,
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CancelKey {
    Processing(String),
    Done(String),
}

#[derive(Debug, Clone)]
struct Payment {
    payment_key: String,
    idempotency_key: String,
    order_id: String,
    amount: i64,
    method: String,
    approved_at: String,
    cancel: Option<Cancel>,
}

#[derive(Debug, Clone)]
struct Cancel {
    idempotency_key: String,
    reason: String,
    amount: i64,
    canceled_at: String,
}

impl Payment {
    /// The payment as it is now.
    fn view(&self) -> Value {
        let (status, balance, cancels) = match &self.cancel {
            None => ("DONE", self.amount, Value::Null),
            Some(cancel) => (
                "CANCELED",
                self.amount - cancel.amount,
                json!([{
                    "cancelAmount": cancel.amount,
                    "cancelReason": cancel.reason,
                    "canceledAt": cancel.canceled_at,
                    "idempotencyKey": cancel.idempotency_key,
                }]),
            ),
        };
        json!({
            "paymentKey": self.payment_key,
            "orderId": self.order_id,
            "status": status,
            "totalAmount": self.amount,
            "balanceAmount": balance,
            "method": self.method,
            "approvedAt": self.approved_at,
            "idempotencyKey": self.idempotency_key,
            "cancels": cancels,
        })
    }

    /// The answer its confirm gave (and gives again to a repeat), whatever happened since.
    fn confirmed_view(&self) -> Value {
        Payment {
            cancel: None,
            ..self.clone()
        }
        .view()
    }
}

/// Everything the ledger says, rebuilt by replaying it.
#[derive(Debug, Default)]
pub struct State {
    confirms: HashMap<String, ConfirmKey>,
    payments: HashMap<String, Payment>,
    /// Payment keys in ledger order.
    charge_order: Vec<String>,
    /// Declined confirm keys in ledger order.
    decline_order: Vec<String>,
    cancel_keys: HashMap<String, CancelKey>,
    /// Payments with a cancel in flight.
    canceling: HashSet<String>,
}

impl State {
    pub fn replay(records: &[Record]) -> Result<Self, String> {
        let mut state = State::default();
        for (index, record) in records.iter().enumerate() {
            state
                .apply(record)
                .map_err(|error| format!("record {}: {error}", index + 1))?;
        }
        Ok(state)
    }

    pub fn charge_count(&self) -> usize {
        self.charge_order.len()
    }

    /// Applies one recorded change (replayed, or just made durable).
    fn apply(&mut self, record: &Record) -> Result<(), String> {
        match record {
            Record::Charged {
                idempotency_key,
                payment_key,
                order_id,
                amount,
                method,
                approved_at,
            } => {
                if self.payments.contains_key(payment_key) {
                    return Err(format!("payment {payment_key} charged twice"));
                }
                if let Some(ConfirmKey::Charged { .. } | ConfirmKey::Declined { .. }) =
                    self.confirms.get(idempotency_key)
                {
                    return Err(format!("key {idempotency_key:?} used twice"));
                }
                let body = ConfirmBody {
                    order_id: order_id.clone(),
                    amount: *amount,
                    method: method.clone(),
                };
                self.confirms.insert(
                    idempotency_key.clone(),
                    ConfirmKey::Charged {
                        body,
                        payment_key: payment_key.clone(),
                    },
                );
                self.payments.insert(
                    payment_key.clone(),
                    Payment {
                        payment_key: payment_key.clone(),
                        idempotency_key: idempotency_key.clone(),
                        order_id: order_id.clone(),
                        amount: *amount,
                        method: method.clone(),
                        approved_at: approved_at.clone(),
                        cancel: None,
                    },
                );
                self.charge_order.push(payment_key.clone());
            }
            Record::Declined {
                idempotency_key,
                order_id,
                amount,
                method,
                code,
                message,
                at: _,
            } => {
                if let Some(ConfirmKey::Charged { .. } | ConfirmKey::Declined { .. }) =
                    self.confirms.get(idempotency_key)
                {
                    return Err(format!("key {idempotency_key:?} used twice"));
                }
                self.confirms.insert(
                    idempotency_key.clone(),
                    ConfirmKey::Declined {
                        body: ConfirmBody {
                            order_id: order_id.clone(),
                            amount: *amount,
                            method: method.clone(),
                        },
                        code: code.clone(),
                        message: message.clone(),
                    },
                );
                self.decline_order.push(idempotency_key.clone());
            }
            Record::Canceled {
                payment_key,
                idempotency_key,
                cancel_reason,
                cancel_amount,
                canceled_at,
            } => {
                let Some(payment) = self.payments.get_mut(payment_key) else {
                    return Err(format!("cancel of unknown payment {payment_key}"));
                };
                if payment.cancel.is_some() {
                    return Err(format!("payment {payment_key} cancelled twice"));
                }
                payment.cancel = Some(Cancel {
                    idempotency_key: idempotency_key.clone(),
                    reason: cancel_reason.clone(),
                    amount: *cancel_amount,
                    canceled_at: canceled_at.clone(),
                });
                self.canceling.remove(payment_key);
                self.cancel_keys.insert(
                    idempotency_key.clone(),
                    CancelKey::Done(payment_key.clone()),
                );
            }
        }
        Ok(())
    }
}

pub struct Server {
    config: Config,
    state: Arc<Mutex<State>>,
    ledger: LedgerFile,
}

impl Server {
    pub fn new(config: Config, state: State, ledger: LedgerFile) -> Self {
        Self {
            config,
            state: Arc::new(Mutex::new(state)),
            ledger,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn latency(&self) {
        let (min, max) = (self.config.min_latency, self.config.max_latency);
        let latency = if max > min {
            min + (max - min).mul_f64(rand::random::<f64>())
        } else {
            min
        };
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    fn roll(rate: f64) -> bool {
        rate > 0.0 && rand::random::<f64>() < rate
    }

    /// Makes `record` durable and applies it to the state, in ledger order.
    async fn record(&self, record: Record) -> Result<(), Failure> {
        let state = self.state.clone();
        let applied = record.clone();
        match self
            .ledger
            .append(&record, move || {
                state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .apply(&applied)
            })
            .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                // Written but inconsistent with the state: a bug. The file stays the truth.
                tracing::error!(%error, "a recorded change does not apply to the state");
                Err(Failure::internal())
            }
            Err(error) => {
                tracing::error!(%error, "cannot write the ledger; nothing changed");
                Err(Failure::internal())
            }
        }
    }
}

/// How a request ends.
enum Outcome {
    Answer(Response),
    /// Close the connection without an answer (the drop-rate knob).
    Drop,
}

/// An error answer: `{"code", "message"}`.
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Failure {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_REQUEST", message)
    }

    fn internal() -> Self {
        Self::new(
            500,
            "FAILED_INTERNAL_SYSTEM_PROCESSING",
            "The gateway could not record the change; nothing was charged or refunded. Retry.",
        )
    }

    fn processing() -> Self {
        Self::new(
            409,
            "ALREADY_PROCESSING_REQUEST",
            "A request with this Idempotency-Key is still being processed.",
        )
    }

    fn key_reused() -> Self {
        Self::new(
            422,
            "INVALID_REQUEST",
            "This Idempotency-Key was used with another request.",
        )
    }

    fn not_found() -> Self {
        Self::new(404, "NOT_FOUND_PAYMENT", "No such payment.")
    }

    fn response(&self) -> Response {
        json_response(
            self.status,
            &json!({"code": self.code, "message": self.message}),
        )
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn ok(body: &Value) -> Result<Outcome, Failure> {
    Ok(Outcome::Answer(json_response(StatusCode::OK, body)))
}

/// Serves until the process ends.
pub async fn serve(listener: TcpListener, server: Arc<Server>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let server = server.clone();
                async move { handle(server, request).await }
            });
            if let Err(error) = http.serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("answer dropped on purpose (drop rate)")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    server: Arc<Server>,
    request: hyper::Request<Incoming>,
) -> Result<Response, Dropped> {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // Set once a confirm or cancel has slept the latency while holding its key; everything
    // else sleeps it here, after the answer is decided.
    let slept = Arc::new(AtomicBool::new(false));
    let outcome = match route(&server, request, &slept).await {
        Ok(outcome) => outcome,
        Err(failure) => Outcome::Answer(failure.response()),
    };
    if !slept.load(Ordering::SeqCst) {
        server.latency().await;
    }
    match outcome {
        Outcome::Answer(response) => {
            tracing::info!(
                %method,
                path,
                status = response.status().as_u16(),
                elapsed = ?started.elapsed(),
                "request"
            );
            Ok(response)
        }
        Outcome::Drop => {
            tracing::info!(%method, path, elapsed = ?started.elapsed(), "recorded; answer dropped");
            Err(Dropped)
        }
    }
}

async fn route(
    server: &Arc<Server>,
    request: hyper::Request<Incoming>,
    slept: &Arc<AtomicBool>,
) -> Result<Outcome, Failure> {
    let (parts, body) = request.into_parts();
    authorize(&parts.headers, &server.config.secret_key)?;
    let segments: Vec<String> = parts
        .uri
        .path()
        .strip_prefix('/')
        .unwrap_or_default()
        .split('/')
        .map(percent_decode)
        .collect::<Option<_>>()
        .ok_or_else(|| Failure::invalid("The path is not valid percent-encoded UTF-8."))?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = &parts.method;
    match segments.as_slice() {
        ["v1", "payments", "confirm"] => {
            only(method, &Method::POST)?;
            let key = idempotency_key(&parts.headers)?;
            let body = confirm_body(&read_json(body).await?)?;
            let server = server.clone();
            // Its own task: a caller that goes away cannot stop a charge half-way.
            let slept = slept.clone();
            spawned(async move { confirm(&server, key, body, &slept).await }).await
        }
        ["v1", "payments", payment_key, "cancel"] => {
            only(method, &Method::POST)?;
            let key = idempotency_key(&parts.headers)?;
            let (reason, amount) = cancel_body(&read_json(body).await?)?;
            let server = server.clone();
            let payment_key = (*payment_key).to_owned();
            let slept = slept.clone();
            spawned(async move { cancel(&server, key, payment_key, reason, amount, &slept).await })
                .await
        }
        ["v1", "payments", "by-idempotency-key", key] => {
            only(method, &Method::GET)?;
            let state = server.state();
            match state.confirms.get(*key) {
                Some(ConfirmKey::Charged { payment_key, .. }) => {
                    ok(&state.payments[payment_key].view())
                }
                Some(ConfirmKey::Processing(_)) => Err(Failure::processing()),
                Some(ConfirmKey::Declined { .. }) | None => Err(Failure::not_found()),
            }
        }
        ["v1", "payments", payment_key] => {
            only(method, &Method::GET)?;
            let state = server.state();
            match state.payments.get(*payment_key) {
                Some(payment) => ok(&payment.view()),
                None => Err(Failure::not_found()),
            }
        }
        ["v1", "ledger"] => {
            only(method, &Method::GET)?;
            let state = server.state();
            let charges: Vec<Value> = state
                .charge_order
                .iter()
                .map(|payment_key| {
                    let payment = &state.payments[payment_key];
                    json!({
                        "paymentKey": payment.payment_key,
                        "orderId": payment.order_id,
                        "amount": payment.amount,
                        "idempotencyKey": payment.idempotency_key,
                        "status": if payment.cancel.is_some() { "CANCELED" } else { "DONE" },
                    })
                })
                .collect();
            let declines: Vec<Value> = state
                .decline_order
                .iter()
                .filter_map(|key| match state.confirms.get(key) {
                    Some(ConfirmKey::Declined { body, code, .. }) => Some(json!({
                        "idempotencyKey": key,
                        "orderId": body.order_id,
                        "amount": body.amount,
                        "code": code,
                    })),
                    _ => None,
                })
                .collect();
            ok(&json!({"charges": charges, "declines": declines}))
        }
        _ => Err(Failure::new(404, "NOT_FOUND", "No such endpoint.")),
    }
}

async fn spawned(
    work: impl Future<Output = Result<Outcome, Failure>> + Send + 'static,
) -> Result<Outcome, Failure> {
    tokio::spawn(work).await.unwrap_or_else(|error| {
        tracing::error!(%error, "a request task failed");
        Err(Failure::internal())
    })
}

fn only(method: &Method, allowed: &Method) -> Result<(), Failure> {
    if method == allowed {
        Ok(())
    } else {
        Err(Failure::new(
            405,
            "METHOD_NOT_ALLOWED",
            format!("Use {allowed} on this path."),
        ))
    }
}

fn unauthorized() -> Failure {
    Failure::new(
        401,
        "UNAUTHORIZED_KEY",
        "The secret key is missing or wrong: send Authorization: Basic base64(<secretKey>:).",
    )
}

/// `Authorization: Basic base64(<secretKey>:)`, compared in constant time.
fn authorize(headers: &HeaderMap, secret_key: &str) -> Result<(), Failure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(unauthorized)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(unauthorized)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(unauthorized());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| unauthorized())?;
    let mut expected = secret_key.as_bytes().to_vec();
    expected.push(b':');
    let same_length = decoded.len() == expected.len();
    let difference = decoded
        .iter()
        .zip(expected.iter().cycle())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if same_length && difference == 0 {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, Failure> {
    let refuse = || {
        Failure::invalid(format!(
            "The Idempotency-Key header is required: 1 to {MAX_KEY_LEN} visible ASCII characters."
        ))
    };
    let mut values = headers.get_all("idempotency-key").iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(refuse());
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !bytes.iter().all(|b| b.is_ascii_graphic())
    {
        return Err(refuse());
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

async fn read_json(body: Incoming) -> Result<Value, Failure> {
    let collected =
        tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY_BYTES).collect())
            .await
            .map_err(|_| Failure::invalid("The body did not arrive in time."))?
            .map_err(|error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    Failure::invalid(format!("The body is larger than {MAX_BODY_BYTES} bytes."))
                } else {
                    Failure::invalid("The body could not be read.")
                }
            })?;
    serde_json::from_slice(&collected.to_bytes())
        .map_err(|error| Failure::invalid(format!("The body is not JSON: {error}.")))
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a Value, Failure> {
    body.as_object()
        .ok_or_else(|| Failure::invalid("The body must be a JSON object."))?
        .get(name)
        .filter(|value| !value.is_null())
        .ok_or_else(|| Failure::invalid(format!("{name} is required.")))
}

fn confirm_body(body: &Value) -> Result<ConfirmBody, Failure> {
    let order_id = field(body, "orderId")?
        .as_str()
        .filter(|id| (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| Failure::invalid("orderId must be 1 to 64 visible ASCII characters."))?;
    let amount = field(body, "amount")?
        .as_i64()
        .filter(|&amount| amount >= 1)
        .ok_or_else(|| Failure::invalid("amount must be a whole number of at least 1."))?;
    let method = field(body, "method")?
        .as_str()
        .filter(|m| {
            (1..=32).contains(&m.len()) && m.bytes().all(|b| b.is_ascii_uppercase() || b == b'_')
        })
        .ok_or_else(|| {
            Failure::invalid("method must be 1 to 32 of A-Z and _ (CARD, POINT, ...).")
        })?;
    Ok(ConfirmBody {
        order_id: order_id.to_owned(),
        amount,
        method: method.to_owned(),
    })
}

fn cancel_body(body: &Value) -> Result<(String, Option<i64>), Failure> {
    let reason = field(body, "cancelReason")?
        .as_str()
        .filter(|r| !r.trim().is_empty() && r.chars().count() <= 200)
        .ok_or_else(|| Failure::invalid("cancelReason must be 1 to 200 characters."))?;
    let amount = match body.get("cancelAmount") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_i64()
                .filter(|&amount| amount >= 1)
                .ok_or_else(|| {
                    Failure::invalid("cancelAmount must be a whole number of at least 1.")
                })?,
        ),
    };
    Ok((reason.to_owned(), amount))
}

fn now_kst() -> String {
    let kst = FixedOffset::east_opt(9 * 3600).expect("+09:00 is a valid offset");
    Utc::now()
        .with_timezone(&kst)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn new_payment_key(state: &State) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let stamp = Utc::now().format("%Y%m%d%H%M%S");
    loop {
        let key = format!(
            "tpk_{stamp}{}",
            Alphanumeric.sample_string(&mut rand::rng(), 12)
        );
        if !state.payments.contains_key(&key) {
            return key;
        }
    }
}

/// Undoes a claim on the state.
type Release = Box<dyn FnOnce(&mut State) + Send>;

/// Releases a key taken for a request that ended without recording anything.
struct Claim {
    state: Arc<Mutex<State>>,
    release: Option<Release>,
}

impl Claim {
    fn new(state: &Arc<Mutex<State>>, release: impl FnOnce(&mut State) + Send + 'static) -> Self {
        Self {
            state: state.clone(),
            release: Some(Box::new(release)),
        }
    }

    fn keep(mut self) {
        self.release = None;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }
}

fn decline(code: &str, message: &str) -> Failure {
    // The codes a decline can carry are the ones this server records.
    let code = match code {
        "REJECT_CARD_PAYMENT" => "REJECT_CARD_PAYMENT",
        _ => "REJECT_PAYMENT",
    };
    Failure::new(400, code, message)
}

async fn confirm(
    server: &Server,
    key: String,
    body: ConfirmBody,
    slept: &AtomicBool,
) -> Result<Outcome, Failure> {
    {
        let mut state = server.state();
        match state.confirms.get(&key) {
            Some(ConfirmKey::Processing(first)) => {
                return Err(if *first == body {
                    Failure::processing()
                } else {
                    Failure::key_reused()
                });
            }
            Some(ConfirmKey::Charged {
                body: first,
                payment_key,
            }) => {
                return if *first == body {
                    ok(&state.payments[payment_key].confirmed_view())
                } else {
                    Err(Failure::key_reused())
                };
            }
            Some(ConfirmKey::Declined {
                body: first,
                code,
                message,
            }) => {
                return Err(if *first == body {
                    decline(code, message)
                } else {
                    Failure::key_reused()
                });
            }
            None => {
                state
                    .confirms
                    .insert(key.clone(), ConfirmKey::Processing(body.clone()));
            }
        }
    }
    let claim = {
        let key = key.clone();
        Claim::new(&server.state, move |state| {
            if let Some(ConfirmKey::Processing(_)) = state.confirms.get(&key) {
                state.confirms.remove(&key);
            }
        })
    };
    server.latency().await;
    slept.store(true, Ordering::SeqCst);
    if Server::roll(server.config.failure_rate) {
        let message = "The card company declined the payment (simulated).";
        server
            .record(Record::Declined {
                idempotency_key: key,
                order_id: body.order_id,
                amount: body.amount,
                method: body.method,
                code: "REJECT_CARD_PAYMENT".into(),
                message: message.into(),
                at: now_kst(),
            })
            .await?;
        claim.keep();
        return Err(decline("REJECT_CARD_PAYMENT", message));
    }
    let payment_key = new_payment_key(&server.state());
    server
        .record(Record::Charged {
            idempotency_key: key,
            payment_key: payment_key.clone(),
            order_id: body.order_id,
            amount: body.amount,
            method: body.method,
            approved_at: now_kst(),
        })
        .await?;
    claim.keep();
    if Server::roll(server.config.drop_rate) {
        return Ok(Outcome::Drop);
    }
    let view = server.state().payments[&payment_key].confirmed_view();
    ok(&view)
}

async fn cancel(
    server: &Server,
    key: String,
    payment_key: String,
    reason: String,
    amount: Option<i64>,
    slept: &AtomicBool,
) -> Result<Outcome, Failure> {
    let total = {
        let mut state = server.state();
        match state.cancel_keys.get(&key) {
            Some(CancelKey::Processing(first)) if *first == payment_key => {
                return Err(Failure::processing());
            }
            Some(CancelKey::Done(first)) if *first == payment_key => {
                return ok(&state.payments[&payment_key].view());
            }
            Some(_) => return Err(Failure::key_reused()),
            None => {}
        }
        let Some(payment) = state.payments.get(&payment_key) else {
            return Err(Failure::not_found());
        };
        if amount.is_some_and(|amount| amount != payment.amount) {
            return Err(Failure::new(
                400,
                "NOT_CANCELABLE_AMOUNT",
                format!(
                    "Only the whole amount ({}) can be cancelled.",
                    payment.amount
                ),
            ));
        }
        if payment.cancel.is_some() {
            // Already refunded: answer it again, refund nothing.
            return ok(&payment.view());
        }
        let total = payment.amount;
        if !state.canceling.insert(payment_key.clone()) {
            return Err(Failure::processing());
        }
        state
            .cancel_keys
            .insert(key.clone(), CancelKey::Processing(payment_key.clone()));
        total
    };
    let claim = {
        let (key, payment_key) = (key.clone(), payment_key.clone());
        Claim::new(&server.state, move |state| {
            state.canceling.remove(&payment_key);
            if let Some(CancelKey::Processing(_)) = state.cancel_keys.get(&key) {
                state.cancel_keys.remove(&key);
            }
        })
    };
    server.latency().await;
    slept.store(true, Ordering::SeqCst);
    server
        .record(Record::Canceled {
            payment_key: payment_key.clone(),
            idempotency_key: key,
            cancel_reason: reason,
            cancel_amount: total,
            canceled_at: now_kst(),
        })
        .await?;
    claim.keep();
    if Server::roll(server.config.drop_rate) {
        return Ok(Outcome::Drop);
    }
    let view = server.state().payments[&payment_key].view();
    ok(&view)
}

/// `%XX` decoded; `None` if malformed or not UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_needs_the_exact_key_and_colon() {
        let header = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            headers
        };
        let encode = |raw: &str| base64::engine::general_purpose::STANDARD.encode(raw);
        assert!(authorize(&header(&format!("Basic {}", encode("sk:"))), "sk").is_ok());
        assert!(authorize(&header(&format!("basic {}", encode("sk:"))), "sk").is_ok());
        for wrong in ["sk", "sk:x", "sj:", "sk::", ":", ""] {
            assert!(
                authorize(&header(&format!("Basic {}", encode(wrong))), "sk").is_err(),
                "{wrong}"
            );
        }
        assert!(authorize(&header(&format!("Bearer {}", encode("sk:"))), "sk").is_err());
        assert!(authorize(&HeaderMap::new(), "sk").is_err());
    }

    #[test]
    fn path_segments_are_percent_decoded() {
        assert_eq!(percent_decode("a%3A0").as_deref(), Some("a:0"));
        assert_eq!(percent_decode("a:0").as_deref(), Some("a:0"));
        assert_eq!(percent_decode("%2F%20").as_deref(), Some("/ "));
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%FF"), None);
    }

    #[test]
    fn replay_refuses_a_ledger_that_contradicts_itself() {
        let charged = Record::Charged {
            idempotency_key: "k".into(),
            payment_key: "p".into(),
            order_id: "o".into(),
            amount: 5,
            method: "CARD".into(),
            approved_at: "t".into(),
        };
        let canceled = Record::Canceled {
            payment_key: "p".into(),
            idempotency_key: "c".into(),
            cancel_reason: "r".into(),
            cancel_amount: 5,
            canceled_at: "t".into(),
        };
        let state = State::replay(&[charged.clone(), canceled.clone()]).unwrap();
        assert!(state.payments["p"].cancel.is_some());
        assert!(State::replay(&[charged.clone(), charged.clone()]).is_err());
        assert!(State::replay(std::slice::from_ref(&canceled)).is_err());
        assert!(State::replay(&[charged, canceled.clone(), canceled]).is_err());
    }
}
