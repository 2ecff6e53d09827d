//! `order-list`: not implemented yet.

use cafe::{App, Error, http};
use lambda_http::{Body, Request, Response};

pub async fn handle(_req: Request, _app: &App) -> Response<Body> {
    http::failure(&Error::Internal("not implemented".into()))
}
