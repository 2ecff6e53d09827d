//! The local HTTP server: hyper 1 on one listener, routing with `cafe::routes`.
//!
//! It guards itself against slow and idle clients ([`Limits`]); `cafe-local` reads the limits
//! from the environment ([`Limits::from_env`]), every value a whole number ≥ 1:
//!
//! - `HEADER_READ_TIMEOUT_MS` (10000): a request's head (request line and headers) must be
//!   complete this long after the connection starts waiting for it — from accept, and, on a
//!   keep-alive connection, from the end of the previous response — else the connection is closed
//!   without an answer (hyper's own timer).
//! - `BODY_READ_TIMEOUT_MS` (10000): the whole body must arrive this long after its head, else
//!   the answer is the body-timeout error (`body_timed_out` below) and the connection is closed.
//! - `IDLE_TIMEOUT_MS` (5000): a connection with no request in flight that receives nothing for
//!   this long is closed. The header timer also runs while a keep-alive connection waits, so this
//!   only matters below `HEADER_READ_TIMEOUT_MS`: silence is cut at this one, a head trickling in
//!   byte by byte at the header timeout.
//! - `MAX_CONNECTIONS` (256): connections served at once. Over the cap the server stops
//!   accepting, so new connections wait in the kernel's listen backlog until one closes.
//! - `SHUTDOWN_TIMEOUT_MS` (10000): on shutdown (Ctrl-C), how long requests in flight may take
//!   to finish before their connections are cut.

use crate::dispatch;
use cafe::http::{MAX_BODY_BYTES, failure};
use cafe::routes::{RouteMatch, match_route};
use cafe::{App, Error};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// How long a client may take and how many are served at once; the module documentation says
/// what each one means and which environment variable sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: 256,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// The longest timeout taken from the environment: a day.
const MAX_TIMEOUT_MS: u64 = 86_400_000;

impl Limits {
    /// The defaults, overridden by `HEADER_READ_TIMEOUT_MS`, `BODY_READ_TIMEOUT_MS`,
    /// `IDLE_TIMEOUT_MS`, `MAX_CONNECTIONS` and `SHUTDOWN_TIMEOUT_MS` where they are set (empty
    /// counts as unset). A value that is not a whole number in range is an error that names it.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// [`Limits::from_env`] over any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let defaults = Self::default();
        let millis = |name: &str, default: Duration| {
            number(&lookup, name, MAX_TIMEOUT_MS)
                .map(|value| value.map_or(default, Duration::from_millis))
        };
        let max_permits = u64::try_from(Semaphore::MAX_PERMITS).unwrap_or(u64::MAX);
        Ok(Self {
            header_read_timeout: millis("HEADER_READ_TIMEOUT_MS", defaults.header_read_timeout)?,
            body_read_timeout: millis("BODY_READ_TIMEOUT_MS", defaults.body_read_timeout)?,
            idle_timeout: millis("IDLE_TIMEOUT_MS", defaults.idle_timeout)?,
            max_connections: match number(&lookup, "MAX_CONNECTIONS", max_permits)? {
                // In range of `Semaphore::MAX_PERMITS`, hence of `usize`.
                Some(value) => usize::try_from(value).unwrap_or(Semaphore::MAX_PERMITS),
                None => defaults.max_connections,
            },
            shutdown_timeout: millis("SHUTDOWN_TIMEOUT_MS", defaults.shutdown_timeout)?,
        })
    }
}

/// `name` as a whole number from 1 to `max`, `None` when unset or empty.
fn number(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
    max: u64,
) -> Result<Option<u64>, String> {
    let Some(raw) = lookup(name) else {
        return Ok(None);
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    match trimmed.parse::<u64>() {
        Ok(value) if (1..=max).contains(&value) => Ok(Some(value)),
        _ => Err(format!(
            "{name} must be a whole number from 1 to {max}, not {raw:?}"
        )),
    }
}

/// Serves every route of `cafe::routes::ROUTES` on `listener` under the default [`Limits`]
/// until the task is dropped, which closes every connection.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    serve_with(listener, app, Limits::default(), std::future::pending()).await;
}

/// Serves like [`serve`] under `limits` until `shutdown` completes; then stops accepting,
/// closes idle connections, gives requests in flight up to `limits.shutdown_timeout` to finish,
/// and returns, cutting the connections still open. Dropping the future closes them all at once.
pub async fn serve_with(
    listener: TcpListener,
    app: Arc<App>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    // The live channel's sockets and its fan-out (`crate::live`).
    let hub = crate::live::Hub::start(app.clone()).await;
    // `false` while serving, `true` while draining; its end tells every connection to close.
    let (phase, _) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // At the cap, stop accepting: new connections wait in the kernel's listen backlog,
        // costing no descriptor and no memory here, and are served in order as others close —
        // which the timeouts guarantee — rather than being accepted only to be turned away.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => {
                permit.expect("the semaphore is never closed")
            }
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        tokio::spawn(connection(
            stream,
            peer,
            (app.clone(), hub.clone()),
            http.clone(),
            limits,
            phase.subscribe(),
            permit,
        ));
    }
    drop(listener);
    tracing::info!(
        connections = phase.receiver_count(),
        "shutting down: letting requests in flight finish"
    );
    phase.send_replace(true);
    if tokio::time::timeout(limits.shutdown_timeout, phase.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = phase.receiver_count(),
            timeout = ?limits.shutdown_timeout,
            "shutdown timeout: closing the connections still open"
        );
    }
}

/// One connection, until it ends, stays idle too long, or the server drains or goes away. It
/// holds one of the server's permits until then.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    (app, hub): (Arc<App>, Arc<crate::live::Hub>),
    http: http1::Builder,
    limits: Limits,
    mut phase: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| {
            let app = app.clone();
            let hub = hub.clone();
            let in_flight = activity.request_started();
            async move {
                // `GET /live` upgrades to the live channel's WebSocket: once upgraded, the
                // socket is no longer this connection's (nor under its idle timer or cap).
                if req.uri().path() == crate::live::PATH && crate::live::is_upgrade(&req) {
                    let response = crate::live::upgrade(req, app, hub).await;
                    drop(in_flight);
                    return Ok::<_, Infallible>(response);
                }
                let response = handle(req, &app, peer, limits.body_read_timeout).await;
                drop(in_flight);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let connection = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(activity.idle_deadline(limits.idle_timeout)) => {
                if activity.idle_for(limits.idle_timeout) {
                    tracing::debug!(%peer, "closing an idle connection");
                    return;
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    // The server is gone.
                    return;
                }
                // Closes the connection if idle, else once its response is written.
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// What the idle timer of a connection watches: its requests in flight, and when it last
/// received a byte or handed over a response.
struct Activity {
    origin: Instant,
    /// Microseconds since `origin`.
    last: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let micros = u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last.store(micros, Ordering::SeqCst);
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    /// When the connection will have been idle for `idle` if nothing happens meanwhile; with a
    /// request in flight, a time to look again.
    fn idle_deadline(&self, idle: Duration) -> Instant {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return Instant::now() + idle;
        }
        self.origin + Duration::from_micros(self.last.load(Ordering::SeqCst)) + idle
    }

    fn idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && Instant::now() >= self.idle_deadline(idle)
    }
}

/// A request being handled; its end counts as activity.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The socket, noting in [`Activity`] every read that brings bytes.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// One request: route, read the body, call the function, log one line.
async fn handle(
    req: hyper::Request<Incoming>,
    app: &App,
    peer: SocketAddr,
    body_timeout: Duration,
) -> hyper::Response<Full<Bytes>> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = route(req, app, peer, body_timeout).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        elapsed = ?started.elapsed(),
        "request"
    );
    to_hyper(response)
}

async fn route(
    req: hyper::Request<Incoming>,
    app: &App,
    peer: SocketAddr,
    body_timeout: Duration,
) -> lambda_http::Response<Body> {
    let (route, params) = match match_route(req.method().as_str(), req.uri().path()) {
        RouteMatch::Found { route, params } => (route, params),
        RouteMatch::MethodNotAllowed => return failure(&Error::MethodNotAllowed),
        RouteMatch::NotFound => {
            // Not an API route: maybe one of the web screens' files (local/src/site.rs).
            let method = req.method();
            if method == http::Method::GET || method == http::Method::HEAD {
                let head = method == http::Method::HEAD;
                if let Some(file) =
                    crate::site::serve(&crate::site::site_dir(), req.uri().path(), head).await
                {
                    return file;
                }
            }
            return failure(&Error::NoRoute);
        }
    };
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&parts.headers, body, body_timeout).await {
        Ok(bytes) => bytes,
        Err(error) => {
            // What is left of the body is unknown, so the connection cannot carry another
            // request: say so (hyper closes it anyway once it cannot drain the body).
            let mut response = failure(&error);
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    let route_key = format!("{} {}", route.method, route.path);
    let request = to_lambda_request(parts, bytes, params, &route_key, peer);
    dispatch(route.function, request, app).await
}

/// The body, refused with 413CO000 as soon as it is known to pass 64 KiB (from its declared
/// length, or while it streams in), so nothing unbounded is ever buffered; and refused with
/// [`body_timed_out`] unless all of it arrives within `timeout`.
async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    timeout: Duration,
) -> Result<Bytes, Error> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(Error::PayloadTooLarge);
    }
    match tokio::time::timeout(timeout, Limited::new(body, MAX_BODY_BYTES).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<LengthLimitError>() => Err(Error::PayloadTooLarge),
        // The client went away or sent a broken chunked body.
        Ok(Err(_)) => Err(Error::invalid("body")),
        Err(_elapsed) => {
            tracing::info!(?timeout, "request body timed out");
            Err(body_timed_out())
        }
    }
}

/// The answer to a body that does not arrive within `BODY_READ_TIMEOUT_MS`: 408CO000.
fn body_timed_out() -> Error {
    Error::RequestTimeout
}

/// The request as API Gateway's HTTP API (payload 2.0) hands it to `lambda_http`.
fn to_lambda_request(
    parts: http::request::Parts,
    bytes: Bytes,
    params: Vec<(String, String)>,
    route_key: &str,
    peer: SocketAddr,
) -> lambda_http::Request {
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(raw) => Body::Binary(raw.into_bytes()),
        }
    };
    let path = parts.uri.path().to_owned();
    let query: QueryMap = parts
        .uri
        .query()
        .unwrap_or_default()
        .parse()
        .unwrap_or_default();
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(route_key.to_owned());
    context.stage = Some("$default".to_owned());
    context.http.method = parts.method.clone();
    context.http.path = Some(path.clone());
    context.http.protocol = Some(format!("{:?}", parts.version));
    context.http.source_ip = Some(peer.ip().to_string());
    context.http.user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut request = http::Request::from_parts(parts, body);
    *request.extensions_mut() = http::Extensions::new();
    request
        .with_raw_http_path(path)
        .with_path_parameters(params.into_iter().collect::<HashMap<_, _>>())
        .with_query_string_parameters(query)
        .with_request_context(RequestContext::ApiGatewayV2(context))
}

fn to_hyper(response: lambda_http::Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(raw) => Bytes::from(raw),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}
