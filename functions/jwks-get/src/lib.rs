//! `jwks-get`: `GET /.well-known/jwks.json` → 200, the public keys that verify access tokens as a
//! plain RFC 7517 JWK Set (`{"keys":[{kty, crv, x, kid, use, alg}]}`, no envelope: JWT libraries
//! and API Gateway's JWT authorizer read it as it is), cacheable for 5 minutes. It holds the
//! previous, current and next keys, so a client caching it never misses a rotation.

use cafe::{App, Result, http};
use lambda_http::{Body, Request, Response};

/// This function reads the public keys only.
pub const TOKEN_KEY: cafe::config::TokenKey = cafe::config::TokenKey::Verifies;

/// As long as the functions cache the keys themselves.
const CACHE_CONTROL: &str = "public, max-age=300";

pub async fn handle(req: Request, app: &App) -> Response<Body> {
    http::serve("jwks-get", &req, &app.metrics, jwks(app)).await
}

async fn jwks(app: &App) -> Result<Response<Body>> {
    let jwks = app.tokens.public_jwks().await?;
    let mut response = http::json_response(200, cafe::auth::rotation::jwks_json(&jwks)?);
    response.headers_mut().insert(
        lambda_http::http::header::CACHE_CONTROL,
        lambda_http::http::HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(response)
}
