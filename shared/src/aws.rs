//! The AWS SDK configuration of a process and the clients built from it.
//!
//! Every client a function makes comes from one [`Aws`], so the credentials are resolved once and
//! every client carries the same interceptors. In tests that is a [`CallRecorder`]: it writes
//! down each call (the IAM action that authorises it and the resource it touches), which is how
//! the IAM test proves that every function's policy in `template.yaml` covers exactly the calls
//! its code makes.

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, interceptors};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The shared SDK configuration, plus the recorder every client reports to (tests only).
#[derive(Clone, Debug)]
pub struct Aws {
    sdk: aws_config::SdkConfig,
    recorder: Option<CallRecorder>,
}

impl Aws {
    /// Loads the configuration: standard retries (3 attempts), operation timeout `timeout`,
    /// attempt timeout half of it, connect timeout at most 1 s. `endpoint` overrides every
    /// service's endpoint (moto serves them all on one port).
    pub async fn load(endpoint: Option<&str>, timeout: Duration) -> Self {
        Self::from_sdk_config(sdk_config(endpoint, timeout).await)
    }

    pub fn from_sdk_config(sdk: aws_config::SdkConfig) -> Self {
        Self {
            sdk,
            recorder: None,
        }
    }

    /// Every client built from now on reports its calls to `recorder`.
    pub fn with_recorder(mut self, recorder: CallRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    pub fn sdk_config(&self) -> &aws_config::SdkConfig {
        &self.sdk
    }

    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        let mut config = aws_sdk_dynamodb::config::Builder::from(&self.sdk);
        if let Some(recorder) = &self.recorder {
            config = config.interceptor(recorder.clone());
        }
        aws_sdk_dynamodb::Client::from_conf(config.build())
    }

    pub fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        let mut config = aws_sdk_secretsmanager::config::Builder::from(&self.sdk);
        if let Some(recorder) = &self.recorder {
            config = config.interceptor(recorder.clone());
        }
        aws_sdk_secretsmanager::Client::from_conf(config.build())
    }

    pub fn eventbridge(&self) -> aws_sdk_eventbridge::Client {
        let mut config = aws_sdk_eventbridge::config::Builder::from(&self.sdk);
        if let Some(recorder) = &self.recorder {
            config = config.interceptor(recorder.clone());
        }
        aws_sdk_eventbridge::Client::from_conf(config.build())
    }

    /// The WebSocket API's management client (`PostToConnection`, `DeleteConnection`) at
    /// `endpoint`: `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}` (it includes the
    /// stage).
    pub fn api_gateway_management(&self, endpoint: &str) -> aws_sdk_apigatewaymanagement::Client {
        let mut config =
            aws_sdk_apigatewaymanagement::config::Builder::from(&self.sdk).endpoint_url(endpoint);
        if let Some(recorder) = &self.recorder {
            config = config.interceptor(recorder.clone());
        }
        aws_sdk_apigatewaymanagement::Client::from_conf(config.build())
    }
}

/// The roots the SDK clients trust for TLS.
/// The AWS SDK configuration every client of a process shares (credentials are resolved once):
/// standard retries (3 attempts), operation timeout `timeout`, attempt timeout half of it,
/// connect timeout at most 1 s, so an unreachable endpoint fails in bounded time. `endpoint`
/// overrides every service's endpoint (moto serves them all on one port).
///
/// TLS trusts the roots of Amazon Trust Services ([`SdkTrustStore`]). Region and
/// credentials come straight from the environment when it carries them, as Lambda's always does
/// (see [`environment_identity`]); otherwise the SDK's provider chains find them.
pub async fn sdk_config(
    endpoint: Option<&str>,
    timeout: std::time::Duration,
) -> aws_config::SdkConfig {
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    let timeouts = TimeoutConfig::builder()
        .operation_timeout(timeout)
        .operation_attempt_timeout(timeout / 2)
        .connect_timeout(timeout.min(std::time::Duration::from_secs(1)))
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(timeouts);
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let var = |name: &str| std::env::var(name).ok();
    loader = loader.http_client(https_client(SdkTrustStore::from_vars(var)));
    if let Some((region, credentials)) = environment_identity(var) {
        loader = loader.region(region).credentials_provider(credentials);
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        // Only reachable locally (Lambda always sets a region); an emulator ignores it.
        return shared
            .into_builder()
            .region(aws_config::Region::new("us-east-1"))
            .build();
    }
    shared
}

/// The region and credentials the environment holds: `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and, when present, `AWS_SESSION_TOKEN`. The Lambda runtime sets all
/// four from the function's role for the life of the execution environment. The SDK's default
/// chains would answer with these same values, since the environment comes first in both, but
/// only after building every other source (profile files, web identity, ECS, IMDS): skipping
/// them is the larger part of a function's init (`docs/benchmarks.md`, init steps). `None` when
/// any required variable is missing or empty, and then the chains run as before.
pub fn environment_identity(
    var: impl Fn(&str) -> Option<String>,
) -> Option<(aws_config::Region, aws_sdk_dynamodb::config::Credentials)> {
    let present = |name: &str| var(name).filter(|value| !value.is_empty());
    let region = present("AWS_REGION")?;
    let access_key_id = present("AWS_ACCESS_KEY_ID")?;
    let secret_access_key = present("AWS_SECRET_ACCESS_KEY")?;
    let credentials = aws_sdk_dynamodb::config::Credentials::new(
        access_key_id,
        secret_access_key,
        present("AWS_SESSION_TOKEN"),
        None,
        "Environment",
    );
    Some((aws_config::Region::new(region), credentials))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdkTrustStore {
    /// The five roots of Amazon Trust Services (`shared/certs/amazon-trust-services.pem`), the
    /// CA of the AWS service endpoints: the default. Parsing them takes about 0.1 ms at init,
    /// where the system bundle (about 140 certificates, read and parsed by the SDK when its
    /// first client is built) took 2.1 ms of a 2.6 ms init (`docs/benchmarks.md`).
    AmazonTrustServices,
    /// The system's bundle, as the SDK's default client: `CAFE_SDK_TRUST_STORE=native`, the way
    /// back should an endpoint ever present a chain outside Amazon Trust Services (a proxy, a
    /// partition with another CA).
    Native,
}

impl SdkTrustStore {
    /// From `CAFE_SDK_TRUST_STORE` (`amazon`, the default, or `native`); an unknown value is
    /// logged and the default kept.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        match var("CAFE_SDK_TRUST_STORE").as_deref().map(str::trim) {
            None | Some("") | Some("amazon") => Self::AmazonTrustServices,
            Some("native") => Self::Native,
            Some(other) => {
                tracing::warn!(
                    value = other,
                    "CAFE_SDK_TRUST_STORE is neither amazon nor native: trusting Amazon Trust Services"
                );
                Self::AmazonTrustServices
            }
        }
    }
}

/// The roots of Amazon Trust Services, PEM (see [`SdkTrustStore::AmazonTrustServices`]).
pub const AMAZON_TRUST_SERVICES_PEM: &[u8] = include_bytes!("../certs/amazon-trust-services.pem");

/// The HTTPS client every SDK client uses: the SDK's own hyper and rustls (aws-lc) client, as
/// its default one, trusting `trust`.
pub fn https_client(
    trust: SdkTrustStore,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::TrustStore;
    let store = match trust {
        SdkTrustStore::AmazonTrustServices => {
            TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_PEM)
        }
        SdkTrustStore::Native => TrustStore::default(),
    };
    https_client_trusting(store)
}

/// The SDK's HTTPS client trusting exactly `store` (tests give it their own CA).
pub fn https_client_trusting(
    store: aws_smithy_http_client::tls::TrustStore,
) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, TlsContext, rustls_provider::CryptoMode};
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::rustls(CryptoMode::AwsLc));
    match TlsContext::builder().with_trust_store(store).build() {
        Ok(context) => builder.tls_context(context).build_https(),
        Err(error) => {
            tracing::warn!(%error, "TLS context refused: the SDK's default trust store is used");
            builder.build_https()
        }
    }
}

/// What one AWS call needs from IAM: an action on a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AwsCall {
    /// The IAM action that authorises the call, e.g. `dynamodb:Query`. A `TransactWriteItems`
    /// is authorised per write (`dynamodb:PutItem`, `UpdateItem`, `DeleteItem`,
    /// `ConditionCheckItem`), so it is recorded as one call per write.
    pub action: String,
    pub resource: AwsResource,
    /// The partition key (`pk`) value of the item the call reads or writes, for a call on the
    /// table itself: what IAM's `dynamodb:LeadingKeys` condition is evaluated on. `None` for a
    /// call on an index, or one that names no item (a `Scan`, a table call).
    pub leading_key: Option<String>,
}

/// The table's partition key attribute (`store::dynamo::table::PK`; this module imports nothing
/// of the crate).
const PARTITION_KEY: &str = "pk";

type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

fn pk_of(item: Option<&Item>) -> Option<String> {
    item?.get(PARTITION_KEY)?.as_s().ok().cloned()
}

/// The value a `Query`'s key condition binds the partition key to (`#pk = :pk AND …`).
fn queried_pk(input: &aws_sdk_dynamodb::operation::query::QueryInput) -> Option<String> {
    let condition = input.key_condition_expression()?;
    let first = condition.split(" AND ").next()?;
    let (left, right) = first.split_once('=')?;
    let (left, right) = (left.trim(), right.trim());
    let attribute = match left.strip_prefix('#') {
        Some(_) => input.expression_attribute_names()?.get(left)?.as_str(),
        None => left,
    };
    if attribute != PARTITION_KEY {
        return None;
    }
    input
        .expression_attribute_values()?
        .get(right)?
        .as_s()
        .ok()
        .cloned()
}

/// The resource of a call, by the name the code used.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AwsResource {
    Table(String),
    Index {
        table: String,
        index: String,
    },
    Secret(String),
    /// An EventBridge bus by name (`default` when the call names none).
    EventBus(String),
    /// The connections of the WebSocket API (`execute-api:ManageConnections`), by the HTTP
    /// method of the management call: `POST` (post to), `DELETE`, `GET`.
    Connections(String),
    /// A call this recorder does not know how to read: the IAM test refuses it, so a new kind of
    /// call cannot slip past the check.
    Unrecognised {
        service: String,
        operation: String,
    },
}

/// Records every call of the clients it is attached to (see [`Aws::with_recorder`]).
#[derive(Clone, Debug, Default)]
pub struct CallRecorder {
    calls: Arc<Mutex<Vec<AwsCall>>>,
}

impl CallRecorder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every call recorded so far, in order.
    pub fn calls(&self) -> Vec<AwsCall> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn push(&self, calls: impl IntoIterator<Item = AwsCall>) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(calls);
    }
}

fn call(action: &str, resource: AwsResource) -> AwsCall {
    AwsCall {
        action: action.to_owned(),
        resource,
        leading_key: None,
    }
}

/// A call on one item of the table, keyed by its partition key.
fn item_call(action: &str, table_name: Option<&str>, pk: Option<String>) -> AwsCall {
    AwsCall {
        leading_key: pk,
        ..call(action, table(table_name))
    }
}

fn table(name: Option<&str>) -> AwsResource {
    AwsResource::Table(name.unwrap_or_default().to_owned())
}

/// The calls one operation's input stands for, or `None` for an input this recorder does not
/// read.
fn calls_of(
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
) -> Option<Vec<AwsCall>> {
    use aws_sdk_dynamodb::operation as ddb;
    if let Some(i) = input.downcast_ref::<ddb::get_item::GetItemInput>() {
        let pk = pk_of(i.key());
        return Some(vec![item_call("dynamodb:GetItem", i.table_name(), pk)]);
    }
    if let Some(i) = input.downcast_ref::<ddb::put_item::PutItemInput>() {
        let pk = pk_of(i.item());
        return Some(vec![item_call("dynamodb:PutItem", i.table_name(), pk)]);
    }
    if let Some(i) = input.downcast_ref::<ddb::update_item::UpdateItemInput>() {
        let pk = pk_of(i.key());
        return Some(vec![item_call("dynamodb:UpdateItem", i.table_name(), pk)]);
    }
    if let Some(i) = input.downcast_ref::<ddb::delete_item::DeleteItemInput>() {
        let pk = pk_of(i.key());
        return Some(vec![item_call("dynamodb:DeleteItem", i.table_name(), pk)]);
    }
    if let Some(i) = input.downcast_ref::<ddb::query::QueryInput>() {
        let pk = match i.index_name() {
            None => queried_pk(i),
            Some(_) => None,
        };
        return Some(vec![AwsCall {
            leading_key: pk,
            ..call("dynamodb:Query", indexed(i.table_name(), i.index_name()))
        }]);
    }
    if let Some(i) = input.downcast_ref::<ddb::scan::ScanInput>() {
        return Some(vec![call(
            "dynamodb:Scan",
            indexed(i.table_name(), i.index_name()),
        )]);
    }
    if let Some(i) = input.downcast_ref::<ddb::batch_get_item::BatchGetItemInput>() {
        let mut calls = Vec::new();
        for (name, keys) in i.request_items().into_iter().flatten() {
            for key in keys.keys() {
                calls.push(item_call(
                    "dynamodb:BatchGetItem",
                    Some(name),
                    pk_of(Some(key)),
                ));
            }
        }
        return Some(calls);
    }
    if let Some(i) = input.downcast_ref::<ddb::batch_write_item::BatchWriteItemInput>() {
        let tables = i.request_items().map(|r| r.keys().collect::<Vec<_>>());
        return Some(
            tables
                .unwrap_or_default()
                .into_iter()
                .map(|t| call("dynamodb:BatchWriteItem", table(Some(t))))
                .collect(),
        );
    }
    if let Some(i) = input.downcast_ref::<ddb::transact_write_items::TransactWriteItemsInput>() {
        return Some(
            i.transact_items()
                .iter()
                .filter_map(|item| {
                    if let Some(w) = item.put() {
                        Some(item_call(
                            "dynamodb:PutItem",
                            Some(w.table_name()),
                            pk_of(Some(w.item())),
                        ))
                    } else if let Some(w) = item.update() {
                        Some(item_call(
                            "dynamodb:UpdateItem",
                            Some(w.table_name()),
                            pk_of(Some(w.key())),
                        ))
                    } else if let Some(w) = item.delete() {
                        Some(item_call(
                            "dynamodb:DeleteItem",
                            Some(w.table_name()),
                            pk_of(Some(w.key())),
                        ))
                    } else {
                        item.condition_check().map(|w| {
                            item_call(
                                "dynamodb:ConditionCheckItem",
                                Some(w.table_name()),
                                pk_of(Some(w.key())),
                            )
                        })
                    }
                })
                .collect(),
        );
    }
    if let Some(i) = input.downcast_ref::<ddb::transact_get_items::TransactGetItemsInput>() {
        return Some(
            i.transact_items()
                .iter()
                .filter_map(|item| item.get())
                .map(|g| {
                    item_call(
                        "dynamodb:GetItem",
                        Some(g.table_name()),
                        pk_of(Some(g.key())),
                    )
                })
                .collect(),
        );
    }
    if let Some(i) = input.downcast_ref::<ddb::describe_table::DescribeTableInput>() {
        return Some(vec![call("dynamodb:DescribeTable", table(i.table_name()))]);
    }
    if let Some(i) = input.downcast_ref::<ddb::create_table::CreateTableInput>() {
        return Some(vec![call("dynamodb:CreateTable", table(i.table_name()))]);
    }
    if let Some(i) = input.downcast_ref::<ddb::update_time_to_live::UpdateTimeToLiveInput>() {
        return Some(vec![call(
            "dynamodb:UpdateTimeToLive",
            table(i.table_name()),
        )]);
    }
    if let Some(i) = input
        .downcast_ref::<aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput>()
    {
        return Some(vec![call(
            "secretsmanager:GetSecretValue",
            AwsResource::Secret(i.secret_id().unwrap_or_default().to_owned()),
        )]);
    }
    if let Some(i) =
        input.downcast_ref::<aws_sdk_eventbridge::operation::put_events::PutEventsInput>()
    {
        let mut buses: Vec<String> = i
            .entries()
            .iter()
            .map(|e| e.event_bus_name().unwrap_or("default").to_owned())
            .collect();
        buses.sort();
        buses.dedup();
        return Some(
            buses
                .into_iter()
                .map(|bus| call("events:PutEvents", AwsResource::EventBus(bus)))
                .collect(),
        );
    }
    if let Some(calls) = connection_calls(input) {
        return Some(calls);
    }
    None
}

/// `PostToConnection`, `DeleteConnection`, `GetConnection`: `execute-api:ManageConnections`.
fn connection_calls(
    input: &aws_smithy_runtime_api::client::interceptors::context::Input,
) -> Option<Vec<AwsCall>> {
    use aws_sdk_apigatewaymanagement::operation as mgmt;
    let method = if input
        .downcast_ref::<mgmt::post_to_connection::PostToConnectionInput>()
        .is_some()
    {
        "POST"
    } else if input
        .downcast_ref::<mgmt::delete_connection::DeleteConnectionInput>()
        .is_some()
    {
        "DELETE"
    } else if input
        .downcast_ref::<mgmt::get_connection::GetConnectionInput>()
        .is_some()
    {
        "GET"
    } else {
        return None;
    };
    Some(vec![call(
        "execute-api:ManageConnections",
        AwsResource::Connections(method.to_owned()),
    )])
}

fn indexed(table_name: Option<&str>, index: Option<&str>) -> AwsResource {
    match index {
        Some(index) => AwsResource::Index {
            table: table_name.unwrap_or_default().to_owned(),
            index: index.to_owned(),
        },
        None => table(table_name),
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "cafe::aws::CallRecorder"
    }

    /// Once per operation, before its first attempt (retries are the same call to IAM).
    fn read_before_execution(
        &self,
        context: &interceptors::BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match calls_of(context.input()) {
            Some(calls) => self.push(calls),
            None => {
                let (service, operation) = cfg
                    .load::<Metadata>()
                    .map(|m| (m.service().to_owned(), m.name().to_owned()))
                    .unwrap_or_else(|| ("unknown".into(), "unknown".into()));
                self.push([AwsCall {
                    action: format!("{service}:{operation}"),
                    resource: AwsResource::Unrecognised { service, operation },
                    leading_key: None,
                }]);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod trust_store_tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn the_amazon_roots_are_five_trust_anchors() {
        let certificates = CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES_PEM)
            .collect::<Result<Vec<_>, _>>()
            .expect("the bundled PEM parses");
        assert_eq!(certificates.len(), 5);
        let mut roots = rustls::RootCertStore::empty();
        let (valid, invalid) = roots.add_parsable_certificates(certificates);
        assert_eq!((valid, invalid), (5, 0));
    }

    #[tokio::test]
    async fn a_client_builds_with_each_trust_store() {
        // Building a client loads its roots (the SDK panics on a root it cannot parse).
        for trust in [SdkTrustStore::AmazonTrustServices, SdkTrustStore::Native] {
            let config = aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .http_client(https_client(trust))
                .build();
            let _client = aws_sdk_dynamodb::Client::from_conf(config);
        }
    }

    #[test]
    fn the_trust_store_is_amazon_unless_native_is_asked_for() {
        let with = |value: Option<&str>| {
            let value = value.map(str::to_owned);
            SdkTrustStore::from_vars(move |_| value.clone())
        };
        assert_eq!(with(None), SdkTrustStore::AmazonTrustServices);
        assert_eq!(with(Some("")), SdkTrustStore::AmazonTrustServices);
        assert_eq!(with(Some("amazon")), SdkTrustStore::AmazonTrustServices);
        assert_eq!(with(Some("native")), SdkTrustStore::Native);
        assert_eq!(with(Some("system")), SdkTrustStore::AmazonTrustServices);
    }
}

#[cfg(test)]
mod environment_identity_tests {
    use super::environment_identity;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    const LAMBDA: [(&str, &str); 4] = [
        ("AWS_REGION", "ap-northeast-2"),
        ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "secret"),
        ("AWS_SESSION_TOKEN", "session"),
    ];

    #[test]
    fn the_lambda_environment_gives_its_region_and_role_credentials() {
        let (region, credentials) = environment_identity(lookup(&LAMBDA)).expect("identity");
        assert_eq!(region.as_ref(), "ap-northeast-2");
        assert_eq!(credentials.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(credentials.secret_access_key(), "secret");
        assert_eq!(credentials.session_token(), Some("session"));
        assert_eq!(credentials.expiry(), None);
    }

    #[test]
    fn long_term_keys_need_no_session_token() {
        let (_, credentials) =
            environment_identity(lookup(&LAMBDA[..3])).expect("identity without a session token");
        assert_eq!(credentials.session_token(), None);
    }

    #[test]
    fn a_missing_or_empty_variable_leaves_it_to_the_provider_chains() {
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let without: Vec<_> = LAMBDA
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            assert!(
                environment_identity(lookup(&without)).is_none(),
                "{missing} missing"
            );
            let empty: Vec<_> = LAMBDA
                .iter()
                .map(|&(k, v)| if k == missing { (k, "") } else { (k, v) })
                .collect();
            assert!(
                environment_identity(lookup(&empty)).is_none(),
                "{missing} empty"
            );
        }
    }
}
