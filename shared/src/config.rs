//! Configuration from environment variables. Every variable is listed in the README.

pub use crate::auth::password::Argon2Params;
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

/// Which token keys a function needs. Each function crate declares its own (`TOKEN_KEY` in its
/// `lib.rs`): only sign-up, log-in and refresh hold the private keyset; the functions that check
/// tokens (and `jwks-get`) read only the public keys; the rest read neither, and their IAM
/// policies grant no access to either secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKey {
    /// Signs tokens: `TOKEN_SIGNING_KEYS_ARN` (or `TOKEN_SIGNING_KEYS`) is required in production.
    Signs,
    /// Verifies tokens: `TOKEN_VERIFYING_KEYS_ARN` (or `TOKEN_VERIFYING_KEYS`) is required in
    /// production.
    Verifies,
    /// Both (the local server, which serves every endpoint in one process).
    SignsAndVerifies,
    /// Checks no token: no key is read; an empty key set stands in, so a token check added by
    /// mistake fails closed.
    NotUsed,
}

impl TokenKey {
    fn signs(self) -> bool {
        matches!(self, Self::Signs | Self::SignsAndVerifies)
    }

    fn verifies(self) -> bool {
        matches!(self, Self::Verifies | Self::SignsAndVerifies)
    }
}

/// Whether a function moves money. Each function crate says so (`GATEWAY` in its `lib.rs`): only
/// payment, cancellation and reconciliation charge, refund or look charges up. In production a
/// function that moves money refuses to start without a real gateway, and the others get
/// `NoGateway`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayUse {
    /// Charges, refunds or reconciles.
    MovesMoney,
    /// Never calls the gateway.
    None,
}

/// Where a keyset comes from.
#[derive(Debug, Clone)]
pub enum KeySetting<T> {
    /// This function does not use it.
    None,
    /// Given inline (`TOKEN_SIGNING_KEYS` / `TOKEN_VERIFYING_KEYS`), tests and the embedded
    /// default.
    Inline(T),
    /// A Secrets Manager secret ARN, read lazily and cached.
    Secret(String),
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

/// Failed log-ins allowed per window (docs/login-throttle.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottleConfig {
    /// `LOGIN_LIMIT_PER_EMAIL`: attempts per email from clients without a device token: the
    /// bound on guessing one account's password.
    pub per_email: u32,
    /// `LOGIN_LIMIT_PER_SOURCE`: attempts per source address from clients without a device token
    /// (a shared NAT is many people).
    pub per_source: u32,
    /// `LOGIN_LIMIT_PER_DEVICE`: attempts per trusted device (a valid device token), counted
    /// apart from the email's and the address's.
    pub per_device: u32,
    /// `LOGIN_WINDOW_SECONDS`: the sliding window.
    pub window: Duration,
}

impl Default for LoginThrottleConfig {
    fn default() -> Self {
        Self {
            per_email: 10,
            per_source: 50,
            per_device: 10,
            window: Duration::from_secs(60),
        }
    }
}

/// Sign-ups allowed per source address per window: each costs a full Argon2id hash
/// (docs/login-throttle.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignupThrottleConfig {
    /// `SIGNUP_LIMIT_PER_SOURCE`: sign-ups per address (a cafe's Wi-Fi is many customers).
    pub per_source: u32,
    /// `SIGNUP_WINDOW_SECONDS`: the sliding window.
    pub window: Duration,
}

impl Default for SignupThrottleConfig {
    fn default() -> Self {
        Self {
            per_source: 20,
            window: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub backend: Backend,
    /// `CAFE_ENV=production`, or on Lambda unless `CAFE_ENV=development` says otherwise: secrets
    /// must be configured, and test-only overrides (the expiry job's `now`) are refused.
    pub production: bool,
    /// The private keyset (signing functions only). Never logged: its `Debug` hides the seeds.
    pub token_signing_keys: KeySetting<crate::auth::SigningKeyset>,
    /// The public keys (verifying functions). `None` with signing keys: their public half.
    pub token_verifying_keys: KeySetting<crate::auth::Jwks>,
    /// True when the keys were generated at start because none were configured (local only).
    pub token_keys_generated: bool,
    /// `TOKEN_ISSUER` (`iss`), `TOKEN_AUDIENCE` (`aud`).
    pub token_issuer: String,
    pub token_audience: String,
    /// `TOKEN_KEYS_CACHE_SECONDS`: how long a process keeps keys read from Secrets Manager.
    pub token_keys_cache: Duration,
    pub access_token_ttl: chrono::Duration,
    pub refresh_token_ttl: chrono::Duration,
    /// `REFRESH_REUSE_GRACE_SECONDS`: a refresh token presented again this soon after its
    /// rotation gets the same successor pair instead of revoking its family.
    pub refresh_reuse_grace: chrono::Duration,
    pub argon2: Argon2Params,
    pub table_name: String,
    /// `CREDENTIALS_TABLE_NAME`: the table of members' passwords, which has no stream. Unset =
    /// `<TABLE_NAME>-credentials`, the name `cafe-create-table` and the tests give it.
    pub credentials_table_name: Option<String>,
    pub dynamodb_endpoint: Option<String>,
    pub redis_url: Option<String>,
    /// `REDIS_AUTH_SECRET_ARN`: the Secrets Manager secret holding the lock cache's user,
    /// `{"username": …, "password": …}` (ElastiCache RBAC), read at the first Redis connection
    /// of a process that uses Redis. Required in production with `REDIS_URL`.
    pub redis_auth_secret_arn: Option<String>,
    pub event_bus_name: String,
    pub lock: LockConfig,
    pub login_throttle: LoginThrottleConfig,
    pub signup_throttle: SignupThrottleConfig,
    /// `LOCK_SCOPE`: `order` (default) or `order-and-items`.
    pub lock_scope: LockScope,
    pub gateway: GatewayConfig,
    /// `PAYMENT_GATEWAY_URL`: the HTTP gateway (`cafe-pg`, or a real PG) instead of the
    /// in-process mock.
    pub payment_gateway_url: Option<String>,
    /// `PAYMENT_GATEWAY_SECRET_KEY`: the gateway's secret key (Basic auth), inline. Never logged;
    /// refused in production.
    pub payment_gateway_secret: Option<String>,
    /// `PAYMENT_GATEWAY_SECRET_ARN`: the Secrets Manager secret holding the gateway's secret key,
    /// read once at start by the functions that move money. What production uses.
    pub payment_gateway_secret_arn: Option<String>,
    /// `GATEWAY_TIMEOUT_MS`: one gateway call; past it the outcome is unknown.
    pub gateway_timeout: Duration,
    pub history_retention_days: i64,
    /// Timeout for one call to DynamoDB, Redis or EventBridge.
    pub dependency_timeout: Duration,
    /// Where operational metrics go (EMF on Lambda; see [`crate::metrics`]).
    pub metrics: crate::metrics::MetricsConfig,
    /// The cafe floor: business day, capacity, payment window (`docs/floor.md`).
    pub floor: FloorConfig,
}

/// The cafe floor's settings (`docs/floor.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloorConfig {
    /// `SHOP_TIMEZONE`: the offset of the shop's local time; the business day (and its pickup
    /// numbers) turns over at local midnight. Default `Asia/Seoul` (+09:00).
    pub timezone: chrono::FixedOffset,
    /// `SHOP_MAX_IN_PROGRESS`: paid orders not yet `READY`, at most (default 20).
    pub max_in_progress: i64,
    /// `SHOP_MAX_OPEN_PER_MEMBER`: one member's paid orders not yet `READY`, at most (default 3).
    pub max_open_per_member: i64,
    /// `ORDER_PAYMENT_WINDOW` (seconds): a pending order older than this can no longer be paid
    /// and is moved to `EXPIRED` (default 900).
    pub payment_window: chrono::Duration,
}

impl Default for FloorConfig {
    fn default() -> Self {
        Self {
            timezone: SEOUL,
            max_in_progress: 20,
            max_open_per_member: 3,
            payment_window: chrono::Duration::minutes(15),
        }
    }
}

/// Asia/Seoul: +09:00 all year.
const SEOUL: chrono::FixedOffset = match chrono::FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("+09:00 is a valid offset"),
};

/// Zones without daylight saving time, by name: their offset never changes, so a fixed offset
/// is exact. A zone with DST needs the time-zone database (not linked: every function is its own
/// binary); give its offset instead, or add one here if it has none.
const FIXED_ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("Etc/UTC", 0),
    ("Asia/Seoul", 9 * 3600),
    ("Asia/Tokyo", 9 * 3600),
    ("Asia/Shanghai", 8 * 3600),
    ("Asia/Taipei", 8 * 3600),
    ("Asia/Hong_Kong", 8 * 3600),
    ("Asia/Singapore", 8 * 3600),
    ("Asia/Manila", 8 * 3600),
    ("Asia/Jakarta", 7 * 3600),
    ("Asia/Bangkok", 7 * 3600),
    ("Asia/Ho_Chi_Minh", 7 * 3600),
    ("Asia/Kolkata", 5 * 3600 + 1800),
    ("Asia/Dubai", 4 * 3600),
];

/// `SHOP_TIMEZONE`: a zone of [`FIXED_ZONES`] or an offset `+09:00` / `-05:30` / `Z`.
pub fn parse_timezone(text: &str) -> Option<chrono::FixedOffset> {
    let text = text.trim();
    if let Some((_, seconds)) = FIXED_ZONES.iter().find(|(name, _)| *name == text) {
        return chrono::FixedOffset::east_opt(*seconds);
    }
    if text == "Z" {
        return chrono::FixedOffset::east_opt(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let (hours, minutes) = rest.split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    chrono::FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))
}

impl Default for Config {
    /// The embedded default with a fixed development keyset; tests start from here.
    fn default() -> Self {
        Self {
            backend: Backend::Memory,
            production: false,
            token_signing_keys: KeySetting::Inline(crate::auth::SigningKeyset::development()),
            token_verifying_keys: KeySetting::None,
            token_keys_generated: false,
            token_issuer: "cafe".into(),
            token_audience: "cafe-api".into(),
            token_keys_cache: Duration::from_secs(300),
            access_token_ttl: chrono::Duration::minutes(30),
            refresh_token_ttl: chrono::Duration::days(14),
            refresh_reuse_grace: chrono::Duration::seconds(10),
            argon2: Argon2Params::default(),
            table_name: "cafe".into(),
            credentials_table_name: None,
            dynamodb_endpoint: None,
            redis_url: None,
            redis_auth_secret_arn: None,
            event_bus_name: "cafe".into(),
            lock: LockConfig::default(),
            login_throttle: LoginThrottleConfig::default(),
            signup_throttle: SignupThrottleConfig::default(),
            lock_scope: LockScope::Order,
            gateway: GatewayConfig::default(),
            payment_gateway_url: None,
            payment_gateway_secret: None,
            payment_gateway_secret_arn: None,
            gateway_timeout: Duration::from_secs(3),
            history_retention_days: 400,
            dependency_timeout: Duration::from_secs(3),
            metrics: crate::metrics::MetricsConfig::default(),
            floor: FloorConfig::default(),
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

/// What production never runs with: token keys given inline (a keyset in an environment variable
/// is in every log of the configuration and every copy of the template), a payment gateway
/// reached without TLS, or its secret key in a plain environment variable.
fn refuse_unsafe_in_production(
    signing: &KeySetting<crate::auth::SigningKeyset>,
    verifying: &KeySetting<crate::auth::Jwks>,
    gateway_url: Option<&str>,
    inline_gateway_secret: bool,
) -> Result<()> {
    let refuse = |why: &str| Err(Error::Internal(format!("refused in production: {why}")));
    if matches!(signing, KeySetting::Inline(_)) {
        return refuse("TOKEN_SIGNING_KEYS (inline keys); use TOKEN_SIGNING_KEYS_ARN");
    }
    if matches!(verifying, KeySetting::Inline(_)) {
        return refuse("TOKEN_VERIFYING_KEYS (inline keys); use TOKEN_VERIFYING_KEYS_ARN");
    }
    if inline_gateway_secret {
        return refuse(
            "PAYMENT_GATEWAY_SECRET_KEY (a plain variable); use PAYMENT_GATEWAY_SECRET_ARN",
        );
    }
    if gateway_url.is_some_and(|url| !url.starts_with("https://")) {
        return refuse("PAYMENT_GATEWAY_URL must be an https:// URL");
    }
    Ok(())
}

impl Config {
    /// Checks, before anything is built, that a function that moves money can reach a real
    /// gateway: in production `PAYMENT_GATEWAY_URL` (https, checked when read) and
    /// `PAYMENT_GATEWAY_SECRET_ARN` are required; elsewhere the mock stands in.
    pub fn check_gateway(&self, usage: GatewayUse) -> Result<()> {
        let moves_money = usage == GatewayUse::MovesMoney;
        if !(self.production && moves_money) {
            return Ok(());
        }
        if self.payment_gateway_url.is_none() || self.payment_gateway_secret_arn.is_none() {
            return Err(Error::Internal(
                "refused in production: a function that charges, refunds or reconciles needs \
                 PAYMENT_GATEWAY_URL (https) and PAYMENT_GATEWAY_SECRET_ARN; the mock gateway \
                 never runs in production"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Reads the environment. Fails (a start-up error) in production without the token keys the
    /// function needs (`token_key`), and on a keyset that does not parse.
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
        let signing = match (
            vars.get("TOKEN_SIGNING_KEYS").filter(|_| token_key.signs()),
            vars.get("TOKEN_SIGNING_KEYS_ARN")
                .filter(|_| token_key.signs()),
        ) {
            // An inline keyset wins over the Secrets Manager reference.
            (Some(json), _) => KeySetting::Inline(crate::auth::SigningKeyset::parse(&json)?),
            (None, Some(arn)) => KeySetting::Secret(arn),
            (None, None) => KeySetting::None,
        };
        let verifying = match (
            vars.get("TOKEN_VERIFYING_KEYS")
                .filter(|_| token_key.verifies()),
            vars.get("TOKEN_VERIFYING_KEYS_ARN")
                .filter(|_| token_key.verifies()),
        ) {
            (Some(json), _) => KeySetting::Inline(crate::auth::Jwks::parse(&json)?),
            (None, Some(arn)) => KeySetting::Secret(arn),
            (None, None) => KeySetting::None,
        };
        let signing_missing = token_key.signs() && matches!(signing, KeySetting::None);
        // A function that signs verifies with its own keys' public half when given no JWKS.
        let verifying_missing = token_key.verifies()
            && matches!(verifying, KeySetting::None)
            && matches!(signing, KeySetting::None);
        let (signing, token_keys_generated) = if signing_missing || verifying_missing {
            if production {
                return Err(Error::Internal(if signing_missing {
                    "TOKEN_SIGNING_KEYS_ARN is required in production for a function that signs tokens".into()
                } else {
                    "TOKEN_VERIFYING_KEYS_ARN is required in production for a function that verifies tokens".into()
                }));
            }
            // Local only: keys that die with the process.
            (
                KeySetting::Inline(crate::auth::SigningKeyset::generate(chrono::Utc::now())),
                true,
            )
        } else {
            (signing, false)
        };
        let payment_gateway_url = vars.get("PAYMENT_GATEWAY_URL");
        let payment_gateway_secret = vars.get("PAYMENT_GATEWAY_SECRET_KEY");
        if production {
            refuse_unsafe_in_production(
                &signing,
                &verifying,
                payment_gateway_url.as_deref(),
                payment_gateway_secret.is_some(),
            )?;
            // The lock cache is reached as its own user (ElastiCache RBAC), never as `default`.
            if vars.get("REDIS_URL").is_some() && vars.get("REDIS_AUTH_SECRET_ARN").is_none() {
                return Err(Error::Internal(
                    "refused in production: REDIS_URL without REDIS_AUTH_SECRET_ARN (the lock \
                     cache's user and password); the cache's default user is disabled"
                        .into(),
                ));
            }
        }
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
        let mut login_throttle = defaults.login_throttle;
        if let Some(v) = vars.parse::<u32>("LOGIN_LIMIT_PER_EMAIL")? {
            login_throttle.per_email = v;
        }
        if let Some(v) = vars.parse::<u32>("LOGIN_LIMIT_PER_SOURCE")? {
            login_throttle.per_source = v;
        }
        if let Some(v) = vars.parse::<u32>("LOGIN_LIMIT_PER_DEVICE")? {
            login_throttle.per_device = v;
        }
        if let Some(v) = vars.parse::<u64>("LOGIN_WINDOW_SECONDS")? {
            login_throttle.window = Duration::from_secs(v.max(1));
        }
        let mut signup_throttle = defaults.signup_throttle;
        if let Some(v) = vars.parse::<u32>("SIGNUP_LIMIT_PER_SOURCE")? {
            signup_throttle.per_source = v;
        }
        if let Some(v) = vars.parse::<u64>("SIGNUP_WINDOW_SECONDS")? {
            signup_throttle.window = Duration::from_secs(v.max(1));
        }
        Ok(Self {
            backend,
            production,
            token_signing_keys: signing,
            token_verifying_keys: verifying,
            token_keys_generated,
            token_issuer: vars.get("TOKEN_ISSUER").unwrap_or(defaults.token_issuer),
            token_audience: vars
                .get("TOKEN_AUDIENCE")
                .unwrap_or(defaults.token_audience),
            token_keys_cache: vars
                .parse::<u64>("TOKEN_KEYS_CACHE_SECONDS")?
                .map(Duration::from_secs)
                .unwrap_or(defaults.token_keys_cache),
            access_token_ttl: vars
                .parse::<i64>("ACCESS_TOKEN_TTL_SECONDS")?
                .map(chrono::Duration::seconds)
                .unwrap_or(defaults.access_token_ttl),
            refresh_token_ttl: vars
                .parse::<i64>("REFRESH_TOKEN_TTL_SECONDS")?
                .map(chrono::Duration::seconds)
                .unwrap_or(defaults.refresh_token_ttl),
            refresh_reuse_grace: vars
                .parse::<i64>("REFRESH_REUSE_GRACE_SECONDS")?
                .map(chrono::Duration::seconds)
                .unwrap_or(defaults.refresh_reuse_grace),
            argon2,
            table_name: vars.get("TABLE_NAME").unwrap_or(defaults.table_name),
            credentials_table_name: vars.get("CREDENTIALS_TABLE_NAME"),
            dynamodb_endpoint: vars.get("DYNAMODB_ENDPOINT"),
            redis_url: vars.get("REDIS_URL"),
            redis_auth_secret_arn: vars.get("REDIS_AUTH_SECRET_ARN"),
            event_bus_name: vars
                .get("EVENT_BUS_NAME")
                .unwrap_or(defaults.event_bus_name),
            lock,
            login_throttle,
            signup_throttle,
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
            payment_gateway_url,
            payment_gateway_secret,
            payment_gateway_secret_arn: vars.get("PAYMENT_GATEWAY_SECRET_ARN"),
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
            metrics: crate::metrics::MetricsConfig::from_vars(lookup).map_err(Error::Internal)?,
            floor: FloorConfig::from_vars(&vars, defaults.floor)?,
        })
    }
}

impl FloorConfig {
    fn from_vars(vars: &Vars<'_>, defaults: FloorConfig) -> Result<Self> {
        let timezone = match vars.get("SHOP_TIMEZONE") {
            None => defaults.timezone,
            Some(text) => parse_timezone(&text).ok_or_else(|| {
                Error::Internal(
                    "SHOP_TIMEZONE must be a zone without daylight saving time (Asia/Seoul, UTC, …) or an offset like +09:00".into(),
                )
            })?,
        };
        let positive = |name: &str, default: i64| -> Result<i64> {
            match vars.parse::<i64>(name)? {
                None => Ok(default),
                Some(v) if v >= 1 => Ok(v),
                Some(_) => Err(Error::Internal(format!("{name} must be at least 1"))),
            }
        };
        Ok(Self {
            timezone,
            max_in_progress: positive("SHOP_MAX_IN_PROGRESS", defaults.max_in_progress)?,
            max_open_per_member: positive(
                "SHOP_MAX_OPEN_PER_MEMBER",
                defaults.max_open_per_member,
            )?,
            payment_window: chrono::Duration::seconds(positive(
                "ORDER_PAYMENT_WINDOW",
                defaults.payment_window.num_seconds(),
            )?),
        })
    }
}
