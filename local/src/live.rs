//! The live channel on the local server: `ws://127.0.0.1:3000/live[?ticket=…]`, the same
//! protocol as the API Gateway WebSocket API (`docs/live.md`), over the same use cases
//! (`cafe::services::live`): the upgrade redeems the ticket (`$connect`), each text frame is a
//! `subscribe` or `ping` (the `subscribe` route), closing forgets the connection
//! (`$disconnect`). Committed events reach the sockets through [`Hub`], which plays the Lambda
//! sender: on the embedded default it hears the in-memory event log as each write commits; over
//! the AWS backend it polls the table's outbox rows (what the stream carries on AWS).

use cafe::App;
use cafe::domain::DomainEvent;
use cafe::services::live::{self as live_service, Posted, Poster};
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// The path the live channel is served at.
pub const PATH: &str = "/live";

/// The largest client frame taken (a subscribe is well under 200 bytes).
const MAX_FRAME_BYTES: usize = 4096;

/// The open sockets, by connection id: what the fan-out posts to.
#[derive(Default)]
pub struct Hub {
    sockets: Mutex<HashMap<String, mpsc::UnboundedSender<String>>>,
    /// Over the AWS backend: the outbox as last read (see [`poll_outbox`]).
    outbox: Option<tokio::sync::Mutex<Outbox>>,
}

/// The table's outbox as the local server has read it: the events already seen.
struct Outbox {
    store: cafe::store::dynamo::DynamoStore,
    seen: HashSet<String>,
}

impl Outbox {
    /// The outbox events not seen before, in event order, now marked seen.
    async fn unseen(&mut self) -> cafe::Result<Vec<DomainEvent>> {
        let mut events = self.store.outbox_events().await?;
        events.retain(|e| !self.seen.contains(&e.event_id));
        events.sort_by(|a, b| a.event_id.cmp(&b.event_id));
        self.seen.extend(events.iter().map(|e| e.event_id.clone()));
        Ok(events)
    }
}

impl Hub {
    /// A hub fanning out every event `app` commits from now on, until the server goes.
    pub async fn start(app: Arc<App>) -> Arc<Self> {
        match &app.event_log {
            Some(log) => {
                let hub = Arc::new(Self::default());
                let mut batches = log.watch();
                let (app, fanning) = (app.clone(), hub.clone());
                tokio::spawn(async move {
                    while let Some(batch) = batches.recv().await {
                        fanning.fan_out(&app, &batch).await;
                    }
                });
                hub
            }
            None => {
                let aws = cafe::aws::Aws::load(
                    app.config.dynamodb_endpoint.as_deref(),
                    app.config.dependency_timeout,
                )
                .await;
                let store = cafe::store::dynamo::DynamoStore::from_aws(&aws, &app.config);
                let hub = Arc::new(Self {
                    sockets: Mutex::default(),
                    outbox: Some(tokio::sync::Mutex::new(Outbox {
                        store,
                        seen: HashSet::new(),
                    })),
                });
                let (app, polling) = (app.clone(), hub.clone());
                tokio::spawn(async move { poll_outbox(app, polling).await });
                hub
            }
        }
    }

    async fn fan_out(&self, app: &App, batch: &[DomainEvent]) {
        match live_service::fan_out(app, self, batch).await {
            Ok(result) => tracing::debug!(?result, "live fan-out"),
            // The store could not be read: on AWS the stream batch would be retried.
            Err(error) => tracing::warn!(%error, "live fan-out failed"),
        }
    }

    /// Registers a socket. Over the AWS backend, the first socket after none first marks the
    /// outbox as read: what committed before anyone listened is not pushed (a client re-reads
    /// state after connecting), and nothing is scanned while no one listens.
    async fn open(&self, connection_id: &str) -> mpsc::UnboundedReceiver<String> {
        let mut outbox = match &self.outbox {
            Some(outbox) => Some(outbox.lock().await),
            None => None,
        };
        if let Some(outbox) = outbox.as_mut()
            && self.open_count() == 0
            && let Err(error) = outbox.unseen().await
        {
            tracing::warn!(%error, "reading the outbox failed");
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(connection_id.to_owned(), sender);
        receiver
    }

    fn close(&self, connection_id: &str) {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(connection_id);
    }

    /// Open sockets (the benchmark's check).
    pub fn open_count(&self) -> usize {
        self.sockets.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[async_trait::async_trait]
impl Poster for Hub {
    async fn post(&self, connection_id: &str, message: &str) -> Posted {
        let sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        match sockets.get(connection_id) {
            Some(socket) if socket.send(message.to_owned()).is_ok() => Posted::Delivered,
            // No socket here: as API Gateway answers for a connection that is gone.
            _ => Posted::Gone,
        }
    }
}

/// True for a request asking to upgrade to a WebSocket.
pub fn is_upgrade(req: &hyper::Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn plain(status: u16, body: String) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn refused(error: &cafe::Error) -> hyper::Response<Full<Bytes>> {
    let response = cafe::http::failure(error);
    let status = response.status().as_u16();
    let body = match response.into_body() {
        lambda_http::Body::Text(text) => text,
        _ => String::new(),
    };
    plain(status, body)
}

/// The upgrade of `GET /live`: redeems the ticket, answers 101 and serves the socket, or
/// refuses with the contract's 401 (bad ticket) or 400 (not a WebSocket handshake).
pub async fn upgrade(
    mut req: hyper::Request<Incoming>,
    app: Arc<App>,
    hub: Arc<Hub>,
) -> hyper::Response<Full<Bytes>> {
    if req.method() != hyper::Method::GET {
        return refused(&cafe::Error::MethodNotAllowed);
    }
    let Some(key) = req
        .headers()
        .get(hyper::header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return refused(&cafe::Error::invalid("Sec-WebSocket-Key"));
    };
    let ticket = req.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("ticket="))
            .map(str::to_owned)
    });
    let connection_id = cafe::ids::new_id(app.clock.now());
    if let Err(error) = live_service::connect(&*app, &connection_id, ticket.as_deref()).await {
        tracing::info!(code = error.wire().code, "live connection refused");
        return refused(&error);
    }
    let upgrading = hyper::upgrade::on(&mut req);
    let outgoing = hub.open(&connection_id).await;
    tokio::spawn(async move {
        match upgrading.await {
            Ok(upgraded) => {
                let mut config = WebSocketConfig::default();
                config.max_message_size = Some(MAX_FRAME_BYTES);
                config.max_frame_size = Some(MAX_FRAME_BYTES);
                // Client frames are small: a 4 KiB read buffer instead of tungstenite's 128 KiB
                // keeps an idle connection cheap (BENCHMARKS.md: memory per connection).
                config.read_buffer_size = MAX_FRAME_BYTES;
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                serve_socket(socket, &app, &connection_id, outgoing).await;
            }
            Err(error) => tracing::debug!(%error, "live upgrade failed"),
        }
        hub.close(&connection_id);
        if let Err(error) = live_service::disconnect(&*app, &connection_id).await {
            tracing::warn!(%error, "could not forget a closed live connection");
        }
    });
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    headers.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = hyper::header::HeaderValue::from_str(&key) {
        headers.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// One socket until either side closes it, or it is silent past API Gateway's 10-minute idle
/// limit.
async fn serve_socket(
    socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
    app: &App,
    connection_id: &str,
    mut outgoing: mpsc::UnboundedReceiver<String>,
) {
    const IDLE: Duration = Duration::from_secs(600);
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            pushed = outgoing.recv() => {
                let Some(text) = pushed else { return };
                if sink.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            frame = tokio::time::timeout(IDLE, stream.next()) => {
                let reply = match frame {
                    Err(_) | Ok(None) | Ok(Some(Err(_))) => return,
                    Ok(Some(Ok(Message::Text(text)))) => {
                        match live_service::on_frame(app, connection_id, text.as_str()).await {
                            Ok(reply) => reply,
                            Err(error) => cafe::domain::live::error_frame(&error),
                        }
                    }
                    Ok(Some(Ok(Message::Close(_)))) => return,
                    // Pings are answered by tungstenite; pongs and binary frames are ignored.
                    Ok(Some(Ok(_))) => continue,
                };
                if sink.send(Message::text(reply)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Over the AWS backend, while at least one socket is open: every 250 ms, the outbox rows
/// committed since the last look, in event order, fanned out as `live-sender` does on
/// AWS. Nothing is scanned while no socket is open (a load test on moto pays nothing for it).
async fn poll_outbox(app: Arc<App>, hub: Arc<Hub>) {
    let Some(outbox) = &hub.outbox else { return };
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if hub.open_count() == 0 {
            continue;
        }
        let mut outbox = outbox.lock().await;
        match outbox.unseen().await {
            Ok(events) if !events.is_empty() => hub.fan_out(&app, &events).await,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "reading the outbox failed"),
        }
    }
}
