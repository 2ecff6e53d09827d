//! A delaying proxy between a DynamoDB client and moto: every request goes through to moto, but
//! the answer of one chosen call (by `X-Amz-Target`, optionally only a call whose body contains
//! a given text, the `nth` such call) is held past the SDK's per-try timeout. The SDK gives up on
//! that try and sends the request again, and the re-send meets what the first send already
//! wrote — the way a slow answer from DynamoDB plays out in production.
//!
//! One request per connection to moto (`Connection: close`), so the answer is read to its end
//! without parsing it.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The call whose answer is held.
#[derive(Debug, Clone)]
struct Hold {
    /// `X-Amz-Target`, e.g. `DynamoDB_20120810.PutItem`.
    target: String,
    /// Only calls whose body contains this text count (empty: every call of the target).
    needle: String,
    /// 1-based: the answer of the `nth` matching call is held.
    nth: usize,
    seen: usize,
}

#[derive(Debug, Default)]
struct State {
    hold: Option<Hold>,
    /// Targets of every call, in order, and whether its answer was held.
    calls: Vec<(String, bool)>,
}

/// A proxy listening on `127.0.0.1`, forwarding to moto.
#[derive(Clone)]
pub struct DelayingProxy {
    pub url: String,
    hold_for: Duration,
    state: Arc<Mutex<State>>,
}

impl DelayingProxy {
    /// Starts a proxy to `upstream` (`http://host:port`) that holds a chosen answer `hold_for`.
    pub async fn start(upstream: &str, hold_for: Duration) -> Self {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let proxy = Self {
            url,
            hold_for,
            state: Arc::default(),
        };
        let serving = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let proxy = serving.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    // A connection the SDK dropped (its try timed out) just ends.
                    let _ = proxy.serve(client, &upstream).await;
                });
            }
        });
        proxy
    }

    /// Holds the answer of the `nth` call of `target` (`PutItem`, `TransactWriteItems`, …) whose
    /// body contains `needle`, counted from now.
    pub fn hold(&self, target: &str, needle: &str, nth: usize) {
        let mut state = self.state.lock().expect("proxy state");
        state.hold = Some(Hold {
            target: format!("DynamoDB_20120810.{target}"),
            needle: needle.to_owned(),
            nth,
            seen: 0,
        });
    }

    /// The calls of `target` whose answer was held so far.
    pub fn held(&self) -> Vec<String> {
        let state = self.state.lock().expect("proxy state");
        state
            .calls
            .iter()
            .filter(|(_, held)| *held)
            .map(|(target, _)| target.clone())
            .collect()
    }

    /// How many calls of `target` went through the proxy.
    pub fn calls_of(&self, target: &str) -> usize {
        let target = format!("DynamoDB_20120810.{target}");
        let state = self.state.lock().expect("proxy state");
        state.calls.iter().filter(|(t, _)| *t == target).count()
    }

    /// True when this call's answer is the one to hold (and records the call).
    fn holds(&self, target: &str, body: &[u8]) -> bool {
        let mut state = self.state.lock().expect("proxy state");
        let held = match state.hold.as_mut() {
            Some(hold)
                if hold.target == target
                    && (hold.needle.is_empty()
                        || body
                            .windows(hold.needle.len())
                            .any(|w| w == hold.needle.as_bytes())) =>
            {
                hold.seen += 1;
                hold.seen == hold.nth
            }
            _ => false,
        };
        state.calls.push((target.to_owned(), held));
        held
    }

    async fn serve(&self, mut client: TcpStream, upstream: &str) -> std::io::Result<()> {
        let mut buffer = Vec::new();
        loop {
            let Some((head, body)) = read_request(&mut client, &mut buffer).await? else {
                return Ok(());
            };
            let target = header(&head, "x-amz-target").unwrap_or_default();
            let held = self.holds(&target, &body);
            let answer = forward(upstream, &head, &body).await?;
            if held {
                // Applied by moto; the answer arrives after the SDK stopped waiting for it.
                tokio::time::sleep(self.hold_for).await;
            }
            client.write_all(&answer).await?;
            if header(&answer_head(&answer), "connection").as_deref() == Some("close") {
                return Ok(());
            }
        }
    }
}

/// Reads one request (head and `Content-Length` body) from the client; `None` at its end.
async fn read_request(
    client: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 8192];
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 8192];
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Ok(Some((head, body)))
}

/// Sends one request to moto on a connection of its own and reads the whole answer.
async fn forward(upstream: &str, head: &str, body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut request = String::new();
    for line in head.trim_end().split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            request.push_str(line);
            request.push_str("\r\n");
        }
    }
    request.push_str("connection: close\r\n\r\n");
    let mut moto = TcpStream::connect(upstream).await?;
    moto.write_all(request.as_bytes()).await?;
    moto.write_all(body).await?;
    let mut answer = Vec::new();
    moto.read_to_end(&mut answer).await?;
    Ok(answer)
}

fn answer_head(answer: &[u8]) -> String {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    String::from_utf8_lossy(&answer[..end]).into_owned()
}

/// A header's value (case-insensitive name), lower-cased for `connection`.
fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| {
            let value = value.trim();
            if name == "connection" {
                value.to_ascii_lowercase()
            } else {
                value.to_owned()
            }
        })
    })
}
