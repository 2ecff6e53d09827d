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
        Self::from_sdk_config(crate::store::dynamo::sdk_config(endpoint, timeout).await)
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
}

/// What one AWS call needs from IAM: an action on a resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AwsCall {
    /// The IAM action that authorises the call, e.g. `dynamodb:Query`. A `TransactWriteItems`
    /// is authorised per write (`dynamodb:PutItem`, `UpdateItem`, `DeleteItem`,
    /// `ConditionCheckItem`), so it is recorded as one call per write.
    pub action: String,
    pub resource: AwsResource,
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
        return Some(vec![call("dynamodb:GetItem", table(i.table_name()))]);
    }
    if let Some(i) = input.downcast_ref::<ddb::put_item::PutItemInput>() {
        return Some(vec![call("dynamodb:PutItem", table(i.table_name()))]);
    }
    if let Some(i) = input.downcast_ref::<ddb::update_item::UpdateItemInput>() {
        return Some(vec![call("dynamodb:UpdateItem", table(i.table_name()))]);
    }
    if let Some(i) = input.downcast_ref::<ddb::delete_item::DeleteItemInput>() {
        return Some(vec![call("dynamodb:DeleteItem", table(i.table_name()))]);
    }
    if let Some(i) = input.downcast_ref::<ddb::query::QueryInput>() {
        return Some(vec![call(
            "dynamodb:Query",
            indexed(i.table_name(), i.index_name()),
        )]);
    }
    if let Some(i) = input.downcast_ref::<ddb::scan::ScanInput>() {
        return Some(vec![call(
            "dynamodb:Scan",
            indexed(i.table_name(), i.index_name()),
        )]);
    }
    if let Some(i) = input.downcast_ref::<ddb::batch_get_item::BatchGetItemInput>() {
        let tables = i.request_items().map(|r| r.keys().collect::<Vec<_>>());
        return Some(
            tables
                .unwrap_or_default()
                .into_iter()
                .map(|t| call("dynamodb:BatchGetItem", table(Some(t))))
                .collect(),
        );
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
                        Some(call("dynamodb:PutItem", table(Some(w.table_name()))))
                    } else if let Some(w) = item.update() {
                        Some(call("dynamodb:UpdateItem", table(Some(w.table_name()))))
                    } else if let Some(w) = item.delete() {
                        Some(call("dynamodb:DeleteItem", table(Some(w.table_name()))))
                    } else {
                        item.condition_check().map(|w| {
                            call("dynamodb:ConditionCheckItem", table(Some(w.table_name())))
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
                .map(|g| call("dynamodb:GetItem", table(Some(g.table_name()))))
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
    None
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
                }]);
            }
        }
        Ok(())
    }
}
