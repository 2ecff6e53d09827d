//! The embedded default: one HTTP server that serves every function's route from memory,
//! turning each request into the `lambda_http::Request` API Gateway would send and calling the
//! very same handler the Lambda runs.

pub mod dev_admin;
pub mod live;
mod server;
pub mod site;
pub mod testing;

use cafe::{App, Error, http};
use lambda_http::{Body, Request, Response};

pub use server::{Limits, serve, serve_with};

/// Calls the handler of `function` (a name from `cafe::routes::ROUTES`).
pub async fn dispatch(function: &str, req: Request, app: &App) -> Response<Body> {
    // Boxed: the future of a match over every handler nests too deep for the compiler's layout
    // queries in every crate that awaits it.
    let handler: std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + '_>> =
        Box::pin(dispatch_unboxed(function, req, app));
    handler.await
}

async fn dispatch_unboxed(function: &str, req: Request, app: &App) -> Response<Body> {
    match function {
        "member-signup" => member_signup::handle(req, app).await,
        "auth-login" => auth_login::handle(req, app).await,
        "auth-refresh" => auth_refresh::handle(req, app).await,
        "auth-logout" => auth_logout::handle(req, app).await,
        "member-get" => member_get::handle(req, app).await,
        "member-withdraw" => member_withdraw::handle(req, app).await,
        "member-restore" => member_restore::handle(req, app).await,
        "items-list" => items_list::handle(req, app).await,
        "jwks-get" => jwks_get::handle(req, app).await,
        "items-get" => items_get::handle(req, app).await,
        "order-create" => order_create::handle(req, app).await,
        "order-get" => order_get::handle(req, app).await,
        "order-list" => order_list::handle(req, app).await,
        "order-cancel" => order_cancel::handle(req, app).await,
        "payment-create" => payment_create::handle(req, app).await,
        "admin-member-role" => admin_member_role::handle(req, app).await,
        "admin-item-create" => admin_item_create::handle(req, app).await,
        "admin-item-update" => admin_item_update::handle(req, app).await,
        "admin-item-stock" => admin_item_stock::handle(req, app).await,
        "admin-order-list" => admin_order_list::handle(req, app).await,
        "admin-item-list" => admin_item_list::handle(req, app).await,
        "admin-order-status" => admin_order_status::handle(req, app).await,
        "shop-get" => shop_get::handle(req, app).await,
        "shop-board" => shop_board::handle(req, app).await,
        "admin-shop-update" => admin_shop_update::handle(req, app).await,
        "live-ticket" => live_ticket::handle(req, app).await,
        _ => http::failure(&Error::NoRoute),
    }
}

/// `SEED_STOCK`: the stock the seeded items start with on a fresh local store (the load test's
/// rush sells far more than the original's 10 colas). Unset → the seed's own stock.
pub fn seed_stock() -> Result<Option<i64>, String> {
    match std::env::var("SEED_STOCK") {
        Err(_) => Ok(None),
        Ok(raw) if raw.trim().is_empty() => Ok(None),
        Ok(raw) => raw
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=cafe::domain::item::MAX_STOCK).contains(n))
            .map(Some)
            .ok_or_else(|| format!("SEED_STOCK must be 0–1000000, not {raw:?}")),
    }
}

/// Gives each seeded item `stock` units (a fresh local store only: it replaces the item rows).
pub async fn restock_seed_items(app: &App, stock: i64) -> cafe::Result<()> {
    for item in cafe::domain::item::seed_items() {
        app.store
            .put_item(&cafe::domain::Item { stock, ..item })
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cafe::routes::ROUTES;

    /// Every route reaches a handler: none falls through to the unknown-function answer.
    #[tokio::test]
    async fn every_route_has_a_handler() {
        let app = testing::TestApp::new().await;
        let unknown = testing::json_of(
            &dispatch("nope", testing::request("GET", "/nope").build(), &app.app).await,
        );
        for route in ROUTES {
            let path = route
                .path
                .replace("{memberId}", "x")
                .replace("{itemId}", "x")
                .replace("{orderId}", "x");
            let response = dispatch(
                route.function,
                testing::request(route.method, &path).build(),
                &app.app,
            )
            .await;
            assert_ne!(testing::json_of(&response), unknown, "{}", route.function);
        }
    }

    #[test]
    fn test_requests_carry_path_and_query_parameters() {
        use lambda_http::RequestExt;
        let req = testing::request("GET", "/orders?limit=2&cursor=abc").build();
        assert_eq!(req.uri().path(), "/orders");
        assert_eq!(req.query_string_parameters().first("limit"), Some("2"));
        assert_eq!(req.query_string_parameters().first("cursor"), Some("abc"));
        let req = testing::request("DELETE", "/member/m1/withdraw").build();
        assert_eq!(req.path_parameters().first("memberId"), Some("m1"));
    }
}
