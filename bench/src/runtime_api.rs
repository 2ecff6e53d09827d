//! A small stand-in for the Lambda Runtime API: serves one invocation and records when the
//! function first polled for work and when it posted its answer.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::Notify;

#[derive(Debug, Default, Clone)]
pub struct Observed {
    pub first_poll: Option<Instant>,
    pub answered: Option<Instant>,
    /// The body the function posted (its response, or its error).
    pub answer: Option<String>,
    pub failed: bool,
}

pub struct RuntimeApi {
    pub address: String,
    observed: Arc<Mutex<Observed>>,
    done: Arc<Notify>,
    server: tokio::task::JoinHandle<()>,
}

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

impl RuntimeApi {
    /// Starts serving `event` as the one invocation.
    pub async fn start(event: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let observed = Arc::new(Mutex::new(Observed::default()));
        let done = Arc::new(Notify::new());
        let event = Bytes::from(event);
        let (obs, fin) = (observed.clone(), done.clone());
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (obs, fin, event) = (obs.clone(), fin.clone(), event.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        handle(req, obs.clone(), fin.clone(), event.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            observed,
            done,
            server,
        })
    }

    /// Waits until the function answered (or `timeout` passed) and returns what was seen.
    pub async fn wait(&self, timeout: std::time::Duration) -> Observed {
        let _ = tokio::time::timeout(timeout, self.done.notified()).await;
        self.observed.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    req: Request<Incoming>,
    observed: Arc<Mutex<Observed>>,
    done: Arc<Notify>,
    event: Bytes,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let now = Instant::now();
    let path = req.uri().path().to_owned();
    if req.method() == Method::GET && path.ends_with("/runtime/invocation/next") {
        let first = {
            let mut o = observed.lock().unwrap_or_else(|p| p.into_inner());
            let first = o.first_poll.is_none();
            if first {
                o.first_poll = Some(now);
            }
            first
        };
        if !first {
            // One invocation per process: later polls wait until the process is killed.
            std::future::pending::<()>().await;
        }
        let deadline = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() + 30_000)
            .unwrap_or_default();
        let response = Response::builder()
            .header("Lambda-Runtime-Aws-Request-Id", REQUEST_ID)
            .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
            .header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench",
            )
            .header(
                "Lambda-Runtime-Trace-Id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
            )
            .body(Full::new(event))
            .unwrap_or_default();
        return Ok(response);
    }
    if req.method() == Method::POST {
        let failed = path.ends_with("/error");
        let body = req.into_body().collect().await?.to_bytes();
        {
            let mut o = observed.lock().unwrap_or_else(|p| p.into_inner());
            o.answered = Some(now);
            o.failed = failed;
            o.answer = Some(String::from_utf8_lossy(&body).into_owned());
        }
        done.notify_one();
        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
        *response.status_mut() = StatusCode::ACCEPTED;
        return Ok(response);
    }
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NOT_FOUND;
    Ok(response)
}
