//! The HTTP edge shared by every function: the contract's envelope, body parsing with field-named
//! errors, path and query parameters, bearer tokens.

use crate::error::{Error, Result};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::Instrument;

/// Bodies larger than this answer 413CO000.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body type that checks its own ranges after it parsed.
pub trait Validate {
    /// Range and shape rules that serde cannot express; name the offending field.
    fn validate(&self) -> Result<()>;
}

/// `{"status":"success","result":...}` with `status`.
pub fn success<T: Serialize>(status: u16, result: &T) -> Response<Body> {
    let body = json!({"status": "success", "result": result});
    json_response(status, body.to_string())
}

/// `{"status":"success"}` with nothing to return.
pub fn success_empty(status: u16) -> Response<Body> {
    json_response(status, r#"{"status":"success"}"#.to_owned())
}

/// A raw JSON body with `status` (replaying stored idempotent answers).
pub fn json_response(status: u16, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

/// The contract's failure envelope for `error`. Server-side failures are logged here (never with
/// request data), so every handler logs them the same way.
pub fn failure(error: &Error) -> Response<Body> {
    let wire = error.wire();
    match error {
        Error::Internal(reason) => tracing::error!(code = wire.code, %reason, "request failed"),
        Error::Unavailable(dependency) => {
            tracing::warn!(code = wire.code, dependency, "dependency unavailable")
        }
        Error::GatewayFailed => tracing::warn!(code = wire.code, "payment gateway failed"),
        _ => tracing::info!(code = wire.code, "request refused"),
    }
    let body = json!({
        "status": "fail",
        "error": {"code": wire.code, "detailMessage": wire.message},
    });
    let mut response = json_response(wire.status.as_u16(), body.to_string());
    if let Some(seconds) = wire.retry_after {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
    response
}

/// Serves one request of `function`: `outcome` (the handler's work) answered in the contract's
/// envelope, inside the request's span (so every line logged carries the API Gateway request
/// id), then counted and timed into the `Requests` and `Latency` metrics.
pub async fn serve(
    function: &'static str,
    req: &Request,
    metrics: &crate::metrics::Metrics,
    outcome: impl std::future::Future<Output = Result<Response<Body>>>,
) -> Response<Body> {
    let request_id = api_request_id(req);
    let started = std::time::Instant::now();
    let span = crate::spans::request_span(function, &request_id);
    let response = async { respond(outcome.await) }.instrument(span).await;
    metrics.request(
        function,
        response.status().as_u16(),
        started.elapsed(),
        &request_id,
    );
    response
}

/// The id API Gateway gave the request (its `x-amzn-RequestId`), else the Lambda invocation's,
/// else empty (a request made in process).
pub fn api_request_id(req: &Request) -> String {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
            context.request_id.clone()
        }
        _ => None,
    }
    .or_else(|| req.lambda_context_ref().map(|c| c.request_id.clone()))
    .unwrap_or_default()
}

/// Turns a handler's outcome into a response.
pub fn respond(outcome: Result<Response<Body>>) -> Response<Body> {
    outcome.unwrap_or_else(|error| failure(&error))
}

/// Parses the JSON body into `T` and validates it. Over 64 KiB → 413CO000; a declared content
/// type other than JSON → 400CO000 naming `Content-Type`; empty, non-JSON or a field
/// missing/mistyped/out of range → 400CO000 naming the field.
pub fn parse_body<T: DeserializeOwned + Validate>(req: &Request) -> Result<T> {
    let bytes: &[u8] = req.body().as_ref();
    if bytes.len() > MAX_BODY_BYTES {
        return Err(Error::PayloadTooLarge);
    }
    check_json_content_type(req)?;
    // Every request body of the contract is a JSON object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Error::invalid("body"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| Error::InvalidParameter(field_of(&e)))?;
    deserializer.end().map_err(|_| Error::invalid("body"))?;
    parsed.validate()?;
    Ok(parsed)
}

/// A missing `Content-Type` is taken as JSON (API clients often omit it); a declared non-JSON
/// one is refused. Form, multipart and `text/plain` bodies are what browsers send cross-site
/// without a preflight, so refusing them also closes that door to forged requests.
fn check_json_content_type(req: &Request) -> Result<()> {
    let Some(value) = req.headers().get(http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let media_type = value
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_json = media_type == "application/json"
        || (media_type.starts_with("application/") && media_type.ends_with("+json"));
    if is_json {
        Ok(())
    } else {
        Err(Error::invalid("Content-Type"))
    }
}

/// The field a serde error is about: its path, or the field named in a missing/unknown/duplicate
/// field message, or `body` when the document itself is wrong.
fn field_of(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    // A body cut short (`{`, `{"a":"b",`) names no field the client could fix.
    if error.inner().is_eof() || error.path().to_string().contains('?') {
        return "body".to_owned();
    }
    let inner = error.inner().to_string();
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| {
            let start = inner.find(prefix)? + prefix.len();
            let len = inner[start..].find('`')?;
            Some(inner[start..start + len].to_owned())
        });
    let path = error.path().to_string();
    let path = if path == "." { String::new() } else { path };
    match (named, path.is_empty()) {
        (Some(name), true) => name,
        (Some(name), false) if !inner.starts_with("missing field") => path_join(&path, &name),
        (Some(name), false) => path_join(&path, &name),
        (None, false) => path,
        (None, true) => "body".to_owned(),
    }
}

fn path_join(parent: &str, child: &str) -> String {
    if parent.ends_with(child) {
        parent.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// The longest path parameter any route takes: every one is an id (ULIDs are 26 characters).
/// Longer values name nothing that can exist, and would reach DynamoDB as oversized keys.
pub const MAX_PATH_PARAM_BYTES: usize = 64;

/// A path parameter of the route (`{memberId}` …); absent, empty or longer than
/// [`MAX_PATH_PARAM_BYTES`] → 404CO000.
pub fn path_param(req: &Request, name: &str) -> Result<String> {
    req.path_parameters()
        .first(name)
        .filter(|v| !v.is_empty() && v.len() <= MAX_PATH_PARAM_BYTES)
        .map(str::to_owned)
        .ok_or(Error::NotFound("resource"))
}

/// A query string parameter, if present.
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters().first(name).map(str::to_owned)
}

/// The caller's address as API Gateway saw it (`requestContext.http.sourceIp`; the local server
/// puts the peer address there). Never `X-Forwarded-For`, which the caller writes.
pub fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(context)) => {
            context.http.source_ip.clone()
        }
        _ => None,
    }
}

/// The token of an `Authorization: Bearer <token>` header; missing or malformed → 401CO000.
pub fn bearer_token(req: &Request) -> Result<&str> {
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::Unauthorized)?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(Error::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::Unauthorized);
    }
    Ok(token.trim())
}

/// A header's value as text, if present and visible ASCII.
pub fn header<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        email: String,
        items: Vec<Line>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Line {
        quantity: i64,
    }

    impl Validate for Probe {
        fn validate(&self) -> Result<()> {
            Ok(())
        }
    }

    fn parse(body: &str) -> Result<Probe> {
        parse_typed(body, None)
    }

    fn parse_typed(body: &str, content_type: Option<&str>) -> Result<Probe> {
        let mut req = http::Request::builder();
        if let Some(content_type) = content_type {
            req = req.header("content-type", content_type);
        }
        let req = req.body(Body::Text(body.to_owned())).expect("request");
        parse_body::<Probe>(&Request::from(req))
    }

    #[test]
    fn takes_json_or_no_content_type_and_refuses_others() {
        let body = r#"{"email":"a","items":[]}"#;
        assert!(parse_typed(body, None).is_ok());
        assert!(parse_typed(body, Some("application/json")).is_ok());
        assert!(parse_typed(body, Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(parse_typed(body, Some("application/merge-patch+json")).is_ok());
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "",
            "json",
        ] {
            assert_eq!(
                parse_typed(body, Some(other)).err(),
                Some(Error::invalid("Content-Type")),
                "{other}"
            );
        }
    }

    #[test]
    fn names_the_offending_field() {
        assert_eq!(
            parse(r#"{"items":[]}"#).err(),
            Some(Error::invalid("email"))
        );
        assert_eq!(
            parse(r#"{"email":1,"items":[]}"#).err(),
            Some(Error::invalid("email"))
        );
        assert_eq!(
            parse(r#"{"email":"a","items":[{"quantity":"x"}]}"#).err(),
            Some(Error::invalid("items[0].quantity"))
        );
        assert_eq!(
            parse(r#"{"email":"a","items":[{}]}"#).err(),
            Some(Error::invalid("items[0].quantity"))
        );
        assert_eq!(
            parse(r#"{"email":"a","email":"b","items":[]}"#).err(),
            Some(Error::invalid("email"))
        );
        assert_eq!(
            parse(r#"{"email":"a","items":[],"admin":true}"#).err(),
            Some(Error::invalid("admin"))
        );
    }

    #[test]
    fn refuses_non_json_and_oversized_bodies() {
        assert_eq!(parse("").err(), Some(Error::invalid("body")));
        assert_eq!(parse("not json").err(), Some(Error::invalid("body")));
        assert_eq!(parse("[1,2]").err(), Some(Error::invalid("body")));
        assert_eq!(parse("{").err(), Some(Error::invalid("body")));
        assert_eq!(
            parse(r#"{"email":"a","#).err(),
            Some(Error::invalid("body"))
        );
        assert_eq!(
            parse(r#"{"email":"a","items":[]} trailing"#).err(),
            Some(Error::invalid("body"))
        );
        let huge = format!(r#"{{"email":"{}","items":[]}}"#, "a".repeat(MAX_BODY_BYTES));
        assert_eq!(parse(&huge).err(), Some(Error::PayloadTooLarge));
    }
}
