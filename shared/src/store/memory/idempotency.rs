//! [`IdempotencyStore`] in memory: `Idempotency-Key` records and their stored answers.

use super::*;

#[derive(Debug, Clone)]
pub(super) enum IdempotencyState {
    InProgress {
        started_at: DateTime<Utc>,
        /// The request that owns the record.
        owner: String,
        /// The payment attempt linked to it, once the request started charging.
        attempt: Option<String>,
    },
    Done(StoredResponse),
}

#[derive(Debug, Clone)]
pub(super) struct IdempotencyRecord {
    pub(super) request_hash: String,
    pub(super) state: IdempotencyState,
    pub(super) expires_at: DateTime<Utc>,
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn begin_idempotent(
        &self,
        member_id: &str,
        key: &str,
        request_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyBegin> {
        self.commit(&[], |s| {
            let slot = (member_id.to_owned(), key.to_owned());
            if let Some(existing) = s.idempotency.get(&slot)
                && existing.expires_at > now
            {
                let same_body = existing.request_hash == request_hash;
                match &existing.state {
                    IdempotencyState::Done(response) if same_body => {
                        return Ok(IdempotencyBegin::Replay(response.clone()));
                    }
                    // Charged: it waits for its attempt, however old.
                    IdempotencyState::InProgress {
                        attempt: Some(_), ..
                    } if same_body => return Ok(IdempotencyBegin::Pending),
                    // Stale and nothing charged: its request died; take it over.
                    IdempotencyState::InProgress {
                        started_at,
                        attempt: None,
                        ..
                    } if *started_at + IDEMPOTENCY_LEASE <= now => {}
                    _ => return Ok(IdempotencyBegin::Conflict),
                }
            }
            let owner = crate::ids::new_id(now);
            s.idempotency.insert(
                slot,
                IdempotencyRecord {
                    request_hash: request_hash.to_owned(),
                    state: IdempotencyState::InProgress {
                        started_at: now,
                        owner: owner.clone(),
                        attempt: None,
                    },
                    expires_at: now + IDEMPOTENCY_RETENTION,
                },
            );
            Ok(IdempotencyBegin::Started(owner))
        })
    }

    async fn finish_idempotent(
        &self,
        owner: &IdempotencyOwner,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.commit(&[], |s| {
            let slot = (owner.member_id.clone(), owner.key.clone());
            match s.idempotency.get_mut(&slot) {
                Some(record) if owned_by(record, &owner.token) => {
                    record.state = IdempotencyState::Done(response.clone());
                    record.expires_at = now + IDEMPOTENCY_RETENTION;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    async fn abandon_idempotent(&self, owner: &IdempotencyOwner) -> Result<bool> {
        self.commit(&[], |s| {
            let slot = (owner.member_id.clone(), owner.key.clone());
            match s.idempotency.get(&slot) {
                Some(record)
                    if owned_by(record, &owner.token)
                        && matches!(
                            record.state,
                            IdempotencyState::InProgress { attempt: None, .. }
                        ) =>
                {
                    s.idempotency.remove(&slot);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }
}

/// True while `record` is in progress and owned by `token`.
fn owned_by(record: &IdempotencyRecord, token: &str) -> bool {
    matches!(&record.state, IdempotencyState::InProgress { owner, .. } if owner == token)
}
