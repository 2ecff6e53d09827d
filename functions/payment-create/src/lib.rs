//! `payment-create`: `POST /payment` → 200 the completed order's payments. Honours an
//! `Idempotency-Key` header (per member): a repeat gets the first answer, never a second charge.

use cafe::services::payments::{self, IDEMPOTENCY_KEY_HEADER, PaymentRequest};
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;
/// Charges, refunds or reconciles: in production this function refuses to start without a real
/// payment gateway (`PAYMENT_GATEWAY_URL`, https, and `PAYMENT_GATEWAY_SECRET_ARN`).
pub const GATEWAY: cafe::gateway::GatewayUse = cafe::gateway::GatewayUse::MovesMoney;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("payment-create", &req, &app.metrics, pay(&req, app)).await
}

async fn pay(req: &Request, app: &App) -> Result<Response<Body>> {
    // The invocation's deadline: no charge is started that could not be finished before it.
    let deadline = cafe::deadline::Deadline::of_request(req, app.clock.now());
    // Auth first (401, then 403 for a member not in SERVICE), then the body and the key. The
    // member is read with the stock, under the lock (one `BatchGetItem`), and judged there; only
    // a refused body or key reads the member on its own, to answer 401/403 before 400.
    let caller = app.verified_caller(req).await?;
    let parsed = http::parse_body::<PaymentRequest>(req).and_then(|request| {
        let header = req.headers().get(IDEMPOTENCY_KEY_HEADER);
        let key = payments::idempotency_key(header.map(|value| value.as_bytes()))?;
        Ok((request, key))
    });
    let (request, key) = match parsed {
        Ok(parsed) => parsed,
        Err(refused) => {
            app.member_in_service(&caller).await?;
            return Err(refused);
        }
    };
    let answer = payments::pay_once_within(app, &caller, &request, key.as_deref(), deadline).await;
    Ok(answer.into_response())
}
