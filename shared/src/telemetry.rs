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

/// The `system` and `operation` of a `dependency` span, read from its fields (for layers that
/// act on dependency calls: X-Ray, and the round-trip count in tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DependencyFields {
    pub system: String,
    pub operation: String,
}

impl DependencyFields {
    /// The fields of `attrs` if it opens a `dependency` span.
    pub fn of(attrs: &tracing::span::Attributes<'_>) -> Option<Self> {
        if attrs.metadata().name() != "dependency" {
            return None;
        }
        let mut fields = Self::default();
        attrs.record(&mut fields);
        Some(fields)
    }
}

impl tracing::field::Visit for DependencyFields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "system" => self.system = value.to_owned(),
            "operation" => self.operation = value.to_owned(),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}
