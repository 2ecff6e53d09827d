//! The spans every log line and trace is built from: one per request, one per call to a
//! dependency, and the reading of a dependency span's fields (X-Ray, the round-trip count).

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
