//! Payment attempts: the durable record of money in motion, written before the first charge and
//! before the first refund, so that no process death can leave a charge nobody knows about.
//!
//! A payment's attempt goes `CHARGING → CHARGED → COMPLETED`, or to `REFUNDING → REFUNDED` when
//! it cannot complete (a declined part, the order no longer payable, stock gone). Cancelling a
//! paid order writes a refund attempt that starts at `REFUNDING`. `COMPLETED` and `REFUNDED` are
//! settled; every other state carries a deadline, after which the request that made it is
//! certainly dead and the reconciler settles it (see `docs/payments.md`).
//!
//! Everything the completing transaction writes is derived from the attempt (its id, its parts,
//! the instant fixed when it became `CHARGED`), so a re-sent commit is byte-for-byte the same
//! transaction: DynamoDB's `ClientRequestToken` then answers it as the first one.

use crate::domain::{DomainEvent, EventType, Order, Payment, PaymentStatus, PaymentType};
use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// After the deadline of the request that wrote an attempt, this much longer passes before the
/// reconciler may act on it: by then the request has certainly stopped (Lambda ends it at its
/// timeout; the local server's requests keep to their budget).
pub const RECONCILE_GRACE: chrono::Duration = chrono::Duration::seconds(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptState {
    /// Written before the first charge; parts are being charged.
    Charging,
    /// Every part is charged; the completing transaction may run.
    Charged,
    /// Settled: the order is paid with exactly these charges.
    Completed,
    /// Every charged part is being refunded.
    Refunding,
    /// Settled: every charge is refunded.
    Refunded,
}

impl AttemptState {
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptState::Charging => "CHARGING",
            AttemptState::Charged => "CHARGED",
            AttemptState::Completed => "COMPLETED",
            AttemptState::Refunding => "REFUNDING",
            AttemptState::Refunded => "REFUNDED",
        }
    }

    /// `COMPLETED` and `REFUNDED`: nothing is left to do.
    pub fn is_settled(self) -> bool {
        matches!(self, AttemptState::Completed | AttemptState::Refunded)
    }
}

/// What the attempt moves money for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptKind {
    /// Paying a pending order.
    Payment,
    /// Refunding a paid order that was cancelled.
    CancelRefund,
}

/// One part of the payment, with its gateway transaction once known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptPart {
    #[serde(rename = "type")]
    pub payment_type: PaymentType,
    pub amount: i64,
    #[serde(default)]
    pub pg_transaction_id: Option<String>,
    /// The stored payment this part refunds (cancel refunds only).
    #[serde(default)]
    pub payment_id: Option<String>,
    #[serde(default)]
    pub refunded: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAttempt {
    pub attempt_id: String,
    pub kind: AttemptKind,
    pub order_id: String,
    pub member_id: String,
    pub parts: Vec<AttemptPart>,
    pub state: AttemptState,
    /// After this instant the request that wrote the attempt is dead: the reconciler may act.
    pub deadline: DateTime<Utc>,
    /// The instant of the completing write, fixed when the attempt becomes `CHARGED`.
    #[serde(default)]
    pub committed_at: Option<DateTime<Utc>>,
    /// Orders the history rows of the completing write after every row written before it (a
    /// ULID on the wall clock), fixed with `committed_at`.
    #[serde(default)]
    pub commit_sequence: Option<String>,
    /// The member's `Idempotency-Key` the payment runs under, if any: it is released or answered
    /// only when the attempt settles.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The floor slot the payment reserved when it started, and its pickup number once every
    /// part is charged (`docs/floor.md`). A refund settling the attempt gives the slot back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<crate::domain::floor::FloorSlot>,
}

impl PaymentAttempt {
    /// The gateway's idempotency key of part `n`: the same charge, whoever sends it.
    pub fn charge_key(&self, n: usize) -> String {
        format!("{}:{n}", self.attempt_id)
    }

    /// The gateway's idempotency key of the refund of part `n`.
    pub fn refund_key(&self, n: usize) -> String {
        format!("{}:refund:{n}", self.attempt_id)
    }

    /// The `ClientRequestToken` of the completing transaction (1–36 characters; a ULID is 26).
    pub fn commit_token(&self) -> &str {
        &self.attempt_id
    }

    /// True once every part has its transaction.
    pub fn all_charged(&self) -> bool {
        self.parts.iter().all(|p| p.pg_transaction_id.is_some())
    }

    /// The sum the attempt moves.
    pub fn total(&self) -> i64 {
        self.parts.iter().map(|p| p.amount).sum()
    }

    /// The payments the completing write stores: ids derived from the attempt, so every
    /// rebuild (the request's retry, the reconciler) writes the same rows.
    pub fn payments(&self) -> Result<Vec<Payment>> {
        let at = self.committed_at.ok_or_else(|| {
            Error::Internal("a completion needs the attempt's commit instant".into())
        })?;
        self.parts
            .iter()
            .enumerate()
            .map(|(n, part)| {
                let pg_transaction_id = part.pg_transaction_id.clone().ok_or_else(|| {
                    Error::Internal(format!("part {n} of the attempt is not charged"))
                })?;
                Ok(Payment {
                    payment_id: derived_id(at, &format!("{}:payment:{n}", self.attempt_id)),
                    payment_type: part.payment_type,
                    amount: part.amount,
                    status: PaymentStatus::Paid,
                    pg_transaction_id,
                })
            })
            .collect()
    }

    /// The `PaymentCompleted` events of the completing write, with derived ids.
    pub fn completion_events(&self, payments: &[Payment]) -> Result<Vec<DomainEvent>> {
        let at = self.committed_at.ok_or_else(|| {
            Error::Internal("a completion needs the attempt's commit instant".into())
        })?;
        Ok(payments
            .iter()
            .enumerate()
            .map(|(n, payment)| {
                let mut event =
                    DomainEvent::payment(EventType::PaymentCompleted, &self.order_id, payment, at);
                event.event_id = derived_id(at, &format!("{}:event:{n}", self.attempt_id));
                if let Some(number) = self.pickup_number() {
                    event.detail["pickupNumber"] = serde_json::json!(number);
                }
                event
            })
            .collect())
    }

    /// Every part charged: `CHARGED`, with the instant and the ordering of the completing write
    /// fixed from now on, so every rebuild of it is the same transaction.
    pub fn mark_charged(&mut self, now: DateTime<Utc>) {
        self.state = AttemptState::Charged;
        self.committed_at = Some(now);
        self.commit_sequence = Some(ulid::Ulid::new().to_string());
    }

    /// The pickup number the completion gives the order, once taken.
    pub fn pickup_number(&self) -> Option<u32> {
        self.floor.as_ref().and_then(|slot| slot.pickup_number)
    }

    /// True when settling this attempt as refunded gives a floor slot back: a payment that
    /// reserved one (a completed payment hands its slot on to the order).
    pub fn holds_slot(&self) -> bool {
        self.kind == AttemptKind::Payment && self.floor.is_some()
    }

    /// The history sequence id of row `n` of the completing write: the commit sequence and `n`.
    pub fn history_sequence(&self, n: usize) -> String {
        match &self.commit_sequence {
            Some(sequence) => format!("{sequence}{n:02}"),
            None => derived_id(self.created_at, &format!("{}:history:{n}", self.attempt_id)),
        }
    }
}

/// A refund attempt for a paid order being cancelled: one part per stored payment.
pub fn cancel_refund(
    attempt_id: String,
    order: &Order,
    deadline: DateTime<Utc>,
    at: DateTime<Utc>,
) -> PaymentAttempt {
    PaymentAttempt {
        attempt_id,
        kind: AttemptKind::CancelRefund,
        order_id: order.order_id.clone(),
        member_id: order.member_id.clone(),
        parts: order
            .payments
            .iter()
            .filter(|p| p.status == PaymentStatus::Paid)
            .map(|p| AttemptPart {
                payment_type: p.payment_type,
                amount: p.amount,
                pg_transaction_id: Some(p.pg_transaction_id.clone()),
                payment_id: Some(p.payment_id.clone()),
                refunded: false,
            })
            .collect(),
        state: AttemptState::Refunding,
        deadline,
        committed_at: None,
        commit_sequence: None,
        idempotency_key: None,
        created_at: at,
        floor: None,
    }
}

/// A ULID with `at` as its time part and the rest taken from SHA-256 of `seed`: the same seed
/// and instant give the same id, on every machine.
pub fn derived_id(at: DateTime<Utc>, seed: &str) -> String {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let digest = Sha256::digest(seed.as_bytes());
    let mut random = [0u8; 16];
    random.copy_from_slice(&digest[..16]);
    ulid::Ulid::from_parts(millis, u128::from_be_bytes(random)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn attempt() -> PaymentAttempt {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("time");
        PaymentAttempt {
            attempt_id: "01KATTEMPT0000000000000001".into(),
            kind: AttemptKind::Payment,
            order_id: "01KORDER000000000000000001".into(),
            member_id: "m".into(),
            parts: vec![
                AttemptPart {
                    payment_type: PaymentType::Card,
                    amount: 1_000,
                    pg_transaction_id: Some("pg_a".into()),
                    payment_id: None,
                    refunded: false,
                },
                AttemptPart {
                    payment_type: PaymentType::Point,
                    amount: 500,
                    pg_transaction_id: None,
                    payment_id: None,
                    refunded: false,
                },
            ],
            state: AttemptState::Charging,
            deadline: at,
            committed_at: None,
            commit_sequence: None,
            idempotency_key: None,
            created_at: at,
            floor: None,
        }
    }

    #[test]
    fn keys_name_the_attempt_and_the_part() {
        let a = attempt();
        assert_eq!(a.charge_key(1), "01KATTEMPT0000000000000001:1");
        assert_eq!(a.refund_key(0), "01KATTEMPT0000000000000001:refund:0");
        assert!(a.commit_token().len() <= 36);
        assert_eq!(a.total(), 1_500);
        assert!(!a.all_charged());
    }

    #[test]
    fn a_completion_is_the_same_every_time_it_is_built() {
        let mut a = attempt();
        assert!(a.payments().is_err(), "no commit instant yet");
        a.parts[1].pg_transaction_id = Some("pg_b".into());
        a.mark_charged(a.created_at);
        assert_eq!(a.state, AttemptState::Charged);
        let first = a.payments().expect("payments");
        let again = a.payments().expect("payments");
        assert_eq!(first, again);
        assert_ne!(first[0].payment_id, first[1].payment_id);
        assert!(crate::ids::is_well_formed(&first[0].payment_id));
        let events = a.completion_events(&first).expect("events");
        assert_eq!(events, a.completion_events(&again).expect("events"));
        assert_eq!(a.history_sequence(0), a.history_sequence(0));
        assert_ne!(a.history_sequence(0), a.history_sequence(1));
    }

    #[test]
    fn settled_states() {
        for (state, settled) in [
            (AttemptState::Charging, false),
            (AttemptState::Charged, false),
            (AttemptState::Refunding, false),
            (AttemptState::Completed, true),
            (AttemptState::Refunded, true),
        ] {
            assert_eq!(state.is_settled(), settled, "{state:?}");
        }
    }
}
