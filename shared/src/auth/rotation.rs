//! Rotating the token keys in Secrets Manager (`cafe-keys rotate`): next → current → previous,
//! a new next, the public set written before the private one.
//!
//! Why this order never fails a valid token:
//! - the key that starts signing (the old `next`) was published one rotation earlier, so every
//!   verifier knows it even with a cache as old as `TOKEN_KEYS_CACHE_SECONDS`;
//! - the key that stops signing (the old `current`) stays published as `previous` until the next
//!   rotation, which may not come before its last tokens have expired: the refusal below keeps
//!   rotations at least `min_interval` (default one hour, above the 30-minute token lifetime plus
//!   the 5-minute key cache) apart, unless forced (a compromised key);
//! - a signer whose private cache is stale keeps signing with the old current for up to the cache
//!   age: it is published as `previous`.

use super::keys::{Jwks, SigningKeyset};
use crate::error::{Error, Result};
use chrono::{DateTime, Duration, Utc};
use tracing::Instrument;

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationReport {
    /// False on the first run: there was no keyset, one was created.
    pub rotated: bool,
    pub current_kid: String,
    pub next_kid: String,
    pub previous_kid: Option<String>,
    /// The published key ids, in the order of the JWKS.
    pub published: Vec<String>,
}

/// The keyset's `next` must have been published at least this long before it may start signing.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::hours(1);

/// The keyset in `signing_arn`, `None` when the secret has no value yet (first deploy).
pub async fn read_signing_keyset(
    client: &aws_sdk_secretsmanager::Client,
    signing_arn: &str,
) -> Result<Option<SigningKeyset>> {
    let output = client
        .get_secret_value()
        .secret_id(signing_arn)
        .send()
        .instrument(crate::spans::dependency_span(
            "secretsmanager",
            "GetSecretValue",
        ))
        .await;
    match output {
        Ok(output) => match output.secret_string() {
            Some(text) if !text.trim().is_empty() => SigningKeyset::parse(text).map(Some),
            _ => Ok(None),
        },
        Err(err) => {
            let not_found = err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            if not_found {
                // The secret exists without a value (the template creates it empty), or not at
                // all: the write below says which.
                Ok(None)
            } else {
                let cause = aws_sdk_secretsmanager::error::DisplayErrorContext(&err);
                Err(Error::Internal(format!(
                    "reading the signing keyset failed: {cause}"
                )))
            }
        }
    }
}

/// The next keyset: the first one when `existing` is `None`, else `existing` rotated. Refuses
/// when `existing.next` was published less than `min_interval` ago, unless `force`.
pub fn plan_rotation(
    existing: Option<&SigningKeyset>,
    now: DateTime<Utc>,
    min_interval: Duration,
    force: bool,
) -> Result<SigningKeyset> {
    match existing {
        None => Ok(SigningKeyset::generate(now)),
        Some(keyset) => {
            let published_for = now - keyset.next.created_at;
            if published_for < min_interval && !force {
                return Err(Error::Internal(format!(
                    "the next key {} was published {} s ago; rotating before {} s would drop \
                     the previous key while tokens it signed may still be valid, or start signing \
                     with a key some verifiers have not read yet. Wait, or pass --force for a \
                     compromised key",
                    keyset.next.kid,
                    published_for.num_seconds(),
                    min_interval.num_seconds()
                )));
            }
            Ok(keyset.rotated(now))
        }
    }
}

/// Rotates the keys in the two secrets: reads the private keyset, plans, writes the public JWKS
/// to `verifying_arn`, then the private keyset to `signing_arn`.
pub async fn rotate(
    client: &aws_sdk_secretsmanager::Client,
    signing_arn: &str,
    verifying_arn: &str,
    now: DateTime<Utc>,
    min_interval: Duration,
    force: bool,
) -> Result<RotationReport> {
    let existing = read_signing_keyset(client, signing_arn).await?;
    let keyset = plan_rotation(existing.as_ref(), now, min_interval, force)?;
    let jwks = keyset.public_jwks()?;
    put(client, verifying_arn, &jwks_json(&jwks)?).await?;
    put(client, signing_arn, &keyset.to_json()).await?;
    Ok(RotationReport {
        rotated: existing.is_some(),
        current_kid: keyset.current.kid.clone(),
        next_kid: keyset.next.kid.clone(),
        previous_kid: keyset.previous.as_ref().map(|k| k.kid.clone()),
        published: jwks.keys.iter().map(|k| k.kid.clone()).collect(),
    })
}

/// The JWKS as the public secret and `GET /.well-known/jwks.json` hold it.
pub fn jwks_json(jwks: &Jwks) -> Result<String> {
    serde_json::to_string(jwks).map_err(|e| Error::Internal(format!("JWKS not serialisable: {e}")))
}

async fn put(client: &aws_sdk_secretsmanager::Client, arn: &str, value: &str) -> Result<()> {
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(value)
        .send()
        .instrument(crate::spans::dependency_span(
            "secretsmanager",
            "PutSecretValue",
        ))
        .await
        .map_err(|err| {
            let cause = aws_sdk_secretsmanager::error::DisplayErrorContext(&err);
            Error::Internal(format!("writing secret {arn} failed: {cause}"))
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_young_next_key_is_not_rotated_in_unless_forced() {
        let t0 = crate::testing::epoch();
        let first = plan_rotation(None, t0, DEFAULT_MIN_INTERVAL, false).expect("first");
        let early = t0 + Duration::minutes(59);
        assert!(plan_rotation(Some(&first), early, DEFAULT_MIN_INTERVAL, false).is_err());
        let forced =
            plan_rotation(Some(&first), early, DEFAULT_MIN_INTERVAL, true).expect("forced");
        assert_eq!(forced.current.kid, first.next.kid);
        let later = t0 + Duration::hours(1);
        let second = plan_rotation(Some(&first), later, DEFAULT_MIN_INTERVAL, false).expect("due");
        assert_eq!(second.current.kid, first.next.kid);
        assert_eq!(second.previous.map(|k| k.kid), Some(first.current.kid));
    }
}
