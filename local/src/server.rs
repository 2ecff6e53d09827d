//! The local HTTP server: hyper 1 on one listener, routing with `cafe::routes`.

use crate::dispatch;
use cafe::http::{MAX_BODY_BYTES, failure};
use cafe::routes::{RouteMatch, match_route};
use cafe::{App, Error};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use lambda_http::aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
use lambda_http::aws_lambda_events::query_map::QueryMap;
use lambda_http::request::RequestContext;
use lambda_http::{Body, RequestExt};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// Serves every route of `cafe::routes::ROUTES` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(handle(req, &app, peer).await) }
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

/// One request: route, read the body, call the function, log one line.
async fn handle(
    req: hyper::Request<Incoming>,
    app: &App,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = route(req, app, peer).await;
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
) -> lambda_http::Response<Body> {
    let (route, params) = match match_route(req.method().as_str(), req.uri().path()) {
        RouteMatch::Found { route, params } => (route, params),
        RouteMatch::MethodNotAllowed => return failure(&Error::MethodNotAllowed),
        RouteMatch::NotFound => return failure(&Error::NoRoute),
    };
    let (parts, body) = req.into_parts();
    let bytes = match read_body(&parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(error) => return failure(&error),
    };
    let route_key = format!("{} {}", route.method, route.path);
    let request = to_lambda_request(parts, bytes, params, &route_key, peer);
    dispatch(route.function, request, app).await
}

/// The body, refused with 413CO000 as soon as it is known to pass 64 KiB (from its declared
/// length, or while it streams in), so nothing unbounded is ever buffered.
async fn read_body(headers: &http::HeaderMap, body: Incoming) -> Result<Bytes, Error> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(Error::PayloadTooLarge);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(Error::PayloadTooLarge),
        // The client went away or sent a broken chunked body.
        Err(_) => Err(Error::invalid("body")),
    }
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
