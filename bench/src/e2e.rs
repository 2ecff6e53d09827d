//! Scenario 3: end-to-end latency per endpoint through the local HTTP server on the AWS backend
//! (real Redis, moto for DynamoDB), against the raw round trip of each dependency request made
//! with the same clients in the same run.

use crate::caller::Caller;
use crate::endpoints::{self, Op};
use crate::fixture::{self, BoxError, Services};
use crate::stats::{Summary, ms, summarize};
use aws_sdk_dynamodb::types::AttributeValue;
use cafe::config::Argon2Params;
use cafe::store::ItemStore;
use cafe::store::dynamo::DynamoStore;
use redis::aio::ConnectionManager;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Median raw round trip of each request kind.
pub struct Floors {
    pub get_item: Summary,
    pub query: Summary,
    pub batch_get: Summary,
    pub put_item: Summary,
    pub transact: Summary,
    pub ping: Summary,
}

impl Floors {
    fn of(&self, op: Op) -> Duration {
        match op {
            Op::GetItem => self.get_item.median,
            Op::Query => self.query.median,
            Op::BatchGetItem => self.batch_get.median,
            Op::PutItem => self.put_item.median,
            Op::TransactWriteItems => self.transact.median,
            Op::Redis => self.ping.median,
        }
    }
}

async fn timed<T, F, Fut>(n: usize, mut call: F) -> Result<Summary, BoxError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, BoxError>>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        call(i).await?;
        samples.push(started.elapsed());
    }
    Ok(summarize(&mut samples))
}

/// The raw round trips, with the store's own SDK client and a Redis connection built like the
/// lock's.
pub async fn floors(store: &DynamoStore, redis_url: &str, n: usize) -> Result<Floors, BoxError> {
    let item = cafe::domain::item::seed_items()
        .into_iter()
        .next()
        .ok_or("no seed item")?;
    let pk = format!("ITEM#{}", item.item_id);
    let ids = vec![item.item_id.clone()];
    let mut redis = ConnectionManager::new(redis::Client::open(redis_url)?).await?;
    let client = store.client().clone();
    let table = store.table_name().to_owned();
    let get_item = timed(n, |_| async { Ok(store.raw_item(&pk, "ITEM").await?) }).await?;
    let query = timed(n, |_| async { Ok(store.raw_partition(&pk).await?) }).await?;
    let batch_get = timed(n, |_| async { Ok(store.get_items(&ids).await?) }).await?;
    let put_item = timed(n, |i| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            client
                .put_item()
                .table_name(table)
                .item("pk", AttributeValue::S(format!("BENCH#{i}")))
                .item("sk", AttributeValue::S("RAW".into()))
                .send()
                .await?;
            Ok(())
        }
    })
    .await?;
    // The two-row TransactWriteItems of `put_item` (item row + catalog row).
    let transact = timed(n, |_| async { Ok(store.put_item(&item).await?) }).await?;
    let ping = timed(n, |_| {
        let mut redis = redis.clone();
        async move {
            let _: String = redis::cmd("PING").query_async(&mut redis).await?;
            Ok(())
        }
    })
    .await?;
    let _: String = redis::cmd("PING").query_async(&mut redis).await?;
    Ok(Floors {
        get_item,
        query,
        batch_get,
        put_item,
        transact,
        ping,
    })
}

pub async fn run(
    services: &Services,
    iterations: usize,
    report: &mut String,
) -> Result<(), BoxError> {
    let config = fixture::config(
        Argon2Params::cheapest_for_tests(),
        fixture::instant_gateway(),
    );
    let (app, _gateway, store) = fixture::aws_app(services, config).await?;
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(cafe_local::serve(listener, app.clone()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()?;
    let caller = Caller::Http { client, base };

    // Warm-up: opens the HTTP keep-alive, the SDK's pool and the lock's Redis connection.
    endpoints::run_plan(&caller, &app, 3).await?;
    let before = floors(&store, &services.redis_url, iterations).await?;
    let mut rows = endpoints::run_plan(&caller, &app, iterations).await?;
    rows.extend(endpoints::run_hashing(&caller, iterations, "cheap Argon2").await?);
    let after = floors(&store, &services.redis_url, iterations).await?;
    server.abort();

    let _ = writeln!(
        report,
        "## 3. End-to-end latency against the I/O floor (Redis + moto)\n\nEach endpoint over \
         HTTP/1.1 keep-alive to the local server (`cafe_local::serve` on 127.0.0.1, in the bench \
         process) with the AWS backend: `DynamoStore` on moto, `RedisLock` on a local Redis, one \
         call at a time, {iterations} calls each, mock gateway answering at once, cheap Argon2 \
         for sign-up/log-in. In the same run, the raw round trip of each kind of request with the \
         same SDK client (DynamoDB) and a Redis connection built like the lock's, measured \
         before and after the endpoints:\n"
    );
    let _ = writeln!(
        report,
        "| raw request | median before (ms) | median after (ms) | p99 after (ms) |\n|---|---:|---:|---:|"
    );
    for (name, b, a) in [
        ("DynamoDB GetItem", before.get_item, after.get_item),
        ("DynamoDB Query", before.query, after.query),
        (
            "DynamoDB BatchGetItem (1 key)",
            before.batch_get,
            after.batch_get,
        ),
        ("DynamoDB PutItem", before.put_item, after.put_item),
        (
            "DynamoDB TransactWriteItems (2 puts)",
            before.transact,
            after.transact,
        ),
        ("Redis PING", before.ping, after.ping),
    ] {
        let _ = writeln!(
            report,
            "| {name} | {} | {} | {} |",
            ms(b.median),
            ms(a.median),
            ms(a.p99)
        );
    }
    // The floors: the mean of the before and after medians.
    let floor = |op: Op| (before.of(op) + after.of(op)) / 2;
    let _ = writeln!(
        report,
        "\nRound trips counted from the code (see `bench/src/endpoints.rs::requests`). \
         \"÷ GetItem/PING floor\" divides the endpoint's median by (DynamoDB requests × GetItem \
         median + Redis commands × PING median), the target's definition; \"÷ same requests \
         raw\" divides it by the sum of the raw medians of the very request kinds it makes.\n"
    );
    let _ = writeln!(
        report,
        "| endpoint | DynamoDB req. | Redis cmd. | median (ms) | p99 (ms) | ÷ GetItem/PING floor | ÷ same requests raw | failed |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &rows {
        let (d, r) = endpoints::round_trips(row.function);
        let simple = floor(Op::GetItem) * d as u32 + floor(Op::Redis) * r as u32;
        let exact: Duration = endpoints::requests(row.function)
            .iter()
            .map(|op| floor(*op))
            .sum();
        let ratio = |f: Duration| {
            if f.is_zero() {
                "–".to_owned()
            } else {
                format!("{:.2}×", row.summary.median.as_secs_f64() / f.as_secs_f64())
            }
        };
        let name = if row.note.is_empty() {
            row.function.to_owned()
        } else {
            format!("{} ({})", row.function, row.note)
        };
        let _ = writeln!(
            report,
            "| {name} | {d} | {r} | {} | {} | {} | {} | {} |",
            ms(row.summary.median),
            ms(row.summary.p99),
            ratio(simple),
            ratio(exact),
            row.failures
        );
    }
    let _ = writeln!(report);
    Ok(())
}
