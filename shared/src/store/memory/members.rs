//! [`MemberStore`] in memory: members, their email guard and their history.

use super::*;

#[async_trait]
impl MemberStore for MemoryStore {
    async fn create_member(
        &self,
        member: &Member,
        password: &StoredPassword,
        event: &DomainEvent,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            s.add_member(member, password)
        })
    }

    async fn sign_up_member(
        &self,
        member: &Member,
        password: &StoredPassword,
        event: &DomainEvent,
        first_refresh_token: &RefreshTokenRecord,
    ) -> Result<()> {
        self.commit(std::slice::from_ref(event), |s| {
            s.add_member(member, password)?;
            s.refresh_tokens.insert(
                first_refresh_token.token_hash.clone(),
                RefreshState::fresh(first_refresh_token.clone()),
            );
            Ok(())
        })
    }

    async fn get_member(&self, member_id: &str) -> Result<Option<Member>> {
        Ok(self.read(|s| s.members.get(member_id).cloned()))
    }

    async fn find_member_by_email(&self, email: &str) -> Result<Option<Member>> {
        Ok(self.read(|s| {
            s.member_by_email
                .get(email)
                .and_then(|id| s.members.get(id))
                .cloned()
        }))
    }

    async fn find_member_for_log_in(
        &self,
        email: &str,
    ) -> Result<Option<(Member, Option<StoredPassword>)>> {
        Ok(self.read(|s| {
            let member = s
                .member_by_email
                .get(email)
                .and_then(|id| s.members.get(id))?;
            Some((member.clone(), s.passwords.get(&member.member_id).cloned()))
        }))
    }

    async fn withdraw_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        self.commit(std::slice::from_ref(event), |s| {
            let member = s
                .members
                .get_mut(member_id)
                .ok_or(Error::NotFound("member"))?;
            member.check_can_withdraw()?;
            member.status = MemberStatus::Withdrawn;
            member.withdrawn_at = Some(at);
            member.session_version = member.session_version.saturating_add(1);
            let updated = member.clone();
            s.withdrawn
                .insert((withdrawn_shard(member_id), at, member_id.to_owned()));
            s.add_history(EntityKind::Member, member_id, "WITHDRAWN", at);
            Ok(updated)
        })
    }

    async fn restore_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        self.commit(std::slice::from_ref(event), |s| {
            let member = s
                .members
                .get_mut(member_id)
                .ok_or(Error::NotFound("member"))?;
            member.check_can_restore(at)?;
            let withdrawn_at = member.withdrawn_at.take();
            member.status = MemberStatus::Service;
            let updated = member.clone();
            if let Some(w) = withdrawn_at {
                s.withdrawn
                    .remove(&(withdrawn_shard(member_id), w, member_id.to_owned()));
            }
            s.add_history(EntityKind::Member, member_id, "SERVICE", at);
            Ok(updated)
        })
    }

    async fn member_history(&self, member_id: &str) -> Result<Vec<HistoryEntry>> {
        Ok(self.read(|s| s.history(EntityKind::Member, member_id)))
    }

    async fn end_sessions(&self, member_id: &str) -> Result<()> {
        self.commit(&[], |s| {
            let member = s
                .members
                .get_mut(member_id)
                .ok_or(Error::NotFound("member"))?;
            member.session_version = member.session_version.saturating_add(1);
            Ok(())
        })
    }
}
