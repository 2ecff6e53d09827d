//! Paying under an `Idempotency-Key`: the key's record taken before paying, the answer stored
//! or the key released after, a repeat answered from the record.

use super::flow::{PaymentDeps, pay_within};
use super::request::{PaymentReceipt, PaymentRequest, stored_of};
use crate::deadline::Deadline;
use crate::domain::member::Caller;
use crate::error::{Error, Result};
use crate::store::{IdempotencyBegin, IdempotencyOwner, StoredResponse};
use lambda_http::{Body, Response};

pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// The `Idempotency-Key` header: absent → `None`; 1–255 visible ASCII characters, else
/// 400CO000 naming `Idempotency-Key`.
pub fn idempotency_key(header: Option<&[u8]>) -> Result<Option<String>> {
    let Some(raw) = header else {
        return Ok(None);
    };
    let visible = raw.iter().all(|b| b.is_ascii_graphic());
    if raw.is_empty() || raw.len() > MAX_IDEMPOTENCY_KEY_LEN || !visible {
        return Err(Error::invalid("Idempotency-Key"));
    }
    Ok(Some(String::from_utf8_lossy(raw).into_owned()))
}

/// What `POST /payment` answers: computed now, or the stored answer of an earlier request with
/// the same key and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentAnswer {
    Fresh(Result<PaymentReceipt>),
    Replay(StoredResponse),
}

impl PaymentAnswer {
    pub fn into_response(self) -> Response<Body> {
        match self {
            PaymentAnswer::Fresh(outcome) => render(&outcome),
            PaymentAnswer::Replay(stored) => crate::http::json_response(stored.status, stored.body),
        }
    }

    /// Status and body, as stored for a replay.
    pub fn to_stored(&self) -> StoredResponse {
        match self {
            PaymentAnswer::Fresh(outcome) => stored_of(&render(outcome)),
            PaymentAnswer::Replay(stored) => stored.clone(),
        }
    }
}

fn render(outcome: &Result<PaymentReceipt>) -> Response<Body> {
    match outcome {
        Ok(receipt) => crate::http::success(200, receipt),
        Err(error) => crate::http::failure(error),
    }
}

/// True when an outcome is final and must be replayed as is. Outcomes where nothing changed and a
/// retry may succeed (502PA000 gateway failure, 409PA001 lock busy, 503CO000 dependency down,
/// 500) are not stored: the key is abandoned, so the client's retry with the same key really
/// runs instead of replaying a failure forever. Everything else (200, and 4xx answers that the
/// same request will always get) is stored, so a repeat never charges again.
///
/// Refusals of the payer (401CO000, 403CO000) are not stored either: they are judged with the
/// stock, after the key is taken, and a member who restores their membership may retry. Nor are
/// the floor's refusals (409SH000 closed, 409SH001 full, 409SH002 the member's limit): nothing was
/// charged, and the same request succeeds once the shop opens or an order is made.
fn is_final(outcome: &Result<PaymentReceipt>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(
            Error::Unauthorized
            | Error::Forbidden
            | Error::ShopClosed(_)
            | Error::ShopFull(_)
            | Error::TooManyOpenOrders(_),
        ) => false,
        Err(error) => !error.is_transient(),
    }
}

/// Pays with an optional `Idempotency-Key` (scoped to the member), within the default budget.
pub async fn pay_once(
    deps: &impl PaymentDeps,
    caller: &(impl Caller + ?Sized),
    request: &PaymentRequest,
    key: Option<&str>,
) -> PaymentAnswer {
    let deadline = Deadline::after(crate::deadline::DEFAULT_BUDGET, deps.clock().now());
    pay_once_within(deps, caller, request, key, deadline).await
}

/// Pays with an optional `Idempotency-Key` (scoped to the member): the first request records the
/// key as in progress, owned by a token of its own; a repeat with the same key and body gets the
/// stored answer (status and body, verbatim) without charging; another body under the key, or a
/// repeat while the first still runs → 409PA002. Once the first request has charged, its key is
/// answered or released only by the settlement of its payment attempt (the request's own, or
/// the reconciler's): until then a repeat gets 409PA002 with `Retry-After`.
///
/// `caller` is the verified token: the member itself is read with the stock, under the lock.
pub async fn pay_once_within(
    deps: &impl PaymentDeps,
    caller: &(impl Caller + ?Sized),
    request: &PaymentRequest,
    key: Option<&str>,
    deadline: Deadline,
) -> PaymentAnswer {
    let Some(key) = key else {
        return PaymentAnswer::Fresh(
            pay_within(deps, caller, request, None, deadline)
                .await
                .result,
        );
    };
    let hash = match request.canonical_hash() {
        Ok(hash) => hash,
        Err(error) => return PaymentAnswer::Fresh(Err(error)),
    };
    let begun = deps
        .store()
        .begin_idempotent(caller.member_id(), key, &hash, deps.clock().now())
        .await;
    let token = match begun {
        Err(error) => return PaymentAnswer::Fresh(Err(error)),
        Ok(IdempotencyBegin::Replay(stored)) => return PaymentAnswer::Replay(stored),
        Ok(IdempotencyBegin::Conflict) => {
            return PaymentAnswer::Fresh(Err(Error::IdempotencyConflict));
        }
        Ok(IdempotencyBegin::Pending) => return PaymentAnswer::Fresh(Err(Error::PaymentSettling)),
        Ok(IdempotencyBegin::Started(token)) => token,
    };
    let owner = IdempotencyOwner {
        member_id: caller.member_id().to_owned(),
        key: key.to_owned(),
        token,
    };
    let paid = pay_within(deps, caller, request, Some(&owner), deadline).await;
    let answer = PaymentAnswer::Fresh(paid.result);
    if paid.charged {
        // The attempt owns the key now: its settlement stores the answer (done already if it
        // completed) or releases the key.
        return answer;
    }
    let PaymentAnswer::Fresh(outcome) = &answer else {
        return answer;
    };
    if is_final(outcome) {
        match deps
            .store()
            .finish_idempotent(&owner, &answer.to_stored(), deps.clock().now())
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!("the idempotency record was taken over; answer not stored"),
            // The record stays in progress until its lease runs out; a retry after that runs
            // again and meets the order's new status, so it still cannot charge twice.
            Err(error) => tracing::warn!(%error, "could not store the idempotent answer"),
        }
    } else if let Err(error) = deps.store().abandon_idempotent(&owner).await {
        tracing::warn!(%error, "could not abandon the idempotency key");
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_visible_ascii_up_to_255() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(
            idempotency_key(Some(b"order-1:try#2")),
            Ok(Some("order-1:try#2".into()))
        );
        assert!(idempotency_key(Some("k".repeat(255).as_bytes())).is_ok());
        for bad in [
            &b""[..],
            b"has space",
            b"tab\t",
            "한글".as_bytes(),
            "k".repeat(256).as_bytes(),
        ] {
            assert_eq!(
                idempotency_key(Some(bad)),
                Err(Error::invalid("Idempotency-Key"))
            );
        }
    }

    #[test]
    fn only_transient_failures_and_refused_payers_are_retried_under_the_same_key() {
        for retried in [
            Error::GatewayFailed,
            Error::LockBusy,
            Error::Unavailable("redis"),
            Error::Internal("x".into()),
            // Judged after the key is taken: a member restored may retry with it.
            Error::Unauthorized,
            Error::Forbidden,
            // The floor: the same request succeeds once the shop opens or an order is made.
            Error::ShopClosed(None),
            Error::ShopFull(60),
            Error::TooManyOpenOrders(60),
        ] {
            assert!(!is_final(&Err(retried)));
        }
        for final_error in [
            Error::OrderStatusConflict,
            Error::OutOfStock("i".into()),
            Error::PaymentMismatch,
            Error::NotFound("order"),
            Error::PaymentWindowPassed,
        ] {
            assert!(is_final(&Err(final_error)));
        }
    }
}
