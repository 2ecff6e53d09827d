//! The route table: every HTTP function with its method and path. The local server routes with
//! it; tests hold `template.yaml`, `events/` and `functions/` to it.

/// One HTTP endpoint served by one Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// API Gateway syntax: `/member/{memberId}`.
    pub path: &'static str,
    /// The function crate and binary name.
    pub function: &'static str,
}

const fn route(method: &'static str, path: &'static str, function: &'static str) -> Route {
    Route {
        method,
        path,
        function,
    }
}

pub const ROUTES: &[Route] = &[
    route("POST", "/member", "member-signup"),
    route("POST", "/auth/login", "auth-login"),
    route("POST", "/auth/refresh", "auth-refresh"),
    route("POST", "/auth/logout", "auth-logout"),
    route("GET", "/member/{memberId}", "member-get"),
    route("DELETE", "/member/{memberId}/withdraw", "member-withdraw"),
    route("POST", "/member/{memberId}/restore", "member-restore"),
    route("GET", "/items", "items-list"),
    route("GET", "/items/{itemId}", "items-get"),
    route("POST", "/order", "order-create"),
    route("GET", "/order/{orderId}", "order-get"),
    route("GET", "/orders", "order-list"),
    route("DELETE", "/order/{orderId}/cancel", "order-cancel"),
    route("POST", "/payment", "payment-create"),
    route("GET", "/.well-known/jwks.json", "jwks-get"),
    route("PUT", "/admin/members/{memberId}/role", "admin-member-role"),
    route("POST", "/admin/items", "admin-item-create"),
    route("PATCH", "/admin/items/{itemId}", "admin-item-update"),
    route("POST", "/admin/items/{itemId}/stock", "admin-item-stock"),
    route("GET", "/admin/orders", "admin-order-list"),
    route("GET", "/admin/items", "admin-item-list"),
    route(
        "PUT",
        "/admin/orders/{orderId}/status",
        "admin-order-status",
    ),
    route("GET", "/shop", "shop-get"),
    route("GET", "/shop/board", "shop-board"),
    route("PUT", "/admin/shop", "admin-shop-update"),
    route("POST", "/live/ticket", "live-ticket"),
];

/// Functions that are not HTTP endpoints: the daily expiry job, the payment reconciler, the
/// stream publisher, the unpaid-order sweep, and the live WebSocket API's routes and sender.
pub const NON_HTTP_FUNCTIONS: &[&str] = &[
    "expire-withdrawals",
    "expire-orders",
    "payment-reconcile",
    "events-publisher",
    "live-connect",
    "live-disconnect",
    "live-subscribe",
    "live-sender",
];

/// The outcome of matching a request line against [`ROUTES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    Found {
        route: Route,
        /// (name, value) of each `{param}`.
        params: Vec<(String, String)>,
    },
    /// The path exists, but not with this method → 405CO000.
    MethodNotAllowed,
    /// No such path → 404CO000.
    NotFound,
}

/// Matches `method` and `path` (no query string) to a route.
pub fn match_route(method: &str, path: &str) -> RouteMatch {
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    let mut path_exists = false;
    for route in ROUTES {
        if let Some(params) = match_path(route.path, path) {
            if route.method.eq_ignore_ascii_case(method) {
                return RouteMatch::Found {
                    route: *route,
                    params,
                };
            }
            path_exists = true;
        }
    }
    if path_exists {
        RouteMatch::MethodNotAllowed
    } else {
        RouteMatch::NotFound
    }
}

fn match_path(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
    let mut pattern_parts = pattern.split('/');
    let mut path_parts = path.split('/');
    let mut params = Vec::new();
    loop {
        match (pattern_parts.next(), path_parts.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(v)) => {
                if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    if v.is_empty() {
                        return None;
                    }
                    params.push((name.to_owned(), v.to_owned()));
                } else if p != v {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_parameters_methods_and_unknown_paths() {
        match match_route("DELETE", "/member/abc/withdraw") {
            RouteMatch::Found { route, params } => {
                assert_eq!(route.function, "member-withdraw");
                assert_eq!(params, vec![("memberId".to_owned(), "abc".to_owned())]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(match_route("PUT", "/member"), RouteMatch::MethodNotAllowed);
        assert_eq!(match_route("GET", "/nope"), RouteMatch::NotFound);
        assert_eq!(
            match_route("GET", "/member//withdraw"),
            RouteMatch::NotFound
        );
    }

    #[test]
    fn function_names_are_unique() {
        let mut names: Vec<_> = ROUTES.iter().map(|r| r.function).collect();
        names.extend(NON_HTTP_FUNCTIONS);
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
