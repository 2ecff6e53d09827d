//! The one error type of the API and its mapping to the contract's codes.
//!
//! Domain code, stores, locks and gateways all return [`Error`]; only [`Error::wire`] knows the
//! HTTP status, the contract code and the default message. Nothing else in the code base picks a
//! status code.

use http::StatusCode;

/// Every failure a request can end in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// 400CO000: malformed JSON or a field missing, mistyped or out of range. Holds the field.
    #[error("parameter {0} is missing or invalid")]
    InvalidParameter(String),
    /// 401CO000: no bearer token, or an invalid/expired token, or an unknown/ended member.
    #[error("unauthorized")]
    Unauthorized,
    /// 403CO000: the member may not touch this resource, or is not in `SERVICE`.
    #[error("forbidden")]
    Forbidden,
    /// 404CO000: resource or item does not exist. Holds what was looked for.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 404CO000 from the local server: no route for this path.
    #[error("no route")]
    NoRoute,
    /// 405CO000: method not allowed on this path.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 408CO000: the request body did not arrive in time (the local server's body-read timeout;
    /// API Gateway has its own limits in front of the functions).
    #[error("request timeout")]
    RequestTimeout,
    /// 429CO000 with `Retry-After`: too many failed log-ins for this email, address or device, or
    /// too many sign-ups from this address, in the window. Holds the seconds until a slot frees.
    #[error("too many requests")]
    TooManyRequests(u32),
    /// 413CO000: body larger than 64 KiB.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 500CO000: a bug or an answer from a dependency that makes no sense. Holds a log-safe reason.
    #[error("internal error: {0}")]
    Internal(String),
    /// 503CO000: DynamoDB, Redis or EventBridge is unreachable. Holds which one.
    #[error("{0} unavailable")]
    Unavailable(&'static str),
    /// 400ME000: email already registered (case-insensitive).
    #[error("email already registered")]
    EmailTaken,
    /// 400ME001: withdraw asked of a member that is not `SERVICE`.
    #[error("member is not in service")]
    NotInService,
    /// 400ME001: a role granted to a member who is not `SERVICE` (withdrawn or ended).
    #[error("member is not in service")]
    RoleNeedsService,
    /// 400ME002: restore asked of a member that is not `WITHDRAWN` or past the 30-day window.
    #[error("member cannot be restored")]
    NotRestorable,
    /// 400ME003: a sign-up password among the most common (breached) ones, or with no variety
    /// (one character repeated, only spaces).
    #[error("password too common")]
    CommonPassword,
    /// 401ME000: wrong email or password (one answer for both).
    #[error("bad credentials")]
    BadCredentials,
    /// 400OR000: not enough stock for a line. Holds the item id.
    #[error("not enough stock for item {0}")]
    OutOfStock(String),
    /// 400OR002: an item that is not for sale (inactive). Holds the item id.
    #[error("item {0} is not for sale")]
    ItemUnavailable(String),
    /// 409IT000: an item edit named a version another edit already replaced.
    #[error("item changed since it was read")]
    VersionConflict,
    /// 400OR001: the order's status does not allow this.
    #[error("order status does not allow this")]
    OrderStatusConflict,
    /// 400PA000: payment parts do not add up to the order total.
    #[error("payment parts do not add up to the order total")]
    PaymentMismatch,
    /// 502PA000: the payment gateway failed; nothing was charged and nothing changed.
    #[error("payment gateway failed")]
    GatewayFailed,
    /// 409PA001: the lock for this order/items could not be taken in time.
    #[error("lock busy")]
    LockBusy,
    /// 409PA002: `Idempotency-Key` reused with another body, or its first request still running.
    #[error("idempotency key conflict")]
    IdempotencyConflict,
    /// 409PA002 with `Retry-After`: the first request under this key charged, and its payment
    /// attempt is not settled yet (the reconciler settles it; the retry then gets its answer).
    #[error("payment under this idempotency key still settling")]
    PaymentSettling,
    /// 409SH000: the shop is closed; nothing was charged. Holds the staff's message, if any.
    #[error("the shop is closed")]
    ShopClosed(Option<String>),
    /// 409SH001 with `Retry-After`: as many paid orders are being made as the bar takes; nothing
    /// was charged. Holds the seconds until one is likely made.
    #[error("the shop is at capacity")]
    ShopFull(u32),
    /// 409SH002 with `Retry-After`: the member has as many open orders as one may; nothing was
    /// charged. Holds the seconds until one is likely made.
    #[error("too many open orders for this member")]
    TooManyOpenOrders(u32),
    /// 400OR003: the order was not paid within the payment window; it is (or is about to be)
    /// `EXPIRED`.
    #[error("the order's payment window has passed")]
    PaymentWindowPassed,
}

/// `Retry-After` of a payment still settling: about when the reconciler (every 5 minutes) has
/// settled an attempt whose request died.
pub const PAYMENT_SETTLING_RETRY_AFTER_SECONDS: u32 = 60;

/// What an [`Error`] looks like on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header, sent with 503 and 409PA001.
    pub retry_after: Option<u32>,
}

impl Error {
    /// The single place where errors become contract codes, statuses and messages.
    pub fn wire(&self) -> WireError {
        let (status, code, message, retry_after): (u16, &'static str, String, Option<u32>) =
            match self {
                Error::InvalidParameter(field) => (
                    400,
                    "400CO000",
                    format!("Parameter ({field}) is missing or invalid."),
                    None,
                ),
                Error::Unauthorized => (
                    401,
                    "401CO000",
                    "Authentication is required: the bearer token is missing, invalid or expired."
                        .into(),
                    None,
                ),
                Error::Forbidden => (
                    403,
                    "403CO000",
                    "You are not allowed to access this resource.".into(),
                    None,
                ),
                Error::NotFound(what) => (404, "404CO000", format!("The {what} does not exist."), None),
                Error::NoRoute => (404, "404CO000", "No such resource.".into(), None),
                Error::MethodNotAllowed => (
                    405,
                    "405CO000",
                    "This method is not allowed on this path.".into(),
                    None,
                ),
                Error::TooManyRequests(seconds) => (
                    429,
                    "429CO000",
                    "Too many attempts (log-ins or sign-ups) from here; try again after Retry-After seconds."
                        .into(),
                    Some((*seconds).max(1)),
                ),
                Error::RequestTimeout => (
                    408,
                    "408CO000",
                    "The request body did not arrive in time.".into(),
                    None,
                ),
                Error::PayloadTooLarge => (
                    413,
                    "413CO000",
                    "The request body is larger than 64 KiB.".into(),
                    None,
                ),
                Error::Internal(_) => (
                    500,
                    "500CO000",
                    "An unexpected error occurred.".into(),
                    None,
                ),
                Error::Unavailable(dependency) => (
                    503,
                    "503CO000",
                    format!("A dependency ({dependency}) is unavailable; retry later."),
                    Some(1),
                ),
                Error::EmailTaken => (400, "400ME000", "This email is already registered.".into(), None),
                Error::NotInService => (
                    400,
                    "400ME001",
                    "Only a member in service can withdraw.".into(),
                    None,
                ),
                Error::RoleNeedsService => (
                    400,
                    "400ME001",
                    "Only a member in service can be given a role.".into(),
                    None,
                ),
                Error::NotRestorable => (
                    400,
                    "400ME002",
                    "Only a member withdrawn less than 30 days ago can be restored.".into(),
                    None,
                ),
                Error::CommonPassword => (
                    400,
                    "400ME003",
                    "This password is one of the most common (and most often breached) passwords, \
                     or repeats one character: choose another."
                        .into(),
                    None,
                ),
                Error::BadCredentials => (401, "401ME000", "Wrong email or password.".into(), None),
                Error::OutOfStock(item_id) => (
                    400,
                    "400OR000",
                    format!("Not enough stock for item {item_id}."),
                    None,
                ),
                Error::ItemUnavailable(item_id) => (
                    400,
                    "400OR002",
                    format!("Item {item_id} is not for sale."),
                    None,
                ),
                Error::VersionConflict => (
                    409,
                    "409IT000",
                    "The item changed since it was read; read it again and retry.".into(),
                    None,
                ),
                Error::OrderStatusConflict => (
                    400,
                    "400OR001",
                    "The order's status does not allow this.".into(),
                    None,
                ),
                Error::PaymentMismatch => (
                    400,
                    "400PA000",
                    "The payment amounts do not add up to the order total.".into(),
                    None,
                ),
                Error::GatewayFailed => (
                    502,
                    "502PA000",
                    "The payment gateway failed; nothing was charged.".into(),
                    None,
                ),
                Error::LockBusy => (
                    409,
                    "409PA001",
                    "The order is being processed by another request; retry.".into(),
                    Some(1),
                ),
                Error::IdempotencyConflict => (
                    409,
                    "409PA002",
                    "This Idempotency-Key was used with another body, or its first request is still running.".into(),
                    None,
                ),
                Error::PaymentSettling => (
                    409,
                    "409PA002",
                    "The payment made under this Idempotency-Key is still being settled; retry later for its answer.".into(),
                    Some(PAYMENT_SETTLING_RETRY_AFTER_SECONDS),
                ),
                Error::ShopClosed(message) => (
                    409,
                    "409SH000",
                    match message {
                        Some(message) => format!("The shop is closed: {message}"),
                        None => "The shop is closed.".into(),
                    },
                    None,
                ),
                Error::ShopFull(seconds) => (
                    409,
                    "409SH001",
                    "The shop is making as many orders as it can; nothing was charged. Retry after Retry-After seconds.".into(),
                    Some((*seconds).max(1)),
                ),
                Error::TooManyOpenOrders(seconds) => (
                    409,
                    "409SH002",
                    "You have as many orders in the making as one may; nothing was charged. Retry once one is ready.".into(),
                    Some((*seconds).max(1)),
                ),
                Error::PaymentWindowPassed => (
                    400,
                    "400OR003",
                    "The order was not paid in time and has expired; place it again.".into(),
                    None,
                ),
            };
        WireError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code,
            message,
            retry_after,
        }
    }

    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(field: impl Into<String>) -> Self {
        Error::InvalidParameter(field.into())
    }

    /// True for failures where nothing changed and the same request may succeed later
    /// (dependency down, lock busy, gateway failure).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::LockBusy | Error::GatewayFailed | Error::Internal(_)
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
