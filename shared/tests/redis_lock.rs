//! The Redis lock against a real server: the one `scripts/test.sh` starts, or one a test starts
//! and stops itself to show what happens when Redis goes away and comes back.

mod order_support;

use cafe::Error;
use cafe::domain::OrderStatus;
use cafe::lock::{Lock, RedisLock, order_key};
use cafe::services::payments;
use order_support::*;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn unique_key(what: &str) -> String {
    order_key(&format!("{what}-{}", cafe::ids::new_id(chrono::Utc::now())))
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

async fn get(con: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query_async(con)
        .await
        .expect("GET")
}

fn shared_lock(ttl_ms: u64, max_wait_ms: u64) -> RedisLock {
    RedisLock::new(
        &cafe::testing::redis_url(),
        lock_config(ttl_ms, max_wait_ms),
        Duration::from_secs(2),
    )
    .expect("lock")
}

#[tokio::test(flavor = "multi_thread")]
async fn takes_every_key_with_a_ttl_and_releases_them() {
    let lock = shared_lock(5_000, 500);
    let mut con = raw(&cafe::testing::redis_url()).await;
    let (a, b) = (unique_key("a"), unique_key("b"));
    let lease = lock
        .acquire(&[b.clone(), a.clone(), b.clone()])
        .await
        .expect("lease");
    assert_eq!(
        lease.keys,
        vec![a.clone(), b.clone()],
        "sorted and deduplicated"
    );
    for key in [&a, &b] {
        assert_eq!(
            get(&mut con, key).await.as_deref(),
            Some(lease.token.as_str())
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut con)
            .await
            .expect("PTTL");
        assert!((1..=5_000).contains(&ttl), "ttl {ttl}");
    }
    lock.release(&lease).await.expect("release");
    assert_eq!(get(&mut con, &a).await, None);
    assert_eq!(get(&mut con, &b).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_holder_whose_ttl_ran_out_cannot_release_the_next_holders_key() {
    let lock = shared_lock(50, 1_000);
    let mut con = raw(&cafe::testing::redis_url()).await;
    let key = unique_key("stale");
    let stale = lock
        .acquire(std::slice::from_ref(&key))
        .await
        .expect("first");
    tokio::time::sleep(Duration::from_millis(80)).await;
    // The next holder keeps the key long enough to be looked at on a loaded machine.
    let next_holder = shared_lock(10_000, 1_000);
    let current = next_holder
        .acquire(std::slice::from_ref(&key))
        .await
        .expect("second");
    assert_ne!(stale.token, current.token);
    lock.release(&stale).await.expect("stale release");
    assert_eq!(
        get(&mut con, &key).await.as_deref(),
        Some(current.token.as_str())
    );
    next_holder.release(&current).await.expect("release");
    assert_eq!(get(&mut con, &key).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_key_answers_lock_busy_after_the_wait_and_gives_back_the_keys_taken() {
    let lock = shared_lock(5_000, 200);
    let mut con = raw(&cafe::testing::redis_url()).await;
    let (a, b) = (unique_key("a"), unique_key("b"));
    let _: () = redis::cmd("SET")
        .arg(&b)
        .arg("someone-else")
        .arg("PX")
        .arg(5_000)
        .query_async(&mut con)
        .await
        .expect("SET");
    let started = Instant::now();
    assert_eq!(
        lock.acquire(&[a.clone(), b.clone()]).await,
        Err(Error::LockBusy)
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(1),
        "{waited:?}"
    );
    assert_eq!(
        get(&mut con, &a).await,
        None,
        "the earlier key was given back"
    );
    assert_eq!(get(&mut con, &b).await.as_deref(), Some("someone-else"));
}

#[tokio::test(flavor = "multi_thread")]
async fn holders_asking_in_opposite_orders_never_deadlock_and_never_overlap() {
    let lock = Arc::new(shared_lock(5_000, 10_000));
    let (x, y) = (unique_key("x"), unique_key("y"));
    let inside = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let (lock, inside) = (lock.clone(), inside.clone());
            let keys = if i % 2 == 0 {
                vec![x.clone(), y.clone()]
            } else {
                vec![y.clone(), x.clone()]
            };
            tokio::spawn(async move {
                let lease = lock.acquire(&keys).await.expect("acquired in time");
                assert_eq!(
                    inside.fetch_add(1, Ordering::SeqCst),
                    0,
                    "two holders at once"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                lock.release(&lease).await.expect("release");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

/// A `redis-server` owned by one test, on a free port, stopped on drop.
struct OwnRedis {
    child: Option<Child>,
    port: u16,
}

impl OwnRedis {
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn not_started() -> Self {
        Self {
            child: None,
            port: Self::free_port(),
        }
    }

    fn start() -> Self {
        let mut redis = Self::not_started();
        redis.start_again();
        redis
    }

    fn start_again(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed and on PATH");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn connected_clients(url: &str) -> u64 {
    let mut con = raw(url).await;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut con)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_is_opened_on_first_use_and_reused() {
    let redis = OwnRedis::start();
    let lock = RedisLock::new(
        &redis.url(),
        lock_config(5_000, 500),
        Duration::from_secs(1),
    )
    .expect("lock");
    // Only the probe's own connection: building the lock connected to nothing.
    assert_eq!(connected_clients(&redis.url()).await, 1);
    for _ in 0..50 {
        let lease = lock.acquire(&[unique_key("reuse")]).await.expect("lease");
        lock.release(&lease).await.expect("release");
    }
    assert_eq!(
        connected_clients(&redis.url()).await,
        2,
        "one connection for 50 uses"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_down_at_first_use_is_unavailable_until_it_comes_up() {
    let mut redis = OwnRedis::not_started();
    let lock = RedisLock::new(
        &redis.url(),
        lock_config(5_000, 500),
        Duration::from_millis(300),
    )
    .expect("lock");
    let key = unique_key("late");
    assert_eq!(
        lock.acquire(std::slice::from_ref(&key)).await,
        Err(Error::Unavailable("redis"))
    );
    redis.start_again();
    let lease = lock
        .acquire(std::slice::from_ref(&key))
        .await
        .expect("up now");
    lock.release(&lease).await.expect("release");
}

/// Redis is killed while payments run: those that could not take the lock answer 503CO000 (with
/// `Retry-After`) and changed nothing; the others completed and were charged once. Redis comes
/// back and the same App pays the rest without being rebuilt.
#[tokio::test(flavor = "multi_thread")]
async fn redis_stopped_during_a_run_answers_503_keeps_everything_consistent_and_recovers() {
    let mut redis = OwnRedis::start();
    let h = harness(
        memory_store(),
        redis_lock_at(
            &redis.url(),
            lock_config(10_000, 1_000),
            Duration::from_millis(300),
        ),
        quick_gateway(),
    );
    let member = h.member().await;
    let item = h.item(1_000, 1_000).await;
    let mut orders = Vec::new();
    for _ in 0..60 {
        orders.push(h.order(&member, &[(&item.item_id, 1)]).await);
    }

    let tasks: Vec<_> = orders
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, (order_id, total))| {
            let (h, member) = (h.clone(), member.clone());
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(5 * i as u64)).await;
                let outcome =
                    payments::pay(&h.app, &member.member_id, &card(&order_id, total)).await;
                (order_id, total, outcome)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(120)).await;
    redis.stop();

    let (mut paid, mut unavailable, mut pending) = (0, 0, Vec::new());
    for task in tasks {
        let (order_id, total, outcome) = task.await.expect("task");
        match outcome {
            Ok(_) => paid += 1,
            Err(Error::Unavailable("redis")) => {
                unavailable += 1;
                pending.push((order_id, total));
            }
            Err(Error::LockBusy) => pending.push((order_id, total)),
            Err(other) => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(paid > 0, "nothing was paid before Redis stopped");
    assert!(unavailable > 0, "stopping Redis went unnoticed");
    let answer = cafe::http::failure(&Error::Unavailable("redis"));
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));

    // Consistent: completed ⇔ charged once; pending ⇔ charged nothing; stock matches.
    for (order_id, _) in &orders {
        let completed = h.order_status(order_id).await == OrderStatus::Completed;
        assert_eq!(
            h.gateway.counts(order_id).2,
            usize::from(completed),
            "{order_id}"
        );
    }
    assert_eq!(h.stock(&item.item_id).await, 1_000 - paid);

    redis.start_again();
    for (order_id, total) in &pending {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match payments::pay(&h.app, &member.member_id, &card(order_id, *total)).await {
                Ok(_) => break,
                Err(Error::Unavailable(_) | Error::LockBusy) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(other) => panic!("no recovery: {other:?}"),
            }
        }
    }
    assert_eq!(h.stock(&item.item_id).await, 940);
    assert_eq!(h.gateway.ledger().net_charges().len(), 60);
}

/// A Secrets Manager secret on moto holding `value`; its ARN.
async fn secret_holding(value: &str) -> (String, aws_sdk_secretsmanager::Client) {
    let aws = cafe::aws::Aws::load(
        Some(&cafe::testing::dynamodb_endpoint()),
        Duration::from_secs(5),
    )
    .await;
    let secrets = aws.secrets_manager();
    let created = secrets
        .create_secret()
        .name(format!(
            "cafe-redis-user-{}",
            cafe::ids::new_id(chrono::Utc::now())
        ))
        .secret_string(value)
        .send()
        .await
        .expect("a secret on moto");
    (created.arn().expect("arn").to_owned(), secrets)
}

/// ElastiCache RBAC: the lock connects as the user its secret names, with exactly the rights
/// that user has; a wrong or malformed secret is 503 and takes nothing (it never falls back to
/// the default user).
#[tokio::test(flavor = "multi_thread")]
async fn the_lock_connects_as_its_own_user_and_only_as_that_user() {
    let user = format!("locks-{}", cafe::ids::new_id(chrono::Utc::now()));
    let password = cafe::ids::new_id(chrono::Utc::now());
    let mut admin = raw(&cafe::testing::redis_url()).await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg("~cafe:lock:*")
        .arg("-@all")
        .arg("+set")
        .arg("+get")
        .arg("+del")
        .arg("+evalsha")
        .arg("+eval")
        .arg("+script|load")
        .query_async(&mut admin)
        .await
        .expect("ACL SETUSER");
    let with_secret = |arn: String, secrets| {
        RedisLock::new(
            &cafe::testing::redis_url(),
            lock_config(5_000, 300),
            Duration::from_secs(2),
        )
        .expect("lock")
        .with_auth(Arc::new(cafe::lock::redis::RedisAuth::new(arn, secrets)))
    };
    let (arn, secrets) =
        secret_holding(&serde_json::json!({"username": user, "password": password}).to_string())
            .await;
    let lock = with_secret(arn, secrets);
    let key = unique_key("rbac");
    let lease = lock
        .acquire(std::slice::from_ref(&key))
        .await
        .expect("taken as the user");
    assert!(get(&mut admin, &key).await.is_some());
    lock.release(&lease).await.expect("released");
    assert_eq!(get(&mut admin, &key).await, None);
    // A key outside the user's patterns is refused by Redis: 503, nothing taken.
    let outside = format!("other:{}", cafe::ids::new_id(chrono::Utc::now()));
    assert_eq!(
        lock.acquire(std::slice::from_ref(&outside)).await,
        Err(Error::Unavailable("redis"))
    );
    assert_eq!(get(&mut admin, &outside).await, None);

    for value in [
        serde_json::json!({"username": user, "password": "not-the-password"}).to_string(),
        "not json".to_owned(),
    ] {
        let (arn, secrets) = secret_holding(&value).await;
        let refused = with_secret(arn, secrets);
        let key = unique_key("refused");
        assert_eq!(
            refused.acquire(std::slice::from_ref(&key)).await,
            Err(Error::Unavailable("redis")),
            "a wrong or malformed secret: 503"
        );
        assert_eq!(get(&mut admin, &key).await, None);
    }
}
