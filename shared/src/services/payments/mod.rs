//! Paying an order, at most once, without ever losing a charge.
//!
//! The flow: validate the body → take the lock (the order's key, from the request; with
//! `LOCK_SCOPE=order-and-items` also each item's, read from the order first) → read the order
//! (one `Query`), then the payer's profile and the stock together (one `BatchGetItem`) → the payer
//! must be a member in `SERVICE` (401/403), the order theirs (404/403), the parts must add up to
//! its total (400PA000), the order `PENDING_PAYMENT` (400OR001) and the stock enough (400OR000,
//! before anything is charged) → refuse
//! (503) unless the deadline leaves time for every charge and the commit → write the payment
//! attempt (`CHARGING`, linked to the `Idempotency-Key`) → charge each part under the key
//! `<attemptId>:<n>` → mark the attempt `CHARGED` → one atomic `complete_payment` (stock taken
//! only if it stays ≥ 0, order moved only if still pending, payments, history, events, the
//! attempt `COMPLETED` and the key's answer), sent with the attempt's `ClientRequestToken` →
//! release.
//!
//! A declined part, or a commit the order or stock refuses, refunds every charged part
//! (`REFUNDING → REFUNDED`). Anything whose outcome is unknown — a charge with no answer, a
//! commit with no answer after its re-sends, a process killed at any point — leaves the attempt
//! unsettled; `payment-reconcile` settles it after its deadline (see `docs/payments.md`).
//!
//! The lock keeps payers of one order from charging twice for it; it is not what makes this
//! correct. If the lock expired or was lost, the conditional write still refuses an oversell or
//! a double completion, and every charge of the losing attempt is refunded.

mod flow;
mod idempotent;
mod request;

pub use flow::{Paid, PaymentDeps, charge_budget, pay, pay_within};
pub(crate) use flow::{commit_attempt, number_and_mark_charged};
pub use idempotent::{
    IDEMPOTENCY_KEY_HEADER, PaymentAnswer, idempotency_key, pay_once, pay_once_within,
};
pub use request::{PaymentPart, PaymentReceipt, PaymentRequest};
