//! Apps and data for the in-process scenarios: the embedded default, the AWS backend pointed at
//! the local Redis and moto, and members, items and orders made directly through the store and
//! the use cases (setup is never timed).

use aws_sdk_dynamodb::types::AttributeValue;
use cafe::App;
use cafe::auth::PasswordHasher;
use cafe::clock::SystemClock;
use cafe::config::{Argon2Params, Backend, Config, GatewayConfig};
use cafe::domain::{DomainEvent, EventType, Gender, Item, Member, MemberStatus};
use cafe::gateway::MockGateway;
use cafe::lock::RedisLock;
use cafe::services::orders::{CreateOrderRequest, LineRequest, create_order};
use cafe::store::ItemStore;
use cafe::store::dynamo::{DynamoStore, build_client, table};
use std::sync::Arc;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The local Redis and moto exported by `scripts/bench.sh`, when present.
#[derive(Debug, Clone)]
pub struct Services {
    pub dynamodb_endpoint: String,
    pub redis_url: String,
}

impl Services {
    pub fn from_env() -> Option<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Some(Self {
            dynamodb_endpoint: var("CAFE_BENCH_DYNAMODB_ENDPOINT")?,
            redis_url: var("CAFE_BENCH_REDIS_URL")?,
        })
    }
}

/// The configuration of every in-process scenario: the given Argon2 cost and gateway latency.
pub fn config(argon2: Argon2Params, gateway: GatewayConfig) -> Config {
    Config {
        argon2,
        gateway,
        ..Config::default()
    }
}

/// A mock gateway that answers at once: the scenarios time our code, not a simulated card network.
pub fn instant_gateway() -> GatewayConfig {
    GatewayConfig {
        min_latency: Duration::ZERO,
        max_latency: Duration::ZERO,
        failure_rate: 0.0,
        drop_rate: 0.0,
    }
}

/// An app of the embedded default (in-memory store, in-process lock) on the system clock.
pub async fn memory_app(config: Config) -> Result<(App, Arc<MockGateway>), BoxError> {
    let (app, parts) = App::in_memory(config, Arc::new(SystemClock)).await?;
    Ok((app, parts.gateway))
}

/// A fresh, uniquely named table on moto with the two seed items.
pub async fn fresh_table(services: &Services, timeout: Duration) -> Result<DynamoStore, BoxError> {
    let client = build_client(Some(&services.dynamodb_endpoint), timeout).await;
    let name = format!(
        "cafe-bench-{}",
        cafe::ids::new_id(chrono::Utc::now()).to_lowercase()
    );
    table::create_table(&client, &name).await?;
    let store = DynamoStore::new(client, name, 400);
    for item in cafe::domain::item::seed_items() {
        store.put_item(&item).await?;
    }
    Ok(store)
}

/// The AWS backend as a function builds it (DynamoDB store, Redis lock, one client each) on its
/// own fresh table, with a mock gateway kept concrete for the ledger.
pub async fn aws_app(
    services: &Services,
    mut config: Config,
) -> Result<(App, Arc<MockGateway>, DynamoStore), BoxError> {
    config.backend = Backend::Aws;
    // moto on a busy 2-core machine can stall for seconds (first use of a backend, GC): the
    // bench measures latency, so a stall must show up as a slow sample, not as a 503. The
    // clients get that patience; the configuration keeps the deployed dependency timeout, which
    // is what a payment's charge budget is planned with (else every payment would refuse to
    // charge within its 29 s).
    let patience = config.dependency_timeout.max(Duration::from_secs(20));
    config.dynamodb_endpoint = Some(services.dynamodb_endpoint.clone());
    config.redis_url = Some(services.redis_url.clone());
    let store = fresh_table(services, patience).await?;
    config.table_name = store.table_name().to_owned();
    let gateway = Arc::new(MockGateway::new(config.gateway));
    let lock = RedisLock::new(&services.redis_url, config.lock, patience)?;
    let app = App {
        tokens: cafe::app::access_tokens(&config, None)?,
        passwords: PasswordHasher::new(config.argon2)?,
        clock: Arc::new(SystemClock),
        store: Arc::new(store.clone()),
        lock: Arc::new(lock),
        gateway: gateway.clone(),
        event_log: None,
        metrics: cafe::metrics::Metrics::disabled(),
        login_throttle: std::sync::Arc::new(cafe::throttle::LocalThrottle::default()),
        config,
    };
    Ok((app, gateway, store))
}

/// A `SERVICE` member stored directly (no password hashing per member: the stored password is
/// computed once by the caller), with an access token.
pub struct Payer {
    pub member: Member,
    pub access: String,
}

pub fn new_member(at: chrono::DateTime<chrono::Utc>) -> Member {
    let member_id = cafe::ids::new_id(at);
    Member {
        email: format!("{}@bench.example", member_id.to_lowercase()),
        member_id,
        name: "Bench Member".into(),
        phone_number: "010-1234-5678".into(),
        gender: Some(Gender::Female),
        birth: chrono::NaiveDate::from_ymd_opt(1995, 4, 12),
        status: MemberStatus::Service,
        role: Default::default(),
        withdrawn_at: None,
        created_at: at,
        session_version: 0,
    }
}

/// A member's profile item as `DynamoStore` writes it (never withdrawn: no index keys).
pub fn profile_item(member: &Member) -> Result<Attrs, BoxError> {
    let mut item: Attrs = serde_dynamo::aws_sdk_dynamodb_1::to_item(member)?;
    item.insert(
        table::PK.into(),
        AttributeValue::S(format!("MEMBER#{}", member.member_id)),
    );
    item.insert(table::SK.into(), AttributeValue::S("PROFILE".into()));
    Ok(item)
}

/// A payer whose profile is written with one raw PutItem: on moto every TransactWriteItems
/// copies the whole table, so setup through the store would dominate the run.
pub async fn raw_payer(app: &App, store: &DynamoStore) -> Result<Payer, BoxError> {
    let now = app.clock.now();
    let member = new_member(now);
    store
        .client()
        .put_item()
        .table_name(store.table_name())
        .set_item(Some(profile_item(&member)?))
        .send()
        .await?;
    let access = app
        .tokens
        .issue(&member.member_id, cafe::domain::Role::Customer, 0, now)
        .await?;
    Ok(Payer { member, access })
}

pub async fn payer(app: &App, password_hash: &str) -> Result<Payer, BoxError> {
    let now = app.clock.now();
    let member = new_member(now);
    let event = DomainEvent::member(
        EventType::MemberRegistered,
        &member.member_id,
        MemberStatus::Service.as_str(),
        now,
    );
    let password = cafe::domain::StoredPassword::new(password_hash);
    app.store.create_member(&member, &password, &event).await?;
    let access = app
        .tokens
        .issue(&member.member_id, cafe::domain::Role::Customer, 0, now)
        .await?;
    Ok(Payer { member, access })
}

/// Stores an item with `stock`; returns its id.
pub async fn item(app: &App, name: &str, stock: i64) -> Result<String, BoxError> {
    let item_id = cafe::ids::new_id(app.clock.now());
    app.store
        .put_item(&Item {
            item_id: item_id.clone(),
            name: name.to_owned(),
            price: 1_500,
            stock,
            active: true,
            version: 0,
        })
        .await?;
    Ok(item_id)
}

/// A `PENDING_PAYMENT` order of `quantity` × `item_id` for `payer`: (order id, total).
pub async fn order(
    app: &App,
    payer: &Payer,
    item_id: &str,
    quantity: i64,
) -> Result<(String, i64), BoxError> {
    let request = CreateOrderRequest {
        items: vec![LineRequest {
            item_id: item_id.to_owned(),
            quantity,
        }],
    };
    let summary = create_order(app, &payer.member.member_id, &request).await?;
    Ok((summary.order_id, summary.total_price))
}

/// A raw DynamoDB item.
pub type Attrs = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Creates `name` with the seed items unless it exists (the functions' table of the cold starts).
pub async fn ensure_table(services: &Services, name: &str) -> Result<(), BoxError> {
    let client = build_client(Some(&services.dynamodb_endpoint), Duration::from_secs(20)).await;
    if table::table_exists(&client, name).await? {
        return Ok(());
    }
    table::create_table(&client, name).await?;
    let store = DynamoStore::new(client, name.to_owned(), 400);
    for item in cafe::domain::item::seed_items() {
        store.put_item(&item).await?;
    }
    Ok(())
}
