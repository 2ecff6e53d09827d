//! X-Ray subsegments for the `dependency` spans (`crate::spans::dependency_span`): each
//! DynamoDB operation, Redis command, lock call, gateway call, Secrets Manager and EventBridge
//! request becomes a subsegment of the invocation's trace. A span nested in another dependency
//! span (a Redis `SET` inside the lock's `acquire`) is nested in its subsegment.
//!
//! With `Tracing: Active`, Lambda runs the X-Ray daemon beside the function
//! (`AWS_XRAY_DAEMON_ADDRESS`) and the runtime sets `_X_AMZN_TRACE_ID` for each invocation
//! (`Root=…;Parent=…;Sampled=…`). A subsegment is one UDP datagram to the daemon: the header line
//! `{"format":"json","version":1}`, then the document. This is a small emitter, not the
//! OpenTelemetry stack: no exporter, no batching thread, nothing at init. The socket opens at
//! the first subsegment sent, and nothing is sent for an unsampled trace. Sending never blocks
//! or fails a request: a lost datagram is a gap in the trace.

use std::net::{SocketAddr, UdpSocket};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// What the invocation's trace header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeader {
    pub root: String,
    /// The Lambda function segment's id: the parent of top-level subsegments.
    pub parent: String,
    pub sampled: bool,
}

impl TraceHeader {
    /// Parses `Root=1-…;Parent=…;Sampled=1` (fields in any order; unknown ones ignored).
    pub fn parse(header: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut sampled = false;
        for part in header.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", value)) => root = Some(value.to_owned()),
                Some(("Parent", value)) => parent = Some(value.to_owned()),
                Some(("Sampled", value)) => sampled = value == "1",
                _ => {}
            }
        }
        Some(Self {
            root: root?,
            parent: parent?,
            sampled,
        })
    }
}

/// Where the current trace header comes from: `_X_AMZN_TRACE_ID` on Lambda, fixed in tests.
type HeaderSource = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// The layer that sends a subsegment for every closed dependency span.
pub struct XrayLayer {
    daemon: SocketAddr,
    socket: OnceLock<Option<UdpSocket>>,
    header: HeaderSource,
}

/// Kept on a dependency span from its start to its close.
struct Open {
    id: String,
    system: String,
    operation: String,
    start: f64,
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A random 64-bit id in 16 hex digits, as X-Ray wants.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Parses `AWS_XRAY_DAEMON_ADDRESS`: `host:port`, or `udp:host:port tcp:host:port`.
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let udp = value
        .split_whitespace()
        .find_map(|part| part.strip_prefix("udp:"))
        .unwrap_or(value.trim());
    udp.parse().ok()
}

impl XrayLayer {
    /// On Lambda with active tracing: the daemon Lambda runs, the runtime's trace header.
    pub fn from_env() -> Option<Self> {
        let daemon = daemon_address(&std::env::var("AWS_XRAY_DAEMON_ADDRESS").ok()?)?;
        Some(Self::new(
            daemon,
            Box::new(|| std::env::var("_X_AMZN_TRACE_ID").ok()),
        ))
    }

    pub fn new(daemon: SocketAddr, header: HeaderSource) -> Self {
        Self {
            daemon,
            socket: OnceLock::new(),
            header,
        }
    }

    fn send(&self, document: &serde_json::Value) {
        let socket = self.socket.get_or_init(|| {
            let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.set_nonblocking(true).ok()?;
            Some(socket)
        });
        if let Some(socket) = socket {
            let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{document}");
            let _ = socket.send_to(datagram.as_bytes(), self.daemon);
        }
    }
}

/// The X-Ray name and namespace of a dependency system.
fn service_of(system: &str) -> (&'static str, &'static str) {
    match system {
        "dynamodb" => ("DynamoDB", "aws"),
        "secretsmanager" => ("SecretsManager", "aws"),
        "eventbridge" => ("EventBridge", "aws"),
        "redis" => ("Redis", "remote"),
        "lock" => ("PaymentLock", "remote"),
        "gateway" => ("PaymentGateway", "remote"),
        _ => ("Dependency", "remote"),
    }
}

impl<S> Layer<S> for XrayLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(named) = crate::spans::DependencyFields::of(attrs) else {
            return;
        };
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Open {
                id: new_id(),
                system: named.system,
                operation: named.operation,
                start: epoch_seconds(),
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let Some(header) = (self.header)().as_deref().and_then(TraceHeader::parse) else {
            return;
        };
        if !header.sampled {
            return;
        }
        // The nearest enclosing dependency span's subsegment, else the function's segment.
        let parent_id = span
            .scope()
            .skip(1)
            .find_map(|ancestor| ancestor.extensions().get::<Open>().map(|o| o.id.clone()))
            .unwrap_or(header.parent);
        let (name, namespace) = service_of(&open.system);
        let mut document = serde_json::json!({
            "name": name,
            "id": open.id,
            "trace_id": header.root,
            "parent_id": parent_id,
            "type": "subsegment",
            "namespace": namespace,
            "start_time": open.start,
            "end_time": epoch_seconds().max(open.start),
        });
        if namespace == "aws" {
            document["aws"] = serde_json::json!({"operation": open.operation});
        } else {
            document["metadata"] = serde_json::json!({"cafe": {"operation": open.operation}});
        }
        self.send(&document);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    const HEADER: &str =
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

    fn daemon() -> UdpSocket {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("a local daemon");
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .expect("timeout");
        socket
    }

    fn received(socket: &UdpSocket) -> Vec<serde_json::Value> {
        let mut documents = Vec::new();
        let mut buffer = [0u8; 65_536];
        while let Ok(n) = socket.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]).into_owned();
            let (header, body) = text.split_once('\n').expect("header line");
            assert_eq!(header, r#"{"format":"json","version":1}"#);
            documents.push(serde_json::from_str(body).expect("a JSON document"));
        }
        documents
    }

    #[test]
    fn nested_dependency_spans_become_nested_subsegments_of_the_function() {
        let socket = daemon();
        let address = socket.local_addr().expect("address");
        let layer = XrayLayer::new(address, Box::new(|| Some(HEADER.to_owned())));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let request = crate::spans::request_span("payment-create", "r-1");
            let _request = request.enter();
            let lock = crate::spans::dependency_span("lock", "acquire");
            {
                let _lock = lock.enter();
                let set = crate::spans::dependency_span("redis", "SET");
                drop(set.enter());
            }
            drop(lock);
            drop(crate::spans::dependency_span("dynamodb", "Query"));
        });
        let documents = received(&socket);
        assert_eq!(documents.len(), 3, "{documents:?}");
        let by_name = |name: &str| {
            documents
                .iter()
                .find(|d| d["name"] == name)
                .unwrap_or_else(|| panic!("{name} in {documents:?}"))
                .clone()
        };
        let (redis, lock, dynamodb) = (
            by_name("Redis"),
            by_name("PaymentLock"),
            by_name("DynamoDB"),
        );
        for d in [&redis, &lock, &dynamodb] {
            assert_eq!(d["trace_id"], "1-5759e988-bd862e3fe1be46a994272793");
            assert_eq!(d["type"], "subsegment");
            assert!(d["id"].as_str().is_some_and(|id| id.len() == 16));
            assert!(d["end_time"].as_f64() >= d["start_time"].as_f64());
        }
        assert_eq!(
            lock["parent_id"], "53995c3f42cd8ad8",
            "the function's segment"
        );
        assert_eq!(
            redis["parent_id"], lock["id"],
            "nested in the lock's subsegment"
        );
        assert_eq!(dynamodb["parent_id"], "53995c3f42cd8ad8");
        assert_eq!(dynamodb["namespace"], "aws");
        assert_eq!(dynamodb["aws"]["operation"], "Query");
        assert_eq!(redis["namespace"], "remote");
        assert_eq!(redis["metadata"]["cafe"]["operation"], "SET");
    }

    #[test]
    fn an_unsampled_or_missing_trace_sends_nothing() {
        let socket = daemon();
        let address = socket.local_addr().expect("address");
        for header in [Some(HEADER.replace("Sampled=1", "Sampled=0")), None] {
            let layer = XrayLayer::new(address, Box::new(move || header.clone()));
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
                drop(crate::spans::dependency_span("dynamodb", "GetItem"));
            });
        }
        assert!(received(&socket).is_empty());
    }

    #[test]
    fn the_daemon_address_and_the_header_parse_as_lambda_gives_them() {
        assert_eq!(
            daemon_address("169.254.79.129:2000"),
            "169.254.79.129:2000".parse().ok()
        );
        assert_eq!(
            daemon_address("tcp:127.0.0.1:2000 udp:127.0.0.2:2000"),
            "127.0.0.2:2000".parse().ok()
        );
        assert_eq!(daemon_address("nonsense"), None);
        let header = TraceHeader::parse("Sampled=1;Root=1-a-b;Lineage=x;Parent=p").expect("header");
        assert_eq!(
            (header.root.as_str(), header.parent.as_str(), header.sampled),
            ("1-a-b", "p", true)
        );
        assert_eq!(
            TraceHeader::parse("Root=1-a-b"),
            None,
            "no parent: nowhere to attach"
        );
    }
}
