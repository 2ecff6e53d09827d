//! EdDSA (Ed25519) access tokens with `kid`, `iss` and `aud`.
//!
//! Only the signing functions (sign-up, log-in, refresh) hold the private keyset; every other
//! function verifies with the public JWKS. Verification accepts only EdDSA (so `alg: none`,
//! HS256 made with the public key as a secret, and RS256 headers are refused), only a `kid` the
//! JWKS holds, this service's issuer and audience, and checks `exp` and `nbf` against the service
//! clock, not the host clock, so expiry is testable.
//!
//! Keys read from Secrets Manager are cached per process for `TOKEN_KEYS_CACHE_SECONDS` (300 by
//! default) and re-read when a token names a key the cache does not hold (at most every 10 s),
//! so a rotation reaches warm instances without a redeploy.

use super::keys::{Jwks, SigningKeyset, VerifyingKeys};
use crate::domain::Role;
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A unique id per token, so two tokens issued in the same second still differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The member's role when the token was issued; absent for customers. Staff endpoints check
    /// it and the stored member's role (docs/staff.md).
    #[serde(default, skip_serializing_if = "Role::is_customer")]
    pub role: Role,
    /// The member's session version when the token was issued (`Member::session_version`):
    /// a withdrawal, role change or log-out everywhere moves the stored one on and the
    /// token dies. Absent when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sv: u32,
}

fn is_zero(version: &u32) -> bool {
    *version == 0
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub member_id: String,
    pub role: Role,
    pub session_version: u32,
}

/// A verified token speaks for its member only within its session ([`crate::domain::member::admit`]).
impl crate::domain::member::Caller for VerifiedToken {
    fn member_id(&self) -> &str {
        &self.member_id
    }
    fn session_version(&self) -> Option<u32> {
        Some(self.session_version)
    }
}

/// A token check never re-reads the keys more often than this for an unknown `kid`: a flood of
/// forged key ids cannot turn into a flood of Secrets Manager calls.
const UNKNOWN_KID_REFETCH: std::time::Duration = std::time::Duration::from_secs(10);

/// Where a keyset comes from.
pub enum KeySource<T> {
    /// Given at start-up (tests, the embedded default, an inline variable).
    Fixed(Arc<T>),
    /// A Secrets Manager secret, read lazily and cached.
    Secret(Arc<SecretKeys<T>>),
}

impl<T> Clone for KeySource<T> {
    fn clone(&self) -> Self {
        match self {
            Self::Fixed(value) => Self::Fixed(value.clone()),
            Self::Secret(secret) => Self::Secret(secret.clone()),
        }
    }
}

/// A keyset read from a Secrets Manager secret, cached for `max_age`.
pub struct SecretKeys<T> {
    arn: String,
    client: aws_sdk_secretsmanager::Client,
    max_age: std::time::Duration,
    parse: fn(&str) -> Result<T>,
    state: tokio::sync::Mutex<Cached<T>>,
}

struct Cached<T> {
    value: Option<Arc<T>>,
    fetched_at: Option<Instant>,
}

impl<T> SecretKeys<T> {
    pub fn new(
        arn: String,
        client: aws_sdk_secretsmanager::Client,
        max_age: std::time::Duration,
        parse: fn(&str) -> Result<T>,
    ) -> Self {
        Self {
            arn,
            client,
            max_age,
            parse,
            state: tokio::sync::Mutex::new(Cached {
                value: None,
                fetched_at: None,
            }),
        }
    }

    /// The cached keys, re-read when older than `max_age` (or, with `unknown_kid`, when older
    /// than [`UNKNOWN_KID_REFETCH`]). A failed re-read keeps serving the cached keys; with none
    /// cached it answers 503.
    async fn get(&self, unknown_kid: bool) -> Result<Arc<T>> {
        let mut state = self.state.lock().await;
        let age = state.fetched_at.map(|at| at.elapsed());
        let stale = match age {
            None => true,
            Some(age) if unknown_kid => age >= UNKNOWN_KID_REFETCH,
            Some(age) => age >= self.max_age,
        };
        if stale {
            // The attempt counts as a fetch either way, so a failing Secrets Manager is asked
            // at most once per period, not once per request.
            state.fetched_at = Some(Instant::now());
            match self.fetch().await {
                Ok(value) => state.value = Some(Arc::new(value)),
                Err(err) if state.value.is_some() => {
                    tracing::warn!(error = %err, "re-reading the token keys failed; keeping the cached ones");
                }
                Err(err) => {
                    // Next request tries again.
                    state.fetched_at = None;
                    return Err(err);
                }
            }
        }
        state
            .value
            .clone()
            .ok_or(Error::Unavailable("secrets manager"))
    }

    async fn fetch(&self) -> Result<T> {
        // Boxed: the SDK call's future is deep, and every handler that checks a token would
        // otherwise nest it past the compiler's layout depth. One allocation per cache refresh.
        let fetch: std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<String>> + Send + '_>,
        > = Box::pin(crate::secrets::fetch_secret_string(&self.arn, &self.client));
        let text = fetch.await?;
        (self.parse)(&text)
    }
}

impl<T> KeySource<T> {
    async fn get(&self, unknown_kid: bool) -> Result<Arc<T>> {
        match self {
            Self::Fixed(value) => Ok(value.clone()),
            Self::Secret(secret) => secret.get(unknown_kid).await,
        }
    }
}

/// Where the verifying keys come from.
#[derive(Clone)]
pub enum Verifying {
    /// A JWKS (fixed or from the public secret).
    Jwks(KeySource<VerifyingKeysWithJwks>),
    /// The public half of this process's signing keyset (the local server signs and verifies).
    FromSigning,
}

/// Parsed decoding keys together with the JWKS they came from (served by `jwks-get`).
pub struct VerifyingKeysWithJwks {
    pub jwks: Jwks,
    pub keys: VerifyingKeys,
}

impl VerifyingKeysWithJwks {
    pub fn new(jwks: Jwks) -> Result<Self> {
        let keys = VerifyingKeys::new(&jwks)?;
        Ok(Self { jwks, keys })
    }

    pub fn parse(json: &str) -> Result<Self> {
        Self::new(Jwks::parse(json)?)
    }

    /// [`VerifyingKeysWithJwks::parse`], refusing the development keys.
    pub fn parse_for_production(json: &str) -> Result<Self> {
        Self::new(Jwks::parse_for_production(json)?)
    }
}

/// Issues and verifies access tokens.
#[derive(Clone)]
pub struct AccessTokens {
    signing: Option<KeySource<SigningKeyset>>,
    verifying: Verifying,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("signs", &self.signing.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// A signed token and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedToken {
    pub token: String,
    pub kid: String,
}

impl AccessTokens {
    pub fn new(
        signing: Option<KeySource<SigningKeyset>>,
        verifying: Verifying,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            signing,
            verifying,
            issuer: issuer.into(),
            audience: audience.into(),
            ttl,
        }
    }

    /// Signs with and verifies against one fixed keyset (tests, the embedded default).
    pub fn fixed(keyset: SigningKeyset, issuer: &str, audience: &str, ttl: Duration) -> Self {
        Self::new(
            Some(KeySource::Fixed(Arc::new(keyset))),
            Verifying::FromSigning,
            issuer,
            audience,
            ttl,
        )
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The signing keyset; 500 in a function that signs nothing, 503 while it cannot be read.
    pub async fn signing_keyset(&self) -> Result<Arc<SigningKeyset>> {
        match &self.signing {
            Some(source) => source.get(false).await,
            None => Err(Error::Internal(
                "this function holds no token signing key".into(),
            )),
        }
    }

    /// A token for `member_id` in its session `session_version`, valid from `now` for the
    /// configured lifetime, signed by the current key.
    pub async fn issue(
        &self,
        member_id: &str,
        role: Role,
        session_version: u32,
        now: DateTime<Utc>,
    ) -> Result<String> {
        let jti = crate::ids::new_id(now);
        Ok(self
            .issue_exact(member_id, role, session_version, now, &jti, None)
            .await?
            .token)
    }

    /// A token with exactly these claims, signed by `kid` while the keyset still holds it (else
    /// by the current key). Same inputs and key → the same token, byte for byte.
    pub async fn issue_exact(
        &self,
        member_id: &str,
        role: Role,
        session_version: u32,
        issued_at: DateTime<Utc>,
        jti: &str,
        kid: Option<&str>,
    ) -> Result<SignedToken> {
        let keyset = self.signing_keyset().await?;
        let key = kid
            .and_then(|kid| keyset.key(kid))
            .unwrap_or(&keyset.current);
        let claims = AccessTokenClaims {
            sub: member_id.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: issued_at.timestamp(),
            exp: (issued_at + self.ttl).timestamp(),
            nbf: None,
            jti: Some(jti.to_owned()),
            role,
            sv: session_version,
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding_key()?)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))?;
        Ok(SignedToken {
            token,
            kid: key.kid.clone(),
        })
    }

    /// The published public keys (`GET /.well-known/jwks.json`).
    pub async fn public_jwks(&self) -> Result<Jwks> {
        match &self.verifying {
            Verifying::Jwks(source) => Ok(source.get(false).await?.jwks.clone()),
            Verifying::FromSigning => self.signing_keyset().await?.public_jwks(),
        }
    }

    async fn verifying_keys(&self, unknown_kid: bool) -> Result<Arc<VerifyingKeys>> {
        match &self.verifying {
            Verifying::Jwks(source) => {
                let keys = source.get(unknown_kid).await?;
                Ok(Arc::new(keys.keys.clone()))
            }
            Verifying::FromSigning => {
                let keyset = self.signing_keyset().await?;
                Ok(Arc::new(VerifyingKeys::new(&keyset.public_jwks()?)?))
            }
        }
    }

    /// The member id of a valid token; 401CO000 for anything else.
    pub async fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<String> {
        Ok(self.verify_claims(token, now).await?.member_id)
    }

    /// The member id and role of a valid token; 401CO000 for anything else (a role claim
    /// that is not one of ours fails to decode: 401).
    pub async fn verify_claims(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedToken> {
        if token.is_empty() || token.len() > 4096 {
            return Err(Error::Unauthorized);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthorized)?;
        if header.alg != Algorithm::EdDSA {
            return Err(Error::Unauthorized);
        }
        let kid = header.kid.ok_or(Error::Unauthorized)?;
        if kid.is_empty() || kid.len() > 64 {
            return Err(Error::Unauthorized);
        }
        let mut keys = self.verifying_keys(false).await?;
        if keys.get(&kid).is_none() {
            // Perhaps a rotation this process has not seen yet.
            keys = self.verifying_keys(true).await?;
        }
        let key = keys.get(&kid).ok_or(Error::Unauthorized)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // exp and nbf are checked below against the service clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.required_spec_claims = ["sub", "exp", "iat", "iss", "aud"]
            .into_iter()
            .map(String::from)
            .collect();
        let data = jsonwebtoken::decode::<AccessTokenClaims>(token, key, &validation)
            .map_err(|_| Error::Unauthorized)?;
        let claims = data.claims;
        let now = now.timestamp();
        if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now) || claims.sub.is_empty() {
            return Err(Error::Unauthorized);
        }
        Ok(VerifiedToken {
            member_id: claims.sub,
            role: claims.role,
            session_version: claims.sv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn tokens(keyset: SigningKeyset) -> AccessTokens {
        AccessTokens::fixed(keyset, "cafe", "cafe-api", Duration::minutes(30))
    }

    fn verifier_of(keyset: &SigningKeyset, issuer: &str, audience: &str) -> AccessTokens {
        let jwks = keyset.public_jwks().expect("jwks");
        AccessTokens::new(
            None,
            Verifying::Jwks(KeySource::Fixed(Arc::new(
                VerifyingKeysWithJwks::new(jwks).expect("keys"),
            ))),
            issuer,
            audience,
            Duration::minutes(30),
        )
    }

    #[tokio::test]
    async fn issued_tokens_verify_with_the_public_keys_until_they_expire() {
        let now = Utc::now();
        let keyset = SigningKeyset::generate(now);
        let token = tokens(keyset.clone())
            .issue("m1", Role::Customer, 0, now)
            .await
            .expect("signed");
        let verifier = verifier_of(&keyset, "cafe", "cafe-api");
        assert_eq!(verifier.verify(&token, now).await.as_deref(), Ok("m1"));
        assert_eq!(
            verifier.verify(&token, now + Duration::minutes(30)).await,
            Err(Error::Unauthorized)
        );
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.kid.as_deref(), Some(keyset.current.kid.as_str()));
        // A verifier cannot sign.
        assert!(matches!(
            verifier.issue("m1", Role::Customer, 0, now).await,
            Err(Error::Internal(_))
        ));
    }

    #[tokio::test]
    async fn exact_issues_are_deterministic() {
        let now = Utc::now();
        let keyset = SigningKeyset::generate(now);
        let signer = tokens(keyset.clone());
        let one = signer
            .issue_exact("m1", Role::Customer, 0, now, "j1", None)
            .await
            .expect("one");
        let two = signer
            .issue_exact("m1", Role::Customer, 0, now, "j1", Some(&one.kid))
            .await
            .expect("two");
        assert_eq!(one, two);
        let by_next = signer
            .issue_exact("m1", Role::Customer, 0, now, "j1", Some(&keyset.next.kid))
            .await
            .expect("next");
        assert_eq!(by_next.kid, keyset.next.kid);
    }

    #[tokio::test]
    async fn foreign_keys_wrong_claims_and_other_algorithms_are_refused() {
        let now = Utc::now();
        let keyset = SigningKeyset::generate(now);
        let verifier = verifier_of(&keyset, "cafe", "cafe-api");
        let refused = |token: String| {
            let verifier = verifier.clone();
            async move { verifier.verify(&token, now).await }
        };
        // Another Ed25519 key, even under our kid.
        let mut foreign = SigningKeyset::generate(now);
        foreign.current.kid = keyset.current.kid.clone();
        let forged = tokens(foreign)
            .issue("m1", Role::Customer, 0, now)
            .await
            .expect("signed");
        assert_eq!(refused(forged).await, Err(Error::Unauthorized));
        // Our key, other issuer or audience.
        for (iss, aud) in [("evil", "cafe-api"), ("cafe", "other-api")] {
            let signer = AccessTokens::fixed(keyset.clone(), iss, aud, Duration::minutes(30));
            let token = signer
                .issue("m1", Role::Customer, 0, now)
                .await
                .expect("signed");
            assert_eq!(
                refused(token).await,
                Err(Error::Unauthorized),
                "{iss} {aud}"
            );
        }
        // HS256 keyed with the public key (algorithm confusion), and alg none.
        let claims = format!(
            r#"{{"sub":"m1","iss":"cafe","aud":"cafe-api","iat":{},"exp":{}}}"#,
            now.timestamp(),
            now.timestamp() + 600
        );
        let x = keyset.public_jwks().expect("jwks").keys[0].x.clone();
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(keyset.current.kid.clone());
        let confused = jsonwebtoken::encode(
            &hs,
            &serde_json::from_str::<serde_json::Value>(&claims).expect("json"),
            &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
        )
        .expect("signed");
        assert_eq!(refused(confused).await, Err(Error::Unauthorized));
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            keyset.current.kid
        ));
        let unsigned = format!("{none_header}.{}.", URL_SAFE_NO_PAD.encode(&claims));
        assert_eq!(refused(unsigned).await, Err(Error::Unauthorized));
        // Unknown kid, no kid.
        let mut unknown = keyset.clone();
        unknown.current.kid = "not-a-published-kid".into();
        let token = tokens(unknown)
            .issue("m1", Role::Customer, 0, now)
            .await
            .expect("signed");
        assert_eq!(refused(token).await, Err(Error::Unauthorized));
    }
}
