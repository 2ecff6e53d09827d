//! The Redis lock of the AWS backend (ElastiCache; `rediss://` for TLS).
//!
//! Each key is taken with `SET key token NX PX ttl`, where the token is random per holder, and
//! given back only through a Lua compare-and-delete, so a holder whose TTL ran out can never
//! delete the key of the holder that came after it. Keys are taken one by one in sorted order;
//! if a later key is taken by someone else, the ones already held are given back before waiting
//! (so a waiter never blocks others while it waits), and the whole set is tried again with
//! jittered backoff until `max_wait`, then 409PA001.
//!
//! Building the lock does no I/O, so a Lambda's init never waits on Redis; the connection is
//! opened on first use and kept for the life of the process (warm invocations reuse it). The
//! connection manager re-establishes it after Redis comes back. Every call is bounded by the
//! dependency timeout; Redis unreachable or too slow → 503CO000, with nothing held.

use super::{Lock, LockLease, sorted_keys};
use crate::config::LockConfig;
use crate::error::{Error, Result};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::Instrument;

/// Deletes every key that still carries this holder's token; returns how many it deleted.
const RELEASE_SCRIPT: &str = r"
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
";

/// First and largest pause between two attempts at a busy set of keys.
const FIRST_BACKOFF: Duration = Duration::from_millis(4);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

pub struct RedisLock {
    client: redis::Client,
    auth: Option<std::sync::Arc<RedisAuth>>,
    config: LockConfig,
    timeout: Duration,
    connection: OnceCell<ConnectionManager>,
    release_script: redis::Script,
}

impl std::fmt::Debug for RedisLock {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLock")
            .field("config", &self.config)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisLock {
    /// Parses `url` (`redis://` or `rediss://`) without connecting. `timeout` bounds every call
    /// to Redis, connecting included.
    pub fn new(url: &str, config: LockConfig, timeout: Duration) -> Result<RedisLock> {
        let client = redis::Client::open(url)
            .map_err(|_| Error::Internal("REDIS_URL is not a valid redis URL".into()))?;
        Ok(RedisLock {
            client,
            auth: None,
            config,
            timeout,
            connection: OnceCell::new(),
            release_script: redis::Script::new(RELEASE_SCRIPT),
        })
    }

    /// The shared connection, opened on first use. A failed first connect leaves the cell empty,
    /// so the next call tries again.
    /// Connects as `auth`'s user (ElastiCache RBAC).
    pub fn with_auth(mut self, auth: std::sync::Arc<RedisAuth>) -> Self {
        self.auth = Some(auth);
        self
    }

    async fn connection(&self) -> Result<ConnectionManager> {
        shared_connection(
            &self.connection,
            &self.client,
            self.auth.as_deref(),
            self.timeout,
        )
        .await
    }

    /// `SET key token NX PX ttl`: true if this holder now has the key.
    async fn try_set(&self, key: &str, token: &str) -> Result<bool> {
        let mut connection = self.connection().await?;
        let ttl_ms = u64::try_from(self.config.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let reply: Option<String> = bounded(
            self.timeout,
            redis::cmd("SET")
                .arg(key)
                .arg(token)
                .arg("NX")
                .arg("PX")
                .arg(ttl_ms)
                .query_async(&mut connection)
                .instrument(crate::spans::dependency_span("redis", "SET")),
        )
        .await?;
        Ok(reply.is_some())
    }

    /// Compare-and-delete of `keys` for `token`.
    async fn release_keys(&self, keys: &[String], token: &str) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut connection = self.connection().await?;
        let mut invocation = self.release_script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation.arg(token);
        let release = invocation
            .invoke_async(&mut connection)
            .instrument(crate::spans::dependency_span("redis", "EVALSHA"));
        let _released: i64 = bounded(self.timeout, release).await?;
        Ok(())
    }

    /// Takes every key in order, or none: on a busy key, gives back those taken so far.
    /// `Ok(false)` when a key was busy.
    async fn try_take_all(&self, keys: &[String], token: &str) -> Result<bool> {
        for (taken, key) in keys.iter().enumerate() {
            let got = match self.try_set(key, token).await {
                Ok(got) => got,
                Err(error) => {
                    // Redis is failing: the keys expire by TTL if this cannot reach it either.
                    self.give_back(&keys[..taken], token).await;
                    return Err(error);
                }
            };
            if !got {
                self.give_back(&keys[..taken], token).await;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Best-effort release of partially taken keys; a failure is logged (the TTL frees them).
    async fn give_back(&self, keys: &[String], token: &str) {
        if let Err(error) = self.release_keys(keys, token).await {
            tracing::warn!(%error, keys = keys.len(), "could not give back partially taken lock keys");
        }
    }
}

/// The lock cache's user (ElastiCache RBAC): a Secrets Manager secret `{"username",
/// "password"}`, read when a process first connects to Redis (so a function that never uses
/// Redis never reads it), then kept with the connection.
pub struct RedisAuth {
    arn: String,
    secrets: aws_sdk_secretsmanager::Client,
}

#[derive(serde::Deserialize)]
struct RedisUser {
    username: String,
    password: String,
}

impl RedisAuth {
    pub fn new(arn: impl Into<String>, secrets: aws_sdk_secretsmanager::Client) -> Self {
        Self {
            arn: arn.into(),
            secrets,
        }
    }

    /// `client`'s address and settings as this user. An unreadable or malformed secret is 503
    /// (the next request tries again); its value is never logged.
    async fn client_for(&self, client: &redis::Client) -> Result<redis::Client> {
        let text = crate::secrets::fetch_secret_string(&self.arn, &self.secrets).await?;
        let user: RedisUser = serde_json::from_str(&text).map_err(|_| {
            tracing::error!("REDIS_AUTH_SECRET_ARN does not hold {{\"username\", \"password\"}}");
            Error::Unavailable("redis")
        })?;
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_username(user.username)
            .set_password(user.password);
        redis::Client::open(info.set_redis_settings(settings))
            .map_err(|_| Error::Internal("the redis connection settings were refused".into()))
    }
}

/// The process's one connection to `client` in `cell` (as `auth`'s user when given), opened on
/// first use with every call bounded by `timeout`. A failed first connect leaves the cell
/// empty, so the next call tries again. The connection manager re-establishes a dropped
/// connection.
pub(crate) async fn shared_connection(
    cell: &OnceCell<ConnectionManager>,
    client: &redis::Client,
    auth: Option<&RedisAuth>,
    timeout: Duration,
) -> Result<ConnectionManager> {
    let manager = cell
        .get_or_try_init(|| async {
            let client = match auth {
                Some(auth) => auth.client_for(client).await?,
                None => client.clone(),
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                // Reconnection is retried by the next request, not by piling up retries here.
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(20))
                .set_max_delay(Duration::from_millis(200));
            bounded(
                timeout,
                ConnectionManager::new_with_config(client, config)
                    .instrument(crate::spans::dependency_span("redis", "connect")),
            )
            .await
        })
        .await?;
    Ok(manager.clone())
}

/// A Redis call bounded by `timeout`; a failure or a timeout is 503 (`redis`), logged.
pub(crate) async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::warn!(kind = ?error.kind(), "redis call failed");
            Err(Error::Unavailable("redis"))
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "redis call timed out"
            );
            Err(Error::Unavailable("redis"))
        }
    }
}

/// The pause before attempt `attempt + 1`: exponential, capped, with full jitter on its upper
/// half, so waiters spread out instead of retrying in lock step.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt.min(16)))
        .min(MAX_BACKOFF);
    let half = ceiling / 2;
    half + half.mul_f64(rand::random::<f64>())
}

/// A fresh 128-bit random token, hex-encoded: the proof of which holder set a key.
fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

#[async_trait]
impl Lock for RedisLock {
    async fn acquire(&self, keys: &[String]) -> Result<LockLease> {
        let keys = sorted_keys(keys);
        let token = new_token();
        let deadline = Instant::now() + self.config.max_wait;
        let mut attempt: u32 = 0;
        loop {
            if self.try_take_all(&keys, &token).await? {
                return Ok(LockLease { keys, token });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::LockBusy);
            }
            tokio::time::sleep_until((now + backoff(attempt)).min(deadline)).await;
            attempt = attempt.saturating_add(1);
        }
    }

    async fn release(&self, lease: &LockLease) -> Result<()> {
        self.release_keys(&lease.keys, &lease.token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_does_not_connect_and_refuses_bad_urls() {
        // Nothing listens on port 1: `new` must still succeed because it does no I/O.
        assert!(
            RedisLock::new(
                "redis://127.0.0.1:1",
                LockConfig::default(),
                Duration::from_millis(50)
            )
            .is_ok()
        );
        assert!(
            RedisLock::new(
                "rediss://cache.example.com:6379",
                LockConfig::default(),
                Duration::from_millis(50)
            )
            .is_ok()
        );
        assert!(matches!(
            RedisLock::new(
                "http://nope",
                LockConfig::default(),
                Duration::from_millis(50)
            ),
            Err(Error::Internal(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_url() {
        let lock = RedisLock::new(
            "redis://:hunter2-secret@127.0.0.1:6379",
            LockConfig::default(),
            Duration::from_millis(50),
        )
        .expect("lock");
        assert!(!format!("{lock:?}").contains("hunter2"));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 0..40 {
            let pause = backoff(attempt);
            assert!(pause <= MAX_BACKOFF, "attempt {attempt}: {pause:?}");
            assert!(pause >= FIRST_BACKOFF / 2);
        }
        assert!(backoff(20) >= MAX_BACKOFF / 2);
        let samples: std::collections::HashSet<_> = (0..20).map(|_| backoff(10)).collect();
        assert!(samples.len() > 1, "backoff is not jittered");
    }

    #[test]
    fn tokens_are_random_and_long() {
        let a = new_token();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_token());
    }

    #[tokio::test]
    async fn unreachable_redis_is_unavailable_within_the_timeout() {
        let lock = RedisLock::new(
            "redis://127.0.0.1:1",
            LockConfig::default(),
            Duration::from_millis(300),
        )
        .expect("lock");
        let started = std::time::Instant::now();
        let outcome = lock.acquire(&["cafe:lock:order:x".to_owned()]).await;
        assert_eq!(outcome, Err(Error::Unavailable("redis")));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
