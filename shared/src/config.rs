//! Configuration from environment variables. Every variable is listed in the README.

use crate::error::{Error, Result};
use std::time::Duration;

/// Which implementations of the store, lock and event publisher a process uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-memory store, in-process lock, in-memory events: the embedded default.
    Memory,
    /// DynamoDB, Redis and EventBridge.
    Aws,
}

/// Whether a function verifies or signs access tokens, and so needs the token key at init.
/// Each function crate declares its own (`TOKEN_KEY` in its `lib.rs`); a function that checks no
/// token never reads the key, and its IAM policy grants no access to the secret holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKey {
    /// Verifies or signs tokens: `JWT_SECRET` or `JWT_SECRET_ARN` is required in production.
    Required,
    /// Checks no token: the key is neither read nor required; an unknowable random key stands in,
    /// so a token check added by mistake fails closed.
    NotUsed,
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's first recommended Argon2id setting: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// The cheapest parameters argon2 accepts; for tests only.
    pub fn cheapest_for_tests() -> Self {
        Self {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        }
    }
}

/// Mock payment gateway behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatewayConfig {
    pub min_latency: Duration,
    pub max_latency: Duration,
    /// 0.0 ..= 1.0: calls declined (nothing charged).
    pub failure_rate: f64,
    /// 0.0 ..= 1.0: calls carried out whose answer is lost (charged, but the caller hears
    /// nothing: the outcome is unknown to it).
    pub drop_rate: f64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            min_latency: Duration::ZERO,
            max_latency: Duration::from_millis(10),
            failure_rate: 0.0,
            drop_rate: 0.0,
        }
    }
}

/// What a payment locks while it charges (see `docs/payments.md`, "Lock scope").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockScope {
    /// The order only: payers of one order are serialised; payers of different orders of the
    /// same item charge in parallel, and the conditional stock write decides who gets the last
    /// unit (the others are refunded).
    Order,
    /// The order and each of its items, across the gateway calls: no card is charged for stock
    /// that runs out meanwhile, but a hot item serves one payment per gateway round trip.
    OrderAndItems,
}

/// Redis lock tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockConfig {
    /// How long a held key lives if its holder never releases it.
    pub ttl: Duration,
    /// How long to keep trying before answering 409PA001.
    pub max_wait: Duration,
}

impl Default for LockConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            max_wait: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    /// `CAFE_ENV=production`, or on Lambda unless `CAFE_ENV=development` says otherwise: secrets
    /// must be configured, and test-only overrides (the expiry job's `now`) are refused.
    pub production: bool,
    /// HS256 key. Never logged.
    pub jwt_secret: Vec<u8>,
    /// True when the secret was generated at start because none was configured (local only).
    pub jwt_secret_generated: bool,
    /// Secrets Manager secret holding the HS256 key (`JWT_SECRET_ARN`), read once at init with
    /// [`crate::secrets::fetch_jwt_secret`]. `None` when `JWT_SECRET` is set: that one wins.
    pub jwt_secret_arn: Option<String>,
    pub access_token_ttl: chrono::Duration,
    pub refresh_token_ttl: chrono::Duration,
    pub argon2: Argon2Params,
    pub table_name: String,
    pub dynamodb_endpoint: Option<String>,
    pub redis_url: Option<String>,
    pub event_bus_name: String,
    pub lock: LockConfig,
    /// `LOCK_SCOPE`: `order` (default) or `order-and-items`.
    pub lock_scope: LockScope,
    pub gateway: GatewayConfig,
    /// `PAYMENT_GATEWAY_URL`: the HTTP gateway (`cafe-pg`, or a real PG) instead of the
    /// in-process mock.
    pub payment_gateway_url: Option<String>,
    /// `PAYMENT_GATEWAY_SECRET_KEY`: the gateway's secret key (Basic auth). Never logged.
    pub payment_gateway_secret: Option<String>,
    /// `GATEWAY_TIMEOUT_MS`: one gateway call; past it the outcome is unknown.
    pub gateway_timeout: Duration,
    pub history_retention_days: i64,
    /// Timeout for one call to DynamoDB, Redis or EventBridge.
    pub dependency_timeout: Duration,
}

impl Default for Config {
    /// The embedded default with a fixed test secret; tests start from here.
    fn default() -> Self {
        Self {
            backend: Backend::Memory,
            production: false,
            jwt_secret: b"local-development-secret-not-for-production-use!!".to_vec(),
            jwt_secret_generated: false,
            jwt_secret_arn: None,
            access_token_ttl: chrono::Duration::minutes(30),
            refresh_token_ttl: chrono::Duration::days(14),
            argon2: Argon2Params::default(),
            table_name: "cafe".into(),
            dynamodb_endpoint: None,
            redis_url: None,
            event_bus_name: "cafe".into(),
            lock: LockConfig::default(),
            lock_scope: LockScope::Order,
            gateway: GatewayConfig::default(),
            payment_gateway_url: None,
            payment_gateway_secret: None,
            gateway_timeout: Duration::from_secs(3),
            history_retention_days: 400,
            dependency_timeout: Duration::from_secs(3),
        }
    }
}

/// Where configuration variables come from: the process environment, or (in tests) the
/// environment `template.yaml` gives a function.
struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// Reads a variable; an empty value counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
                Error::Internal(format!("configuration variable {name} is not valid"))
            }),
        }
    }
}

impl Config {
    /// Reads the environment. Fails (a start-up error) in production without `JWT_SECRET` or
    /// `JWT_SECRET_ARN` when the function uses the token key.
    pub fn from_env(token_key: TokenKey) -> Result<Self> {
        Self::from_vars(token_key, &|name| std::env::var(name).ok())
    }

    /// [`Config::from_env`] over any source of variables: `lookup` answers a variable's value.
    pub fn from_vars(token_key: TokenKey, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let vars = Vars(lookup);
        let on_lambda = vars.get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let production = match vars.get("CAFE_ENV").as_deref() {
            Some("production") => true,
            Some("development") => false,
            Some(_) => {
                return Err(Error::Internal(
                    "CAFE_ENV must be `production` or `development`".into(),
                ));
            }
            None => on_lambda,
        };
        let backend = match vars.get("CAFE_BACKEND").as_deref() {
            Some("memory") => Backend::Memory,
            Some("aws") => Backend::Aws,
            Some(_) => {
                return Err(Error::Internal(
                    "CAFE_BACKEND must be `memory` or `aws`".into(),
                ));
            }
            None if on_lambda => Backend::Aws,
            None => Backend::Memory,
        };
        let defaults = Config::default();
        let uses_key = token_key == TokenKey::Required;
        let configured_secret = vars.get("JWT_SECRET").filter(|_| uses_key);
        // An explicit JWT_SECRET wins over the Secrets Manager reference.
        let secret_arn = match configured_secret {
            Some(_) => None,
            None => vars.get("JWT_SECRET_ARN").filter(|_| uses_key),
        };
        let (jwt_secret, jwt_secret_generated) = match configured_secret {
            None if !uses_key => (rand::random::<[u8; 32]>().to_vec(), false),
            Some(secret) if secret.len() >= 32 => (secret.into_bytes(), false),
            Some(_) => {
                return Err(Error::Internal(
                    "JWT_SECRET must be at least 32 bytes long".into(),
                ));
            }
            // The real key is fetched at init and replaces this one. Until then an unknowable
            // random key fails closed: nothing signed with it verifies anywhere else.
            None if secret_arn.is_some() => (rand::random::<[u8; 32]>().to_vec(), false),
            None if production => {
                return Err(Error::Internal(
                    "JWT_SECRET or JWT_SECRET_ARN is required in production".into(),
                ));
            }
            None => {
                let random: [u8; 32] = rand::random();
                (random.to_vec(), true)
            }
        };
        let mut argon2 = defaults.argon2;
        if let Some(v) = vars.parse("ARGON2_MEMORY_KIB")? {
            argon2.memory_kib = v;
        }
        if let Some(v) = vars.parse("ARGON2_ITERATIONS")? {
            argon2.iterations = v;
        }
        if let Some(v) = vars.parse("ARGON2_PARALLELISM")? {
            argon2.parallelism = v;
        }
        let mut gateway = defaults.gateway;
        if let Some(v) = vars.parse::<u64>("GATEWAY_MIN_LATENCY_MS")? {
            gateway.min_latency = Duration::from_millis(v);
        }
        if let Some(v) = vars.parse::<u64>("GATEWAY_MAX_LATENCY_MS")? {
            gateway.max_latency = Duration::from_millis(v);
        }
        if gateway.max_latency < gateway.min_latency {
            gateway.max_latency = gateway.min_latency;
        }
        if let Some(v) = vars.parse::<f64>("GATEWAY_FAILURE_RATE")? {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Internal(
                    "GATEWAY_FAILURE_RATE must be between 0 and 1".into(),
                ));
            }
            gateway.failure_rate = v;
        }
        if let Some(v) = vars.parse::<f64>("GATEWAY_DROP_RATE")? {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Internal(
                    "GATEWAY_DROP_RATE must be between 0 and 1".into(),
                ));
            }
            gateway.drop_rate = v;
        }
        let mut lock = defaults.lock;
        if let Some(v) = vars.parse::<u64>("LOCK_TTL_MS")? {
            lock.ttl = Duration::from_millis(v.max(1));
        }
        if let Some(v) = vars.parse::<u64>("LOCK_WAIT_MS")? {
            lock.max_wait = Duration::from_millis(v);
        }
        Ok(Self {
            backend,
            production,
            jwt_secret,
            jwt_secret_generated,
            jwt_secret_arn: secret_arn,
            access_token_ttl: vars
                .parse::<i64>("ACCESS_TOKEN_TTL_SECONDS")?
                .map(chrono::Duration::seconds)
                .unwrap_or(defaults.access_token_ttl),
            refresh_token_ttl: vars
                .parse::<i64>("REFRESH_TOKEN_TTL_SECONDS")?
                .map(chrono::Duration::seconds)
                .unwrap_or(defaults.refresh_token_ttl),
            argon2,
            table_name: vars.get("TABLE_NAME").unwrap_or(defaults.table_name),
            dynamodb_endpoint: vars.get("DYNAMODB_ENDPOINT"),
            redis_url: vars.get("REDIS_URL"),
            event_bus_name: vars
                .get("EVENT_BUS_NAME")
                .unwrap_or(defaults.event_bus_name),
            lock,
            lock_scope: match vars.get("LOCK_SCOPE").as_deref() {
                None | Some("order") => LockScope::Order,
                Some("order-and-items") => LockScope::OrderAndItems,
                Some(_) => {
                    return Err(Error::Internal(
                        "LOCK_SCOPE must be `order` or `order-and-items`".into(),
                    ));
                }
            },
            gateway,
            payment_gateway_url: vars.get("PAYMENT_GATEWAY_URL"),
            payment_gateway_secret: vars.get("PAYMENT_GATEWAY_SECRET_KEY"),
            gateway_timeout: vars
                .parse::<u64>("GATEWAY_TIMEOUT_MS")?
                .map(|ms| Duration::from_millis(ms.max(1)))
                .unwrap_or(defaults.gateway_timeout),
            history_retention_days: vars
                .parse("HISTORY_RETENTION_DAYS")?
                .unwrap_or(defaults.history_retention_days),
            dependency_timeout: vars
                .parse::<u64>("DEPENDENCY_TIMEOUT_MS")?
                .map(Duration::from_millis)
                .unwrap_or(defaults.dependency_timeout),
        })
    }
}
