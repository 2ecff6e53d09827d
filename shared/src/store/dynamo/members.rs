//! Members: the profile item, the email guard that makes emails unique, and the life-cycle
//! transitions, each conditional on the current status.

use super::tx::Expr;
use super::{Attrs, DynamoStore, TxItems, attr_str, key, member_pk, s, shape_error, table};
use crate::domain::{DomainEvent, EntityKind, HistoryEntry, Member, MemberStatus, StoredPassword};
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

/// The credentials table's item of a member: its key and the password's PHC string.
fn credential_item(member_id: &str, password: &StoredPassword) -> Attrs {
    Attrs::from([
        (table::PK.into(), s(member_pk(member_id))),
        (table::PASSWORD_HASH.into(), s(password.phc())),
    ])
}

/// The key of a member's item in the credentials table.
pub(crate) fn credential_key(member_id: &str) -> Attrs {
    Attrs::from([(table::PK.into(), s(member_pk(member_id)))])
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
    /// The member id the email guard names (consistent read), if the email is taken.
    async fn member_id_by_email(&self, email: &str) -> Result<Option<String>> {
        let Some(guard) = self.raw_item(&email_pk(email), EMAIL_SK).await? else {
            return Ok(None);
        };
        match attr_str(&guard, "memberId") {
            Some(member_id) => Ok(Some(member_id.to_owned())),
            None => Err(Error::Internal("email guard without a member".into())),
        }
    }

    /// The sign-up transaction: the email guard, the profile, the password (in the credentials
    /// table), the first history row and the event; with `first_refresh_token`, its row too.
    async fn create_member_with(
        &self,
        member: &Member,
        password: &StoredPassword,
        event: &DomainEvent,
        first_refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<()> {
        let mut tx = TxItems::new(self);
        let mut guard = key(email_pk(&member.email), EMAIL_SK);
        guard.insert("memberId".into(), s(&member.member_id));
        let guard_index = tx.put_new(guard)?;
        let profile_index = tx.put_new(profile_item(member)?)?;
        let credential_index = tx.put_new_in(
            &self.credentials_table,
            credential_item(&member.member_id, password),
        )?;
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
            Err(reasons)
                if [profile_index, credential_index]
                    .iter()
                    .any(|&i| reasons.get(i).is_some_and(|r| r.failed)) =>
            {
                Err(Error::Internal("member id collision".into()))
            }
            Err(_) => Err(Error::Internal("member creation cancelled".into())),
        }
    }
}

#[async_trait]
impl MemberStore for DynamoStore {
    async fn create_member(
        &self,
        member: &Member,
        password: &StoredPassword,
        event: &DomainEvent,
    ) -> Result<()> {
        self.create_member_with(member, password, event, None).await
    }

    async fn sign_up_member(
        &self,
        member: &Member,
        password: &StoredPassword,
        event: &DomainEvent,
        first_refresh_token: &RefreshTokenRecord,
    ) -> Result<()> {
        self.create_member_with(member, password, event, Some(first_refresh_token))
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
        match self.member_id_by_email(email).await? {
            Some(member_id) => self.get_member(&member_id).await,
            None => Ok(None),
        }
    }

    async fn find_member_for_log_in(
        &self,
        email: &str,
    ) -> Result<Option<(Member, Option<StoredPassword>)>> {
        let Some(member_id) = self.member_id_by_email(email).await? else {
            return Ok(None);
        };
        // The profile and the password in one request (two tables, strongly consistent).
        let mut found = self
            .batch_get_tables(std::collections::HashMap::from([
                (
                    self.table.clone(),
                    vec![key(member_pk(&member_id), PROFILE)],
                ),
                (
                    self.credentials_table.clone(),
                    vec![credential_key(&member_id)],
                ),
            ]))
            .await?;
        let Some(profile) = found.remove(&self.table).and_then(|mut rows| rows.pop()) else {
            return Ok(None);
        };
        let password = found
            .remove(&self.credentials_table)
            .and_then(|mut rows| rows.pop())
            .as_ref()
            .or(Some(&profile))
            // A profile written before passwords had a table of their own still holds its
            // hash, until `cafe-admin backfill-passwords` moves it.
            .and_then(|row| attr_str(row, table::PASSWORD_HASH))
            .map(StoredPassword::new);
        let member = from_item(profile).map_err(shape_error)?;
        Ok(Some((member, password)))
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

/// What [`DynamoStore::backfill_passwords`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordBackfill {
    /// Profiles whose hash moved to the credentials table.
    pub moved: usize,
    /// Profiles whose member already had a credentials item: only the profile's copy removed.
    pub already_apart: usize,
    /// Profiles changed between the scan and the write (ended, say): left for a rerun.
    pub skipped: usize,
}

impl DynamoStore {
    /// Moves the password hash of every profile written before passwords had a table of their
    /// own into the credentials table, and removes it from the profile: each member in one
    /// transaction, conditional on the hash read, so a member who changed in between is left
    /// for the next run. Safe to rerun (docs/deploy.md). Scans the main table.
    pub async fn backfill_passwords(&self) -> Result<PasswordBackfill> {
        let mut done = PasswordBackfill::default();
        let mut start: Option<Attrs> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("#sk = :profile AND attribute_exists(#hash)")
                .expression_attribute_names("#sk", table::SK)
                .expression_attribute_names("#hash", table::PASSWORD_HASH)
                .expression_attribute_values(":profile", s(PROFILE))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .instrument(crate::spans::dependency_span("dynamodb", "Scan"))
                .await
                .map_err(super::sdk_error)?;
            for profile in page.items() {
                let (Some(pk), Some(hash)) = (
                    attr_str(profile, table::PK),
                    attr_str(profile, table::PASSWORD_HASH),
                ) else {
                    continue;
                };
                let Some(member_id) = pk.strip_prefix("MEMBER#") else {
                    continue;
                };
                let outcome = self.move_password(member_id, hash).await?;
                match outcome {
                    PasswordMove::Moved => done.moved += 1,
                    PasswordMove::AlreadyApart => done.already_apart += 1,
                    PasswordMove::Skipped => done.skipped += 1,
                }
            }
            tracing::info!(
                moved = done.moved,
                already_apart = done.already_apart,
                skipped = done.skipped,
                "password backfill page done"
            );
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(done),
            }
        }
    }

    async fn move_password(&self, member_id: &str, hash: &str) -> Result<PasswordMove> {
        let remove_from_profile = |tx: &mut TxItems| {
            tx.update(
                key(member_pk(member_id), PROFILE),
                "REMOVE #hash",
                Some("#hash = :hash"),
                Expr::new()
                    .name("#hash", table::PASSWORD_HASH)
                    .value(":hash", s(hash)),
            )
        };
        let mut tx = TxItems::new(self);
        tx.put_new_in(
            &self.credentials_table,
            credential_item(member_id, &StoredPassword::new(hash)),
        )?;
        remove_from_profile(&mut tx)?;
        match tx.commit().await? {
            Ok(()) => Ok(PasswordMove::Moved),
            Err(reasons) if reasons.get(1).is_some_and(|r| r.failed) => Ok(PasswordMove::Skipped),
            Err(reasons) if reasons.first().is_some_and(|r| r.failed) => {
                // The credentials item is the member's password; the profile's copy only goes.
                let mut tx = TxItems::new(self);
                remove_from_profile(&mut tx)?;
                match tx.commit().await? {
                    Ok(()) => Ok(PasswordMove::AlreadyApart),
                    Err(_) => Ok(PasswordMove::Skipped),
                }
            }
            Err(_) => Err(Error::Internal("moving a password was cancelled".into())),
        }
    }
}

enum PasswordMove {
    Moved,
    AlreadyApart,
    Skipped,
}
