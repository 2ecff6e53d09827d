//! The in-process lock of the embedded default: same semantics as the Redis lock (TTL, tokens,
//! sorted acquisition, bounded wait), for one process.

use super::{Lock, LockLease, sorted_keys};
use crate::config::LockConfig;
use crate::error::{Error, Result};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct LocalLock {
    config: LockConfig,
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl LocalLock {
    pub fn new(config: LockConfig) -> Self {
        Self {
            config,
            held: Mutex::default(),
        }
    }

    /// Takes all keys at once or none.
    fn try_take(&self, keys: &[String], token: &str) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if keys
            .iter()
            .any(|k| held.get(k).is_some_and(|(_, expires)| *expires > now))
        {
            return false;
        }
        for key in keys {
            held.insert(key.clone(), (token.to_owned(), now + self.config.ttl));
        }
        true
    }
}

#[async_trait]
impl Lock for LocalLock {
    async fn acquire(&self, keys: &[String]) -> Result<LockLease> {
        let keys = sorted_keys(keys);
        let token = crate::auth::refresh::new_refresh_token();
        let deadline = Instant::now() + self.config.max_wait;
        let mut backoff_ms: u64 = 2;
        loop {
            if self.try_take(&keys, &token) {
                return Ok(LockLease { keys, token });
            }
            if Instant::now() >= deadline {
                return Err(Error::LockBusy);
            }
            let jitter = rand::random_range(0..=backoff_ms);
            tokio::time::sleep_until(
                (Instant::now() + std::time::Duration::from_millis(backoff_ms / 2 + jitter))
                    .min(deadline),
            )
            .await;
            backoff_ms = (backoff_ms * 2).min(50);
        }
    }

    async fn release(&self, lease: &LockLease) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        for key in &lease.keys {
            if held
                .get(key)
                .is_some_and(|(token, _)| *token == lease.token)
            {
                held.remove(key);
            }
        }
        Ok(())
    }
}
