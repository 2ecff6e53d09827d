//! [`PaymentAttemptStore`] in memory: payment attempts, their due index and the commit.

use super::*;

/// The position after the last attempt of a page of the due index.
#[derive(serde::Serialize, serde::Deserialize)]
struct AttemptCursor {
    deadline: DateTime<Utc>,
    attempt_id: String,
}

#[async_trait]
impl PaymentAttemptStore for MemoryStore {
    async fn start_attempt(
        &self,
        attempt: &PaymentAttempt,
        idempotency: Option<&IdempotencyOwner>,
    ) -> Result<()> {
        self.commit(&[], |s| {
            if s.attempts.contains_key(&attempt.attempt_id) {
                return Err(Error::Internal("attempt id collision".into()));
            }
            // Checked before anything changes: a refused reservation writes nothing.
            if let Some(owner) = idempotency {
                let slot = (owner.member_id.clone(), owner.key.clone());
                let linkable = matches!(s.idempotency.get(&slot), Some(IdempotencyRecord {
                    state: IdempotencyState::InProgress { owner: current, attempt: None, .. }, ..
                }) if *current == owner.token);
                if !linkable {
                    return Err(Error::IdempotencyConflict);
                }
            }
            if let Some(slot) = &attempt.floor {
                s.floor.reserve(&attempt.member_id, slot)?;
            }
            if let Some(owner) = idempotency {
                let slot = (owner.member_id.clone(), owner.key.clone());
                match s.idempotency.get_mut(&slot) {
                    Some(IdempotencyRecord {
                        state:
                            IdempotencyState::InProgress {
                                owner: current,
                                attempt: linked @ None,
                                ..
                            },
                        ..
                    }) if *current == owner.token => {
                        *linked = Some(attempt.attempt_id.clone());
                    }
                    _ => return Err(Error::IdempotencyConflict),
                }
            }
            s.attempts
                .insert(attempt.attempt_id.clone(), attempt.clone());
            Ok(())
        })
    }

    async fn update_attempt(
        &self,
        attempt: &PaymentAttempt,
        expected: AttemptState,
    ) -> Result<bool> {
        self.commit(&[], |s| match s.attempts.get_mut(&attempt.attempt_id) {
            Some(stored) if stored.state == expected => {
                *stored = attempt.clone();
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn settle_refunded(&self, attempt: &PaymentAttempt) -> Result<bool> {
        self.commit(&[], |s| {
            match s.attempts.get_mut(&attempt.attempt_id) {
                Some(stored) if stored.state == AttemptState::Refunding => {
                    *stored = PaymentAttempt {
                        state: AttemptState::Refunded,
                        ..attempt.clone()
                    };
                }
                _ => return Ok(false),
            }
            if attempt.holds_slot() {
                s.floor.release(&SlotRelease {
                    member_id: attempt.member_id.clone(),
                    made: None,
                });
            }
            if let Some(key) = &attempt.idempotency_key {
                let slot = (attempt.member_id.clone(), key.clone());
                if matches!(s.idempotency.get(&slot), Some(IdempotencyRecord {
                    state: IdempotencyState::InProgress { attempt: Some(a), .. }, ..
                }) if *a == attempt.attempt_id)
                {
                    s.idempotency.remove(&slot);
                }
            }
            Ok(true)
        })
    }

    async fn get_attempt(&self, attempt_id: &str) -> Result<Option<PaymentAttempt>> {
        Ok(self.read(|s| s.attempts.get(attempt_id).cloned()))
    }

    async fn due_attempts(
        &self,
        shard: u32,
        now: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DueAttemptPage> {
        let mut due: Vec<(DateTime<Utc>, String)> = self.read(|s| {
            s.attempts
                .values()
                .filter(|a| {
                    !a.state.is_settled()
                        && a.deadline <= now
                        && attempt_shard(&a.attempt_id) == shard
                })
                .map(|a| (a.deadline, a.attempt_id.clone()))
                .collect()
        });
        due.sort();
        // The cursor holds the position (deadline, id) of the last attempt of the previous page.
        let after = cursor
            .map(crate::store::cursor::decode::<AttemptCursor>)
            .transpose()?;
        let page: Vec<(DateTime<Utc>, String)> = due
            .into_iter()
            .filter(|(deadline, id)| {
                after
                    .as_ref()
                    .is_none_or(|c| (*deadline, id.as_str()) > (c.deadline, c.attempt_id.as_str()))
            })
            .take(limit.max(1) + 1)
            .collect();
        let more = page.len() > limit.max(1);
        let page: Vec<_> = page.into_iter().take(limit.max(1)).collect();
        let next_cursor = match page.last() {
            Some((deadline, id)) if more => Some(crate::store::cursor::encode(&AttemptCursor {
                deadline: *deadline,
                attempt_id: id.clone(),
            })?),
            _ => None,
        };
        Ok(DueAttemptPage {
            attempt_ids: page.into_iter().map(|(_, id)| id).collect(),
            next_cursor,
        })
    }
}
