//! Login throttling: a sliding window of log-in attempts per email and per source address
//! (docs/login-throttle.md).
//!
//! A log-in first *reserves* one attempt on each of its keys, atomically: if any key already has
//! its limit of attempts inside the window, nothing is reserved and the log-in is refused with
//! 429CO000 and `Retry-After` (the time until that key's oldest attempt leaves the window), before
//! any password hash is computed. A log-in that then succeeds gives its reservation back, so only
//! failures count; a failed one (wrong password, unknown email, ended member: the same path for
//! all of them) keeps it. Reserving before verifying makes the limit exact under concurrency: of
//! any number of simultaneous attempts, exactly `limit` get to the password check.
//!
//! On Redis (one Lua script call; a second one only to give back a success), shared by every
//! instance. When Redis cannot be reached the throttle falls back to a window in this process:
//! fail open, but bounded per instance (see the doc for why not closed). Keys are SHA-256 hashes:
//! no email or address is ever stored in Redis or logged.

use crate::config::{LoginThrottleConfig, SignupThrottleConfig};
use crate::error::{Error, Result};
use crate::lock::redis::{bounded, shared_connection};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;
use tracing::Instrument;

/// One throttled dimension of a log-in, with its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleKey {
    pub key: String,
    pub limit: u32,
}

/// The keys of one log-in attempt: its (normalised) email and, when known, its source address.
pub fn login_keys(
    config: &LoginThrottleConfig,
    email: &str,
    source_ip: Option<&str>,
) -> Vec<ThrottleKey> {
    let hashed = |kind: &str, value: &str| {
        let digest = Sha256::digest(format!("{kind}\0{value}").as_bytes());
        format!("cafe:login:{kind}:{}", URL_SAFE_NO_PAD.encode(digest))
    };
    let mut keys = vec![ThrottleKey {
        key: hashed("email", email),
        limit: config.per_email,
    }];
    if let Some(ip) = source_ip.filter(|ip| !ip.is_empty()) {
        keys.push(ThrottleKey {
            key: hashed("ip", ip),
            limit: config.per_source,
        });
    }
    keys
}

/// The key of a sign-up: its source address.
pub fn signup_keys(config: &SignupThrottleConfig, source_ip: &str) -> Vec<ThrottleKey> {
    let digest = Sha256::digest(format!("signup-ip\0{source_ip}").as_bytes());
    vec![ThrottleKey {
        key: format!("cafe:signup:ip:{}", URL_SAFE_NO_PAD.encode(digest)),
        limit: config.per_source,
    }]
}

/// The key of a log-in from a trusted device (a valid device token, `crate::auth::device`): that
/// device alone, so strangers' failures on the email or the address never block it.
pub fn device_login_keys(config: &LoginThrottleConfig, device_id: &str) -> Vec<ThrottleKey> {
    let digest = Sha256::digest(format!("device\0{device_id}").as_bytes());
    vec![ThrottleKey {
        key: format!("cafe:login:device:{}", URL_SAFE_NO_PAD.encode(digest)),
        limit: config.per_device,
    }]
}

/// A reserved attempt, to give back if the log-in succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub keys: Vec<String>,
    pub attempt: String,
    /// Reserved on the in-process fallback, not on Redis.
    pub local: bool,
}

impl Reservation {
    fn of(keys: &[ThrottleKey], attempt: String, local: bool) -> Self {
        Self {
            keys: keys.iter().map(|k| k.key.clone()).collect(),
            attempt,
            local,
        }
    }
}

#[async_trait]
pub trait LoginThrottle: Send + Sync {
    /// Reserves one attempt on every key, or none: 429CO000 with the seconds to wait when a key
    /// is at its limit within `window` before `now`.
    async fn reserve(
        &self,
        keys: &[ThrottleKey],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Reservation>;
    /// Gives back a reservation (the log-in succeeded). Best effort.
    async fn release(&self, reservation: &Reservation);
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn wait_seconds(wait_ms: i64) -> u32 {
    u32::try_from((wait_ms + 999) / 1000)
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The window in this process: the embedded default, and the fallback while Redis is down.
#[derive(Default)]
pub struct LocalThrottle {
    /// key → attempt times (ms) and ids, oldest first.
    windows: Mutex<HashMap<String, VecDeque<(i64, String)>>>,
}

/// Past this many keys the expired ones are swept; a flood of distinct keys cannot grow memory
/// without bound (past twice this, the oldest windows are dropped: fail open).
const LOCAL_MAX_KEYS: usize = 10_000;

impl LocalThrottle {
    fn sweep(windows: &mut HashMap<String, VecDeque<(i64, String)>>, horizon: i64) {
        windows.retain(|_, attempts| attempts.back().is_some_and(|(at, _)| *at > horizon));
        if windows.len() > 2 * LOCAL_MAX_KEYS {
            windows.clear();
        }
    }
}

#[async_trait]
impl LoginThrottle for LocalThrottle {
    async fn reserve(
        &self,
        keys: &[ThrottleKey],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Reservation> {
        let now_ms = now.timestamp_millis();
        let horizon = now_ms - millis(window);
        let attempt = crate::ids::new_id(now);
        let mut windows = self
            .windows
            .lock()
            .map_err(|_| Error::Internal("login throttle poisoned".into()))?;
        if windows.len() > LOCAL_MAX_KEYS {
            Self::sweep(&mut windows, horizon);
        }
        let mut wait = 0;
        for key in keys {
            let attempts = windows.entry(key.key.clone()).or_default();
            while attempts.front().is_some_and(|(at, _)| *at <= horizon) {
                attempts.pop_front();
            }
            if attempts.len() >= key.limit as usize {
                let oldest = attempts.front().map_or(now_ms, |(at, _)| *at);
                wait = wait.max(oldest + millis(window) - now_ms);
            }
        }
        if wait > 0 || keys.iter().any(|k| k.limit == 0) {
            return Err(Error::TooManyRequests(wait_seconds(wait)));
        }
        for key in keys {
            windows
                .entry(key.key.clone())
                .or_default()
                .push_back((now_ms, attempt.clone()));
        }
        Ok(Reservation::of(keys, attempt, true))
    }

    async fn release(&self, reservation: &Reservation) {
        if let Ok(mut windows) = self.windows.lock() {
            for key in &reservation.keys {
                if let Some(attempts) = windows.get_mut(key) {
                    attempts.retain(|(_, id)| *id != reservation.attempt);
                }
            }
        }
    }
}

/// Drops the attempts that left the window, refuses when a key is at its limit (answering the
/// milliseconds until its oldest attempt leaves), else records the attempt on every key.
const RESERVE_SCRIPT: &str = r"
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local free_at = now + window
    if oldest[2] then free_at = tonumber(oldest[2]) + window end
    if free_at - now > wait then wait = free_at - now end
    if wait < 1 then wait = 1 end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return 0
";

/// The shared window on Redis, falling back to [`LocalThrottle`] while Redis fails.
pub struct RedisThrottle {
    client: redis::Client,
    auth: Option<std::sync::Arc<crate::lock::redis::RedisAuth>>,
    timeout: Duration,
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
    fallback: LocalThrottle,
}

impl std::fmt::Debug for RedisThrottle {
    // The URL may carry a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisThrottle")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisThrottle {
    /// Parses `url` without connecting (nothing at init); `timeout` bounds every call.
    pub fn new(url: &str, timeout: Duration) -> Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|_| Error::Internal("REDIS_URL is not a valid redis URL".into()))?;
        Ok(Self {
            client,
            auth: None,
            timeout,
            connection: OnceCell::new(),
            script: redis::Script::new(RESERVE_SCRIPT),
            fallback: LocalThrottle::default(),
        })
    }

    /// Connects as `auth`'s user (ElastiCache RBAC).
    pub fn with_auth(mut self, auth: std::sync::Arc<crate::lock::redis::RedisAuth>) -> Self {
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

    async fn reserve_on_redis(
        &self,
        keys: &[ThrottleKey],
        window: Duration,
        now: DateTime<Utc>,
        attempt: &str,
    ) -> Result<i64> {
        let mut connection = self.connection().await?;
        let mut invocation = self.script.prepare_invoke();
        for key in keys {
            invocation.key(&key.key);
        }
        invocation
            .arg(now.timestamp_millis())
            .arg(millis(window).max(1))
            .arg(attempt);
        for key in keys {
            invocation.arg(key.limit);
        }
        let reserve = invocation
            .invoke_async(&mut connection)
            .instrument(crate::spans::dependency_span("redis", "EVALSHA"));
        bounded(self.timeout, reserve).await
    }
}

#[async_trait]
impl LoginThrottle for RedisThrottle {
    async fn reserve(
        &self,
        keys: &[ThrottleKey],
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<Reservation> {
        let attempt = crate::ids::new_id(now);
        match self.reserve_on_redis(keys, window, now, &attempt).await {
            Ok(0) => Ok(Reservation::of(keys, attempt, false)),
            Ok(wait_ms) => Err(Error::TooManyRequests(wait_seconds(wait_ms))),
            Err(_) => {
                // Never a 503 for a log-in only because its throttle is down: this instance's own
                // window stands in until Redis answers again.
                tracing::warn!("login throttle: redis unavailable, using this instance's window");
                self.fallback.reserve(keys, window, now).await
            }
        }
    }

    async fn release(&self, reservation: &Reservation) {
        if reservation.local {
            return self.fallback.release(reservation).await;
        }
        let Ok(mut connection) = self.connection().await else {
            return;
        };
        let mut command = redis::pipe();
        for key in &reservation.keys {
            command
                .cmd("ZREM")
                .arg(key)
                .arg(&reservation.attempt)
                .ignore();
        }
        let give_back = command
            .query_async::<()>(&mut connection)
            .instrument(crate::spans::dependency_span("redis", "ZREM"));
        if bounded(self.timeout, give_back).await.is_err() {
            tracing::warn!("login throttle: giving back a successful attempt failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(limit: u32) -> Vec<ThrottleKey> {
        vec![
            ThrottleKey {
                key: "a".into(),
                limit,
            },
            ThrottleKey {
                key: "b".into(),
                limit: limit * 5,
            },
        ]
    }

    #[tokio::test]
    async fn the_window_slides_and_successes_are_given_back() {
        let throttle = LocalThrottle::default();
        let t0 = crate::testing::epoch();
        let window = Duration::from_secs(60);
        for i in 0..10 {
            let at = t0 + chrono::Duration::seconds(i);
            throttle
                .reserve(&keys(10), window, at)
                .await
                .expect("under the limit");
        }
        let at = t0 + chrono::Duration::seconds(30);
        assert_eq!(
            throttle.reserve(&keys(10), window, at).await,
            Err(Error::TooManyRequests(30)),
            "the oldest attempt leaves the window 30 s later"
        );
        // The first attempt has left the window one minute after it.
        let later = t0 + chrono::Duration::seconds(60) + chrono::Duration::milliseconds(1);
        let reservation = throttle
            .reserve(&keys(10), window, later)
            .await
            .expect("a slot freed");
        throttle.release(&reservation).await;
        throttle
            .reserve(&keys(10), window, later)
            .await
            .expect("a success gave its slot back");
    }

    #[tokio::test]
    async fn keys_are_hashed_and_per_dimension() {
        let config = LoginThrottleConfig::default();
        let keys = login_keys(&config, "kim@example.com", Some("203.0.113.7"));
        assert_eq!(keys.len(), 2);
        assert!(
            keys.iter()
                .all(|k| !k.key.contains("kim") && !k.key.contains("203.0"))
        );
        assert_eq!(keys[0].limit, config.per_email);
        assert_eq!(keys[1].limit, config.per_source);
        assert_eq!(login_keys(&config, "kim@example.com", None).len(), 1);
    }
}
