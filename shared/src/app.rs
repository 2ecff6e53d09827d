//! The dependencies of every handler, built once per process (at Lambda init) and lent to each
//! invocation.

use crate::auth::{PasswordHasher, TokenSigner};
use crate::aws::Aws;
use crate::clock::{Clock, SystemClock};
pub use crate::config::TokenKey;
use crate::config::{Backend, Config};
use crate::domain::{Member, MemberStatus};
use crate::error::{Error, Result};
use crate::events::MemoryEventLog;
use crate::gateway::{HttpGateway, MockGateway, PaymentGateway};
use crate::lock::redis::RedisLock;
use crate::lock::{LocalLock, Lock};
use crate::store::dynamo::DynamoStore;
use crate::store::{MemoryStore, Store};
use lambda_http::Request;
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn Store>,
    pub lock: Arc<dyn Lock>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub tokens: TokenSigner,
    pub passwords: PasswordHasher,
    /// Where committed events go on the embedded default (stands in for the stream publisher).
    pub event_log: Option<Arc<MemoryEventLog>>,
}

impl App {
    /// Builds everything from the environment: the embedded default or DynamoDB + Redis.
    /// `token_key` says whether this function verifies or signs tokens (its crate's
    /// `TOKEN_KEY`): only then is the key read at init.
    pub async fn from_env(token_key: TokenKey) -> Result<Self> {
        let config = Config::from_env(token_key)?;
        match config.backend {
            Backend::Memory => {
                let memory = MemoryParts::seeded(&config).await?;
                Self::from_parts(config, Arc::new(SystemClock), memory)
            }
            Backend::Aws => {
                // One SDK configuration per process: every client shares its credentials.
                let aws = Aws::load(
                    config.dynamodb_endpoint.as_deref(),
                    config.dependency_timeout,
                )
                .await;
                Self::on_aws(config, &aws).await
            }
        }
    }

    /// The AWS backend over `aws`: the token key from Secrets Manager when the configuration
    /// names one (`JWT_SECRET_ARN`), DynamoDB, and the Redis lock. The SDK and Redis clients are
    /// built here, once per process, and reused by every invocation; neither connects before its
    /// first use.
    pub async fn on_aws(mut config: Config, aws: &Aws) -> Result<Self> {
        if let Some(arn) = config.jwt_secret_arn.clone() {
            // Once per process: warm invocations reuse the key.
            config.jwt_secret = crate::secrets::fetch_jwt_secret(&arn, aws).await?;
        }
        let store = Arc::new(DynamoStore::from_aws(aws, &config));
        let url = config
            .redis_url
            .clone()
            .ok_or_else(|| Error::Internal("REDIS_URL is required with CAFE_BACKEND=aws".into()))?;
        let lock = Arc::new(RedisLock::new(
            &url,
            config.lock,
            config.dependency_timeout,
        )?);
        Self::with_store(config, Arc::new(SystemClock), store, lock)
    }

    /// An app over the given store and lock (DynamoDB and Redis in tests) with the mock
    /// gateway and no in-process event log (events go through the table's outbox).
    pub fn with_store(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        lock: Arc<dyn Lock>,
    ) -> Result<Self> {
        let gateway = gateway_of(&config)?;
        Self::with_store_and_gateway(config, clock, store, lock, gateway)
    }

    /// [`App::with_store`] with a chosen gateway, so a test can keep the concrete mock and
    /// inspect its ledger.
    pub fn with_store_and_gateway(
        config: Config,
        clock: Arc<dyn Clock>,
        store: Arc<dyn Store>,
        lock: Arc<dyn Lock>,
        gateway: Arc<dyn PaymentGateway>,
    ) -> Result<Self> {
        Ok(Self {
            tokens: TokenSigner::new(&config.jwt_secret, config.access_token_ttl),
            passwords: PasswordHasher::new(config.argon2)?,
            clock,
            store,
            lock,
            gateway,
            event_log: None,
            config,
        })
    }

    /// The embedded default with the given configuration and clock; the concrete parts are
    /// returned too so tests can inspect stored state, events and the gateway's ledger.
    pub async fn in_memory(config: Config, clock: Arc<dyn Clock>) -> Result<(Self, MemoryParts)> {
        let parts = MemoryParts::seeded(&config).await?;
        let app = Self::from_parts(config, clock, parts.clone())?;
        Ok((app, parts))
    }

    fn from_parts(config: Config, clock: Arc<dyn Clock>, parts: MemoryParts) -> Result<Self> {
        let gateway: Arc<dyn PaymentGateway> = match config.payment_gateway_url {
            Some(_) => gateway_of(&config)?,
            None => parts.gateway,
        };
        Ok(Self {
            tokens: TokenSigner::new(&config.jwt_secret, config.access_token_ttl),
            passwords: PasswordHasher::new(config.argon2)?,
            clock,
            store: parts.store,
            lock: parts.lock,
            gateway,
            event_log: Some(parts.events),
            config,
        })
    }

    /// The member behind the request's bearer token. Missing/invalid/expired token, unknown
    /// member or an `END` member → 401CO000. `WITHDRAWN` members pass (they may restore).
    pub async fn authenticate(&self, req: &Request) -> Result<Member> {
        let token = crate::http::bearer_token(req)?;
        let member_id = self.tokens.verify(token, self.clock.now())?;
        let member = self
            .store
            .get_member(&member_id)
            .await?
            .ok_or(Error::Unauthorized)?;
        if member.status == MemberStatus::End {
            return Err(Error::Unauthorized);
        }
        Ok(member)
    }
}

/// The payment gateway the configuration names: the HTTP gateway at `PAYMENT_GATEWAY_URL`
/// (`cafe-pg`, or a real PG), else the in-process mock.
fn gateway_of(config: &Config) -> Result<Arc<dyn PaymentGateway>> {
    match &config.payment_gateway_url {
        Some(url) => {
            let secret = config.payment_gateway_secret.as_deref().ok_or_else(|| {
                Error::Internal(
                    "PAYMENT_GATEWAY_SECRET_KEY is required with PAYMENT_GATEWAY_URL".into(),
                )
            })?;
            Ok(Arc::new(HttpGateway::new(
                url,
                secret,
                config.gateway_timeout,
            )?))
        }
        None => Ok(Arc::new(MockGateway::new(config.gateway))),
    }
}

/// The in-memory implementations, kept concrete for inspection.
#[derive(Clone)]
pub struct MemoryParts {
    pub store: Arc<MemoryStore>,
    pub lock: Arc<LocalLock>,
    pub gateway: Arc<MockGateway>,
    pub events: Arc<MemoryEventLog>,
}

impl MemoryParts {
    /// A fresh store seeded with the original's two items.
    pub async fn seeded(config: &Config) -> Result<Self> {
        use crate::store::ItemStore;
        let events = Arc::new(MemoryEventLog::new());
        let store = Arc::new(MemoryStore::with_event_log(events.clone()));
        for item in crate::domain::item::seed_items() {
            store.put_item(&item).await?;
        }
        Ok(Self {
            store,
            lock: Arc::new(LocalLock::new(config.lock)),
            gateway: Arc::new(MockGateway::new(config.gateway)),
            events,
        })
    }
}
