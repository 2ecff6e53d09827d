//! The local server's own limits, over real sockets on 127.0.0.1 with short limits: a head that
//! stalls or trickles, a body that stalls, an idle keep-alive connection, the connection cap, and
//! shutdown — in-process, and by Ctrl-C (SIGINT) to the `cafe-local` binary.
//!
//! Every wait is bounded; a timer is checked not to fire early (`EARLY`) nor late (`LATE`).

use cafe::App;
use cafe_local::{Limits, serve_with};
use serde_json::{Value, json};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// How much sooner than its limit a timer may seem to fire: the server's clock for a connection
/// starts at accept, a little before the client's.
const EARLY: Duration = ms(100);
/// How much later than its limit a timer may fire on a loaded two-core machine.
const LATE: Duration = ms(2000);

/// Limits under which nothing fires during a test but what the test shortens.
fn patient() -> Limits {
    Limits {
        header_read_timeout: ms(30_000),
        body_read_timeout: ms(30_000),
        idle_timeout: ms(30_000),
        max_connections: 64,
        shutdown_timeout: ms(30_000),
    }
}

struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let (app, _parts) =
            App::in_memory(cafe::testing::test_config(), cafe::testing::manual_clock())
                .await
                .expect("app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(serve_with(listener, Arc::new(app), limits, shutdown));
        Self {
            address,
            stop: Some(stop),
            task,
        }
    }

    async fn connect(&self) -> TcpStream {
        timeout(LATE, TcpStream::connect(self.address))
            .await
            .expect("connect in time")
            .expect("connect")
    }

    fn shut_down(&mut self) {
        self.stop
            .take()
            .expect("once")
            .send(())
            .expect("server running");
    }
}

/// One response as the server sends it (framed by `Content-Length`; none on a 1xx).
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

async fn read_response(stream: &mut TcpStream) -> Answer {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(
            n > 0,
            "closed before a response; received {:?}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(received[..head_end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, value)| value.parse().expect("a length"));
    while received.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "closed inside a body");
        received.extend_from_slice(&chunk[..n]);
    }
    Answer {
        status,
        headers,
        body: received[head_end..head_end + length].to_vec(),
    }
}

/// The next response, which must come within `within`.
async fn response_within(stream: &mut TcpStream, within: Duration) -> Answer {
    timeout(within, read_response(stream))
        .await
        .unwrap_or_else(|_| panic!("no response within {within:?}"))
}

/// Reads until the server closes the connection (end of stream or reset), which must happen
/// within `within`: what came before, and how long it took.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let closed = timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "still open after {within:?}; received {:?}",
        String::from_utf8_lossy(&received)
    );
    (received, started.elapsed())
}

async fn get_items(stream: &mut TcpStream, extra_headers: &str) -> Answer {
    let request = format!("GET /items HTTP/1.1\r\nhost: cafe\r\n{extra_headers}\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let answer = response_within(stream, LATE).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "success");
    answer
}

/// A sign-up whose body is `length` bytes, announced with `Expect: 100-continue`: once the
/// server answers 100 it is reading the body, so the request is in flight.
async fn sign_up_in_flight(stream: &mut TcpStream, length: usize) {
    let head = format!(
        "POST /member HTTP/1.1\r\nhost: cafe\r\ncontent-type: application/json\r\n\
         content-length: {length}\r\nexpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    assert_eq!(response_within(stream, LATE).await.status, 100);
}

fn assert_took(elapsed: Duration, limit: Duration) {
    assert!(
        elapsed + EARLY >= limit,
        "took {elapsed:?}, sooner than the limit of {limit:?}"
    );
    assert!(
        elapsed <= limit + LATE,
        "took {elapsed:?}, the limit is {limit:?}"
    );
}

#[tokio::test]
async fn a_normal_request_is_served() {
    let server = Server::start(Limits::default()).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let response = timeout(
        LATE,
        client
            .get(format!("http://{}/items", server.address))
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(response.status(), 200);

    // And through `serve`, which existing callers use: the same, under the default limits.
    let (app, _parts) = App::in_memory(cafe::testing::test_config(), cafe::testing::manual_clock())
        .await
        .expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let served = tokio::spawn(cafe_local::serve(listener, Arc::new(app)));
    let mut stream = TcpStream::connect(address).await.expect("connect");
    get_items(&mut stream, "").await;
    served.abort();
}

#[tokio::test]
async fn a_stalled_request_line_is_cut_at_the_header_timeout() {
    let limits = Limits {
        header_read_timeout: ms(400),
        ..patient()
    };
    let server = Server::start(limits).await;
    let mut stream = server.connect().await;
    stream.write_all(b"GET /ite").await.expect("write");
    let (received, elapsed) = closed_within(&mut stream, limits.header_read_timeout + LATE).await;
    assert_took(elapsed, limits.header_read_timeout);
    assert!(received.is_empty(), "no answer to half a head");
}

#[tokio::test]
async fn a_trickling_head_is_cut_at_the_header_timeout_though_never_idle() {
    // A byte every 100 ms keeps the 250 ms idle timer from firing: only the header timer can.
    let limits = Limits {
        header_read_timeout: ms(600),
        idle_timeout: ms(250),
        ..patient()
    };
    let server = Server::start(limits).await;
    let mut stream = server.connect().await;
    let started = Instant::now();
    let mut bytes = b"GET /items HTTP/1.1\r\nx-slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat(b'a'));
    let closed = timeout(limits.header_read_timeout + LATE, async {
        let mut chunk = [0u8; 64];
        loop {
            let byte = bytes.next().expect("endless");
            if stream.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::select! {
                read = stream.read(&mut chunk) => {
                    if matches!(read, Ok(0) | Err(_)) {
                        return;
                    }
                    panic!("an answer to half a head");
                }
                () = tokio::time::sleep(ms(100)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open");
    assert_took(started.elapsed(), limits.header_read_timeout);
}

#[tokio::test]
async fn a_stalled_body_gets_the_timeout_answer() {
    let limits = Limits {
        body_read_timeout: ms(400),
        ..patient()
    };
    let server = Server::start(limits).await;
    let mut stream = server.connect().await;
    stream
        .write_all(
            b"POST /member HTTP/1.1\r\nhost: cafe\r\ncontent-type: application/json\r\n\
              content-length: 100\r\n\r\n{\"name\":\"",
        )
        .await
        .expect("write");
    let started = Instant::now();
    let answer = response_within(&mut stream, limits.body_read_timeout + LATE).await;
    assert_took(started.elapsed(), limits.body_read_timeout);
    assert_eq!(answer.status, 408);
    assert_eq!(
        answer.json(),
        json!({
            "status": "fail",
            "error": {
                "code": "408CO000",
                "detailMessage": "The request body did not arrive in time."
            }
        })
    );
    assert_eq!(answer.header("connection"), Some("close"));
    let (received, _) = closed_within(&mut stream, LATE).await;
    assert!(received.is_empty(), "nothing after the answer");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let limits = Limits {
        idle_timeout: ms(400),
        ..patient()
    };
    let server = Server::start(limits).await;
    let mut stream = server.connect().await;
    get_items(&mut stream, "").await;
    // Half the idle time later the connection still carries a request, and its answer starts
    // the idle time over.
    tokio::time::sleep(limits.idle_timeout / 2).await;
    get_items(&mut stream, "").await;
    let (received, elapsed) = closed_within(&mut stream, limits.idle_timeout + LATE).await;
    assert_took(elapsed, limits.idle_timeout);
    assert!(received.is_empty());

    // A connection that never sends anything is idle from the start.
    let mut silent = server.connect().await;
    let (received, elapsed) = closed_within(&mut silent, limits.idle_timeout + LATE).await;
    assert_took(elapsed, limits.idle_timeout);
    assert!(received.is_empty());
}

#[tokio::test]
async fn over_the_connection_cap_a_connection_waits_until_one_closes() {
    let limits = Limits {
        max_connections: 2,
        ..patient()
    };
    let server = Server::start(limits).await;
    // Two slow clients take both slots: the kernel's accept queue is in connect order.
    let mut slow = Vec::new();
    for _ in 0..limits.max_connections {
        let mut stream = server.connect().await;
        stream
            .write_all(b"GET /items HTTP/1.1\r\nho")
            .await
            .expect("write");
        slow.push(stream);
    }
    // The next one connects (the backlog) and sends a whole request, but is not served.
    let mut extra = server.connect().await;
    extra
        .write_all(b"GET /items HTTP/1.1\r\nhost: cafe\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut byte = [0u8; 1];
    assert!(
        timeout(ms(500), extra.read(&mut byte)).await.is_err(),
        "served over the cap"
    );
    // One slow client goes away: the waiting one is served at once.
    drop(slow.remove(0));
    let answer = response_within(&mut extra, LATE).await;
    assert_eq!(answer.status, 200);
    closed_within(&mut extra, LATE).await;
    // Normal requests go on being served, the other slow client still holding its slot.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..3 {
        let response = timeout(
            LATE,
            client
                .get(format!("http://{}/items", server.address))
                .send(),
        )
        .await
        .expect("in time")
        .expect("response");
        assert_eq!(response.status(), 200);
    }
    assert_eq!(slow.len(), 1);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_and_lets_requests_in_flight_finish() {
    let mut server = Server::start(patient()).await;
    let mut idle = server.connect().await;
    get_items(&mut idle, "").await;
    let mut busy = server.connect().await;
    sign_up_in_flight(&mut busy, 2).await;

    server.shut_down();
    let (received, _) = closed_within(&mut idle, LATE).await;
    assert!(received.is_empty());
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "still accepting"
    );
    assert!(
        !server.task.is_finished(),
        "stopped with a request in flight"
    );

    busy.write_all(b"{}").await.expect("write");
    let answer = response_within(&mut busy, LATE).await;
    assert_eq!(answer.status, 400, "the sign-up ran to its end");
    closed_within(&mut busy, LATE).await;
    timeout(LATE, server.task)
        .await
        .expect("stopped once the request finished")
        .expect("no panic");
}

#[tokio::test]
async fn shutdown_waits_for_requests_in_flight_no_longer_than_its_timeout() {
    let limits = Limits {
        shutdown_timeout: ms(400),
        ..patient()
    };
    let mut server = Server::start(limits).await;
    let mut stuck = server.connect().await;
    sign_up_in_flight(&mut stuck, 2).await;

    server.shut_down();
    let started = Instant::now();
    timeout(limits.shutdown_timeout + LATE, &mut server.task)
        .await
        .expect("stopped in time")
        .expect("no panic");
    assert_took(started.elapsed(), limits.shutdown_timeout);
    let (received, _) = closed_within(&mut stuck, LATE).await;
    assert!(received.is_empty(), "cut, not answered");
}

/// The binary, killed if a test ends while it runs.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn ctrl_c_lets_the_binary_finish_requests_in_flight_and_exit() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cafe-local"))
        .args(["--port", "0"])
        .env_remove("CAFE_BACKEND")
        .env_remove("CAFE_ENV")
        .env_remove("AWS_LAMBDA_FUNCTION_NAME")
        .env("RUST_LOG", "warn")
        .env("SHUTDOWN_TIMEOUT_MS", "10000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start cafe-local");
    let stdout = child.stdout.take().expect("stdout");
    let mut running = Running(child);
    let (found, address) = oneshot::channel();
    std::thread::spawn(move || {
        let mut found = Some(found);
        // Reads to the end, so the server never blocks on a full pipe.
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(address) = line.split("serving on http://").nth(1)
                && let Some(found) = found.take()
            {
                let _ = found.send(address.trim().to_owned());
            }
        }
    });
    let address: SocketAddr = timeout(ms(30_000), address)
        .await
        .expect("started in time")
        .expect("printed its address")
        .parse()
        .expect("an address");

    let mut idle = TcpStream::connect(address).await.expect("connect");
    get_items(&mut idle, "").await;
    let mut busy = TcpStream::connect(address).await.expect("connect");
    sign_up_in_flight(&mut busy, 2).await;

    let pid = running.0.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    // The idle connection closes once the signal is taken: the server is draining.
    closed_within(&mut idle, LATE).await;
    assert!(
        running.0.try_wait().expect("status").is_none(),
        "exited with a request in flight"
    );

    busy.write_all(b"{}").await.expect("write");
    assert_eq!(response_within(&mut busy, LATE).await.status, 400);
    let exited = timeout(LATE, async {
        loop {
            if let Some(status) = running.0.try_wait().expect("status") {
                return status;
            }
            tokio::time::sleep(ms(20)).await;
        }
    })
    .await
    .expect("exited in time");
    assert!(exited.success(), "{exited}");
}

#[test]
fn limits_come_from_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    };
    assert_eq!(Limits::from_lookup(env(&[])), Ok(Limits::default()));
    assert_eq!(
        Limits::from_lookup(env(&[("IDLE_TIMEOUT_MS", " ")])),
        Ok(Limits::default())
    );
    assert_eq!(
        Limits::from_lookup(env(&[
            ("HEADER_READ_TIMEOUT_MS", "1500"),
            ("BODY_READ_TIMEOUT_MS", "2500"),
            ("IDLE_TIMEOUT_MS", "3500"),
            ("MAX_CONNECTIONS", "7"),
            ("SHUTDOWN_TIMEOUT_MS", "4500"),
        ])),
        Ok(Limits {
            header_read_timeout: ms(1500),
            body_read_timeout: ms(2500),
            idle_timeout: ms(3500),
            max_connections: 7,
            shutdown_timeout: ms(4500),
        })
    );
    for (name, value) in [
        ("HEADER_READ_TIMEOUT_MS", "0"),
        ("BODY_READ_TIMEOUT_MS", "ten"),
        ("IDLE_TIMEOUT_MS", "-1"),
        ("MAX_CONNECTIONS", "0"),
        ("SHUTDOWN_TIMEOUT_MS", "86400001"),
    ] {
        let error = Limits::from_lookup(|key: &str| (key == name).then(|| value.to_owned()))
            .expect_err(value);
        assert!(error.contains(name), "{error}");
    }
}
