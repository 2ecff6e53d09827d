//! The login throttle on a real Redis (`CAFE_TEST_REDIS_URL`): exact under a race of many
//! attempts, shared between instances, and falling back to the instance's own window — never a
//! 503 — when Redis cannot be reached.

use cafe::Error;
use cafe::config::LoginThrottleConfig;
use cafe::throttle::{LoginThrottle, RedisThrottle, ThrottleKey, login_keys};
use std::sync::Arc;
use std::time::Duration;

const WINDOW: Duration = Duration::from_secs(60);

fn unique_email() -> String {
    format!("{}@throttle.example", ulid::Ulid::new()).to_lowercase()
}

fn redis() -> RedisThrottle {
    RedisThrottle::new(&cafe::testing::redis_url(), Duration::from_secs(2)).expect("url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_100_racing_attempts_exactly_the_limit_gets_through() {
    let config = LoginThrottleConfig::default();
    let keys = login_keys(&config, &unique_email(), None);
    // Two instances sharing one Redis, as two Lambda instances do.
    let instances = [Arc::new(redis()), Arc::new(redis())];
    let now = chrono::Utc::now();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let throttle = instances[i % 2].clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            throttle.reserve(&keys, WINDOW, now).await
        }));
    }
    let (mut through, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("joined") {
            Ok(reservation) => {
                assert!(!reservation.local, "reserved on Redis");
                through += 1;
            }
            Err(Error::TooManyRequests(seconds)) => {
                assert!((1..=60).contains(&seconds), "{seconds}");
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((through, refused), (config.per_email as usize, 90));
}

#[tokio::test]
async fn a_success_gives_its_attempt_back_and_the_window_slides() {
    let keys = vec![ThrottleKey {
        key: format!("cafe:login:test:{}", ulid::Ulid::new()),
        limit: 2,
    }];
    let throttle = redis();
    let t0 = chrono::Utc::now();
    let first = throttle.reserve(&keys, WINDOW, t0).await.expect("first");
    throttle.release(&first).await;
    throttle.reserve(&keys, WINDOW, t0).await.expect("second");
    throttle
        .reserve(&keys, WINDOW, t0)
        .await
        .expect("third: the first was given back");
    let later = t0 + chrono::Duration::seconds(45);
    assert_eq!(
        throttle.reserve(&keys, WINDOW, later).await,
        Err(Error::TooManyRequests(15))
    );
    let after = t0 + chrono::Duration::seconds(61);
    throttle
        .reserve(&keys, WINDOW, after)
        .await
        .expect("the window slid");
}

#[tokio::test]
async fn redis_down_falls_back_to_the_instances_window() {
    // Nothing listens on port 1: every Redis call fails fast.
    let throttle =
        RedisThrottle::new("redis://127.0.0.1:1", Duration::from_millis(300)).expect("url");
    let keys = login_keys(
        &LoginThrottleConfig::default(),
        &unique_email(),
        Some("192.0.2.1"),
    );
    let now = chrono::Utc::now();
    for _ in 0..10 {
        let reservation = throttle
            .reserve(&keys, WINDOW, now)
            .await
            .expect("fail open");
        assert!(reservation.local);
    }
    // Still bounded: this instance counts on its own.
    assert!(matches!(
        throttle.reserve(&keys, WINDOW, now).await,
        Err(Error::TooManyRequests(_))
    ));
}
