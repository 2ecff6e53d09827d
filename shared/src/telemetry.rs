//! Logging: JSON on Lambda (or with `LOG_FORMAT=json`), readable text locally. Level from
//! `RUST_LOG` (default `info`). Nothing logs passwords, tokens, hashes or secrets.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok()
        || std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if json {
        // Every line carries the spans it is in: the runtime's (Lambda request id, X-Ray trace
        // id), the request's (function, API Gateway request id) and the dependency call's. A
        // dependency span's close is a line of its own with its duration.
        builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .without_time()
            .try_init()
    } else {
        builder.try_init()
    };
}

/// The span every call to a dependency runs in. `system`: `dynamodb`, `redis`, `lock`,
/// `gateway`, `secretsmanager` or `eventbridge`; `operation`: the call (`GetItem`, `charge`, …).
pub fn dependency_span(system: &'static str, operation: &'static str) -> tracing::Span {
    tracing::info_span!("dependency", system, operation)
}

/// The span a request is served in: the function and the API Gateway request id (what a
/// client's support ticket quotes), on every line logged while serving it.
pub fn request_span(function: &'static str, api_request_id: &str) -> tracing::Span {
    tracing::info_span!("request", function, api_request_id)
}
