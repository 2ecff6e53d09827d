//! Logging: JSON on Lambda (or with `LOG_FORMAT=json`), readable text locally. Level from
//! `RUST_LOG` (default `info`). Nothing logs passwords, tokens, hashes or secrets.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_FUNCTION_NAME").is_ok()
        || std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        // On Lambda with active tracing, each dependency span is also an X-Ray subsegment.
        let subscriber =
            json_subscriber(filter, std::io::stdout).with(crate::xray::XrayLayer::from_env());
        tracing::subscriber::set_global_default(subscriber)
    } else {
        tracing::subscriber::set_global_default(
            tracing_subscriber::fmt().with_env_filter(filter).finish(),
        )
    };
}

/// The Lambda log format, writing to `writer`. Every line carries the spans it is in: the
/// runtime's (Lambda request id, X-Ray trace id), the request's (function, API Gateway request
/// id) and the dependency call's; each span's close is a line of its own with its duration
/// (`time.busy` + `time.idle`).
pub fn json_subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> impl tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // Lambda stamps each line itself; the span timings stay (the builder's `without_time`
    // would drop them too, so only the event format goes without a clock).
    let format = tracing_subscriber::fmt::format()
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .without_time();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .json()
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .event_format(format)
        .finish()
}
