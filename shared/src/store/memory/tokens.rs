//! [`RefreshTokenStore`] in memory: rotating refresh tokens and revoked families.

use super::*;

#[derive(Debug)]
pub(super) struct RefreshState {
    pub(super) record: RefreshTokenRecord,
    pub(super) used: bool,
    /// When it was rotated, into which successor, signed by which key (the grace replay).
    pub(super) used_at: Option<DateTime<Utc>>,
    pub(super) successor_hash: Option<String>,
    pub(super) signing_kid: Option<String>,
}

impl RefreshState {
    pub(super) fn fresh(record: RefreshTokenRecord) -> Self {
        Self {
            record,
            used: false,
            used_at: None,
            successor_hash: None,
            signing_kid: None,
        }
    }
}

#[async_trait]
impl RefreshTokenStore for MemoryStore {
    async fn store_refresh_token(&self, record: &RefreshTokenRecord) -> Result<()> {
        self.commit(&[], |s| {
            s.refresh_tokens.insert(
                record.token_hash.clone(),
                RefreshState::fresh(record.clone()),
            );
            Ok(())
        })
    }

    async fn revoke_refresh_family(
        &self,
        presented_hash: &str,
        _now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        self.commit(&[], |s| {
            let Some(presented) = s.refresh_tokens.get(presented_hash) else {
                return Ok(None);
            };
            let member_id = presented.record.member_id.clone();
            s.revoked_families
                .insert(presented.record.family_id.clone());
            Ok(Some(member_id))
        })
    }

    async fn rotate_refresh_token_marked(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        next_expires_at: DateTime<Utc>,
        mark: &RotationMark,
    ) -> Result<RefreshRotation> {
        self.commit(&[], |s| {
            let presented = s
                .refresh_tokens
                .get_mut(presented_hash)
                .ok_or(Error::Unauthorized)?;
            let family = presented.record.family_id.clone();
            let successor = |issued_at: DateTime<Utc>| RefreshTokenRecord {
                token_hash: next_hash.to_owned(),
                member_id: presented.record.member_id.clone(),
                family_id: family.clone(),
                issued_at,
                expires_at: next_expires_at,
                session_version: presented.record.session_version,
            };
            if presented.used {
                let replay = replay_allowed(
                    presented.used_at,
                    presented.successor_hash.as_deref(),
                    next_hash,
                    now,
                    mark.grace,
                );
                match (replay, presented.signing_kid.clone()) {
                    (Some(used_at), Some(kid)) if !s.revoked_families.contains(&family) => {
                        return Ok(RefreshRotation {
                            successor: successor(used_at),
                            rotated_at: used_at,
                            signing_kid: kid,
                            replayed: true,
                        });
                    }
                    _ => {
                        s.revoked_families.insert(family);
                        return Err(Error::Unauthorized);
                    }
                }
            }
            if presented.record.expires_at <= now || s.revoked_families.contains(&family) {
                return Err(Error::Unauthorized);
            }
            let next = successor(now);
            presented.used = true;
            presented.used_at = Some(now);
            presented.successor_hash = Some(next_hash.to_owned());
            presented.signing_kid = Some(mark.signing_kid.clone());
            s.refresh_tokens
                .insert(next.token_hash.clone(), RefreshState::fresh(next.clone()));
            Ok(RefreshRotation {
                successor: next,
                rotated_at: now,
                signing_kid: mark.signing_kid.clone(),
                replayed: false,
            })
        })
    }
}
