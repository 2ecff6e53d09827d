//! [`WithdrawalExpiryStore`] in memory: the withdrawn index, paged by shard.

use super::*;

#[derive(serde::Serialize, serde::Deserialize)]
struct DueCursor {
    at: DateTime<Utc>,
    id: String,
}

#[async_trait]
impl WithdrawalExpiryStore for MemoryStore {
    async fn due_withdrawals(
        &self,
        shard: u32,
        cutoff: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DuePage> {
        let after = cursor
            .map(crate::store::cursor::decode::<DueCursor>)
            .transpose()?;
        let limit = limit.max(1);
        Ok(self.read(|s| {
            let start = match &after {
                Some(c) => std::ops::Bound::Excluded((shard, c.at, c.id.clone())),
                None => std::ops::Bound::Included((shard, DateTime::<Utc>::MIN_UTC, String::new())),
            };
            let end = std::ops::Bound::Included((shard, cutoff, String::from("\u{10FFFF}")));
            let members: Vec<DueWithdrawal> = s
                .withdrawn
                .range((start, end))
                .take(limit)
                .map(|(_, at, id)| DueWithdrawal {
                    member_id: id.clone(),
                    withdrawn_at: *at,
                })
                .collect();
            let next_cursor = if members.len() == limit {
                members.last().and_then(|m| {
                    crate::store::cursor::encode(&DueCursor {
                        at: m.withdrawn_at,
                        id: m.member_id.clone(),
                    })
                    .ok()
                })
            } else {
                None
            };
            DuePage {
                items_read: members.len() as u64,
                members,
                next_cursor,
            }
        }))
    }

    async fn end_member(
        &self,
        member_id: &str,
        withdrawn_at: DateTime<Utc>,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<bool> {
        let ended = self.commit(std::slice::from_ref(event), |s| {
            let Some(member) = s.members.get_mut(member_id) else {
                return Err(Error::NotFound("member"));
            };
            if member.status != MemberStatus::Withdrawn || member.withdrawn_at != Some(withdrawn_at)
            {
                return Err(Error::NotRestorable);
            }
            member.status = MemberStatus::End;
            // The email is free again, and nothing personal stays (docs/retention.md).
            if s.member_by_email.get(&member.email).map(String::as_str) == Some(member_id) {
                s.member_by_email.remove(&member.email);
            }
            member.erase_personal_data();
            s.passwords.remove(member_id);
            s.withdrawn.remove(&(
                withdrawn_shard(member_id),
                withdrawn_at,
                member_id.to_owned(),
            ));
            s.add_history(EntityKind::Member, member_id, "END", at);
            Ok(())
        });
        match ended {
            Ok(()) => Ok(true),
            Err(Error::NotRestorable | Error::NotFound(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }
}
