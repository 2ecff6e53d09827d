//! The sparse `withdrawn-by-time` index: only withdrawn profiles carry its keys, so the daily
//! job reads exactly the due members, never the whole table.

use super::members::{EMAIL_SK, PROFILE, email_pk, withdrawn_partition, withdrawn_sort_key};
use super::tx::Expr;
use super::{Attrs, DynamoStore, TxItems, attr_str, key, member_pk, s, sdk_error, table};
use crate::domain::member::PERSONAL_ATTRIBUTES;
use crate::domain::{DomainEvent, EntityKind, MemberStatus};
use crate::error::{Error, Result};
use crate::store::{DuePage, DueWithdrawal, WithdrawalExpiryStore, cursor, withdrawn_shard};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// The position after the last member of a page: its `wsk`.
#[derive(Serialize, Deserialize)]
struct DueCursor {
    wsk: String,
}

/// Splits a `wsk` into withdrawal time and member id.
fn parse_sort_key(wsk: &str) -> Option<DueWithdrawal> {
    let (at, member_id) = wsk.split_once('#')?;
    let withdrawn_at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
    (!member_id.is_empty()).then(|| DueWithdrawal {
        member_id: member_id.to_owned(),
        withdrawn_at,
    })
}

fn start_key(shard: u32, wsk: &str) -> Result<Attrs> {
    let due = parse_sort_key(wsk).ok_or_else(|| Error::invalid("cursor"))?;
    if withdrawn_shard(&due.member_id) != shard || wsk.len() > 200 {
        return Err(Error::invalid("cursor"));
    }
    let mut start = key(member_pk(&due.member_id), PROFILE);
    start.insert(
        table::WITHDRAWN_PK.into(),
        s(withdrawn_partition(&due.member_id)),
    );
    start.insert(table::WITHDRAWN_SK.into(), s(wsk));
    Ok(start)
}

#[async_trait]
impl WithdrawalExpiryStore for DynamoStore {
    async fn due_withdrawals(
        &self,
        shard: u32,
        cutoff: DateTime<Utc>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<DuePage> {
        let start = match cursor {
            Some(c) => Some(start_key(shard, &cursor::decode::<DueCursor>(c)?.wsk)?),
            None => None,
        };
        let limit = i32::try_from(limit.max(1)).unwrap_or(i32::MAX);
        // `\u{10FFFF}` sorts after every member id: everyone withdrawn in the cutoff's millisecond
        // or before is included.
        let upper = format!("{}#\u{10FFFF}", crate::clock::rfc3339(cutoff));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(table::GSI_WITHDRAWN)
            .key_condition_expression("#wpk = :wpk AND #wsk <= :upper")
            .expression_attribute_names("#wpk", table::WITHDRAWN_PK)
            .expression_attribute_names("#wsk", table::WITHDRAWN_SK)
            .expression_attribute_values(":wpk", s(format!("WITHDRAWN#{shard}")))
            .expression_attribute_values(":upper", s(upper))
            .scan_index_forward(true)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .instrument(crate::spans::dependency_span("dynamodb", "Query"))
            .await
            .map_err(sdk_error)?;
        let mut members = Vec::new();
        for item in out.items.unwrap_or_default() {
            let due = attr_str(&item, table::WITHDRAWN_SK)
                .and_then(parse_sort_key)
                .ok_or_else(|| Error::Internal("withdrawn index key has a bad shape".into()))?;
            members.push(due);
        }
        let next_cursor = match out.last_evaluated_key {
            Some(last) if !last.is_empty() => {
                let wsk = attr_str(&last, table::WITHDRAWN_SK)
                    .ok_or_else(|| Error::Internal("withdrawn index page without wsk".into()))?;
                Some(cursor::encode(&DueCursor {
                    wsk: wsk.to_owned(),
                })?)
            }
            _ => None,
        };
        Ok(DuePage {
            members,
            next_cursor,
            items_read: u64::try_from(out.scanned_count).unwrap_or(0),
        })
    }

    async fn end_member(
        &self,
        member_id: &str,
        withdrawn_at: DateTime<Utc>,
        at: DateTime<Utc>,
        event: &DomainEvent,
    ) -> Result<bool> {
        // The email guard to release: the profile names the email, the guard must name this
        // member (both read consistently; the profile's condition below pins the state read).
        let Some(profile) = self.raw_item(&member_pk(member_id), PROFILE).await? else {
            return Ok(false);
        };
        let guard = match attr_str(&profile, "email") {
            Some(email) if !email.is_empty() => {
                let guard_key = key(email_pk(email), EMAIL_SK);
                let owned = self
                    .raw_item(&email_pk(email), EMAIL_SK)
                    .await?
                    .is_some_and(|g| attr_str(&g, "memberId") == Some(member_id));
                owned.then_some(guard_key)
            }
            _ => None,
        };
        // A re-send of an end that applied answers `false` ("not ended by this call"): the
        // member is ended either way and the run counts one fewer.
        let mut tx = TxItems::new(self).own_events_not_applied();
        // The index key pins the withdrawal (to the millisecond): a member restored and
        // withdrawn again since the page was read is not ended early. Every personal attribute
        // goes in the same write.
        let mut names = Expr::new()
            .name("#status", "status")
            .name("#wpk", table::WITHDRAWN_PK)
            .name("#wsk", table::WITHDRAWN_SK)
            .value(":end", s(MemberStatus::End.as_str()))
            .value(":withdrawn", s(MemberStatus::Withdrawn.as_str()))
            .value(":wsk", s(withdrawn_sort_key(withdrawn_at, member_id)));
        let mut removed = vec!["#wpk".to_owned(), "#wsk".to_owned()];
        for (i, attribute) in PERSONAL_ATTRIBUTES.iter().enumerate() {
            let placeholder = format!("#p{i}");
            names = names.name(&placeholder, attribute);
            removed.push(placeholder);
        }
        tx.update(
            key(member_pk(member_id), PROFILE),
            &format!("SET #status = :end REMOVE {}", removed.join(", ")),
            Some("#status = :withdrawn AND #wsk = :wsk"),
            names,
        )?;
        if let Some(guard_key) = guard {
            tx.delete(
                guard_key,
                Some("#memberId = :memberId"),
                Expr::new()
                    .name("#memberId", "memberId")
                    .value(":memberId", s(member_id)),
            )?;
        }
        tx.history(EntityKind::Member, member_id, "END", at)?;
        tx.outbox(std::slice::from_ref(event))?;
        // The password goes with the rest (absent for a member whose hash is still on the
        // profile, which the REMOVE above takes).
        tx.delete_in(
            &self.credentials_table,
            super::members::credential_key(member_id),
            None,
            Expr::new(),
        )?;
        match tx.commit().await? {
            Ok(()) => Ok(true),
            Err(reasons) if reasons.first().is_some_and(|r| r.failed) => Ok(false),
            Err(reasons) if reasons.get(1).is_some_and(|r| r.failed) => {
                // The guard changed hands between the read and the write: left for the next run.
                tracing::warn!(
                    member_id,
                    "email guard changed while ending a member; retried next run"
                );
                Ok(false)
            }
            Err(_) => Err(Error::Internal("ending a member was cancelled".into())),
        }
    }
}
