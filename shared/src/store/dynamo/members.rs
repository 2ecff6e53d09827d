//! Members: the profile item, the email guard that makes emails unique, and the life-cycle
//! transitions, each conditional on the current status.

use super::tx::Expr;
use super::{Attrs, DynamoStore, TxItems, attr_str, key, member_pk, s, shape_error, table};
use crate::domain::{DomainEvent, EntityKind, HistoryEntry, Member, MemberStatus};
use crate::error::{Error, Result};
use crate::store::{MemberStore, RefreshTokenRecord, withdrawn_shard};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};
use tracing::Instrument;

pub(crate) const PROFILE: &str = "PROFILE";
/// The profile's attribute holding `Member::session_version`.
pub(crate) const SESSION_VERSION: &str = "sessionVersion";

pub(crate) const EMAIL_SK: &str = "EMAIL";

pub(crate) fn email_pk(email: &str) -> String {
    format!("EMAIL#{email}")
}

/// `wsk` of a withdrawn member: time first, so the index sorts by withdrawal time.
pub(crate) fn withdrawn_sort_key(at: DateTime<Utc>, member_id: &str) -> String {
    format!("{}#{member_id}", crate::clock::rfc3339(at))
}

pub(crate) fn withdrawn_partition(member_id: &str) -> String {
    format!("WITHDRAWN#{}", withdrawn_shard(member_id))
}

fn profile_item(member: &Member) -> Result<Attrs> {
    let mut item: Attrs = to_item(member).map_err(shape_error)?;
    item.insert(table::PK.into(), s(member_pk(&member.member_id)));
    item.insert(table::SK.into(), s(PROFILE));
    if let (MemberStatus::Withdrawn, Some(at)) = (member.status, member.withdrawn_at) {
        item.insert(
            table::WITHDRAWN_PK.into(),
            s(withdrawn_partition(&member.member_id)),
        );
        item.insert(
            table::WITHDRAWN_SK.into(),
            s(withdrawn_sort_key(at, &member.member_id)),
        );
    }
    Ok(item)
}

fn status_value(status: MemberStatus) -> aws_sdk_dynamodb::types::AttributeValue {
    s(status.as_str())
}

/// True when a failed condition's old item shows there was no profile at all.
fn is_missing(old: &Option<Attrs>) -> bool {
    old.as_ref()
        .is_none_or(|item| attr_str(item, "status").is_none())
}

impl DynamoStore {
    /// The sign-up transaction: the email guard, the profile, the first history row and the
    /// event; with `first_refresh_token`, its row too.
    async fn create_member_with(
        &self,
        member: &Member,
        event: &DomainEvent,
        first_refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<()> {
        let mut tx = TxItems::new(self);
        let mut guard = key(email_pk(&member.email), EMAIL_SK);
        guard.insert("memberId".into(), s(&member.member_id));
        let guard_index = tx.put_new(guard)?;
        let profile_index = tx.put_new(profile_item(member)?)?;
        tx.history(
            EntityKind::Member,
            &member.member_id,
            member.status.as_str(),
            member.created_at,
        )?;
        tx.outbox(std::slice::from_ref(event))?;
        if let Some(record) = first_refresh_token {
            tx.put_new(super::tokens::token_row(record)?)?;
        }
        match tx.commit().await? {
            Ok(()) => Ok(()),
            Err(reasons) if reasons.get(guard_index).is_some_and(|r| r.failed) => {
                Err(Error::EmailTaken)
            }
            Err(reasons) if reasons.get(profile_index).is_some_and(|r| r.failed) => {
                Err(Error::Internal("member id collision".into()))
            }
            Err(_) => Err(Error::Internal("member creation cancelled".into())),
        }
    }
}

#[async_trait]
impl MemberStore for DynamoStore {
    async fn create_member(&self, member: &Member, event: &DomainEvent) -> Result<()> {
        self.create_member_with(member, event, None).await
    }

    async fn sign_up_member(
        &self,
        member: &Member,
        event: &DomainEvent,
        first_refresh_token: &RefreshTokenRecord,
    ) -> Result<()> {
        self.create_member_with(member, event, Some(first_refresh_token))
            .await
    }

    async fn get_member(&self, member_id: &str) -> Result<Option<Member>> {
        match self.raw_item(&member_pk(member_id), PROFILE).await? {
            Some(item) => from_item(item).map(Some).map_err(shape_error),
            None => Ok(None),
        }
    }

    async fn get_member_with_history(
        &self,
        member_id: &str,
    ) -> Result<Option<(Member, Vec<HistoryEntry>)>> {
        let mut member = None;
        let mut history = Vec::new();
        for row in self.raw_partition(&member_pk(member_id)).await? {
            if super::is_history_row(&row) {
                history.push(super::history_entry(row)?);
            } else if attr_str(&row, table::SK) == Some(PROFILE) {
                member = Some(from_item(row).map_err(shape_error)?);
            }
        }
        Ok(member.map(|member| (member, history)))
    }

    async fn find_member_by_email(&self, email: &str) -> Result<Option<Member>> {
        let Some(guard) = self.raw_item(&email_pk(email), EMAIL_SK).await? else {
            return Ok(None);
        };
        match attr_str(&guard, "memberId") {
            Some(member_id) => self.get_member(member_id).await,
            None => Err(Error::Internal("email guard without a member".into())),
        }
    }

    async fn withdraw_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        let member = self
            .get_member(member_id)
            .await?
            .ok_or(Error::NotFound("member"))?;
        self.withdraw_read_member(&member, at, event).await
    }

    async fn withdraw_read_member(
        &self,
        member: &Member,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        let member_id = member.member_id.as_str();
        let mut member = member.clone();
        member.check_can_withdraw()?;
        let mut tx = TxItems::new(self);
        tx.update(
            key(member_pk(member_id), PROFILE),
            "SET #status = :withdrawn, #withdrawnAt = :at, #wpk = :wpk, #wsk = :wsk ADD #sv :one",
            Some("attribute_exists(#pk) AND #status = :service"),
            Expr::new()
                .name("#pk", table::PK)
                .name("#status", "status")
                .name("#withdrawnAt", "withdrawnAt")
                .name("#wpk", table::WITHDRAWN_PK)
                .name("#wsk", table::WITHDRAWN_SK)
                .value(":withdrawn", status_value(MemberStatus::Withdrawn))
                .value(":service", status_value(MemberStatus::Service))
                .value(":at", to_attribute_value(at).map_err(shape_error)?)
                .value(":wpk", s(withdrawn_partition(member_id)))
                .value(":wsk", s(withdrawn_sort_key(at, member_id)))
                .name("#sv", SESSION_VERSION)
                .value(":one", super::n(1)),
        )?;
        tx.history(EntityKind::Member, member_id, "WITHDRAWN", at)?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => {
                member.status = MemberStatus::Withdrawn;
                member.withdrawn_at = Some(at);
                member.session_version = member.session_version.saturating_add(1);
                Ok(member)
            }
            Err(reasons) if reasons.first().is_some_and(|r| is_missing(&r.old)) => {
                Err(Error::NotFound("member"))
            }
            Err(_) => Err(Error::NotInService),
        }
    }

    async fn restore_member(
        &self,
        member_id: &str,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        let member = self
            .get_member(member_id)
            .await?
            .ok_or(Error::NotFound("member"))?;
        self.restore_read_member(&member, at, event).await
    }

    async fn restore_read_member(
        &self,
        member: &Member,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<Member> {
        let member_id = member.member_id.as_str();
        let mut member = member.clone();
        member.check_can_restore(at)?;
        let withdrawn_at = member.withdrawn_at.ok_or(Error::NotRestorable)?;
        let mut tx = TxItems::new(self);
        // The window was checked against the withdrawal read above; the condition makes sure
        // it is still that withdrawal.
        tx.update(
            key(member_pk(member_id), PROFILE),
            "SET #status = :service REMOVE #withdrawnAt, #wpk, #wsk",
            Some("#status = :withdrawn AND #withdrawnAt = :withdrawnAt"),
            Expr::new()
                .name("#status", "status")
                .name("#withdrawnAt", "withdrawnAt")
                .name("#wpk", table::WITHDRAWN_PK)
                .name("#wsk", table::WITHDRAWN_SK)
                .value(":withdrawn", status_value(MemberStatus::Withdrawn))
                .value(":service", status_value(MemberStatus::Service))
                .value(
                    ":withdrawnAt",
                    to_attribute_value(withdrawn_at).map_err(shape_error)?,
                ),
        )?;
        tx.history(EntityKind::Member, member_id, "SERVICE", at)?;
        tx.outbox(std::slice::from_ref(event))?;
        match tx.commit().await? {
            Ok(()) => {
                member.status = MemberStatus::Service;
                member.withdrawn_at = None;
                Ok(member)
            }
            Err(reasons) if reasons.first().is_some_and(|r| is_missing(&r.old)) => {
                Err(Error::NotFound("member"))
            }
            Err(_) => Err(Error::NotRestorable),
        }
    }

    async fn member_history(&self, member_id: &str) -> Result<Vec<HistoryEntry>> {
        self.history(EntityKind::Member, member_id).await
    }

    async fn end_sessions(&self, member_id: &str) -> Result<()> {
        // One atomic ADD: concurrent log-outs each move the version on, none is lost. A re-sent
        // request after a late answer adds again, which ends nothing more than it meant to.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(member_pk(member_id), PROFILE)))
            .update_expression("ADD #sv :one")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#sv", SESSION_VERSION)
            .expression_attribute_names("#pk", table::PK)
            .expression_attribute_values(":one", super::n(1))
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "UpdateItem"))
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(Error::NotFound("member"))
            }
            Err(err) => Err(super::sdk_error(err)),
        }
    }
}
