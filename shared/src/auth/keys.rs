//! Ed25519 token keys: the private keyset only the signing functions hold, the public JWKS every
//! verifier reads, and their rotation.
//!
//! A keyset holds three keys. `current` signs; `next` is already published, so every verifier
//! knows it before it signs anything; `previous` signed until the last rotation and stays
//! published until the tokens it signed have expired. Rotation moves next → current → previous
//! and creates a new next. Written in that order (public first, then private), no verifier ever
//! sees a token signed by a key it has not been told about, even with a stale cache.
//!
//! Ed25519 is deterministic: one key and one set of claims always give the same token, which is
//! what lets two concurrent refreshes of one refresh token answer the same pair.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// PKCS#8 v1 wrapping of a 32-byte Ed25519 seed (RFC 8410): this prefix, then the seed.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// More keys than this in a JWKS is a misconfiguration, not a rotation.
const MAX_PUBLISHED_KEYS: usize = 8;

/// One Ed25519 key pair with its id.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    pub kid: String,
    /// The 32-byte private seed, base64url.
    seed: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key created at `now`.
    pub fn generate(now: DateTime<Utc>) -> Self {
        Self::from_seed(rand::random(), now)
    }

    fn from_seed(seed: [u8; 32], now: DateTime<Utc>) -> Self {
        let public = public_key_of(&seed);
        // A key id that says nothing about the key but is unique to it: its public key's hash.
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(public))[..16].to_owned();
        Self {
            kid,
            seed: URL_SAFE_NO_PAD.encode(seed),
            created_at: now,
        }
    }

    fn seed_bytes(&self) -> Result<[u8; 32]> {
        URL_SAFE_NO_PAD
            .decode(&self.seed)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or_else(|| Error::Internal(format!("token key {} has no valid seed", self.kid)))
    }

    /// The key jsonwebtoken signs with.
    pub fn encoding_key(&self) -> Result<EncodingKey> {
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&self.seed_bytes()?);
        Ok(EncodingKey::from_ed_der(&der))
    }

    /// The public half, as a JWK.
    pub fn public_jwk(&self) -> Result<PublicJwk> {
        Ok(PublicJwk::ed25519(
            &self.kid,
            &public_key_of(&self.seed_bytes()?),
        ))
    }
}

fn public_key_of(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

/// What the private secret holds (`TOKEN_SIGNING_KEYS_ARN`): the keys and the refresh secret.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyset {
    pub current: SigningKey,
    pub next: SigningKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<SigningKey>,
    /// HMAC key deriving a refresh token's successor from the token itself (see
    /// [`SigningKeyset::refresh_successor`]); kept across rotations.
    refresh_secret: String,
}

impl std::fmt::Debug for SigningKeyset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyset")
            .field("current", &self.current)
            .field("next", &self.next)
            .field("previous", &self.previous)
            .finish_non_exhaustive()
    }
}

impl SigningKeyset {
    /// A first keyset: a current and a next key, no previous.
    pub fn generate(now: DateTime<Utc>) -> Self {
        Self {
            current: SigningKey::generate(now),
            next: SigningKey::generate(now),
            previous: None,
            refresh_secret: URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
        }
    }

    /// A fixed keyset for tests and `Config::default()`, so tokens made by one test process
    /// verify in another. Never accepted in production: production reads its keys explicitly.
    pub fn development() -> Self {
        let seed = |label: &str| -> [u8; 32] { Sha256::digest(label.as_bytes()).into() };
        let created = DateTime::<Utc>::UNIX_EPOCH;
        Self {
            current: SigningKey::from_seed(seed("cafe-development-key-current"), created),
            next: SigningKey::from_seed(seed("cafe-development-key-next"), created),
            previous: None,
            refresh_secret: URL_SAFE_NO_PAD.encode(seed("cafe-development-refresh-secret")),
        }
    }

    /// True when any of its keys is one of [`SigningKeyset::development`]'s: a keyset whose
    /// private halves are in this repository.
    pub fn holds_development_key(&self) -> bool {
        let development = development_kids();
        self.keys().any(|key| development.contains(&key.kid))
    }

    /// [`SigningKeyset::parse`], refusing the development keyset: what production reads.
    pub fn parse_for_production(json: &str) -> Result<Self> {
        let keyset = Self::parse(json)?;
        if keyset.holds_development_key() {
            return Err(Error::Internal(
                "the token signing keyset holds a development key, refused in production".into(),
            ));
        }
        Ok(keyset)
    }

    /// Parses and checks the private secret's JSON.
    pub fn parse(json: &str) -> Result<Self> {
        let keyset: Self = serde_json::from_str(json).map_err(|e| {
            // serde's message names the field, never a value.
            Error::Internal(format!("the token signing keyset is not valid: {e}"))
        })?;
        for key in keyset.keys() {
            key.seed_bytes()?;
        }
        keyset.refresh_secret_bytes()?;
        if keyset.current.kid == keyset.next.kid {
            return Err(Error::Internal(
                "the token signing keyset's current and next keys are the same".into(),
            ));
        }
        Ok(keyset)
    }

    pub fn to_json(&self) -> String {
        // A struct of strings and timestamps always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }

    fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        [
            Some(&self.current),
            Some(&self.next),
            self.previous.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// The key with id `kid`, if this keyset still holds it.
    pub fn key(&self, kid: &str) -> Option<&SigningKey> {
        self.keys().find(|key| key.kid == kid)
    }

    /// The next keyset: next → current → previous, a new next created at `now`.
    pub fn rotated(&self, now: DateTime<Utc>) -> Self {
        Self {
            previous: Some(self.current.clone()),
            current: self.next.clone(),
            next: SigningKey::generate(now),
            refresh_secret: self.refresh_secret.clone(),
        }
    }

    /// The public keys verifiers accept: previous, current and next.
    pub fn public_jwks(&self) -> Result<Jwks> {
        Ok(Jwks {
            keys: self
                .keys()
                .map(SigningKey::public_jwk)
                .collect::<Result<_>>()?,
        })
    }

    fn refresh_secret_bytes(&self) -> Result<Vec<u8>> {
        URL_SAFE_NO_PAD
            .decode(&self.refresh_secret)
            .ok()
            .filter(|bytes| bytes.len() >= 32)
            .ok_or_else(|| {
                Error::Internal("the token signing keyset's refresh secret is not valid".into())
            })
    }

    /// HMAC-SHA256 of `payload` under the refresh secret, in the device tokens' own domain
    /// (`crate::auth::device`): every signer computes and checks the same MAC, nobody without
    /// the secret can.
    pub fn device_mac(&self, payload: &str) -> Result<String> {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.refresh_secret_bytes()?)
            .map_err(|_| Error::Internal("refresh secret rejected by HMAC".into()))?;
        mac.update(b"cafe device token\0");
        mac.update(payload.as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The refresh token that succeeds `presented`: HMAC-SHA256 under the refresh secret, so
    /// every signer computes the same successor for the same token, and nobody without the
    /// secret can compute it.
    pub fn refresh_successor(&self, presented: &str) -> Result<String> {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.refresh_secret_bytes()?)
            .map_err(|_| Error::Internal("refresh secret rejected by HMAC".into()))?;
        mac.update(b"cafe refresh successor\0");
        mac.update(presented.as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// One public key as JWKS publishes it (RFC 8037: `OKP`, `Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
}

impl PublicJwk {
    fn ed25519(kid: &str, public: &[u8; 32]) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(public),
            kid: kid.to_owned(),
            key_use: Some("sig".into()),
            alg: Some("EdDSA".into()),
        }
    }
}

/// The public secret's JSON (`TOKEN_VERIFYING_KEYS_ARN`), and what
/// `GET /.well-known/jwks.json` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

/// The key ids of [`SigningKeyset::development`]: public, since its seeds are in this repository.
fn development_kids() -> Vec<String> {
    SigningKeyset::development()
        .keys()
        .map(|key| key.kid.clone())
        .collect()
}

impl Jwks {
    /// True when it publishes a key of [`SigningKeyset::development`].
    pub fn holds_development_key(&self) -> bool {
        let development = development_kids();
        self.keys.iter().any(|jwk| development.contains(&jwk.kid))
    }

    /// [`Jwks::parse`], refusing the development keys: what production reads.
    pub fn parse_for_production(json: &str) -> Result<Self> {
        let jwks = Self::parse(json)?;
        if jwks.holds_development_key() {
            return Err(Error::Internal(
                "the token verifying keys hold a development key, refused in production".into(),
            ));
        }
        Ok(jwks)
    }

    pub fn parse(json: &str) -> Result<Self> {
        let jwks: Self = serde_json::from_str(json)
            .map_err(|e| Error::Internal(format!("the token verifying keys are not valid: {e}")))?;
        VerifyingKeys::new(&jwks)?;
        Ok(jwks)
    }
}

/// The decoding keys of a JWKS by key id.
#[derive(Clone, Default)]
pub struct VerifyingKeys {
    by_kid: HashMap<String, DecodingKey>,
}

impl VerifyingKeys {
    /// Checks every key (Ed25519, a 32-byte `x`, a unique non-empty `kid`): a JWKS that does
    /// not check is refused whole.
    pub fn new(jwks: &Jwks) -> Result<Self> {
        if jwks.keys.len() > MAX_PUBLISHED_KEYS {
            return Err(Error::Internal(format!(
                "the token verifying keys hold more than {MAX_PUBLISHED_KEYS} keys"
            )));
        }
        let mut by_kid = HashMap::new();
        for jwk in &jwks.keys {
            let invalid = |why: &str| Error::Internal(format!("token key {:?}: {why}", jwk.kid));
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" {
                return Err(invalid("not an Ed25519 key"));
            }
            if jwk.alg.as_deref().is_some_and(|alg| alg != "EdDSA") {
                return Err(invalid("not an EdDSA key"));
            }
            if jwk.kid.is_empty() || jwk.kid.len() > 64 {
                return Err(invalid("missing or over-long kid"));
            }
            // jsonwebtoken reads the first 32 bytes of `x` and panics on fewer.
            let x_len = URL_SAFE_NO_PAD.decode(&jwk.x).map(|x| x.len());
            if x_len != Ok(32) {
                return Err(invalid("x is not a 32-byte public key"));
            }
            let key = DecodingKey::from_ed_components(&jwk.x)
                .map_err(|_| invalid("x is not base64url"))?;
            if by_kid.insert(jwk.kid.clone(), key).is_some() {
                return Err(invalid("kid appears twice"));
            }
        }
        Ok(Self { by_kid })
    }

    pub fn get(&self, kid: &str) -> Option<&DecodingKey> {
        self.by_kid.get(kid)
    }

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.by_kid.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyset_survives_its_json_and_hides_its_seeds_from_debug() {
        let keyset = SigningKeyset::generate(Utc::now());
        let parsed = SigningKeyset::parse(&keyset.to_json()).expect("parses");
        assert_eq!(parsed.current.kid, keyset.current.kid);
        assert_eq!(parsed.to_json(), keyset.to_json());
        let debug = format!("{keyset:?}");
        assert!(!debug.contains(&keyset.current.seed), "{debug}");
        assert!(!debug.contains(&keyset.refresh_secret), "{debug}");
    }

    #[test]
    fn rotation_keeps_the_published_chain_and_the_refresh_secret() {
        let first = SigningKeyset::generate(Utc::now());
        let second = first.rotated(Utc::now());
        assert_eq!(second.current.kid, first.next.kid);
        assert_eq!(
            second.previous.as_ref().map(|k| k.kid.as_str()),
            Some(first.current.kid.as_str())
        );
        assert_ne!(second.next.kid, first.next.kid);
        assert_eq!(
            second.refresh_successor("t").ok(),
            first.refresh_successor("t").ok()
        );
        // What the new current signs, the old published set already accepted.
        let old_public = VerifyingKeys::new(&first.public_jwks().expect("jwks")).expect("keys");
        assert!(old_public.get(&second.current.kid).is_some());
        let third = second.rotated(Utc::now());
        let kids: Vec<String> = third
            .public_jwks()
            .expect("jwks")
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert!(!kids.contains(&first.current.kid), "rotated out");
        assert_eq!(kids.len(), 3);
    }

    #[test]
    fn malformed_keysets_and_jwks_are_refused() {
        let keyset = SigningKeyset::generate(Utc::now());
        let mut value: serde_json::Value = serde_json::from_str(&keyset.to_json()).expect("json");
        value["current"]["seed"] = "c2hvcnQ".into();
        assert!(SigningKeyset::parse(&value.to_string()).is_err());
        assert!(SigningKeyset::parse("{}").is_err());

        let mut jwks = keyset.public_jwks().expect("jwks");
        jwks.keys[0].x = URL_SAFE_NO_PAD.encode([1u8; 16]);
        assert!(VerifyingKeys::new(&jwks).is_err(), "a short x would panic");
        let mut jwks = keyset.public_jwks().expect("jwks");
        jwks.keys[1].kid = jwks.keys[0].kid.clone();
        assert!(VerifyingKeys::new(&jwks).is_err());
        let mut jwks = keyset.public_jwks().expect("jwks");
        jwks.keys[0].crv = "P-256".into();
        assert!(VerifyingKeys::new(&jwks).is_err());
    }

    #[test]
    fn successors_are_deterministic_and_keyed() {
        let one = SigningKeyset::generate(Utc::now());
        let other = SigningKeyset::generate(Utc::now());
        let token = crate::auth::refresh::new_refresh_token();
        let successor = one.refresh_successor(&token).expect("successor");
        assert_eq!(one.refresh_successor(&token).ok(), Some(successor.clone()));
        assert_ne!(
            other.refresh_successor(&token).ok(),
            Some(successor.clone())
        );
        assert!(crate::auth::refresh::is_well_formed(&successor));
    }
}
