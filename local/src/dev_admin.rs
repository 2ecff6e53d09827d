//! The development-only first admin of the embedded default (`CAFE_DEV_ADMIN=email:password`):
//! only `cafe-admin` against DynamoDB can otherwise make one, so the barista board could not be
//! tried with `cargo run -p cafe-local`. Refused in production (`CAFE_ENV=production`) and on
//! any backend but the in-memory one.

use cafe::App;
use cafe::config::Backend;
use cafe::domain::{Gender, Role};

/// The variable that names the development admin, `email:password`.
pub const VAR: &str = "CAFE_DEV_ADMIN";

/// `CAFE_DEV_ADMIN` from the process environment, or `None` when unset or empty.
pub fn from_env() -> Option<String> {
    std::env::var(VAR).ok().filter(|v| !v.trim().is_empty())
}

/// Signs up `email` with `password` (the text of `CAFE_DEV_ADMIN`, `email:password`) and makes
/// the member an `ADMIN`, answering the member id. Refused in production and off the in-memory
/// store; an error names what is wrong (never the password).
pub async fn create(app: &App, spec: &str) -> Result<String, String> {
    if app.config.production {
        return Err(format!(
            "{VAR} is refused in production: make the first admin with cafe-admin"
        ));
    }
    if app.config.backend != Backend::Memory {
        return Err(format!(
            "{VAR} works only on the in-memory store: use cafe-admin against DynamoDB"
        ));
    }
    let (email, password) = spec
        .split_once(':')
        .filter(|(email, password)| email.contains('@') && !password.is_empty())
        .ok_or_else(|| format!("{VAR} must be email:password"))?;
    let birth = chrono::NaiveDate::from_ymd_opt(1990, 1, 1)
        .ok_or_else(|| "the development admin's birth date".to_owned())?;
    let pair = cafe::services::members::sign_up(
        app,
        cafe::services::members::SignUp {
            name: "Dev admin".into(),
            email: email.trim().to_owned(),
            phone_number: "010-0000-0000".into(),
            gender: Gender::Female,
            birth,
            password: password.to_owned(),
            source_ip: None,
        },
    )
    .await
    .map_err(|e| format!("{VAR}: the sign-up failed: {e}"))?;
    cafe::services::staff::grant_role_offline(
        app.store.as_ref(),
        &pair.member_id,
        Role::Admin,
        app.clock.now(),
    )
    .await
    .map_err(|e| format!("{VAR}: the grant failed: {e}"))?;
    Ok(pair.member_id)
}
