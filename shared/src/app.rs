//! The dependencies of every handler, built once per process (at Lambda init) and lent to each
//! invocation.

use crate::auth::tokens::{KeySource, SecretKeys, VerifiedToken, Verifying, VerifyingKeysWithJwks};
use crate::auth::{AccessTokens, Jwks, PasswordHasher, SigningKeyset};
use crate::aws::Aws;
use crate::clock::{Clock, SystemClock};
pub use crate::config::TokenKey;
use crate::config::{Backend, Config, KeySetting};
use crate::deps::{
    HasClock, HasConfig, HasGateway, HasLock, HasLoginThrottle, HasMetrics, HasPasswords, HasStore,
    HasTokens,
};
use crate::domain::member::admit;
use crate::domain::{Member, Role};
use crate::error::{Error, Result};
use crate::events::MemoryEventLog;
use crate::gateway::{
    GatewayUse, HttpGateway, MockGateway, NoGateway, ObservedGateway, PaymentGateway,
};
use crate::lock::redis::{RedisAuth, RedisLock};
use crate::lock::{LocalLock, Lock, ObservedLock};
use crate::metrics::Metrics;
use crate::secrets::fetch_secret_string;
use crate::store::dynamo::DynamoStore;
use crate::store::{MemoryStore, Store};
use crate::throttle::{LocalThrottle, LoginThrottle, RedisThrottle};
use lambda_http::Request;
use std::sync::Arc;

pub struct App {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn Store>,
    pub lock: Arc<dyn Lock>,
    /// Failed log-ins per email and source address: Redis on AWS, this process in memory.
    pub login_throttle: Arc<dyn LoginThrottle>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub tokens: AccessTokens,
    pub passwords: PasswordHasher,
    /// Where committed events go on the embedded default (stands in for the stream publisher).
    pub event_log: Option<Arc<MemoryEventLog>>,
    /// Operational metrics (EMF on Lambda). `lock` and `gateway` already report through it.
    pub metrics: Metrics,
}

impl App {
    /// [`App::from_env_for`] a function that moves no money.
    pub async fn from_env(token_key: TokenKey) -> Result<Self> {
        Self::from_env_for(token_key, GatewayUse::None).await
    }

    /// Builds everything from the environment: the embedded default or DynamoDB + Redis.
    /// `token_key` says whether this function verifies or signs tokens (its crate's
    /// `TOKEN_KEY`): only those keys are ever read. `usage` says whether it moves money (its
    /// crate's `GATEWAY`): in production such a function refuses to start without a real
    /// gateway, and the others get [`NoGateway`].
    pub async fn from_env_for(token_key: TokenKey, usage: GatewayUse) -> Result<Self> {
        let config = Config::from_env(token_key)?;
        config.check_gateway(usage)?;
        match config.backend {
            Backend::Memory => {
                let memory = MemoryParts::seeded(&config).await?;
                let mut app = Self::from_parts(config, Arc::new(SystemClock), memory)?;
                if app.config.production && usage == GatewayUse::None {
                    app.gateway = Arc::new(ObservedGateway::new(
                        Arc::new(NoGateway),
                        app.metrics.clone(),
                    ));
                }
                Ok(app)
            }
            Backend::Aws => {
                // One SDK configuration per process: every client shares its credentials.
                let aws = Aws::load(
                    config.dynamodb_endpoint.as_deref(),
                    config.dependency_timeout,
                )
                .await;
                Self::on_aws_for(config, &aws, usage).await
            }
        }
    }

    /// The AWS backend over `aws`: the token keys from Secrets Manager when the configuration
    /// names their secrets, DynamoDB, and the Redis lock. The SDK and Redis clients are built
    /// here, once per process, and reused by every invocation; none connects before its first
    /// use, and the keys are read at the first token signed or checked, then cached.
    pub async fn on_aws(config: Config, aws: &Aws) -> Result<Self> {
        Self::on_aws_for(config, aws, GatewayUse::MovesMoney).await
    }

    /// [`App::on_aws`] for a function that does (or does not) move money: the gateway's secret
    /// is read from Secrets Manager here, once, when `PAYMENT_GATEWAY_SECRET_ARN` names it.
    pub async fn on_aws_for(config: Config, aws: &Aws, usage: GatewayUse) -> Result<Self> {
        let tokens = access_tokens(&config, Some(aws))?;
        let store = Arc::new(DynamoStore::from_aws(aws, &config));
        let url = config
            .redis_url
            .clone()
            .ok_or_else(|| Error::Internal("REDIS_URL is required with CAFE_BACKEND=aws".into()))?;
        let auth = config
            .redis_auth_secret_arn
            .as_ref()
            .map(|arn| Arc::new(RedisAuth::new(arn, aws.secrets_manager())));
        let mut lock = RedisLock::new(&url, config.lock, config.dependency_timeout)?;
        let mut throttle = RedisThrottle::new(&url, config.dependency_timeout)?;
        if let Some(auth) = auth {
            lock = lock.with_auth(auth.clone());
            throttle = throttle.with_auth(auth);
        }
        let lock = Arc::new(lock);
        let gateway = gateway_for(&config, aws, usage).await?;
        let login_throttle = Arc::new(throttle);
        Self::assemble(Parts {
            login_throttle,
            tokens,
            clock: Arc::new(SystemClock),
            store,
            lock,
            gateway,
            event_log: None,
            config,
        })
    }

    /// The app over its parts, with the lock and the gateway reporting to its metrics.
    fn assemble(parts: Parts) -> Result<Self> {
        let metrics = Metrics::new(&parts.config.metrics);
        Ok(Self {
            login_throttle: parts.login_throttle,
            tokens: parts.tokens,
            passwords: PasswordHasher::new(parts.config.argon2)?,
            clock: parts.clock,
            store: parts.store,
            lock: Arc::new(ObservedLock::new(parts.lock, metrics.clone())),
            gateway: Arc::new(ObservedGateway::new(parts.gateway, metrics.clone())),
            event_log: parts.event_log,
            config: parts.config,
            metrics,
        })
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
        Self::assemble(Parts {
            login_throttle: Arc::new(LocalThrottle::default()),
            tokens: access_tokens(&config, None)?,
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
        Self::assemble(Parts {
            login_throttle: Arc::new(LocalThrottle::default()),
            tokens: access_tokens(&config, None)?,
            clock,
            store: parts.store,
            lock: parts.lock,
            gateway,
            event_log: Some(parts.events),
            config,
        })
    }

    /// The member behind the request's bearer token. Missing/invalid/expired token, unknown
    /// member, an `END` member or a session that has ended (a withdrawal, a role change
    /// or log-out everywhere since the token was issued) → 401CO000. `WITHDRAWN` members pass
    /// with the token they withdrew with (they may restore).
    pub async fn authenticate(&self, req: &Request) -> Result<Member> {
        let caller = self.verified_caller(req).await?;
        admit(self.store.get_member(&caller.member_id).await?, &caller)
    }

    /// The stored member of a verified token, in `SERVICE`: unknown, `END` or an ended session
    /// → 401CO000, any other status → 403CO000. For the answers that must judge the caller
    /// before anything else, when the read that would have carried the member never happens (a
    /// body refused with 400 still answers 401 or 403 first).
    pub async fn member_in_service(&self, caller: &VerifiedToken) -> Result<Member> {
        let member = admit(self.store.get_member(&caller.member_id).await?, caller)?;
        member.check_in_service()?;
        Ok(member)
    }

    /// The claims of the request's valid bearer token (401CO000 otherwise), before the member
    /// is read: endpoints that read other rows anyway read the member with them (one request)
    /// and then [`admit`] it with these claims.
    pub async fn verified_caller(&self, req: &Request) -> Result<VerifiedToken> {
        let token = crate::http::bearer_token(req)?;
        self.tokens.verify_claims(token, self.clock.now()).await
    }

    /// The caller of a staff endpoint: a valid token (401CO000) of the member's current session
    /// whose role claim and whose stored member both hold at least `required`, the member in
    /// `SERVICE` (403CO000 otherwise). A role change ends the member's sessions, so a demoted
    /// clerk's token is dead for good, even if the role is granted again; a granted role needs a
    /// fresh log-in.
    pub async fn authenticate_staff(&self, req: &Request, required: Role) -> Result<Member> {
        let verified = self.verified_caller(req).await?;
        let member = admit(self.store.get_member(&verified.member_id).await?, &verified)?;
        if verified.role < required {
            return Err(Error::Forbidden);
        }
        member.check_role(required)?;
        Ok(member)
    }
}

/// `App` has every capability a use case may name (`crate::deps`): each is its field of the same
/// name.
macro_rules! lend {
    ($($capability:ident :: $method:ident -> $lent:ty;)*) => {$(
        impl $capability for App {
            fn $method(&self) -> $lent {
                std::borrow::Borrow::borrow(&self.$method)
            }
        }
    )*};
}

crate::deps::with_capabilities!(lend);

/// What [`App::assemble`] puts together.
struct Parts {
    config: Config,
    clock: Arc<dyn Clock>,
    store: Arc<dyn Store>,
    lock: Arc<dyn Lock>,
    login_throttle: Arc<dyn LoginThrottle>,
    gateway: Arc<dyn PaymentGateway>,
    tokens: AccessTokens,
    event_log: Option<Arc<MemoryEventLog>>,
}

/// The token signer and verifier the configuration names. A key in Secrets Manager needs `aws`;
/// without it (the embedded default) naming one is a start-up error.
pub fn access_tokens(config: &Config, aws: Option<&Aws>) -> Result<AccessTokens> {
    let secret = |arn: &str| -> Result<aws_sdk_secretsmanager::Client> {
        aws.map(Aws::secrets_manager).ok_or_else(|| {
            Error::Internal(format!(
                "token keys in Secrets Manager ({arn}) need CAFE_BACKEND=aws"
            ))
        })
    };
    let signing = match &config.token_signing_keys {
        KeySetting::None => None,
        KeySetting::Inline(keyset) => Some(KeySource::Fixed(Arc::new(keyset.clone()))),
        KeySetting::Secret(arn) => Some(KeySource::Secret(Arc::new(SecretKeys::new(
            arn.clone(),
            secret(arn)?,
            config.token_keys_cache,
            if config.production {
                SigningKeyset::parse_for_production
            } else {
                SigningKeyset::parse
            },
        )))),
    };
    let verifying = match &config.token_verifying_keys {
        KeySetting::None if signing.is_some() => Verifying::FromSigning,
        // Checks no token: nothing verifies.
        KeySetting::None => Verifying::Jwks(KeySource::Fixed(Arc::new(
            VerifyingKeysWithJwks::new(Jwks { keys: Vec::new() })?,
        ))),
        KeySetting::Inline(jwks) => Verifying::Jwks(KeySource::Fixed(Arc::new(
            VerifyingKeysWithJwks::new(jwks.clone())?,
        ))),
        KeySetting::Secret(arn) => Verifying::Jwks(KeySource::Secret(Arc::new(SecretKeys::new(
            arn.clone(),
            secret(arn)?,
            config.token_keys_cache,
            if config.production {
                VerifyingKeysWithJwks::parse_for_production
            } else {
                VerifyingKeysWithJwks::parse
            },
        )))),
    };
    Ok(AccessTokens::new(
        signing,
        verifying,
        &config.token_issuer,
        &config.token_audience,
        config.access_token_ttl,
    ))
}

/// The payment gateway the configuration names: the HTTP gateway at `PAYMENT_GATEWAY_URL`
/// (`cafe-pg`, or a real PG) with its inline secret key, else the in-process mock.
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

/// The gateway of a process on AWS: [`NoGateway`] for a function that moves no money in
/// production; the HTTP gateway with its secret key read from `PAYMENT_GATEWAY_SECRET_ARN` when
/// that names one; otherwise as [`gateway_of`]. A secret that cannot be read is a start-up error:
/// a function that moves money never starts with a gateway it cannot authenticate to.
async fn gateway_for(
    config: &Config,
    aws: &Aws,
    usage: GatewayUse,
) -> Result<Arc<dyn PaymentGateway>> {
    if config.production && usage == GatewayUse::None {
        return Ok(Arc::new(NoGateway));
    }
    config.check_gateway(usage)?;
    match (
        &config.payment_gateway_url,
        &config.payment_gateway_secret_arn,
    ) {
        (Some(url), Some(arn)) if config.payment_gateway_secret.is_none() => {
            let secret = fetch_secret_string(arn, &aws.secrets_manager())
                .await
                .map_err(|error| {
                    Error::Internal(format!(
                        "the payment gateway's secret key could not be read: {error}"
                    ))
                })?;
            Ok(Arc::new(HttpGateway::new(
                url,
                &secret,
                config.gateway_timeout,
            )?))
        }
        _ => gateway_of(config),
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
