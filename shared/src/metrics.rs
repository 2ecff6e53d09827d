//! Operational metrics in CloudWatch Embedded Metric Format (EMF): one JSON line on standard
//! output per measurement, which CloudWatch Logs turns into metrics with no API call, no client
//! and nothing built at init. A small emitter rather than a crate: the one that fits
//! (`metrics_cloudwatch_embedded`) brings the `metrics` facade and its registry into every
//! binary for what is a dozen lines of `serde_json` here.
//!
//! Namespace `Cafe` (`METRICS_NAMESPACE`); every metric carries the dimension `Service` (the
//! stack's name on AWS, `METRICS_SERVICE`), so two stacks in one account never mix. Dimensions
//! are kept low: a request adds `Function` (the crate's name: 20 values) and `CodeClass`
//! (`2xx`/`4xx`/`5xx`), a gateway call `Operation` (3 values); nothing else has one.
//! The catalogue, with the alarms and the dashboard built on it, is in `docs/observability.md`.
//!
//! On Lambda (or with `CAFE_METRICS=emf`) lines go to standard output; elsewhere nothing is
//! written unless asked. Tests record the lines with [`Metrics::recording`].

use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Every metric this module writes, by name (`template.yaml`'s alarms and dashboard are held to
/// it by `local/tests/template_consistency.rs`).
pub const CATALOGUE: &[&str] = &[
    "Requests",
    "Latency",
    "PaymentsCompleted",
    "PaymentsFailed",
    "GatewayLatency",
    "GatewayFailures",
    "LockWait",
    "LockBusy",
    "PaymentsLeftToReconciliation",
    "RefundsLeftToReconciliation",
    "AttemptsSettled",
    "AttemptsFailed",
    "ReconcileBacklog",
    "MembersEnded",
    "ExpiryFailures",
    "EventsPublished",
    "EventsFailed",
];

/// Where EMF lines go and under which names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Write EMF lines to standard output.
    pub emf: bool,
    pub namespace: String,
    /// The `Service` dimension's value.
    pub service: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            emf: false,
            namespace: "Cafe".into(),
            service: "cafe".into(),
        }
    }
}

impl MetricsConfig {
    /// `CAFE_METRICS` (`emf` or `off`; on Lambda `emf` unless set), `METRICS_NAMESPACE`,
    /// `METRICS_SERVICE`. An empty value counts as unset.
    pub fn from_vars(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Self::default();
        let emf = match get("CAFE_METRICS").as_deref() {
            Some("emf") => true,
            Some("off") => false,
            Some(_) => return Err("CAFE_METRICS must be `emf` or `off`".into()),
            None => get("AWS_LAMBDA_FUNCTION_NAME").is_some(),
        };
        Ok(Self {
            emf,
            namespace: get("METRICS_NAMESPACE").unwrap_or(defaults.namespace),
            service: get("METRICS_SERVICE").unwrap_or(defaults.service),
        })
    }

    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }
}

/// Receives finished EMF documents.
pub trait MetricSink: Send + Sync {
    fn write(&self, document: Value);
}

/// Standard output, one line per document (what the Lambda log agent reads).
struct Stdout;

impl MetricSink for Stdout {
    fn write(&self, document: Value) {
        let mut line = document.to_string();
        line.push('\n');
        // A full pipe must never fail a request over a metric.
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// Keeps every document, for tests.
#[derive(Default)]
pub struct RecordingSink {
    documents: Mutex<Vec<Value>>,
}

impl MetricSink for RecordingSink {
    fn write(&self, document: Value) {
        if let Ok(mut documents) = self.documents.lock() {
            documents.push(document);
        }
    }
}

impl RecordingSink {
    pub fn documents(&self) -> Vec<Value> {
        self.documents.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// The sum of `metric` over the documents whose root carries every `(dimension, value)`.
    pub fn sum(&self, metric: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.documents()
            .iter()
            .filter(|d| {
                dimensions
                    .iter()
                    .all(|(k, v)| d.get(*k).and_then(Value::as_str) == Some(*v))
            })
            .filter_map(|d| d.get(metric).and_then(Value::as_f64))
            .sum()
    }

    /// How many documents carry `metric`.
    pub fn count(&self, metric: &str) -> usize {
        self.documents()
            .iter()
            .filter(|d| d.get(metric).is_some())
            .count()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One metric directive: `names` published under each of `dimension_sets` (each set also gets
/// `Service`).
struct Directive<'a> {
    dimension_sets: &'a [&'a [&'a str]],
    values: &'a [(&'a str, Unit, f64)],
}

/// The emitter every function holds (in [`crate::App`]); clones share one sink. Each method is
/// one measurement the catalogue names.
#[derive(Clone)]
pub struct Metrics {
    shared: Arc<Shared>,
}

struct Shared {
    sink: RwLock<Option<Arc<dyn MetricSink>>>,
    namespace: String,
    service: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("namespace", &self.shared.namespace)
            .field("service", &self.shared.service)
            .finish_non_exhaustive()
    }
}

fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

/// What a finished payment request counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentOutcome {
    Completed,
    /// Declined by the gateway or failed on our side (a 5xx): the customer's payment did not go
    /// through for a reason that is not their input.
    Failed,
    /// Refused for the request itself (validation, state, the lock busy): not a payment failure.
    Refused,
}

impl Metrics {
    pub fn new(config: &MetricsConfig) -> Self {
        let sink: Option<Arc<dyn MetricSink>> = if config.emf {
            Some(Arc::new(Stdout))
        } else {
            None
        };
        Self::with_sink(sink, config)
    }

    /// Nothing written.
    pub fn disabled() -> Self {
        Self::with_sink(None, &MetricsConfig::default())
    }

    /// Every document kept in the returned sink.
    pub fn recording() -> (Self, Arc<RecordingSink>) {
        let metrics = Self::disabled();
        let sink = metrics.start_recording();
        (metrics, sink)
    }

    /// From now on every clone of this emitter (the gateway's, the lock's, the app's) writes to
    /// the returned sink instead: how a test reads what a handler measured.
    pub fn start_recording(&self) -> Arc<RecordingSink> {
        let sink = Arc::new(RecordingSink::default());
        if let Ok(mut current) = self.shared.sink.write() {
            *current = Some(sink.clone());
        }
        sink
    }

    fn with_sink(sink: Option<Arc<dyn MetricSink>>, config: &MetricsConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                sink: RwLock::new(sink),
                namespace: config.namespace.clone(),
                service: config.service.clone(),
            }),
        }
    }

    /// One EMF document: `properties` are the dimension values (and any searchable extras).
    fn emit(&self, properties: &[(&str, &str)], directives: &[Directive<'_>]) {
        let Some(sink) = self.shared.sink.read().ok().and_then(|sink| sink.clone()) else {
            return;
        };
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let mut root = Map::new();
        let mut metrics_directives = Vec::with_capacity(directives.len());
        for directive in directives {
            let dimensions: Vec<Vec<&str>> = directive
                .dimension_sets
                .iter()
                .map(|set| {
                    let mut full = vec!["Service"];
                    full.extend_from_slice(set);
                    full
                })
                .collect();
            let metrics: Vec<Value> = directive
                .values
                .iter()
                .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
                .collect();
            metrics_directives.push(json!({
                "Namespace": self.shared.namespace,
                "Dimensions": dimensions,
                "Metrics": metrics,
            }));
            for (name, _, value) in directive.values {
                root.insert((*name).to_owned(), json!(value));
            }
        }
        root.insert(
            "_aws".into(),
            json!({"Timestamp": timestamp, "CloudWatchMetrics": metrics_directives}),
        );
        root.insert("Service".into(), json!(self.shared.service));
        for (name, value) in properties {
            root.insert((*name).to_owned(), json!(value));
        }
        sink.write(Value::Object(root));
    }

    /// One request answered: `Requests` by function and code class (and by class alone, for
    /// the service-wide 5xx rate) and `Latency` by function.
    pub fn request(&self, function: &str, status: u16, elapsed: Duration, request_id: &str) {
        let class = match status {
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.emit(
            &[
                ("Function", function),
                ("CodeClass", class),
                ("requestId", request_id),
            ],
            &[
                Directive {
                    dimension_sets: &[&["Function", "CodeClass"], &["CodeClass"]],
                    values: &[("Requests", Unit::Count, 1.0)],
                },
                Directive {
                    dimension_sets: &[&["Function"]],
                    values: &[("Latency", Unit::Milliseconds, millis(elapsed))],
                },
            ],
        );
    }

    /// A payment request's end: `PaymentsCompleted` or `PaymentsFailed` (both written, one of
    /// them 0, so the failure rate's denominator always has data); nothing for a refusal.
    pub fn payment(&self, outcome: PaymentOutcome) {
        let (completed, failed) = match outcome {
            PaymentOutcome::Completed => (1.0, 0.0),
            PaymentOutcome::Failed => (0.0, 1.0),
            PaymentOutcome::Refused => return,
        };
        self.emit(
            &[],
            &[Directive {
                dimension_sets: &[&[]],
                values: &[
                    ("PaymentsCompleted", Unit::Count, completed),
                    ("PaymentsFailed", Unit::Count, failed),
                ],
            }],
        );
    }

    /// One call to the payment gateway (`charge`, `refund` or `lookup`): its latency, and
    /// `GatewayFailures` 1 when it was declined or went unanswered.
    pub fn gateway_call(&self, operation: &str, elapsed: Duration, failed: bool) {
        self.emit(
            &[("Operation", operation)],
            &[Directive {
                dimension_sets: &[&["Operation"], &[]],
                values: &[
                    ("GatewayLatency", Unit::Milliseconds, millis(elapsed)),
                    (
                        "GatewayFailures",
                        Unit::Count,
                        if failed { 1.0 } else { 0.0 },
                    ),
                ],
            }],
        );
    }

    /// One lock acquisition: the time spent waiting, and `LockBusy` 1 when it ended in 409PA001.
    pub fn lock_wait(&self, elapsed: Duration, busy: bool) {
        self.emit(
            &[],
            &[Directive {
                dimension_sets: &[&[]],
                values: &[
                    ("LockWait", Unit::Milliseconds, millis(elapsed)),
                    ("LockBusy", Unit::Count, if busy { 1.0 } else { 0.0 }),
                ],
            }],
        );
    }

    /// Money whose settling was left to `payment-reconcile`: a refund that did not go through
    /// (`RefundsLeftToReconciliation`) or a charge or commit with no known outcome
    /// (`PaymentsLeftToReconciliation`).
    pub fn left_to_reconciliation(&self, refund: bool) {
        let name = if refund {
            "RefundsLeftToReconciliation"
        } else {
            "PaymentsLeftToReconciliation"
        };
        self.emit(
            &[],
            &[Directive {
                dimension_sets: &[&[]],
                values: &[(name, Unit::Count, 1.0)],
            }],
        );
    }

    /// One reconciler run: what it settled, what failed, and `ReconcileBacklog` (attempts due
    /// that this run failed on or had no time for; 0 when it finished clean).
    pub fn reconcile_run(&self, settled: u64, failed: u64, backlog: u64) {
        self.emit(
            &[],
            &[Directive {
                dimension_sets: &[&[]],
                values: &[
                    ("AttemptsSettled", Unit::Count, settled as f64),
                    ("AttemptsFailed", Unit::Count, failed as f64),
                    ("ReconcileBacklog", Unit::Count, backlog as f64),
                ],
            }],
        );
    }

    /// One expiry run: members ended, members whose write failed.
    pub fn expiry_run(&self, ended: u64, failed: u64) {
        self.emit(
            &[],
            &[Directive {
                dimension_sets: &[&[]],
                values: &[
                    ("MembersEnded", Unit::Count, ended as f64),
                    ("ExpiryFailures", Unit::Count, failed as f64),
                ],
            }],
        );
    }

    /// One stream batch: events published to EventBridge and events that were not (retried by
    /// Lambda, then the dead-letter queue).
    pub fn events_published(&self, published: u64, failed: u64) {
        self.emit(
            &[],
            &[Directive {
                dimension_sets: &[&[]],
                values: &[
                    ("EventsPublished", Unit::Count, published as f64),
                    ("EventsFailed", Unit::Count, failed as f64),
                ],
            }],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_one_emf_document_with_two_directives() {
        let (metrics, sink) = Metrics::recording();
        metrics.request(
            "payment-create",
            503,
            Duration::from_micros(12_345),
            "req-1",
        );
        let documents = sink.documents();
        assert_eq!(documents.len(), 1);
        let d = &documents[0];
        assert_eq!(d["Service"], "cafe");
        assert_eq!(d["Function"], "payment-create");
        assert_eq!(d["CodeClass"], "5xx");
        assert_eq!(d["requestId"], "req-1");
        assert_eq!(d["Requests"], 1.0);
        assert_eq!(d["Latency"], 12.345);
        let directives = d["_aws"]["CloudWatchMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(directives.len(), 2);
        assert_eq!(directives[0]["Namespace"], "Cafe");
        assert_eq!(
            directives[0]["Dimensions"],
            json!([
                ["Service", "Function", "CodeClass"],
                ["Service", "CodeClass"]
            ])
        );
        assert_eq!(
            directives[0]["Metrics"],
            json!([{"Name": "Requests", "Unit": "Count"}])
        );
        assert_eq!(
            directives[1]["Dimensions"],
            json!([["Service", "Function"]])
        );
        assert!(
            d["_aws"]["Timestamp"]
                .as_u64()
                .is_some_and(|t| t > 1_700_000_000_000)
        );
    }

    #[test]
    fn every_dimension_named_in_a_directive_is_on_the_root() {
        let (metrics, sink) = Metrics::recording();
        metrics.request("items-list", 200, Duration::ZERO, "r");
        metrics.payment(PaymentOutcome::Failed);
        metrics.payment(PaymentOutcome::Refused);
        metrics.gateway_call("charge", Duration::from_millis(3), true);
        metrics.lock_wait(Duration::from_millis(1), false);
        metrics.left_to_reconciliation(true);
        metrics.reconcile_run(1, 0, 0);
        metrics.expiry_run(2, 0);
        metrics.events_published(3, 1);
        metrics.left_to_reconciliation(false);
        let documents = sink.documents();
        assert_eq!(documents.len(), 9, "a refusal writes nothing");
        let mut written: Vec<&str> = Vec::new();
        for d in &documents {
            for directive in d["_aws"]["CloudWatchMetrics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                for set in directive["Dimensions"].as_array().into_iter().flatten() {
                    for name in set.as_array().into_iter().flatten() {
                        let name = name.as_str().unwrap_or_default();
                        assert!(d.get(name).is_some_and(Value::is_string), "{name} in {d}");
                    }
                }
                for metric in directive["Metrics"].as_array().into_iter().flatten() {
                    let name = metric["Name"].as_str().unwrap_or_default();
                    assert!(d.get(name).is_some_and(Value::is_number), "{name} in {d}");
                    assert!(CATALOGUE.contains(&name), "{name} is not in the catalogue");
                    written.push(name);
                }
            }
        }
        written.sort_unstable();
        written.dedup();
        assert_eq!(
            written.len(),
            CATALOGUE.len(),
            "every catalogued metric is written"
        );
        assert_eq!(sink.sum("PaymentsFailed", &[]), 1.0);
        assert_eq!(sink.sum("GatewayFailures", &[("Operation", "charge")]), 1.0);
        assert_eq!(sink.sum("EventsFailed", &[]), 1.0);
    }

    #[test]
    fn configuration_defaults_to_emf_on_lambda_only() {
        let off = MetricsConfig::from_vars(&|_| None).ok();
        assert_eq!(off.map(|c| c.emf), Some(false));
        let lambda = MetricsConfig::from_vars(&|name| {
            (name == "AWS_LAMBDA_FUNCTION_NAME").then(|| "cafe-items".to_owned())
        })
        .ok();
        assert_eq!(lambda.map(|c| c.emf), Some(true));
        let named = MetricsConfig::from_vars(&|name| match name {
            "CAFE_METRICS" => Some("emf".into()),
            "METRICS_SERVICE" => Some("cafe-prod".into()),
            _ => None,
        })
        .ok();
        assert_eq!(named.map(|c| c.service), Some("cafe-prod".to_owned()));
        assert!(
            MetricsConfig::from_vars(&|name| (name == "CAFE_METRICS").then(|| "yes".into()))
                .is_err()
        );
    }
}
