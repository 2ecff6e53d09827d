//! Refresh tokens (stored by hash) and their families. Rotation is one transaction: the
//! presented token marked used (only if it was not), the family checked not revoked, the
//! successor stored. Presenting a used token revokes the family.

use super::tx::Expr;
use super::written::{WRITE_TOKEN, fresh_token, written_by};
use super::{DynamoStore, TxItems, key, shape_error, table};
use crate::error::{Error, Result};
use crate::store::dynamo::Attrs;
use crate::store::{
    RefreshRotation, RefreshTokenRecord, RefreshTokenStore, RotationMark, replay_allowed,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

const TOKEN_SK: &str = "REFRESH";
const FAMILY_SK: &str = "FAMILY";

fn token_pk(hash: &str) -> String {
    format!("REFRESH#{hash}")
}

fn family_pk(family_id: &str) -> String {
    format!("FAMILY#{family_id}")
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRow {
    pk: String,
    sk: String,
    member_id: String,
    family_id: String,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    used: bool,
    /// Set by the rotation: when, into which successor, signed by which key (the grace replay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    successor_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signing_kid: Option<String>,
    /// The member's session version the family began under (0 on rows written before).
    #[serde(default)]
    session_version: u32,
    /// DynamoDB deletes the row once the token can no longer be used.
    ttl: i64,
}

/// The stored row of a refresh token.
pub(crate) fn token_row(record: &RefreshTokenRecord) -> Result<Attrs> {
    to_item(TokenRow::new(record)).map_err(shape_error)
}

impl TokenRow {
    fn new(record: &RefreshTokenRecord) -> Self {
        Self {
            pk: token_pk(&record.token_hash),
            sk: TOKEN_SK.into(),
            member_id: record.member_id.clone(),
            family_id: record.family_id.clone(),
            issued_at: record.issued_at,
            expires_at: record.expires_at,
            used: false,
            used_at: None,
            successor_hash: None,
            signing_kid: None,
            session_version: record.session_version,
            ttl: record.expires_at.timestamp(),
        }
    }
}

impl DynamoStore {
    async fn read_token(&self, hash: &str) -> Result<Option<TokenRow>> {
        match self.raw_item(&token_pk(hash), TOKEN_SK).await? {
            Some(item) => from_item(item).map(Some).map_err(shape_error),
            None => Ok(None),
        }
    }

    async fn family_revoked(&self, family_id: &str) -> Result<bool> {
        Ok(self
            .raw_item(&family_pk(family_id), FAMILY_SK)
            .await?
            .is_some_and(|item| item.contains_key("revoked")))
    }

    /// The first rotation of `used` again, when `next_hash` repeats it within the grace window
    /// and the family still stands; `None` when this reuse must revoke the family.
    async fn replay(
        &self,
        used: &TokenRow,
        next_hash: &str,
        now: DateTime<Utc>,
        next_expires_at: DateTime<Utc>,
        mark: &RotationMark,
    ) -> Result<Option<RefreshRotation>> {
        let Some(used_at) = replay_allowed(
            used.used_at,
            used.successor_hash.as_deref(),
            next_hash,
            now,
            mark.grace,
        ) else {
            return Ok(None);
        };
        let Some(kid) = used.signing_kid.clone() else {
            return Ok(None);
        };
        if self.family_revoked(&used.family_id).await? {
            return Ok(None);
        }
        Ok(Some(RefreshRotation {
            successor: RefreshTokenRecord {
                token_hash: next_hash.to_owned(),
                member_id: used.member_id.clone(),
                family_id: used.family_id.clone(),
                issued_at: used_at,
                expires_at: next_expires_at,
                session_version: used.session_version,
            },
            rotated_at: used_at,
            signing_kid: kid,
            replayed: true,
        }))
    }

    /// Marks a family revoked. The marker outlives every token of the family: none can
    /// expire later than one token lifetime after now.
    async fn revoke_family(
        &self,
        token: &TokenRow,
        now: DateTime<Utc>,
        why: Revoked,
    ) -> Result<()> {
        let lifetime = (token.expires_at - token.issued_at).max(Duration::zero());
        let mut item = key(family_pk(&token.family_id), FAMILY_SK);
        item.insert("revoked".into(), AttributeValue::Bool(true));
        item.insert(
            table::TTL_ATTRIBUTE.into(),
            super::n((now + lifetime + Duration::days(1)).timestamp()),
        );
        match why {
            Revoked::Reused => tracing::warn!("refresh token reused; family revoked"),
            Revoked::LoggedOut => tracing::info!("logged out; refresh family revoked"),
        }
        self.put_raw(item).await
    }
}

/// Why a family is revoked (only the log line differs).
#[derive(Clone, Copy)]
enum Revoked {
    Reused,
    LoggedOut,
}

#[async_trait]
impl RefreshTokenStore for DynamoStore {
    async fn revoke_refresh_family(
        &self,
        presented_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let Some(presented) = self.read_token(presented_hash).await? else {
            return Ok(None);
        };
        // The marker is one PutItem: re-sent after a late answer it writes the same thing.
        self.revoke_family(&presented, now, Revoked::LoggedOut)
            .await?;
        Ok(Some(presented.member_id))
    }

    async fn store_refresh_token(&self, record: &RefreshTokenRecord) -> Result<()> {
        let item = token_row(record)?;
        self.put_raw(item).await
    }

    async fn rotate_refresh_token_marked(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        next_expires_at: DateTime<Utc>,
        mark: &RotationMark,
    ) -> Result<RefreshRotation> {
        let presented = self
            .read_token(presented_hash)
            .await?
            .ok_or(Error::Unauthorized)?;
        if presented.used {
            if let Some(replay) = self
                .replay(&presented, next_hash, now, next_expires_at, mark)
                .await?
            {
                return Ok(replay);
            }
            self.revoke_family(&presented, now, Revoked::Reused).await?;
            return Err(Error::Unauthorized);
        }
        if presented.expires_at <= now {
            return Err(Error::Unauthorized);
        }
        let next = RefreshTokenRecord {
            token_hash: next_hash.to_owned(),
            member_id: presented.member_id.clone(),
            family_id: presented.family_id.clone(),
            issued_at: now,
            expires_at: next_expires_at,
            session_version: presented.session_version,
        };
        let token = fresh_token();
        let mut tx = TxItems::new(self);
        let mark_used = tx.update(
            key(token_pk(presented_hash), TOKEN_SK),
            "SET #used = :true, #usedAt = :usedAt, #successor = :successor, #kid = :kid, \
             #writeToken = :writeToken",
            Some("attribute_exists(#pk) AND #used = :false"),
            Expr::new()
                .name("#pk", table::PK)
                .name("#used", "used")
                .name("#usedAt", "usedAt")
                .name("#successor", "successorHash")
                .name("#kid", "signingKid")
                .value(":true", AttributeValue::Bool(true))
                .value(":false", AttributeValue::Bool(false))
                .value(":usedAt", AttributeValue::S(crate::clock::rfc3339(now)))
                .value(":successor", AttributeValue::S(next_hash.to_owned()))
                .value(":kid", AttributeValue::S(mark.signing_kid.clone()))
                .name("#writeToken", WRITE_TOKEN)
                .value(":writeToken", AttributeValue::S(token.clone())),
        )?;
        tx.check(
            key(family_pk(&presented.family_id), FAMILY_SK),
            "attribute_not_exists(#revoked)",
            Expr::new().name("#revoked", "revoked"),
        )?;
        tx.put_new(to_item(TokenRow::new(&next)).map_err(shape_error)?)?;
        // Marked used by this very call (its token): the SDK re-sent the transaction after a
        // late answer. Not a replay, whatever the grace window.
        let ours = |reasons: &[super::Reason]| {
            written_by(reasons.get(mark_used).and_then(|r| r.old.as_ref()), &token)
        };
        match tx.commit().await? {
            Err(reasons) if !ours(&reasons) => {
                // Another request used this token between our read and our write: a replay
                // within the grace window (two tabs racing), else reuse, unless it vanished.
                let old = reasons
                    .get(mark_used)
                    .filter(|r| r.failed)
                    .and_then(|r| r.old.clone());
                if let Some(old) = old {
                    let used: TokenRow = from_item(old).map_err(shape_error)?;
                    if let Some(replay) = self
                        .replay(&used, next_hash, now, next_expires_at, mark)
                        .await?
                    {
                        return Ok(replay);
                    }
                    self.revoke_family(&presented, now, Revoked::Reused).await?;
                }
                Err(Error::Unauthorized)
            }
            Ok(()) | Err(_) => Ok(RefreshRotation {
                successor: next,
                rotated_at: now,
                signing_kid: mark.signing_kid.clone(),
                replayed: false,
            }),
        }
    }
}
