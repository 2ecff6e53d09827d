//! `payment-create`: `POST /payment` → 200 the completed order's payments. Honours an
//! `Idempotency-Key` header (per member): a repeat gets the first answer, never a second charge.

use cafe::services::payments::{self, IDEMPOTENCY_KEY_HEADER, PaymentRequest};
use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function verifies the bearer token.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("payment-create", &req, app, pay(&req, app)).await
}

async fn pay(req: &Request, app: &App) -> Result<Response<Body>> {
    // The invocation's deadline: no charge is started that could not be finished before it.
    let deadline = cafe::deadline::Deadline::of_request(req, app.clock.now());
    // Auth first (401, then 403 for a member not in SERVICE), then the body and the key.
    let member = app.authenticate(req).await?;
    member.check_in_service()?;
    let request: PaymentRequest = http::parse_body(req)?;
    let key = payments::idempotency_key(
        req.headers()
            .get(IDEMPOTENCY_KEY_HEADER)
            .map(|value| value.as_bytes()),
    )?;
    let answer = payments::pay_once_within(app, &member, &request, key.as_deref(), deadline).await;
    Ok(answer.into_response())
}
