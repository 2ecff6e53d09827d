//! HS256 access tokens. Verification accepts only HS256 (so `alg: none`, HS512 and RS256 headers
//! are refused) and checks `exp` and `nbf` against the service clock, not the host clock, so
//! expiry is testable.

use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// A unique id per token, so two tokens issued in the same second still differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Signs and verifies access tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    /// A token for `member_id`, valid from `now` for the configured lifetime.
    pub fn issue(&self, member_id: &str, now: DateTime<Utc>) -> Result<String> {
        let claims = AccessTokenClaims {
            sub: member_id.to_owned(),
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
            nbf: None,
            jti: Some(crate::ids::new_id(now)),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))
    }

    /// The member id of a valid token; 401CO000 for anything else.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<String> {
        if token.is_empty() || token.len() > 4096 {
            return Err(Error::Unauthorized);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        // exp and nbf are checked below against the service clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = ["sub", "exp", "iat"]
            .into_iter()
            .map(String::from)
            .collect();
        let data = jsonwebtoken::decode::<AccessTokenClaims>(token, &self.decoding, &validation)
            .map_err(|_| Error::Unauthorized)?;
        let claims = data.claims;
        let now = now.timestamp();
        if claims.exp <= now || claims.nbf.is_some_and(|nbf| nbf > now) || claims.sub.is_empty() {
            return Err(Error::Unauthorized);
        }
        Ok(claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn signer() -> TokenSigner {
        TokenSigner::new(b"0123456789abcdef0123456789abcdef", Duration::minutes(30))
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let now = Utc::now();
        let token = signer().issue("m1", now).expect("signed");
        assert_eq!(signer().verify(&token, now).as_deref(), Ok("m1"));
        assert_eq!(
            signer().verify(&token, now + Duration::minutes(30)),
            Err(Error::Unauthorized)
        );
    }

    #[test]
    fn tampered_and_unsigned_tokens_are_refused() {
        let now = Utc::now();
        let token = signer().issue("m1", now).expect("signed");
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"m2","iat":{},"exp":{}}}"#,
            now.timestamp(),
            now.timestamp() + 600
        ));
        assert_eq!(
            signer().verify(&parts.join("."), now),
            Err(Error::Unauthorized)
        );
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(signer().verify(&unsigned, now), Err(Error::Unauthorized));
        let other = TokenSigner::new(b"another-secret-another-secret-xx", Duration::minutes(30));
        let foreign = other.issue("m1", now).expect("signed");
        assert_eq!(signer().verify(&foreign, now), Err(Error::Unauthorized));
    }
}
